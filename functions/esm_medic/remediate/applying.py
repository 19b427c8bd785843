"""Applying a fix: lock, re-plan from the live state, decide, spend the budget, audit, apply, restart; finish or undo
a change an earlier run left half-applied; clean up after a failure. Entry point :func:`apply_fix`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aws_lambda_powertools import Logger

from esm_medic.aws import Aws
from esm_medic.config import Settings
from esm_medic.remediate.audit import AuditError, AuditLog, new_action_id
from esm_medic.remediate.base import (
    INCIDENT_ID_RE,
    ActionContext,
    ActionFailed,
    ActionRecord,
    BudgetExceeded,
    Plan,
    RemediationError,
    fingerprint,
)
from esm_medic.remediate.budget import Budget
from esm_medic.remediate.lock import EsmLock
from esm_medic.remediate.prepare import (
    DEFAULT_ACTOR,
    FixRequest,
    _account,
    _base_result,
    _decide,
    _esm_problems,
    _prepare,
    _Prepared,
    _settings,
    _sightings,
    _ticket,
    default_incident_id,
    request_from,
)
from esm_medic.remediate.restart import restart_esm
from esm_medic.tables import describe_error

logger = Logger(service="esm-medic", child=True)


def apply_fix(
    aws: Aws,
    diagnosis: Any = None,
    *,
    action: str | None = None,
    params: Mapping[str, Any] | None = None,
    uuid: str | None = None,
    incident_id: str | None = None,
    settings: Settings | None = None,
    approved: bool = False,
    approver: str | None = None,
    actor: str | None = None,
    mode_override: str | None = None,
    restart: bool = True,
    esm: Mapping[str, Any] | None = None,
    sightings_count: int | None = None,
    sleep: Callable[[float], None] | None = None,
    planned_action_id: str | None = None,
    approved_plan: Mapping[str, Any] | None = None,
    lock_owner: str | None = None,
) -> dict[str, Any]:
    """Apply a fix under the lock, the policy and the budget.

    The apply always re-plans from the live state. ``approved_plan`` (a ``plan`` dict from :func:`plan_fix`) or
    ``planned_action_id`` (a ``planned`` row written by ``plan_fix(record=True)``, whose plan and incident id are
    used) binds an approval to that plan: when the live plan would make a call the approved one did not, the
    answer is ``needs-approval`` (reason ``plan-changed``) and nothing changes.

    ``status`` is one of:

    - ``applied``: changed (``resumed`` names the half-applied action it completed);
    - ``noop``: nothing to change; ``healthy``: the diagnosis found nothing to fix;
    - ``shadow``: plan recorded only; ``needs-approval``: decision approve and not ``approved``;
    - ``ticket`` / ``notify`` / ``off``: the decision; nothing changed;
    - ``refused``: the plan refused (``error`` says why);
    - ``half-applied``: an interrupted change exists and the decision does not allow finishing it now;
    - ``rolled-back``: an interrupted change was undone because its plan is now refused;
    - ``locked``, ``budget-exceeded``, ``invalid``;
    - ``failed``: nothing left half-done (what this attempt created was removed; ``missing_permission`` /
      ``throttled`` / ``cleanup`` say more).

    Other keys: ``action_id``, ``uuid``, ``incident_id``, ``action``, ``params``, ``plan``, ``decision``,
    ``before``, ``after``, ``created``, ``restart`` (restart_esm's dict or None), ``error``.
    """
    settings = _settings(settings)
    actor = approver or actor or settings.actor or DEFAULT_ACTOR
    req = request_from(diagnosis, action=action, params=params, uuid=uuid, incident_id=incident_id)
    if not req.action:
        return _base_result(req, "healthy", reason="the diagnosis found nothing to fix")
    if req.action == "ticket":
        return _ticket(aws, req, settings, esm, mode_override)
    if not req.uuid:
        return _base_result(req, "invalid", error="apply needs the ESM uuid (locks and audit are per ESM)")
    if req.incident_id and not INCIDENT_ID_RE.match(req.incident_id):
        return _base_result(req, "invalid", error=f"bad incident id {req.incident_id!r}")
    prep = _prepare(aws, req, settings, esm)
    if isinstance(prep, dict):
        return prep
    audit = AuditLog(aws, settings.audit_table)
    if planned_action_id:
        try:
            rows = audit.by_action(planned_action_id)
        except AuditError as exc:
            return _base_result(req, "failed", error=str(exc))
        planned = next((r for r in rows if r.status == "planned"), None)
        if planned is None or planned.uuid != req.uuid or planned.action != req.action:
            return _base_result(
                req, "invalid", error=f"{planned_action_id} is not a planned {req.action} of {req.uuid}"
            )
        if len(rows) > 1:
            return _base_result(req, "invalid", error=f"{planned_action_id} was already used ({rows[-1].status})")
        approved_plan = approved_plan or planned.plan
        req.incident_id = req.incident_id or planned.incident_id
    lock = EsmLock(
        aws,
        req.uuid,
        table=settings.state_table,
        ttl_seconds=settings.lock_ttl_seconds,
        purpose=f"apply {req.action}",
        owner=lock_owner,
    )
    try:
        if not lock.acquire():
            holder = lock.holder() or {}
            return _base_result(
                req,
                "locked",
                error=f"another esm-medic run ({holder.get('owner', '?')}) is working on this ESM",
                lock_holder=str(holder.get("owner") or ""),
            )
    except Exception as exc:
        return _base_result(
            req, "failed", error=f"cannot take the ESM lock: {describe_error(exc, settings.state_table)}"
        )
    try:
        with prep.confined(aws):
            return _apply_locked(
                aws,
                prep,
                audit,
                actor,
                approved,
                mode_override,
                restart,
                sightings_count,
                sleep,
                planned_action_id,
                approved_plan,
            )
    finally:
        lock.release()


def _apply_locked(
    aws: Aws,
    prep: _Prepared,
    audit: AuditLog,
    actor: str,
    approved: bool,
    mode_override: str | None,
    restart: bool,
    sightings_count: int | None,
    sleep: Callable[[float], None] | None,
    planned_action_id: str | None = None,
    approved_plan: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    req, settings = prep.req, prep.settings
    fp = fingerprint(req.action, req.params)
    try:
        found = audit.in_flight(req.uuid, req.action, fp)
    except AuditError as exc:
        return _base_result(req, "failed", error=f"no change without the audit log: {exc}")
    resumed = found[0] if found else None
    action_id = resumed.action_id if resumed else (planned_action_id or new_action_id())
    if resumed is not None:
        req.incident_id = resumed.incident_id
    req.incident_id = req.incident_id or default_incident_id(req.uuid)
    seen = sightings_count if sightings_count is not None else _sightings(aws, settings, req, increment=True)
    ctx = ActionContext(aws, req.incident_id, req.uuid, actor, action_id, settings, sleep, scope=prep.scope)
    try:
        act = prep.cls(req.params, ctx)
        plan = act.plan()
    except RemediationError as exc:
        return _base_result(req, "failed", error=exc.message, details=exc.to_dict(), action_id=action_id)
    plan.safety = prep.safety
    problems = _esm_problems(prep, act)
    if problems and not plan.refused:
        plan.refused = "; ".join(problems)
    account = _account(aws, prep.esm)
    decision = _decide(aws, prep, plan, mode_override=mode_override, seen=seen, account=account)
    budget, spent = Budget(aws, settings), [*plan.scopes, ("account", account)]
    ddict = decision.to_dict()
    if approved and decision.outcome == "approve":
        ddict["approved_by"] = actor
    base = {"fingerprint": fp, "plan": plan.to_dict(), "decision": ddict, "action_id": action_id}

    def record(status: str, **kw: Any) -> ActionRecord:
        rec = ActionRecord(
            action_id=action_id,
            uuid=req.uuid,
            incident_id=req.incident_id,
            actor=actor,
            action=req.action,
            status=status,
            params=req.params,
            fingerprint=fp,
            decision=ddict,
            reason=req.reason or plan.summary,
            account=account,
            **kw,
        )
        return audit.append(rec)

    # ---- an interrupted earlier attempt
    if resumed is not None:
        if plan.refused:
            return _undo_partial(act, plan, resumed, record, req, base)
        if not decision.allows(approved):
            return _base_result(
                req,
                "half-applied",
                error=f"action {action_id} was interrupted half-way; {decision.outcome}: {'; '.join(decision.reasons)}",
                **base,
            )
    else:
        if plan.refused:
            logger.warning("plan refused", extra={"uuid": req.uuid, "action": req.action, "reason": plan.refused})
            return _base_result(req, "refused", error=plan.refused, **base)
        if plan.noop:
            return _base_result(req, "noop", **{**base, "action_id": None})
        if decision.outcome == "shadow":
            try:
                record("shadow", plan=plan.to_dict(), before=plan.before, details={"step": req.step})
            except AuditError as exc:
                return _base_result(req, "failed", error=str(exc), **base)
            return _base_result(req, "shadow", **base)
        if decision.outcome == "approve" and not approved:
            return _base_result(req, "needs-approval", **{**base, "action_id": planned_action_id})
        if approved_plan is not None:
            extra = _unapproved_calls(plan, approved_plan)
            if extra:
                ddict.update(outcome="approve", may_change=True)
                ddict["codes"] = [*ddict["codes"], "plan-changed"]
                ddict["reasons"] = [*ddict["reasons"], "the plan changed since it was approved: " + "; ".join(extra)]
                return _base_result(
                    req,
                    "needs-approval",
                    error="the live plan makes calls the approved plan did not",
                    **{**base, "action_id": planned_action_id},
                )
        if not decision.allows(approved):
            return _base_result(req, decision.outcome, error=_why(ddict), **{**base, "action_id": None})
        try:
            budget.consume(spent)
        except BudgetExceeded as exc:
            ddict.update(outcome="ticket", reasons=[*ddict["reasons"], exc.message])
            ddict["codes"] = [*ddict["codes"], "budget"]
            return _base_result(req, "budget-exceeded", error=exc.message, **{**base, "action_id": None})
        except Exception as exc:
            why = describe_error(exc, settings.state_table)
            return _base_result(req, "failed", error=f"cannot use the budget counters: {why}", **base)
        try:
            record("started", plan=plan.to_dict(), before=plan.before, details={"step": req.step})
        except AuditError as exc:
            return _base_result(req, "failed", error=f"no change without the audit log: {exc}", **base)

    before = resumed.before if resumed is not None and resumed.before else plan.before
    try:
        result = act.apply(plan)
    except Exception as exc:
        if resumed is None and not act.changed_anything:
            _refund(budget, spent, req)  # nothing changed: the attempt does not count against the budget
        return _fail(act, exc, record, req, base, before)
    if resumed is None and not result.changed:
        _refund(budget, spent, req)
    details = {"step": req.step, "notes": result.notes}
    if resumed is not None:
        details["resumed"] = True
    try:
        record("applied", before=before, after=result.after, created=result.created, details=details)
    except AuditError as exc:
        return _base_result(
            req,
            "failed",
            error=f"the change was made but the audit write failed ({exc}); the next apply completes the record",
            created=result.created,
            **base,
        )
    restart_info = None
    if restart and prep.cls.restart_polling and (result.changed or resumed is not None):
        restart_info = restart_esm(aws, req.uuid, settings=settings, sleep=sleep)
        try:
            record("restarted", details=restart_info)
        except AuditError:
            restart_info["audit"] = "restart not recorded (audit write failed)"
    return _base_result(
        req,
        "applied",
        before=before,
        after=result.after,
        created=result.created,
        changed=result.changed,
        restart=restart_info,
        resumed=action_id if resumed is not None else None,
        notes=result.notes,
        **base,
    )


def _why(decision: Mapping[str, Any]) -> str:
    """The reasons of a decision, for the ``error`` of a result that changed nothing because of it."""
    reasons = [str(r) for r in decision.get("reasons") or [] if str(r)]
    return "; ".join(reasons) or f"decision {decision.get('outcome')}"


def _refund(budget: Budget, scopes: list[tuple[str, str]], req: FixRequest) -> None:
    try:
        budget.release(scopes)
    except Exception as exc:  # the counter stays one too high until its window ends: say so, never fail the run
        logger.warning("budget refund failed", extra={"uuid": req.uuid, "action": req.action, "error": str(exc)})


def _call_signature(call: Mapping[str, Any]) -> str:
    import json

    params = {k: v for k, v in (call.get("params") or {}).items() if k not in ("ClientToken", "DryRun")}
    return f"{call.get('api')}({json.dumps(params, sort_keys=True, default=str)})"


def _unapproved_calls(plan: Plan, approved: Mapping[str, Any]) -> list[str]:
    """Mutating calls of the live plan that the approved plan did not contain (a subset is fine: something was
    already done in between)."""
    ok = {_call_signature(c) for c in approved.get("calls") or [] if c.get("mutating")}
    return [_call_signature(c.to_dict())[:200] for c in plan.mutating_calls if _call_signature(c.to_dict()) not in ok]


def _fail(
    act: Any,
    exc: BaseException,
    record: Callable[..., ActionRecord],
    req: FixRequest,
    base: dict[str, Any],
    before: dict[str, Any],
) -> dict[str, Any]:
    """Apply failed: undo what this attempt created, audit 'failed' with the reason."""
    err = _as_failure(act, exc)
    logger.error(
        "apply failed",
        extra={
            "uuid": req.uuid,
            "action": req.action,
            "error": err.message,
            "throttled": getattr(err, "throttled", False),
        },
    )
    created = {k: list(v) for k, v in act.created.items() if v}
    cleanup: dict[str, Any] = {}
    if created:
        partial = ActionRecord(
            action_id=base["action_id"],
            uuid=req.uuid,
            incident_id=req.incident_id,
            actor="",
            action=req.action,
            status="failed",
            params=req.params,
            before=before,
            created=created,
        )
        try:
            cleanup = act.rollback(partial).to_dict()
            cleanup["ok"] = True
        except Exception as cexc:  # cleanup failed: keep the ids in the record so `rollback ACTION_ID` can finish
            logger.error("cleanup after a failed apply failed", extra={"uuid": req.uuid, "error": str(cexc)})
            cleanup = {"ok": False, "error": str(cexc)}
    details: dict[str, Any] = {"error": err.to_dict(), "cleanup": cleanup}
    try:
        record(
            "failed",
            before=before,
            created=created if not cleanup.get("ok", True) else {},
            error=err.message,
            details={**details, "attempted": created},
        )
    except AuditError:
        details["audit"] = "failure not recorded (audit write failed)"
    return _base_result(
        req,
        "failed",
        error=err.message,
        missing_permission=getattr(err, "missing_permission", None),
        throttled=getattr(err, "throttled", False),
        cleanup=cleanup,
        created={},
        **base,
    )


def _as_failure(act: Any, exc: BaseException) -> RemediationError:
    if isinstance(exc, RemediationError):
        return exc
    if getattr(exc, "response", None) is None:
        return ActionFailed(f"{type(exc).__name__}: {exc}")
    from esm_medic.remediate.base import failure_from

    op = str(getattr(exc, "operation_name", "") or "")
    service = next((p.split(":", 1)[0] for p in act.permissions if p.endswith(f":{op}")), "unknown")
    snake = "".join(f"_{ch.lower()}" if ch.isupper() else ch for ch in op).lstrip("_")
    return failure_from(exc, service, snake or "call")


def _undo_partial(
    act: Any,
    plan: Plan,
    resumed: ActionRecord,
    record: Callable[..., ActionRecord],
    req: FixRequest,
    base: dict[str, Any],
) -> dict[str, Any]:
    partial = ActionRecord.from_dict({**resumed.to_dict(), "created": plan.adopted, "status": "started"})
    partial.before = resumed.before
    try:
        rb = act.rollback(partial)
    except Exception as exc:
        return _base_result(req, "failed", error=f"cannot undo the interrupted change: {exc}", **base)
    record(
        "rolled-back",
        before=resumed.before,
        created=plan.adopted,
        details={"rollback": rb.to_dict(), "why": f"the interrupted change can no longer be completed: {plan.refused}"},
    )
    return _base_result(req, "rolled-back", error=plan.refused, rollback=rb.to_dict(), **base)
