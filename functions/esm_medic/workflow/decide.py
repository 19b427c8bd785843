"""The ``decide`` step: claim the incident, plan every automatic fix of the diagnosis' plan, ask the policy -> route.

Route ``approve`` when any fix of the plan needs a human (one approval for the whole plan, shown as one diff),
``auto`` when every fix is automatic, and the first fix's own answer (ticket, notify, skip) when none can be
applied. The ticket-only parts travel with the plan (``plan.tickets``) to the ticket that follows."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from esm_medic.config import Settings
from esm_medic.remediate import engine
from esm_medic.remediate.budget import sightings
from esm_medic.remediate.plan import item_fingerprint
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
    """Decide task: every automatic fix of the diagnosis' plan -> the engine's read-only plans + policy decisions
    -> one route (:data:`ROUTES`) and one combined plan (:func:`whole_plan`).

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

    items = automatic_items(diagnosis)
    if not items:  # no fixable part (or an older diagnosis without a plan): the root cause decides alone
        request = fix_request(uuid, classification, diagnosis)
        return done(_single(aws, settings, request, classification, uuid, incident_id, action, summary))
    entries: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any], _Routed]] = []
    for item in items:
        request = item_request(uuid, classification, diagnosis, item)
        result = engine.plan_fix(aws, request, incident_id=incident_id, settings=settings)
        entries.append((item, request, result, _route_of(result, str(item.get("fix")), settings)))
    fixable = [e for e in entries if e[3].route in ("auto", "approve")]
    if not fixable:  # every automatic part is declined: the first one's answer (ticket, notify, skip...) stands
        item, request, result, routed = entries[0]
        return done(_finish(aws, settings, request, classification, uuid, incident_id, result, routed, summary))
    route = "approve" if any(e[3].route == "approve" for e in fixable) else "auto"
    lead = next(e for e in fixable if e[3].route == route)[3]
    tickets = [p for p in diagnosis.get("plan") or [] if isinstance(p, Mapping) and p.get("ticket_only")]
    declined = [e for e in entries if e not in fixable]
    parts: list[dict[str, Any]] = []
    for item, request, result, routed in fixable:
        part = _part(item, result, routed)
        if route == "approve" and routed.status == "planned":
            # one 'planned' audit row per item: the approval (and the apply) are bound to exactly these plans
            recorded = engine.plan_fix(aws, request, incident_id=incident_id, settings=settings, record=True)
            if recorded.get("status") == "planned" and recorded.get("action_id"):
                part["action_id"] = str(recorded["action_id"])
                part["plan"] = obj(recorded, "plan") or part["plan"]
        parts.append(part)
    plan = whole_plan(parts, tickets, [_part(e[0], e[2], e[3]) for e in declined])
    reasons = [f"{p['action']}: {p['reason']}" for p in parts if p["reason"]]
    reason = "; ".join(reasons) if len(parts) > 1 else (parts[0]["reason"] or route)
    if len(parts) > 1:
        reason = f"{len(parts)} fixes, one plan ({reason})"
    if tickets or declined:
        left = [str(t.get("summary") or t.get("fix")) for t in tickets] + [str(e[0].get("fix")) for e in declined]
        reason = f"{reason}; left for a ticket: {'; '.join(left)[:600]}"
    if route == "auto" and all(p["status"] == "noop" for p in parts):
        reason = f"{reason}; the account already has what the plan would add: restart polling and verify"
    if bool(classification.get("transient")):
        _note_sighting(aws, settings, uuid, str(classification.get("entry") or action))
    if summary and route == "approve":
        reason = f"{reason}. Diagnosis: {summary}"
    action_ids = [str(p["action_id"]) for p in parts if p.get("action_id")]
    return done(
        RouteDecision(
            route=route,
            mode=lead.mode,
            reason=reason[:2000],
            safety=_strictest([p["safety"] for p in parts]),
            fix=str(plan.get("fix") or plan.get("action")),
            shadow=False,
            checks=dict(lead.decision),
            plan=plan,
            planned_action_id=action_ids[0] if action_ids else None,
        )
    )


@dataclass
class _Routed:
    route: str
    reason: str
    status: str
    outcome: str
    mode: str
    safety: str
    decision: dict[str, Any]
    plan: dict[str, Any] | None


def automatic_items(diagnosis: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The plan items esm-medic may apply itself (not the ticket-only parts), in the plan's order."""
    return [
        dict(p)
        for p in diagnosis.get("plan") or []
        if isinstance(p, Mapping) and not p.get("ticket_only") and str(p.get("fix") or "") not in ("", "ticket")
    ]


def item_request(
    uuid: str, classification: Mapping[str, Any], diagnosis: Mapping[str, Any], item: Mapping[str, Any]
) -> dict[str, Any]:
    """The engine's request for one plan item: the diagnosis with that item as its root cause (so the catalogue's
    safety class of that cause applies)."""
    request = fix_request(uuid, classification, diagnosis)
    hypotheses = [str(h) for h in item.get("hypotheses") or []]
    request["root_cause"] = {
        "id": hypotheses[0] if hypotheses else str(item.get("fix")),
        "fix": str(item.get("fix")),
        "fix_params": dict(item.get("fix_params") or {}),
        "summary": str(item.get("summary") or ""),
    }
    return request


def _route_of(result: Mapping[str, Any], action: str, settings: Settings) -> _Routed:
    """The engine's plan + decision for one fix -> route and reason (raises StepFailed when AWS kept throttling)."""
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
    return _Routed(route, reason, status, outcome, mode, safety, dict(decision), dict(plan) if plan else None)


def _single(
    aws: Aws,
    settings: Settings,
    request: dict[str, Any],
    classification: Mapping[str, Any],
    uuid: str,
    incident_id: str,
    action: str,
    summary: str,
) -> RouteDecision:
    result = engine.plan_fix(aws, request, incident_id=incident_id, settings=settings)
    routed = _route_of(result, action, settings)
    return _finish(aws, settings, request, classification, uuid, incident_id, result, routed, summary)


def _finish(
    aws: Aws,
    settings: Settings,
    request: dict[str, Any],
    classification: Mapping[str, Any],
    uuid: str,
    incident_id: str,
    result: Mapping[str, Any],
    routed: _Routed,
    summary: str,
) -> RouteDecision:
    """One fix decides the route (the root cause's, or the first plan item's when none can be applied)."""
    action = str(obj(request, "root_cause").get("fix") or "ticket")
    route, reason, plan = routed.route, routed.reason, routed.plan
    planned_action_id: str | None = None
    if route == "approve" and routed.status == "planned":
        # write the engine's 'planned' audit row: the approval (and the apply) are bound to exactly this plan
        recorded = engine.plan_fix(aws, request, incident_id=incident_id, settings=settings, record=True)
        if recorded.get("status") == "planned" and recorded.get("action_id"):
            planned_action_id = str(recorded["action_id"])
            plan = obj(recorded, "plan") or plan
    if route == "notify" and routed.outcome == "shadow":
        shadow = engine.apply_fix(aws, request, incident_id=incident_id, settings=settings, restart=False)
        reason = f"{reason} (shadow audit record: {shadow.get('status')})"
    if bool(classification.get("transient")) and routed.status in ("planned", "noop"):
        _note_sighting(aws, settings, uuid, str(classification.get("entry") or action))
    if summary and route in ("ticket", "approve", "notify"):
        reason = f"{reason}. Diagnosis: {summary}"
    return RouteDecision(
        route=route,
        mode=routed.mode,
        reason=reason[:2000],
        safety=routed.safety,
        fix=action,
        shadow=bool(routed.decision.get("shadow")),
        checks=dict(routed.decision),
        plan=dict(plan) if plan is not None else None,
        planned_action_id=planned_action_id,
    )


_SAFETY_ORDER = ("auto", "approve", "manual")


def _strictest(classes: list[str]) -> str:
    known = [c for c in classes if c in _SAFETY_ORDER]
    return max(known, key=_SAFETY_ORDER.index) if known else (classes[0] if classes else "manual")


def _part(item: Mapping[str, Any], result: Mapping[str, Any], routed: _Routed) -> dict[str, Any]:
    """One item of the whole plan as the state carries it (no API call lists: those are in the combined plan)."""
    plan = dict(routed.plan or {})
    return {
        "order": item.get("order"),
        "action": str(item.get("fix")),
        "params": dict(item.get("fix_params") or {}),
        "fingerprint": item_fingerprint(item),
        "hypotheses": [str(h) for h in item.get("hypotheses") or []],
        "summary": str(plan.get("summary") or item.get("summary") or ""),
        "status": routed.status,
        "route": routed.route,
        "safety": routed.safety,
        "reason": routed.reason,
        "action_id": None,
        "plan": plan,
    }


def whole_plan(
    parts: list[dict[str, Any]], tickets: list[Mapping[str, Any]], declined: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Every fix the execution may apply as ONE plan: a combined diff and call list (what the approvers see), the
    items with their planned action ids, and the parts left for a ticket. One item keeps the engine's plan as is
    (plus ``items``), so a one-fix incident looks as it always did."""
    plans = [p.pop("plan") for p in parts]
    for d in declined or []:
        d.pop("plan", None)
    if len(parts) == 1:
        out = dict(plans[0])
        out.setdefault("action", parts[0]["action"])
        out.setdefault("params", parts[0]["params"])
        out.setdefault("fingerprint", parts[0]["fingerprint"])
    else:
        diff = [
            f"[{i}. {p['action']}] {line}"
            for i, (p, pl) in enumerate(zip(parts, plans, strict=True), 1)
            for line in pl.get("diff") or []
        ]
        out = {
            "action": parts[0]["action"],
            "fix": " + ".join(p["action"] for p in parts),
            "params": {},  # each item has its own (items[].params); the diff shows them all
            "fingerprint": hashlib.sha256("|".join(p["fingerprint"] for p in parts).encode()).hexdigest()[:32],
            "summary": "; ".join(f"{i}. {p['summary'] or p['action']}" for i, p in enumerate(parts, 1))[:1500],
            "safety": _strictest([p["safety"] for p in parts]),
            "diff": diff,
            "calls": [c for pl in plans for c in pl.get("calls") or []],
            "noop": all(bool(pl.get("noop")) for pl in plans),
            "warnings": [w for pl in plans for w in pl.get("warnings") or []],
            "cost": [pl["cost"] for pl in plans if pl.get("cost")] or None,
        }
    out["items"] = parts
    out["action_ids"] = [str(p["action_id"]) for p in parts if p.get("action_id")]
    out["tickets"] = [dict(t) for t in tickets]
    out["declined"] = declined or []
    return out


def _note_sighting(aws: Aws, settings: Settings, uuid: str, key: str) -> None:
    """Count one sighting of a transient error (policy fixes it from the second sighting on)."""
    try:
        sightings(aws, settings, uuid, key).increment()
    except Exception:  # a lost count only delays a transient fix by one sighting
        logger.warning("ESM %s: the sighting of transient %s was not counted", uuid, key, exc_info=True)
