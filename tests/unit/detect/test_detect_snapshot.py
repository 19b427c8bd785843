"""Snapshot records: encoding, conditional writes, batched reads with unprocessed keys, the index, signals."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from moto import mock_aws

from esm_medic import tables
from esm_medic.aws import Aws
from esm_medic.detect.snapshot import (
    DIGEST_PK,
    KIND_ERROR,
    Snapshot,
    SnapshotStore,
    Status,
    digest_entry,
    digest_hash,
    iso,
    parse_iso,
    shard_of,
    status_hash,
)

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def uid(i: int) -> str:
    return f"00000000-0000-4000-8000-{i:012d}"


@pytest.fixture
def aws() -> Iterator[Aws]:
    with mock_aws():
        a = Aws(region="us-east-1")
        tables.create_tables(a)
        a.reset_counts()
        yield a


def test_round_trip() -> None:
    snap = Snapshot(
        uuid=uid(1),
        version=7,
        status=Status.of("Enabled", "USER_INITIATED", "PROBLEM: x"),
        kind=KIND_ERROR,
        since=iso(T0),
        pending=Status.of("Enabled", "USER_INITIATED", "OK"),
        pending_since=iso(T0 + timedelta(minutes=1)),
        incident_id="inc-1",
        last_incident_id="inc-0",
        entry="e",
        step="network",
        function_arn="arn:f",
        event_source="b:9092",
        source_kind="self-managed",
        created_at=iso(T0),
        updated_at=iso(T0),
        outbox='{"a":1}',
        outbox_at=iso(T0),
    )
    assert Snapshot.from_item(snap.to_item()) == snap
    empty = Snapshot(uuid=uid(2), version=1)
    assert Snapshot.from_item(empty.to_item()) == empty
    assert snap.outbox_detail() == {"a": 1} and empty.outbox_detail() is None


def test_iso_round_trip() -> None:
    assert parse_iso(iso(T0)) == T0 and iso(T0).endswith("Z")


def test_conditional_puts(aws: Aws) -> None:
    store = SnapshotStore(aws)
    first = Snapshot(uuid=uid(1), version=1)
    assert store.put(first, 0)
    assert not store.put(first, 0)  # the record exists now: a second "first sighting" loses
    assert store.put(first.evolve(version=2), 1)
    assert not store.put(first.evolve(version=3), 1)  # stale version
    got = store.get(uid(1))
    assert got is not None and got.version == 2


def test_batch_get_reads_100_keys_per_call(aws: Aws) -> None:
    store = SnapshotStore(aws)
    for i in range(150):
        store.put(Snapshot(uuid=uid(i), version=1), 0)
    aws.reset_counts()
    found, unread = store.batch_get(uid(i) for i in range(250))
    assert len(found) == 150 and not unread
    assert aws.calls["dynamodb:BatchGetItem"] == 3


class _Unprocessed:
    """Adapter stand-in: BatchGetItem answers nothing and returns every key as unprocessed."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def call(self, service: str, op: str, **kw: Any) -> dict[str, Any]:
        self.calls[op] += 1
        if op == "batch_get_item":
            return {"Responses": {}, "UnprocessedKeys": kw["RequestItems"]}
        raise AssertionError(op)


def test_unprocessed_keys_are_retried_then_reported_unread() -> None:
    fake = _Unprocessed()
    store = SnapshotStore(fake, "t", sleep=lambda s: None)  # type: ignore[arg-type]
    found, unread = store.batch_get([uid(1), uid(2)])
    assert found == {} and unread == {uid(1), uid(2)}  # never mistaken for first sightings
    assert fake.calls["batch_get_item"] == 6


def test_digest_entries_order_by_version_and_busy_sorts_first() -> None:
    h = status_hash(("Enabled", "~healthy", "~healthy"))
    assert digest_entry(9, None) < digest_entry(9, h) < digest_entry(10, None) < digest_entry(10, h)
    assert digest_hash(digest_entry(3, h)) == h and digest_hash(digest_entry(3, None)) is None
    assert digest_hash(None) is None and digest_hash("junk") is None
    assert status_hash(("a", "b", "c")) != status_hash(("a", "bc", ""))
    assert {shard_of(uid(i), 4) for i in range(50)} == {"000", "001", "002", "003"}


def test_digest_set_read_remove(aws: Aws) -> None:
    store = SnapshotStore(aws, shards=4)
    entries = {uid(i): digest_entry(1, "aaaaaaaaaaaa") for i in range(120)}
    store.digest_set(entries)
    assert store.digest_read() == entries
    assert aws.calls["dynamodb:PutItem"] == 4  # each shard item created once
    # an older or equal entry never replaces a newer one; newer ones do
    store.digest_set({uid(1): digest_entry(0, "bbbbbbbbbbbb"), uid(2): digest_entry(2, None)})
    got = SnapshotStore(aws, shards=4).digest_read()
    assert got[uid(1)] == digest_entry(1, "aaaaaaaaaaaa")
    assert got[uid(2)] == digest_entry(2, None)
    store.digest_set({uid(2): digest_entry(2, "cccccccccccc")})  # busy -> settled at the same version
    assert store.digest_read()[uid(2)] == digest_entry(2, "cccccccccccc")
    store.digest_set({uid(2): digest_entry(1, "dddddddddddd")})  # a late writer of an older version: ignored
    assert store.digest_read()[uid(2)] == digest_entry(2, "cccccccccccc")
    store.digest_remove([uid(i) for i in range(100)])
    assert set(store.digest_read()) == {uid(i) for i in range(100, 120)}
    items = aws.call(
        "dynamodb",
        "query",
        TableName=tables.STATE.name,
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": DIGEST_PK}},
    )["Items"]
    assert len(items) == 4


def test_delete_only_snapshots_created_before_the_cutoff(aws: Aws) -> None:
    store = SnapshotStore(aws)
    store.put(Snapshot(uuid=uid(1), version=1, created_at=iso(T0)), 0)
    store.put(Snapshot(uuid=uid(2), version=1, created_at=iso(T0 + timedelta(minutes=5))), 0)
    cutoff = iso(T0 + timedelta(minutes=1))
    assert store.delete(uid(1), created_before=cutoff)
    assert not store.delete(uid(2), created_before=cutoff)
    assert store.get(uid(1)) is None and store.get(uid(2)) is not None
    assert store.delete(uid(3), created_before=cutoff)  # already gone is fine


def test_signal_claims_expire(aws: Aws) -> None:
    store = SnapshotStore(aws)
    assert store.claim_signal(uid(1), "k", now=T0, ttl_seconds=60)
    assert not store.claim_signal(uid(1), "k", now=T0 + timedelta(seconds=30), ttl_seconds=60)
    assert store.claim_signal(uid(1), "other", now=T0 + timedelta(seconds=30), ttl_seconds=60)
    assert store.claim_signal(uid(1), "k", now=T0 + timedelta(seconds=61), ttl_seconds=60)
    store.release_signal(uid(1), "k")
    assert store.claim_signal(uid(1), "k", now=T0 + timedelta(seconds=62), ttl_seconds=60)
