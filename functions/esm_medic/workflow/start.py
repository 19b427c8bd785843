"""The ``start`` step: one execution per (incident, ESM, status); a duplicate event starts nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from esm_medic.aws import error_code
from esm_medic.workflow.common import DUPLICATE_SKEW_SECONDS, InputRejected
from esm_medic.workflow.event import normalise_event

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws


def start_workflow(aws: Aws, state_machine_arn: str, event: Any) -> dict[str, Any]:
    """Start one execution for ``event``; a duplicate (same name) is reported, not an error.

    Returns ``{"started", "duplicate", "ignored", "execution_name", "execution_arn", "uuid", "incident_id",
    "reason"}``. Raises InputRejected for malformed events (the handler turns it into a clean result).
    """
    try:
        wi = normalise_event(event)
    except InputRejected as exc:
        if exc.ignored:
            return {"started": False, "duplicate": False, "ignored": True, "reason": exc.reason}
        raise
    base = {"uuid": wi.uuid, "incident_id": wi.incident_id, "execution_name": wi.execution_name}
    arn = execution_arn(state_machine_arn, wi.execution_name)
    asked_at = datetime.now(UTC)
    try:
        resp = aws.call(
            "stepfunctions",
            "start_execution",
            stateMachineArn=state_machine_arn,
            name=wi.execution_name,
            input=json.dumps(wi.to_input(), separators=(",", ":")),
        )
    except Exception as exc:
        if error_code(exc) == "ExecutionAlreadyExists":
            return {
                **base,
                "started": False,
                "duplicate": True,
                "ignored": False,
                "execution_arn": arn,
                "reason": "an execution for this ESM and status already exists (duplicate event)",
            }
        raise
    started = resp.get("startDate")
    if isinstance(started, datetime) and started.astimezone(UTC) < asked_at - timedelta(seconds=DUPLICATE_SKEW_SECONDS):
        # AWS answers a repeated StartExecution with the same name and input, while the first still runs, with the
        # first execution (no error): an older start date means this event is a duplicate too
        return {
            **base,
            "started": False,
            "duplicate": True,
            "ignored": False,
            "execution_arn": resp["executionArn"],
            "reason": "the execution for this ESM and status is already running (duplicate event)",
        }
    return {**base, "started": True, "duplicate": False, "ignored": False, "execution_arn": resp["executionArn"]}


def execution_arn(state_machine_arn: str, name: str) -> str:
    """``arn:...:stateMachine:<sm>`` + name -> ``arn:...:execution:<sm>:<name>``."""
    return state_machine_arn.replace(":stateMachine:", ":execution:", 1) + ":" + name
