"""Watch one ESM until it settles (rule 2: after a Create/UpdateEventSourceMapping; rule 4: after an alarm).

:func:`check` reads the ESM once (GetEventSourceMapping) and says whether it has settled:

- ``Creating`` / ``Enabling`` / ``Updating`` / ``Disabling`` / ``Deleting``: not settled (call again later);
- ``Enabled`` with an empty LastProcessingResult: not settled (the ESM has not reported a poll yet);
- ``Enabled`` with a result, or ``Disabled``: settled, healthy or in error (the classification says which);
- not found: settled (deleted; nothing to do).

When it has settled and ``record`` is true, the status goes through the sweeper's snapshot logic
(:func:`esm_medic.detect.sweeper.observe`): same hold time, same conditional writes, so a transition found by the
watch is emitted once and the sweeper will not emit it again. The Step Functions loop (wired by the workflow) calls
the watch handler until ``settled`` is true or its own attempt budget runs out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from esm_medic.detect.snapshot import Status

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws
    from esm_medic.detect.sweeper import SweepSettings


@dataclass(frozen=True)
class WatchResult:
    uuid: str
    found: bool
    settled: bool
    state: str
    status: dict[str, str]
    classification: dict[str, Any]
    error: bool  # settled in an error status
    kafka: bool = True
    emitted: list[dict[str, Any]] = field(default_factory=list)  # ESM Status Change details put by this check
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "found": self.found,
            "settled": self.settled,
            "state": self.state,
            "status": dict(self.status),
            "classification": dict(self.classification),
            "error": self.error,
            "kafka": self.kafka,
            "emitted": [d.get("event_id") for d in self.emitted],
            "incident_id": next((d.get("incident_id") for d in self.emitted), None),
            "reason": self.reason,
        }


def settled(status: Status) -> tuple[bool, str]:
    """(settled, why) for a status read from the API."""
    if status.transitional:
        return False, f"{status.state}: still changing"
    if status.state == "Enabled" and not status.result:
        return False, "Enabled, no processing result reported yet"
    if status.state in ("Enabled", "Disabled"):
        return True, status.state
    return False, f"unexpected State {status.state!r}"


def check(
    aws: Aws,
    uuid: str,
    *,
    now: datetime | None = None,
    settings: SweepSettings | None = None,
    record: bool = True,
) -> WatchResult:
    """Read ESM ``uuid`` once and report whether it has settled (see the module docstring)."""
    from esm_medic.aws import is_not_found
    from esm_medic.detect.sweeper import assess, observe
    from esm_medic.esm import EsmConfig

    now = now or datetime.now(UTC)
    try:
        item = aws.call("lambda", "get_event_source_mapping", UUID=uuid)
    except Exception as exc:
        if is_not_found(exc):
            return WatchResult(
                uuid,
                False,
                True,
                "Deleted",
                {},
                {"entry": None, "step": "none"},
                False,
                reason="the ESM no longer exists",
            )
        raise
    cfg = EsmConfig.from_api(item)
    status = Status.from_esm(cfg)
    a = assess(status)
    done, why = settled(status)
    if not cfg.is_kafka:
        return WatchResult(
            uuid,
            True,
            True,
            status.state,
            status.to_api(),
            a.classification(),
            False,
            kafka=False,
            reason="not a Kafka ESM: not watched",
        )
    emitted: list[dict[str, Any]] = []
    if done and record:
        result = observe(aws, [cfg], now=now, settings=settings, trigger="watch")
        emitted = list(result.transitions)
    return WatchResult(
        uuid=uuid,
        found=True,
        settled=done,
        state=status.state,
        status=status.to_api(),
        classification=a.classification(),
        error=done and a.kind == "error",
        emitted=emitted,
        reason=why,
    )


__all__ = ["WatchResult", "check", "settled"]
