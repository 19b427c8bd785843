"""``scan``: every Kafka ESM of the account, one listing, shared batched lookups, right answers, read-only."""

from __future__ import annotations

from collections import Counter

from diag_helpers import mutating_calls, sandbox_resolver
from esm_medic_sandbox import scenarios

from esm_medic.diagnose import Lookups, scan


def _expected(exp: dict) -> tuple[str, str, str]:
    return exp["step"], exp["root_cause"] or "healthy", exp["fix"] or ""


def test_fleet_scan_is_right_and_cheap(fresh_aws):
    fleet = scenarios.build_fleet(fresh_aws, clusters=3, esms=60, broken_ratio=0.4)
    fresh_aws.reset_counts()
    lookups = Lookups(fresh_aws, resolver=sandbox_resolver)
    seen: list[tuple[int, int]] = []
    results = scan(fresh_aws, lookups=lookups, progress=lambda done, total: seen.append((done, total)))

    assert [d.uuid for d in results] == fleet.uuids  # listing order, every Kafka ESM, no Get per ESM
    for d in results:
        assert (d.step, d.root_cause.id, d.root_cause.fix) == _expected(fleet.expected[d.uuid]), d.uuid
    assert seen[0] == (0, 60) and seen[-1] == (60, 60)

    calls = dict(fresh_aws.calls)
    assert calls.get("lambda:GetEventSourceMapping", 0) == 0
    assert mutating_calls(calls) == []
    assert calls["ec2:DescribeSecurityGroups"] == 1  # every group of every cluster in one request
    assert calls["kafka:ListClustersV2"] == 1 and "kafka:DescribeClusterV2" not in calls
    assert fresh_aws.total_calls / len(results) <= 3
    stats = lookups.stats()
    assert stats["api_calls"] == fresh_aws.total_calls
    assert stats["shared_lookups"] < len(results) / 3
    # per-ESM costs add up to the scan's total (the listing and the prefetch are nobody's)
    assert sum(d.api_calls for d in results) <= fresh_aws.total_calls
    broken = Counter(d.root_cause.id for d in results if not d.healthy)
    assert set(broken) == {"no-sg-self-rule", "iam-missing-kafka-cluster"}


def test_scan_on_threads_gives_the_same_answers(fresh_aws):
    for name in ("missing-sg-self-rule", "no-nat-no-endpoints", "healthy", "self-managed-unresolvable-broker"):
        scenarios.build(fresh_aws, name, prefix="scan-")
    one = scan(fresh_aws, resolver=sandbox_resolver)
    four = scan(fresh_aws, resolver=sandbox_resolver, workers=4)
    assert [(d.uuid, d.root_cause.id, d.root_cause.fix) for d in one] == [
        (d.uuid, d.root_cause.id, d.root_cause.fix) for d in four
    ]
    assert {d.root_cause.id for d in one} == {"no-sg-self-rule", "no-nat-or-endpoints", "healthy", "typo"}


def test_scan_ignores_non_kafka_esms(fresh_aws):
    queue = fresh_aws.call("sqs", "create_queue", QueueName="q")["QueueUrl"]
    arn = fresh_aws.call("sqs", "get_queue_attributes", QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    built = scenarios.build(fresh_aws, "healthy", prefix="mixed-")
    fn = built.function_name
    fresh_aws.call("lambda", "create_event_source_mapping", FunctionName=fn, EventSourceArn=arn)
    results = scan(fresh_aws, resolver=sandbox_resolver)
    assert [d.uuid for d in results] == [built.uuid]


def test_empty_account(fresh_aws):
    assert scan(fresh_aws) == []
