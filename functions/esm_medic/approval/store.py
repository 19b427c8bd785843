"""Approval records in the STATE table (``pk = APPROVAL#<id>``, ``sk = REQUEST``) and the append-only AUDIT trail.

Items are written and read through boto3's ``TypeSerializer`` / ``TypeDeserializer`` (via :mod:`esm_medic.aws`).
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from esm_medic.aws import from_attribute_values, to_attribute_values
from esm_medic.notify.message import redact_text
from esm_medic.tables import AUDIT, STATE

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws

REQUEST_SK = "REQUEST"
PENDING, APPROVED, REJECTED, EXPIRED = "pending", "approved", "rejected", "expired"
STATUSES = (PENDING, APPROVED, REJECTED, EXPIRED)

_ID = re.compile(r"^apr-[A-Za-z0-9_-]{16,64}$")


def new_approval_id() -> str:
    return "apr-" + secrets.token_urlsafe(18)


def valid_approval_id(approval_id: Any) -> bool:
    return isinstance(approval_id, str) and approval_id.isascii() and bool(_ID.match(approval_id))


def key(approval_id: str) -> dict[str, Any]:
    return to_attribute_values({"pk": f"APPROVAL#{approval_id}", "sk": REQUEST_SK})


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def load(aws: Aws, approval_id: str) -> dict[str, Any]:
    resp = aws.call("dynamodb", "get_item", TableName=STATE.name, Key=key(approval_id), ConsistentRead=True)
    return from_attribute_values(resp.get("Item"))


def put_new(aws: Aws, item: Mapping[str, Any]) -> None:
    aws.call(
        "dynamodb",
        "put_item",
        TableName=STATE.name,
        Item=to_attribute_values(item),
        ConditionExpression="attribute_not_exists(pk)",
    )


def public_view(item: Mapping[str, Any], *, now: float | None = None) -> dict[str, Any]:
    """What may be shown about an approval: everything but the task token."""
    current = time.time() if now is None else now
    deadline = int(item.get("deadline") or 0)
    status = str(item.get("status") or "")
    if status == PENDING and deadline and current >= deadline:
        status = EXPIRED
    plan: Any = item.get("plan") or "{}"
    try:
        plan = json.loads(plan) if isinstance(plan, str) else plan
    except json.JSONDecodeError:
        plan = {}
    return {
        "approval_id": item.get("approval_id", ""),
        "uuid": item.get("uuid", ""),
        "incident_id": item.get("incident_id", ""),
        "status": status,
        "fix": item.get("fix", ""),
        "plan_summary": item.get("plan_summary", ""),
        "plan": plan,
        "function": item.get("function", ""),
        "created_at": item.get("created_at", ""),
        "expires_at": iso(deadline) if deadline else "",
        "required_approvals": int(item.get("required_approvals") or 1),
        "approvers": list(item.get("approvers") or []),
        "decided_by": item.get("decided_by", ""),
        "decided_at": item.get("decided_at", ""),
        "tier": item.get("tier", ""),
        "account": item.get("account", ""),
        "requested_by": item.get("requested_by", ""),
        "allowed_approvers": list(item.get("allowed_approvers") or []),
    }


def get_approval(aws: Aws, approval_id: str) -> dict[str, Any] | None:
    """The public view of one approval (None when unknown)."""
    if not valid_approval_id(approval_id):
        return None
    item = load(aws, approval_id)
    return public_view(item) if item else None


def pending_approvals(aws: Aws, *, now: float | None = None) -> list[dict[str, Any]]:
    """Approvals still waiting for a decision (public views, oldest first). For the CLI and the demo."""
    current = int(time.time() if now is None else now)
    out = []
    for raw in aws.paginate(
        "dynamodb",
        "scan",
        "Items",
        TableName=STATE.name,
        FilterExpression="begins_with(pk, :p) AND #s = :pending AND deadline > :now",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues=to_attribute_values({":p": "APPROVAL#", ":pending": PENDING, ":now": current}),
    ):
        out.append(public_view(from_attribute_values(raw), now=current))
    return sorted(out, key=lambda a: str(a["created_at"]))


def update(aws: Aws, approval_id: str, expression: str, condition: str, values: Mapping[str, Any], **kw: Any) -> Any:
    """One conditional UpdateItem on an approval (``#s`` names ``status``); raises on a failed condition."""
    return aws.call(
        "dynamodb",
        "update_item",
        TableName=STATE.name,
        Key=key(approval_id),
        UpdateExpression=expression,
        ConditionExpression=condition,
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues=to_attribute_values(values),
        **kw,
    )


def mark_expired(aws: Aws, approval_id: str, from_status: str = PENDING) -> None:
    with contextlib.suppress(Exception):  # best effort: the deadline alone already makes it expired
        update(aws, approval_id, "SET #s = :e", "#s = :from", {":e": EXPIRED, ":from": from_status})


def revert(aws: Aws, approval_id: str, who: str, from_status: str) -> None:
    """Put a decided approval back to pending (the audit or the workflow call failed)."""
    with contextlib.suppress(Exception):
        update(
            aws,
            approval_id,
            "SET #s = :p REMOVE decided_by, decided_at, decision_reason DELETE approvers :aset",
            "#s = :from AND decided_by = :a",
            {":p": PENDING, ":from": from_status, ":a": who, ":aset": {who}},
        )


# ------------------------------------------------------------------------------------------------ audit
def audit(
    aws: Aws,
    *,
    uuid: str,
    approval_id: str,
    incident_id: str,
    event: str,
    approver: str,
    decision: str,
    result: str,
    reason: str = "",
    channel: str = "",
) -> None:
    """Append one record to the AUDIT table (never overwrites: attribute_not_exists). Raises on failure."""
    ts = datetime.now(UTC).isoformat(timespec="milliseconds")
    item = {
        "pk": f"ESM#{uuid or 'unknown'}",
        "sk": f"{ts}#approval:{approval_id}:{event}:{secrets.token_hex(3)}",
        "action_id": f"approval:{approval_id}",
        "kind": "approval",
        "event": event,
        "approval_id": approval_id,
        "incident_id": incident_id or "-",
        "approver": approver or "-",
        "decision": decision or "-",
        "result": result,
        "reason": redact_text(reason or "")[:2000] or "-",
        "channel": channel or "-",
        "time": ts,
    }
    aws.call(
        "dynamodb",
        "put_item",
        TableName=AUDIT.name,
        Item=to_attribute_values(item),
        ConditionExpression="attribute_not_exists(pk) AND attribute_not_exists(sk)",
    )


def audit_records(aws: Aws, uuid: str) -> list[dict[str, Any]]:
    """The approval audit records of one ESM, oldest first."""
    resp = aws.call(
        "dynamodb",
        "query",
        TableName=AUDIT.name,
        KeyConditionExpression="pk = :pk",
        FilterExpression="#k = :k",
        ExpressionAttributeNames={"#k": "kind"},
        ExpressionAttributeValues=to_attribute_values({":pk": f"ESM#{uuid}", ":k": "approval"}),
    )
    return [from_attribute_values(i) for i in resp.get("Items") or []]
