"""Record task: write the execution's outcome (STATE record + audit entry, with timings). On the failure path it
opens the failed-with-ticket ticket itself when the state holds none. Idempotent per (execution, outcome)."""

from __future__ import annotations

from typing import Any

from esm_medic.handlers._common import count, get_aws, idempotent_call, lambda_entry, logger

IDEMPOTENCY_KEY = "[execution, final, failure, state.outcome.outcome]"


def _record(request: dict[str, Any]) -> dict[str, Any]:
    from esm_medic.workflow import record_outcome

    return record_outcome(get_aws(), request)


@lambda_entry("record", schema="record")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = idempotent_call("record", _record, event, key_jmespath=IDEMPOTENCY_KEY, context=context)
    record = result.get("record") or {}
    logger.set_correlation_id(str(record.get("uuid") or "") or None)
    outcome = str(result.get("outcome"))
    step = str(record.get("step") or "unknown")
    if outcome in ("ticketed", "failed-with-ticket"):
        count("ticketed", step=step, outcome=outcome)
    elif outcome == "recovered":
        count("recovered", step=step)
    else:
        count("outcomes", step=step, outcome=outcome)
    logger.info("outcome %s: %s", outcome, record.get("reason"))
    return {"outcome": outcome, "recorded": result.get("recorded"), "ticket_id": record.get("ticket_id")}
