"""The stages the incident's Slack message shows (suspected, transient and shadow each their own), who asked for a
fix, and the ESM's account named only when it is not the install's own."""

from __future__ import annotations

import json
from typing import Any

import pytest

from esm_medic.approval.request import requested_by_of
from esm_medic.notify.message import KINDS, build_message, render_text
from esm_medic.notify.routing import foreign_account, with_account
from esm_medic.notify.slack_blocks import STAGE_OF_KIND, render_slack
from esm_medic.notify.ticket_render import render_ticket

UUID = "7e57a11e-0000-4000-8000-000000000001"
MEMBER = "210987654321"
HOME = "123456789012"
CTX = {"uuid": UUID, "function": "orders", "classification": {"entry": "connection-broker-unreachable"}}


def test_suspected_transient_and_shadow_have_their_own_stages() -> None:
    stages = {k: STAGE_OF_KIND[k] for k in ("suspected", "transient", "shadow")}
    assert len(set(stages.values())) == 3
    assert stages["suspected"].startswith("suspected") and "holding" in stages["suspected"]
    assert stages["transient"].startswith("transient") and "nothing changed" in stages["transient"]
    assert stages["shadow"].startswith("shadow") and "nothing changed" in stages["shadow"]
    assert set(STAGE_OF_KIND) <= set(KINDS)


@pytest.mark.parametrize("kind", ["suspected", "transient", "shadow"])
def test_each_hold_kind_renders_its_own_stage_and_says_nothing_changed(kind: str) -> None:
    msg = build_message(kind, {**CTX, "hold_seconds": 90})
    blocks = json.dumps(render_slack(msg, stage=STAGE_OF_KIND[kind])["blocks"])
    assert f"Stage: *{STAGE_OF_KIND[kind]}*" in blocks
    assert "no change made" in msg.title.lower() or "nothing" in msg.summary.lower()


def test_suspected_says_how_long_it_holds() -> None:
    assert "waits 90 s" in build_message("suspected", {**CTX, "hold_seconds": 90}).summary
    assert "waits a while" in build_message("suspected", {**CTX, "hold_seconds": "x"}).summary


def test_a_named_account_is_in_the_title_text_and_slack_fields() -> None:
    msg = build_message("notify", {**CTX, "account": MEMBER})
    assert msg.account == MEMBER and f"(account {MEMBER})" in msg.title
    assert f"- **Account:** {MEMBER}" in render_text(msg)
    payload = render_slack(msg)
    assert f"account {MEMBER}" in payload["blocks"][0]["text"]["text"]
    assert f"*Account*\\n`{MEMBER}`" in json.dumps(payload["blocks"])
    plain = build_message("notify", {**CTX, "account": "not-an-id"})
    assert plain.account == "" and "account" not in plain.title


def test_ticket_names_the_account_only_when_given() -> None:
    args: dict[str, Any] = {
        "ticket_id": "t-1",
        "uuid": UUID,
        "incident_id": "inc-1",
        "reason": "r",
        "classification": {},
        "diagnosis": None,
        "plan": None,
        "outcome": "ticketed",
        "function": "orders",
    }
    title, body, _ = render_ticket(**args, account=MEMBER)
    assert f"(account {MEMBER})" in title and f"| Account | `{MEMBER}` |" in body
    title, body, _ = render_ticket(**args)
    assert "account" not in title and "| Account |" not in body


class Home:
    def __init__(self, account: str | Exception) -> None:
        self.account = account

    def account_id(self) -> str:
        if isinstance(self.account, Exception):
            raise self.account
        return self.account


def test_foreign_account_is_empty_for_the_install_own() -> None:
    member = {"classification": {"account": MEMBER}}
    assert foreign_account(Home(HOME), member) == MEMBER  # type: ignore[arg-type]
    assert foreign_account(Home(MEMBER), member) == ""  # type: ignore[arg-type]
    assert (
        foreign_account(Home(HOME), {"diagnosis": {"function_arn": f"arn:aws:lambda:us-east-1:{HOME}:function:f"}})
        == ""
    )  # type: ignore[arg-type]
    assert foreign_account(Home(HOME), {}) == ""  # type: ignore[arg-type]
    assert foreign_account(Home(RuntimeError("no sts")), member) == MEMBER  # type: ignore[arg-type]
    assert foreign_account(None, member) == MEMBER
    assert "account" not in with_account(Home(HOME), {"account": HOME, "uuid": UUID})  # type: ignore[arg-type]
    assert with_account(Home(HOME), {"account": MEMBER})["account"] == MEMBER  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"requested_by": "alice"}, "alice"),
        ({"execution_input": {"requested_by": "cli:bob"}}, "cli:bob"),
        ({"execution_input": {"event": {"requested_by": "carol"}}}, "carol"),
        ({"event": {"detail": {"requestedBy": "dave"}}}, "dave"),
        (
            {"event": {"detail": {"userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::1:user/erin"}}}},
            "arn:aws:iam::1:user/erin",
        ),
        ({"event": {"detail": {"userIdentity": {"type": "AWSService", "arn": "x"}}}}, ""),
        ({"requested_by": " ", "execution_input": None, "event": "junk"}, ""),
        ({"requested_by": "frank", "execution_input": {"requested_by": "gina"}}, "frank"),
        ({}, ""),
    ],
)
def test_requested_by_comes_from_the_payload_the_execution_input_or_the_event(
    payload: dict[str, Any], expected: str
) -> None:
    assert requested_by_of(payload) == expected
