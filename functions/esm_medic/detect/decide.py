"""The sweep's pure decision: what a status means (:func:`assess`) and what to do for one ESM given its stored
snapshot (:func:`decide`).

Status comparison: (State, StateTransitionReason, LastProcessingResult) after whitespace normalisation, with the
healthy texts of one field folded together ("OK" and "No records processed" are the same healthy status). An *error
status*: the classifier says error/unknown for either text, or State is Disabled with a reason that is not a user
action. Transitional states (Creating, Enabling, Updating, Disabling, Deleting) are neither errors nor recoveries.

Events are emitted for a non-error status becoming an error (an ESM first seen broken counts), an error becoming a
different error, and an error becoming healthy (``recovered: true``, closes the incident). Changes between non-error
statuses update the snapshot quietly.

The flap hold: with ``early_emit`` (the default) a new error is emitted at once with ``phase: suspected`` and
``holdSeconds``; the workflow waits out the hold, re-reads the ESM and acts only if the error persists. A recovery
is emitted at once too (it closes the incident, suspected or not); one that comes within the hold counts as a
suppressed flap. Without ``early_emit`` the older behaviour holds: a status must be seen at two sweeps at least
``hold_seconds`` apart before it is emitted, and a pending status that goes away first is dropped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from esm_medic.classify import default_classifier
from esm_medic.detect.events import build_status_change
from esm_medic.detect.settings import SweepSettings
from esm_medic.detect.snapshot import (
    KIND_ERROR,
    KIND_OK,
    KIND_UNKNOWN,
    ORIGIN_LOG,
    Snapshot,
    Status,
    iso,
    parse_iso,
)
from esm_medic.esm import EsmConfig

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.classify import Classification

TRANSITIONAL = "transitional"
_HEALTHY_TOKEN = "~healthy"


@dataclass(frozen=True)
class Assessment:
    """What a status means: kind (error / ok / transitional), its classification, and its comparison keys."""

    kind: str
    entry: str | None
    step: str
    ckind: str  # the classifier's kind of the deciding text: error | healthy | unknown | empty
    title: str
    key: tuple[str, str, str]  # (State, reason, result) with healthy texts folded
    signature: tuple[str, str]  # (reason, result) folded: what distinguishes one error from another

    def classification(self) -> dict[str, Any]:
        out: dict[str, Any] = {"entry": self.entry, "step": self.step, "kind": self.ckind}
        if self.title:
            out["title"] = self.title
        return out


def _fold(c: Classification) -> str:
    if c.kind == "healthy":
        return _HEALTHY_TOKEN
    if c.kind == "empty":
        return ""
    return c.normalized or " ".join(c.text.split())


def assess(status: Status) -> Assessment:
    """Classify a status (cached per text by the classifier, so 10,000 similar ESMs cost little)."""
    clf = default_classifier()
    c_res = clf.classify_text(status.result, "LastProcessingResult")
    c_rea = clf.classify_text(status.reason, "StateTransitionReason")
    key = (status.state, _fold(c_rea), _fold(c_res))
    signature = (key[1], key[2])
    if status.transitional:
        return Assessment(TRANSITIONAL, None, "none", "healthy", "", key, signature)
    disabled_by_system = status.state == "Disabled" and not c_rea.healthy
    error = c_res.is_error or c_rea.is_error or disabled_by_system
    best = max((c_res, c_rea), key=lambda c: c.rank)  # max keeps LastProcessingResult on a tie
    if error:
        if best.is_error:
            return Assessment(KIND_ERROR, best.entry, best.step, best.kind, best.title, key, signature)
        return Assessment(KIND_ERROR, None, "unknown", "unknown", "Disabled without a user reason", key, signature)
    healthy = c_res if c_res.healthy else c_rea
    return Assessment(KIND_OK, healthy.entry, "none", "healthy", healthy.title, key, signature)


UNCHANGED = "unchanged"
FIRST_SEEN = "first_seen"
QUIET = "quiet"
PENDING = "pending"
HOLD = "hold"
DROP_PENDING = "drop_pending"
PROMOTE = "promote"
RESEND = "resend"
OUTBOX_BUSY = "outbox_busy"


@dataclass(frozen=True)
class Decision:
    action: str
    snapshot: Snapshot | None = None  # the record to write (None: write nothing)
    expected_version: int = 0
    detail: Mapping[str, Any] | None = None  # the event to emit once the write succeeded
    suppressed: int = 0  # flaps suppressed by this decision
    first_sighting: bool = False
    assessment: Assessment | None = None


def _event_source(esm: EsmConfig) -> str:
    return esm.cluster_arn or ",".join(esm.bootstrap_servers)


def incident_id_for(uuid: str, now: datetime) -> str:
    return f"inc-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{uuid[:8]}"


def _key_of(snap_status: Status | None) -> tuple[str, str, str] | None:
    return assess(snap_status).key if snap_status is not None else None


def decide(
    snap: Snapshot | None,
    esm: EsmConfig,
    *,
    now: datetime,
    settings: SweepSettings,
    status: Status | None = None,
    trigger: str = "sweep",
) -> Decision:
    """Pure: what to do for one ESM given its stored snapshot (None: never seen) and its listed status."""
    status = status or Status.from_esm(esm)
    a = assess(status)
    nowi = iso(now)
    if snap is not None and snap.outbox:
        detail = snap.outbox_detail()
        age = (now - parse_iso(snap.outbox_at)).total_seconds() if snap.outbox_at else float("inf")
        if detail is None:  # unreadable outbox: drop it rather than block the ESM forever
            return Decision(QUIET, snap.evolve(version=snap.version + 1, outbox="", outbox_at=""), snap.version)
        if age < settings.outbox_grace_seconds:
            return Decision(OUTBOX_BUSY, assessment=a)
        claimed = snap.evolve(version=snap.version + 1, outbox_at=nowi, updated_at=nowi)
        return Decision(RESEND, claimed, snap.version, detail=detail, assessment=a)
    if a.kind == TRANSITIONAL:
        return Decision(TRANSITIONAL, assessment=a)
    meta: dict[str, Any] = {
        "function_arn": esm.function_arn,
        "event_source": _event_source(esm),
        "source_kind": esm.source_kind,
    }
    if snap is None:
        base = Snapshot(uuid=esm.uuid, created_at=nowi, **meta)
        if a.kind == KIND_OK:
            new = base.evolve(
                version=1, status=status, kind=KIND_OK, since=nowi, entry=a.entry, step=a.step, updated_at=nowi
            )
            return Decision(FIRST_SEEN, new, 0, first_sighting=True, assessment=a)
        if settings.hold_seconds <= 0 or settings.early_emit:
            return _promote(
                base, esm, status, a, since=nowi, now=now, trigger=trigger, first=True, hold=_hold(settings)
            )
        new = base.evolve(version=1, pending=status, pending_since=nowi, updated_at=nowi)
        return Decision(PENDING, new, 0, first_sighting=True, assessment=a)

    cur_key = _key_of(snap.status)
    if snap.status_origin == ORIGIN_LOG and snap.kind == KIND_ERROR and cur_key != a.key:
        adopted = _adopt_after_log(snap, esm, status, a, now=now, settings=settings, meta=meta)
        if adopted is not None:
            return adopted
    if cur_key == a.key:
        if snap.pending is not None:
            new = snap.evolve(version=snap.version + 1, pending=None, pending_since="", updated_at=nowi)
            return Decision(DROP_PENDING, new, snap.version, suppressed=1, assessment=a)
        return Decision(UNCHANGED, assessment=a)

    cur_kind = snap.kind if snap.status is not None else KIND_UNKNOWN
    was_error = cur_kind == KIND_ERROR
    is_error = a.kind == KIND_ERROR
    worthy = was_error != is_error or (
        was_error and is_error and snap.status is not None and assess(snap.status).signature != a.signature
    )
    if not worthy:
        new = snap.evolve(
            version=snap.version + 1,
            status=status,
            kind=a.kind,
            since=nowi,
            pending=None,
            pending_since="",
            entry=a.entry,
            step=a.step,
            updated_at=nowi,
            **meta,
        )
        return Decision(QUIET, new, snap.version, suppressed=1 if snap.pending is not None else 0, assessment=a)

    pending_key = _key_of(snap.pending)
    if settings.hold_seconds <= 0 or settings.early_emit:
        since = snap.pending_since if pending_key == a.key and snap.pending_since else nowi
        flap = 1 if was_error and not is_error and _within_hold(snap, now, settings) else 0
        return _promote(snap, esm, status, a, since=since, now=now, trigger=trigger, hold=_hold(settings), flap=flap)
    if pending_key == a.key and snap.pending_since:
        held = (now - parse_iso(snap.pending_since)).total_seconds()
        if held >= settings.hold_seconds:
            return _promote(snap, esm, status, a, since=snap.pending_since, now=now, trigger=trigger)
        return Decision(HOLD, assessment=a)
    new = snap.evolve(version=snap.version + 1, pending=status, pending_since=nowi, updated_at=nowi)
    return Decision(PENDING, new, snap.version, suppressed=1 if snap.pending is not None else 0, assessment=a)


def _promote(
    snap: Snapshot,
    esm: EsmConfig,
    status: Status,
    a: Assessment,
    *,
    since: str,
    now: datetime,
    trigger: str,
    first: bool = False,
    hold: int = 0,
    flap: int = 0,
    evidence: Mapping[str, Any] | None = None,
    origin: str = "",
) -> Decision:
    nowi = iso(now)
    version = snap.version + 1
    recovered = snap.kind == KIND_ERROR and a.kind == KIND_OK
    if a.kind == KIND_ERROR:
        incident = snap.incident_id or incident_id_for(esm.uuid, now)
        open_incident, last_incident = incident, snap.last_incident_id
    else:
        incident = snap.incident_id or snap.last_incident_id or incident_id_for(esm.uuid, now)
        open_incident, last_incident = "", incident
    detail = build_status_change(
        event_id=f"{esm.uuid}:v{version}",
        uuid=esm.uuid,
        incident_id=incident,
        function_arn=esm.function_arn,
        event_source=_event_source(esm),
        source_kind=esm.source_kind,
        old=snap.status.to_api() if snap.status is not None else None,
        new=status.to_api(),
        classification=a.classification(),
        recovered=recovered,
        observed_at=nowi,
        since=since,
        trigger=trigger,
        evidence=evidence,
        phase="suspected" if a.kind == KIND_ERROR and hold > 0 else "confirmed",
        hold_seconds=hold if a.kind == KIND_ERROR and hold > 0 else None,
    )
    new = snap.evolve(
        version=version,
        status=status,
        kind=a.kind,
        since=since,
        pending=None,
        pending_since="",
        incident_id=open_incident,
        last_incident_id=last_incident,
        entry=a.entry,
        step=a.step,
        function_arn=esm.function_arn,
        event_source=_event_source(esm),
        source_kind=esm.source_kind,
        updated_at=nowi,
        outbox=json.dumps(detail, separators=(",", ":"), sort_keys=True),
        outbox_at=nowi,
        status_origin=origin,
    )
    return Decision(PROMOTE, new, snap.version, detail=detail, first_sighting=first, assessment=a, suppressed=flap)


def _hold(settings: SweepSettings) -> int:
    """The hold the event asks the workflow to wait out (0: the detector held it already, or no hold)."""
    return settings.hold_seconds if settings.early_emit else 0


def _within_hold(snap: Snapshot, now: datetime, settings: SweepSettings) -> bool:
    if not snap.since:
        return False
    try:
        return (now - parse_iso(snap.since)).total_seconds() < settings.hold_seconds
    except ValueError:
        return False


def _adopt_after_log(
    snap: Snapshot,
    esm: EsmConfig,
    status: Status,
    a: Assessment,
    *,
    now: datetime,
    settings: SweepSettings,
    meta: Mapping[str, Any],
) -> Decision | None:
    """The snapshot's error came from an ESM system-log record, before the API showed it. The first API error
    status after it belongs to the same transition: adopt it quietly (no second event). An API status that is still
    healthy within the hold is the API lagging behind the log: wait. Later, a healthy status is a real recovery
    (None: decide as usual)."""
    nowi = iso(now)
    if a.kind == KIND_ERROR:
        new = snap.evolve(
            version=snap.version + 1,
            status=status,
            status_origin="",
            entry=a.entry or snap.entry,
            step=a.step,
            updated_at=nowi,
            **meta,
        )
        return Decision(QUIET, new, snap.version, assessment=a)
    if a.kind == KIND_OK and _within_hold(snap, now, settings):
        return Decision(HOLD, assessment=a)
    return None


def decide_from_log(
    snap: Snapshot | None,
    esm: EsmConfig,
    error_text: str,
    *,
    now: datetime,
    since: datetime,
    settings: SweepSettings,
    evidence: Mapping[str, Any],
) -> Decision:
    """Pure: what an ``ESM_PROCESSING_EVENT`` record means for one ESM, given its snapshot and its API status just
    read. Exactly one event per transition whichever path sees it first: if the snapshot already holds an error (the
    sweeper, or an earlier record, saw it) or an event is still in its outbox, nothing is emitted. Otherwise the API
    status is used when it already shows an error; when it still looks healthy (the API lags the log), the record's
    text stands in for LastProcessingResult and the snapshot remembers that origin, so the sweeper later adopts the
    API's error text quietly instead of emitting a second event."""
    api_status = Status.from_esm(esm)
    api = assess(api_status)
    if snap is not None and snap.outbox:
        return Decision(OUTBOX_BUSY, assessment=api)
    if snap is not None and snap.kind == KIND_ERROR:
        return Decision(UNCHANGED, assessment=api)
    if api.kind == TRANSITIONAL:
        return Decision(TRANSITIONAL, assessment=api)
    origin = ""
    status, a = api_status, api
    if api.kind != KIND_ERROR:
        status = Status.of(api_status.state, api_status.reason, error_text)
        a = assess(status)
        origin = ORIGIN_LOG
        if a.kind != KIND_ERROR:  # the classifier calls the text healthy: not an error signal
            return Decision(UNCHANGED, assessment=a)
    nowi = iso(now)
    base = snap or Snapshot(
        uuid=esm.uuid,
        created_at=nowi,
        function_arn=esm.function_arn,
        event_source=_event_source(esm),
        source_kind=esm.source_kind,
    )
    return _promote(
        base,
        esm,
        status,
        a,
        since=iso(min(since, now)),
        now=now,
        trigger="esm-log",
        first=snap is None,
        hold=_hold(settings),
        evidence=evidence,
        origin=origin,
    )
