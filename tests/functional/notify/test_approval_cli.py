"""``esm-medic approve ID``: a SigV4-signed request with the caller's own credentials to the approval endpoint served
over HTTP with AWS_IAM auth (the adapter verifies the signature as Lambda would); the principal ARN is recorded."""

from __future__ import annotations

import json
from typing import Any

import pytest
from approval_server import serve
from notify_support import DIAGNOSIS, PLAN, Workflow

from esm_medic.approval import get_approval, request_approval
from esm_medic.cli.main import main

OPERATOR = "arn:aws:sts::123456789012:assumed-role/Operators/carol"
KEYS = {
    "AKIAOPERATOR0000001": ("operator-secret", OPERATOR),
    "AKIASTRANGER0000001": ("stranger-secret", "arn:aws:sts::123456789012:assumed-role/Dev/mallory"),
}


@pytest.fixture
def operator(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("ESM_MEDIC_APPROVERS", f"alice@example.com,{OPERATOR}")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)

    def creds(akid: str) -> None:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", akid)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", KEYS.get(akid, ("wrong-secret", ""))[0])

    return creds


def ask(aws: Any, workflow: Workflow) -> tuple[Any, str]:
    waiting = workflow.start()
    req = request_approval(
        aws,
        task_token=waiting.task_token,
        uuid="esm-uuid-cli",
        incident_id="inc-cli",
        plan=PLAN,
        diagnosis=DIAGNOSIS,
        timeout_seconds=600,
    )
    return waiting, str(req["approval_id"])


def test_approve_signs_with_the_callers_credentials_and_records_the_principal(
    aws: Any, workflow: Workflow, operator: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    waiting, aid = ask(aws, workflow)
    with serve("AWS_IAM", KEYS) as server:
        operator("AKIASTRANGER0000001")  # signed, but not an approver
        assert main(["approve", aid, "--url", server.url, "--region", "us-east-1", "--json"]) == 1
        out = capsys.readouterr().out  # the in-process handler's logs and metrics print there too
        assert json.loads(out[out.rindex("{\n") :])["http_status"] == 403
        operator("AKIAUNKNOWN00000001")  # a signature Lambda would not accept
        assert main(["approve", aid, "--url", server.url, "--region", "us-east-1"]) == 1
        assert "forbidden" in capsys.readouterr().out
        assert workflow.status(waiting.execution_arn) == "RUNNING"
        operator("AKIAOPERATOR0000001")
        assert main(["approve", aid, "--url", server.url, "--region", "us-east-1", "--reason", "checked"]) == 0
        assert f"approved by {OPERATOR.lower()}" in capsys.readouterr().out
    assert json.loads(workflow.finish(waiting.execution_arn)["output"])["approver"] == OPERATOR.lower()
    assert get_approval(aws, aid)["decided_by"] == OPERATOR.lower()  # type: ignore[index]


def test_reject(aws: Any, workflow: Workflow, operator: Any, capsys: pytest.CaptureFixture[str]) -> None:
    waiting, aid = ask(aws, workflow)
    operator("AKIAOPERATOR0000001")
    with serve("AWS_IAM", KEYS) as server:
        assert main(["approve", aid, "--reject", "--url", server.url, "--region", "us-east-1"]) == 0
    assert "rejected by" in capsys.readouterr().out
    assert workflow.finish(waiting.execution_arn)["status"] == "FAILED"


def test_bad_usage_is_exit_2_with_a_clear_message(
    aws: Any, operator: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ESM_MEDIC_APPROVAL_IAM_URL", raising=False)
    assert main(["approve", "../etc/passwd", "--url", "https://x.example"]) == 2
    assert "not an approval id" in capsys.readouterr().err
    assert main(["approve", "apr-" + "a" * 24]) == 2
    assert "ESM_MEDIC_APPROVAL_IAM_URL" in capsys.readouterr().err
    operator("AKIAOPERATOR0000001")
    assert main(["approve", "apr-" + "a" * 24, "--url", "http://127.0.0.1:9", "--region", "us-east-1"]) == 1
    assert "could not reach" in capsys.readouterr().err
