"""Verifying a fix: the change is in place and the ESM recovered (or now fails at a later step)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from esm_medic.aws import Aws
from esm_medic.config import Settings
from esm_medic.remediate import registry
from esm_medic.remediate.audit import AuditError, AuditLog
from esm_medic.remediate.base import (
    ActionContext,
    ActionRecord,
    RemediationError,
)
from esm_medic.remediate.budget import failed_verifications
from esm_medic.remediate.prepare import (
    TRANSITIONAL_STATES,
    _get_esm,
    _settings,
)


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
        status = "pending" if vr.settling else "verify-failed"
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
                applied.followed_by(
                    status,
                    settings.actor,
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
