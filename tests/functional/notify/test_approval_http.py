"""The approvers' HTTP endpoint (Lambda function URL / HTTP API events): every status code path, link-scanner
safety (GET never decides), Slack signature verification, replay protection and the 3-second acknowledgement."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode, urlparse

import pytest
from notify_support import DIAGNOSIS, PLAN, Workflow

from esm_medic.approval import get_approval, link_signature, request_approval
from esm_medic.handlers import approval_http
from esm_medic.notify import sinks as sinks_mod
from esm_medic.notify.message import APPROVE_ACTION_ID, REJECT_ACTION_ID
from esm_medic.tables import STATE

KEY = "link-key-for-tests"
SIGNING = "slack-signing-secret-for-tests"


class Ctx:
    function_name = "approval_http"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:approval_http"
    aws_request_id = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 3000


@pytest.fixture
def env(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("ESM_MEDIC_APPROVAL_BASE_URL", "https://approve.example.com")
    monkeypatch.setenv("ESM_MEDIC_APPROVAL_KEY", KEY)
    monkeypatch.setenv("ESM_MEDIC_SLACK_SIGNING_SECRET", SIGNING)
    return aws


def http(
    method: str,
    path: str,
    *,
    query: dict[str, str] | None = None,
    body: str = "",
    headers: dict[str, str] | None = None,
    b64: bool = False,
    authorizer: dict[str, Any] | None = None,
) -> dict[str, Any]:
    ctx: dict[str, Any] = {"http": {"method": method, "path": path}, "requestId": "r1"}
    if authorizer:
        ctx["authorizer"] = authorizer
    return {
        "version": "2.0",
        "rawPath": path,
        "rawQueryString": urlencode(query or {}),
        "queryStringParameters": query or None,
        "headers": headers or {},
        "requestContext": ctx,
        "body": base64.b64encode(body.encode()).decode() if b64 else body,
        "isBase64Encoded": b64,
    }


def call(event: dict[str, Any]) -> dict[str, Any]:
    return approval_http.handler(event, Ctx())  # type: ignore[no-any-return]


def new_request(aws: Any, workflow: Workflow, **kw: Any) -> tuple[Any, dict[str, Any]]:
    waiting = workflow.start()
    req = request_approval(
        aws,
        task_token=waiting.task_token,
        uuid="esm-uuid-1",
        incident_id="inc-1",
        plan=PLAN,
        diagnosis=DIAGNOSIS,
        timeout_seconds=600,
        **kw,
    )
    return waiting, req


def form_post(aid: str, **fields: str) -> dict[str, Any]:
    return http(
        "POST",
        f"/approvals/{aid}",
        body=urlencode(fields),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )


def test_get_renders_a_confirmation_page_and_changes_nothing(env: Any, workflow: Workflow) -> None:
    waiting, req = new_request(env, workflow)
    url = urlparse(req["approve_url"])
    query = dict(p.split("=", 1) for p in url.query.split("&"))
    for _ in range(3):  # a mail scanner, Slack's unfurler and the human all open the link
        resp = call(http("GET", url.path, query=query, headers={"user-agent": "Slackbot-LinkExpanding 1.0"}))
        assert resp["statusCode"] == 200
    assert resp["headers"]["Content-Type"].startswith("text/html")
    assert resp["headers"]["Cache-Control"] == "no-store" and resp["headers"]["Referrer-Policy"] == "no-referrer"
    assert "<form method=post" in resp["body"] and "Nothing has happened yet" in resp["body"]
    assert waiting.task_token not in resp["body"]
    assert get_approval(env, req["approval_id"])["status"] == "pending"  # type: ignore[index]
    assert workflow.status(waiting.execution_arn) == "RUNNING"
    head = call(http("HEAD", url.path, query=query))
    assert head["statusCode"] == 200 and head["body"] == ""


def test_post_approves_then_a_second_post_is_409(env: Any, workflow: Workflow) -> None:
    waiting, req = new_request(env, workflow)
    aid = req["approval_id"]
    sig = link_signature(KEY, aid)
    resp = call(form_post(aid, sig=sig, decision="approve", approver="alice", reason="looks right"))
    assert resp["statusCode"] == 200 and "approved by alice" in resp["body"]
    assert workflow.finish(waiting.execution_arn)["status"] == "SUCCEEDED"
    again = call(form_post(aid, sig=sig, decision="reject", approver="bob"))
    assert again["statusCode"] == 409
    page = call(http("GET", f"/approvals/{aid}", query={"sig": sig}))
    assert page["statusCode"] == 200 and "already approved by alice" in page["body"]


def test_post_reject_with_json(env: Any, workflow: Workflow) -> None:
    waiting, req = new_request(env, workflow)
    aid = req["approval_id"]
    body = json.dumps({"sig": link_signature(KEY, aid), "decision": "reject", "approver": "bob", "reason": "no"})
    resp = call(http("POST", f"/approvals/{aid}", body=body, headers={"content-type": "application/json"}, b64=True))
    assert resp["statusCode"] == 200
    doc = json.loads(resp["body"])
    assert doc["http_status"] == 200 and doc["ok"] is True and doc["status"] == "rejected"
    assert doc["approver"] == "bob" and "rejected by bob" in doc["message"]
    assert workflow.finish(waiting.execution_arn)["status"] == "FAILED"


def test_bad_link_signature_and_unknown_ids_are_404(env: Any, workflow: Workflow) -> None:
    _, req = new_request(env, workflow)
    aid = req["approval_id"]
    assert call(http("GET", f"/approvals/{aid}", query={"sig": "0" * 32}))["statusCode"] == 404
    assert call(http("GET", f"/approvals/{aid}"))["statusCode"] == 404
    assert (
        call(form_post(aid, sig=link_signature("other-key", aid), decision="approve", approver="a"))["statusCode"]
        == 404
    )
    ghost = "apr-" + "g" * 24
    assert call(http("GET", f"/approvals/{ghost}", query={"sig": link_signature(KEY, ghost)}))["statusCode"] == 404
    assert call(form_post(ghost, sig=link_signature(KEY, ghost), decision="approve", approver="a"))["statusCode"] == 404
    assert call(http("GET", "/elsewhere"))["statusCode"] == 404
    assert get_approval(env, aid)["status"] == "pending"  # type: ignore[index]


def test_bad_input_is_400(env: Any, workflow: Workflow) -> None:
    _, req = new_request(env, workflow)
    aid = req["approval_id"]
    sig = link_signature(KEY, aid)
    assert call(form_post(aid, sig=sig, decision="maybe", approver="alice"))["statusCode"] == 400
    assert call(form_post(aid, sig=sig, decision="approve"))["statusCode"] == 400
    assert call(http("POST", "/slack/actions", body="payload=%7B%7D"))["statusCode"] == 401  # unsigned
    assert approval_http.route("not an event")["statusCode"] == 400


def test_not_allowed_approver_is_403(env: Any, workflow: Workflow, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESM_MEDIC_APPROVERS", "alice@example.com")
    waiting, req = new_request(env, workflow)
    aid = req["approval_id"]
    resp = call(form_post(aid, sig=link_signature(KEY, aid), decision="approve", approver="mallory@example.com"))
    assert resp["statusCode"] == 403 and "allow-list" in resp["body"]
    assert workflow.status(waiting.execution_arn) == "RUNNING"


def test_authorizer_identity_wins_over_the_typed_name(
    env: Any, workflow: Workflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESM_MEDIC_APPROVERS", "alice@example.com")
    monkeypatch.setenv("ESM_MEDIC_APPROVAL_REQUIRE_IDENTITY", "true")
    waiting, req = new_request(env, workflow)
    aid = req["approval_id"]
    sig = link_signature(KEY, aid)
    anonymous = call(form_post(aid, sig=sig, decision="approve", approver="alice@example.com"))
    assert anonymous["statusCode"] == 401
    event = form_post(aid, sig=sig, decision="approve", approver="alice@example.com")
    event["requestContext"]["authorizer"] = {"jwt": {"claims": {"email": "mallory@example.com"}}}
    assert call(event)["statusCode"] == 403
    event["requestContext"]["authorizer"] = {"jwt": {"claims": {"email": "alice@example.com"}}}
    page = call(http("GET", f"/approvals/{aid}", query={"sig": sig}, authorizer=event["requestContext"]["authorizer"]))
    assert "Deciding as <b>alice@example.com</b>" in page["body"]
    assert call(event)["statusCode"] == 200
    assert json.loads(workflow.finish(waiting.execution_arn)["output"])["approver"] == "alice@example.com"


def test_expired_is_410(env: Any, workflow: Workflow) -> None:
    waiting, req = new_request(env, workflow)
    aid = req["approval_id"]
    env.call(
        "dynamodb",
        "update_item",
        TableName=STATE.name,
        Key={"pk": {"S": f"APPROVAL#{aid}"}, "sk": {"S": "REQUEST"}},
        UpdateExpression="SET deadline = :d",
        ExpressionAttributeValues={":d": {"N": str(int(time.time()) - 1)}},
    )
    sig = link_signature(KEY, aid)
    assert call(http("GET", f"/approvals/{aid}", query={"sig": sig}))["statusCode"] == 410
    assert call(form_post(aid, sig=sig, decision="approve", approver="alice"))["statusCode"] == 410
    assert workflow.status(waiting.execution_arn) == "RUNNING"


def test_wrong_method_is_405(env: Any) -> None:
    aid = "apr-" + "m" * 24
    assert call(http("DELETE", f"/approvals/{aid}"))["statusCode"] == 405
    assert call(http("GET", "/slack/actions"))["statusCode"] == 405


def test_workflow_resume_failure_is_502_and_the_approval_stays_pending(
    env: Any, workflow: Workflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    waiting, req = new_request(env, workflow)
    aid = req["approval_id"]
    real_call = env.call

    def flaky(service: str, op: str, **kw: Any) -> Any:
        if op == "send_task_success":
            raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "try later"}}, op)
        return real_call(service, op, **kw)

    monkeypatch.setattr(env, "call", flaky)
    resp = call(form_post(aid, sig=link_signature(KEY, aid), decision="approve", approver="alice"))
    assert resp["statusCode"] == 502
    assert get_approval(env, aid)["status"] == "pending"  # type: ignore[index]
    monkeypatch.setattr(env, "call", real_call)
    assert call(form_post(aid, sig=link_signature(KEY, aid), decision="approve", approver="alice"))["statusCode"] == 200
    assert workflow.finish(waiting.execution_arn)["status"] == "SUCCEEDED"


def test_store_failure_is_503(env: Any, workflow: Workflow, monkeypatch: pytest.MonkeyPatch) -> None:
    _, req = new_request(env, workflow)
    aid = req["approval_id"]
    monkeypatch.setenv(STATE.env, "gone")
    assert call(form_post(aid, sig=link_signature(KEY, aid), decision="approve", approver="a"))["statusCode"] == 503


# ---------------------------------------------------------------------------------------------- Slack
def slack_event(
    aid: str,
    *,
    action: str = APPROVE_ACTION_ID,
    user: str = "U111",
    secret: str = SIGNING,
    ts: int | None = None,
    response_url: str = "https://hooks.slack.com/actions/T1/1/xyz",
) -> dict[str, Any]:
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": "alice"},
        "actions": [{"action_id": action, "value": aid, "type": "button"}],
        "response_url": response_url,
    }
    body = urlencode({"payload": json.dumps(payload)})
    stamp = str(ts if ts is not None else int(time.time()))
    sig = "v0=" + hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    headers = {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": sig,
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return http("POST", "/slack/actions", body=body, headers=headers, b64=True)


class FakeResponse:
    status_code = 200
    text = "ok"
    headers: dict[str, str] = {}


@pytest.fixture
def slack_posts(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    posts: list[dict[str, Any]] = []

    class Session:
        def post(self, url: str, json: Any = None, timeout: Any = None) -> FakeResponse:
            posts.append({"url": url, "json": json, "timeout": timeout})
            return FakeResponse()

    monkeypatch.setattr(sinks_mod, "http_session", lambda: Session())
    return posts


def test_slack_approve_button(
    env: Any, workflow: Workflow, slack_posts: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESM_MEDIC_SLACK_USERS", "U111=alice@example.com")
    monkeypatch.setenv("ESM_MEDIC_APPROVERS", "alice@example.com")
    waiting, req = new_request(env, workflow)
    started = time.perf_counter()
    resp = call(slack_event(req["approval_id"]))
    elapsed = time.perf_counter() - started
    assert resp["statusCode"] == 200, resp
    assert elapsed < 3.0
    out = json.loads(workflow.finish(waiting.execution_arn)["output"])
    assert out["approver"] == "alice@example.com"
    assert len(slack_posts) == 1 and slack_posts[0]["url"].startswith("https://hooks.slack.com/actions/")
    assert (
        slack_posts[0]["json"]["replace_original"] is True
        and "approved by alice@example.com" in slack_posts[0]["json"]["text"]
    )
    assert slack_posts[0]["timeout"] == (3.05, 1.0)


def test_slack_reject_button_and_unmapped_user_alias(
    env: Any, workflow: Workflow, slack_posts: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESM_MEDIC_APPROVERS", "slack:U222")
    waiting, req = new_request(env, workflow)
    assert call(slack_event(req["approval_id"], action=REJECT_ACTION_ID, user="U222"))["statusCode"] == 200
    assert workflow.finish(waiting.execution_arn)["status"] == "FAILED"


def test_slack_not_allowed_user_gets_an_ephemeral_answer(
    env: Any, workflow: Workflow, slack_posts: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESM_MEDIC_APPROVERS", "alice@example.com")
    waiting, req = new_request(env, workflow)
    resp = call(slack_event(req["approval_id"], user="U666"))
    assert resp["statusCode"] == 200
    assert "allow-list" in json.loads(resp["body"])["text"]
    assert slack_posts[0]["json"]["replace_original"] is False
    assert workflow.status(waiting.execution_arn) == "RUNNING"


def test_slack_bad_signature_stale_and_replay_are_401(
    env: Any, workflow: Workflow, slack_posts: list[dict[str, Any]]
) -> None:
    waiting, req = new_request(env, workflow)
    aid = req["approval_id"]
    assert call(slack_event(aid, secret="wrong"))["statusCode"] == 401
    assert call(slack_event(aid, ts=int(time.time()) - 600))["statusCode"] == 401
    unsigned = slack_event(aid)
    unsigned["headers"] = {"Content-Type": "application/x-www-form-urlencoded"}
    assert call(unsigned)["statusCode"] == 401
    assert workflow.status(waiting.execution_arn) == "RUNNING"
    good = slack_event(aid)
    assert call(good)["statusCode"] == 200
    replay = call(good)
    assert replay["statusCode"] == 401 and "replayed" in replay["body"]
    assert workflow.finish(waiting.execution_arn)["status"] == "SUCCEEDED"


def test_slack_double_click_is_harmless(env: Any, workflow: Workflow, slack_posts: list[dict[str, Any]]) -> None:
    waiting, req = new_request(env, workflow)
    assert call(slack_event(req["approval_id"]))["statusCode"] == 200
    second = call(slack_event(req["approval_id"], action=REJECT_ACTION_ID, ts=int(time.time()) - 1))
    assert second["statusCode"] == 200 and "already approved" in json.loads(second["body"])["text"]
    assert workflow.finish(waiting.execution_arn)["status"] == "SUCCEEDED"


def test_slack_malformed_payloads_are_400(env: Any, slack_posts: list[dict[str, Any]]) -> None:
    def signed(body: str) -> dict[str, Any]:
        stamp = str(int(time.time()))
        sig = "v0=" + hmac.new(SIGNING.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
        return http(
            "POST", "/slack/actions", body=body, headers={"x-slack-request-timestamp": stamp, "x-slack-signature": sig}
        )

    assert call(signed("payload=not-json"))["statusCode"] == 400
    assert call(signed(urlencode({"payload": json.dumps({"type": "view_submission"})})))["statusCode"] == 400
    other = {"type": "block_actions", "user": {"id": "U1"}, "actions": [{"action_id": "something_else", "value": "x"}]}
    assert call(signed(urlencode({"payload": json.dumps(other)})))["statusCode"] == 400
    assert slack_posts == []


def test_slack_signing_secret_from_secrets_manager(
    env: Any, workflow: Workflow, slack_posts: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    env.call(
        "secretsmanager",
        "create_secret",
        Name="esm-medic/slack",
        SecretString=json.dumps({"signing_secret": "sm-secret"}),
    )
    monkeypatch.delenv("ESM_MEDIC_SLACK_SIGNING_SECRET")
    monkeypatch.setenv("ESM_MEDIC_SLACK_SIGNING_SECRET_NAME", "secretsmanager:esm-medic/slack#signing_secret")
    _, req = new_request(env, workflow)
    assert call(slack_event(req["approval_id"], secret=SIGNING))["statusCode"] == 401
    assert call(slack_event(req["approval_id"], secret="sm-secret"))["statusCode"] == 200
    monkeypatch.setenv("ESM_MEDIC_SLACK_SIGNING_SECRET_NAME", "secretsmanager:esm-medic/missing")
    assert call(slack_event(req["approval_id"], secret="sm-secret"))["statusCode"] == 503
