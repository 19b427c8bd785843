"""Fixtures for end-to-end tests of the remediation workflow: the real ASL in moto's Step Functions interpreter,
the real handlers in-process, EventBridge -> ``start`` wired as infra deploys it (``esm_medic_sandbox.runner``).

``e2e`` is a factory: ``e2e(scenario, mode="auto", tunables=..., env=..., handlers=...)`` builds the scenario in a
fresh sandbox account, deploys the workflow and returns an :class:`E2E` (the adapter, the workflow, the scenario
result, the ticket folder). One sandbox per test; the sandbox context closes at teardown.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

#: small waits: the simulator answers at once, so verification needs no real delay
FAST_TUNABLES = {
    "VerifyWaitSeconds": 0,
    "VerifyMaxWaitSeconds": 1,
    "VerifyMaxAttempts": 3,
    "ApprovalTimeoutSeconds": 60,
    "ApprovalHeartbeatSeconds": 55,
}


@dataclass
class E2E:
    aws: Any
    workflow: Any
    scenario: Any
    ticket_dir: Path

    @property
    def uuid(self) -> str:
        return str(self.scenario.uuid)

    def esm_status(self) -> dict[str, str]:
        from esm_medic.workflow import status_of

        return status_of(self.aws.call("lambda", "get_event_source_mapping", UUID=self.uuid))

    def action_rows(self) -> list[dict[str, Any]]:
        """Audit rows of remediation actions (not the workflow's own outcome rows, not approval rows)."""
        return [r for r in self.workflow.audit(self.uuid) if r["action"] not in ("workflow", "")]

    def workflow_rows(self) -> list[dict[str, Any]]:
        return [r for r in self.workflow.audit(self.uuid) if r["action"] == "workflow"]

    def final_outcomes(self) -> list[dict[str, Any]]:
        return [o for o in self.workflow.outcomes(self.uuid) if o.get("final")]


@pytest.fixture
def e2e(tmp_path: Path) -> Iterator[Callable[..., E2E]]:
    from esm_medic_sandbox import scenarios
    from esm_medic_sandbox.env import sandbox
    from esm_medic_sandbox.runner import deploy

    from esm_medic.handlers import _common

    stack = contextlib.ExitStack()
    for name in ("moto", "botocore", "aws_lambda_powertools"):
        logging.getLogger(name).setLevel(logging.CRITICAL)

    def make(
        scenario: str,
        *,
        mode: str = "auto",
        tunables: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        handlers: dict[str, Any] | None = None,
    ) -> E2E:
        aws = stack.enter_context(sandbox())
        _common.reset_aws()
        _common.reset_idempotency()
        result = scenarios.build(aws, scenario, prefix="e2e")
        ticket_dir = tmp_path / "tickets"
        fenv = {
            "ESM_MEDIC_DEFAULT_MODE": mode,
            "ESM_MEDIC_TICKET_DIR": str(ticket_dir),
            "ESM_MEDIC_NOTIFY_SINKS": "file",
            # sandbox transitions (when a test turns them on) last a fraction of a second: poll at that pace
            "ESM_MEDIC_POLL_SECONDS": "0.2",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            **(env or {}),
        }
        workflow = deploy(aws, tunables={**FAST_TUNABLES, **(tunables or {})}, env=fenv, handlers=handlers)
        return E2E(aws=aws, workflow=workflow, scenario=result, ticket_dir=ticket_dir)

    with stack:
        yield make
