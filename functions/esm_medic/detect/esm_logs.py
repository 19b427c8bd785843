"""The log path of detection: ESM system-log records -> ``ESM Status Change`` events and poller evidence.

For each batch of records from the CloudWatch Logs subscription (see :mod:`esm_medic.detect.events.esm_log`):

- ``ESM_PROCESSING_EVENT`` (the last one per ESM in the batch): if the ESM's snapshot already holds an error or an
  undelivered event, nothing more is done (the sweeper or an earlier record saw this transition: one transition,
  one event). Otherwise one GetEventSourceMapping reads the ESM, :func:`esm_medic.detect.decide.decide_from_log`
  decides, and the sweeper's own machinery (conditional snapshot write with outbox, digest kept safe, PutEvents,
  outbox cleared) emits the event with ``trigger: esm-log``, the record as evidence, and ``phase: suspected`` when
  a hold applies. A concurrent sweep that wrote first wins the conditional write and is the only emitter.
- ``POLLER_STATUS_EVENT`` (the last one per ESM): kept as ``EVIDENCE#POLLER_STATUS`` in the STATE table (see
  :mod:`esm_medic.detect.snapshot`): the security protocol, SASL mechanism, subnets, security groups and IPs the
  ESM's pollers actually use, for the diagnosis.

Cost: per ESM in error, one GetItem and, for a new transition only, one GetEventSourceMapping plus the sweeper's
writes; per poller status, one PutItem.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from esm_medic.aws import error_code, is_not_found
from esm_medic.detect.decide import Decision, decide_from_log
from esm_medic.detect.events.esm_log import POLLER_STATUS, PROCESSING, EsmLogRecord
from esm_medic.detect.settings import SweepSettings
from esm_medic.detect.snapshot import KIND_ERROR, POLLER_STATUS_EVIDENCE, Snapshot, SnapshotStore, iso
from esm_medic.detect.sweeper import Processor, SweepResult
from esm_medic.esm import EsmConfig

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws

logger = Logger(service="esm-medic", child=True)


@dataclass
class LogPathResult:
    records: int = 0
    processing: int = 0  # ESM_PROCESSING_EVENT records
    poller_status: int = 0  # POLLER_STATUS_EVENT records
    other: int = 0
    duplicates: int = 0  # the transition was already known (snapshot in error or outbox busy)
    emitted: int = 0
    conflicts: int = 0  # a concurrent writer (the sweep) won: it emits
    evidence_saved: int = 0
    gone: int = 0  # the ESM no longer exists
    transitions: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["transitions"] = len(self.transitions)
        return d


def _last_per_uuid(records: Iterable[EsmLogRecord], kind: str) -> dict[str, EsmLogRecord]:
    out: dict[str, EsmLogRecord] = {}
    for r in records:
        if r.kind == kind and (r.uuid not in out or r.timestamp >= out[r.uuid].timestamp):
            out[r.uuid] = r
    return out


def handle_records(
    aws: Aws,
    records: list[EsmLogRecord],
    *,
    now: datetime | None = None,
    settings: SweepSettings | None = None,
) -> LogPathResult:
    """Turn one subscription batch into events and evidence (see the module docstring)."""
    settings = settings or SweepSettings.from_env()
    now = now or datetime.now(UTC)
    calls_before = Counter(aws.calls)
    result = LogPathResult(records=len(records))
    store = SnapshotStore(aws, settings.table or None)
    for r in records:
        if r.kind == PROCESSING:
            result.processing += 1
        elif r.kind == POLLER_STATUS:
            result.poller_status += 1
        else:
            result.other += 1

    for uuid, rec in _last_per_uuid(records, POLLER_STATUS).items():
        data = {**rec.poller_status(), "log_stream": rec.log_stream}
        try:
            if store.put_evidence(uuid, POLLER_STATUS_EVIDENCE, data, observed_at=rec.timestamp):
                result.evidence_saved += 1
        except Exception as exc:  # evidence is best effort: say so, never lose the error events for it
            result.errors.append(f"{uuid}: poller status not kept: {error_code(exc) or type(exc).__name__}")
            logger.warning("poller status not kept", extra={"uuid": uuid, "error_code": error_code(exc)})

    decisions: list[tuple[EsmConfig, Decision, Snapshot | None]] = []
    for uuid, rec in _last_per_uuid(records, PROCESSING).items():
        snap = store.get(uuid)
        if snap is not None and (snap.kind == KIND_ERROR or snap.outbox):
            result.duplicates += 1
            continue
        try:
            item = aws.call("lambda", "get_event_source_mapping", UUID=uuid)
        except Exception as exc:
            if is_not_found(exc):
                result.gone += 1
                continue
            raise
        cfg = EsmConfig.from_api(item)
        if not cfg.is_kafka:
            continue
        d = decide_from_log(
            snap, cfg, rec.message, now=now, since=rec.timestamp, settings=settings, evidence=rec.evidence()
        )
        if d.detail is None:
            result.duplicates += 1
            continue
        decisions.append((cfg, d, snap))

    sweep_result = SweepResult(started_at=iso(now))
    proc = Processor(aws, settings, now, sweep_result, trigger="esm-log", store=store, confirm=False)
    try:
        proc.apply(decisions)
    finally:
        proc.finish()
    result.emitted = sweep_result.emitted
    result.conflicts = sweep_result.conflicts
    result.transitions = list(sweep_result.transitions)
    result.errors.extend(sweep_result.errors)
    result.calls = dict(Counter(aws.calls) - calls_before)
    for detail in result.transitions:
        logger.info(
            "ESM status change from the system log",
            extra={"uuid": detail["uuid"], "incident_id": detail["incident_id"], "phase": detail.get("phase")},
        )
    return result


__all__ = ["LogPathResult", "handle_records"]
