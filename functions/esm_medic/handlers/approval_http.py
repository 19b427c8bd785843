"""Lambda handler ``esm_medic.handlers.approval_http.handler``: the approvers' HTTP endpoint.

Works behind a Lambda function URL or an API Gateway HTTP API (payload format 2.0; REST / 1.0 events work too).

- ``GET /approvals/{id}?sig=...&decision=approve|reject``: a confirmation page (HTML). Changes nothing, so
  mail scanners, link unfurlers and prefetchers that open links cannot decide anything.
- ``POST /approvals/{id}`` (form or JSON: ``decision``, ``approver``, ``reason``, ``sig``): decides. The approver
  is the identity the API authorizer verified (JWT ``email`` / ``username`` / ``sub``, IAM ``userArn``,
  Lambda-authorizer ``approver``) when there is one, else the typed name.
- ``POST /slack/actions``: Slack interactivity. Verifies the v0 signature (5-minute window, constant-time
  compare, replay guard), decides, updates the message through ``response_url`` and answers within Slack's
  3-second budget (one DynamoDB read, two writes and one Step Functions call).

Status codes: 200 page / decided, 400 bad input, 401 bad Slack signature (or no identity when one is required),
403 approver not allowed, 404 unknown id or bad link signature (indistinguishable on purpose), 405 wrong method,
409 already decided, 410 expired, 502 the workflow could not be resumed, 503 the store failed.
Task tokens and secrets are never logged.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote

from esm_medic.handlers._common import count, get_aws, lambda_entry, logger

_APPROVAL_PATH = re.compile(r"/approvals/([^/?#]+)/?$")
_SLACK_PATH = re.compile(r"/slack/actions/?$")
BODY_MAX = 64 * 1024

ERROR_STATUS = {
    "bad-input": 400,
    "not-found": 404,
    "not-allowed": 403,
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


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    body: bytes
    identity: str  # the approver the authorizer verified ("" when none)

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> Request:
        ctx = event.get("requestContext") or {}
        http = ctx.get("http") or {}
        method = str(http.get("method") or event.get("httpMethod") or "").upper()
        path = str(event.get("rawPath") or http.get("path") or event.get("path") or "")
        headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
        query = {str(k): str(v) for k, v in (event.get("queryStringParameters") or {}).items() if v is not None}
        raw = event.get("body") or ""
        if event.get("isBase64Encoded"):
            try:
                body = base64.b64decode(raw)
            except (ValueError, TypeError):
                body = b""
        else:
            body = raw.encode() if isinstance(raw, str) else bytes(raw)
        return cls(method, path, headers, query, body[:BODY_MAX], _identity(ctx))


def _identity(ctx: Mapping[str, Any]) -> str:
    auth = ctx.get("authorizer") or {}
    if not isinstance(auth, Mapping):
        return ""
    jwt = auth.get("jwt") or {}
    claims = (jwt.get("claims") if isinstance(jwt, Mapping) else None) or auth.get("claims") or {}
    if isinstance(claims, Mapping):
        for key in ("email", "cognito:username", "username", "preferred_username", "sub"):
            if claims.get(key):
                return str(claims[key])
    iam = auth.get("iam") or {}
    if isinstance(iam, Mapping) and iam.get("userArn"):
        return str(iam["userArn"])
    lam = auth.get("lambda") or {}
    if isinstance(lam, Mapping) and lam.get("approver"):
        return str(lam["approver"])
    return ""


def _response(status: int, body: str, content_type: str = "text/html; charset=utf-8") -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": content_type, **_SECURITY_HEADERS},
        "body": body,
        "isBase64Encoded": False,
    }


def _json(status: int, obj: Mapping[str, Any]) -> dict[str, Any]:
    return _response(status, json.dumps(obj, default=str), "application/json")


def _page(status: int, title: str, message: str) -> dict[str, Any]:
    from esm_medic.notify.message import render_result_page

    return _response(status, render_result_page(title, message))


def _form(req: Request) -> dict[str, str]:
    ctype = req.headers.get("content-type", "")
    text = req.body.decode("utf-8", errors="replace")
    if "json" in ctype:
        try:
            doc = json.loads(text or "{}")
        except json.JSONDecodeError:
            return {}
        return {str(k): str(v) for k, v in doc.items() if v is not None} if isinstance(doc, dict) else {}
    return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items() if v}


# ---------------------------------------------------------------------------------------------- routes
def _get_page(req: Request, approval_id: str) -> dict[str, Any]:
    from esm_medic.approval import ApprovalSettings, get_approval, link_key, verify_link_signature
    from esm_medic.notify.message import render_approval_page
    from esm_medic.notify.sinks import SinkError

    aws = get_aws()
    settings = ApprovalSettings.from_env()
    try:
        key = link_key(aws, settings)
    except SinkError as exc:
        logger.error("approval link key unavailable", extra={"reason": str(exc)})
        return _page(503, "Unavailable", "Approval links are not available right now.")
    sig = req.query.get("sig", "")
    if not verify_link_signature(key, approval_id, sig):
        return _page(404, "Not found", "This approval link is not valid.")
    view = get_approval(aws, approval_id)
    if view is None:
        return _page(404, "Not found", "This approval link is not valid.")
    logger.set_correlation_id(str(view.get("uuid") or "") or None)
    if view["status"] == "expired":
        return _page(410, "Expired", f"This approval expired at {view['expires_at']}; nothing was changed.")
    if view["status"] != "pending":
        who = view.get("decided_by") or "someone"
        return _page(200, f"Already {view['status']}", f"This approval was already {view['status']} by {who}.")
    decision = req.query.get("decision", "")
    action = req.path or f"/approvals/{quote(approval_id)}"
    html = render_approval_page(view, action=action, decision=decision, sig=sig, identity=req.identity)
    return _response(200, html)


def _post_decision(req: Request, approval_id: str) -> dict[str, Any]:
    from esm_medic.approval import ApprovalSettings, decide_approval, link_key, verify_link_signature
    from esm_medic.notify.sinks import SinkError

    aws = get_aws()
    settings = ApprovalSettings.from_env()
    form = _form(req)
    wants_json = "json" in req.headers.get("content-type", "") or "json" in req.headers.get("accept", "")

    def reply(status: int, title: str, message: str, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        if wants_json:
            return _json(status, {"http_status": status, "message": message, **(extra or {})})
        return _page(status, title, message)

    try:
        key = link_key(aws, settings)
    except SinkError as exc:
        logger.error("approval link key unavailable", extra={"reason": str(exc)})
        return reply(503, "Unavailable", "Approvals are not available right now.")
    sig = form.get("sig") or req.query.get("sig", "")
    if not verify_link_signature(key, approval_id, sig):
        return reply(404, "Not found", "This approval link is not valid.")
    decision = form.get("decision", "")
    if decision not in ("approve", "reject"):
        return reply(400, "Bad request", "Choose approve or reject.")
    if req.identity:
        approver = req.identity
    elif settings.require_identity:
        return reply(401, "Sign in required", "This endpoint needs an authenticated approver.")
    else:
        approver = form.get("approver", "").strip()
    if not approver:
        return reply(400, "Bad request", "Tell us who you are (approver).")
    result = decide_approval(
        aws,
        approval_id=approval_id,
        decision=decision,
        approver=approver,
        reason=form.get("reason", "")[:2000],
        channel="web",
        settings=settings,
    )
    logger.set_correlation_id(str(result.get("uuid") or "") or None)
    count("ApprovalDecisions", 1, channel="web", result=str(result.get("status") or result.get("error")))
    if result.get("ok"):
        status = str(result["status"])
        title = {"approved": "Approved", "rejected": "Rejected"}.get(status, "Approval recorded")
        return reply(200, title, str(result.get("message") or status), _public(result))
    code = ERROR_STATUS.get(str(result.get("error")), 400)
    return reply(code, "Not done", str(result.get("message") or result.get("error")), _public(result))


def _public(result: Mapping[str, Any]) -> dict[str, Any]:
    keep = ("ok", "status", "error", "approval_id", "approver", "approvers", "required_approvals", "decided_by")
    return {k: result[k] for k in keep if k in result}


def _slack(req: Request) -> dict[str, Any]:
    from esm_medic.approval import (
        ApprovalSettings,
        claim_slack_request,
        decide_approval,
        slack_approver,
        slack_signing_secret,
        verify_slack_signature,
    )
    from esm_medic.notify.message import APPROVE_ACTION_ID, REJECT_ACTION_ID
    from esm_medic.notify.sinks import SinkError

    aws = get_aws()
    settings = ApprovalSettings.from_env()
    try:
        secret = slack_signing_secret(aws, settings)
    except SinkError as exc:
        logger.error("Slack signing secret unavailable", extra={"reason": str(exc)})
        return _json(503, {"error": "Slack signing secret unavailable"})
    ok, why = verify_slack_signature(secret, req.headers, req.body)
    if not ok:
        count("SlackRejected", 1)
        logger.warning("rejected a Slack request", extra={"reason": why})
        return _json(401, {"error": why or "invalid signature"})
    if not claim_slack_request(aws, req.headers.get("x-slack-signature", "")):
        logger.warning("rejected a replayed Slack request")
        return _json(401, {"error": "replayed request"})
    form = _form(req)
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
    approver, aliases = slack_approver(settings, payload.get("user") or {})
    if not approver:
        return _json(400, {"error": "no Slack user in the payload"})
    decision = "approve" if action["action_id"] == APPROVE_ACTION_ID else "reject"
    result = decide_approval(
        aws,
        approval_id=str(action.get("value") or ""),
        decision=decision,
        approver=approver,
        reason="via Slack",
        channel="slack",
        aliases=aliases,
        settings=settings,
    )
    logger.set_correlation_id(str(result.get("uuid") or "") or None)
    count("ApprovalDecisions", 1, channel="slack", result=str(result.get("status") or result.get("error")))
    text = _slack_text(result, approver)
    _respond_to_slack(str(payload.get("response_url") or ""), text, replace=bool(result.get("ok")))
    # Slack shows the response_url update; this body is the acknowledgement (200 within 3 s)
    return _json(200, {"text": text, "response_type": "ephemeral", "replace_original": False})


def _slack_text(result: Mapping[str, Any], approver: str) -> str:
    if result.get("ok"):
        status = result.get("status")
        if status == "pending":
            return f":hourglass: {result.get('message')}"
        icon = ":white_check_mark:" if status == "approved" else ":no_entry:"
        return f"{icon} Approval `{result.get('approval_id')}` {status} by {approver}."
    return f":warning: Not done: {result.get('message') or result.get('error')}"


def _respond_to_slack(url: str, text: str, *, replace: bool) -> None:
    """Update the Slack message (best effort, one short attempt: the 3-second budget matters more)."""
    if not url.startswith("https://hooks.slack.com/"):
        return
    from esm_medic.notify.sinks import SinkError, post_json

    payload = {"text": text, "replace_original": replace, "response_type": "in_channel" if replace else "ephemeral"}
    try:
        post_json(url, payload, timeout=1.0, retries=0, what="Slack response_url")
    except SinkError as exc:
        logger.warning("could not update the Slack message", extra={"reason": str(exc)})


def route(event: Any) -> dict[str, Any]:
    if not isinstance(event, Mapping):
        return _json(400, {"error": "not an HTTP event"})
    req = Request.from_event(event)
    count("ApprovalHttpRequests", 1)
    if _SLACK_PATH.search(req.path):
        if req.method != "POST":
            return _json(405, {"error": "use POST"})
        return _slack(req)
    m = _APPROVAL_PATH.search(req.path)
    if not m:
        return _page(404, "Not found", "Nothing here.")
    approval_id = m.group(1)
    if req.method in ("GET", "HEAD"):
        resp = _get_page(req, approval_id)
        if req.method == "HEAD":
            resp["body"] = ""
        return resp
    if req.method == "POST":
        return _post_decision(req, approval_id)
    return _page(405, "Method not allowed", "Use GET to view and POST to decide.")


@lambda_entry("approval_http")
def handler(event: Any, context: Any) -> dict[str, Any]:
    try:
        return route(event)
    except Exception:
        logger.exception("approval endpoint failed")
        return _page(500, "Error", "Something went wrong; nothing was decided.")
