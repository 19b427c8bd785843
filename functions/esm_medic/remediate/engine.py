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

The work is split by phase: :mod:`.prepare` (request, ESM, scope, decision), :mod:`.applying`, :mod:`.restart`,
:mod:`.verification`, :mod:`.undo`; this module plans and re-exports the public API.

``diagnosis`` may be a :class:`esm_medic.models.Diagnosis` or its ``to_dict()``; without one, pass ``action`` and
``params`` (and ``uuid``) directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from esm_medic.aws import Aws
from esm_medic.config import Settings
from esm_medic.remediate.applying import apply_fix
from esm_medic.remediate.audit import AuditError, AuditLog, in_flight, new_action_id
from esm_medic.remediate.base import (
    ActionContext,
    ActionRecord,
    RemediationError,
    fingerprint,
)
from esm_medic.remediate.prepare import (
    DEFAULT_ACTOR,
    TRANSITIONAL_STATES,
    FixRequest,
    _account,
    _base_result,
    _decide,
    _esm_problems,
    _prepare,
    _settings,
    _sightings,
    _ticket,
    default_incident_id,
    request_from,
)
from esm_medic.remediate.restart import restart_esm
from esm_medic.remediate.undo import history, rollback
from esm_medic.remediate.verification import verify_fix

__all__ = [
    "DEFAULT_ACTOR",
    "TRANSITIONAL_STATES",
    "FixRequest",
    "apply_fix",
    "default_incident_id",
    "history",
    "plan_fix",
    "request_from",
    "restart_esm",
    "rollback",
    "verify_fix",
]


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
        ctx = ActionContext(aws, req.incident_id, req.uuid, DEFAULT_ACTOR, "", settings, scope=prep.scope)
        act = prep.cls(req.params, ctx)
        with prep.confined(aws):
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
        error=plan.refused if status == "refused" else None,
    )
