"""Renderers of notifications: plain text / Markdown, Slack Block Kit, SNS subject, approval pages; redaction."""

from __future__ import annotations

import json
from typing import Any

import pytest

from esm_medic.notify.message import (
    APPROVE_ACTION_ID,
    KINDS,
    REJECT_ACTION_ID,
    SLACK_HEADER_MAX,
    build_message,
    redact,
    redact_text,
    render_approval_page,
    render_slack,
    render_subject,
    render_text,
)

UUID = "a1b2c3d4-0000-4000-8000-000000000001"
PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"


def context(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "uuid": UUID,
        "incident_id": "inc-42",
        "classification": {
            "entry": "connection-broker-unreachable",
            "title": "The ESM cannot connect to the Kafka brokers",
            "step": "network",
            "confidence": 0.95,
            "text": "PROBLEM: Connection error. password=hunter2",
        },
        "diagnosis": {
            "step": "network",
            "root_cause": {"id": "no-sg-self-rule", "summary": "no self rule on 9098", "fix": "add-sg-self-rule"},
            "esm": {"FunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:orders-consumer"},
        },
        "plan": {
            "fix": "add-sg-self-rule",
            "summary": "self rule on sg-0abc for 9098",
            "params": {"group_id": "sg-0abc"},
        },
    }
    base.update(extra)
    return base


def all_texts(blocks: Any) -> list[str]:
    out: list[str] = []
    if isinstance(blocks, dict):
        for k, v in blocks.items():
            if k == "text" and isinstance(v, str):
                out.append(v)
            else:
                out += all_texts(v)
    elif isinstance(blocks, list):
        for v in blocks:
            out += all_texts(v)
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_builds_and_renders(kind: str) -> None:
    msg = build_message(kind, context())
    text = render_text(msg)
    assert UUID in text
    assert "orders-consumer" in text
    assert "no-sg-self-rule" in text
    assert "add-sg-self-rule" in text
    assert "hunter2" not in text
    payload = render_slack(msg)
    assert payload["blocks"][0]["type"] == "header"
    assert len(payload["blocks"][0]["text"]["text"]) <= SLACK_HEADER_MAX
    assert "hunter2" not in json.dumps(payload)


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown notification kind"):
        build_message("party", context())


def test_recovered_shows_before_and_after_evidence() -> None:
    msg = build_message(
        "recovered",
        context(
            verify={
                "before": {"LastProcessingResult": "PROBLEM: Connection error."},
                "after": {"LastProcessingResult": "OK"},
            }
        ),
    )
    text = render_text(msg)
    assert "Before: LastProcessingResult=PROBLEM: Connection error." in text
    assert "After: LastProcessingResult=OK" in text
    slack = json.dumps(render_slack(msg))
    assert "*Before:*" in slack and "LastProcessingResult=OK" in slack


def test_recovered_without_evidence_says_so() -> None:
    text = render_text(build_message("recovered", context()))
    assert "- Before: —" in text and "- After: —" in text


def test_failed_message_carries_the_error() -> None:
    msg = build_message("failed", context(error={"Error": "States.TaskFailed", "Cause": "AccessDenied on ec2"}))
    assert "AccessDenied on ec2" in render_text(msg)
    assert msg.severity == "error"


def test_slack_approval_buttons_carry_only_the_opaque_id() -> None:
    token = "AAAAKgAAAAIAAAAAAAAAAbRealTaskTokenSecret"
    msg = build_message(
        "pending-approval",
        context(
            task_token=token,
            approval={
                "approval_id": "apr-abcdefghijklmnopqrstuvwx",
                "approve_url": "https://x.example/approvals/apr-abcdefghijklmnopqrstuvwx?decision=approve&sig=1",
                "reject_url": "https://x.example/approvals/apr-abcdefghijklmnopqrstuvwx?decision=reject&sig=1",
                "expires_at": "2026-11-26T13:00:00+00:00",
                "required_approvals": 2,
            },
        ),
    )
    payload = render_slack(msg)
    actions = [b for b in payload["blocks"] if b["type"] == "actions"]
    assert len(actions) == 1
    buttons = actions[0]["elements"]
    assert [b["action_id"] for b in buttons] == [APPROVE_ACTION_ID, REJECT_ACTION_ID]
    assert all(b["value"] == "apr-abcdefghijklmnopqrstuvwx" for b in buttons)
    assert buttons[0]["style"] == "primary" and buttons[1]["style"] == "danger"
    assert "confirm" in buttons[0]
    assert token not in json.dumps(payload)
    assert "needs 2 different approvers" in json.dumps(payload)
    text = render_text(msg)
    assert "confirmation page" in text and "only the confirmation button" in text
    assert token not in text


def test_slack_escapes_control_characters_and_respects_limits() -> None:
    msg = build_message("notify", context(reason="<!channel> & <@U123> " + "x" * 5000))
    payload = render_slack(msg)
    texts = all_texts(payload["blocks"])
    assert all(len(t) <= 3000 for t in texts)
    joined = "\n".join(texts)
    assert "<!channel>" not in joined and "&lt;!channel&gt; &amp; &lt;@U123&gt;" in joined
    assert len(payload["blocks"]) <= 50


def test_sns_subject_is_ascii_one_line_and_short() -> None:
    msg = build_message("ticketed", context(title="Ünïcode — title\nwith a break " + "y" * 200))
    subject = render_subject(msg)
    assert len(subject) < 100
    assert "\n" not in subject
    assert all(32 <= ord(c) < 127 for c in subject)
    assert subject.startswith("?n?code - title with a break")


def test_redaction_of_texts_and_structures() -> None:
    assert "hunter2" not in redact_text('{"password": "hunter2"}')
    assert "hunter2" not in redact_text("username=bob password=hunter2")
    assert "MIIEvQ" not in redact_text(f"cert: {PEM}")
    assert "AKIAABCDEFGHIJKLMNOP" not in redact_text("key AKIAABCDEFGHIJKLMNOP used")
    assert "eyJhbGciOi" not in redact_text("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig")
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:AmazonMSK_orders-AbCdEf"
    assert redact_text(f"secret: {arn}") == f"secret: {arn}"
    doc = redact(
        {
            "SecretString": '{"username":"u","password":"p"}',
            "task_token": "AAAAKgTaskTokenValue",
            "secret": "plain-value",
            "SecretArn": arn,
            "nested": [{"Password": "n3sted-pw", "PasswordLength": 12}],
            "SourceAccessConfigurations": [{"Type": "SASL_SCRAM_512_AUTH", "URI": arn}],
        }
    )
    flat = json.dumps(doc)
    for leaked in ('\\"p\\"', "AAAAKgTaskTokenValue", "plain-value", "n3sted-pw"):
        assert leaked not in flat
    assert doc["SecretArn"] == arn
    assert doc["nested"][0]["PasswordLength"] == 12
    assert doc["SourceAccessConfigurations"][0]["URI"] == arn


def test_approval_page_is_a_form_that_posts_and_escapes_input() -> None:
    view = {
        "approval_id": "apr-abcdefghijklmnopqrstuvwx",
        "uuid": UUID,
        "function": "<script>alert(1)</script>",
        "fix": "add-sg-self-rule",
        "plan_summary": "self rule",
        "plan": {"fix": "add-sg-self-rule", "params": {"password": "x"}},
        "expires_at": "2026-11-26T13:00:00+00:00",
        "required_approvals": 1,
    }
    html = render_approval_page(view, action="/approvals/apr-abcdefghijklmnopqrstuvwx", decision="approve", sig="s1")
    assert "<form method=post" in html
    assert "name=decision value=approve" in html and "name=decision value=reject" in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "name=approver" in html
    assert "Nothing has happened yet" in html
    assert '"password": "x"' not in html
    as_alice = render_approval_page(view, action="/a", identity="alice@example.com")
    assert "name=approver" not in as_alice and "alice@example.com" in as_alice
