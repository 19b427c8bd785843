"""Orchestration of a fix: plan, decide, lock, budget, audit, apply, restart, verify, rollback.

Public API (every function returns a JSON-able dict; none raises for expected failures, ``status`` says what
happened and ``error`` why):

- :func:`plan_fix` — read-only: the plan (exact API calls, human diff, cost, dry-run results) and the decision.
- :func:`apply_fix` — lock the ESM, re-plan from the live state, decide, consume the budget, audit ``started``,
  apply, audit ``applied`` (before / after / created ids), restart the ESM's polling, unlock. Finishes or rolls
  back a change an earlier run left half-applied.
- :func:`verify_fix` — re-check what the action made and read the ESM's status; count failed verifications.
- :func:`rollback` — undo one action by its id, from its audit rows.
- :func:`restart_esm` — disable, wait for Disabled, enable (skipped when the owner left it disabled).
- :func:`history` — audit rows, newest first.

``diagnosis`` may be a :class:`esm_medic.models.Diagnosis` or its ``to_dict()``; without one, pass ``action`` and
``params`` (and ``uuid``) directly.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from esm_medic.aws import Aws, error_code, error_message, is_not_found
from esm_medic.config import Settings
from esm_medic.remediate import registry
from esm_medic.remediate.audit import AuditError, AuditLog, in_flight, new_action_id
from esm_medic.remediate.base import (
    INCIDENT_ID_RE,
    ActionContext,
    ActionFailed,
    ActionRecord,
    BudgetExceeded,
    InvalidParams,
    Plan,
    RemediationError,
    UnknownAction,
    fingerprint,
    stricter,
)
from esm_medic.remediate.budget import Budget, failed_verifications, sightings
from esm_medic.remediate.lock import EsmLock

TRANSITIONAL_STATES = frozenset({"Creating", "Enabling", "Updating", "Disabling", "Deleting"})
DEFAULT_ACTOR = "esm-medic"


# ---------------------------------------------------------------------------------------------- request
@dataclass
class FixRequest:
    uuid: str
    action: str
    params: dict[str, Any]
    incident_id: str = ""
    catalogue_safety: str | None = None
    transient: bool = False
    entry: str = ""
    root_cause: str = ""
    step: str = ""
    reason: str = ""
    esm: dict[str, Any] = field(default_factory=dict)
    healthy: bool = False


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def request_from(
    diagnosis: Any = None,
    *,
    action: str | None = None,
    params: Mapping[str, Any] | None = None,
    uuid: str | None = None,
    incident_id: str | None = None,
) -> FixRequest:
    """Normalize a diagnosis (object or dict) and/or an explicit action + params into one request."""
    req = FixRequest(uuid=str(uuid or ""), action=str(action or ""), params=dict(params or {}))
    if diagnosis is not None:
        rc = _get(diagnosis, "root_cause") or {}
        cls_ = _get(diagnosis, "classification") or {}
        req.uuid = req.uuid or str(_get(diagnosis, "uuid") or "")
        req.root_cause = str(_get(rc, "id") or "")
        req.healthy = str(_get(diagnosis, "step") or "") == "none" or req.root_cause == "healthy"
        if not action:
            req.action = str(_get(rc, "fix") or ("" if req.healthy else "ticket"))
            req.params = dict(_get(rc, "fix_params") or {})
        req.reason = str(_get(rc, "summary") or "")
        req.entry = str(_get(cls_, "entry") or "")
        req.transient = bool(_get(cls_, "transient") or False)
        req.step = str(_get(diagnosis, "step") or _get(cls_, "step") or "")
        esm = _get(diagnosis, "esm") or {}
        if isinstance(esm, Mapping) and (esm.get("EventSourceMappingArn") or esm.get("FunctionArn")):
            req.esm = dict(esm)
        if req.entry and req.root_cause:
            req.catalogue_safety = _catalogue_safety(req.entry, req.root_cause, req.action)
    req.incident_id = str(incident_id or "")
    if not req.action and not req.healthy:
        req.action = "ticket"
    return req


def _catalogue_safety(entry_id: str, root_cause: str, action: str) -> str | None:
    try:
        from esm_medic.catalogue import get_catalogue

        entry = get_catalogue().get(entry_id)
    except Exception:
        return None
    if entry is None:
        return None
    fix = entry.fix_for(root_cause)
    if fix is None or fix.action != action:
        return None
    return fix.safety


def default_incident_id(uuid: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"inc-{stamp}-{(uuid or 'manual')[:8]}"


def _settings(settings: Settings | None) -> Settings:
    return settings or Settings.from_env()


def _get_esm(aws: Aws, uuid: str) -> tuple[dict[str, Any] | None, str]:
    if not uuid:
        return None, "no ESM uuid given"
    try:
        item = aws.call("lambda", "get_event_source_mapping", UUID=uuid)
    except Exception as exc:
        if is_not_found(exc):
            return None, f"ESM {uuid} does not exist"
        return None, f"cannot read ESM {uuid}: {error_code(exc) or type(exc).__name__}: {error_message(exc)}"
    item.pop("ResponseMetadata", None)
    return item, ""


def _account(aws: Aws, esm: Mapping[str, Any] | None) -> str:
    for key in ("EventSourceMappingArn", "FunctionArn", "EventSourceArn"):
        arn = str((esm or {}).get(key) or "")
        parts = arn.split(":")
        if arn.startswith("arn:") and len(parts) > 4 and parts[4]:
            return parts[4]
    try:
        return aws.account_id()
    except Exception:
        return "unknown"


def _base_result(req: FixRequest, status: str, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "status": status,
        "uuid": req.uuid,
        "action": req.action,
        "params": req.params,
        "incident_id": req.incident_id,
        "action_id": None,
        "plan": None,
        "decision": None,
        "error": None,
    }
    out.update(extra)
    return out


# ---------------------------------------------------------------------------------------------- shared steps
@dataclass
class _Prepared:
    req: FixRequest
    cls: type[Any]
    esm: dict[str, Any] | None
    settings: Settings
    safety: str
    resumed: ActionRecord | None = None
    notes: list[str] = field(default_factory=list)


def _prepare(
    aws: Aws, req: FixRequest, settings: Settings, esm: Mapping[str, Any] | None
) -> _Prepared | dict[str, Any]:
    try:
        cls = registry.get(req.action)
        req.params = cls.validate(req.params)
    except (UnknownAction, InvalidParams) as exc:
        return _base_result(req, "invalid", error=exc.message)
    item = dict(esm) if esm else (req.esm or None)
    notes: list[str] = []
    if item is None:
        item, note = _get_esm(aws, req.uuid)
        if note:
            notes.append(note)
    safety = stricter(cls.default_safety, req.catalogue_safety)
    return _Prepared(req=req, cls=cls, esm=item, settings=settings, safety=safety, notes=notes)


def _esm_problems(prep: _Prepared, act: Any) -> list[str]:
    if not prep.esm:
        return []
    from esm_medic.esm import EsmConfig

    try:
        return list(act.check_esm(EsmConfig.from_api(prep.esm)))
    except Exception as exc:  # pragma: no cover - defensive: a malformed ESM item never crashes the plan
        return [f"cannot check the ESM: {exc}"]


def _decide(aws: Aws, prep: _Prepared, plan: Plan | None, *, mode_override: str | None, seen: int, account: str) -> Any:
    from esm_medic import policy

    scopes = [*(plan.scopes if plan else []), ("account", account)]
    return policy.evaluate(
        aws,
        action=prep.req.action,
        safety=prep.safety,
        esm=prep.esm,
        settings=prep.settings,
        uuid=prep.req.uuid,
        scopes=scopes,
        transient=prep.req.transient,
        sightings=seen,
        refused=plan.refused if plan else None,
        missing_permissions=plan.missing_permissions if plan else (),
        requires_approval=plan.requires_approval if plan else False,
        mode_override=mode_override,
    )


def _ticket(aws: Aws, req: FixRequest, settings: Settings, esm: Mapping[str, Any] | None, mode_override: str | None):
    from esm_medic import policy

    item = dict(esm) if esm else (req.esm or _get_esm(aws, req.uuid)[0])
    decision = policy.evaluate(
        aws, action="ticket", safety="manual", esm=item, settings=settings, uuid=req.uuid, mode_override=mode_override
    )
    reason = str(req.params.get("reason") or req.reason or "no automatic fix for this cause")
    status = "off" if decision.outcome == "off" else "ticket"
    return _base_result(req, status, decision=decision.to_dict(), reason=reason)


# ---------------------------------------------------------------------------------------------- plan
def plan_fix(
    aws: Aws,
    diagnosis: Any = None,
    *,
    action: str | None = None,
    params: Mapping[str, Any] | None = None,
    uuid: str | None = None,
    incident_id: str | None = None,
    settings: Settings | None = None,
    mode_override: str | None = None,
    esm: Mapping[str, Any] | None = None,
    sightings_count: int | None = None,
    record: bool = False,
    actor: str | None = None,
) -> dict[str, Any]:
    """Plan a fix without changing anything in the account.

    With ``record=True`` (approval workflows) a ``planned`` audit row is written and its ``action_id`` returned;
    pass it to :func:`apply_fix` as ``planned_action_id`` so that the apply is bound to exactly this plan.

    Returns ``{"status": "planned" | "noop" | "refused" | "ticket" | "off" | "healthy" | "invalid" | "failed", "uuid",
    "action", "params", "incident_id", "fingerprint", "plan": Plan.to_dict(), "decision": Decision.to_dict(),
    "in_flight": <action id of a half-applied attempt or None>, "notes": [...], "error": str | None}``.
    """
    settings = _settings(settings)
    req = request_from(diagnosis, action=action, params=params, uuid=uuid, incident_id=incident_id)
    if not req.action:
        return _base_result(req, "healthy", reason="the diagnosis found nothing to fix")
    if req.action == "ticket":
        return _ticket(aws, req, settings, esm, mode_override)
    prep = _prepare(aws, req, settings, esm)
    if isinstance(prep, dict):
        return prep
    fp = fingerprint(req.action, req.params)
    inflight: ActionRecord | None = None
    try:
        rows = AuditLog(aws, settings.audit_table).rows_for(req.uuid) if req.uuid else []
        found = in_flight(rows, req.action, fp)
        inflight = found[0] if found else None
    except AuditError as exc:
        prep.notes.append(f"audit table not readable ({exc}); half-applied changes cannot be detected")
    if inflight is not None:
        req.incident_id = inflight.incident_id
    req.incident_id = req.incident_id or default_incident_id(req.uuid)
    seen = sightings_count
    if seen is None:
        seen = _sightings(aws, settings, req, increment=False)
    try:
        ctx = ActionContext(aws, req.incident_id, req.uuid, DEFAULT_ACTOR, "", settings)
        act = prep.cls(req.params, ctx)
        plan = act.plan()
    except RemediationError as exc:
        return _base_result(req, "failed", error=exc.message, details=exc.to_dict(), fingerprint=fp)
    plan.safety = prep.safety
    problems = _esm_problems(prep, act)
    if problems and not plan.refused:
        plan.refused = "; ".join(problems)
    decision = _decide(aws, prep, plan, mode_override=mode_override, seen=seen, account=_account(aws, prep.esm))
    status = "refused" if plan.refused else ("noop" if plan.noop and inflight is None else "planned")
    if decision.outcome == "off":
        status = "off"
    action_id = None
    if record and status == "planned" and req.uuid:
        action_id = new_action_id()
        try:
            AuditLog(aws, settings.audit_table).append(
                ActionRecord(
                    action_id=action_id,
                    uuid=req.uuid,
                    incident_id=req.incident_id,
                    actor=actor or settings.actor or DEFAULT_ACTOR,
                    action=req.action,
                    status="planned",
                    params=req.params,
                    fingerprint=fp,
                    decision=decision.to_dict(),
                    before=plan.before,
                    plan=plan.to_dict(),
                    reason=req.reason or plan.summary,
                    details={"step": req.step},
                )
            )
        except AuditError as exc:
            return _base_result(req, "failed", error=f"cannot record the plan: {exc}", fingerprint=fp)
    return _base_result(
        req,
        status,
        fingerprint=fp,
        plan=plan.to_dict(),
        decision=decision.to_dict(),
        in_flight=inflight.action_id if inflight else None,
        notes=prep.notes,
        action_id=action_id,
    )


def _sightings(aws: Aws, settings: Settings, req: FixRequest, *, increment: bool) -> int:
    """Earlier sightings of a transient error (0 when the entry is not transient or the table is unreadable)."""
    if not req.transient or not req.uuid:
        return 0
    counter = sightings(aws, settings, req.uuid, req.entry or req.action)
    try:
        if increment:
            return counter.increment() - 1
        return counter.get()
    except Exception:
        return 0


# ---------------------------------------------------------------------------------------------- apply
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
        aws, req.uuid, table=settings.state_table, ttl_seconds=settings.lock_ttl_seconds, purpose=f"apply {req.action}"
    )
    try:
        if not lock.acquire():
            holder = lock.holder() or {}
            return _base_result(
                req, "locked", error=f"another esm-medic run ({holder.get('owner', '?')}) is working on this ESM"
            )
    except Exception as exc:
        return _base_result(req, "failed", error=f"cannot take the ESM lock: {exc}")
    try:
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
    ctx = ActionContext(aws, req.incident_id, req.uuid, actor, action_id, settings, sleep)
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
            return _base_result(req, decision.outcome, **{**base, "action_id": None})
        try:
            Budget(aws, settings).consume([*plan.scopes, ("account", account)])
        except BudgetExceeded as exc:
            ddict.update(outcome="ticket", reasons=[*ddict["reasons"], exc.message])
            ddict["codes"] = [*ddict["codes"], "budget"]
            return _base_result(req, "budget-exceeded", error=exc.message, **{**base, "action_id": None})
        except Exception as exc:
            return _base_result(req, "failed", error=f"cannot use the budget counters: {exc}", **base)
        try:
            record("started", plan=plan.to_dict(), before=plan.before, details={"step": req.step})
        except AuditError as exc:
            return _base_result(req, "failed", error=f"no change without the audit log: {exc}", **base)

    before = resumed.before if resumed is not None and resumed.before else plan.before
    try:
        result = act.apply(plan)
    except Exception as exc:
        return _fail(act, exc, record, req, base, before)
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


# ---------------------------------------------------------------------------------------------- restart
def restart_esm(
    aws: Aws,
    uuid: str,
    *,
    settings: Settings | None = None,
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Disable the ESM, wait (bounded) until it is Disabled, enable it again. Leaves an ESM its owner disabled
    alone. Returns ``{"uuid", "restarted": bool, "initial_state", "final_state", "states": [...], "reason"}``."""
    settings = _settings(settings)
    wait = sleep or time.sleep
    out: dict[str, Any] = {"uuid": uuid, "restarted": False, "initial_state": "", "final_state": "", "states": []}
    item, note = _get_esm(aws, uuid)
    if item is None:
        out["reason"] = note
        return out
    state = str(item.get("State") or "")
    out["initial_state"] = out["final_state"] = state
    if state in ("Disabled", "Disabling"):
        out["reason"] = "the ESM is disabled by its owner; left disabled"
        return out
    if state in ("Creating", "Deleting"):
        out["reason"] = f"the ESM is {state}; not restarted"
        return out
    deadline = clock() + float(settings.restart_timeout_seconds)

    def update(enabled: bool) -> str:
        while True:
            try:
                aws.call("lambda", "update_event_source_mapping", UUID=uuid, Enabled=enabled)
                return ""
            except Exception as exc:
                if error_code(exc) == "ResourceInUseException" and clock() < deadline:
                    wait(settings.poll_seconds)
                    continue
                return f"{error_code(exc) or type(exc).__name__}: {error_message(exc)}"

    err = update(False)
    if err:
        out["reason"] = f"cannot disable: {err}"
        return out
    while True:
        current, _ = _get_esm(aws, uuid)
        state = str((current or {}).get("State") or "")
        out["states"].append(state)
        if state == "Disabled" or clock() >= deadline:
            break
        wait(settings.poll_seconds)
    timed_out = state != "Disabled"
    err = update(True)
    current, _ = _get_esm(aws, uuid)
    out["final_state"] = str((current or {}).get("State") or "")
    if err:
        out["reason"] = f"disabled but could not enable again: {err} (enable it by hand)"
        return out
    out["restarted"] = not timed_out
    out["reason"] = "did not reach Disabled in time; re-enabled" if timed_out else "disabled and enabled again"
    return out


# ---------------------------------------------------------------------------------------------- verify
def verify_fix(
    aws: Aws,
    action_id: str | ActionRecord,
    *,
    settings: Settings | None = None,
    esm: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Check that an applied action's change is in place and that the ESM recovered.

    Returns ``{"status": "verified" | "verify-failed" | "pending" | "error", "action_id", "uuid", "action",
    "resource_ok", "resource": {...}, "esm": {"State", "StateTransitionReason", "LastProcessingResult"},
    "classification": {"entry", "step", "kind"}, "failed_verifications": int, "fallback_to_ticket": bool,
    "reasons": [...], "error": str | None}``. ``verify-failed`` increments the ESM's failed-verification counter
    (after ``Settings.max_failed_verifications`` the policy answers ticket); ``verified`` resets it; ``pending``
    (ESM still transitioning, disabled, no result yet, or still showing an error within
    ``Settings.verify_grace_seconds`` of the fix) changes nothing.
    """
    settings = _settings(settings)
    audit = AuditLog(aws, settings.audit_table)
    out: dict[str, Any] = {
        "status": "error",
        "action_id": "",
        "uuid": "",
        "action": "",
        "resource_ok": False,
        "resource": {},
        "esm": {},
        "classification": {},
        "failed_verifications": 0,
        "fallback_to_ticket": False,
        "reasons": [],
        "error": None,
    }
    applied: ActionRecord | None
    rows: list[ActionRecord]
    try:
        if isinstance(action_id, ActionRecord):
            applied = action_id
            rows = [action_id]
        else:
            rows = audit.by_action(action_id)
            applied = next((r for r in reversed(rows) if r.status == "applied"), None)
    except AuditError as exc:
        out["error"] = str(exc)
        return out
    out["action_id"] = action_id if isinstance(action_id, str) else action_id.action_id
    if applied is None:
        out["error"] = "no applied record for this action id"
        return out
    if any(r.status == "rolled-back" for r in rows):
        out["error"] = "this action was rolled back"
        return out
    out.update(uuid=applied.uuid, action=applied.action)
    try:
        cls = registry.get(applied.action)
        ctx = ActionContext(aws, applied.incident_id, applied.uuid, applied.actor, applied.action_id, settings)
        vr = cls(applied.params, ctx).verify(applied)
    except RemediationError as exc:
        out["error"] = exc.message
        return out
    out["resource_ok"] = vr.ok
    out["resource"] = vr.to_dict()
    reasons: list[str] = list(vr.problems)
    item = dict(esm) if esm else _get_esm(aws, applied.uuid)[0]
    from esm_medic.classify import classify
    from esm_medic.steps import step_index

    state = str((item or {}).get("State") or "")
    out["esm"] = {k: (item or {}).get(k) for k in ("State", "StateTransitionReason", "LastProcessingResult")}
    c = classify(item or {})
    out["classification"] = {"entry": c.entry, "step": c.step, "kind": c.kind}
    original = str(applied.details.get("step") or cls.step)
    if not vr.ok:
        status = "verify-failed"
    elif item is None:
        status, reasons = "pending", [*reasons, "the ESM cannot be read"]
    elif state in TRANSITIONAL_STATES:
        status, reasons = "pending", [*reasons, f"the ESM is {state}"]
    elif state == "Disabled":
        status, reasons = "pending", [*reasons, "the ESM is disabled: recovery cannot be proven"]
    elif c.healthy:
        status, reasons = "verified", [*reasons, f"the ESM reports {c.entry or 'OK'}"]
    elif c.kind == "empty":
        status, reasons = "pending", [*reasons, "the ESM has no processing result yet"]
    elif step_index(c.step) > step_index(original) >= 0:
        status = "verified"
        reasons.append(f"the ESM now fails later, at step {c.step} ({c.entry}): a different problem")
    else:
        age = time.time() - max((r.epoch for r in rows if r.status in ("applied", "restarted")), default=0.0)
        if age < float(settings.verify_grace_seconds):
            status = "pending"
            reasons.append(
                f"the ESM still fails at step {c.step} ({c.entry or 'unrecognised'}) {age:.0f}s after the fix; "
                f"waiting up to {settings.verify_grace_seconds}s for it to retry"
            )
        else:
            status = "verify-failed"
            reasons.append(f"the ESM still fails at step {c.step} ({c.entry or 'unrecognised'})")
    counter = failed_verifications(aws, settings, applied.uuid)
    try:
        if status == "verify-failed":
            n = counter.increment()
        elif status == "verified":
            counter.reset()
            n = 0
        else:
            n = counter.get()
    except Exception as exc:
        n = 0
        reasons.append(f"failed-verification counter unavailable: {exc}")
    limit = int(settings.max_failed_verifications)
    out["failed_verifications"] = n
    out["fallback_to_ticket"] = limit > 0 and n >= limit
    if out["fallback_to_ticket"]:
        reasons.append(f"{n} failed verifications: this ESM falls back to ticket-only")
    out["status"] = status
    out["reasons"] = reasons
    if status != "pending":
        try:
            audit.append(
                ActionRecord(
                    action_id=applied.action_id,
                    uuid=applied.uuid,
                    incident_id=applied.incident_id,
                    actor=settings.actor,
                    action=applied.action,
                    status=status,
                    params=applied.params,
                    fingerprint=applied.fingerprint,
                    account=applied.account,
                    reason="; ".join(reasons)[:1000],
                    details={
                        "resource": vr.to_dict(),
                        "esm": out["esm"],
                        "classification": out["classification"],
                        "failed_verifications": n,
                    },
                )
            )
        except AuditError as exc:
            out["error"] = f"verification not recorded: {exc}"
    return out


# ---------------------------------------------------------------------------------------------- rollback
def rollback(
    aws: Aws,
    action_id: str,
    *,
    settings: Settings | None = None,
    actor: str | None = None,
    sleep: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Undo one action from its audit rows: exactly what it created goes, recorded before values come back.

    Allowed whatever the mode, budget or kill switch (it only removes what esm-medic made). Idempotent: a second
    call answers ``noop``. Returns ``{"status": "rolled-back" | "noop" | "locked" | "not-found" | "failed",
    "action_id", "uuid", "action", "removed", "restored", "notes", "error"}``.
    """
    settings = _settings(settings)
    actor = actor or settings.actor or DEFAULT_ACTOR
    audit = AuditLog(aws, settings.audit_table)
    out: dict[str, Any] = {
        "status": "failed",
        "action_id": action_id,
        "uuid": "",
        "action": "",
        "removed": {},
        "restored": {},
        "notes": [],
        "error": None,
    }
    try:
        rows = audit.by_action(action_id)
    except AuditError as exc:
        out["error"] = str(exc)
        return out
    if not rows:
        out.update(status="not-found", error=f"no audit record for {action_id}")
        return out
    first = rows[0]
    out.update(uuid=first.uuid, action=first.action)
    done = [r for r in rows if r.status == "rolled-back"]
    if done:
        out.update(status="noop", notes=[f"already rolled back at {done[-1].at}"])
        return out
    source = next((r for r in reversed(rows) if r.status == "applied"), None)
    if source is None:
        source = next((r for r in reversed(rows) if r.status == "failed" and r.created), None)
    started = next((r for r in rows if r.status == "started"), None)
    if source is None and started is None:
        out.update(status="noop", notes=["this action never changed anything (no started / applied record)"])
        return out
    lock = EsmLock(
        aws,
        first.uuid,
        table=settings.state_table,
        ttl_seconds=settings.lock_ttl_seconds,
        purpose=f"rollback {action_id}",
    )
    if not lock.acquire():
        out.update(status="locked", error="another esm-medic run is working on this ESM")
        return out
    try:
        try:
            cls = registry.get(first.action)
            ctx = ActionContext(aws, first.incident_id, first.uuid, actor, action_id, settings, sleep)
            act = cls(first.params, ctx)
            if source is None:  # interrupted before 'applied': find what it made by its incident tags / name
                assert started is not None
                plan = act.plan()
                source = ActionRecord.from_dict({**started.to_dict(), "created": plan.adopted})
            rb = act.rollback(source)
        except RemediationError as exc:
            out["error"] = exc.message
            _append_quietly(
                audit,
                first,
                actor,
                "failed",
                error=f"rollback failed: {exc.message}",
                details={"phase": "rollback", "error": exc.to_dict()},
            )
            return out
        _append_quietly(
            audit,
            first,
            actor,
            "rolled-back",
            before=source.after,
            after=source.before,
            created=source.created,
            details={"rollback": rb.to_dict()},
        )
        out.update(status="rolled-back", removed=rb.removed, restored=rb.restored, notes=rb.notes)
        return out
    finally:
        lock.release()


def _append_quietly(audit: AuditLog, like: ActionRecord, actor: str, status: str, **kw: Any) -> None:
    with contextlib.suppress(AuditError):
        audit.append(
            ActionRecord(
                action_id=like.action_id,
                uuid=like.uuid,
                incident_id=like.incident_id,
                actor=actor,
                action=like.action,
                status=status,
                params=like.params,
                fingerprint=like.fingerprint,
                account=like.account,
                **kw,
            )
        )


# ---------------------------------------------------------------------------------------------- history
def history(
    aws: Aws, uuid: str | None = None, *, limit: int = 50, settings: Settings | None = None
) -> list[dict[str, Any]]:
    """Audit rows, newest first (one ESM by uuid, or any ESM up to ``limit``). Raises AuditError when unreadable."""
    settings = _settings(settings)
    return [r.to_dict() for r in AuditLog(aws, settings.audit_table).history(uuid, limit=limit)]
