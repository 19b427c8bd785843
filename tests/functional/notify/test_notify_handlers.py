"""Tickets against moto (STATE-table dedup, SNS delivery), the notify / ticket / approval_request handlers, and
a full Step Functions -> approval_request Lambda -> human decision -> resumed execution round trip."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from notify_support import DIAGNOSIS, PLAN

from esm_medic.approval import decide_approval, pending_approvals
from esm_medic.aws import from_attribute_values, to_attribute_values
from esm_medic.classify import classify
from esm_medic.handlers import approval_request as approval_request_handler
from esm_medic.handlers import notify as notify_handler
from esm_medic.handlers import ticket as ticket_handler
from esm_medic.handlers._common import InvalidInput
from esm_medic.notify import notify, open_ticket
from esm_medic.notify import sinks as sinks_mod
from esm_medic.tables import STATE

UUID = "0b7e6a52-5555-4666-8777-888899990000"
CONNECTION = "PROBLEM: Connection error. Please check your event source connection configuration."
CLUSTER = "arn:aws:kafka:us-east-1:123456789012:cluster/orders/abc-1"


class Ctx:
    function_name = "fn"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:fn"
    aws_request_id = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 30000


def diagnosis() -> dict[str, Any]:
    return {
        "uuid": UUID,
        "step": "network",
        "root_cause": {
            "id": "nacl-blocks-brokers",
            "summary": "NACL acl-1 denies 9098",
            "step": "network",
            "fix": "ticket",
            "fix_params": {"reason": "NACLs are left to people"},
        },
        "findings": [
            {
                "check": "nacl",
                "status": "fail",
                "summary": "acl-1 denies tcp 9098 on subnet-a",
                "evidence": {"password": "hunter2"},
            },
            {"check": "sg-self-inbound", "status": "pass", "summary": "sg-77 admits itself on 9098"},
        ],
        "network": {
            "source": "cluster",
            "vpc_id": "vpc-5",
            "subnets": ["subnet-a"],
            "security_groups": ["sg-77"],
            "ports": [9098],
        },
        "esm": {
            "UUID": UUID,
            "EventSourceArn": CLUSTER,
            "FunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:orders",
        },
    }


def ticket_args(**kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "uuid": UUID,
        "reason": "a network ACL blocks the broker port; esm-medic never edits NACLs",
        "classification": classify(CONNECTION).to_dict(),
        "diagnosis": diagnosis(),
        "plan": None,
        "outcome": "ticketed",
        "incident_id": "inc-1",
    }
    args.update(kw)
    return args


def test_ticket_dedup_through_the_state_table(aws: Any, notify_env: Path) -> None:
    first = open_ticket(aws, **ticket_args())
    assert first["duplicate"] is False and first["errors"] == []
    assert Path(first["location"]).read_text() == first["body"]
    assert "--group-id sg-77" in first["body"] and f"--cluster-arn {CLUSTER}" in first["body"]
    assert "hunter2" not in first["body"]
    record = from_attribute_values(
        aws.call(
            "dynamodb",
            "get_item",
            TableName=STATE.name,
            Key=to_attribute_values({"pk": f"TICKET#{UUID}", "sk": f"FP#{first['fingerprint']}"}),
        )["Item"]
    )
    assert record["status"] == "open" and record["entry"] == "connection-broker-unreachable"
    assert record["refs"] == {"file": first["location"]} and record["incidents"] == ["inc-1"]
    Path(first["location"]).unlink()  # the table, not the file, is the dedup record
    second = open_ticket(aws, **ticket_args(reason="retried by the workflow"))
    assert second["duplicate"] is True and second["providers"] == {}  # a retry of the same incident adds nothing
    assert (second["ticket_id"], second["title"], second["body"]) == (first["ticket_id"], first["title"], first["body"])
    assert not Path(first["location"]).exists()  # nothing new written
    other = open_ticket(aws, **ticket_args(incident_id="inc-2", reason="seen again"))
    assert other["duplicate"] is True and other["ticket_id"] == first["ticket_id"]  # keyed by ESM + root cause
    assert other["delivered"] == ["file"] and "incident inc-2" in Path(first["location"]).read_text()


def test_ticket_survives_a_missing_table(aws: Any, notify_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STATE.env, "no-such-table")
    result = open_ticket(aws, **ticket_args())
    assert result["duplicate"] is False
    assert result["errors"][0]["sink"] == "state" and "ResourceNotFoundException" in result["errors"][0]["error"]
    assert Path(result["location"]).is_file()


def test_ticket_announced_on_sns_with_the_full_body(
    aws: Any, notify_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = aws.call("sns", "create_topic", Name="esm-medic")["TopicArn"]
    queue = aws.call("sqs", "create_queue", QueueName="inbox")["QueueUrl"]
    qarn = aws.call("sqs", "get_queue_attributes", QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    aws.call(
        "sns", "subscribe", TopicArn=topic, Protocol="sqs", Endpoint=qarn, Attributes={"RawMessageDelivery": "true"}
    )
    monkeypatch.setenv("ESM_MEDIC_SNS_TOPIC_ARN", topic)
    monkeypatch.delenv("ESM_MEDIC_NOTIFY_SINKS")  # automatic: every configured sink
    result = open_ticket(aws, **ticket_args())
    assert result["sent"] == ["sns"] and result["errors"] == []
    msgs = aws.call("sqs", "receive_message", QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert len(msgs) == 1
    body = msgs[0]["Body"]
    assert result["ticket_id"] in body and "## Runbook" in body and "hunter2" not in body
    again = open_ticket(aws, **ticket_args())
    assert again["duplicate"] and again["sent"] == []  # no second announcement
    assert aws.call("sqs", "receive_message", QueueUrl=queue).get("Messages") is None


def test_notify_reads_the_slack_webhook_from_ssm(aws: Any, notify_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hook = "https://hooks.slack.com/services/T1/B1/from-ssm"
    aws.call("ssm", "put_parameter", Name="/esm-medic/slack-webhook", Value=hook, Type="SecureString")
    posts: list[str] = []

    class Session:
        def post(self, url: str, json: Any = None, timeout: Any = None) -> Any:
            posts.append(url)
            return type("R", (), {"status_code": 200, "text": "ok", "headers": {}})()

    monkeypatch.setattr(sinks_mod, "http_session", lambda: Session())
    result = notify(
        aws, "recovered", {"uuid": UUID}, settings={"slack_webhook": "/esm-medic/slack-webhook", "sinks": ["slack"]}
    )
    assert result["sent"] == ["slack"] and posts == [hook]
    bad = notify(aws, "failed", {"uuid": UUID}, settings={"slack_webhook": "ssm:/esm-medic/nope", "sinks": ["slack"]})
    assert "ParameterNotFound" in bad["errors"][0]["error"] and bad["sent"] == ["file"]


def test_notify_handler(aws: Any, notify_env: Path) -> None:
    out = notify_handler.handler({"kind": "shadow", "context": {"uuid": UUID, "plan": PLAN}}, Ctx())
    assert out["sent"] == ["file"] and out["kind"] == "shadow"
    state = {
        "kind": "recovered",
        "uuid": UUID,
        "verify": {"before": {"State": "Enabled"}, "after": {"LastProcessingResult": "OK"}},
    }
    out = notify_handler.handler(state, Ctx())
    written = sorted((notify_env / "notifications").glob("*recovered*"))
    assert out["sent"] == ["file"] and "LastProcessingResult=OK" in written[-1].read_text()
    with pytest.raises(InvalidInput, match="notify"):
        notify_handler.handler({"kind": "party"}, Ctx())
    with pytest.raises(InvalidInput):
        notify_handler.handler(["not", "an", "object"], Ctx())


def test_ticket_handler(aws: Any, notify_env: Path) -> None:
    event = {
        "uuid": UUID,
        "incident_id": "inc-h",
        "classification": classify(CONNECTION).to_dict(),
        "diagnosis": diagnosis(),
        "decision": {"action": "ticket", "reason": "NACL"},
        "unrelated": {"state": "kept out"},
    }
    out = ticket_handler.handler(event, Ctx())
    assert out["duplicate"] is False and out["title"].startswith("[esm-medic] orders ESM")
    assert "- Why: NACL" in out["body"] and "Outcome: **ticket**" in out["body"]
    assert ticket_handler.handler(event, Ctx())["duplicate"] is True
    with pytest.raises(InvalidInput, match="ticket"):
        ticket_handler.handler({"classification": {}}, Ctx())
    with pytest.raises(InvalidInput):
        ticket_handler.handler({"uuid": UUID, "plan": "not an object"}, Ctx())


def test_approval_request_handler_rejects_bad_input_without_echoing_the_token(aws: Any) -> None:
    with pytest.raises(InvalidInput) as info:
        approval_request_handler.handler({"task_token": "SECRET-TOKEN-123", "timeout_seconds": -5}, Ctx())
    assert "SECRET-TOKEN-123" not in str(info.value)
    with pytest.raises(InvalidInput):
        approval_request_handler.handler({"uuid": UUID}, Ctx())


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("placeholder.py", "")
    return buf.getvalue()


def test_step_functions_lambda_wait_for_task_token_round_trip(aws: Any, notify_env: Path) -> None:
    role = aws.call(
        "iam",
        "create_role",
        RoleName="fn-role",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
                ],
            }
        ),
    )["Role"]["Arn"]
    fn = aws.call(
        "lambda",
        "create_function",
        FunctionName="esm-medic-approval-request",
        Runtime="python3.11",
        Role=role,
        Handler="esm_medic.handlers.approval_request.handler",
        Code={"ZipFile": _zip()},
    )["FunctionArn"]
    definition = {
        "StartAt": "AskHuman",
        "States": {
            "AskHuman": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {
                    "FunctionName": fn,
                    "Payload": {
                        "task_token.$": "$$.Task.Token",
                        "uuid.$": "$.uuid",
                        "incident_id.$": "$.incident_id",
                        "plan.$": "$.plan",
                        "diagnosis.$": "$.diagnosis",
                        "timeout_seconds": 600,
                    },
                },
                "TimeoutSeconds": 600,
                "ResultPath": "$.approval",
                "Catch": [{"ErrorEquals": ["Rejected"], "ResultPath": "$.rejection", "Next": "Rejected"}],
                "End": True,
            },
            "Rejected": {"Type": "Pass", "End": True},
        },
    }
    sm = aws.call(
        "stepfunctions",
        "create_state_machine",
        name="remediate-mini",
        definition=json.dumps(definition),
        roleArn="arn:aws:iam::123456789012:role/sfn",
        type="STANDARD",
    )["stateMachineArn"]
    execution = aws.call(
        "stepfunctions",
        "start_execution",
        stateMachineArn=sm,
        name="inc-rt",
        input=json.dumps({"uuid": "esm-uuid-1", "incident_id": "inc-rt", "plan": PLAN, "diagnosis": DIAGNOSIS}),
    )["executionArn"]
    deadline = time.monotonic() + 10
    pending: list[dict[str, Any]] = []
    while not pending and time.monotonic() < deadline:
        pending = pending_approvals(aws)
        time.sleep(0.05)
    assert len(pending) == 1 and pending[0]["incident_id"] == "inc-rt" and pending[0]["fix"] == "add-sg-self-rule"
    result = decide_approval(aws, approval_id=pending[0]["approval_id"], decision="approve", approver="demo")
    assert result["ok"], result
    while time.monotonic() < deadline:
        desc = aws.call("stepfunctions", "describe_execution", executionArn=execution)
        if desc["status"] != "RUNNING":
            break
        time.sleep(0.05)
    assert desc["status"] == "SUCCEEDED"
    out = json.loads(desc["output"])
    assert out["approval"]["approved"] is True and out["approval"]["approver"] == "demo"
    assert out["uuid"] == "esm-uuid-1"
