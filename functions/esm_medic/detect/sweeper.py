"""The sweeper: find ESM status transitions that AWS never announces, and announce each exactly once.

One sweep:

1. lists every ESM of the region with ListEventSourceMappings (100 per page, lazily, page by page) and keeps the
   Kafka ones (``EsmConfig.from_api(item).is_kafka``);
2. per page, skips the ESMs whose listed status is the one the digest vouches for (the digest, read once per sweep
   with one Query, holds a version and a status hash per ESM: see :mod:`esm_medic.detect.snapshot`), reads the
   snapshots of the others (one BatchGetItem of <= 100 keys) and decides, per ESM, with :func:`decide` (pure):
   unchanged, first sighting, a quiet change, a new pending status, a flap that went away, or a transition to emit;
3. writes only what changed, each write conditional on the snapshot version it read; a transition is written
   together with its event detail (the snapshot "outbox"), so the sweep that wins the write is the only one that
   emits, and an event whose PutEvents failed (or whose sweep died) is re-sent by a later sweep;
4. puts the events (10 per PutEvents call), then clears the delivered outboxes;
5. when the whole listing completed, forgets the ESMs the digest knows that are no longer listed (no event).

An unchanged sweep of N ESMs costs ceil(N/100) ListEventSourceMappings calls, one digest Query (a page per MB,
about 60 bytes per ESM) and no write; a transition costs one confirming Get, a share of one PutEvents call and four
DynamoDB writes (digest entry to busy, snapshot with outbox, outbox cleared, digest entry to the new status).

What a status means and when a change is emitted (the flap hold, "suspected" events) is :mod:`esm_medic.detect.decide`.
Knobs: :mod:`esm_medic.detect.settings`.

Confirmation: before emitting, one GetEventSourceMapping re-reads the ESM (``confirm_with_get``) so a stale list
item never opens an incident; no other per-ESM call is made.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools import Logger

from esm_medic.aws import is_not_found
from esm_medic.detect.decide import (
    DROP_PENDING,
    FIRST_SEEN,
    HOLD,
    OUTBOX_BUSY,
    PENDING,
    PROMOTE,
    QUIET,
    RESEND,
    TRANSITIONAL,
    UNCHANGED,
    Assessment,
    Decision,
    assess,
    decide,
    incident_id_for,
)
from esm_medic.detect.events import EventPublisher, MalformedEvent
from esm_medic.detect.log_subscriptions import ensure as ensure_subscriptions
from esm_medic.detect.log_subscriptions import writes_system_logs
from esm_medic.detect.settings import SweepSettings, env_bool, env_int
from esm_medic.detect.snapshot import (
    BATCH_GET_MAX,
    Snapshot,
    SnapshotStore,
    Status,
    digest_entry,
    digest_hash,
    iso,
    status_hash,
)
from esm_medic.esm import EsmConfig

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws

T = TypeVar("T")
logger = Logger(service="esm-medic", child=True)


# ================================================================================== result
@dataclass
class SweepResult:
    started_at: str = ""
    complete: bool = True  # the whole listing was processed
    stopped_reason: str = ""  # why not complete (deadline, ...)
    listed: int = 0  # ESMs listed (all kinds)
    kafka: int = 0  # Kafka ESMs among them
    unread: int = 0  # Kafka ESMs skipped because their snapshot could not be read
    first_seen: int = 0  # new snapshots
    unchanged: int = 0
    transitional: int = 0
    quiet: int = 0  # non-event changes written (e.g. a healthy ESM disabled by its user)
    pending: int = 0  # new pending statuses written
    held: int = 0  # pending statuses still inside the hold time (no write)
    suppressed_flaps: int = 0
    emitted: int = 0  # ESM Status Change events delivered
    recovered: int = 0  # of which recoveries
    resent: int = 0  # outbox events re-sent from an earlier sweep
    outbox_busy: int = 0
    conflicts: int = 0  # conditional writes lost to a concurrent writer (that writer emits)
    snapshots_read: int = 0  # snapshot records read (the digest spares the unchanged ones)
    confirm_gets: int = 0
    confirm_changed: int = 0  # the Get showed another status than the list
    failed_events: int = 0  # events not delivered after bounded retries (kept in the outbox)
    writes: int = 0  # snapshot writes that succeeded (conditional puts)
    gc_ran: bool = False
    log_subscriptions_created: int = 0  # per-log-group subscriptions put for the log path
    deleted: list[str] = field(default_factory=list)  # ESMs forgotten
    transitions: list[dict[str, Any]] = field(default_factory=list)  # delivered event details
    errors: list[str] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)  # AWS API calls made by this sweep
    duration_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> dict[str, Any]:
        """Everything but the transition details (for logs and the handler's return value)."""
        d = self.to_dict()
        d["transitions"] = len(self.transitions)
        d["deleted"] = len(self.deleted)
        return d


# ================================================================================== the sweep
def _chunks[T](items: Iterable[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def gc_due(now: datetime, settings: SweepSettings) -> bool:
    """True for the first sweep of each ``gc_every_seconds`` window (every sweep when it is 0)."""
    every = settings.gc_every_seconds
    if every <= 0:
        return True
    t = int(now.timestamp())
    return t // every != (t - settings.interval_seconds) // every


class Processor:
    """Applies decisions for batches of ESMs: reads, confirming Gets, conditional writes, events."""

    def __init__(
        self,
        aws: Aws,
        settings: SweepSettings,
        now: datetime,
        result: SweepResult,
        *,
        trigger: str = "sweep",
        store: SnapshotStore | None = None,
        publisher: EventPublisher | None = None,
        executor: ThreadPoolExecutor | None = None,
        digest: dict[str, str] | None = None,
        confirm: bool | None = None,
    ) -> None:
        self.aws = aws
        self.settings = settings
        self.now = now
        self.result = result
        self.trigger = trigger
        self.store = store or SnapshotStore(aws, settings.table or None)
        self.publisher = publisher or EventPublisher(aws, settings.event_bus, max_attempts=settings.put_attempts)
        self.executor = executor
        self.outgoing: list[tuple[dict[str, Any], Snapshot]] = []
        self.digest: dict[str, str] | None = digest  # uuid -> digest entry, read at the start of a sweep
        self.settled: dict[str, str] = {}  # digest entries to write at the end of the run
        self.queue: list[EsmConfig] = []  # ESMs whose snapshot must be read
        self.confirm = settings.confirm_with_get if confirm is None else confirm

    def _map(self, fn: Any, items: list[Any]) -> list[Any]:
        if self.executor is None or len(items) <= 1:
            return [fn(i) for i in items]
        return list(self.executor.map(fn, items))

    def process(self, esms: list[EsmConfig]) -> None:
        """Skip the ESMs the digest vouches for; queue the others and handle them 100 at a time (one BatchGetItem)."""
        for esm in esms:
            if self.digest is not None:
                h = digest_hash(self.digest.get(esm.uuid))
                a = assess(Status.from_esm(esm))
                if h is not None and a.kind != TRANSITIONAL and h == status_hash(a.key):
                    self.result.unchanged += 1  # the digest vouches for the snapshot: no read, no write
                    continue
            self.queue.append(esm)
        while len(self.queue) >= BATCH_GET_MAX:
            batch, self.queue = self.queue[:BATCH_GET_MAX], self.queue[BATCH_GET_MAX:]
            self._handle(batch)

    def _handle(self, need: list[EsmConfig]) -> None:
        """Read, decide and apply for <= 100 ESMs whose snapshot must be read."""
        r = self.result
        if not need:
            return
        found, unread = self.store.batch_get(e.uuid for e in need)
        r.unread += len(unread)
        r.snapshots_read += len(found)
        decisions: list[tuple[EsmConfig, Decision, Snapshot | None]] = []
        for esm in need:
            if esm.uuid in unread:
                continue
            snap = found.get(esm.uuid)
            decisions.append((esm, decide(snap, esm, now=self.now, settings=self.settings, trigger=self.trigger), snap))
        if self.confirm:
            decisions = self._confirm(decisions)
        self.apply(decisions)

    def apply(self, decisions: list[tuple[EsmConfig, Decision, Snapshot | None]]) -> None:
        """Write the decided snapshots (conditional on the version read), queue their events, keep the digest safe."""
        to_write = [(e, d) for e, d, _s in decisions if d.snapshot is not None]
        # digest first: no reader may skip an ESM whose stored snapshot is about to change (a first sighting has no
        # entry that could vouch for it: entries are only set after their snapshot exists)
        invalidate = {
            e.uuid: digest_entry(d.snapshot.version, None) for e, d in to_write if d.snapshot and d.expected_version
        }
        if invalidate:
            self.store.digest_set(invalidate)
        outcomes = self._map(lambda ed: self.store.put(ed[1].snapshot, ed[1].expected_version), to_write)
        written = {e.uuid: ok for (e, _d), ok in zip(to_write, outcomes, strict=True)}
        settled: dict[str, str] = {}
        for esm, d, snap in decisions:
            ok = written.get(esm.uuid)
            self._count(esm, d, ok)
            if d.snapshot is not None:
                if ok and _quiet(d.snapshot):
                    settled[esm.uuid] = _digest_of(d.snapshot)
            elif self.digest is not None and snap is not None and _quiet(snap):
                want = _digest_of(snap)  # self-heal: a missing or stale entry made us read this one
                if self.digest.get(esm.uuid) != want:
                    settled[esm.uuid] = want
        self.settled.update(settled)
        if len(self.outgoing) >= 10:
            self.flush()

    def _confirm(
        self, decisions: list[tuple[EsmConfig, Decision, Snapshot | None]]
    ) -> list[tuple[EsmConfig, Decision, Snapshot | None]]:
        idx = [i for i, (_e, d, _s) in enumerate(decisions) if d.action == PROMOTE]
        if not idx:
            return decisions

        def get(i: int) -> dict[str, Any] | None:
            try:
                return self.aws.call("lambda", "get_event_source_mapping", UUID=decisions[i][0].uuid)
            except Exception as exc:
                if is_not_found(exc):
                    return None
                raise

        fresh = self._map(get, idx)
        out = list(decisions)
        for i, item in zip(idx, fresh, strict=True):
            esm, d, snap = decisions[i]
            self.result.confirm_gets += 1
            if item is None:  # deleted between the list and the Get: nothing to emit; GC forgets it
                out[i] = (esm, Decision(UNCHANGED, assessment=d.assessment), snap)
                continue
            cfg = EsmConfig.from_api(item)
            if d.assessment is not None and assess(Status.from_esm(cfg)).key == d.assessment.key:
                out[i] = (cfg, d, snap)
                continue
            self.result.confirm_changed += 1
            logger.info("the confirming Get shows another status than the list", extra={"uuid": esm.uuid})
            # the fresh status decides (when it is itself a transition, no second Get)
            out[i] = (cfg, decide(snap, cfg, now=self.now, settings=self.settings, trigger=self.trigger), snap)
        return out

    def _count(self, esm: EsmConfig, d: Decision, ok: bool | None) -> None:
        r = self.result
        if d.snapshot is not None and not ok:
            r.conflicts += 1  # another sweep wrote first: it owns this change and its event
            return
        if d.snapshot is not None:
            r.writes += 1
        r.suppressed_flaps += d.suppressed
        if d.first_sighting:
            r.first_seen += 1
        action = d.action
        if action == UNCHANGED:
            r.unchanged += 1
        elif action == TRANSITIONAL:
            r.transitional += 1
        elif action == QUIET:
            r.quiet += 1
        elif action == PENDING:
            r.pending += 1
        elif action == HOLD:
            r.held += 1
        elif action == OUTBOX_BUSY:
            r.outbox_busy += 1
        elif action in (PROMOTE, RESEND) and d.detail is not None and d.snapshot is not None:
            self.outgoing.append((dict(d.detail), d.snapshot))
            if action == RESEND:
                r.resent += 1

    def flush(self) -> None:
        """Put the queued events; clear the delivered outboxes; make failed ones due for a re-send."""
        if not self.outgoing:
            return
        batch, self.outgoing = self.outgoing, []
        put = self.publisher.put([detail for detail, _snap in batch])
        r = self.result
        for i in put.sent:
            detail = batch[i][0]
            r.emitted += 1
            r.recovered += 1 if detail.get("recovered") else 0
            r.transitions.append(detail)
        for i, reason in put.failed:
            logger.warning(
                "event not delivered; kept in the outbox", extra={"uuid": batch[i][1].uuid, "reason": reason}
            )
            r.failed_events += 1
            r.errors.append(f"event {batch[i][0].get('event_id')} not delivered: {reason}")
        nowi = iso(self.now)
        due = iso(datetime.fromtimestamp(self.now.timestamp() - self.settings.outbox_grace_seconds - 1, UTC))

        def settle(args: tuple[int, bool]) -> bool:
            i, delivered = args
            snap = batch[i][1]
            if delivered:
                new = snap.evolve(version=snap.version + 1, outbox="", outbox_at="", updated_at=nowi)
            else:  # back-date the outbox so the next sweep re-sends it
                new = snap.evolve(version=snap.version + 1, outbox_at=due, updated_at=nowi)
            return self.store.put(new, snap.version)

        jobs = [(i, True) for i in put.sent] + [(i, False) for i, _ in put.failed]
        settled: dict[str, str] = {}
        for (i, delivered), ok in zip(jobs, self._map(settle, jobs), strict=True):
            if ok:
                r.writes += 1
                if delivered:
                    snap = batch[i][1]
                    settled[snap.uuid] = _digest_of(snap.evolve(version=snap.version + 1, outbox=""))
        self.settled.update(settled)

    def finish(self) -> None:
        """Handle the ESMs still queued, deliver the events, then write the digest entries of the ESMs that settled
        in this run (batched per shard; if this never happens, the next sweep reads those snapshots and writes
        them: only a cost)."""
        try:
            batch, self.queue = self.queue, []
            self._handle(batch)
        finally:
            self.flush()
        if self.settled:
            entries, self.settled = self.settled, {}
            self.store.digest_set(entries)


def _quiet(snap: Snapshot) -> bool:
    """A snapshot the digest may vouch for: settled status, nothing pending, nothing to deliver."""
    return snap.status is not None and snap.pending is None and not snap.outbox


def _digest_of(snap: Snapshot) -> str:
    assert snap.status is not None
    return digest_entry(snap.version, status_hash(assess(snap.status).key))


def _list_pages(aws: Aws, page_size: int) -> Iterator[list[dict[str, Any]]]:
    items = aws.paginate(
        "lambda", "list_event_source_mappings", "EventSourceMappings", PaginationConfig={"PageSize": page_size}
    )
    return _chunks(items, page_size)


def sweep(
    aws: Aws,
    *,
    now: datetime | None = None,
    settings: SweepSettings | None = None,
    deadline: float | None = None,
    force_gc: bool = False,
    digest: dict[str, str] | None = None,
    listed: set[str] | None = None,
) -> SweepResult:
    """Run one sweep (see the module docstring). ``deadline`` is a ``time.monotonic()`` value: no new page is
    started after it (the events already decided are still delivered), and no GC runs on a partial listing; the next
    sweep starts from the beginning and the snapshot makes sure nothing is emitted twice.

    Several accounts (:mod:`esm_medic.detect.sweeper_accounts`): ``digest`` is the digest read once for all of them,
    and a ``listed`` set collects the Kafka ESMs listed instead of collecting garbage here (the digest is shared,
    so only the union of every account's complete listing may decide what is gone)."""
    settings = settings or SweepSettings.from_env()
    now = now or datetime.now(UTC)
    started = time.monotonic()
    calls_before = Counter(aws.calls)
    result = SweepResult(started_at=iso(now))
    listed_kafka: set[str] = set()
    logging_esms: list[EsmConfig] = []
    with ThreadPoolExecutor(max_workers=max(1, settings.workers), thread_name_prefix="sweep") as pool:
        proc = Processor(aws, settings, now, result, executor=pool)
        proc.digest = proc.store.digest_read() if digest is None else digest
        try:
            try:
                for page in _list_pages(aws, settings.page_size):
                    result.listed += len(page)
                    esms = [c for c in (EsmConfig.from_api(i) for i in page) if c.is_kafka and c.uuid]
                    result.kafka += len(esms)
                    listed_kafka.update(e.uuid for e in esms)
                    if settings.log_destination_arn:
                        logging_esms.extend(e for e in esms if writes_system_logs(e))
                    proc.process(esms)
                    if deadline is not None and time.monotonic() >= deadline:
                        result.complete = False
                        result.stopped_reason = "deadline: stopped before the Lambda timeout; the next sweep resumes"
                        break
            finally:
                proc.finish()
        except MalformedEvent as exc:  # a detail failed its own schema: a bug, but never a crash of the sweep
            logger.error("sweep stopped: an event failed its schema", extra={"reason": exc.reason})
            result.complete = False
            result.stopped_reason = f"internal: {exc.reason}"
            result.errors.append(exc.reason)
        if listed is not None:
            listed.update(listed_kafka)
        elif result.complete and (force_gc or gc_due(now, settings)):
            _collect_garbage(proc, listed_kafka, result)
    if logging_esms:
        subs = ensure_subscriptions(aws, logging_esms, settings.log_destination_arn)
        result.log_subscriptions_created = len(subs.created)
        result.errors.extend(f"log subscription: {f}" for f in subs.failed)
    result.calls = dict(Counter(aws.calls) - calls_before)
    result.duration_s = round(time.monotonic() - started, 3)
    return result


def _collect_garbage(proc: Processor, listed: set[str], result: SweepResult) -> None:
    """Forget the ESMs the digest knows but the (complete) listing no longer shows: delete their snapshots (only
    those created before this sweep started) and their digest entries. No event is emitted for a deleted ESM."""
    result.gc_ran = True
    gone = sorted(set(proc.digest or {}) - listed)
    if not gone:
        return
    cutoff = result.started_at
    deleted = proc._map(lambda u: proc.store.delete(u, created_before=cutoff), gone)
    forgotten = [u for u, ok in zip(gone, deleted, strict=True) if ok]
    if forgotten:
        proc.store.digest_remove(forgotten)
    result.deleted.extend(forgotten)


def observe(
    aws: Aws,
    esms: list[EsmConfig],
    *,
    now: datetime | None = None,
    settings: SweepSettings | None = None,
    trigger: str = "watch",
) -> SweepResult:
    """Apply the sweep's snapshot logic to a few ESMs just read (the watch uses it after a Get): same conditional
    writes, same hold time, same exactly-once events, no listing and no GC."""
    settings = settings or SweepSettings.from_env()
    now = now or datetime.now(UTC)
    calls_before = Counter(aws.calls)
    result = SweepResult(started_at=iso(now))
    kafka = [e for e in esms if e.is_kafka and e.uuid]
    result.listed, result.kafka = len(esms), len(kafka)
    proc = Processor(aws, settings, now, result, trigger=trigger, confirm=False)
    try:
        proc.process(kafka)
    finally:
        proc.finish()
    result.calls = dict(Counter(aws.calls) - calls_before)
    return result


__all__ = [
    "DROP_PENDING",
    "FIRST_SEEN",
    "HOLD",
    "OUTBOX_BUSY",
    "PENDING",
    "PROMOTE",
    "QUIET",
    "RESEND",
    "TRANSITIONAL",
    "UNCHANGED",
    "Assessment",
    "Decision",
    "SweepResult",
    "SweepSettings",
    "assess",
    "decide",
    "env_bool",
    "env_int",
    "gc_due",
    "incident_id_for",
    "observe",
    "sweep",
]
