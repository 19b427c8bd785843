"""Remediate task: apply the whole plan through the engine, fix by fix (lock, policy, budget, audit, a re-check after
each fix), then restart polling once.

Idempotent twice over: Powertools idempotency on the IDEMPOTENCY table keyed by uuid + incident + fix + plan
fingerprint (a retried or duplicated execution gets the stored result, no second change), and the engine re-plans
from the live state (only missing changes are made).

Named errors the state machine routes explicitly (never through ``States.ALL``):

- ``RemediationInProgress``: another execution of this incident is applying the same plan right now (Powertools
  ``IdempotencyAlreadyInProgressError``); the state machine retries (waits for it), then joins it;
- ``LockConflict``: another run holds the ESM lock; the execution joins the running incident;
- ``NotApplied``: the engine declined (budget, kill switch, plan changed) -> ticket;
- ``RemediationFailed`` (``Throttled`` when AWS kept throttling): applying failed; the after-error rollback touches
  only the action the error names.

A stored result that another execution produced comes back with ``joined: true`` (this execution changed nothing;
the state machine records it as joined, it never verifies or rolls back someone else's change).
"""

from __future__ import annotations

import os
from typing import Any

from esm_medic.handlers._common import (
    WorkflowError,
    aws_for_step,
    count,
    idempotent_call,
    lambda_entry,
    logger,
)

IDEMPOTENCY_KEY = "[uuid, incident_id, plan.action, plan.fingerprint]"
DEFAULT_TTL_SECONDS = 3600  # duplicates arrive within minutes; a later, legitimate retry must not be blocked


class RemediationInProgress(WorkflowError):
    """Another execution is applying this very plan of this incident; wait for it, then join it."""


def _apply(request: dict[str, Any]) -> dict[str, Any]:
    # imported on the first call: esm_medic.workflow and its logic cost ~90-250 ms at import (bench_coldstart)
    from esm_medic.workflow import remediate_step

    return remediate_step(aws_for_step(request, "remediate"), request)


@lambda_entry("remediate", schema="remediate")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # the idempotency package imports boto3 (~170 ms); only this call needs it
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

    ttl = int(os.environ.get("ESM_MEDIC_REMEDIATE_IDEMPOTENCY_TTL_SECONDS") or DEFAULT_TTL_SECONDS)
    try:
        result = idempotent_call(
            "remediate", _apply, event, key_jmespath=IDEMPOTENCY_KEY, context=context, ttl_seconds=ttl
        )
    except IdempotencyAlreadyInProgressError as exc:
        raise RemediationInProgress(
            f"another execution is applying this plan of incident {event['incident_id']}"
        ) from exc
    step = str((event.get("diagnosis") or {}).get("step") or "unknown")
    mine = str(event.get("execution") or "")
    owner = str(result.get("execution") or "")
    if mine and owner and owner != mine:
        logger.info("remediation of this incident was done by execution %s: joining it", owner)
        count("RemediationJoined", step=step)
        return {**result, "joined": True, "joined_execution": owner, "applied": False, "changed": False}
    if result.get("changed"):
        for fix in result.get("fixes") or [{"fix": result.get("action")}]:  # one per applied fix of the plan
            count("FixesApplied", step=step, action=str(fix.get("fix")))
    else:
        count("FixNoop", step=step, action=str(result.get("action")))
    if result.get("status") == "budget-exceeded":
        count("BudgetExhausted")  # alarmed: service dimension only
    return result
