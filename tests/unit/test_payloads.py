"""The typed step payloads keep the JSON the state machine reads: every ``$.Payload.<key>`` a task's ResultSelector
selects is in the typed result's ``to_dict()``, and ``from_dict(to_dict())`` gives the same value back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from esm_medic.workflow.payloads import (
    ClassifyResult,
    DiagnosisResult,
    NotificationResult,
    OutcomeRecord,
    RecheckResult,
    RecordRequest,
    RecordResult,
    TicketResult,
)

ASL = Path(__file__).resolve().parents[2] / "statemachine" / "remediate.asl.json"

#: ASL task state -> the typed result of the Lambda it invokes
TASK_RESULTS: dict[str, type] = {
    "Classify": ClassifyResult,
    "Recheck": RecheckResult,
    "Diagnose": DiagnosisResult,
    "Ticket": TicketResult,
    "Record": RecordResult,
    "RecordFailure": RecordResult,
    "RecordSuspected": RecordResult,
    "RecordPendingApproval": RecordResult,
}


def _states() -> dict[str, dict[str, Any]]:
    return dict(json.loads(ASL.read_text(encoding="utf-8"))["States"])


def _selected(selector: dict[str, Any]) -> set[str]:
    """The top-level Payload keys a ResultSelector reads (``"x.$": "$.Payload.k..."`` -> ``k``)."""
    keys = set()
    for name, path in selector.items():
        if name.endswith(".$") and isinstance(path, str) and path.startswith("$.Payload."):
            keys.add(path.removeprefix("$.Payload.").split(".")[0])
    return keys


@pytest.mark.parametrize("state", sorted(TASK_RESULTS))
def test_every_selected_key_is_in_the_typed_result(state: str) -> None:
    selector = _states()[state]["ResultSelector"]
    wanted = _selected(selector)
    assert wanted, f"{state} selects nothing from the Payload"
    produced = set(TASK_RESULTS[state].from_dict({}).to_dict())
    assert wanted <= produced, f"{state}: the typed result lacks {sorted(wanted - produced)}"


def test_the_notify_tasks_keep_the_whole_result() -> None:
    states = _states()
    for name in ("NotifyRecovered", "NotifyOnly"):
        assert states[name]["ResultSelector"] == {"result.$": "$.Payload"}


def test_the_diagnosis_carries_exactly_what_the_state_selects() -> None:
    assert set(DiagnosisResult.from_dict({}).to_dict()) == _selected(_states()["Diagnose"]["ResultSelector"])


SAMPLES: list[Any] = [
    ClassifyResult(
        uuid="u",
        incident_id="inc-1",
        fingerprint="fp",
        trigger="sweep",
        status={"State": "Enabled", "StateTransitionReason": "USER_INITIATED", "LastProcessingResult": "PROBLEM"},
        event={"detail": {"uuid": "u"}},
        classification={"entry": "e", "step": "network", "elapsed_ms": 0.5},
        run={"started_at": "t0"},
        observed_at="t",
        phase="suspected",
        hold_seconds=30,
    ),
    RecheckResult(
        persists=True, status={"State": "Enabled"}, classification={"step": "auth"}, reason="r", elapsed_ms=1.0
    ),
    DiagnosisResult(
        healthy=False,
        state="Enabled",
        step="network",
        root_cause={"id": "no-sg-self-rule"},
        findings=[{"check": "sg-self-inbound", "status": "fail"}],
        network={"source": "cluster"},
        esm_status={"State": "Enabled"},
        function_arn="arn:fn",
        esm={"uuid": "u"},
        api_calls=7,
        elapsed_ms=12.5,
    ),
    NotificationResult(
        kind="recovered",
        title="t",
        sent=["file"],
        errors=[{"sink": "slack", "error": "x"}],
        tickets={"resolved": ["t-1"]},
        extra={"route": {"owner": "team"}},
    ),
    TicketResult(
        ticket_id="t-1",
        location="/tmp/t.md",
        title="t",
        body="b",
        duplicate=True,
        extra={"delivered": ["file"], "providers": {"file": {}}},
    ),
    RecordRequest(state={"uuid": "u"}, execution="e", execution_id="arn:e", at="t", final=False, failure=True),
    RecordResult(
        outcome="joined",
        recorded={"table": "STATE"},
        record=OutcomeRecord(
            uuid="u", incident_id="i", execution="e", outcome="joined", reason="r", at="t", joined_execution="other"
        ),
    ),
]


@pytest.mark.parametrize("value", SAMPLES, ids=lambda v: type(v).__name__)
def test_round_trip(value: Any) -> None:
    data = value.to_dict()
    assert json.loads(json.dumps(data)) == data  # plain JSON
    assert type(value).from_dict(data) == value
    assert type(value).from_dict(data).to_dict() == data


def test_outcome_record_leaves_out_what_does_not_apply() -> None:
    plain = OutcomeRecord(uuid="u", incident_id="i", execution="e", outcome="recovered", reason="r", at="t").to_dict()
    for key in ("delivery_errors", "failed_step", "error", "ticket_error", "claim_error", "joined_execution"):
        assert key not in plain
    assert {"ticket_id", "ticket_location", "before", "after", "timings"} <= set(plain)
    joined = OutcomeRecord(
        uuid="u", incident_id="i", execution="e", outcome="joined", reason="r", at="t", joined_execution="x"
    ).to_dict()
    assert joined["joined_execution"] == "x" and "joined_incident" in joined and joined["joined_incident"] is None


def test_pass_through_keys_survive() -> None:
    raw = {"kind": "notify", "title": "t", "sent": [], "errors": [], "fallback": True, "location": "/x"}
    assert NotificationResult.from_dict(raw).to_dict() == raw
    assert "tickets" not in NotificationResult.from_dict(raw).to_dict()
    ticket = {"ticket_id": "t", "location": "l", "title": "x", "body": "", "duplicate": False, "sent": [], "errors": []}
    assert TicketResult.from_dict({**ticket, "relapse_of": None}).to_dict() == {**ticket, "relapse_of": None}
