"""The ``remediate`` step: apply the plan through the engine, restart polling."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from esm_medic.config import Settings
from esm_medic.remediate import engine
from esm_medic.workflow.common import LockConflict, NotApplied, RemediationFailed, obj
from esm_medic.workflow.decide import fix_request

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws


#: lock owners written by workflow executions (``execution:<name>``); other runs (the CLI) write ``run-<id>``
EXECUTION_OWNER = "execution:"
HELD_BY_EXECUTION = re.compile(r"held by execution ([A-Za-z0-9_-]+)")


def remediate_step(aws: Aws, payload: Mapping[str, Any], *, settings: Settings | None = None) -> dict[str, Any]:
    """Remediate task: apply the fix under the engine's lock / policy / budget / audit, then restart polling.

    The engine re-plans from the live state, so a repeated call makes no second change; the handler also wraps
    this in Powertools idempotency (uuid + incident + plan fingerprint). An approved plan is applied as approved
    by the approver. Raises :class:`NotApplied` when the engine declined, :class:`RemediationFailed` when applying
    failed (``throttled`` set when AWS kept throttling).
    """

    started = time.perf_counter()
    settings = settings or Settings.from_env()
    uuid = str(payload["uuid"])
    plan = obj(payload, "plan")
    classification = obj(payload, "classification")
    diagnosis = obj(payload, "diagnosis")
    approval = obj(payload, "approval")
    request = fix_request(uuid, classification, diagnosis)
    if plan.get("action"):
        request["root_cause"] = {**request["root_cause"], "fix": plan["action"], "fix_params": plan.get("params") or {}}
    approved = approval.get("approved") is True
    approver = str(approval.get("approver") or "") or None
    decision = obj(payload, "decision")
    bound: dict[str, Any] = {}
    if approved:  # the apply may only make the calls of the plan the human saw
        if decision.get("planned_action_id"):
            bound["planned_action_id"] = str(decision["planned_action_id"])
        elif plan:
            bound["approved_plan"] = dict(plan)
    result = engine.apply_fix(
        aws,
        request,
        incident_id=str(payload["incident_id"]),
        settings=settings,
        approved=approved,
        approver=approver if approved else None,
        restart=True,
        # the lock names this execution, so a run that meets it can say whom it joined
        lock_owner=f"{EXECUTION_OWNER}{payload['execution']}" if payload.get("execution") else None,
        **bound,
    )
    status = str(result.get("status") or "failed")
    restart_info = obj(result, "restart") or None
    if status == "noop":
        restart_info = engine.restart_esm(aws, uuid, settings=settings)
    elif status == "failed":
        raise RemediationFailed(
            f"applying {result.get('action')} failed: {result.get('error')}",
            throttled=bool(result.get("throttled")),
            action_id=str(result.get("action_id") or "") or None,
        )
    elif status == "locked":
        holder = str(result.get("lock_holder") or "")
        if holder.startswith(EXECUTION_OWNER):
            raise LockConflict(f"the ESM lock is held by execution {holder[len(EXECUTION_OWNER) :]}")
        raise LockConflict(f"the ESM lock is held by another run: {result.get('error') or ''}".strip())
    elif status not in ("applied",):
        raise NotApplied(f"the engine did not apply {result.get('action')}: {status}: {result.get('error') or ''}")
    return {
        "action": result.get("action"),
        "action_id": result.get("action_id"),
        "applied": status == "applied",
        "changed": bool(result.get("changed")),
        "noop": status == "noop",
        "restarted": bool((restart_info or {}).get("restarted")),
        "before": result.get("before") or {},
        "after": result.get("after") or {},
        "created": result.get("created") or {},
        "status": status,
        "execution": str(payload.get("execution") or ""),
        "joined": False,
        "joined_execution": None,
        "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
    }
