"""esm_medic.workflow without AWS: execution names, input normalisation, comparisons, outcome records."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from esm_medic import workflow as wf

UUID = "61950a11-223c-41cc-a76f-8cc3540a00b8"
ERROR = {
    "State": "Enabled",
    "StateTransitionReason": "USER_INITIATED",
    "LastProcessingResult": "PROBLEM: Connection error. Please check your event source connection configuration.",
}
OK = {"State": "Enabled", "StateTransitionReason": "USER_INITIATED", "LastProcessingResult": "OK"}


def status_change(status: dict[str, str] = ERROR, *, recovered: bool = False, incident: str = "inc-1") -> dict:
    from esm_medic.detect.events import build_status_change

    detail = build_status_change(
        event_id="evt-1",
        uuid=UUID,
        incident_id=incident,
        function_arn="arn:aws:lambda:us-east-1:123456789012:function:orders",
        event_source="arn:aws:kafka:us-east-1:123456789012:cluster/c/abc",
        source_kind="msk",
        old=ERROR if recovered else None,
        new=OK if recovered else status,
        classification={
            "entry": None if recovered else "connection-broker-unreachable",
            "step": "none" if recovered else "network",
        },
        recovered=recovered,
        observed_at="2026-11-26T10:00:00Z",
        since="2026-11-26T10:00:00Z",
        trigger="sweep",
    )
    return {"source": "esm-medic", "detail-type": "ESM Status Change", "time": "2026-11-26T10:00:00Z", "detail": detail}


# ---------------------------------------------------------------------------------------------- names
def test_execution_name_is_deterministic_and_legal() -> None:
    a = wf.execution_name(UUID, ERROR, "inc-1")
    assert a == wf.execution_name(UUID, dict(ERROR), "inc-1")
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,80}", a)
    assert a.startswith(UUID)


def test_execution_name_changes_with_status_and_incident() -> None:
    base = wf.execution_name(UUID, ERROR, "inc-1")
    assert wf.execution_name(UUID, {**ERROR, "LastProcessingResult": "PROBLEM: other"}, "inc-1") != base
    assert wf.execution_name(UUID, ERROR, "inc-2") != base
    # whitespace differences are the same status
    assert (
        wf.execution_name(
            UUID,
            {
                **ERROR,
                "LastProcessingResult": "  PROBLEM:  Connection error. Please check your "
                "event source connection configuration. ",
            },
            "inc-1",
        )
        == base
    )


@given(st.text(max_size=300))
def test_sanitized_names_always_pass_step_functions_rules(text: str) -> None:
    name = wf.sanitize_execution_name(text)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,80}", name)


def test_incident_ids_are_made_safe() -> None:
    assert wf.safe_incident_id("inc-20261126T101010Z-61950a11", UUID, "f" * 16) == "inc-20261126T101010Z-61950a11"
    odd = wf.safe_incident_id("incident with spaces/and:colons" * 3, UUID, "f" * 16)
    assert wf.INCIDENT_ID_RE.match(odd) and odd.startswith("inc-")
    assert wf.safe_incident_id("", UUID, "abcdef0123456789").startswith("inc-61950a11-")


# ---------------------------------------------------------------------------------------------- normalise
def test_normalise_status_change_event() -> None:
    wi = wf.normalise_event(status_change())
    assert wi.uuid == UUID and wi.incident_id == "inc-1" and wi.trigger == "sweep"
    assert wi.status == wf.status_of(ERROR)
    assert wi.execution_name == wf.execution_name(UUID, ERROR, "inc-1")
    assert wi.event["detail"]["uuid"] == UUID
    again = wf.normalise_event(json.dumps(status_change()))
    assert again.execution_name == wi.execution_name


def test_normalise_accepts_its_own_output_and_esm_items() -> None:
    wi = wf.normalise_event(status_change())
    assert wf.normalise_event(wi.to_input()).execution_name == wi.execution_name
    item = {"UUID": UUID, **ERROR}
    from_item = wf.normalise_event(item)
    assert from_item.uuid == UUID and from_item.trigger == "manual"
    assert from_item.incident_id.startswith("inc-")


def test_recoveries_are_ignored_not_rejected() -> None:
    with pytest.raises(wf.InputRejected) as exc:
        wf.normalise_event(status_change(recovered=True))
    assert exc.value.ignored


@pytest.mark.parametrize(
    "event",
    [
        "not json",
        [1, 2],
        {"source": "aws.lambda", "detail-type": "ESM Status Change", "detail": {}},
        {"source": "esm-medic", "detail-type": "ESM Status Change", "detail": {"uuid": "nope"}},
        {"uuid": "not-a-uuid", "status": ERROR},
        {"uuid": UUID, "status": "broken"},
        {"uuid": UUID, "status": {"State": "", "LastProcessingResult": ""}},
        {"something": "else"},
    ],
)
def test_malformed_input_is_rejected_with_a_reason(event: Any) -> None:
    with pytest.raises(wf.InputRejected) as exc:
        wf.normalise_event(event)
    assert exc.value.reason and not exc.value.ignored


def test_classify_step_builds_the_state_pieces() -> None:
    wi = wf.normalise_event(status_change())
    out = wf.classify_step({"input": {**wi.to_input(), "run": {"started_at": "t0"}}})
    assert out.uuid == UUID and out.run == {"started_at": "t0"}
    c = out.classification
    assert c["entry"] == "connection-broker-unreachable" and c["step"] == "network" and c["healthy"] is False
    assert isinstance(c["elapsed_ms"], float)
    with pytest.raises(wf.InputRejected):
        wf.classify_step({"input": "nope"})


# ---------------------------------------------------------------------------------------------- helpers
@pytest.mark.parametrize(
    ("before", "now", "better"),
    [
        ("network", "auth", True),
        ("network", "none", True),
        ("network", "network", False),
        ("auth", "network", False),
        ("network", "unknown", False),
        ("unknown", "auth", False),
        ("sts", "config", False),
    ],
)
def test_is_better(before: str, now: str, better: bool) -> None:
    assert wf.is_better(before, now) is better


def test_compact_diagnosis_keeps_the_state_small() -> None:
    big = {"check": "x", "status": "pass", "summary": "s", "evidence": {"blob": "y" * 5000}}
    bad = {"check": "sg-self-inbound", "status": "fail", "summary": "s", "evidence": {"blob": "y" * 5000}}
    d = {
        "healthy": False,
        "state": "Enabled",
        "step": "network",
        "root_cause": {"id": "no-sg-self-rule"},
        "findings": [big] * 40 + [bad],
        "esm": {"state": "Enabled", "last_processing_result": "PROBLEM: x", "function": "arn:fn"},
    }
    out = wf.compact_diagnosis(d)
    assert len(json.dumps(out.to_dict())) < wf.MAX_DIAGNOSIS_BYTES
    assert out.esm_status["LastProcessingResult"] == "PROBLEM: x"
    assert out.function_arn == "arn:fn"
    assert any(f["check"] == "sg-self-inbound" for f in out.findings)


def test_failure_summary_reads_the_lambda_error() -> None:
    cause = json.dumps({"errorMessage": "diagnosis exploded", "errorType": "RuntimeError"})
    state = {"errors": {"diagnose": {"Error": "RuntimeError", "Cause": cause}}}
    assert wf.failure_summary(state) == ("diagnose", "RuntimeError", "diagnosis exploded")
    assert wf.failure_summary({"classify_error": {"Error": "InvalidInput", "Cause": "x"}})[:2] == (
        "classify",
        "InvalidInput",
    )
    assert wf.failure_summary({})[0] == "unknown"


def test_outcome_record_with_timings_and_failure() -> None:
    state = {
        "uuid": UUID,
        "incident_id": "inc-1",
        "run": {"started_at": "2026-11-26T10:00:00+00:00"},
        "classification": {"entry": "e", "step": "network", "elapsed_ms": 1.5},
        "diagnosis": {"step": "network", "root_cause": {"id": "rc"}, "elapsed_ms": 20.0, "esm_status": ERROR},
        "outcome": {"outcome": "recovered", "reason": "fine"},
    }
    rec = wf.outcome_record({"state": state, "execution": "x", "at": "2026-11-26T10:00:03.5+00:00"})
    assert rec.outcome == "recovered" and rec.timings["total_seconds"] == 3.5
    assert rec.timings["steps_ms"] == {"classification": 1.5, "diagnosis": 20.0}
    failed = wf.outcome_record(
        {"state": {**state, "errors": {"verify": {"Error": "Boom", "Cause": "c"}}}, "failure": True, "execution": "x"}
    )
    assert failed.outcome == "failed-with-ticket" and failed.failed_step == "verify"
    weird = wf.outcome_record({"state": {**state, "outcome": {"outcome": "party"}}, "execution": "x"})
    assert weird.outcome == "failed-with-ticket"
    nothing = wf.outcome_record({"state": {}, "failure": True, "execution": "x"})
    assert nothing.uuid == "unknown" and nothing.outcome == "failed-with-ticket"


def test_execution_arn() -> None:
    sm = "arn:aws:states:us-east-1:123456789012:stateMachine:esm-medic-remediate"
    assert wf.execution_arn(sm, "n1") == "arn:aws:states:us-east-1:123456789012:execution:esm-medic-remediate:n1"


# ---------------------------------------------------------------------------------------------- start
class FakeSfn:
    """Stands in for the adapter: StartExecution answers what the test says."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.calls: list[dict[str, Any]] = []

    def call(self, service: str, op: str, **kw: Any) -> dict[str, Any]:
        assert (service, op) == ("stepfunctions", "start_execution")
        self.calls.append(kw)
        if isinstance(self.answer, Exception):
            raise self.answer
        return dict(self.answer)


SM = "arn:aws:states:us-east-1:123456789012:stateMachine:esm-medic-remediate"


def test_start_workflow_starts_a_named_execution() -> None:
    from datetime import UTC, datetime

    fake = FakeSfn({"executionArn": "arn:x", "startDate": datetime.now(UTC)})
    out = wf.start_workflow(fake, SM, status_change())  # type: ignore[arg-type]
    assert out["started"] is True and out["duplicate"] is False
    assert fake.calls[0]["name"] == wf.execution_name(UUID, ERROR, "inc-1")
    sent = json.loads(fake.calls[0]["input"])
    assert sent["uuid"] == UUID and sent["incident_id"] == "inc-1" and sent["status"] == wf.status_of(ERROR)


def test_start_workflow_reports_duplicates() -> None:
    from datetime import UTC, datetime, timedelta

    from botocore.exceptions import ClientError

    exists = ClientError({"Error": {"Code": "ExecutionAlreadyExists", "Message": "m"}}, "StartExecution")
    out = wf.start_workflow(FakeSfn(exists), SM, status_change())  # type: ignore[arg-type]
    assert out["duplicate"] is True and out["started"] is False
    assert out["execution_arn"] == wf.execution_arn(SM, out["execution_name"])
    # AWS answers a same-name, same-input start of a running execution with the original one
    old = {"executionArn": "arn:x", "startDate": datetime.now(UTC) - timedelta(minutes=3)}
    assert wf.start_workflow(FakeSfn(old), SM, status_change())["duplicate"] is True  # type: ignore[arg-type]
    other = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "m"}}, "StartExecution")
    with pytest.raises(ClientError):
        wf.start_workflow(FakeSfn(other), SM, status_change())  # type: ignore[arg-type]


def test_start_workflow_ignores_recoveries_and_rejects_garbage() -> None:
    fake = FakeSfn({"executionArn": "arn:x"})
    out = wf.start_workflow(fake, SM, status_change(recovered=True))  # type: ignore[arg-type]
    assert out["ignored"] is True and not fake.calls
    with pytest.raises(wf.InputRejected):
        wf.start_workflow(fake, SM, {"source": "esm-medic", "detail-type": "ESM Status Change", "detail": {}})  # type: ignore[arg-type]


def test_a_suspected_event_carries_its_hold_and_others_do_not() -> None:
    event = status_change()
    suspected = {**event, "detail": {**event["detail"], "phase": "suspected", "holdSeconds": 90}}
    wi = wf.normalise_event(suspected)
    assert wi.phase == "suspected" and wi.hold_seconds == 90
    assert wi.to_input()["hold_seconds"] == 90
    plain = wf.normalise_event(event)
    assert plain.phase == "" and plain.hold_seconds == 0
    odd = {**event, "detail": {**event["detail"], "phase": "later", "holdSeconds": "lots"}}
    with pytest.raises(wf.InputRejected, match="phase"):  # the event schema names the field, nothing runs
        wf.normalise_event(odd)


def test_transient_errors_keep_their_longer_hold_under_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ESM_MEDIC_MAX_HOLD_SECONDS", raising=False)
    assert wf.hold_for(120, False) == 120
    assert wf.hold_for(120, True) == wf.TRANSIENT_HOLD_SECONDS
    assert wf.hold_for(10_000, False) == wf.MAX_HOLD_SECONDS
    monkeypatch.setenv("ESM_MEDIC_MAX_HOLD_SECONDS", "2")
    assert wf.hold_for(120, True) == 2


def test_ticket_and_notification_delivery_errors_stay_with_the_incident() -> None:
    state = {
        "uuid": UUID,
        "incident_id": "inc-1",
        "outcome": {"outcome": "ticketed", "reason": "manual"},
        "ticket": {"ticket_id": "t-1", "errors": [{"sink": "slack", "error": "channel_not_found"}]},
        "notification": {"result": {"errors": []}},
    }
    record = wf.outcome_record({"state": state, "execution": "exec-1", "at": "2026-01-01T00:00:00Z"})
    assert record.to_dict()["delivery_errors"] == [{"sink": "slack", "error": "channel_not_found"}]
    assert "delivery_errors" not in wf.outcome_record({"state": {**state, "ticket": {}}, "execution": "e"}).to_dict()
