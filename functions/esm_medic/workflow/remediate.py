"""The ``remediate`` step: apply the whole plan through the engine, fix by fix, then restart polling once.

A plan from ``decide`` (``plan.items``) is applied with :func:`esm_medic.remediate.plan.apply_plan`: after each fix
a fresh diagnosis of the live ESM; a fix that moved the ESM is kept, one that changed nothing is rolled back at once,
and what remains goes to the ticket. An approval covers exactly the items it was shown (their ``planned`` audit
rows); an item a re-diagnosis adds is applied only when the policy needs no human for it."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from esm_medic.config import Settings
from esm_medic.models import Diagnosis, PlanItem
from esm_medic.remediate import engine
from esm_medic.remediate.audit import AuditError, AuditLog
from esm_medic.remediate.plan import apply_plan
from esm_medic.workflow.common import LockConflict, NotApplied, RemediationFailed, logger, obj
from esm_medic.workflow.decide import fix_request
from esm_medic.workflow.payloads import RemediateResult

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws


#: lock owners written by workflow executions (``execution:<name>``); other runs (the CLI) write ``run-<id>``
EXECUTION_OWNER = "execution:"
HELD_BY_EXECUTION = re.compile(r"held by execution ([A-Za-z0-9_-]+)")
#: no new fix of a plan is started after this long (the function's timeout leaves room for the last fix, its
#: re-check or rollback, and the restart); the fixes left go to the ticket
PLAN_TIME_BUDGET_SECONDS = 540.0


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
    if isinstance(plan.get("items"), list) and plan["items"]:
        return _apply_whole_plan(aws, payload, settings, started)
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
        lock_owner=_owner(payload),
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
    applied = status == "applied"
    action_id = str(result.get("action_id") or "") or None
    return RemediateResult(
        action=result.get("action"),
        action_id=action_id,
        applied=applied,
        changed=bool(result.get("changed")),
        noop=status == "noop",
        restarted=bool((restart_info or {}).get("restarted")),
        before=result.get("before") or {},
        after=result.get("after") or {},
        created=result.get("created") or {},
        status=status,
        execution=str(payload.get("execution") or ""),
        action_ids=[action_id] if applied and action_id else [],
        fixes=[{"fix": result.get("action"), "action_id": action_id}] if applied and action_id else [],
        elapsed_ms=round((time.perf_counter() - started) * 1000, 1),
    ).to_dict()


def _owner(payload: Mapping[str, Any]) -> str | None:
    # the lock names this execution, so a run that meets it can say whom it joined
    return f"{EXECUTION_OWNER}{payload['execution']}" if payload.get("execution") else None


def _bindings(aws: Aws, settings: Settings, items: list[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Item fingerprint -> the engine keywords binding the approval to what the approvers saw: the item's
    ``planned`` row, or (on a re-run, when that row was used already) the plan recorded in it."""
    out: dict[str, dict[str, Any]] = {}
    audit = AuditLog(aws, settings.audit_table)
    for item in items:
        action_id = str(item.get("action_id") or "")
        if not action_id:
            continue
        rows = audit.by_action(action_id)
        planned = next((r for r in rows if r.status == "planned"), None)
        if planned is None:
            continue
        fp = str(item.get("fingerprint") or "")
        out[fp] = {"planned_action_id": action_id} if len(rows) == 1 else {"approved_plan": planned.plan}
    return out


def _earlier(aws: Aws, settings: Settings, uuid: str, incident_id: str, noop: list[Mapping[str, Any]]) -> list[dict]:
    """Fixes an earlier attempt of this execution applied (a retried task finds them in place: ``noop``), from the
    incident's audit rows, so that they are verified and rolled back with the rest."""
    if not noop:
        return []
    try:
        rows = AuditLog(aws, settings.audit_table).rows_for(uuid)
    except AuditError as exc:
        logger.warning("ESM %s: earlier fixes of incident %s not found: %s", uuid, incident_id, exc)
        return []
    undone = {r.action_id for r in rows if r.status in ("rolled-back", "failed")}
    found: list[dict[str, Any]] = []
    for n in noop:
        row = next(
            (
                r
                for r in reversed(rows)
                if r.status == "applied"
                and r.incident_id == incident_id
                and r.action == n.get("fix")
                and r.action_id not in undone
            ),
            None,
        )
        if row is not None and all(f["action_id"] != row.action_id for f in found):
            found.append(
                {
                    "fix": row.action,
                    "action_id": row.action_id,
                    "hypotheses": list(n.get("hypotheses") or []),
                    "status": "applied",
                    "before": row.before,
                    "after": row.after,
                    "created": row.created,
                    "earlier": True,
                }
            )
    return found


def _record_restart(aws: Aws, settings: Settings, action_id: str, info: Mapping[str, Any]) -> None:
    """The 'restarted' audit row, on the newest applied action (the engine writes it when it restarts itself)."""
    audit = AuditLog(aws, settings.audit_table)
    try:
        applied = next((r for r in reversed(audit.by_action(action_id)) if r.status == "applied"), None)
        if applied is not None:
            audit.append(applied.followed_by("restarted", applied.actor, details=dict(info)))
    except AuditError as exc:
        logger.warning("restart of action %s not recorded: %s", action_id, exc)


def _apply_whole_plan(aws: Aws, payload: Mapping[str, Any], settings: Settings, started: float) -> dict[str, Any]:
    from esm_medic.diagnose import diagnose  # the diagnose engine is only needed to re-check between fixes

    uuid = str(payload["uuid"])
    incident_id = str(payload["incident_id"])
    plan = obj(payload, "plan")
    items = [i for i in plan.get("items") or [] if isinstance(i, Mapping)]
    diagnosis = Diagnosis.from_dict({**obj(payload, "diagnosis"), "uuid": uuid})
    if not diagnosis.plan:  # a diagnosis that lost its plan on the way: the decided items are the plan
        diagnosis.plan = [
            PlanItem(
                order=int(i.get("order") or n),
                fix=str(i.get("action") or ""),
                fix_params=dict(i.get("params") or {}),
                hypotheses=[str(h) for h in i.get("hypotheses") or []],
                safety=str(i.get("safety") or "approve"),
                summary=str(i.get("summary") or ""),
            )
            for n, i in enumerate(items, 1)
        ]
    approval = obj(payload, "approval")
    approved = approval.get("approved") is True
    approver = str(approval.get("approver") or "") or None
    # only the items the approvers saw are approved; anything else is applied as if nobody had approved it
    bindings = _bindings(aws, settings, items) if approved else None
    out = apply_plan(
        aws,
        diagnosis,
        rediagnose=lambda: diagnose(aws, uuid),
        settings=settings,
        approved=approved,
        approver=approver,
        restart=False,
        incident_id=incident_id,
        lock_owner=_owner(payload),
        bindings=bindings,
        deadline=started + PLAN_TIME_BUDGET_SECONDS,
    )
    applied = _earlier(aws, settings, uuid, incident_id, out["noop"]) + list(out["applied"])
    not_applied = list(out["not_applied"])
    if not applied and not out["noop"]:
        locked = next((r for r in not_applied if r["status"] == "locked"), None)
        failed = next((r for r in not_applied if r["status"] == "failed"), None)
        if locked is not None:
            holder = str(locked.get("lock_holder") or "")
            if holder.startswith(EXECUTION_OWNER):
                raise LockConflict(f"the ESM lock is held by execution {holder[len(EXECUTION_OWNER) :]}")
            raise LockConflict(f"the ESM lock is held by another run: {locked.get('error') or ''}".strip())
        if failed is not None:
            raise RemediationFailed(
                f"applying {failed['fix']} failed: {failed.get('error')}",
                throttled=bool(failed.get("throttled")),
                action_id=str(failed.get("action_id") or "") or None,
            )
        if out["rolled_back"]:
            undone = ", ".join(f"{r['fix']} ({r.get('action_id')})" for r in out["rolled_back"])
            raise NotApplied(f"the fixes changed nothing and were rolled back: {undone}. {out['ticket_reason']}")
        why = "; ".join(f"{r['fix']}: {r['status']}: {r.get('reason') or ''}" for r in not_applied)
        raise NotApplied(f"the engine did not apply the plan: {why or out['status']}")
    restart_info: dict[str, Any] = engine.restart_esm(aws, uuid, settings=settings)
    newest = next((str(r["action_id"]) for r in reversed(applied) if r.get("action_id")), None)
    if newest and restart_info.get("restarted"):
        _record_restart(aws, settings, newest, restart_info)
    fixes = [
        {k: r.get(k) for k in ("fix", "action_id", "hypotheses", "created", "earlier") if r.get(k) is not None}
        for r in applied
    ]
    last = applied[-1] if applied else {}
    return RemediateResult(
        action=str(last.get("fix") or plan.get("action") or ""),
        action_id=newest,
        applied=bool(applied),
        changed=bool(applied),
        noop=not applied,
        restarted=bool(restart_info.get("restarted")),
        before=dict(last.get("before") or {}),
        after=dict(last.get("after") or {}),
        created=dict(last.get("created") or {}),
        status="applied" if applied else "noop",
        execution=str(payload.get("execution") or ""),
        action_ids=[str(r["action_id"]) for r in applied if r.get("action_id")],
        fixes=fixes,
        rolled_back=[{k: r.get(k) for k in ("fix", "action_id", "rollback")} for r in out["rolled_back"]],
        remaining=[dict(r) for r in out["remaining"]],
        plan_status=str(out["status"]),
        ticket_reason=str(out["ticket_reason"] or ""),
        elapsed_ms=round((time.perf_counter() - started) * 1000, 1),
    ).to_dict()
