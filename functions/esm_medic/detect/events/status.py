"""The ``ESM Status Change`` event (source ``esm-medic``) that the sweeper, the watch, the CloudTrail path and the
ESM system-log path put on the bus.

:func:`build_status_change` makes its detail, :func:`validate_detail` checks it against :data:`STATUS_CHANGE_SCHEMA`
(esm_medic.validation, built once), :func:`parse_status_change` is the one parser the workflow uses too.

``phase`` (optional; absent means ``confirmed``): ``suspected`` when the detector emits a new error status at once
and leaves the flap hold to the workflow, which waits ``holdSeconds``, re-reads the ESM and acts only if the error
persists. A recovery is always ``confirmed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from esm_medic.detect.events.base import (
    DETAIL_TYPE,
    DETAIL_VERSION,
    MAX_TEXT,
    PHASES,
    SOURCE,
    TRIGGERS,
    UUID_RE,
    MalformedEvent,
    as_object,
    envelope,
    is_envelope,
)
from esm_medic.steps import Step
from esm_medic.validation import first_error

_STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["State", "StateTransitionReason", "LastProcessingResult"],
    "properties": {
        "State": {"type": "string", "maxLength": 64},
        "StateTransitionReason": {"type": "string", "maxLength": MAX_TEXT},
        "LastProcessingResult": {"type": "string", "maxLength": MAX_TEXT},
    },
}

#: JSON schema (draft-07) of the ``detail`` of an ``ESM Status Change`` event, version 1.
STATUS_CHANGE_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "esm-medic ESM Status Change detail, version 1",
    "type": "object",
    "required": [
        "version",
        "event_id",
        "uuid",
        "incident_id",
        "function_arn",
        "event_source",
        "source_kind",
        "old",
        "new",
        "classification",
        "recovered",
        "observed_at",
        "since",
        "trigger",
    ],
    "properties": {
        "version": {"const": DETAIL_VERSION},
        "event_id": {"type": "string", "minLength": 1, "maxLength": 256},
        "uuid": {"type": "string", "pattern": UUID_RE},
        "incident_id": {"type": "string", "minLength": 1, "maxLength": 256},
        "function_arn": {"type": "string", "maxLength": 2048},
        "event_source": {"type": "string", "maxLength": MAX_TEXT},
        "source_kind": {"enum": ["msk", "self-managed"]},
        "old": {"anyOf": [{"type": "null"}, _STATUS_SCHEMA]},
        "new": _STATUS_SCHEMA,
        "classification": {
            "type": "object",
            "required": ["entry", "step"],
            "properties": {
                "entry": {"type": ["string", "null"], "maxLength": 128},
                "step": {"enum": [s.value for s in Step]},
                "kind": {"enum": ["error", "healthy", "unknown", "empty"]},
                "title": {"type": "string"},
            },
        },
        "recovered": {"type": "boolean"},
        "observed_at": {"type": "string", "format": "date-time"},
        "since": {"type": "string", "format": "date-time"},
        "trigger": {"enum": list(TRIGGERS)},
        "evidence": {"type": "object"},
        "phase": {"enum": list(PHASES)},
        "holdSeconds": {"type": "integer", "minimum": 0, "maximum": 86400},
        "account": {"type": "string", "pattern": r"^\d{12}$"},  # the ESM's account (central installs: a member)
    },
}


@dataclass(frozen=True)
class StatusChange:
    """A parsed, validated ``ESM Status Change`` detail."""

    event_id: str
    uuid: str
    incident_id: str
    function_arn: str
    event_source: str
    source_kind: str
    old: Mapping[str, str] | None
    new: Mapping[str, str]
    entry: str | None
    step: str
    recovered: bool
    observed_at: str
    since: str
    trigger: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    phase: str = "confirmed"  # suspected: emitted at once, the workflow waits ``hold_seconds`` and re-reads
    hold_seconds: int = 0
    detail: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_error(self) -> bool:
        """True for an event that reports an ESM going into (or staying in) an error status."""
        return not self.recovered and self.step != Step.NONE.value

    def to_detail(self) -> dict[str, Any]:
        return dict(self.detail)


def validate_detail(detail: Any) -> dict[str, Any]:
    """Check a detail against the schema and the cross-field rules; returns it, or raises MalformedEvent."""
    if not isinstance(detail, Mapping):
        raise MalformedEvent(f"detail must be an object, got {type(detail).__name__}")
    problem = first_error(STATUS_CHANGE_SCHEMA, detail, root="detail")
    if problem is not None:
        raise MalformedEvent(f"invalid ESM Status Change detail at {problem}")
    if detail["recovered"] and detail["old"] is None:
        raise MalformedEvent("invalid ESM Status Change detail: a recovery needs the old status")
    if detail["recovered"] and detail.get("phase") == "suspected":
        raise MalformedEvent("invalid ESM Status Change detail: a recovery is never 'suspected'")
    return dict(detail)


def parse_status_change(event: Any) -> StatusChange:
    """Parse an ``ESM Status Change`` EventBridge event (or its bare detail, or either as JSON text).

    Raises MalformedEvent with the reason when the envelope or the detail is wrong.
    """
    event = as_object(event)
    if is_envelope(event):
        source, detail_type, detail = envelope(event)
        if source != SOURCE:
            raise MalformedEvent(f"source must be {SOURCE!r}, got {source or None!r}")
        if detail_type != DETAIL_TYPE:
            raise MalformedEvent(f"detail-type must be {DETAIL_TYPE!r}, got {detail_type or None!r}")
    else:
        detail = event
    d = validate_detail(detail)
    cls = d["classification"]
    return StatusChange(
        event_id=d["event_id"],
        uuid=d["uuid"],
        incident_id=d["incident_id"],
        function_arn=d["function_arn"],
        event_source=d["event_source"],
        source_kind=d["source_kind"],
        old=d["old"],
        new=d["new"],
        entry=cls.get("entry"),
        step=cls["step"],
        recovered=d["recovered"],
        observed_at=d["observed_at"],
        since=d["since"],
        trigger=d["trigger"],
        evidence=d.get("evidence") or {},
        phase=d.get("phase", "confirmed"),
        hold_seconds=int(d.get("holdSeconds") or 0),
        detail=d,
    )


def build_status_change(
    *,
    event_id: str,
    uuid: str,
    incident_id: str,
    function_arn: str,
    event_source: str,
    source_kind: str,
    old: Mapping[str, str] | None,
    new: Mapping[str, str],
    classification: Mapping[str, Any],
    recovered: bool,
    observed_at: str,
    since: str,
    trigger: str = "sweep",
    evidence: Mapping[str, Any] | None = None,
    phase: str | None = None,
    hold_seconds: int | None = None,
) -> dict[str, Any]:
    """The detail of an ``ESM Status Change`` event, validated (raises MalformedEvent on a programming error)."""
    detail: dict[str, Any] = {
        "version": DETAIL_VERSION,
        "event_id": event_id,
        "uuid": uuid,
        "incident_id": incident_id,
        "function_arn": function_arn,
        "event_source": event_source[:MAX_TEXT],
        "source_kind": source_kind,
        "old": _clip_status(old) if old is not None else None,
        "new": _clip_status(new),
        "classification": {
            "entry": classification.get("entry"),
            "step": classification.get("step") or Step.UNKNOWN.value,
            **({"kind": classification["kind"]} if classification.get("kind") else {}),
            **({"title": classification["title"]} if classification.get("title") else {}),
        },
        "recovered": bool(recovered),
        "observed_at": observed_at,
        "since": since,
        "trigger": trigger,
    }
    if evidence:
        detail["evidence"] = dict(evidence)
    if phase:
        detail["phase"] = phase
    if hold_seconds is not None:
        detail["holdSeconds"] = int(hold_seconds)
    arn_parts = function_arn.split(":")
    if len(arn_parts) > 5 and len(arn_parts[4]) == 12 and arn_parts[4].isdigit():
        detail["account"] = arn_parts[4]
    return validate_detail(detail)


def _clip_status(status: Mapping[str, str]) -> dict[str, str]:
    return {
        "State": str(status.get("State") or "")[:64],
        "StateTransitionReason": str(status.get("StateTransitionReason") or "")[:MAX_TEXT],
        "LastProcessingResult": str(status.get("LastProcessingResult") or "")[:MAX_TEXT],
    }
