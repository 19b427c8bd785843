"""Record a pending approval for a waiting workflow task and tell the approvers, each through their own channel.

- The request is a stage of the incident's notification (:func:`esm_medic.notify.notify_incident`): the broadcast
  sinks get it, and the incident's Slack app message moves to "waiting for approval" with Approve / Reject buttons
  and no link (Slack proves who clicked).
- The approvers are the ESM's owner route's (``esm-medic:approvers`` on the ESM, its function or its cluster) when it
  names some, stored with the request for :func:`~esm_medic.approval.decide.decide_approval`; else the global list.
- Each allowed approver gets links of their own (see :mod:`esm_medic.approval.links`), published to the SNS topic
  ``ESM_MEDIC_APPROVAL_LINK_TOPIC_ARN`` with the message attribute ``approver`` = their canonical identity; each
  person's subscription has a filter policy on it, so nobody receives another person's link.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from esm_medic.approval.links import approver_urls, link_key, plan_hash
from esm_medic.approval.settings import PROD_TIERS, TIER_TAG, ApprovalSettings
from esm_medic.approval.store import PENDING, audit, iso, new_approval_id, put_new
from esm_medic.aws import error_code
from esm_medic.notify.message import function_name_of, redact, redact_text
from esm_medic.notify.routing import foreign_account, route_for
from esm_medic.notify.sinks import SinkError

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws

#: route levels whose approvers replace the global allow-list (the account default is the global list itself)
TAG_LEVELS = frozenset({"esm", "function", "cluster"})
RETENTION_SECONDS = 7 * 86400  # how long a decided / expired request stays readable after its deadline
MAX_TIMEOUT_SECONDS = 7 * 86400
DEFAULT_TIMEOUT_SECONDS = 3600
PLAN_MAX_CHARS = 50_000


class ApprovalError(RuntimeError):
    """The approval request could not be recorded (the workflow should treat it as a failed task)."""


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
    try:
        resp = aws.call("lambda", "list_tags", Resource=arn)
    except Exception as exc:
        return {}, f"cannot read the ESM tags ({error_code(exc) or type(exc).__name__}); tier unknown"
    return {str(k): str(v) for k, v in (resp.get("Tags") or {}).items()}, ""


_REQUESTER_KEYS = ("requested_by", "requestedBy")


def _requester_in(obj: Any) -> str:
    if not isinstance(obj, Mapping):
        return ""
    for key in _REQUESTER_KEYS:
        value = obj.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def requested_by_of(payload: Mapping[str, Any]) -> str:
    """Who asked for the fix, from the approval task's payload ("" when nobody is known).

    In order: ``requested_by`` itself; the execution input's ``requested_by`` (a person's start, e.g. a CLI run
    that starts the workflow); the triggering event's ``detail.requestedBy`` (a detection that knows the caller);
    a CloudTrail record's caller (``detail.userIdentity.arn``). The ESM's own service role is never a requester.
    """
    found = _requester_in(payload)
    execution_input = payload.get("execution_input")
    if not found and isinstance(execution_input, Mapping):
        found = _requester_in(execution_input) or _requester_in(execution_input.get("event"))
    events = [payload.get("event")]
    if isinstance(execution_input, Mapping):
        events.append(execution_input.get("event"))
    for event in events:
        if found or not isinstance(event, Mapping):
            continue
        detail = event.get("detail")
        found = _requester_in(event) or _requester_in(detail)
        identity = detail.get("userIdentity") if isinstance(detail, Mapping) else None
        if not found and isinstance(identity, Mapping) and identity.get("type") != "AWSService":
            found = str(identity.get("arn") or "").strip()
    return found[:200]


def _send_links(
    aws: Aws, s: ApprovalSettings, key: str, item: Mapping[str, Any], summary: str
) -> tuple[list[str], list[str]]:
    """Publish each allowed approver's own links; returns (people sent to, warnings)."""
    sent: list[str] = []
    warnings: list[str] = []
    if not s.base_url or not key:
        return sent, warnings
    people = [p for p in s.allowed_people() if not p.startswith(("slack:", "arn:"))]
    if not people:
        return sent, warnings
    if not s.link_topic_arn:
        warnings.append("per-approver links not sent: no ESM_MEDIC_APPROVAL_LINK_TOPIC_ARN")
        return sent, warnings
    where = f" (account {item['account']})" if item.get("account") else ""
    for person in people:
        urls = approver_urls(s.base_url, key, item["approval_id"], person, item["plan_hash"], int(item["deadline"]))
        text = (
            f"esm-medic asks you ({person}) to approve a fix.\n\n{summary}\n"
            f"ESM: {item['uuid']}{where}  incident: {item['incident_id']}\nExpires: {iso(int(item['deadline']))}\n\n"
            f"Approve (opens a confirmation page): {urls['approve_url']}\n"
            f"Reject (opens a confirmation page): {urls['reject_url']}\n\n"
            "This link is yours alone: it approves in your name. Do not forward it."
        )
        try:
            aws.call(
                "sns",
                "publish",
                TopicArn=s.link_topic_arn,
                Subject="esm-medic: your approval is needed"[:100],
                Message=text,
                MessageAttributes={"approver": {"DataType": "String", "StringValue": person}},
            )
            sent.append(person)
        except Exception as exc:
            warnings.append(f"link for {person} not sent: {error_code(exc) or type(exc).__name__}")
    return sent, warnings


def request_approval(
    aws: Aws,
    *,
    task_token: str,
    uuid: str,
    incident_id: str,
    plan: Mapping[str, Any] | None,
    diagnosis: Mapping[str, Any] | None,
    timeout_seconds: int | float | str | None = DEFAULT_TIMEOUT_SECONDS,
    requested_by: str = "",
    account: str = "",
    settings: Any = None,
    notify_settings: Any = None,
) -> dict[str, Any]:
    """Record a pending approval for a waiting workflow task and tell the approvers.

    Returns ``{"approval_id", "expires_at", "required_approvals", "links_sent_to", "notification", "warnings"}``
    (plus ``approvers`` when the owner route chose them and ``account`` when the ESM is in a member account);
    never the task token nor a link (links are personal credentials). Raises :class:`ApprovalError` (bad input, or
    the request could not be stored: nobody could ever decide it, so the workflow task should fail rather than wait
    for its timeout).
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
    function = function_name_of({"diagnosis": diag, **pl})
    summary = plan_summary(pl)
    plan_json = json.dumps(redact(pl), sort_keys=True, default=str)
    if len(plan_json) > PLAN_MAX_CHARS:
        plan_json = json.dumps({"truncated": True, "summary": summary})
    classification = dict(diag.get("classification") or pl.get("classification") or {})
    target = {"uuid": uuid, "plan": pl, "diagnosis": diag, "classification": classification}
    if account:
        target["account"] = account
    account = foreign_account(aws, target)
    # the ESM's owner route (tags on the ESM, its function, its cluster) names the approvers when it has any;
    # otherwise the global allow-list applies (ESM_MEDIC_APPROVERS, or anyone a channel proved when empty)
    route = route_for(aws, target)
    owner_approvers = route.approvers if route.source.get("approvers") in TAG_LEVELS else ()
    if owner_approvers:
        s = replace(s, approvers=owner_approvers)
    item: dict[str, Any] = {
        "pk": f"APPROVAL#{approval_id}",
        "sk": "REQUEST",
        "kind": "approval",
        "approval_id": approval_id,
        "task_token": task_token,
        "uuid": uuid,
        "incident_id": incident_id or "-",
        "fix": str(pl.get("fix") or pl.get("action") or "-"),
        "plan_summary": summary or "-",
        "plan": plan_json,
        "plan_hash": plan_hash(plan_json),
        "function": function or "-",
        "status": PENDING,
        "required_approvals": required,
        "tier": tier or "-",
        "requested_by": s.person(requested_by or pl.get("requested_by") or "") or "-",
        "created_at": iso(now),
        "created_epoch": now,
        "deadline": deadline,
        "expires_at": deadline + RETENTION_SECONDS,
    }
    if owner_approvers:
        item["allowed_approvers"] = list(owner_approvers)  # decide_approval checks these, not the global list
        item["approvers_from"] = route.source.get("approvers", "")
    if account:
        item["account"] = account
    try:
        put_new(aws, item)
    except Exception as exc:
        raise ApprovalError(f"cannot store the approval request: {error_code(exc) or type(exc).__name__}") from exc
    try:
        audit(
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

    try:
        key = link_key(aws, s)
    except SinkError as exc:
        key = ""
        warnings.append(f"approval links disabled: {exc}")
    if s.base_url and not key:
        warnings.append("approval links disabled: no link key (ESM_MEDIC_APPROVAL_KEY_NAME)")
    links_sent, link_warnings = _send_links(aws, s, key, item, summary)
    warnings.extend(link_warnings)
    result: dict[str, Any] = {
        "approval_id": approval_id,
        "expires_at": iso(deadline),
        "required_approvals": required,
        "links_sent_to": links_sent,
    }
    # the incident's notification: the configured sinks, the owner route, and the incident's Slack app message
    # moved to "waiting for approval" with the Approve / Reject buttons (notify imports the delivery stack)
    from esm_medic.notify import notify_incident

    context: dict[str, Any] = {
        **target,
        "incident_id": incident_id,
        "function": function,
        # no links in broadcast messages: a link proves who decides, so each approver's goes to them alone
        "approval": {
            "approval_id": approval_id,
            "expires_at": iso(deadline),
            "approve_url": "",
            "reject_url": "",
            "required_approvals": required,
        },
        "approvers": list(s.approvers),
        "requested_by": item["requested_by"],
    }
    try:
        sent = notify_incident(aws, "pending-approval", context, settings=notify_settings)
    except Exception as exc:  # notify never raises for sinks; this guards against a bad context
        sent = {"sent": [], "errors": [{"sink": "notify", "error": f"{type(exc).__name__}: {exc}"}]}
    result["notification"] = {"sent": sent.get("sent", []), "errors": sent.get("errors", [])}
    if isinstance(sent.get("slack"), dict):
        result["notification"]["slack"] = {k: v for k, v in sent["slack"].items() if k in ("action", "stage", "error")}
    if owner_approvers:
        result["approvers"] = {"from": route.source.get("approvers", ""), "people": list(s.allowed_people())}
    if account:
        result["account"] = account
    result["warnings"] = warnings
    return result
