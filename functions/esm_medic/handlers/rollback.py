"""Rollback task: undo the change when verification gave up and the ESM is no better than before, or after a
remediation error. Idempotent (Powertools on the IDEMPOTENCY table; the engine's rollback is idempotent too)."""

from __future__ import annotations

from typing import Any

from esm_medic.handlers._common import aws_for_step, count, idempotent_call, lambda_entry

IDEMPOTENCY_KEY = "[uuid, incident_id, mode, action_record.action_id, execution]"


def _rollback(request: dict[str, Any]) -> dict[str, Any]:
    # imported on the first call: esm_medic.workflow and its logic cost ~90-250 ms at import (bench_coldstart)
    from esm_medic.workflow import rollback_step

    return rollback_step(aws_for_step(request, "rollback"), request)


@lambda_entry("rollback", schema="rollback")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = idempotent_call("rollback", _rollback, event, key_jmespath=IDEMPOTENCY_KEY, context=context)
    step = str((event.get("diagnosis") or {}).get("step") or "unknown")
    if result.get("rolled_back"):
        count("RolledBack")  # alarmed: service dimension only
        count("RollbacksByStep", step=step)
    else:
        count("RollbackKept", step=step)
    return result
