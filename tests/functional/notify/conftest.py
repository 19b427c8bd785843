"""Fixtures for the notify / approval functional tests: moto (via the sandbox) with the esm-medic tables, a
Step Functions execution paused on an SQS ``waitForTaskToken`` task, and a clean notification environment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from notify_support import Workflow

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
    "ESM_MEDIC_APPROVER_IDENTITIES",
    "ESM_MEDIC_APPROVAL_LINK_TOPIC_ARN",
    "ESM_MEDIC_APPROVAL_EXCLUDE_REQUESTER",
    "ESM_MEDIC_APPROVAL_IAM_URL",
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


@pytest.fixture
def workflow(aws: Any) -> Workflow:
    return Workflow(aws)
