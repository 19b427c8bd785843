"""The routes of the approval endpoint (``approval_http``): Powertools' ``LambdaFunctionUrlResolver`` with the
function URL event data class. Imported by the entry point on its first request (see there)."""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, quote

from aws_lambda_powertools.event_handler import LambdaFunctionUrlResolver, Response
from aws_lambda_powertools.utilities.data_classes import LambdaFunctionUrlEvent

from esm_medic.approval import (
    ApprovalSettings,
    claim_slack_request,
    decide_approval,
    link_key,
    load,
    public_view,
    slack_identity,
    slack_signing_secret,
    valid_approval_id,
    verify_slack_signature,
    verify_token,
)
from esm_medic.aws import Aws
from esm_medic.handlers import approval_http as entry
from esm_medic.handlers._common import count, logger
from esm_medic.notify.message import APPROVE_ACTION_ID, REJECT_ACTION_ID, render_approval_page, render_result_page
from esm_medic.notify.sinks import SinkError

BODY_MAX = 64 * 1024
_APPROVAL_PATH = re.compile(r"^/approvals/[^/]+/?$")

ERROR_STATUS = {
    "bad-input": 400,
    "not-found": 404,
    "not-allowed": 403,
    "requester": 403,
    "already-decided": 409,
    "same-approver": 409,
    "expired": 410,
    "task-error": 502,
    "store-error": 503,
}

_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex, nofollow",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'",
}

app = LambdaFunctionUrlResolver()


def get_aws() -> Aws:
    return entry.get_aws()  # the entry point's adapter, with the path's retry budget


# ---------------------------------------------------------------------------------------------- helpers
def _response(status: int, body: str, content_type: str = "text/html; charset=utf-8") -> Response[str]:
    return Response(status_code=status, content_type=content_type, body=body, headers=dict(_SECURITY_HEADERS))


def _json(status: int, obj: Mapping[str, Any]) -> Response[str]:
    return _response(status, json.dumps(obj, default=str), "application/json")


def _page(status: int, title: str, message: str) -> Response[str]:
    return _response(status, render_result_page(title, message))


def _event() -> LambdaFunctionUrlEvent:
    return LambdaFunctionUrlEvent(app.current_event.raw_event)


def raw_body(event: LambdaFunctionUrlEvent) -> bytes:
    """The request body exactly as received (base64-decoded when Lambda encoded it), at most BODY_MAX bytes."""
    body = event.body or ""
    if event.is_base64_encoded:
        try:
            return base64.b64decode(body, validate=True)[:BODY_MAX]
        except (binascii.Error, ValueError):
            return b""
    return body.encode("utf-8", "surrogateescape")[:BODY_MAX]


def _form(event: LambdaFunctionUrlEvent) -> dict[str, str]:
    ctype = (event.get_header_value("content-type") or "").lower()
    text = raw_body(event).decode("utf-8", errors="replace")
    if "json" in ctype:
        try:
            doc = json.loads(text or "{}")
        except json.JSONDecodeError:
            return {}
        return {str(k): str(v) for k, v in doc.items() if v is not None} if isinstance(doc, dict) else {}
    return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items() if v}


def iam_principal(event: LambdaFunctionUrlEvent) -> str:
    """The SigV4 caller's principal ARN, present only when the function URL's auth type is AWS_IAM."""
    authorizer = (event.raw_event.get("requestContext") or {}).get("authorizer")
    if not isinstance(authorizer, Mapping) or not isinstance(authorizer.get("iam"), Mapping):
        return ""
    arn = event.request_context.authorizer.iam.user_arn
    return arn if isinstance(arn, str) and arn.startswith("arn:") else ""


def _proof(
    aws: Aws, settings: ApprovalSettings, event: LambdaFunctionUrlEvent, approval_id: str, token: str
) -> tuple[str, str, dict[str, Any], int]:
    """(identity, channel, item, link expiry) the request proved for this approval; ("", "", {}, 0) when it
    proved nothing. Raises SinkError when the link key cannot be read, other errors when the store fails."""
    nothing: tuple[str, str, dict[str, Any], int] = ("", "", {}, 0)
    if not valid_approval_id(approval_id):
        return nothing
    principal = iam_principal(event)
    if principal:
        return principal, "iam", load(aws, approval_id), 0
    if not token or len(token) > 600 or not token.isascii():
        return nothing
    key = link_key(aws, settings)
    item = load(aws, approval_id)
    if not item:
        return nothing
    claim = verify_token(key, approval_id, str(item.get("plan_hash") or ""), token)
    if claim is None:
        return nothing
    return claim.person, "web", item, claim.expires


def _expired(view: Mapping[str, Any], link_expires: int) -> bool:
    return view["status"] == "expired" or (view["status"] == "pending" and 0 < link_expires <= time.time())


# ---------------------------------------------------------------------------------------------- routes
def _view(approval_id: str) -> Response[str]:
    event = _event()
    aws = get_aws()
    settings = ApprovalSettings.from_env()
    token = event.get_query_string_value("sig", "") or ""
    try:
        who, _, item, expires = _proof(aws, settings, event, approval_id, token)
    except SinkError as exc:
        logger.error("approval link key unavailable", extra={"reason": str(exc)})
        return _page(503, "Unavailable", "Approval links are not available right now.")
    if not who or not item:
        return _page(404, "Not found", "This approval link is not valid.")
    view = public_view(item)
    logger.set_correlation_id(str(view.get("uuid") or "") or None)
    if _expired(view, expires):
        return _page(410, "Expired", f"This approval expired at {view['expires_at']}; nothing was changed.")
    if view["status"] != "pending":
        by = view.get("decided_by") or "someone"
        return _page(200, f"Already {view['status']}", f"This approval was already {view['status']} by {by}.")
    decision = event.get_query_string_value("decision", "") or ""
    action = f"/approvals/{quote(approval_id)}"
    person = settings.person(who)
    html = render_approval_page(view, action=action, decision=decision, sig=token, identity=person)
    return _response(200, html)


@app.get("/approvals/<approval_id>")
def get_page(approval_id: str) -> Response[str]:
    return _view(approval_id)


@app.head("/approvals/<approval_id>")
def head_page(approval_id: str) -> Response[str]:
    resp = _view(approval_id)
    resp.body = ""
    return resp


@app.post("/approvals/<approval_id>")
def post_decision(approval_id: str) -> Response[str]:
    event = _event()
    aws = get_aws()
    settings = ApprovalSettings.from_env()
    form = _form(event)
    accept = (event.get_header_value("accept") or "") + (event.get_header_value("content-type") or "")
    wants_json = "json" in accept.lower()

    def reply(status: int, title: str, message: str, extra: Mapping[str, Any] | None = None) -> Response[str]:
        if wants_json:
            return _json(status, {"http_status": status, "message": message, **(extra or {})})
        return _page(status, title, message)

    token = form.get("sig") or event.get_query_string_value("sig", "") or ""
    try:
        who, channel, item, expires = _proof(aws, settings, event, approval_id, token)
    except SinkError as exc:
        logger.error("approval link key unavailable", extra={"reason": str(exc)})
        return reply(503, "Unavailable", "Approvals are not available right now.")
    except Exception as exc:
        logger.error("approval store unavailable", extra={"reason": type(exc).__name__})
        return reply(503, "Unavailable", "Approvals are not available right now.")
    if not who or not item:
        return reply(404, "Not found", "This approval link is not valid.")
    decision = form.get("decision", "")
    if decision not in ("approve", "reject"):
        return reply(400, "Bad request", "Choose approve or reject.")
    if 0 < expires <= time.time():
        return reply(410, "Expired", "This approval link expired; nothing was changed.", {"error": "expired"})
    result = decide_approval(
        aws,
        approval_id=approval_id,
        decision=decision,
        approver=who,
        reason=form.get("reason", "")[:2000],
        channel=channel,
        settings=settings,
    )
    logger.set_correlation_id(str(result.get("uuid") or "") or None)
    count("ApprovalDecisions", channel=channel, result=str(result.get("status") or result.get("error")))
    if result.get("ok"):
        status = str(result["status"])
        title = {"approved": "Approved", "rejected": "Rejected"}.get(status, "Approval recorded")
        return reply(200, title, str(result.get("message") or status), _public(result))
    code = ERROR_STATUS.get(str(result.get("error")), 400)
    return reply(code, "Not done", str(result.get("message") or result.get("error")), _public(result))


def _public(result: Mapping[str, Any]) -> dict[str, Any]:
    keep = ("ok", "status", "error", "approval_id", "approver", "approvers", "required_approvals", "decided_by")
    return {k: result[k] for k in keep if k in result}


@app.post("/slack/actions")
def slack_actions() -> Response[str]:
    event = _event()
    aws = get_aws()
    settings = ApprovalSettings.from_env()
    try:
        secret = slack_signing_secret(aws, settings)
    except SinkError as exc:
        logger.error("Slack signing secret unavailable", extra={"reason": str(exc)})
        return _json(503, {"error": "Slack signing secret unavailable"})
    body = raw_body(event)
    headers = {str(k).lower(): v for k, v in (event.raw_event.get("headers") or {}).items()}
    ok, why = verify_slack_signature(secret, headers, body)
    if not ok:
        count("SlackRejected", reason=why.split(" ")[0])
        logger.warning("rejected a Slack request", extra={"reason": why})
        return _json(401, {"error": why or "invalid signature"})
    if not claim_slack_request(aws, str(headers.get("x-slack-signature"))):
        logger.warning("rejected a replayed Slack request")
        return _json(401, {"error": "replayed request"})
    form = {k: v[0] for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True).items() if v}
    try:
        payload = json.loads(form.get("payload") or "")
    except json.JSONDecodeError:
        return _json(400, {"error": "no JSON payload"})
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        return _json(400, {"error": "unsupported Slack payload"})
    actions = [a for a in payload.get("actions") or [] if isinstance(a, dict)]
    action = next((a for a in actions if a.get("action_id") in (APPROVE_ACTION_ID, REJECT_ACTION_ID)), None)
    if action is None:
        return _json(400, {"error": "no esm-medic action in the payload"})
    identity = slack_identity(payload.get("user"))
    if not identity:
        return _json(400, {"error": "no Slack user in the payload"})
    result = decide_approval(
        aws,
        approval_id=str(action.get("value") or ""),
        decision="approve" if action["action_id"] == APPROVE_ACTION_ID else "reject",
        approver=identity,
        reason="via Slack",
        channel="slack",
        settings=settings,
    )
    logger.set_correlation_id(str(result.get("uuid") or "") or None)
    count("ApprovalDecisions", channel="slack", result=str(result.get("status") or result.get("error")))
    text = _slack_text(result)
    _respond_to_slack(str(payload.get("response_url") or ""), text, replace=bool(result.get("ok")))
    # Slack shows the response_url update; this body is the acknowledgement (200 within 3 s)
    return _json(200, {"text": text, "response_type": "ephemeral", "replace_original": False})


def _slack_text(result: Mapping[str, Any]) -> str:
    if result.get("ok"):
        status = result.get("status")
        if status == "pending":
            return f":hourglass: {result.get('message')}"
        icon = ":white_check_mark:" if status == "approved" else ":no_entry:"
        return f"{icon} Approval `{result.get('approval_id')}` {status} by {result.get('approver')}."
    return f":warning: Not done: {result.get('message') or result.get('error')}"


def _respond_to_slack(url: str, text: str, *, replace: bool) -> None:
    """Update the Slack message (best effort, one short attempt: the 3-second budget matters more)."""
    if not url.startswith("https://hooks.slack.com/"):
        return
    from esm_medic.notify.sinks import post_json

    payload = {"text": text, "replace_original": replace, "response_type": "in_channel" if replace else "ephemeral"}
    try:
        post_json(url, payload, timeout=1.0, retries=0, what="Slack response_url")
    except SinkError as exc:
        logger.warning("could not update the Slack message", extra={"reason": str(exc)})


@app.not_found
def not_found(_: Exception) -> Response[str]:
    path = str(app.current_event.path or "")
    if _APPROVAL_PATH.match(path) or path.rstrip("/") == "/slack/actions":
        return _page(405, "Method not allowed", "Use GET to view and POST to decide.")
    return _page(404, "Not found", "Nothing here.")


def resolve(event: dict[str, Any], context: Any) -> dict[str, Any]:
    count("ApprovalHttpRequests")
    ctx = {"stage": "$default", **event["requestContext"]}  # function URLs say "$default"; the resolver needs it
    result: dict[str, Any] = app.resolve({**event, "requestContext": ctx}, context)
    return result
