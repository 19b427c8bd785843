"""Remediate task: apply the plan through the engine (lock, policy, budget, audit, restart polling).

Idempotent twice over: Powertools idempotency on the IDEMPOTENCY table keyed by uuid + incident + fix + plan
fingerprint (a retried or duplicated execution gets the stored result, no second change), and the engine re-plans
from the live state (only missing changes are made). Raises ``NotApplied`` when the engine declines (the state
machine opens a ticket), ``RemediationFailed`` / ``Throttled`` when applying failed.
"""

from __future__ import annotations

import os
from typing import Any

from esm_medic.handlers._common import count, get_aws, idempotent_call, lambda_entry

IDEMPOTENCY_KEY = "[uuid, incident_id, plan.action, plan.fingerprint]"
DEFAULT_TTL_SECONDS = 3600  # duplicates arrive within minutes; a later, legitimate retry must not be blocked


def _apply(request: dict[str, Any]) -> dict[str, Any]:
    from esm_medic.workflow import remediate_step

    return remediate_step(get_aws(), request)


@lambda_entry("remediate", schema="remediate")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    ttl = int(os.environ.get("ESM_MEDIC_REMEDIATE_IDEMPOTENCY_TTL_SECONDS") or DEFAULT_TTL_SECONDS)
    result = idempotent_call("remediate", _apply, event, key_jmespath=IDEMPOTENCY_KEY, context=context, ttl_seconds=ttl)
    step = str((event.get("diagnosis") or {}).get("step") or "unknown")
    if result.get("changed"):
        count("fixed", step=step, action=str(result.get("action")))
    else:
        count("fix_noop", step=step, action=str(result.get("action")))
    return result
