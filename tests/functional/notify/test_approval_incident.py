"""An approval request is a stage of the incident's notification: the incident's Slack app message moves to
"waiting for approval" with the Approve / Reject buttons, the approvers come from the ESM's owner route (tags) when it
names some, the requester cannot approve, and a member account's ESM is named with its account everywhere."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from esm_medic_sandbox.fake_slack import FakeSlack
from notify_support import DIAGNOSIS, PLAN, Workflow

from esm_medic.approval import decide_approval, get_approval, request_approval
from esm_medic.notify import notify_incident, open_ticket_for_esm, show_stage
from esm_medic.notify.message import APPROVE_ACTION_ID, REJECT_ACTION_ID, render_approval_page
from esm_medic.notify.providers.base import clear_credentials_cache
from esm_medic.notify.routing import clear_cache
from esm_medic.notify.slack_blocks import STAGE_OF_KIND

MEMBER = "210987654321"
FN = "arn:aws:lambda:us-east-1:123456789012:function:orders"


@pytest.fixture
def slack(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSlack]:
    fake = FakeSlack()
    aws.call("secretsmanager", "create_secret", Name="esm-medic/slack-bot", SecretString='{"bot_token": "xoxb-t"}')
    monkeypatch.setenv("ESM_MEDIC_SLACK_BOT_TOKEN_SECRET", "esm-medic/slack-bot")
    monkeypatch.setenv("ESM_MEDIC_SLACK_CHANNEL", "C-DEFAULT")
    monkeypatch.setenv("ESM_MEDIC_SLACK_API_URL", fake.url)
    clear_credentials_cache()
    clear_cache()
    yield fake
    fake.close()
    clear_credentials_cache()
    clear_cache()


def tagged(aws: Any, monkeypatch: pytest.MonkeyPatch, tags: dict[str, str]) -> None:
    """The ESM's function carries ``tags`` (moto's ESMs cannot be tagged here; the route reads each level)."""
    real = aws.call

    def call(service: str, op: str, **kw: Any) -> Any:
        if service == "lambda" and op == "list_tags":
            return {"Tags": tags if str(kw.get("Resource", "")).endswith(":function:orders") else {}}
        return real(service, op, **kw)

    monkeypatch.setattr(aws, "call", call)
    clear_cache()


def ask(aws: Any, token: str, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "task_token": token,
        "uuid": "esm-uuid-1",
        "incident_id": "inc-1",
        "plan": PLAN,
        "diagnosis": DIAGNOSIS,
        "timeout_seconds": 600,
    }
    args.update(kw)
    return request_approval(aws, **args)


def blocks_of(body: dict[str, Any]) -> str:
    return json.dumps(body.get("blocks") or [])


def test_the_incident_message_moves_to_waiting_for_approval_with_the_buttons(
    aws: Any, workflow: Workflow, slack: FakeSlack
) -> None:
    first = notify_incident(aws, "notify", {"uuid": "esm-uuid-1", "incident_id": "inc-1", "diagnosis": DIAGNOSIS})
    assert first["slack"]["action"] == "posted"
    req = ask(aws, workflow.start().task_token)
    assert req["notification"]["slack"] == {"action": "updated", "stage": "waiting for approval"}
    assert "slack-app" in req["notification"]["sent"]
    (message,) = slack.messages().values()  # one message for the incident, updated in place
    shown = blocks_of(message)
    assert "Stage: *waiting for approval*" in shown
    actions = [b for b in message["blocks"] if b["type"] == "actions"]
    assert [e["action_id"] for e in actions[0]["elements"]] == [APPROVE_ACTION_ID, REJECT_ACTION_ID]
    assert {e["value"] for e in actions[0]["elements"]} == {req["approval_id"]}  # the opaque id, never the token
    assert "https://" not in shown  # no personal link in a broadcast message
    replies = [c["body"] for c in slack.calls if c["body"].get("thread_ts")]
    assert replies and "*waiting for approval*" in replies[-1]["text"]


def test_the_owner_route_names_the_approvers_and_decide_holds_to_them(
    aws: Any, workflow: Workflow, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESM_MEDIC_APPROVERS", "carol@example.com")  # the global list: not used for this ESM
    tagged(aws, monkeypatch, {"esm-medic:approvers": "alice@example.com, bob@example.com"})
    waiting = workflow.start()
    req = ask(aws, waiting.task_token)
    assert req["approvers"] == {"from": "function", "people": ["alice@example.com", "bob@example.com"]}
    (message,) = slack.messages().values()
    assert "alice@example.com, bob@example.com" in blocks_of(message)
    carol = decide_approval(aws, approval_id=req["approval_id"], decision="approve", approver="carol@example.com")
    assert not carol["ok"] and carol["error"] == "not-allowed"
    bob = decide_approval(aws, approval_id=req["approval_id"], decision="approve", approver="Bob@Example.com")
    assert bob["ok"] and bob["status"] == "approved"
    assert workflow.finish(waiting.execution_arn)["status"] == "SUCCEEDED"


def test_without_owner_approvers_the_global_list_applies(
    aws: Any, workflow: Workflow, notify_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESM_MEDIC_APPROVERS", "carol@example.com")
    tagged(aws, monkeypatch, {"esm-medic:owner": "team-orders"})
    req = ask(aws, workflow.start().task_token)
    assert "approvers" not in req
    alice = decide_approval(aws, approval_id=req["approval_id"], decision="approve", approver="alice@example.com")
    assert alice["error"] == "not-allowed"
    carol = decide_approval(aws, approval_id=req["approval_id"], decision="approve", approver="carol@example.com")
    assert carol["ok"]


def test_the_requester_from_the_execution_input_cannot_approve(aws: Any, workflow: Workflow) -> None:
    from esm_medic.handlers.approval_request import parse

    event = {
        "task_token": workflow.start().task_token,
        "uuid": "esm-uuid-1",
        "incident_id": "inc-1",
        "plan": PLAN,
        "diagnosis": DIAGNOSIS,
        "event": {},
        "execution_input": {"uuid": "esm-uuid-1", "status": {}, "requested_by": "Dave@Example.com"},
    }
    args = parse(event)
    assert args["requested_by"] == "Dave@Example.com"
    req = request_approval(aws, **args)
    view = get_approval(aws, req["approval_id"])
    assert view is not None and view["requested_by"] == "dave@example.com"
    dave = decide_approval(aws, approval_id=req["approval_id"], decision="approve", approver="dave@example.com")
    assert not dave["ok"] and dave["error"] == "requester"
    erin = decide_approval(aws, approval_id=req["approval_id"], decision="approve", approver="erin@example.com")
    assert erin["ok"]


def test_a_member_accounts_esm_is_named_with_its_account(
    aws: Any, workflow: Workflow, slack: FakeSlack, notify_env: Path
) -> None:
    diagnosis = {**DIAGNOSIS, "classification": {**DIAGNOSIS["classification"], "account": MEMBER}}
    req = ask(aws, workflow.start().task_token, diagnosis=diagnosis)
    assert req["account"] == MEMBER
    (message,) = slack.messages().values()
    assert f"account {MEMBER}" in message["blocks"][0]["text"]["text"]  # the header
    view = get_approval(aws, req["approval_id"])
    assert view is not None and view["account"] == MEMBER
    assert MEMBER in render_approval_page(view, action="/approvals/x")
    ticket = open_ticket_for_esm(
        aws, uuid="esm-uuid-1", reason="needs a human", classification=diagnosis["classification"], diagnosis=diagnosis
    )
    assert f"(account {MEMBER})" in ticket["title"] and f"| Account | `{MEMBER}` |" in ticket["body"]


def test_the_install_own_account_is_not_named(aws: Any, workflow: Workflow, slack: FakeSlack) -> None:
    own = aws.call("sts", "get_caller_identity")["Account"]
    diagnosis = {**DIAGNOSIS, "classification": {**DIAGNOSIS["classification"], "account": own}}
    req = ask(aws, workflow.start().task_token, diagnosis=diagnosis)
    assert "account" not in req
    (message,) = slack.messages().values()
    assert "account" not in message["blocks"][0]["text"]["text"] and own not in blocks_of(message)
    result = notify_incident(aws, "notify", {"uuid": "esm-uuid-1", "account": own, "function_arn": FN})
    assert "Account" not in json.dumps(result)


def test_mode_shadow_shows_the_shadow_stage_not_diagnosed(aws: Any, slack: FakeSlack) -> None:
    ctx = {"uuid": "esm-uuid-1", "incident_id": "inc-s", "diagnosis": DIAGNOSIS, "plan": PLAN}
    result = notify_incident(aws, "notify", {**ctx, "decision": {"shadow": True, "route": "notify"}})
    assert result["kind"] == "shadow" and result["slack"]["stage"] == STAGE_OF_KIND["shadow"]
    assert "Nothing was changed" in json.dumps(slack.calls[0]["body"]["blocks"])
    plain = notify_incident(aws, "notify", {**ctx, "incident_id": "inc-n", "decision": {"shadow": False}})
    assert plain["kind"] == "notify" and plain["slack"]["stage"] == "diagnosed"


def test_hold_stages_move_only_the_slack_app_message(aws: Any, slack: FakeSlack, notify_env: Path) -> None:
    state = {
        "uuid": "esm-uuid-1",
        "incident_id": "inc-h",
        "classification": {"entry": "connection-broker-unreachable"},
        "hold_seconds": 45,
        "outcome": {"outcome": "suspected", "reason": "waiting 45 s"},
    }
    assert show_stage(aws, "recovered", state) is None  # not a hold stage
    first = show_stage(aws, "suspected", state)
    assert first is not None and first["action"] == "posted" and first["stage"].startswith("suspected")
    second = show_stage(aws, "transient", {**state, "outcome": {"outcome": "transient", "reason": "cleared"}})
    assert second is not None and second["action"] == "updated" and second["ts"] == first["ts"]
    assert not list(notify_env.glob("notifications/*"))  # no broadcast sink for a failure that may clear itself


def test_hold_stages_without_the_slack_app_do_nothing(aws: Any, notify_env: Path) -> None:
    assert show_stage(aws, "suspected", {"uuid": "esm-uuid-1", "incident_id": "inc-x"}) is None
    assert show_stage(aws, "suspected", {"uuid": None, "outcome": "junk"}) is None


def test_a_ticket_opened_without_an_account_finds_the_member_one(aws: Any, notify_env: Path) -> None:
    from esm_medic.notify import open_ticket

    cls = {"entry": "connection-broker-unreachable", "account": MEMBER}
    member = open_ticket(aws, uuid="esm-uuid-2", reason="step failed", classification=cls, outcome="failed-with-ticket")
    assert f"(account {MEMBER})" in member["title"] and f"| Account | `{MEMBER}` |" in member["body"]
    own = open_ticket(aws, uuid="esm-uuid-3", reason="step failed", classification={**cls, "account": ""})
    assert "account" not in own["title"] and "| Account |" not in own["body"]
