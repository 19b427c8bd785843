"""Fault paths of the real workflow: a handler that raises, a flaky handler, EC2 throttling, an approval that times
out or is rejected, a verification that never recovers, the kill switch, a hand-started execution with garbage
input, and a remediation replayed with the same idempotency key. Every execution must end with a recorded
outcome; nothing may change twice or stay changed when it should not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

SCENARIO = "missing-sg-self-rule"  # auto-class fix: add a self-referencing rule for TCP 9098 on the cluster SG


def self_rule_ports(t: Any) -> list[int]:
    """Ports of the inbound rules on the cluster SG that reference the SG itself."""
    sg = t.scenario.security_group_ids[0]
    group = t.aws.call("ec2", "describe_security_groups", GroupIds=[sg])["SecurityGroups"][0]
    ports = []
    for perm in group.get("IpPermissions") or []:
        if any(p.get("GroupId") == sg for p in perm.get("UserIdGroupPairs") or []):
            ports.append(int(perm.get("FromPort", -1)))
    return sorted(ports)


def test_a_handler_that_raises_ends_failed_with_a_ticket(e2e: Any) -> None:
    def broken(event: Any, context: Any) -> Any:
        raise RuntimeError("diagnosis exploded")

    t = e2e(SCENARIO, handlers={"diagnose": broken})
    run = t.workflow.run(t.uuid)
    assert run.status == "FAILED" and run.error == "EsmMedic.Failed"
    assert run.outcome == "failed-with-ticket"
    final = t.final_outcomes()[-1]
    assert final["outcome"] == "failed-with-ticket"
    assert final["failed_step"] == "diagnose" and final["error"] == "RuntimeError"
    assert "diagnosis exploded" in final["reason"]
    assert final["ticket_id"] and Path(final["ticket_location"]).read_text(encoding="utf-8")
    assert [r["status"] for r in t.workflow_rows()] == ["failed-with-ticket"]
    assert not t.action_rows() and self_rule_ports(t) == []


def test_a_flaky_handler_is_retried(e2e: Any) -> None:
    from esm_medic.handlers import classify
    from esm_medic.handlers._common import Transient

    calls: list[int] = []

    def flaky(event: Any, context: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise Transient("connection reset by peer")
        return classify.handler(event, context)

    t = e2e(SCENARIO, handlers={"classify": flaky})
    run = t.workflow.run(t.uuid)
    assert run.outcome == "recovered", run.to_dict()
    step = run.step("Classify")
    assert step is not None and step.retries == 1 and step.error == "Transient"
    assert len(calls) == 2


def test_ec2_throttling_is_retried_and_changes_once(e2e: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.models.security_groups import SecurityGroupBackend

    original = SecurityGroupBackend.authorize_security_group_ingress
    throttled: list[int] = []

    def throttle(self: Any, *args: Any, **kwargs: Any) -> Any:
        if len(throttled) < 2:
            throttled.append(1)
            raise EC2ClientError("RequestLimitExceeded", "Request limit exceeded.")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SecurityGroupBackend, "authorize_security_group_ingress", throttle)
    # no adapter retries inside the function: the throttling surfaces to Step Functions at once
    t = e2e(SCENARIO, env={"ESM_MEDIC_AWS_MAX_ATTEMPTS": "1"})
    run = t.workflow.run(t.uuid)
    assert run.outcome == "recovered", run.to_dict()
    step = run.step("Remediate")
    assert step is not None and step.retries >= 1 and step.error == "Throttled"
    assert len(throttled) == 2
    assert self_rule_ports(t) == [9098]
    statuses = [r["status"] for r in t.action_rows()]
    assert statuses.count("applied") == 1
    assert statuses.count("failed") == step.retries  # each throttled attempt is audited and left nothing behind


def test_approval_timeout_ends_in_a_ticket_and_changes_nothing(e2e: Any) -> None:
    t = e2e(SCENARIO, mode="approve", tunables={"ApprovalTimeoutSeconds": 2, "ApprovalHeartbeatSeconds": 1})
    run = t.workflow.run(t.uuid)  # nobody approves
    assert run.status == "SUCCEEDED" and run.outcome == "ticketed", run.to_dict()
    assert (run.output or {})["ticket_reason"]["code"] == "approval-timeout"
    assert "RequestApproval" in run.state_names() and "Remediate" not in run.state_names()
    assert [r["status"] for r in t.action_rows()] == ["planned"]  # the plan shown to approvers; nothing started
    assert self_rule_ports(t) == []
    assert [r["status"] for r in t.workflow_rows()] == ["pending-approval", "ticketed"]
    assert t.esm_status()["LastProcessingResult"].startswith("PROBLEM")


def test_rejected_approval_ends_in_a_ticket(e2e: Any) -> None:
    from esm_medic.approval import decide_approval, pending_approvals

    decided: list[dict[str, Any]] = []

    def reject(workflow: Any, arn: str) -> None:
        for pending in pending_approvals(workflow.aws):
            decided.append(
                decide_approval(
                    workflow.aws, approval_id=pending["approval_id"], decision="reject", approver="alice", reason="no"
                )
            )

    t = e2e(SCENARIO, mode="approve")
    run = t.workflow.run(t.uuid, on_poll=reject)
    assert decided, "the rejecter never saw a pending approval"
    assert run.outcome == "ticketed", run.to_dict()
    assert (run.output or {})["ticket_reason"]["code"] == "approval-rejected"
    assert [r["status"] for r in t.action_rows()] == ["planned"] and self_rule_ports(t) == []


def test_verification_that_never_recovers_rolls_back_and_tickets(e2e: Any) -> None:
    from esm_medic_sandbox.patches import set_esm_status

    from esm_medic.config import Settings
    from esm_medic.remediate.budget import failed_verifications

    t = e2e(SCENARIO)
    broken = t.esm_status()["LastProcessingResult"]
    assert broken.startswith("PROBLEM")
    set_esm_status(t.uuid, last_processing_result=broken)  # whatever the account looks like, the ESM stays broken
    run = t.workflow.run(t.uuid)
    assert run.outcome == "ticketed", run.to_dict()
    out = run.output or {}
    assert out["ticket_reason"]["code"] == "verification-failed"
    assert out["verification"]["attempts"] == 3 and out["verification"]["exhausted"] is True
    assert out["rollback"]["rolled_back"] is True
    assert self_rule_ports(t) == []  # the rule it added is gone again
    statuses = [r["status"] for r in t.action_rows()]
    assert statuses[:3] == ["started", "applied", "restarted"] and statuses[-2:] == ["verify-failed", "rolled-back"]
    assert failed_verifications(t.aws, Settings.from_env(), t.uuid).get() == 1


def test_kill_switch_stops_the_change(e2e: Any) -> None:
    t = e2e(SCENARIO)
    t.aws.call("ssm", "put_parameter", Name="/esm-medic/kill-switch", Value="on", Type="String")
    run = t.workflow.run(t.uuid)
    assert run.outcome == "ticketed", run.to_dict()
    assert "kill switch" in (run.output or {})["ticket_reason"]["text"]
    assert not t.action_rows() and self_rule_ports(t) == []


def test_garbage_input_still_records_an_outcome(e2e: Any) -> None:
    t = e2e(SCENARIO)
    wf = t.workflow
    arn = wf.aws.call(
        "stepfunctions",
        "start_execution",
        stateMachineArn=wf.state_machine_arn,
        name="by-hand-garbage",
        input=json.dumps({"hello": "world"}),
    )["executionArn"]
    run = wf.wait(arn)
    assert run.status == "FAILED" and run.outcome == "failed-with-ticket"
    record = wf.outcomes("unknown")[-1]
    assert record["failed_step"] == "classify" and record["error"] == "InvalidInput"


def test_replayed_remediation_changes_nothing_twice(e2e: Any) -> None:
    """Invoke the remediate function again with the exact payload of the run: Powertools idempotency answers
    with the stored result; no new audit row, no second rule."""
    t = e2e(SCENARIO)
    run = t.workflow.run(t.uuid)
    assert run.outcome == "recovered"
    remediate_arn = t.workflow.function_arns["remediate"]
    params = [
        json.loads(e["taskScheduledEventDetails"]["parameters"]) for e in run.events if e["type"] == "TaskScheduled"
    ]
    scheduled = [p for p in params if p.get("FunctionName") == remediate_arn]
    assert len(scheduled) == 1
    payload = scheduled[0]["Payload"]
    rows = len(t.action_rows())
    first = (run.output or {})["action_record"]
    resp = t.aws.call(
        "lambda", "invoke", FunctionName=t.workflow.function_name("remediate"), Payload=json.dumps(payload).encode()
    )
    again = json.loads(resp["Payload"].read())
    assert "FunctionError" not in resp, again
    assert again["action_id"] == first["action_id"] and again["changed"] is True
    assert len(t.action_rows()) == rows
    assert self_rule_ports(t) == [9098]


def test_an_execution_that_dies_without_an_outcome_is_caught_by_the_safety_net(e2e: Any) -> None:
    """The Record step itself keeps failing (e.g. DynamoDB down past every retry): the execution ends in
    RecordFailed with no outcome. The execution-ended rule (the event AWS emits for FAILED / TIMED_OUT / ABORTED
    executions; it also covers States.Runtime, which States.ALL does not catch in AWS) then has the record function
    write failed-with-ticket, once."""
    from esm_medic.handlers import record

    def record_step_down(event: Any, context: Any) -> Any:
        if isinstance(event, dict) and "state" in event:
            raise RuntimeError("the STATE table is unreachable")
        return record.handler(event, context)  # the safety net's event gets through

    t = e2e(SCENARIO, handlers={"record": record_step_down})
    run = t.workflow.run(t.uuid)
    assert run.status == "FAILED" and run.error == "EsmMedic.RecordFailed"
    final = t.final_outcomes()[-1]
    assert final["outcome"] == "failed-with-ticket" and final["execution"] == run.execution_name
    assert final["failed_step"] == "execution" and final["error"] == "EsmMedic.RecordFailed"
    assert final["ticket_id"]
    assert [r["status"] for r in t.workflow_rows()] == ["failed-with-ticket"]
    again = {"executionArn": run.execution_arn + "-x", "status": "FAILED", "name": run.execution_name}
    t.workflow.emit_execution_ended(again)
    assert [r["status"] for r in t.workflow_rows()] == ["failed-with-ticket"]  # an outcome is recorded once
