"""Lambda handler ``esm_medic.handlers.approval_request.handler``: the workflow's ``waitForTaskToken`` task.

Input (ASL ``Parameters``: ``"task_token.$": "$$.Task.Token"``)::

    {"task_token": "...", "uuid": "...", "incident_id": "...", "plan": {...}, "diagnosis": {...},
     "timeout_seconds": 3600}

Optional ``requested_by``: who asked for the fix (excluded from approving it when configured). The workflow passes
the execution input (``"execution_input.$": "$$.Execution.Input"``) and the triggering event (``"event.$":
"$.event"``) instead: the requester is read from them (:func:`esm_medic.approval.request.requested_by_of`).

Stores the pending approval under an opaque id, sends each approver their own links, notifies the channels and
returns at once with ``{"approval_id", "expires_at", "required_approvals", "links_sent_to", "notification",
"warnings"}`` (Step Functions ignores it: the task resumes when a person decides). Neither the task token nor a link
is ever logged or returned.
"""

from __future__ import annotations

from typing import Any

from esm_medic.handlers._common import InvalidInput, count, get_aws, lambda_entry, payload_account

SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["task_token", "uuid"],
    "properties": {
        "task_token": {"type": "string", "minLength": 1},
        "uuid": {"type": "string", "minLength": 1},
        "incident_id": {"type": ["string", "null"]},
        "plan": {"type": ["object", "null"]},
        "diagnosis": {"type": ["object", "null"]},
        "classification": {"type": ["object", "null"]},
        "timeout_seconds": {"type": ["integer", "number", "string", "null"], "exclusiveMinimum": 0},
        "requested_by": {"type": ["string", "null"], "maxLength": 200},
        "execution_input": {"type": ["object", "null"]},
        "event": {"type": ["object", "null"]},
        "account": {"type": ["string", "null"]},
    },
}


def parse(event: Any) -> dict[str, Any]:
    if not isinstance(event, dict):
        raise InvalidInput(f"approval_request: the event must be a JSON object, got {type(event).__name__}")
    # imported here, as every handler's logic: Powertools validation and the approval package cost ~400 ms together
    from aws_lambda_powertools.utilities.validation import SchemaValidationError, validate

    from esm_medic.approval.request import requested_by_of

    try:
        validate(event=event, schema=SCHEMA)
    except SchemaValidationError as exc:  # Powertools names the failing rule and path, not the value
        raise InvalidInput(f"approval_request: invalid input: {exc.validation_message}") from None
    diagnosis = dict(event.get("diagnosis") or {})
    if isinstance(event.get("classification"), dict) and not diagnosis.get("classification"):
        diagnosis["classification"] = event["classification"]  # the message names the catalogue entry
    return {
        "task_token": event["task_token"],
        "uuid": event["uuid"],
        "incident_id": event.get("incident_id") or "",
        "plan": event.get("plan") or {},
        "diagnosis": diagnosis,
        "timeout_seconds": event.get("timeout_seconds"),
        "requested_by": requested_by_of(event),
        "account": payload_account({**event, "diagnosis": diagnosis}) or "",
    }


@lambda_entry("approval_request")
def handler(event: Any, context: Any) -> dict[str, Any]:
    from esm_medic.approval import request_approval

    result = request_approval(get_aws(), **parse(event))
    count("ApprovalsRequested", 1)
    return result
