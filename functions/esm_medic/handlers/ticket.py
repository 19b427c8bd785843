"""Lambda handler ``esm_medic.handlers.ticket.handler``: open the ticket for an ESM and root cause (or comment on
the open one).

Input (the workflow state; extra keys are ignored)::

    {"uuid": "...", "incident_id": "...", "reason": "...", "outcome": "...",
     "classification": {...}, "diagnosis": {...} | null, "plan": {...} | null,
     "decision": {"outcome"|"action": "...", "reason": "..."}}   # used when reason / outcome are absent

Output: :func:`esm_medic.notify.open_ticket`'s result (``ticket_id``, ``location``, ``title``, ``body`` (cut at
50 000 characters to keep the state small), ``duplicate``, ``providers``, ``sent``, ``errors``).
"""

from __future__ import annotations

from typing import Any

from esm_medic.handlers._common import InvalidInput, count, get_aws, lambda_entry

BODY_MAX = 50_000

_OBJ_OR_NULL = {"type": ["object", "null"]}
_STR_OR_NULL = {"type": ["string", "null"]}
SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["uuid"],
    "properties": {
        "uuid": {"type": "string", "minLength": 1},
        "incident_id": _STR_OR_NULL,
        "reason": _STR_OR_NULL,
        "outcome": _STR_OR_NULL,
        "classification": _OBJ_OR_NULL,
        "diagnosis": _OBJ_OR_NULL,
        "plan": _OBJ_OR_NULL,
        "decision": _OBJ_OR_NULL,
    },
}


def parse(event: Any) -> dict[str, Any]:
    if not isinstance(event, dict):
        raise InvalidInput(f"ticket: the event must be a JSON object, got {type(event).__name__}")
    from esm_medic.validation import first_error

    problem = first_error(SCHEMA, event, root="<event>")
    if problem is not None:
        raise InvalidInput(f"ticket: invalid input at {problem}")
    decision = event.get("decision") or {}
    reason = event.get("reason") or decision.get("reason") or "esm-medic will not change this ESM by itself"
    outcome = event.get("outcome") or decision.get("outcome") or decision.get("action") or "ticketed"
    diagnosis = event.get("diagnosis") or None
    classification = event.get("classification") or (diagnosis or {}).get("classification") or {}
    return {
        "uuid": event["uuid"],
        "incident_id": event.get("incident_id"),
        "reason": str(reason),
        "outcome": str(outcome),
        "classification": classification,
        "diagnosis": diagnosis,
        "plan": event.get("plan") or None,
    }


@lambda_entry("ticket")
def handler(event: Any, context: Any) -> dict[str, Any]:
    from esm_medic.notify import open_ticket_for_esm  # lazy: the delivery stack costs ~100 ms of cold start
    from esm_medic.workflow.payloads import TicketResult

    args = parse(event)
    result = TicketResult.from_dict(open_ticket_for_esm(get_aws(), **args))
    if result.duplicate:
        count("TicketsCommented")
    else:
        count("TicketsOpened")
    for name in result.delivered:
        count("TicketDeliveries", 1, Provider=name)
    for err in result.errors:
        count("TicketDeliveryErrors", 1, Provider=str(err.get("sink") or "unknown"))
    if len(result.body) > BODY_MAX:
        result.body = result.body[:BODY_MAX] + "\n… (truncated; the full ticket is at the location)\n"
    return result.to_dict()
