"""Record task: write the execution's outcome (STATE record + audit entry, with timings). On the failure path it
opens the failed-with-ticket ticket itself when the state holds none. Idempotent per (execution, outcome).

Also the target of the ``execution-ended`` rule (``statemachine/execution-ended.pattern.json``): a FAILED /
TIMED_OUT / ABORTED execution that never recorded an outcome (``States.Runtime`` is not caught by
``States.ALL``; executions can be stopped by hand) gets ``failed-with-ticket`` recorded here.
"""

from __future__ import annotations

from typing import Any

from esm_medic.handlers._common import (
    WORKFLOW_MAX_ATTEMPTS,
    count,
    get_aws,
    idempotent_call,
    lambda_entry,
    logger,
    validate_input,
)

IDEMPOTENCY_KEY = "[execution, final, failure, state.outcome.outcome]"
ENDED_KEY = "detail.executionArn"


def _record(request: dict[str, Any]) -> dict[str, Any]:
    from esm_medic.workflow import record_outcome

    return record_outcome(get_aws(WORKFLOW_MAX_ATTEMPTS), request).to_dict()


def _ended(request: dict[str, Any]) -> dict[str, Any]:
    from esm_medic.workflow import execution_ended

    return execution_ended(get_aws(WORKFLOW_MAX_ATTEMPTS), request)


@lambda_entry("record")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if isinstance(event, dict) and event.get("detail-type") == "Step Functions Execution Status Change":
        validate_input(event, "execution_ended")
        ended = idempotent_call("record_ended", _ended, event, key_jmespath=ENDED_KEY, context=context)
        if ended.get("recorded"):
            count("DeadExecutions")
            logger.warning("execution ended without an outcome; recorded %s", ended.get("outcome"))
        else:
            count("EndedExecutionsChecked")
        return {"outcome": ended.get("outcome"), "recorded": ended.get("recorded"), "reason": ended.get("reason")}
    validate_input(event, "record")
    from esm_medic.workflow.payloads import RecordResult

    # the idempotency layer hands back the stored JSON on a repeat: read it back typed
    result = RecordResult.from_dict(
        idempotent_call("record", _record, event, key_jmespath=IDEMPOTENCY_KEY, context=context)
    )
    record = result.record
    logger.set_correlation_id(record.uuid or None)
    outcome = result.outcome
    step = str(record.step or "unknown")
    if outcome in ("ticketed", "failed-with-ticket"):
        count("Ticketed", step=step, outcome=outcome)
    elif outcome == "recovered":
        count("Recovered", step=step)
    else:
        count("Outcomes", step=step, outcome=outcome)
    logger.info("outcome %s: %s", outcome, record.reason)
    return {"outcome": outcome, "recorded": result.recorded, "ticket_id": record.ticket_id}
