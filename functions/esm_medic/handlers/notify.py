"""Lambda handler ``esm_medic.handlers.notify.handler``: send one notification from the workflow.

Input: ``{"kind": "recovered"|"pending-approval"|"ticketed"|"failed"|"notify"|"shadow"|"suspected"|"transient",
"context": {...}}`` (``notify`` with ``context.decision.shadow`` true is shown as ``shadow``); when
``context`` is absent, the rest of the event (the workflow state) is the context. Output: the result of
:func:`esm_medic.notify.notify_incident` (``{"kind", "title", "sent", "errors"}``, plus ``tickets`` when a
recovery resolved open tickets, and ``slack`` when the Slack app message moved). Delivery failures never fail the
task: they are in ``errors`` and in the outbox.
"""

from __future__ import annotations

from typing import Any

from esm_medic.handlers._common import InvalidInput, count, get_aws, lambda_entry
from esm_medic.notify.message import KINDS

SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["kind"],
    "properties": {
        "kind": {"type": "string", "enum": list(KINDS)},
        "context": {"type": "object"},
    },
}


def parse(event: Any) -> tuple[str, dict[str, Any]]:
    if not isinstance(event, dict):
        raise InvalidInput(f"notify: the event must be a JSON object, got {type(event).__name__}")
    from esm_medic.validation import first_error

    problem = first_error(SCHEMA, event, root="<event>")
    if problem is not None:
        raise InvalidInput(f"notify: invalid input at {problem}")
    context = event.get("context")
    if not isinstance(context, dict):
        context = {k: v for k, v in event.items() if k != "kind"}
    return str(event["kind"]), context


@lambda_entry("notify")
def handler(event: Any, context: Any) -> dict[str, Any]:
    from esm_medic.notify import notify_incident  # lazy: the delivery stack costs ~100 ms of cold start
    from esm_medic.workflow.payloads import NotificationResult

    kind, ctx = parse(event)
    result = NotificationResult.from_dict(notify_incident(get_aws(), kind, ctx))
    count("NotificationsSent", len(result.sent), Kind=kind)
    if result.errors:
        count("NotificationErrors", len(result.errors), Kind=kind)
    resolved = (result.tickets or {}).get("resolved") or []
    if resolved:
        count("TicketsResolved", len(resolved))
    return result.to_dict()
