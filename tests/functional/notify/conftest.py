"""Fixtures for the notify / approval functional tests: moto (via the sandbox) with the esm-medic tables, a
Step Functions execution paused on an SQS ``waitForTaskToken`` task, and a clean notification environment."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

NOTIFY_VARS = (
    "ESM_MEDIC_SLACK_WEBHOOK_URL",
    "ESM_MEDIC_SNS_TOPIC_ARN",
    "ESM_MEDIC_NOTIFY_SINKS",
    "ESM_MEDIC_NOTIFY_STDOUT",
    "ESM_MEDIC_APPROVERS",
    "ESM_MEDIC_APPROVAL_BASE_URL",
    "ESM_MEDIC_APPROVAL_KEY",
    "ESM_MEDIC_APPROVAL_KEY_NAME",
    "ESM_MEDIC_SLACK_SIGNING_SECRET",
    "ESM_MEDIC_SLACK_SIGNING_SECRET_NAME",
    "ESM_MEDIC_SLACK_USERS",
    "ESM_MEDIC_PROD_TWO_APPROVERS",
    "ESM_MEDIC_APPROVAL_REQUIRE_IDENTITY",
)


@pytest.fixture
def notify_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for var in NOTIFY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ESM_MEDIC_TICKET_DIR", str(tmp_path / "tickets"))
    monkeypatch.setenv("ESM_MEDIC_NOTIFY_SINKS", "file")
    from esm_medic.notify.sinks import clear_secret_cache

    clear_secret_cache()
    return tmp_path / "tickets"


@pytest.fixture
def aws(sandbox_aws: Any, notify_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The sandbox adapter with the tables created; handlers use it too (their get_aws is patched)."""
    from esm_medic.tables import create_tables

    create_tables(sandbox_aws)
    for module in ("notify", "ticket", "approval_request", "approval_http"):
        monkeypatch.setattr(f"esm_medic.handlers.{module}.get_aws", lambda: sandbox_aws)
    yield sandbox_aws


@dataclass
class Waiting:
    execution_arn: str
    task_token: str


class Workflow:
    """A one-state Standard workflow whose task waits for a task token (delivered through SQS)."""

    def __init__(self, aws: Any) -> None:
        self.aws = aws
        self.queue_url = aws.call("sqs", "create_queue", QueueName="approvals")["QueueUrl"]
        definition = {
            "StartAt": "WaitForHuman",
            "States": {
                "WaitForHuman": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                    "Parameters": {"QueueUrl": self.queue_url, "MessageBody": {"token.$": "$$.Task.Token"}},
                    "TimeoutSeconds": 600,
                    "End": True,
                }
            },
        }
        self.arn = aws.call(
            "stepfunctions",
            "create_state_machine",
            name="approval-test",
            definition=json.dumps(definition),
            roleArn="arn:aws:iam::123456789012:role/sfn",
            type="STANDARD",
        )["stateMachineArn"]
        self.count = 0

    def start(self) -> Waiting:
        self.count += 1
        arn = self.aws.call(
            "stepfunctions", "start_execution", stateMachineArn=self.arn, name=f"run-{self.count}", input="{}"
        )["executionArn"]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            msgs = self.aws.call("sqs", "receive_message", QueueUrl=self.queue_url, WaitTimeSeconds=0).get("Messages")
            if msgs:
                for m in msgs:
                    self.aws.call("sqs", "delete_message", QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])
                return Waiting(arn, json.loads(msgs[0]["Body"])["token"])
            time.sleep(0.02)
        raise AssertionError("the execution never reached its waitForTaskToken task")

    def finish(self, execution_arn: str, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            desc: dict[str, Any] = self.aws.call("stepfunctions", "describe_execution", executionArn=execution_arn)
            if desc["status"] != "RUNNING":
                return desc
            time.sleep(0.02)
        raise AssertionError("the execution is still running")

    def status(self, execution_arn: str) -> str:
        return str(self.aws.call("stepfunctions", "describe_execution", executionArn=execution_arn)["status"])

    def failure(self, execution_arn: str) -> dict[str, Any]:
        events = self.aws.call("stepfunctions", "get_execution_history", executionArn=execution_arn)["events"]
        for e in events:
            if e["type"] == "ExecutionFailed":
                return dict(e["executionFailedEventDetails"])
        return {}


@pytest.fixture
def workflow(aws: Any) -> Workflow:
    return Workflow(aws)


PLAN = {
    "fix": "add-sg-self-rule",
    "summary": "self-referencing rule on sg-0abc for 9098",
    "params": {"group_id": "sg-0abc", "ports": [9098], "directions": ["ingress", "egress"], "vpc_id": "vpc-1"},
}
DIAGNOSIS = {
    "uuid": "esm-uuid-1",
    "step": "network",
    "root_cause": {"id": "no-sg-self-rule", "summary": "no self rule", "fix": "add-sg-self-rule"},
    "classification": {"entry": "connection-broker-unreachable", "step": "network"},
    "esm": {"UUID": "esm-uuid-1", "FunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:orders"},
}
