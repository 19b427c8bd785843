"""What can start the workflow, normalised into a :class:`~esm_medic.workflow.payloads.WorkflowInput`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from esm_medic.detect.events import EventRejected, parse_status_change
from esm_medic.detect.events.base import as_object
from esm_medic.workflow.common import (
    _UUID_RE,
    MAX_TEXT,
    InputRejected,
    execution_name,
    safe_incident_id,
    status_fingerprint,
    status_of,
)
from esm_medic.workflow.payloads import WorkflowInput


def compact_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """The event as kept in the state: the envelope keys and the detail, long texts clipped."""
    keep = ("version", "id", "source", "detail-type", "account", "region", "time", "resources")
    out: dict[str, Any] = {k: event[k] for k in keep if k in event}
    detail = event.get("detail")
    if isinstance(detail, Mapping):
        out["detail"] = _clip(detail, MAX_TEXT)
    return out


def _clip(obj: Any, limit: int, depth: int = 0) -> Any:
    if isinstance(obj, str):
        return obj[:limit]
    if depth > 8:
        return None
    if isinstance(obj, Mapping):
        return {str(k): _clip(v, limit, depth + 1) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clip(v, limit, depth + 1) for v in list(obj)[:200]]
    return obj


def normalise_event(event: Any) -> WorkflowInput:
    """Turn what can start the workflow into a :class:`WorkflowInput`.

    Accepted: an esm-medic ``ESM Status Change`` event (what the EventBridge rule delivers), an already
    normalised workflow input (``uuid`` + ``status``; manual / CLI starts), or a bare ESM item (``UUID`` + status
    fields). Recoveries and healthy statuses raise ``InputRejected(ignored=True)``; anything malformed raises
    ``InputRejected``.
    """
    try:
        event = as_object(event)
    except EventRejected as exc:
        raise InputRejected(exc.reason) from None
    if "detail-type" in event or "detail" in event:
        return _from_status_change(event)
    if "uuid" in event and "status" in event:
        return _from_workflow_input(event)
    if "UUID" in event:
        uuid = str(event["UUID"])
        return _from_parts(uuid, status_of(event), incident_id="", trigger="manual", event={"esm": _clip(event, 1024)})
    raise InputRejected("unrecognised input: expected an 'ESM Status Change' event, a workflow input or an ESM item")


def _from_status_change(event: Mapping[str, Any]) -> WorkflowInput:

    try:
        change = parse_status_change(event)
    except EventRejected as exc:
        raise InputRejected(exc.reason) from None
    if not change.is_error:
        raise InputRejected(f"ESM {change.uuid} reports no error (recovered or healthy): nothing to do", ignored=True)
    raw_detail = event.get("detail")
    detail: Mapping[str, Any] = raw_detail if isinstance(raw_detail, Mapping) else {}
    return _from_parts(
        change.uuid,
        status_of(change.new),
        incident_id=change.incident_id,
        trigger=change.trigger,
        event=compact_event(event),
        observed_at=change.observed_at,
        phase=str(detail.get("phase") or ""),
        hold_seconds=_seconds(detail.get("holdSeconds")),
    )


def _seconds(value: Any) -> int:
    """A non-negative whole number of seconds (0 for anything else)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return 0
    try:
        return max(0, int(float(value)))
    except ValueError:
        return 0


def _from_workflow_input(event: Mapping[str, Any]) -> WorkflowInput:
    uuid = str(event.get("uuid") or "")
    status = event.get("status")
    if not isinstance(status, Mapping):
        raise InputRejected("'status' must be an object with State / StateTransitionReason / LastProcessingResult")
    raw_event = event.get("event")
    return _from_parts(
        uuid,
        status_of(status),
        incident_id=str(event.get("incident_id") or ""),
        trigger=str(event.get("trigger") or "manual"),
        event=dict(raw_event) if isinstance(raw_event, Mapping) else {},
        observed_at=str(event.get("observed_at") or ""),
        fingerprint=str(event.get("fingerprint") or ""),
        phase=str(event.get("phase") or ""),
        hold_seconds=_seconds(event.get("hold_seconds")),
    )


def _from_parts(
    uuid: str,
    status: dict[str, str],
    *,
    incident_id: str,
    trigger: str,
    event: dict[str, Any],
    observed_at: str = "",
    fingerprint: str = "",
    phase: str = "",
    hold_seconds: int = 0,
) -> WorkflowInput:
    if not _UUID_RE.match(uuid):
        raise InputRejected(f"not an event source mapping uuid: {uuid[:80]!r}")
    if not any(status.values()):
        raise InputRejected(f"ESM {uuid}: the status is empty")
    if not incident_id:
        # no incident from detection: one incident per (ESM, status, hour), so a re-break later is a new one
        hour = datetime.now(UTC).strftime("%Y%m%dT%H")
        base = status_fingerprint(uuid, status, hour)
        incident_id = f"inc-{hour}-{uuid[:8]}-{base[:6]}"
    fp = fingerprint if re.fullmatch(r"[0-9a-f]{16}", fingerprint or "") else ""
    fp = fp or status_fingerprint(uuid, status, incident_id)
    safe = safe_incident_id(incident_id, uuid, fp)
    return WorkflowInput(
        uuid=uuid,
        incident_id=safe,
        fingerprint=fp,
        execution_name=execution_name(uuid, fp),
        trigger=trigger or "manual",
        status=status,
        event=event,
        observed_at=observed_at or datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        phase="suspected" if phase == "suspected" else "",
        hold_seconds=hold_seconds if phase == "suspected" else 0,
    )
