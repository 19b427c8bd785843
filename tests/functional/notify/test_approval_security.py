"""The approval security suite: every attack tried on the approval handlers, each a named test; none is accepted.

An attack is "accepted" when it decides anything, records an approver it did not prove, or counts one person twice.
Each test checks the HTTP answer, the stored approval and the paused workflow.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from approval_support import (
    BASE_URL,
    KEY,
    SIGNING,
    Inboxes,
    form_post,
    http,
    slack_body,
    slack_event,
    slack_headers,
    split,
)
from notify_support import DIAGNOSIS, PLAN, Workflow

from esm_medic.approval import decide_approval, get_approval, make_token, request_approval
from esm_medic.handlers import approval_http
from esm_medic.notify import sinks as sinks_mod

PEOPLE = ["alice@example.com", "bob@example.com", "carol@example.com"]
PROD_PLAN = {**PLAN, "tags": {"esm-medic:tier": "prod"}}


class Ctx:
    function_name = "approval_http"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:approval_http"
    aws_request_id = "req-sec"

    def get_remaining_time_in_millis(self) -> int:
        return 3000


class Fake:
    status_code = 200
    text = "ok"
    headers: dict[str, str] = {}


@pytest.fixture
def boxes(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Inboxes:
    b = Inboxes(aws, PEOPLE)
    for name, value in {
        "ESM_MEDIC_APPROVAL_BASE_URL": BASE_URL,
        "ESM_MEDIC_APPROVAL_KEY": KEY,
        "ESM_MEDIC_APPROVAL_LINK_TOPIC_ARN": b.topic_arn,
        "ESM_MEDIC_SLACK_SIGNING_SECRET": SIGNING,
        "ESM_MEDIC_APPROVERS": ",".join([*PEOPLE, "slack:U222"]),
        "ESM_MEDIC_APPROVER_IDENTITIES": "alice@example.com=slack:U111",
    }.items():
        monkeypatch.setenv(name, value)

    class Session:
        def post(self, url: str, json: Any = None, timeout: Any = None) -> Fake:
            return Fake()

    monkeypatch.setattr(sinks_mod, "http_session", lambda: Session())
    return b


def call(event: dict[str, Any]) -> dict[str, Any]:
    return approval_http.handler(event, Ctx())  # type: ignore[no-any-return]


def ask(aws: Any, workflow: Workflow, **kw: Any) -> tuple[Any, str]:
    waiting = workflow.start()
    req = request_approval(
        aws,
        task_token=waiting.task_token,
        uuid="esm-uuid-sec",
        incident_id="inc-sec",
        plan=kw.pop("plan", PLAN),
        diagnosis=DIAGNOSIS,
        timeout_seconds=kw.pop("timeout_seconds", 600),
        **kw,
    )
    return waiting, str(req["approval_id"])


def untouched(aws: Any, workflow: Workflow, waiting: Any, aid: str) -> None:
    view = get_approval(aws, aid)
    assert view is not None and view["status"] == "pending" and view["approvers"] == []
    assert workflow.status(waiting.execution_arn) == "RUNNING"


# ------------------------------------------------------------------------------------------------ web identity
def test_a_typed_name_never_chooses_the_approver(aws: Any, workflow: Workflow, boxes: Inboxes) -> None:
    waiting, aid = ask(aws, workflow)
    path, query = split(boxes.links("bob@example.com")["approve"])
    resp = call(form_post(path, sig=query["sig"], decision="approve", approver="alice@example.com"))
    assert resp["statusCode"] == 200 and "approved by bob@example.com" in resp["body"]
    assert json.loads(workflow.finish(waiting.execution_arn)["output"])["approver"] == "bob@example.com"
    assert get_approval(aws, aid)["decided_by"] == "bob@example.com"  # type: ignore[index]


@pytest.mark.parametrize("typed", ["alice@example.com", "slack:U222", "slack:U111", "ALICE@example.com"])
def test_a_typed_name_without_a_link_is_refused(aws: Any, workflow: Workflow, boxes: Inboxes, typed: str) -> None:
    waiting, aid = ask(aws, workflow)
    assert call(form_post(f"/approvals/{aid}", decision="approve", approver=typed))["statusCode"] == 404
    body = json.dumps({"decision": "approve", "approver": typed})
    resp = call(http("POST", f"/approvals/{aid}", body=body, headers={"content-type": "application/json"}))
    assert resp["statusCode"] == 404
    untouched(aws, workflow, waiting, aid)


def test_a_forwarded_link_approves_only_as_its_owner_once(aws: Any, workflow: Workflow, boxes: Inboxes) -> None:
    waiting, aid = ask(aws, workflow, plan=PROD_PLAN)
    path, query = split(boxes.links("alice@example.com")["approve"])
    assert call(form_post(path, sig=query["sig"], decision="approve"))["statusCode"] == 200
    for typed in ("bob@example.com", "carol@example.com", ""):  # the forwardee tries again under other names
        assert call(form_post(path, sig=query["sig"], decision="approve", approver=typed))["statusCode"] == 409
    assert get_approval(aws, aid)["approvers"] == ["alice@example.com"]  # type: ignore[index]
    assert workflow.status(waiting.execution_arn) == "RUNNING"


# ------------------------------------------------------------------------------------------------ one person, one vote
@pytest.mark.parametrize("second", ["ALICE@example.com", " Alice@Example.COM ", "alice@example.com\t", "slack:U111"])
def test_prod_two_person_rule_counts_people_not_spellings(aws: Any, workflow: Workflow, second: str) -> None:
    settings = {"approvers": ",".join(PEOPLE), "identities": "alice@example.com=slack:U111"}
    waiting, aid = ask(aws, workflow, plan=PROD_PLAN, settings=settings)
    first = decide_approval(aws, approval_id=aid, decision="approve", approver="alice@example.com", settings=settings)
    assert first["ok"] and first["status"] == "pending"
    again = decide_approval(aws, approval_id=aid, decision="approve", approver=second, settings=settings)
    assert again["ok"] is False and again["error"] == "same-approver"
    assert get_approval(aws, aid)["approvers"] == ["alice@example.com"]  # type: ignore[index]
    assert workflow.status(waiting.execution_arn) == "RUNNING"


def test_alice_on_the_web_and_alice_in_slack_is_one_vote(aws: Any, workflow: Workflow, boxes: Inboxes) -> None:
    waiting, aid = ask(aws, workflow, plan=PROD_PLAN)
    path, query = split(boxes.links("alice@example.com")["approve"])
    assert call(form_post(path, sig=query["sig"], decision="approve"))["statusCode"] == 200
    resp = call(slack_event(aid, user="U111"))
    assert resp["statusCode"] == 200 and "already approved" in json.loads(resp["body"])["text"]
    assert get_approval(aws, aid)["approvers"] == ["alice@example.com"]  # type: ignore[index]
    assert workflow.status(waiting.execution_arn) == "RUNNING"
    bob_path, bob_query = split(boxes.links("bob@example.com")["approve"])
    assert call(form_post(bob_path, sig=bob_query["sig"], decision="approve"))["statusCode"] == 200
    out = json.loads(workflow.finish(waiting.execution_arn)["output"])
    assert out["approvers"] == ["alice@example.com", "bob@example.com"]


def test_the_requester_cannot_approve_their_own_fix(
    aws: Any, workflow: Workflow, boxes: Inboxes, monkeypatch: pytest.MonkeyPatch
) -> None:
    waiting, aid = ask(aws, workflow, requested_by=" Alice@Example.com ")
    path, query = split(boxes.links("alice@example.com")["approve"])
    assert call(form_post(path, sig=query["sig"], decision="approve"))["statusCode"] == 403
    assert call(slack_event(aid, user="U111"))["statusCode"] == 200  # answered in Slack, but refused
    untouched(aws, workflow, waiting, aid)
    monkeypatch.setenv("ESM_MEDIC_APPROVAL_EXCLUDE_REQUESTER", "false")
    assert call(form_post(path, sig=query["sig"], decision="approve"))["statusCode"] == 200


# ------------------------------------------------------------------------------------------------ links
@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda t: t[:-1], id="truncated"),
        pytest.param(lambda t: t[:-4] + "0000", id="forged-mac"),
        pytest.param(lambda t: t.split(".")[0], id="person-only"),
        pytest.param(lambda t: "0" * 32, id="old-style"),
        pytest.param(lambda t: t.replace(".", ".9", 1), id="extended-expiry"),
        pytest.param(lambda t: t + "\u00e9", id="non-ascii"),
        pytest.param(lambda t: "\u0661" * 64, id="arabic-digits"),
        pytest.param(lambda t: t.upper(), id="case-changed"),
        pytest.param(lambda t: " " + t, id="padded"),
        pytest.param(lambda t: t * 20, id="huge"),
    ],
)
def test_forged_truncated_or_non_ascii_link_signatures_are_404(
    aws: Any, workflow: Workflow, boxes: Inboxes, mutate: Any
) -> None:
    waiting, aid = ask(aws, workflow)
    path, query = split(boxes.links("alice@example.com")["approve"])
    bad = mutate(query["sig"])
    assert call(http("GET", path, query={"sig": bad}))["statusCode"] == 404
    assert call(form_post(path, sig=bad, decision="approve"))["statusCode"] == 404
    untouched(aws, workflow, waiting, aid)


def test_foreign_hmacs_are_404(aws: Any, workflow: Workflow, boxes: Inboxes) -> None:
    waiting, aid = ask(aws, workflow)
    _, other = ask(aws, workflow)
    from esm_medic.approval import load

    phash = load(aws, aid)["plan_hash"]
    deadline = load(aws, aid)["deadline"]
    other_links = [u for text in boxes.messages("alice@example.com") for u in text.split() if f"/{other}?" in u]
    assert len(other_links) == 2  # alice's approve / reject links of the other approval
    foreign = [
        make_token("another-key", aid, "alice@example.com", phash, deadline),  # another key
        make_token(KEY, aid, "alice@example.com", "0" * 64, deadline),  # another plan
        make_token(KEY, other, "alice@example.com", phash, deadline),  # another approval
        make_token(KEY, aid, "mallory@example.com", phash, deadline),  # a valid signature for a stranger
    ]
    for token in foreign[:3]:
        assert call(form_post(f"/approvals/{aid}", sig=token, decision="approve"))["statusCode"] == 404
    assert call(form_post(f"/approvals/{aid}", sig=foreign[3], decision="approve"))["statusCode"] == 403
    for url in other_links:
        _, query = split(url)
        assert call(form_post(f"/approvals/{aid}", sig=query["sig"], decision="approve"))["statusCode"] == 404
    untouched(aws, workflow, waiting, aid)


def test_non_ascii_approval_ids_are_404(aws: Any, boxes: Inboxes) -> None:
    for aid in (
        "apr-\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9",
        "apr-%00",
    ):
        assert call(http("GET", f"/approvals/{aid}", query={"sig": "x"}))["statusCode"] == 404
        assert call(form_post(f"/approvals/{aid}", sig="\u00e9", decision="approve"))["statusCode"] == 404


def test_a_reused_link_is_409(aws: Any, workflow: Workflow, boxes: Inboxes) -> None:
    waiting, aid = ask(aws, workflow)
    links = boxes.links("alice@example.com")
    path, query = split(links["approve"])
    assert call(form_post(path, sig=query["sig"], decision="approve"))["statusCode"] == 200
    assert call(form_post(path, sig=query["sig"], decision="approve"))["statusCode"] == 409
    assert call(form_post(path, sig=query["sig"], decision="reject"))["statusCode"] == 409
    assert workflow.finish(waiting.execution_arn)["status"] == "SUCCEEDED"
    assert get_approval(aws, aid)["status"] == "approved"  # type: ignore[index]


def test_an_expired_link_is_410(aws: Any, workflow: Workflow, boxes: Inboxes) -> None:
    waiting, aid = ask(aws, workflow, timeout_seconds=1)
    path, query = split(boxes.links("alice@example.com")["approve"])
    time.sleep(1.1)
    assert call(http("GET", path, query=query))["statusCode"] == 410
    assert call(form_post(path, sig=query["sig"], decision="approve"))["statusCode"] == 410
    assert workflow.status(waiting.execution_arn) == "RUNNING"
    assert get_approval(aws, aid)["status"] == "expired"  # type: ignore[index]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_link_scanners_change_nothing(aws: Any, workflow: Workflow, boxes: Inboxes, method: str) -> None:
    waiting, aid = ask(aws, workflow)
    for decision, url in boxes.links("alice@example.com").items():
        path, query = split(url)
        for agent in ("Slackbot-LinkExpanding 1.0", "Microsoft Office/16.0", "Mozilla/5.0 SafeLinks"):
            resp = call(http(method, path, query=query, headers={"user-agent": agent}))
            assert resp["statusCode"] == 200, decision
    untouched(aws, workflow, waiting, aid)


# ------------------------------------------------------------------------------------------------ Slack
WHITESPACE = [" ", "\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f", "\x85", "\xa0", "\u2028", "\x00"]


def test_a_slack_request_replays_with_no_whitespace_variant(aws: Any, workflow: Workflow, boxes: Inboxes) -> None:
    waiting, aid = ask(aws, workflow, plan=PROD_PLAN)
    body = slack_body(aid, user="U222")
    headers = slack_headers(body)
    first = call(http("POST", "/slack/actions", body=body, headers=headers, b64=True))
    assert first["statusCode"] == 200
    accepted = []
    for ws in WHITESPACE:
        raw = ws.encode()
        variants = [
            (body + raw, headers),
            (raw + body, headers),
            (body, {**headers, "X-Slack-Signature": headers["X-Slack-Signature"] + ws}),
            (body, {**headers, "X-Slack-Signature": ws + headers["X-Slack-Signature"]}),
            (body, {**headers, "X-Slack-Request-Timestamp": headers["X-Slack-Request-Timestamp"] + ws}),
            (body, {**headers, "X-Slack-Request-Timestamp": ws + headers["X-Slack-Request-Timestamp"]}),
        ]
        for b, h in variants:
            resp = call(http("POST", "/slack/actions", body=b, headers=h, b64=True))
            if resp["statusCode"] != 401:
                accepted.append((repr(ws), resp["statusCode"]))
    replay = call(http("POST", "/slack/actions", body=body, headers=headers, b64=True))
    assert replay["statusCode"] == 401 and "replayed" in replay["body"]
    assert accepted == []
    assert get_approval(aws, aid)["approvers"] == ["slack:u222"]  # type: ignore[index]
    assert workflow.status(waiting.execution_arn) == "RUNNING"


def test_stale_unsigned_and_wrongly_signed_slack_requests_are_401(aws: Any, workflow: Workflow, boxes: Inboxes) -> None:
    waiting, aid = ask(aws, workflow)
    assert call(slack_event(aid, ts=int(time.time()) - 301))["statusCode"] == 401
    assert call(slack_event(aid, ts=int(time.time()) + 301))["statusCode"] == 401
    assert call(slack_event(aid, secret="wrong"))["statusCode"] == 401
    unsigned = slack_event(aid)
    unsigned["headers"] = {"content-type": "application/x-www-form-urlencoded"}
    assert call(unsigned)["statusCode"] == 401
    body = slack_body(aid)
    h = slack_headers(body)
    for sig in ("v1=" + h["X-Slack-Signature"][3:], h["X-Slack-Signature"].upper(), "v0=\u00e9" * 3, ""):
        assert (
            call(http("POST", "/slack/actions", body=body, headers={**h, "X-Slack-Signature": sig}))["statusCode"]
            == 401
        )
    bad_utf8 = b"payload=\xff\xfe"
    assert (
        call(http("POST", "/slack/actions", body=bad_utf8, headers=slack_headers(bad_utf8), b64=True))["statusCode"]
        == 401
    )
    untouched(aws, workflow, waiting, aid)


def test_slack_identity_comes_from_the_signed_user_id_only(aws: Any, workflow: Workflow, boxes: Inboxes) -> None:
    waiting, aid = ask(aws, workflow)
    resp = call(slack_event(aid, user="U666", username="alice@example.com"))
    assert resp["statusCode"] == 200 and "allow-list" in json.loads(resp["body"])["text"]
    assert call(slack_event(aid, user="alice@example.com"))["statusCode"] == 400
    untouched(aws, workflow, waiting, aid)
