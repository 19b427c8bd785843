"""What people see during an approval in the real workflow: the incident's Slack app message (the sandbox's fake
Slack Web API) moves to "waiting for approval" with the Approve / Reject buttons while the workflow waits, and to
"verified" once approved; the person who asked for the fix (the event's ``requestedBy``) cannot approve it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from esm_medic_sandbox.fake_slack import FakeSlack

SCENARIO = "missing-sg-self-rule"  # an auto-class fix, asked for approval in mode approve
REQUESTER = "dave@example.com"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    from esm_medic.notify.providers.base import clear_credentials_cache
    from esm_medic.notify.routing import clear_cache

    fake = FakeSlack()
    clear_credentials_cache()
    clear_cache()
    yield fake
    fake.close()
    clear_credentials_cache()
    clear_cache()


def stage_of(message: dict[str, Any]) -> str:
    for block in message.get("blocks") or []:
        if block["type"] == "context":
            text = " ".join(e.get("text", "") for e in block.get("elements") or [])
            if text.startswith("Stage: *"):
                return text.removeprefix("Stage: *").split("*", 1)[0]
    return ""


def with_slack(e2e: Any, slack: FakeSlack, scenario: str, **kw: Any) -> Any:
    env = {
        "ESM_MEDIC_SLACK_BOT_TOKEN_SECRET": "esm-medic/slack-bot",
        "ESM_MEDIC_SLACK_CHANNEL": "C-OPS",
        "ESM_MEDIC_SLACK_API_URL": slack.url,
    }
    t = e2e(scenario, env=env, **kw)
    t.aws.call("secretsmanager", "create_secret", Name="esm-medic/slack-bot", SecretString='{"bot_token": "xoxb-e2e"}')
    return t


def test_the_incident_slack_message_waits_for_approval_then_verifies(e2e: Any, slack: FakeSlack) -> None:
    from esm_medic.approval import decide_approval, pending_approvals

    t = with_slack(e2e, slack, SCENARIO, mode="approve")
    seen: list[dict[str, Any]] = []

    def decide(workflow: Any, arn: str) -> None:
        for pending in pending_approvals(workflow.aws):
            # the request is stored before the people are told: a person decides after the message, as here
            deadline = time.monotonic() + 10
            while not slack.messages() and time.monotonic() < deadline:
                time.sleep(0.05)
            messages = list(slack.messages().values())
            by_requester = decide_approval(
                workflow.aws, approval_id=pending["approval_id"], decision="approve", approver=REQUESTER
            )
            approved = decide_approval(
                workflow.aws, approval_id=pending["approval_id"], decision="approve", approver="erin@example.com"
            )
            seen.append({"pending": pending, "messages": messages, "requester": by_requester, "approved": approved})

    event = t.workflow.status_change_event(t.uuid)
    event["detail"]["requestedBy"] = REQUESTER
    run = t.workflow.run(event, on_poll=decide)
    assert run.outcome == "recovered", run.to_dict()
    assert len(seen) == 1, "one approval, seen once while the workflow waited"
    during = seen[0]
    assert slack.calls and all(c.get("status") == 200 for c in slack.calls), slack.calls
    (message,) = during["messages"]  # the incident's one message, as it stood during the approval
    assert stage_of(message) == "waiting for approval"
    buttons = [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert {e["value"] for e in buttons} == {during["pending"]["approval_id"]} and len(buttons) == 2
    assert during["requester"]["error"] == "requester"  # the event's requestedBy reached the approval
    assert during["approved"]["ok"] and during["approved"]["status"] == "approved"
    (final,) = slack.messages().values()
    assert stage_of(final) == "verified"
    assert "xoxb-e2e" not in json.dumps([c["body"] for c in slack.calls])  # the token only in the auth header


def test_a_held_failure_shows_suspected_then_transient_on_the_incident_message(e2e: Any, slack: FakeSlack) -> None:
    t = with_slack(e2e, slack, "healthy")
    broken = {
        "State": "Enabled",
        "StateTransitionReason": "USER_INITIATED",
        "LastProcessingResult": "PROBLEM: Connection error. Please check your event source connection configuration.",
    }
    event = t.workflow.status_change_event(t.uuid, status=broken)
    event["detail"] = {**event["detail"], "phase": "suspected", "holdSeconds": 30}
    run = t.workflow.run(event)
    assert run.outcome == "transient", run.to_dict()
    (final,) = slack.messages().values()  # one message for the incident: posted suspected, updated transient
    assert stage_of(final).startswith("transient")
    posted = next(c["body"] for c in slack.calls if c["method"] == "chat.postMessage")
    assert stage_of(posted).startswith("suspected") and "waits 1 s" in json.dumps(posted["blocks"])


def test_a_person_started_execution_names_its_requester(e2e: Any) -> None:
    """A start with ``requested_by`` in the execution input (a person's run, not an event): that person cannot
    approve the fix, anyone else allowed can."""
    from esm_medic.approval import decide_approval, pending_approvals

    t = e2e(SCENARIO, mode="approve")
    status = t.esm_status()
    execution = t.aws.call(
        "stepfunctions",
        "start_execution",
        stateMachineArn=t.workflow.state_machine_arn,
        name="by-hand-1",
        input=json.dumps({"uuid": t.uuid, "status": status, "trigger": "manual", "requested_by": "cli:dave"}),
    )
    answers: list[dict[str, Any]] = []

    def decide(workflow: Any, arn: str) -> None:
        for pending in pending_approvals(workflow.aws):
            for who in ("cli:dave", "erin@example.com"):
                answers.append(
                    decide_approval(workflow.aws, approval_id=pending["approval_id"], decision="approve", approver=who)
                )

    run = t.workflow.wait(execution["executionArn"], on_poll=decide)
    assert run.outcome == "recovered", run.to_dict()
    assert [a.get("error") or a["status"] for a in answers] == ["requester", "approved"]
