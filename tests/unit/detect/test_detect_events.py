"""Parsers, schema validation and the event publisher of esm_medic.detect.events."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from detect_fixtures import expectations, load

from esm_medic.detect import events as ev

EXPECT = expectations()
PARSERS = {
    "api_change": ev.parse_api_change,
    "access_denial": ev.parse_access_denial,
    "status_change": ev.parse_status_change,
    "metric_alarm": ev.parse_metric_alarm,
}


@pytest.mark.parametrize("fixture", sorted(EXPECT))
def test_parser_accepts_or_rejects_with_a_reason(fixture: str) -> None:
    exp = EXPECT[fixture]
    parse = PARSERS[exp["parser"]]
    event = load(fixture)
    if "rejected" in exp:
        with pytest.raises(ev.EventRejected) as info:
            parse(event)
        assert type(info.value).__name__ == exp["rejected"]
        assert exp["reason"] in info.value.reason
        return
    result = parse(event)
    for key, want in exp["expect"].items():
        got = getattr(result, key)
        assert (list(got) if isinstance(got, tuple) else got) == want, key


@pytest.mark.parametrize("bad", [None, 42, "not json {", [], {"detail": "x", "source": "esm-medic"}])
def test_status_change_rejects_junk(bad: Any) -> None:
    with pytest.raises(ev.MalformedEvent):
        ev.parse_status_change(bad)


def test_status_change_round_trip_envelope_bare_and_text() -> None:
    event = load("esm-medic/status-change-error.json")
    a = ev.parse_status_change(event)
    b = ev.parse_status_change(event["detail"])
    c = ev.parse_status_change(json.dumps(event))
    assert a == b == c
    assert a.is_error and a.step == "network" and a.old is not None


def test_build_status_change_validates_and_matches_the_error_rule() -> None:
    detail = ev.build_status_change(
        event_id="x:v2",
        uuid="6f1c2b7e-3d4a-4e5f-8a9b-0c1d2e3f4a5b",
        incident_id="inc-1",
        function_arn="arn:aws:lambda:us-east-1:123456789012:function:f",
        event_source="b-1:9092",
        source_kind="self-managed",
        old=None,
        new={"State": "Enabled", "StateTransitionReason": "USER_INITIATED", "LastProcessingResult": "PROBLEM: x"},
        classification={"entry": None, "step": "unknown", "kind": "unknown"},
        recovered=False,
        observed_at="2026-11-26T10:00:00.000Z",
        since="2026-11-26T10:00:00.000Z",
    )
    assert ev.parse_status_change(detail).is_error
    entry = ev.put_entry(detail, "esm-bus")
    assert (entry["Source"], entry["DetailType"], entry["EventBusName"]) == (ev.SOURCE, ev.DETAIL_TYPE, "esm-bus")
    assert json.loads(entry["Detail"]) == detail
    with pytest.raises(ev.MalformedEvent, match="uuid"):
        ev.build_status_change(**{**_kwargs(detail), "uuid": "not-a-uuid"})
    with pytest.raises(ev.MalformedEvent, match="source_kind"):
        ev.build_status_change(**{**_kwargs(detail), "source_kind": "sqs"})


def _kwargs(detail: dict[str, Any]) -> dict[str, Any]:
    keys = ("event_id", "uuid", "incident_id", "function_arn", "event_source", "source_kind", "old", "new")
    out = {k: detail[k] for k in keys}
    out.update(
        classification=detail["classification"],
        recovered=detail["recovered"],
        observed_at=detail["observed_at"],
        since=detail["since"],
    )
    return out


def test_cloudtrail_record_unwraps_and_checks() -> None:
    event = load("cloudtrail/create-esm-msk.json")
    assert ev.cloudtrail_record(event) == event["detail"]
    assert ev.cloudtrail_record(event["detail"]) == event["detail"]
    with pytest.raises(ev.MalformedEvent, match="detail-type"):
        ev.cloudtrail_record({**event, "detail-type": "Scheduled Event"})
    with pytest.raises(ev.MalformedEvent, match="eventSource"):
        ev.cloudtrail_record({**event["detail"], "eventSource": "not a host"})


def test_denial_codes() -> None:
    for code in (
        "AccessDenied",
        "AccessDeniedException",
        "Client.UnauthorizedOperation",
        "UnauthorizedOperation",
        "KMSAccessDeniedException",
        "KMSInvalidStateException",
        "DisabledException",
        "DecryptionFailure",
    ):
        assert ev.is_denial_code(code), code
    for code in ("ResourceNotFoundException", "ThrottlingException", "ValidationException", ""):
        assert not ev.is_denial_code(code), code


def test_role_key_matches_with_or_without_path() -> None:
    assert ev._role_key("arn:aws:iam::123456789012:role/service-role/Orders-Role") == ev._role_key(
        "arn:aws:iam::123456789012:role/orders-role"
    )
    assert ev._role_key("arn:aws:iam::123456789012:role/a") != ev._role_key("arn:aws:iam::210987654321:role/a")


# ------------------------------------------------------------------ publisher
class FakeEvents:
    """A stand-in adapter for PutEvents: fails the listed entry positions on the first N calls."""

    def __init__(self, fail_first_calls: int = 0, raise_first_calls: int = 0) -> None:
        self.calls: Counter[str] = Counter()
        self.batches: list[list[dict[str, Any]]] = []
        self.fail_first_calls = fail_first_calls
        self.raise_first_calls = raise_first_calls

    def call(self, service: str, operation: str, **params: Any) -> dict[str, Any]:
        assert (service, operation) == ("events", "put_events")
        self.calls["events:PutEvents"] += 1
        entries = params["Entries"]
        assert 1 <= len(entries) <= 10
        self.batches.append(entries)
        n = self.calls["events:PutEvents"]
        if n <= self.raise_first_calls:
            raise RuntimeError("endpoint unavailable")
        out = []
        for i, _e in enumerate(entries):
            if n <= self.fail_first_calls and i % 2 == 0:
                out.append({"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"})
            else:
                out.append({"EventId": f"id-{n}-{i}"})
        return {"FailedEntryCount": sum(1 for o in out if "ErrorCode" in o), "Entries": out}


def _details(n: int) -> list[dict[str, Any]]:
    return [{"event_id": f"e{i}", "n": i} for i in range(n)]


def test_publisher_batches_by_ten() -> None:
    fake = FakeEvents()
    res = ev.EventPublisher(fake, "b", sleep=lambda s: None).put(_details(23))  # type: ignore[arg-type]
    assert [len(b) for b in fake.batches] == [10, 10, 3]
    assert sorted(res.sent) == list(range(23)) and res.failed == []


def test_publisher_retries_failed_entries_only() -> None:
    fake = FakeEvents(fail_first_calls=1)
    res = ev.EventPublisher(fake, "b", sleep=lambda s: None).put(_details(4))  # type: ignore[arg-type]
    assert [len(b) for b in fake.batches] == [4, 2]  # entries 0 and 2 failed once, were retried alone
    assert sorted(res.sent) == [0, 1, 2, 3]


def test_publisher_gives_up_after_bounded_attempts() -> None:
    fake = FakeEvents(raise_first_calls=99)
    res = ev.EventPublisher(fake, "b", max_attempts=3, sleep=lambda s: None).put(_details(2))  # type: ignore[arg-type]
    assert res.sent == [] and sorted(i for i, _ in res.failed) == [0, 1]
    assert fake.calls["events:PutEvents"] == 3
    assert "endpoint unavailable" in res.failed[0][1]
