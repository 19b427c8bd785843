"""Human approval of risky fixes, built to survive link scanners, double clicks, replays and impostors.

How it works:

1. The workflow's ``waitForTaskToken`` task calls :func:`request_approval` with the task token. The token goes
   into the STATE table (``pk = APPROVAL#<id>``, ``sk = REQUEST``) under a random, opaque approval id; only that
   id ever appears in a URL, a Slack button or a log line.
2. People are told through the notify sinks: Slack (Block Kit with Approve / Reject buttons whose value is the
   id) and SNS / e-mail (links to a confirmation page). Links carry an HMAC of the id made with a server key, so
   ids cannot be guessed or enumerated. Opening a link (a GET, e.g. by a mail scanner or Slack's unfurler) only
   shows a page; only a POST decides.
3. :func:`decide_approval` checks expiry and the approver allow-list, then flips ``status`` from ``pending`` with a
   conditional update, so a double click or a replayed request does nothing; writes an append-only audit record;
   and only then resumes the workflow (``SendTaskSuccess`` / ``SendTaskFailure(error="Rejected")``).
4. ESMs tagged ``esm-medic:tier=prod`` need two different approvers (unless ``ESM_MEDIC_PROD_TWO_APPROVERS`` is
   false); a reject by any allowed approver rejects at once.

Expiry: the state machine's task timeout ends the wait; a decision after the deadline returns ``expired``. The
record keeps ``deadline`` (when the approval expires) and the DynamoDB TTL attribute ``expires_at`` (the deadline
plus a retention period, so late clicks still get a clear "expired" answer instead of "unknown").
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from esm_medic.config import coerce_settings
from esm_medic.notify.message import redact, redact_text
from esm_medic.notify.sinks import SinkError, resolve_secret
from esm_medic.tables import AUDIT, STATE

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws

REQUEST_SK = "REQUEST"
PENDING, APPROVED, REJECTED, EXPIRED = "pending", "approved", "rejected", "expired"
STATUSES = (PENDING, APPROVED, REJECTED, EXPIRED)
RETENTION_SECONDS = 7 * 86400  # how long a decided / expired request stays readable after its deadline
MAX_TIMEOUT_SECONDS = 7 * 86400
DEFAULT_TIMEOUT_SECONDS = 3600
SLACK_WINDOW_SECONDS = 300
TIER_TAG = "esm-medic:tier"
PROD_TIERS = frozenset({"prod", "production"})
PLAN_MAX_CHARS = 50_000

_ID = re.compile(r"^apr-[A-Za-z0-9_-]{16,64}$")

# error codes of decide_approval results (the HTTP handler maps them to status codes)
E_BAD_INPUT = "bad-input"
E_NOT_FOUND = "not-found"
E_NOT_ALLOWED = "not-allowed"
E_DECIDED = "already-decided"
E_SAME_APPROVER = "same-approver"
E_EXPIRED = "expired"
E_TASK = "task-error"
E_STORE = "store-error"


class ApprovalError(RuntimeError):
    """The approval request could not be recorded (the workflow should treat it as a failed task)."""


def _truthy(value: str | None, default: bool = False) -> bool:
    if value is None or not value.strip():
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


@dataclass(frozen=True)
class ApprovalSettings:
    base_url: str = ""  # ESM_MEDIC_APPROVAL_BASE_URL: where approval_http is reachable
    approvers: tuple[str, ...] = ()  # ESM_MEDIC_APPROVERS; empty = anyone the channel authenticated
    link_key_ref: str = ""  # ESM_MEDIC_APPROVAL_KEY_NAME: SSM SecureString / secret holding the link HMAC key
    link_key: str = ""  # ESM_MEDIC_APPROVAL_KEY: the key itself (local use and tests only)
    slack_signing_secret_ref: str = ""  # ESM_MEDIC_SLACK_SIGNING_SECRET_NAME
    slack_signing_secret: str = ""  # ESM_MEDIC_SLACK_SIGNING_SECRET (local use and tests only)
    slack_users: Mapping[str, str] = field(default_factory=dict)  # ESM_MEDIC_SLACK_USERS "U1=alice,U2=bob"
    prod_two_approvers: bool = True  # ESM_MEDIC_PROD_TWO_APPROVERS
    require_identity: bool = False  # ESM_MEDIC_APPROVAL_REQUIRE_IDENTITY: web POSTs need an authorizer identity

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ApprovalSettings:
        e = os.environ if env is None else env
        users: dict[str, str] = {}
        for pair in _csv(e.get("ESM_MEDIC_SLACK_USERS")):
            uid, _, name = pair.partition("=")
            if uid.strip() and name.strip():
                users[uid.strip()] = name.strip()
        return cls(
            base_url=(e.get("ESM_MEDIC_APPROVAL_BASE_URL") or "").strip().rstrip("/"),
            approvers=_csv(e.get("ESM_MEDIC_APPROVERS")),
            link_key_ref=(e.get("ESM_MEDIC_APPROVAL_KEY_NAME") or "").strip(),
            link_key=e.get("ESM_MEDIC_APPROVAL_KEY") or "",
            slack_signing_secret_ref=(e.get("ESM_MEDIC_SLACK_SIGNING_SECRET_NAME") or "").strip(),
            slack_signing_secret=e.get("ESM_MEDIC_SLACK_SIGNING_SECRET") or "",
            slack_users=users,
            prod_two_approvers=_truthy(e.get("ESM_MEDIC_PROD_TWO_APPROVERS"), True),
            require_identity=_truthy(e.get("ESM_MEDIC_APPROVAL_REQUIRE_IDENTITY"), False),
        )

    @classmethod
    def coerce(cls, obj: Any) -> ApprovalSettings:
        return coerce_settings(cls, obj, _normalise_approvers)

    def is_allowed(self, approver: str, *aliases: str) -> bool:
        """True when the allow-list is empty or names the approver (or one of its aliases), case-insensitively."""
        if not self.approvers:
            return bool(approver.strip())
        allowed = {a.lower() for a in self.approvers}
        return any(a and a.strip().lower() in allowed for a in (approver, *aliases))


def _normalise_approvers(values: dict[str, Any]) -> None:
    if isinstance(values.get("approvers"), str):
        values["approvers"] = _csv(values["approvers"])
    elif "approvers" in values:
        values["approvers"] = tuple(values["approvers"])


# ------------------------------------------------------------------------------------------------ keys and ids
def new_approval_id() -> str:
    return "apr-" + secrets.token_urlsafe(18)


def valid_approval_id(approval_id: Any) -> bool:
    return isinstance(approval_id, str) and bool(_ID.match(approval_id))


def link_key(aws: Aws | None, settings: ApprovalSettings) -> str:
    """The server key that signs approval links ("" when none is configured)."""
    if settings.link_key_ref:
        return resolve_secret(aws, settings.link_key_ref)
    return settings.link_key


def slack_signing_secret(aws: Aws | None, settings: ApprovalSettings) -> str:
    if settings.slack_signing_secret_ref:
        return resolve_secret(aws, settings.slack_signing_secret_ref)
    return settings.slack_signing_secret


def link_signature(key: str, approval_id: str) -> str:
    return hmac.new(key.encode(), f"esm-medic-approval:v1:{approval_id}".encode(), hashlib.sha256).hexdigest()[:32]


def verify_link_signature(key: str, approval_id: str, signature: str | None) -> bool:
    if not key or not signature or not valid_approval_id(approval_id):
        return False
    return hmac.compare_digest(link_signature(key, approval_id), str(signature))


def approval_urls(base_url: str, key: str, approval_id: str) -> tuple[str, str]:
    """(approve_url, reject_url): confirmation pages; ('', '') without a base URL or a key."""
    if not base_url or not key:
        return "", ""
    sig = link_signature(key, approval_id)
    page = f"{base_url.rstrip('/')}/approvals/{quote(approval_id)}"
    return f"{page}?decision=approve&sig={sig}", f"{page}?decision=reject&sig={sig}"


# ------------------------------------------------------------------------------------------------ Slack
def verify_slack_signature(
    secret: str, headers: Mapping[str, Any], body: bytes, *, now: float | None = None
) -> tuple[bool, str]:
    """Slack v0 request signing: HMAC-SHA256 of ``v0:<timestamp>:<raw body>`` with the signing secret, within a
    5-minute window, compared in constant time. Returns (ok, reason-if-not)."""
    if not secret:
        return False, "no Slack signing secret configured"
    h = {str(k).lower(): v for k, v in (headers or {}).items()}
    ts = str(h.get("x-slack-request-timestamp") or "").strip()
    sig = str(h.get("x-slack-signature") or "").strip()
    if not ts or not sig:
        return False, "missing X-Slack-Signature / X-Slack-Request-Timestamp"
    try:
        ts_value = int(ts)
    except ValueError:
        return False, "bad X-Slack-Request-Timestamp"
    current = time.time() if now is None else now
    if abs(current - ts_value) > SLACK_WINDOW_SECONDS:
        return False, "stale request timestamp (outside the 5-minute window)"
    base = b"v0:" + ts.encode() + b":" + (body or b"")
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), sig.encode()):
        return False, "signature mismatch"
    return True, ""


def claim_slack_request(aws: Aws, signature: str, *, now: float | None = None) -> bool:
    """Remember a verified Slack signature for the replay window; False when it was already seen (a replay).

    Fails open (True) when the table cannot be written: decisions are one-time anyway.
    """
    from esm_medic.aws import is_conditional_check_failed

    current = int(time.time() if now is None else now)
    digest = hashlib.sha256(signature.encode()).hexdigest()[:40]
    try:
        aws.call(
            "dynamodb",
            "put_item",
            TableName=STATE.name,
            Item={
                "pk": {"S": f"SLACKREQ#{digest}"},
                "sk": {"S": "SEEN"},
                "expires_at": {"N": str(current + 2 * SLACK_WINDOW_SECONDS)},
            },
            ConditionExpression="attribute_not_exists(pk)",
        )
    except Exception as exc:
        return not is_conditional_check_failed(exc)
    return True


def slack_approver(settings: ApprovalSettings, user: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    """(approver name, aliases) for a Slack user: the mapped name from ESM_MEDIC_SLACK_USERS, else
    ``slack:<user id>``; the aliases let an allow-list name either form."""
    uid = str(user.get("id") or "").strip()
    if not uid:
        return "", ()
    name = settings.slack_users.get(uid) or f"slack:{uid}"
    return name, (f"slack:{uid}",)


# ------------------------------------------------------------------------------------------------ DynamoDB helpers
def _unmarshal(value: Mapping[str, Any]) -> Any:
    (kind, v), *_ = value.items()
    if kind == "S":
        return v
    if kind == "N":
        return int(v) if re.fullmatch(r"-?\d+", v) else float(v)
    if kind == "BOOL":
        return bool(v)
    if kind == "NULL":
        return None
    if kind in ("SS", "NS"):
        return sorted(v)
    if kind == "L":
        return [_unmarshal(x) for x in v]
    if kind == "M":
        return {k: _unmarshal(x) for k, x in v.items()}
    return v


def _item(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: _unmarshal(v) for k, v in (raw or {}).items()}


def _key(approval_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"APPROVAL#{approval_id}"}, "sk": {"S": REQUEST_SK}}


def _iso(epoch: int | float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _load(aws: Aws, approval_id: str) -> dict[str, Any]:
    resp = aws.call("dynamodb", "get_item", TableName=STATE.name, Key=_key(approval_id), ConsistentRead=True)
    return _item(resp.get("Item"))


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
        "expires_at": _iso(deadline) if deadline else "",
        "required_approvals": int(item.get("required_approvals") or 1),
        "approvers": list(item.get("approvers") or []),
        "decided_by": item.get("decided_by", ""),
        "decided_at": item.get("decided_at", ""),
        "tier": item.get("tier", ""),
    }


def get_approval(aws: Aws, approval_id: str) -> dict[str, Any] | None:
    """The public view of one approval (None when unknown)."""
    if not valid_approval_id(approval_id):
        return None
    item = _load(aws, approval_id)
    return public_view(item) if item else None


# ------------------------------------------------------------------------------------------------ audit
def _audit(
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
        "pk": {"S": f"ESM#{uuid or 'unknown'}"},
        "sk": {"S": f"{ts}#approval:{approval_id}:{event}:{secrets.token_hex(3)}"},
        "action_id": {"S": f"approval:{approval_id}"},
        "kind": {"S": "approval"},
        "event": {"S": event},
        "approval_id": {"S": approval_id},
        "incident_id": {"S": incident_id or "-"},
        "approver": {"S": approver or "-"},
        "decision": {"S": decision or "-"},
        "result": {"S": result},
        "reason": {"S": redact_text(reason or "")[:2000] or "-"},
        "channel": {"S": channel or "-"},
        "time": {"S": ts},
    }
    aws.call(
        "dynamodb",
        "put_item",
        TableName=AUDIT.name,
        Item=item,
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
        ExpressionAttributeValues={":pk": {"S": f"ESM#{uuid}"}, ":k": {"S": "approval"}},
    )
    return [_item(i) for i in resp.get("Items") or []]


# ------------------------------------------------------------------------------------------------ request
def plan_summary(plan: Mapping[str, Any]) -> str:
    fix = str(plan.get("fix") or plan.get("action") or "")
    summary = str(plan.get("summary") or plan.get("description") or "")
    params = plan.get("params") or plan.get("fix_params")
    text = ": ".join(p for p in (fix, summary) if p) or "fix"
    if isinstance(params, Mapping) and params:
        text += " " + json.dumps(redact(params), sort_keys=True, separators=(",", ":"))[:400]
    return redact_text(text)[:600]


def _tags(aws: Aws | None, plan: Mapping[str, Any], diagnosis: Mapping[str, Any]) -> tuple[dict[str, str], str]:
    """Tags of the ESM: from the plan / diagnosis when they carry them, else lambda:ListTags on the ESM ARN."""
    esm_raw = diagnosis.get("esm")
    esm_tags = esm_raw.get("Tags") if isinstance(esm_raw, Mapping) else None
    for source in (plan.get("tags"), diagnosis.get("tags"), esm_tags):
        if isinstance(source, Mapping) and source:
            return {str(k): str(v) for k, v in source.items()}, ""
    esm: Mapping[str, Any] = esm_raw if isinstance(esm_raw, Mapping) else {}
    arn = str(esm.get("EventSourceMappingArn") or esm.get("esm_arn") or esm.get("arn") or plan.get("esm_arn") or "")
    if not arn or aws is None:
        return {}, ""
    from esm_medic.aws import error_code

    try:
        resp = aws.call("lambda", "list_tags", Resource=arn)
    except Exception as exc:
        return {}, f"cannot read the ESM tags ({error_code(exc) or type(exc).__name__}); tier unknown"
    return {str(k): str(v) for k, v in (resp.get("Tags") or {}).items()}, ""


def request_approval(
    aws: Aws,
    *,
    task_token: str,
    uuid: str,
    incident_id: str,
    plan: Mapping[str, Any] | None,
    diagnosis: Mapping[str, Any] | None,
    timeout_seconds: int | float | None = DEFAULT_TIMEOUT_SECONDS,
    settings: Any = None,
    notify_settings: Any = None,
) -> dict[str, Any]:
    """Record a pending approval for a waiting workflow task and tell the approvers.

    Returns ``{"approval_id", "approve_url", "reject_url", "expires_at", "required_approvals", "notification",
    "warnings"}``; never the task token. Raises :class:`ApprovalError` (bad input, or the request could not be
    stored: nobody could ever decide it, so the workflow task should fail rather than wait for its timeout).
    """
    if not isinstance(task_token, str) or not task_token.strip():
        raise ApprovalError("task_token is required")
    if not isinstance(uuid, str) or not uuid.strip():
        raise ApprovalError("uuid is required")
    try:
        timeout = int(timeout_seconds or DEFAULT_TIMEOUT_SECONDS)
    except (TypeError, ValueError) as exc:
        raise ApprovalError(f"timeout_seconds must be a number, got {timeout_seconds!r}") from exc
    if timeout <= 0:
        raise ApprovalError("timeout_seconds must be positive")
    timeout = min(timeout, MAX_TIMEOUT_SECONDS)
    s = ApprovalSettings.coerce(settings)
    pl = dict(plan or {})
    diag = dict(diagnosis or {})
    warnings: list[str] = []
    tags, tag_warning = _tags(aws, pl, diag)
    if tag_warning:
        warnings.append(tag_warning)
    tier = tags.get(TIER_TAG, "").strip().lower()
    required = 2 if (tier in PROD_TIERS and s.prod_two_approvers) else 1

    approval_id = new_approval_id()
    now = int(time.time())
    deadline = now + timeout
    from esm_medic.notify.message import function_name_of

    function = function_name_of({"diagnosis": diag, **pl})
    summary = plan_summary(pl)
    plan_json = json.dumps(redact(pl), sort_keys=True, default=str)
    if len(plan_json) > PLAN_MAX_CHARS:
        plan_json = json.dumps({"truncated": True, "summary": summary})
    item = {
        **_key(approval_id),
        "kind": {"S": "approval"},
        "approval_id": {"S": approval_id},
        "task_token": {"S": task_token},
        "uuid": {"S": uuid},
        "incident_id": {"S": incident_id or "-"},
        "fix": {"S": str(pl.get("fix") or pl.get("action") or "-")},
        "plan_summary": {"S": summary or "-"},
        "plan": {"S": plan_json},
        "function": {"S": function or "-"},
        "status": {"S": PENDING},
        "required_approvals": {"N": str(required)},
        "tier": {"S": tier or "-"},
        "created_at": {"S": _iso(now)},
        "created_epoch": {"N": str(now)},
        "deadline": {"N": str(deadline)},
        "expires_at": {"N": str(deadline + RETENTION_SECONDS)},
    }
    from esm_medic.aws import error_code

    try:
        aws.call(
            "dynamodb", "put_item", TableName=STATE.name, Item=item, ConditionExpression="attribute_not_exists(pk)"
        )
    except Exception as exc:
        raise ApprovalError(
            f"cannot store the approval request in {STATE.name}: {error_code(exc) or type(exc).__name__}"
        ) from exc
    try:
        _audit(
            aws,
            uuid=uuid,
            approval_id=approval_id,
            incident_id=incident_id,
            event="requested",
            approver="esm-medic",
            decision="-",
            result=PENDING,
            reason=summary,
            channel="workflow",
        )
    except Exception as exc:
        warnings.append(f"audit of the request failed: {error_code(exc) or type(exc).__name__}")

    approve_url = reject_url = ""
    try:
        key = link_key(aws, s)
    except SinkError as exc:
        key = ""
        warnings.append(f"approval links disabled: {exc}")
    if s.base_url and key:
        approve_url, reject_url = approval_urls(s.base_url, key, approval_id)
    elif s.base_url:
        warnings.append("approval links disabled: no link key (ESM_MEDIC_APPROVAL_KEY_NAME)")
    result: dict[str, Any] = {
        "approval_id": approval_id,
        "approve_url": approve_url,
        "reject_url": reject_url,
        "expires_at": _iso(deadline),
        "required_approvals": required,
    }
    from esm_medic.notify import notify

    context = {
        "uuid": uuid,
        "incident_id": incident_id,
        "plan": pl,
        "diagnosis": diag,
        "classification": diag.get("classification") or pl.get("classification") or {},
        "function": function,
        "approval": dict(result),
    }
    try:
        sent = notify(aws, "pending-approval", context, settings=notify_settings)
    except Exception as exc:  # notify never raises for sinks; this guards against a bad context
        sent = {"sent": [], "errors": [{"sink": "notify", "error": f"{type(exc).__name__}: {exc}"}]}
    result["notification"] = {"sent": sent.get("sent", []), "errors": sent.get("errors", [])}
    result["warnings"] = warnings
    return result


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
        ExpressionAttributeValues={
            ":p": {"S": "APPROVAL#"},
            ":pending": {"S": PENDING},
            ":now": {"N": str(current)},
        },
    ):
        out.append(public_view(_item(raw), now=current))
    return sorted(out, key=lambda a: str(a["created_at"]))


# ------------------------------------------------------------------------------------------------ decide
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
    aliases: tuple[str, ...] = (),
    settings: Any = None,
    now: float | None = None,
) -> dict[str, Any]:
    """Decide a pending approval once. Never raises for expected outcomes; returns a dict:

    - success: ``{"ok": True, "status": "approved"|"rejected"|"pending", "approval_id", "approver", ...}``
      (``pending`` when a prod approval still needs another approver);
    - failure: ``{"ok": False, "error": <code>, "message"}`` with code one of bad-input, not-found, not-allowed,
      already-decided, same-approver, expired, task-error, store-error.
    """
    from esm_medic.aws import error_code, is_conditional_check_failed

    s = ApprovalSettings.coerce(settings)
    verdict = normalise_decision(decision)
    if not verdict:
        return _fail(E_BAD_INPUT, "decision must be 'approve' or 'reject'")
    if not valid_approval_id(approval_id):
        return _fail(E_NOT_FOUND, "unknown approval id")
    who = str(approver or "").strip()[:200]
    if not who:
        return _fail(E_BAD_INPUT, "an approver name is required")
    current = time.time() if now is None else now
    try:
        item = _load(aws, approval_id)
    except Exception as exc:
        return _fail(E_STORE, f"cannot read the approval: {error_code(exc) or type(exc).__name__}")
    if not item:
        return _fail(E_NOT_FOUND, "unknown approval id")
    uuid = str(item.get("uuid") or "")
    incident = str(item.get("incident_id") or "")
    base = {"approval_id": approval_id, "uuid": uuid, "incident_id": incident, "approver": who, "decision": verdict}
    audit_kw = {
        "uuid": uuid,
        "approval_id": approval_id,
        "incident_id": incident,
        "approver": who,
        "decision": verdict,
        "reason": reason,
        "channel": channel,
    }

    def try_audit(event: str, result: str) -> str:
        try:
            _audit(aws, event=event, result=result, **audit_kw)
            return ""
        except Exception as exc:
            return error_code(exc) or type(exc).__name__

    status = str(item.get("status") or "")
    deadline = int(item.get("deadline") or 0)
    if status != PENDING:
        return _fail(
            E_DECIDED,
            f"this approval was already {status}",
            status=status,
            decided_by=item.get("decided_by", ""),
            **base,
        )
    if deadline and current >= deadline:
        _mark_expired(aws, approval_id)
        try_audit("decision", EXPIRED)
        return _fail(E_EXPIRED, f"this approval expired at {_iso(deadline)}", status=EXPIRED, **base)
    if not s.is_allowed(who, *aliases):
        try_audit("denied", "not-allowed")
        return _fail(E_NOT_ALLOWED, f"{who} is not on the approver allow-list", **base)

    required = int(item.get("required_approvals") or 1)
    names = {"#s": "status"}
    now_s = _iso(current)
    values = {
        ":pending": {"S": PENDING},
        ":now": {"N": str(int(current))},
        ":a": {"S": who},
        ":aset": {"SS": [who]},
        ":at": {"S": now_s},
    }
    approvers: list[str] = [who]
    try:
        if verdict == "approve" and required > 1:
            resp = aws.call(
                "dynamodb",
                "update_item",
                TableName=STATE.name,
                Key=_key(approval_id),
                UpdateExpression="ADD approvers :aset SET updated_at = :at",
                ConditionExpression="#s = :pending AND deadline > :now AND "
                "(attribute_not_exists(approvers) OR NOT contains(approvers, :a))",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
            approvers = sorted(_item(resp.get("Attributes")).get("approvers") or [who])
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
        values_final = {**values, ":st": {"S": new_status}, ":r": {"S": redact_text(reason)[:2000] or "-"}}
        update = "SET #s = :st, decided_by = :a, decided_at = :at, decision_reason = :r"
        if required <= 1 or verdict == "reject":
            update += " ADD approvers :aset"
        else:
            del values_final[":aset"]  # DynamoDB rejects unused expression values
        aws.call(
            "dynamodb",
            "update_item",
            TableName=STATE.name,
            Key=_key(approval_id),
            UpdateExpression=update,
            ConditionExpression="#s = :pending AND deadline > :now",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values_final,
        )
    except Exception as exc:
        if not is_conditional_check_failed(exc):
            return _fail(E_STORE, f"cannot record the decision: {error_code(exc) or type(exc).__name__}", **base)
        return _lost_race(aws, approval_id, who, base)

    audit_error = try_audit("decision", new_status)
    if audit_error:
        # no decision without an audit record: put the request back so it can be decided again
        _revert(aws, approval_id, who, new_status)
        return _fail(E_STORE, f"cannot write the audit record ({audit_error}); nothing was decided", **base)

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
            _mark_expired(aws, approval_id, from_status=new_status)
            try_audit("task", f"{EXPIRED} ({code})")
            return _fail(
                E_EXPIRED, f"the workflow is no longer waiting for this approval ({code})", status=EXPIRED, **base
            )
        _revert(aws, approval_id, who, new_status)
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
    item = _load(aws, approval_id)
    status = str(item.get("status") or "")
    if status == PENDING:
        if who in (item.get("approvers") or []):
            return _fail(E_SAME_APPROVER, f"{who} already approved; a different approver is needed", **base)
        return _fail(E_EXPIRED, "this approval expired", status=EXPIRED, **base)
    return _fail(
        E_DECIDED, f"this approval was already {status}", status=status, decided_by=item.get("decided_by", ""), **base
    )


def _mark_expired(aws: Aws, approval_id: str, from_status: str = PENDING) -> None:
    with contextlib.suppress(Exception):  # best effort: the deadline alone already makes it expired
        aws.call(
            "dynamodb",
            "update_item",
            TableName=STATE.name,
            Key=_key(approval_id),
            UpdateExpression="SET #s = :e",
            ConditionExpression="#s = :from",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":e": {"S": EXPIRED}, ":from": {"S": from_status}},
        )


def _revert(aws: Aws, approval_id: str, who: str, from_status: str) -> None:
    with contextlib.suppress(Exception):
        aws.call(
            "dynamodb",
            "update_item",
            TableName=STATE.name,
            Key=_key(approval_id),
            UpdateExpression="SET #s = :p REMOVE decided_by, decided_at, decision_reason DELETE approvers :aset",
            ConditionExpression="#s = :from AND decided_by = :a",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":p": {"S": PENDING},
                ":from": {"S": from_status},
                ":a": {"S": who},
                ":aset": {"SS": [who]},
            },
        )
