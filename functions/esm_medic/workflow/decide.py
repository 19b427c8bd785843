"""The ``decide`` step: claim the incident, plan the diagnosis' fix, ask the policy -> route."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from esm_medic.config import Settings
from esm_medic.remediate import engine
from esm_medic.remediate.budget import sightings
from esm_medic.workflow.claim import claim_incident, claim_ttl, root_cause_fingerprint, started_epoch
from esm_medic.workflow.common import POLICY_ROUTE, StepFailed, logger, obj
from esm_medic.workflow.payloads import RouteDecision

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws


def fix_request(uuid: str, classification: Mapping[str, Any], diagnosis: Mapping[str, Any]) -> dict[str, Any]:
    """What the engine reads from a diagnosis (its ``request_from``), built from the state's pieces. No ESM item:
    the engine reads the live one (mode tags, state)."""
    return {
        "uuid": uuid,
        "step": diagnosis.get("step"),
        "root_cause": dict(diagnosis.get("root_cause") or {}),
        "classification": {
            "entry": classification.get("entry"),
            "step": classification.get("step"),
            "transient": bool(classification.get("transient")),
        },
    }


def _plan_error_is_throttling(result: Mapping[str, Any]) -> bool:
    details = obj(result, "details")
    return bool(details.get("throttled")) or "throttl" in str(result.get("error") or "").lower()


def decide_step(
    aws: Aws,
    *,
    uuid: str,
    incident_id: str,
    classification: Mapping[str, Any],
    diagnosis: Mapping[str, Any],
    settings: Settings | None = None,
    execution: str = "",
    run: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Decide task: the diagnosis' fix -> the engine's read-only plan + policy decision -> route (:data:`ROUTES`).

    First the execution claims the incident (ESM + root-cause fingerprint, :func:`claim_incident`); an execution
    that finds it owned by another one gets route ``join`` and plans nothing (no approval request, no ticket).
    A plan the engine could not make because AWS kept throttling raises :class:`StepFailed` with
    ``throttled`` so the handler maps it to ``Throttled`` (retried by the state machine).
    """

    started = time.perf_counter()
    settings = settings or Settings.from_env()
    rc = obj(diagnosis, "root_cause")
    action = str(rc.get("fix") or "ticket")
    summary = str(rc.get("summary") or "")
    key = root_cause_fingerprint(uuid, diagnosis)
    claim: dict[str, Any] = {"key": key, "won": True, "owner": execution or None}

    def done(d: RouteDecision) -> dict[str, Any]:
        d.elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
        d.root_cause_fingerprint = key
        d.claim = claim
        return d.to_dict()

    if diagnosis.get("state") in ("Deleted", "NotKafka"):
        return done(RouteDecision("skip", "n/a", f"nothing to fix: {summary}", fix="none"))

    claim = claim_incident(
        aws,
        settings,
        uuid=uuid,
        incident_id=incident_id,
        execution=execution,
        key=key,
        ttl_seconds=claim_ttl(run or {}),
        started_at=started_epoch(run or {}),
    )
    if not claim["won"]:
        held = "finished" if claim["holder_state"] == "done" else "is handling"
        outcome = f" ({claim['holder_outcome']})" if claim["holder_outcome"] else ""
        reason = (
            f"joined the running incident: execution {claim['joined_execution']} {held} this cause{outcome} "
            f"(incident {claim['joined_incident']}); nothing else is done here"
        )
        return done(RouteDecision("join", "n/a", reason, fix=action))

    request = fix_request(uuid, classification, diagnosis)
    result = engine.plan_fix(aws, request, incident_id=incident_id, settings=settings)
    status = str(result.get("status") or "failed")
    decision = obj(result, "decision")
    plan = obj(result, "plan") or None
    outcome = str(decision.get("outcome") or "")
    reasons = [str(r) for r in decision.get("reasons") or [] if r]
    mode = str(decision.get("mode") or settings.default_mode)
    safety = str(decision.get("safety") or (plan or {}).get("safety") or "manual")

    if status in ("failed", "invalid"):
        if _plan_error_is_throttling(result):
            raise StepFailed(f"planning {action} was throttled: {result.get('error')}", throttled=True)
        route, reason = "ticket", f"esm-medic could not plan {action}: {result.get('error') or status}"
    elif status == "off" or outcome == "off":
        route, reason = "skip", "; ".join(reasons) or "mode is off"
    elif status == "ticket" or action == "ticket":
        route = POLICY_ROUTE.get(outcome, "ticket") if outcome in ("notify",) else "ticket"
        reason = str(result.get("reason") or "") or "; ".join(reasons) or "no automatic fix for this cause"
    elif status == "refused":
        route, reason = "ticket", f"the plan was refused: {result.get('error') or (plan or {}).get('refused')}"
    elif status == "healthy":
        route, reason = "ticket", "the diagnosis names no fix although the ESM reports an error"
    else:  # planned / noop
        route = POLICY_ROUTE.get(outcome, "ticket")
        reason = "; ".join(reasons) or outcome
        if status == "noop" and route in ("auto", "approve"):
            route = "auto"
            reason = f"{reason}; the account already has what {action} would add: restart polling and verify"
    planned_action_id: str | None = None
    if route == "approve" and status == "planned":
        # write the engine's 'planned' audit row: the approval (and the apply) are bound to exactly this plan
        recorded = engine.plan_fix(aws, request, incident_id=incident_id, settings=settings, record=True)
        if recorded.get("status") == "planned" and recorded.get("action_id"):
            planned_action_id = str(recorded["action_id"])
            plan = obj(recorded, "plan") or plan
    if route == "notify" and outcome == "shadow":
        shadow = engine.apply_fix(aws, request, incident_id=incident_id, settings=settings, restart=False)
        reason = f"{reason} (shadow audit record: {shadow.get('status')})"
    if bool(classification.get("transient")) and status in ("planned", "noop"):
        _note_sighting(aws, settings, uuid, str(classification.get("entry") or action))
    if summary and route in ("ticket", "approve", "notify"):
        reason = f"{reason}. Diagnosis: {summary}"
    return done(
        RouteDecision(
            route=route,
            mode=mode,
            reason=reason[:2000],
            safety=safety,
            fix=action,
            shadow=bool(decision.get("shadow")),
            checks=dict(decision),
            plan=dict(plan) if plan is not None else None,
            planned_action_id=planned_action_id,
        )
    )


def _note_sighting(aws: Aws, settings: Settings, uuid: str, key: str) -> None:
    """Count one sighting of a transient error (policy fixes it from the second sighting on)."""
    try:
        sightings(aws, settings, uuid, key).increment()
    except Exception:  # a lost count only delays a transient fix by one sighting
        logger.warning("ESM %s: the sighting of transient %s was not counted", uuid, key, exc_info=True)
