"""Decide a pending approval once, as one proven person.

The caller (a channel adapter) passes the identity the channel proved; it is made canonical and mapped to one person
(:meth:`ApprovalSettings.person`) before anything is compared, allowed or counted. Then: expiry, the allow-list, the
requester exclusion, and a conditional update that flips ``status`` from ``pending`` (a double click or a replay does
nothing). Prod approvals need two different people; a reject by any allowed person rejects at once. An append-only
audit record is written before the workflow resumes (``SendTaskSuccess`` / ``SendTaskFailure(error="Rejected")``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from esm_medic.approval.settings import ApprovalSettings
from esm_medic.approval.store import (
    APPROVED,
    EXPIRED,
    PENDING,
    REJECTED,
    audit,
    iso,
    load,
    mark_expired,
    revert,
    update,
    valid_approval_id,
)
from esm_medic.aws import error_code, from_attribute_values, is_conditional_check_failed
from esm_medic.notify.message import redact_text

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws

# error codes of decide_approval results (the HTTP handler maps them to status codes)
E_BAD_INPUT = "bad-input"
E_NOT_FOUND = "not-found"
E_NOT_ALLOWED = "not-allowed"
E_REQUESTER = "requester"
E_DECIDED = "already-decided"
E_SAME_APPROVER = "same-approver"
E_EXPIRED = "expired"
E_TASK = "task-error"
E_STORE = "store-error"

_APPROVE_WORDS = {"approve", "approved", "yes", "accept"}
_REJECT_WORDS = {"reject", "rejected", "no", "deny", "denied"}


def normalise_decision(decision: Any) -> str:
    d = str(decision or "").strip().lower()
    if d in _APPROVE_WORDS:
        return "approve"
    if d in _REJECT_WORDS:
        return "reject"
    return ""


def _fail(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"ok": False, "error": code, "message": message, **extra}


def decide_approval(
    aws: Aws,
    *,
    approval_id: str,
    decision: str,
    approver: str,
    reason: str = "",
    channel: str = "api",
    settings: Any = None,
    now: float | None = None,
) -> dict[str, Any]:
    """Decide a pending approval once as the person behind ``approver`` (an identity a channel proved).

    - success: ``{"ok": True, "status": "approved"|"rejected"|"pending", "approval_id", "approver", ...}``
      (``pending`` when a prod approval still needs another person);
    - failure: ``{"ok": False, "error": <code>, "message"}`` with code one of bad-input, not-found, not-allowed,
      requester, already-decided, same-approver, expired, task-error, store-error.
    """
    s = ApprovalSettings.coerce(settings)
    verdict = normalise_decision(decision)
    if not verdict:
        return _fail(E_BAD_INPUT, "decision must be 'approve' or 'reject'")
    if not valid_approval_id(approval_id):
        return _fail(E_NOT_FOUND, "unknown approval id")
    who = s.person(approver)
    if not who:
        return _fail(E_BAD_INPUT, "an approver identity is required")
    current = time.time() if now is None else now
    try:
        item = load(aws, approval_id)
    except Exception as exc:
        return _fail(E_STORE, f"cannot read the approval: {error_code(exc) or type(exc).__name__}")
    if not item:
        return _fail(E_NOT_FOUND, "unknown approval id")
    uuid = str(item.get("uuid") or "")
    incident = str(item.get("incident_id") or "")
    base = {"approval_id": approval_id, "uuid": uuid, "incident_id": incident, "approver": who, "decision": verdict}
    audit_kw = {**{k: base[k] for k in ("approval_id", "approver", "decision")}, "reason": reason, "channel": channel}

    def try_audit(event: str, result: str) -> str:
        try:
            audit(aws, uuid=uuid, incident_id=incident, event=event, result=result, **audit_kw)
            return ""
        except Exception as exc:
            return error_code(exc) or type(exc).__name__

    status = str(item.get("status") or "")
    deadline = int(item.get("deadline") or 0)
    if status != PENDING:
        decided_by = item.get("decided_by", "")
        return _fail(E_DECIDED, f"this approval was already {status}", status=status, decided_by=decided_by, **base)
    if deadline and current >= deadline:
        mark_expired(aws, approval_id)
        try_audit("decision", EXPIRED)
        return _fail(E_EXPIRED, f"this approval expired at {iso(deadline)}", status=EXPIRED, **base)
    allowed = item.get("allowed_approvers")
    if isinstance(allowed, list | tuple | set) and allowed:  # the ESM's owner route named its approvers
        s = replace(s, approvers=tuple(str(a) for a in allowed))
    if not s.is_allowed(who):
        try_audit("denied", "not-allowed")
        return _fail(E_NOT_ALLOWED, f"{who} is not on the approver allow-list", **base)
    requester = str(item.get("requested_by") or "-")
    if s.exclude_requester and verdict == "approve" and requester != "-" and s.person(requester) == who:
        try_audit("denied", "requester")
        return _fail(E_REQUESTER, f"{who} requested this fix and cannot approve it", **base)

    required = int(item.get("required_approvals") or 1)
    now_s = iso(current)
    values: dict[str, Any] = {":pending": PENDING, ":now": int(current), ":a": who, ":at": now_s}
    approvers: list[str] = [who]
    try:
        if verdict == "approve" and required > 1:
            resp = update(
                aws,
                approval_id,
                "ADD approvers :aset SET updated_at = :at",
                "#s = :pending AND deadline > :now AND "
                "(attribute_not_exists(approvers) OR NOT contains(approvers, :a))",
                {**values, ":aset": {who}},
                ReturnValues="ALL_NEW",
            )
            approvers = list(from_attribute_values(resp.get("Attributes")).get("approvers") or [who])
            if len(approvers) < required:
                err = try_audit("decision", f"approved {len(approvers)} of {required}")
                return {
                    "ok": True,
                    "status": PENDING,
                    "approvers": approvers,
                    "required_approvals": required,
                    "message": f"approved by {who}; needs {required - len(approvers)} more approver(s)",
                    **({"audit_error": err} if err else {}),
                    **base,
                }
        new_status = APPROVED if verdict == "approve" else REJECTED
        final = {**values, ":st": new_status, ":r": redact_text(reason)[:2000] or "-"}
        expression = "SET #s = :st, decided_by = :a, decided_at = :at, decision_reason = :r"
        if required <= 1 or verdict == "reject":
            expression += " ADD approvers :aset"
            final[":aset"] = {who}
        update(aws, approval_id, expression, "#s = :pending AND deadline > :now", final)
    except Exception as exc:
        if not is_conditional_check_failed(exc):
            return _fail(E_STORE, f"cannot record the decision: {error_code(exc) or type(exc).__name__}", **base)
        return _lost_race(aws, approval_id, who, base)

    audit_error = try_audit("decision", new_status)
    if audit_error:
        # no decision without an audit record: put the request back so it can be decided again
        revert(aws, approval_id, who, new_status)
        return _fail(E_STORE, f"cannot write the audit record ({audit_error}); nothing was decided", **base)
    return _resume(aws, item, new_status, approvers, required, reason, base, try_audit)


def _resume(
    aws: Aws,
    item: Mapping[str, Any],
    new_status: str,
    approvers: list[str],
    required: int,
    reason: str,
    base: dict[str, Any],
    try_audit: Any,
) -> dict[str, Any]:
    who, approval_id = str(base["approver"]), str(base["approval_id"])
    token = str(item.get("task_token") or "")
    try:
        if new_status == APPROVED:
            output = {"approved": True, "approver": who, "approval_id": approval_id, "approvers": approvers}
            aws.call("stepfunctions", "send_task_success", taskToken=token, output=json.dumps(output))
        else:
            cause = f"Rejected by {who}" + (f": {redact_text(reason)}" if reason else "")
            aws.call("stepfunctions", "send_task_failure", taskToken=token, error="Rejected", cause=cause[:32000])
    except Exception as exc:
        code = error_code(exc) or type(exc).__name__
        if code in ("TaskTimedOut", "TaskDoesNotExist", "InvalidToken"):
            mark_expired(aws, approval_id, from_status=new_status)
            try_audit("task", f"{EXPIRED} ({code})")
            return _fail(
                E_EXPIRED, f"the workflow is no longer waiting for this approval ({code})", status=EXPIRED, **base
            )
        revert(aws, approval_id, who, new_status)
        try_audit("task", f"reverted ({code})")
        return _fail(E_TASK, f"could not resume the workflow ({code}); the approval is pending again", **base)
    return {
        "ok": True,
        "status": new_status,
        "approvers": approvers,
        "required_approvals": required,
        "message": f"{new_status} by {who}",
        **base,
    }


def _lost_race(aws: Aws, approval_id: str, who: str, base: dict[str, Any]) -> dict[str, Any]:
    """Explain why a conditional update failed: decided meanwhile, expired, or the same person twice."""
    item = load(aws, approval_id)
    status = str(item.get("status") or "")
    if status == PENDING:
        if who in (item.get("approvers") or []):
            return _fail(E_SAME_APPROVER, f"{who} already approved; a different approver is needed", **base)
        return _fail(E_EXPIRED, "this approval expired", status=EXPIRED, **base)
    return _fail(
        E_DECIDED, f"this approval was already {status}", status=status, decided_by=item.get("decided_by", ""), **base
    )
