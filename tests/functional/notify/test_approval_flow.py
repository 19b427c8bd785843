"""Approvals end to end against moto: a real (moto) Standard workflow waits on a task token; decisions resume it.

Covers approve / reject, one-time use (double click, replay), the allow-list, expiry, two approvers for prod,
pending_approvals, the audit trail, and that the task token never leaves the STATE table.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from approval_support import Inboxes
from notify_support import DIAGNOSIS, PLAN, Workflow

from esm_medic import approval
from esm_medic.approval import (
    ApprovalError,
    audit_records,
    decide_approval,
    get_approval,
    pending_approvals,
    request_approval,
)
from esm_medic.tables import STATE


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


def test_approve_resumes_the_workflow_once(aws: Any, workflow: Workflow) -> None:
    waiting = workflow.start()
    req = ask(aws, waiting.task_token)
    assert req["approval_id"].startswith("apr-")
    assert req["required_approvals"] == 1
    assert waiting.task_token not in json.dumps(req)
    assert workflow.status(waiting.execution_arn) == "RUNNING"

    first = decide_approval(aws, approval_id=req["approval_id"], decision="approve", approver="alice", reason="ok")
    assert first["ok"] and first["status"] == "approved"
    done = workflow.finish(waiting.execution_arn)
    assert done["status"] == "SUCCEEDED"
    assert json.loads(done["output"]) == {
        "approved": True,
        "approver": "alice",
        "approval_id": req["approval_id"],
        "approvers": ["alice"],
    }
    # double click / replay: nothing happens, a clear answer comes back
    again = decide_approval(aws, approval_id=req["approval_id"], decision="reject", approver="bob")
    assert again == {
        **again,
        "ok": False,
        "error": "already-decided",
        "status": "approved",
        "decided_by": "alice",
    }
    view = get_approval(aws, req["approval_id"])
    assert view is not None and view["status"] == "approved" and view["decided_by"] == "alice"
    assert "task_token" not in view


def test_reject_fails_the_task_with_rejected(aws: Any, workflow: Workflow, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[dict[str, Any]] = []
    real_call = aws.call

    def spy(service: str, op: str, **kw: Any) -> Any:
        if op == "send_task_failure":
            sent.append(kw)
        return real_call(service, op, **kw)

    monkeypatch.setattr(aws, "call", spy)
    waiting = workflow.start()
    req = ask(aws, waiting.task_token)
    res = decide_approval(aws, approval_id=req["approval_id"], decision="reject", approver="bob", reason="not now")
    assert res["ok"] and res["status"] == "rejected"
    assert workflow.finish(waiting.execution_arn)["status"] == "FAILED"
    assert workflow.failure(waiting.execution_arn)["error"] == "Rejected"
    # moto 5.2.5 drops the cause before the interpreter sees it, so check what was sent
    assert sent == [{"taskToken": waiting.task_token, "error": "Rejected", "cause": "Rejected by bob: not now"}]


def test_allow_list_blocks_strangers_and_audits_the_attempt(aws: Any, workflow: Workflow) -> None:
    settings = {"approvers": "alice@example.com, bob@example.com"}
    waiting = workflow.start()
    req = ask(aws, waiting.task_token, settings=settings)
    denied = decide_approval(
        aws, approval_id=req["approval_id"], decision="approve", approver="mallory@example.com", settings=settings
    )
    assert denied["ok"] is False and denied["error"] == "not-allowed"
    assert workflow.status(waiting.execution_arn) == "RUNNING"
    allowed = decide_approval(
        aws, approval_id=req["approval_id"], decision="approve", approver="Alice@Example.com", settings=settings
    )
    assert allowed["ok"] and workflow.finish(waiting.execution_arn)["status"] == "SUCCEEDED"
    records = audit_records(aws, "esm-uuid-1")
    events = [(r["event"], r["approver"], r["result"]) for r in records]
    assert ("requested", "esm-medic", "pending") in events
    assert ("denied", "mallory@example.com", "not-allowed") in events
    assert ("decision", "alice@example.com", "approved") in events  # the canonical person, not the spelling
    decision = next(r for r in records if r["result"] == "approved")
    assert decision["decision"] == "approve" and decision["action_id"] == f"approval:{req['approval_id']}"
    assert decision["time"] and decision["channel"] == "api"


def test_expired_approval_cannot_be_decided(aws: Any, workflow: Workflow) -> None:
    waiting = workflow.start()
    req = ask(aws, waiting.task_token, timeout_seconds=30)
    later = time.time() + 31
    res = decide_approval(aws, approval_id=req["approval_id"], decision="approve", approver="alice", now=later)
    assert res["ok"] is False and res["error"] == "expired" and "expired at" in res["message"]
    assert workflow.status(waiting.execution_arn) == "RUNNING"  # the state machine's own timeout ends it
    assert get_approval(aws, req["approval_id"])["status"] == "expired"  # type: ignore[index]
    assert pending_approvals(aws) == []


def test_a_workflow_that_stopped_waiting_makes_the_approval_expired(aws: Any, workflow: Workflow) -> None:
    waiting = workflow.start()
    req = ask(aws, waiting.task_token)
    aws.call("stepfunctions", "send_task_success", taskToken=waiting.task_token, output="{}")  # e.g. timed out
    workflow.finish(waiting.execution_arn)
    res = decide_approval(aws, approval_id=req["approval_id"], decision="approve", approver="alice")
    assert res["ok"] is False and res["error"] == "expired" and "InvalidToken" in res["message"]
    assert get_approval(aws, req["approval_id"])["status"] == "expired"  # type: ignore[index]


def test_unknown_ids_and_bad_input(aws: Any) -> None:
    assert decide_approval(aws, approval_id="apr-" + "x" * 24, decision="approve", approver="a")["error"] == "not-found"
    assert decide_approval(aws, approval_id="nope", decision="approve", approver="a")["error"] == "not-found"
    assert decide_approval(aws, approval_id="apr-" + "x" * 24, decision="maybe", approver="a")["error"] == "bad-input"
    assert decide_approval(aws, approval_id="apr-" + "x" * 24, decision="approve", approver=" ")["error"] == "bad-input"
    with pytest.raises(ApprovalError, match="task_token"):
        request_approval(aws, task_token="", uuid="u", incident_id="i", plan={}, diagnosis={}, timeout_seconds=60)
    with pytest.raises(ApprovalError, match="timeout_seconds"):
        request_approval(aws, task_token="t", uuid="u", incident_id="i", plan={}, diagnosis={}, timeout_seconds="soon")


def test_store_failure_on_request_raises_for_the_workflow(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STATE.env, "no-such-table")
    with pytest.raises(ApprovalError, match="ResourceNotFoundException"):
        request_approval(aws, task_token="t", uuid="u", incident_id="i", plan={}, diagnosis={}, timeout_seconds=60)


def test_prod_tier_needs_two_different_approvers(aws: Any, workflow: Workflow) -> None:
    waiting = workflow.start()
    req = ask(aws, waiting.task_token, plan={**PLAN, "tags": {"esm-medic:tier": "prod"}})
    assert req["required_approvals"] == 2
    aid = req["approval_id"]
    one = decide_approval(aws, approval_id=aid, decision="approve", approver="alice")
    assert one["ok"] and one["status"] == "pending" and "needs 1 more" in one["message"]
    same = decide_approval(aws, approval_id=aid, decision="approve", approver="alice")
    assert same["ok"] is False and same["error"] == "same-approver"
    assert workflow.status(waiting.execution_arn) == "RUNNING"
    assert [p["approvers"] for p in pending_approvals(aws)] == [["alice"]]
    two = decide_approval(aws, approval_id=aid, decision="approve", approver="bob")
    assert two["ok"] and two["status"] == "approved" and two["approvers"] == ["alice", "bob"]
    out = json.loads(workflow.finish(waiting.execution_arn)["output"])
    assert out["approved"] is True and out["approvers"] == ["alice", "bob"]


def test_prod_tier_from_esm_tags_and_the_opt_out(aws: Any, workflow: Workflow) -> None:
    fn = "arn:aws:lambda:us-east-1:123456789012:function:orders"
    esm_arn = "arn:aws:lambda:us-east-1:123456789012:event-source-mapping:esm-uuid-1"
    calls: list[str] = []
    real_call = aws.call

    def fake_call(service: str, op: str, **kw: Any) -> Any:
        if (service, op) == ("lambda", "list_tags"):
            calls.append(kw["Resource"])
            return {"Tags": {"esm-medic:tier": "Production"}}
        return real_call(service, op, **kw)

    aws.call = fake_call
    try:
        diag = {**DIAGNOSIS, "esm": {"FunctionArn": fn, "EventSourceMappingArn": esm_arn}}
        req = ask(aws, workflow.start().task_token, diagnosis=diag)
        assert calls == [esm_arn] and req["required_approvals"] == 2
        req = ask(aws, workflow.start().task_token, diagnosis=diag, settings={"prod_two_approvers": False})
        assert req["required_approvals"] == 1
    finally:
        del aws.call


def test_reject_by_one_allowed_approver_is_final_even_for_prod(aws: Any, workflow: Workflow) -> None:
    waiting = workflow.start()
    req = ask(aws, waiting.task_token, plan={**PLAN, "tags": {"esm-medic:tier": "prod"}})
    decide_approval(aws, approval_id=req["approval_id"], decision="approve", approver="alice")
    res = decide_approval(aws, approval_id=req["approval_id"], decision="reject", approver="carol")
    assert res["ok"] and res["status"] == "rejected"
    assert workflow.finish(waiting.execution_arn)["status"] == "FAILED"


def test_pending_approvals_lists_only_open_ones_without_tokens(aws: Any, workflow: Workflow) -> None:
    a = workflow.start()
    b = workflow.start()
    ra = ask(aws, a.task_token)
    rb = ask(aws, b.task_token, incident_id="inc-2")
    pending = pending_approvals(aws)
    assert {p["approval_id"] for p in pending} == {ra["approval_id"], rb["approval_id"]}
    blob = json.dumps(pending)
    assert a.task_token not in blob and b.task_token not in blob
    assert pending[0]["plan_summary"].startswith("add-sg-self-rule: self-referencing rule")
    decide_approval(aws, approval_id=ra["approval_id"], decision="approve", approver="demo-auto-approver")
    assert [p["approval_id"] for p in pending_approvals(aws)] == [rb["approval_id"]]


def test_links_are_personal_and_notifications_carry_no_token_nor_link(
    aws: Any, workflow: Workflow, notify_env: Any
) -> None:
    boxes = Inboxes(aws, ["alice@example.com", "bob@example.com"])
    settings = {
        "base_url": "https://approve.example.com/",
        "link_key": "k-123",
        "approvers": "alice@example.com, Bob@Example.com , slack:U9",
        "link_topic_arn": boxes.topic_arn,
    }
    waiting = workflow.start()
    req = ask(aws, waiting.task_token, settings=settings)
    aid = req["approval_id"]
    assert req["links_sent_to"] == ["alice@example.com", "bob@example.com"]  # Slack users decide in Slack
    item = approval.load(aws, aid)
    for person in ("alice@example.com", "bob@example.com"):
        links = boxes.links(person)
        token = links["approve"].split("sig=", 1)[1]
        assert links["approve"].startswith(f"https://approve.example.com/approvals/{aid}?decision=approve&sig=")
        claim = approval.verify_token("k-123", aid, item["plan_hash"], token)
        assert claim is not None and claim.person == person and claim.expires == item["deadline"]
        assert approval.verify_token("other-key", aid, item["plan_hash"], token) is None
    assert req["notification"]["sent"] == ["file"]
    written = "".join(p.read_text() for p in notify_env.rglob("*.md"))
    assert aid in written and "sig=" not in written and waiting.task_token not in written
    no_key = ask(aws, workflow.start().task_token, settings={**settings, "link_key": ""})
    assert no_key["links_sent_to"] == [] and any("no link key" in w for w in no_key["warnings"])
    no_topic = ask(aws, workflow.start().task_token, settings={**settings, "link_topic_arn": ""})
    assert no_topic["links_sent_to"] == [] and any("LINK_TOPIC" in w for w in no_topic["warnings"])


def test_link_key_from_ssm_securestring(aws: Any, workflow: Workflow) -> None:
    boxes = Inboxes(aws, ["alice@example.com"])
    aws.call("ssm", "put_parameter", Name="/esm-medic/approval-key", Value="from-ssm", Type="SecureString")
    settings = {
        "base_url": "https://a.example",
        "link_key_ref": "/esm-medic/approval-key",
        "approvers": "alice@example.com",
        "link_topic_arn": boxes.topic_arn,
    }
    req = ask(aws, workflow.start().task_token, settings=settings)
    token = boxes.links("alice@example.com")["approve"].split("sig=", 1)[1]
    plan_hash = approval.load(aws, req["approval_id"])["plan_hash"]
    assert approval.verify_token("from-ssm", req["approval_id"], plan_hash, token) is not None
    missing = ask(aws, workflow.start().task_token, settings={**settings, "link_key_ref": "/esm-medic/nope"})
    assert missing["links_sent_to"] == []
    assert any("ParameterNotFound" in w for w in missing["warnings"])


def test_a_decision_is_four_api_calls(aws: Any, workflow: Workflow) -> None:
    """The Slack path must answer within 3 s: a decision is one read, two writes and one Step Functions call."""
    waiting = workflow.start()
    req = ask(aws, waiting.task_token)
    aws.reset_counts()
    assert decide_approval(aws, approval_id=req["approval_id"], decision="approve", approver="alice")["ok"]
    assert dict(aws.calls) == {
        "dynamodb:GetItem": 1,
        "dynamodb:UpdateItem": 1,
        "dynamodb:PutItem": 1,
        "stepfunctions:SendTaskSuccess": 1,
    }
