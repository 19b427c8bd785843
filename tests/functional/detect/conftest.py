"""Fixtures for detection tests in the sandbox: tables, an MSK stack, ESM factories, an event catcher."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from esm_medic import tables
from esm_medic.detect.events import load_pattern

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"
WRITE_OPS = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")


@dataclass
class DetectEnv:
    aws: Any
    stack: Any
    queue_all: str
    queue_error: str
    topics: int = 0
    created: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ ESMs
    def add_msk(self, n: int = 1, **overrides: Any) -> list[str]:
        out = []
        for _ in range(n):
            self.topics += 1
            item = self.stack.create_esm(self.aws, Topics=[f"topic-{self.topics}"], **overrides)
            out.append(item["UUID"])
        self.created += out
        return out

    def add_self_managed(self, servers: tuple[str, ...] = ("b-1.kafka.example:9092",)) -> str:
        self.topics += 1
        item = self.aws.call(
            "lambda",
            "create_event_source_mapping",
            FunctionName=self.stack.function_name,
            SelfManagedEventSource={"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": list(servers)}},
            Topics=[f"topic-{self.topics}"],
            StartingPosition="LATEST",
        )
        self.created.append(item["UUID"])
        return str(item["UUID"])

    def set(self, uuid: str, result: str | None = None, *, state: str | None = None, reason: str | None = None) -> None:
        from esm_medic_sandbox.patches import set_esm_status

        set_esm_status(uuid, state=state, reason=reason, last_processing_result=result)

    # ------------------------------------------------------------------ observations
    def _drain(self, url: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            msgs = self.aws.call("sqs", "receive_message", QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not msgs:
                return out
            for m in msgs:
                out.append(json.loads(m["Body"]))
                self.aws.call("sqs", "delete_message", QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])

    def events(self) -> list[dict[str, Any]]:
        """Every esm-medic event delivered to the bus since the last call."""
        return self._drain(self.queue_all)

    def error_rule_events(self) -> list[dict[str, Any]]:
        """The events rule 1 (esm-status-error.json) routed since the last call."""
        return self._drain(self.queue_error)

    def writes(self) -> int:
        return sum(n for k, n in self.aws.calls.items() if k.startswith("dynamodb:") and k.split(":")[1] in WRITE_OPS)

    def snapshot(self, uuid: str) -> Any:
        from esm_medic.detect.snapshot import SnapshotStore

        return SnapshotStore(self.aws).get(uuid)


def _queue_rule(aws: Any, name: str, pattern: dict[str, Any]) -> str:
    url = aws.call("sqs", "create_queue", QueueName=name)["QueueUrl"]
    arn = aws.call("sqs", "get_queue_attributes", QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws.call("events", "put_rule", Name=name, EventPattern=json.dumps(pattern), State="ENABLED")
    aws.call("events", "put_targets", Rule=name, Targets=[{"Id": "q", "Arn": arn}])
    return str(url)


@pytest.fixture
def detect(sandbox_aws: Any, msk_stack: Callable[..., Any]) -> DetectEnv:
    tables.create_tables(sandbox_aws)
    stack = msk_stack()
    env = DetectEnv(
        aws=sandbox_aws,
        stack=stack,
        queue_all=_queue_rule(sandbox_aws, "all-esm-medic", {"source": ["esm-medic"]}),
        queue_error=_queue_rule(sandbox_aws, "esm-status-error", load_pattern("esm-status-error")),
    )
    from esm_medic.detect.events import clear_role_cache

    clear_role_cache()
    sandbox_aws.reset_counts()
    return env


@pytest.fixture
def load_event() -> Callable[[str], dict[str, Any]]:
    def load(name: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))
        return data

    return load
