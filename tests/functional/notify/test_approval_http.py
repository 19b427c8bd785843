"""The approvers' HTTP endpoint (Lambda function URL events through the Powertools resolver): every status code,
link-scanner safety (GET / HEAD never decide), per-approver links, AWS_IAM principals, Slack signatures, replay
protection and the 3-second acknowledgement."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from approval_support import BASE_URL, KEY, SIGNING, Inboxes, form_post, http, slack_event, split
from notify_support import DIAGNOSIS, PLAN, Workflow

from esm_medic.approval import get_approval, request_approval
from esm_medic.handlers import approval_http
from esm_medic.notify import sinks as sinks_mod
from esm_medic.notify.message import REJECT_ACTION_ID
from esm_medic.tables import STATE

PEOPLE = ["alice@example.com", "bob@example.com"]


class Ctx:
    function_name = "approval_http"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:approval_http"
    aws_request_id = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 3000


@pytest.fixture
def inboxes(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Inboxes:
    boxes = Inboxes(aws, PEOPLE)
    monkeypatch.setenv("ESM_MEDIC_APPROVAL_BASE_URL", BASE_URL)
    monkeypatch.setenv("ESM_MEDIC_APPROVAL_KEY", KEY)
    monkeypatch.setenv("ESM_MEDIC_APPROVAL_LINK_TOPIC_ARN", boxes.topic_arn)
    monkeypatch.setenv("ESM_MEDIC_SLACK_SIGNING_SECRET", SIGNING)
    monkeypatch.setenv("ESM_MEDIC_APPROVERS", ",".join(PEOPLE))
    monkeypatch.setenv("ESM_MEDIC_APPROVER_IDENTITIES", "alice@example.com=slack:U111")
    return boxes


def call(event: dict[str, Any]) -> dict[str, Any]:
    return approval_http.handler(event, Ctx())  # type: ignore[no-any-return]


def new_request(aws: Any, workflow: Workflow, **kw: Any) -> tuple[Any, dict[str, Any]]:
    waiting = workflow.start()
    req = request_approval(
        aws,
        task_token=waiting.task_token,
        uuid="esm-uuid-1",
        incident_id="inc-1",
        plan=kw.pop("plan", PLAN),
        diagnosis=DIAGNOSIS,
        timeout_seconds=kw.pop("timeout_seconds", 600),
        **kw,
    )
    return waiting, req


def test_each_approver_gets_their_own_link_and_nothing_else(aws: Any, workflow: Workflow, inboxes: Inboxes) -> None:
    waiting, req = new_request(aws, workflow)
    assert req["links_sent_to"] == PEOPLE and "approve_url" not in req
    alice, bob = inboxes.links("alice@example.com"), inboxes.links("bob@example.com")
    assert set(alice) == set(bob) == {"approve", "reject"}
    assert alice["approve"] != bob["approve"]
    assert waiting.task_token not in json.dumps(req)


def test_get_renders_a_confirmation_page_naming_the_approver_and_changes_nothing(
    aws: Any, workflow: Workflow, inboxes: Inboxes
) -> None:
    waiting, req = new_request(aws, workflow)
    path, query = split(inboxes.links("alice@example.com")["approve"])
    for _ in range(3):  # a mail scanner, an unfurler and the human all open the link
        resp = call(http("GET", path, query=query, headers={"user-agent": "Slackbot-LinkExpanding 1.0"}))
        assert resp["statusCode"] == 200
    assert resp["headers"]["Content-Type"].startswith("text/html")
    assert resp["headers"]["Cache-Control"] == "no-store" and resp["headers"]["Referrer-Policy"] == "no-referrer"
    body = resp["body"]
    assert "<form method=post" in body and "Nothing has happened yet" in body
    assert "Deciding as <b>alice@example.com</b>" in body and "name=approver" not in body
    assert waiting.task_token not in body
    assert get_approval(aws, req["approval_id"])["status"] == "pending"  # type: ignore[index]
    assert workflow.status(waiting.execution_arn) == "RUNNING"
    head = call(http("HEAD", path, query=query))
    assert head["statusCode"] == 200 and head["body"] == ""


def test_post_approves_as_the_links_owner_then_a_second_post_is_409(
    aws: Any, workflow: Workflow, inboxes: Inboxes
) -> None:
    waiting, _req = new_request(aws, workflow)
    path, query = split(inboxes.links("alice@example.com")["approve"])
    resp = call(form_post(path, sig=query["sig"], decision="approve", approver="bob@example.com", reason="ok"))
    assert resp["statusCode"] == 200 and "approved by alice@example.com" in resp["body"]
    out = json.loads(workflow.finish(waiting.execution_arn)["output"])
    assert out["approver"] == "alice@example.com"
    bob_path, bob_query = split(inboxes.links("bob@example.com")["reject"])
    assert call(form_post(bob_path, sig=bob_query["sig"], decision="reject"))["statusCode"] == 409
    page = call(http("GET", path, query=query))
    assert page["statusCode"] == 200 and "already approved by alice@example.com" in page["body"]


def test_post_reject_with_json(aws: Any, workflow: Workflow, inboxes: Inboxes) -> None:
    waiting, _req = new_request(aws, workflow)
    path, query = split(inboxes.links("bob@example.com")["reject"])
    body = json.dumps({"sig": query["sig"], "decision": "reject", "reason": "no"})
    resp = call(http("POST", path, body=body, headers={"content-type": "application/json"}, b64=True))
    doc = json.loads(resp["body"])
    assert resp["statusCode"] == 200 and doc["ok"] is True and doc["status"] == "rejected"
    assert doc["approver"] == "bob@example.com"
    assert workflow.finish(waiting.execution_arn)["status"] == "FAILED"


def test_iam_principal_decides_without_a_link(aws: Any, workflow: Workflow, inboxes: Inboxes, monkeypatch: Any) -> None:
    arn = "arn:aws:sts::123456789012:assumed-role/Operators/carol"
    monkeypatch.setenv("ESM_MEDIC_APPROVERS", f"alice@example.com,{arn}")
    waiting, req = new_request(aws, workflow)
    path = f"/approvals/{req['approval_id']}"
    page = call(http("GET", path, iam_arn=arn))
    assert page["statusCode"] == 200 and f"Deciding as <b>{arn.lower()}</b>" in page["body"]
    stranger = "arn:aws:sts::123456789012:assumed-role/Dev/mallory"
    body = json.dumps({"decision": "approve"})
    denied = call(http("POST", path, body=body, headers={"content-type": "application/json"}, iam_arn=stranger))
    assert denied["statusCode"] == 403
    assert workflow.status(waiting.execution_arn) == "RUNNING"
    resp = call(http("POST", path, body=body, headers={"content-type": "application/json"}, iam_arn=arn))
    assert resp["statusCode"] == 200 and json.loads(resp["body"])["approver"] == arn.lower()
    assert json.loads(workflow.finish(waiting.execution_arn)["output"])["approver"] == arn.lower()


def test_bad_links_and_unknown_ids_are_404(aws: Any, workflow: Workflow, inboxes: Inboxes) -> None:
    _, req = new_request(aws, workflow)
    aid = req["approval_id"]
    path, query = split(inboxes.links("alice@example.com")["approve"])
    assert call(http("GET", path, query={"sig": "0" * 32}))["statusCode"] == 404
    assert call(http("GET", path))["statusCode"] == 404
    ghost = "/approvals/apr-" + "g" * 24
    assert call(http("GET", ghost, query=query))["statusCode"] == 404
    assert call(form_post(ghost, sig=query["sig"], decision="approve"))["statusCode"] == 404
    assert call(http("GET", "/elsewhere"))["statusCode"] == 404
    assert get_approval(aws, aid)["status"] == "pending"  # type: ignore[index]


def test_bad_input_is_400(aws: Any, workflow: Workflow, inboxes: Inboxes) -> None:
    _, _req = new_request(aws, workflow)
    path, query = split(inboxes.links("alice@example.com")["approve"])
    assert call(form_post(path, sig=query["sig"], decision="maybe"))["statusCode"] == 400
    assert call(form_post(path, sig=query["sig"]))["statusCode"] == 400
    assert call(http("POST", "/slack/actions", body="payload=%7B%7D"))["statusCode"] == 401  # unsigned
    assert approval_http.route("not an event")["statusCode"] == 400


def test_an_approver_removed_from_the_allow_list_is_403(
    aws: Any, workflow: Workflow, inboxes: Inboxes, monkeypatch: pytest.MonkeyPatch
) -> None:
    waiting, _req = new_request(aws, workflow)
    path, query = split(inboxes.links("bob@example.com")["approve"])
    monkeypatch.setenv("ESM_MEDIC_APPROVERS", "alice@example.com")
    resp = call(form_post(path, sig=query["sig"], decision="approve"))
    assert resp["statusCode"] == 403 and "allow-list" in resp["body"]
    assert workflow.status(waiting.execution_arn) == "RUNNING"


def test_expired_is_410(aws: Any, workflow: Workflow, inboxes: Inboxes) -> None:
    waiting, req = new_request(aws, workflow)
    aid = req["approval_id"]
    path, query = split(inboxes.links("alice@example.com")["approve"])
    aws.call(
        "dynamodb",
        "update_item",
        TableName=STATE.name,
        Key={"pk": {"S": f"APPROVAL#{aid}"}, "sk": {"S": "REQUEST"}},
        UpdateExpression="SET deadline = :d",
        ExpressionAttributeValues={":d": {"N": str(int(time.time()) - 1)}},
    )
    assert call(http("GET", path, query=query))["statusCode"] == 410
    assert call(form_post(path, sig=query["sig"], decision="approve"))["statusCode"] == 410
    assert workflow.status(waiting.execution_arn) == "RUNNING"


def test_wrong_method_is_405(aws: Any) -> None:
    assert call(http("DELETE", "/approvals/apr-" + "m" * 24))["statusCode"] == 405
    assert call(http("GET", "/slack/actions"))["statusCode"] == 405


def test_workflow_resume_failure_is_502_and_the_approval_stays_pending(
    aws: Any, workflow: Workflow, inboxes: Inboxes, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    waiting, req = new_request(aws, workflow)
    path, query = split(inboxes.links("alice@example.com")["approve"])
    real_call = aws.call

    def flaky(service: str, op: str, **kw: Any) -> Any:
        if op == "send_task_success":
            raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "try later"}}, op)
        return real_call(service, op, **kw)

    monkeypatch.setattr(aws, "call", flaky)
    assert call(form_post(path, sig=query["sig"], decision="approve"))["statusCode"] == 502
    assert get_approval(aws, req["approval_id"])["status"] == "pending"  # type: ignore[index]
    monkeypatch.setattr(aws, "call", real_call)
    assert call(form_post(path, sig=query["sig"], decision="approve"))["statusCode"] == 200
    assert workflow.finish(waiting.execution_arn)["status"] == "SUCCEEDED"


def test_store_failure_is_503(aws: Any, workflow: Workflow, inboxes: Inboxes, monkeypatch: pytest.MonkeyPatch) -> None:
    _, _req = new_request(aws, workflow)
    path, query = split(inboxes.links("alice@example.com")["approve"])
    monkeypatch.setenv(STATE.env, "gone")
    assert call(form_post(path, sig=query["sig"], decision="approve"))["statusCode"] == 503


def test_the_path_has_a_small_retry_budget() -> None:
    approval_http._AWS.clear()
    assert approval_http.get_aws().max_attempts == approval_http.RETRY_BUDGET == 1


# ---------------------------------------------------------------------------------------------- Slack
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
    aws: Any, workflow: Workflow, inboxes: Inboxes, slack_posts: list[dict[str, Any]]
) -> None:
    waiting, req = new_request(aws, workflow)
    started = time.perf_counter()
    resp = call(slack_event(req["approval_id"]))
    elapsed = time.perf_counter() - started
    assert resp["statusCode"] == 200, resp
    assert elapsed < 3.0
    out = json.loads(workflow.finish(waiting.execution_arn)["output"])
    assert out["approver"] == "alice@example.com"  # U111 is alice through the identity mapping
    assert len(slack_posts) == 1 and slack_posts[0]["url"].startswith("https://hooks.slack.com/actions/")
    assert slack_posts[0]["json"]["replace_original"] is True
    assert "approved by alice@example.com" in slack_posts[0]["json"]["text"]


def test_slack_reject_button_by_an_unmapped_allowed_user(
    aws: Any, workflow: Workflow, inboxes: Inboxes, slack_posts: list[dict[str, Any]], monkeypatch: Any
) -> None:
    monkeypatch.setenv("ESM_MEDIC_APPROVERS", "slack:U222")
    waiting, req = new_request(aws, workflow)
    assert call(slack_event(req["approval_id"], action=REJECT_ACTION_ID, user="U222"))["statusCode"] == 200
    assert workflow.finish(waiting.execution_arn)["status"] == "FAILED"


def test_slack_not_allowed_user_gets_an_ephemeral_answer(
    aws: Any, workflow: Workflow, inboxes: Inboxes, slack_posts: list[dict[str, Any]]
) -> None:
    waiting, req = new_request(aws, workflow)
    resp = call(slack_event(req["approval_id"], user="U666", username="alice@example.com"))
    assert resp["statusCode"] == 200
    assert "allow-list" in json.loads(resp["body"])["text"]
    assert slack_posts[0]["json"]["replace_original"] is False
    assert workflow.status(waiting.execution_arn) == "RUNNING"


def test_slack_double_click_is_harmless(
    aws: Any, workflow: Workflow, inboxes: Inboxes, slack_posts: list[dict[str, Any]]
) -> None:
    waiting, req = new_request(aws, workflow)
    assert call(slack_event(req["approval_id"]))["statusCode"] == 200
    second = call(slack_event(req["approval_id"], action=REJECT_ACTION_ID, ts=int(time.time()) - 1))
    assert second["statusCode"] == 200 and "already approved" in json.loads(second["body"])["text"]
    assert workflow.finish(waiting.execution_arn)["status"] == "SUCCEEDED"


def test_slack_malformed_payloads_are_400(aws: Any, inboxes: Inboxes, slack_posts: list[dict[str, Any]]) -> None:
    from approval_support import slack_headers

    def signed(body: str) -> dict[str, Any]:
        return http("POST", "/slack/actions", body=body, headers=slack_headers(body.encode()))

    from urllib.parse import urlencode

    assert call(signed("payload=not-json"))["statusCode"] == 400
    assert call(signed(urlencode({"payload": json.dumps({"type": "view_submission"})})))["statusCode"] == 400
    other = {"type": "block_actions", "user": {"id": "U1"}, "actions": [{"action_id": "something_else", "value": "x"}]}
    assert call(signed(urlencode({"payload": json.dumps(other)})))["statusCode"] == 400
    assert slack_posts == []


def test_slack_signing_secret_from_secrets_manager(
    aws: Any, workflow: Workflow, inboxes: Inboxes, slack_posts: list[dict[str, Any]], monkeypatch: Any
) -> None:
    aws.call(
        "secretsmanager", "create_secret", Name="esm-medic/slack", SecretString=json.dumps({"signing_secret": "sm-s"})
    )
    monkeypatch.delenv("ESM_MEDIC_SLACK_SIGNING_SECRET")
    monkeypatch.setenv("ESM_MEDIC_SLACK_SIGNING_SECRET_NAME", "secretsmanager:esm-medic/slack#signing_secret")
    _, req = new_request(aws, workflow)
    assert call(slack_event(req["approval_id"], secret=SIGNING))["statusCode"] == 401
    assert call(slack_event(req["approval_id"], secret="sm-s"))["statusCode"] == 200
    monkeypatch.setenv("ESM_MEDIC_SLACK_SIGNING_SECRET_NAME", "secretsmanager:esm-medic/missing")
    assert call(slack_event(req["approval_id"], secret="sm-s"))["statusCode"] == 503
