"""The sweep in the sandbox: exactly-once transitions, no writes when nothing changed, deleted ESMs forgotten,
flaps suppressed, incidents closed by recoveries, concurrency, delivery failures, deadlines, throttling."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from esm_medic.detect import snapshot as snapmod
from esm_medic.detect.events import parse_status_change
from esm_medic.detect.sweeper import SweepSettings, sweep

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
AUTHZ = "PROBLEM: Cluster failed to authorize Lambda."
SASL = "PROBLEM: SASL authentication failed."
FAST = SweepSettings(hold_seconds=0, gc_every_seconds=0)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_transition_emits_exactly_once_and_unchanged_sweeps_write_nothing(detect: Any) -> None:
    (u,) = detect.add_msk()
    first = sweep(detect.aws, now=at(0), settings=FAST)
    assert (first.first_seen, first.emitted) == (1, 0)
    detect.set(u, AUTHZ)
    r = sweep(detect.aws, now=at(1), settings=FAST)
    assert r.emitted == 1 and r.transitions[0]["uuid"] == u
    events = detect.events()
    assert len(events) == 1
    change = parse_status_change(events[0])
    assert change.is_error and change.step == "authz" and change.old is not None
    assert len(detect.error_rule_events()) == 1  # rule 1 routes it to the workflow

    for minute in (2, 3):
        detect.aws.reset_counts()
        again = sweep(detect.aws, now=at(minute), settings=FAST)
        assert again.emitted == 0 and again.unchanged == 1
        assert detect.writes() == 0, dict(detect.aws.calls)
        assert detect.aws.calls["lambda:GetEventSourceMapping"] == 0
        assert detect.aws.calls["events:PutEvents"] == 0
    assert detect.events() == []


def test_the_digest_spares_reads_and_heals_itself(detect: Any) -> None:
    uuids = detect.add_msk(5)
    sweep(detect.aws, now=at(0), settings=FAST)
    detect.aws.reset_counts()
    r = sweep(detect.aws, now=at(1), settings=FAST)
    assert (r.unchanged, r.snapshots_read) == (5, 0)
    assert detect.aws.calls["dynamodb:BatchGetItem"] == 0 and detect.aws.calls["dynamodb:Query"] == 1
    # lose the digest: every snapshot is read once, nothing is emitted, the digest is rebuilt
    table = snapmod.tables.STATE.name
    for item in detect.aws.call("dynamodb", "scan", TableName=table)["Items"]:
        if item["pk"]["S"] == snapmod.DIGEST_PK:
            detect.aws.call("dynamodb", "delete_item", TableName=table, Key={"pk": item["pk"], "sk": item["sk"]})
    r = sweep(detect.aws, now=at(2), settings=FAST)
    assert (r.snapshots_read, r.emitted, r.writes) == (5, 0, 0)
    assert set(snapmod.SnapshotStore(detect.aws).digest_read()) == set(uuids)
    assert sweep(detect.aws, now=at(3), settings=FAST).snapshots_read == 0
    # a late writer of an older version claiming the error status cannot overwrite the newer entry, so the
    # error is read and emitted instead of skipped
    from esm_medic.detect.sweeper import assess

    store = snapmod.SnapshotStore(detect.aws)
    snap = store.get(uuids[0])
    assert snap is not None
    err_hash = snapmod.status_hash(assess(snapmod.Status.of("Enabled", "USER_INITIATED", AUTHZ)).key)
    store.digest_set({uuids[0]: snapmod.digest_entry(snap.version - 1, err_hash)})
    assert snapmod.digest_hash(store.digest_read()[uuids[0]]) != err_hash
    detect.set(uuids[0], AUTHZ)
    r = sweep(detect.aws, now=at(4), settings=FAST)
    assert r.emitted == 1 and r.snapshots_read == 1


def test_recovery_closes_the_incident(detect: Any) -> None:
    (u,) = detect.add_msk()
    sweep(detect.aws, now=at(0), settings=FAST)
    detect.set(u, AUTHZ)
    err = sweep(detect.aws, now=at(1), settings=FAST).transitions[0]
    detect.set(u, "OK")
    rec = sweep(detect.aws, now=at(2), settings=FAST)
    assert rec.recovered == 1
    detail = rec.transitions[0]
    assert detail["recovered"] is True and detail["incident_id"] == err["incident_id"]
    snap = detect.snapshot(u)
    assert snap.incident_id == "" and snap.last_incident_id == err["incident_id"]
    kinds = [e["detail"]["recovered"] for e in detect.events()]
    assert kinds == [False, True]
    assert len(detect.error_rule_events()) == 1  # the recovery does not start the workflow
    detect.set(u, SASL)
    again = sweep(detect.aws, now=at(3), settings=FAST).transitions[0]
    assert again["incident_id"] != err["incident_id"]


def test_born_broken_esm_and_self_managed_source(detect: Any) -> None:
    (u,) = detect.add_msk()
    sm = detect.add_self_managed(("b-1.kafka.example:9096", "b-2.kafka.example:9096"))
    detect.set(u, AUTHZ)
    detect.set(sm, SASL)
    r = sweep(detect.aws, now=at(0), settings=FAST)
    assert r.first_seen == 2 and r.emitted == 2
    by_uuid = {d["uuid"]: d for d in r.transitions}
    assert by_uuid[u]["old"] is None and by_uuid[u]["source_kind"] == "msk"
    assert by_uuid[u]["event_source"] == detect.stack.cluster_arn
    assert by_uuid[sm]["source_kind"] == "self-managed"
    assert by_uuid[sm]["event_source"] == "b-1.kafka.example:9096,b-2.kafka.example:9096"


def test_non_kafka_esms_are_ignored(detect: Any) -> None:
    detect.add_msk()
    q = detect.aws.call("sqs", "create_queue", QueueName="orders-in")["QueueUrl"]
    arn = detect.aws.call("sqs", "get_queue_attributes", QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    detect.aws.call(
        "lambda", "create_event_source_mapping", EventSourceArn=arn, FunctionName=detect.stack.function_name
    )
    r = sweep(detect.aws, now=at(0), settings=FAST)
    assert (r.listed, r.kafka, r.first_seen) == (2, 1, 1)


def test_deleted_esm_is_forgotten_without_event(detect: Any) -> None:
    keep, gone = detect.add_msk(2)
    detect.set(gone, AUTHZ)
    sweep(detect.aws, now=at(0), settings=FAST)
    detect.events()
    detect.aws.call("lambda", "delete_event_source_mapping", UUID=gone)
    r = sweep(detect.aws, now=at(1), settings=FAST)
    assert r.gc_ran and r.deleted == [gone] and r.emitted == 0
    assert detect.snapshot(gone) is None and detect.snapshot(keep) is not None
    assert set(snapmod.SnapshotStore(detect.aws).digest_read()) == {keep}
    assert detect.events() == []


def test_flapping_is_suppressed_and_a_steady_error_emits_after_the_hold(detect: Any) -> None:
    hold = SweepSettings(hold_seconds=120, gc_every_seconds=0, early_emit=False)
    (u,) = detect.add_msk()
    sweep(detect.aws, now=at(0), settings=hold)
    for minute in range(1, 9):  # broken on odd minutes, healthy on even ones
        detect.set(u, AUTHZ if minute % 2 else "OK")
        r = sweep(detect.aws, now=at(minute), settings=hold)
        assert r.emitted == 0
    assert detect.events() == []
    detect.set(u, AUTHZ)
    assert sweep(detect.aws, now=at(9), settings=hold).pending == 1
    assert sweep(detect.aws, now=at(10), settings=hold).held == 1
    r = sweep(detect.aws, now=at(11), settings=hold)
    assert r.emitted == 1 and r.transitions[0]["since"] == snapmod.iso(at(9))
    assert len(detect.events()) == 1


def test_flap_counts(detect: Any) -> None:
    hold = SweepSettings(hold_seconds=120, gc_every_seconds=0, early_emit=False)
    (u,) = detect.add_msk()
    sweep(detect.aws, now=at(0), settings=hold)
    detect.set(u, AUTHZ)
    assert sweep(detect.aws, now=at(1), settings=hold).pending == 1
    detect.set(u, "OK")
    r = sweep(detect.aws, now=at(2), settings=hold)
    assert r.suppressed_flaps == 1 and r.emitted == 0
    assert detect.snapshot(u).pending is None


def test_two_concurrent_sweeps_emit_once(detect: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    detect.add_msk(3)
    sweep(detect.aws, now=at(0), settings=FAST)
    for u in detect.created:
        detect.set(u, AUTHZ)
    barrier = threading.Barrier(2, timeout=30)
    original = snapmod.SnapshotStore.batch_get

    def both_read_before_anyone_writes(self: Any, uuids: Any) -> Any:
        out = original(self, uuids)
        barrier.wait()
        return out

    monkeypatch.setattr(snapmod.SnapshotStore, "batch_get", both_read_before_anyone_writes)
    results: list[Any] = []

    def run() -> None:
        results.append(sweep(detect.aws, now=at(1), settings=FAST))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 2
    assert sum(r.emitted for r in results) == 3
    assert sum(r.conflicts for r in results) == 3
    assert len(detect.events()) == 3
    assert sorted(e["detail"]["uuid"] for e in detect.error_rule_events()) == sorted(detect.created)


def test_stale_list_item_is_confirmed_by_one_get(detect: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    (u,) = detect.add_msk()
    sweep(detect.aws, now=at(0), settings=FAST)
    detect.set(u, AUTHZ)
    real_call = detect.aws.call

    def get_says_healthy(service: str, op: str, **kw: Any) -> Any:
        out = real_call(service, op, **kw)
        if op == "get_event_source_mapping":
            out = {**out, "LastProcessingResult": "OK"}
        return out

    monkeypatch.setattr(detect.aws, "call", get_says_healthy)
    r = sweep(detect.aws, now=at(1), settings=FAST)
    assert (r.confirm_gets, r.confirm_changed, r.emitted) == (1, 1, 0)
    monkeypatch.undo()
    r = sweep(detect.aws, now=at(2), settings=FAST)
    assert r.emitted == 1


def test_undelivered_event_stays_in_the_outbox_and_is_sent_once_later(
    detect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    (u,) = detect.add_msk()
    sweep(detect.aws, now=at(0), settings=FAST)
    detect.set(u, AUTHZ)
    real_call = detect.aws.call

    def put_events_fails(service: str, op: str, **kw: Any) -> Any:
        if op == "put_events":
            n = len(kw["Entries"])
            return {"FailedEntryCount": n, "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "x"}] * n}
        return real_call(service, op, **kw)

    monkeypatch.setattr(detect.aws, "call", put_events_fails)
    r = sweep(detect.aws, now=at(1), settings=SweepSettings(hold_seconds=0, gc_every_seconds=0, put_attempts=2))
    assert (r.emitted, r.failed_events) == (0, 1) and r.errors
    assert detect.snapshot(u).outbox
    monkeypatch.undo()
    r = sweep(detect.aws, now=at(2), settings=FAST)
    assert (r.emitted, r.resent) == (1, 1)
    assert not detect.snapshot(u).outbox
    assert sweep(detect.aws, now=at(3), settings=FAST).emitted == 0
    assert len(detect.events()) == 1


def test_pages_of_100_and_a_deadline_resumes_without_duplicates(detect: Any) -> None:
    uuids = detect.add_msk(201)
    detect.aws.reset_counts()
    r = sweep(detect.aws, now=at(0), settings=FAST)
    assert r.kafka == 201 and r.first_seen == 201
    assert detect.aws.calls["lambda:ListEventSourceMappings"] == 3
    assert detect.aws.calls["dynamodb:BatchGetItem"] == 3
    for u in uuids[:5] + uuids[-5:]:
        detect.set(u, AUTHZ)
    part = sweep(detect.aws, now=at(1), settings=FAST, deadline=time.monotonic())
    assert not part.complete and "deadline" in part.stopped_reason and not part.gc_ran
    assert part.kafka == 100 and part.emitted == 5
    rest = sweep(detect.aws, now=at(2), settings=FAST)
    assert rest.complete and rest.emitted == 5 and rest.unchanged == 196
    assert sorted(e["detail"]["uuid"] for e in detect.events()) == sorted(uuids[:5] + uuids[-5:])


def test_throttled_calls_are_retried_by_the_adapter(detect: Any) -> None:
    """DynamoDB and Lambda throttle the first read calls; botocore's standard retry mode absorbs it."""
    (u,) = detect.add_msk()
    throttled = _throttle(detect.aws, {"BatchGetItem": 2, "ListEventSourceMappings": 1, "Query": 1})
    r = sweep(detect.aws, now=at(0), settings=FAST)
    assert r.complete and r.first_seen == 1
    assert throttled == {"BatchGetItem": 0, "ListEventSourceMappings": 0, "Query": 0}
    detect.set(u, AUTHZ)
    throttled["GetEventSourceMapping"] = 1
    assert sweep(detect.aws, now=at(1), settings=FAST).emitted == 1


def test_write_whose_answer_was_lost_is_delivered_once_via_the_outbox(detect: Any) -> None:
    """A conditional write that succeeded but whose answer was lost (throttled/timeout, then retried by botocore)
    fails its condition on the retry: the sweep cannot know it won, emits nothing, and the outbox written with the
    transition makes a later sweep deliver the event exactly once."""
    (u,) = detect.add_msk()
    sweep(detect.aws, now=at(0), settings=FAST)
    detect.set(u, AUTHZ)
    _throttle(detect.aws, {"PutItem": 1})  # the sandbox applies the first attempt, then answers "throttled"
    r = sweep(detect.aws, now=at(1), settings=FAST)
    assert (r.emitted, r.conflicts) == (0, 1)
    assert detect.snapshot(u).outbox
    assert sweep(detect.aws, now=at(3), settings=FAST).outbox_busy == 1  # inside the grace time: leave it
    late = sweep(detect.aws, now=at(7), settings=FAST)
    assert (late.emitted, late.resent) == (1, 1)
    assert sweep(detect.aws, now=at(8), settings=FAST).emitted == 0
    assert len(detect.events()) == 1


def _throttle(aws: Any, budget: dict[str, int]) -> dict[str, int]:
    """Answer ThrottlingException to the first ``budget[op]`` attempts of each operation (after the sandbox has
    processed them, as botocore calls every before-send handler)."""
    from botocore.awsrequest import AWSResponse

    def throttle(request: Any = None, **kwargs: Any) -> Any:
        op = kwargs.get("event_name", "").rsplit(".", 1)[-1]
        if budget.get(op, 0) > 0:
            budget[op] -= 1
            body = b'{"__type":"ThrottlingException","message":"Rate exceeded"}'
            headers = {"x-amzn-ErrorType": "ThrottlingException", "Content-Type": "application/x-amz-json-1.0"}
            return AWSResponse(request.url, 400 if "lambda" not in request.url else 429, headers, _Raw(body))
        return None

    for service in ("dynamodb", "lambda"):
        aws.client(service).meta.events.register_first(f"before-send.{service}", throttle)
    return budget


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body

    def read(self, *_: Any) -> bytes:
        return self._body


def test_suspected_at_once_then_a_recovery_inside_the_hold_closes_the_incident(detect: Any) -> None:
    early = SweepSettings(hold_seconds=120, gc_every_seconds=0)
    (u,) = detect.add_msk()
    sweep(detect.aws, now=at(0), settings=early)
    detect.set(u, AUTHZ)
    r = sweep(detect.aws, now=at(1), settings=early)
    assert r.emitted == 1
    (err,) = [e["detail"] for e in detect.events()]
    assert err["phase"] == "suspected" and err["holdSeconds"] == 120 and not err["recovered"]
    detect.set(u, "OK")
    r = sweep(detect.aws, now=at(2), settings=early)
    assert r.emitted == 1 and r.recovered == 1 and r.suppressed_flaps == 1
    (rec,) = [e["detail"] for e in detect.events()]
    assert rec["recovered"] and rec["incident_id"] == err["incident_id"] and rec["phase"] == "confirmed"
    assert detect.snapshot(u).incident_id == ""
