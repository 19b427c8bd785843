"""Slack as an app against a locally served Slack Web API: one chat.postMessage per incident, then chat.update
of the same message and thread replies; Block Kit from slack_sdk models; 4xx, 5xx, 429 + Retry-After and timeouts
recorded with Slack's answer; the bot token read from Secrets Manager and never printed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from esm_medic_sandbox.fake_slack import FakeSlack
from notify_support import PLAN

from esm_medic.notify import notify_incident
from esm_medic.notify.message import build_message
from esm_medic.notify.providers.base import clear_credentials_cache
from esm_medic.notify.routing import clear_cache
from esm_medic.notify.slack_app import SlackAppSettings, publish

UUID = "5a1ac4a9-0000-4000-8000-00000000beef"
TOKEN = "xoxb-test-token-do-not-print"


@pytest.fixture
def slack(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSlack]:
    fake = FakeSlack()
    aws.call(
        "secretsmanager", "create_secret", Name="esm-medic/slack-bot", SecretString=json.dumps({"bot_token": TOKEN})
    )
    monkeypatch.setenv("ESM_MEDIC_SLACK_BOT_TOKEN_SECRET", "esm-medic/slack-bot")
    monkeypatch.setenv("ESM_MEDIC_SLACK_CHANNEL", "C-DEFAULT")
    monkeypatch.setenv("ESM_MEDIC_SLACK_API_URL", fake.url)
    clear_credentials_cache()
    clear_cache()
    yield fake
    fake.close()
    clear_credentials_cache()


def ctx(**extra: Any) -> dict[str, Any]:
    base = {
        "uuid": UUID,
        "incident_id": "inc-slack-1",
        "function_arn": "arn:aws:lambda:us-east-1:123456789012:function:orders",
        "classification": {"entry": "connection-broker-unreachable", "title": "cannot reach brokers"},
        "plan": PLAN,
    }
    base.update(extra)
    return base


def test_slack_app_posts_once_then_updates_the_same_message_with_thread_replies(
    aws: Any, notify_env: Path, slack: FakeSlack, capsys: pytest.CaptureFixture[str]
) -> None:
    first = notify_incident(aws, "notify", ctx())
    assert first["slack"]["action"] == "posted" and "slack-app" in first["sent"]
    second = notify_incident(aws, "pending-approval", ctx())
    third = notify_incident(
        aws, "recovered", ctx(before={"LastProcessingResult": "PROBLEM"}, after={"State": "Enabled"})
    )
    assert second["slack"]["action"] == third["slack"]["action"] == "updated"
    assert slack.methods() == ["chat.postMessage", "chat.update", "chat.postMessage", "chat.update", "chat.postMessage"]
    post, update1, reply1, update2, reply2 = (c["body"] for c in slack.calls)
    assert post["channel"] == "C-DEFAULT" and "thread_ts" not in post
    ts = first["slack"]["ts"]
    assert update1["ts"] == update2["ts"] == ts and reply1["thread_ts"] == reply2["thread_ts"] == ts
    assert post["blocks"][0]["type"] == "header"
    stages = [json.dumps(b["blocks"]) for b in (post, update1, update2)]
    assert "Stage: *diagnosed*" in stages[0] and "Stage: *waiting for approval*" in stages[1]
    assert "Stage: *verified*" in stages[2] and "*verified*" in reply2["text"]
    assert all(c["auth"] == f"Bearer {TOKEN}" for c in slack.calls)
    out = capsys.readouterr()
    assert TOKEN not in out.out + out.err


def test_slack_app_uses_the_channel_routed_from_the_owner_tags(
    aws: Any, notify_env: Path, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    def tags(service: str, op: str, **kw: Any) -> dict[str, Any]:
        if op == "list_tags" and kw["Resource"].endswith(":function:orders"):
            return {"Tags": {"esm-medic:slack-channel": "C-ORDERS", "esm-medic:owner": "team-orders"}}
        if op == "list_tags":
            return {"Tags": {}}
        return real(service, op, **kw)

    real = aws.call
    monkeypatch.setattr(aws, "call", tags)
    result = notify_incident(aws, "notify", ctx())
    assert result["route"]["slack_channel"] == "C-ORDERS" and result["route"]["source"]["slack_channel"] == "function"
    assert slack.calls[0]["body"]["channel"] == "C-ORDERS"
    assert "team-orders" in json.dumps(slack.calls[0]["body"]["blocks"])


@pytest.mark.parametrize(
    ("status", "answer", "headers", "retryable", "retry_after"),
    [
        (200, {"ok": False, "error": "channel_not_found"}, {}, False, None),
        (500, {"ok": False, "error": "internal_error"}, {}, True, None),
        (429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "30"}, True, 30.0),
    ],
    ids=["4xx-channel-not-found", "5xx", "429-retry-after"],
)
def test_slack_app_failures_are_recorded_with_slacks_answer(
    aws: Any,
    notify_env: Path,
    slack: FakeSlack,
    status: int,
    answer: dict[str, Any],
    headers: dict[str, str],
    retryable: bool,
    retry_after: float | None,
) -> None:
    slack.script.append((status, answer, headers, 0.0))
    settings = SlackAppSettings.from_env()
    msg = build_message("notify", ctx())
    out = publish(aws, msg, incident="inc-f", channel="C1", settings=settings)
    err = out["error"]
    assert out["action"] == "failed" and err["answer"] == answer["error"]
    assert err["retryable"] is retryable and err.get("retry_after") == retry_after
    again = publish(aws, msg, incident="inc-f", channel="C1", settings=settings)  # Slack is back: posts once
    assert again["action"] == "posted" and slack.methods().count("chat.postMessage") == len(slack.calls)


def test_slack_app_timeout_is_recorded_as_retryable(aws: Any, notify_env: Path, slack: FakeSlack) -> None:
    slack.script += [(200, {}, {}, 2.5), (200, {}, {}, 2.5)]
    settings = replace(SlackAppSettings.from_env(), timeout=1)
    out = publish(aws, build_message("failed", ctx()), incident="inc-t", channel="C1", settings=settings)
    assert out["action"] == "failed" and "request failed" in out["error"]["error"] and out["error"]["retryable"]
