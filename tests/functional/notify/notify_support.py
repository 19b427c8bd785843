"""Helpers shared by the notify / approval functional tests (a uniquely named module, so ``import`` finds it
whichever ``conftest`` another test folder loaded first)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any


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
