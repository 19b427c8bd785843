"""esm_medic.diagnose.lookups: batching, memoisation, failure classification, thread safety, no secret values kept."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from esm_medic.diagnose import lookups as lk
from esm_medic.diagnose import readcore
from esm_medic.diagnose.lookups import Lookups, calls_in_thread, iam_action


class FakeAws:
    """Just enough of esm_medic.aws.Aws: ``call`` dispatches to handlers and logs every call."""

    region = "us-east-1"
    total_calls = 0

    def __init__(self, handlers: dict[tuple[str, str], Callable[..., dict[str, Any]]]) -> None:
        self.handlers = handlers
        self.log: list[tuple[str, str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def call(self, service: str, operation: str, **params: Any) -> dict[str, Any]:
        with self._lock:
            self.log.append((service, operation, params))
        return self.handlers[(service, operation)](**params)

    def ops(self) -> list[str]:
        return [f"{s}:{o}" for s, o, _ in self.log]


def client_error(code: str, op: str = "Op") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} happened"}}, op)


def sgs_handler(existing: set[str]) -> Callable[..., dict[str, Any]]:
    def handler(Filters: list[dict[str, Any]], **_: Any) -> dict[str, Any]:
        wanted = Filters[0]["Values"]
        return {"SecurityGroups": [{"GroupId": g, "VpcId": "vpc-1"} for g in wanted if g in existing]}

    return handler


def test_iam_action_names():
    assert iam_action("ec2", "describe_security_groups") == "ec2:DescribeSecurityGroups"
    assert iam_action("kafka", "describe_cluster_v2") == "kafka:DescribeClusterV2"
    assert iam_action("route53", "list_hosted_zones_by_vpc") == "route53:ListHostedZonesByVPC"


def test_security_groups_are_batched_and_memoised():
    ids = [f"sg-{i:04d}" for i in range(250)]
    aws = FakeAws({("ec2", "describe_security_groups"): sgs_handler(set(ids[:-1]))})
    lookups = Lookups(aws)  # type: ignore[arg-type]
    got = lookups.security_groups(ids)
    assert aws.ops() == ["ec2:describe_security_groups"] * 2  # 200 + 50 ids per filter
    assert all(got[i].ok for i in ids[:-1])
    assert got[ids[-1]].not_found
    again = lookups.security_groups(ids[:10])
    assert len(aws.log) == 2 and all(f.ok for f in again.values())
    stats = lookups.stats()
    assert stats["api_calls"] == 2 and stats["fetches"]["sg"] == 2 and stats["hits"]["sg"] >= 10


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (client_error("UnauthorizedOperation"), "denied"),
        (client_error("AccessDeniedException"), "denied"),
        (client_error("Throttling"), "throttled"),
        (client_error("InternalFailure"), "error"),  # a real 500 stays an error (issue 11)
        (NotImplementedError("moto"), "unsupported"),
        (client_error("InvalidParameterValue"), "error"),
    ],
)
def test_read_failures_are_classified_and_memoised(exc, kind):
    def boom(**_: Any) -> dict[str, Any]:
        raise exc

    aws = FakeAws({("ec2", "describe_security_groups"): boom, ("kafka", "describe_cluster_v2"): boom})
    lookups = Lookups(aws)  # type: ignore[arg-type]
    got = lookups.security_groups(["sg-1", "sg-2"])
    assert {f.error for f in got.values()} == {kind}
    assert got["sg-1"].permission == "ec2:DescribeSecurityGroups"
    cluster = lookups.cluster("arn:aws:kafka:us-east-1:1:cluster/x/y")
    assert cluster.error == kind and cluster.permission == "kafka:DescribeClusterV2"
    lookups.security_groups(["sg-1"])
    lookups.cluster("arn:aws:kafka:us-east-1:1:cluster/x/y")
    assert len(aws.log) == 2  # failures are memoised too


def test_not_found_cluster():
    def missing(**_: Any) -> dict[str, Any]:
        raise client_error("NotFoundException")

    lookups = Lookups(FakeAws({("kafka", "describe_cluster_v2"): missing}))  # type: ignore[arg-type]
    assert lookups.cluster("arn:x").not_found


def test_one_fetch_per_key_under_threads():
    def slow(**_: Any) -> dict[str, Any]:
        time.sleep(0.05)
        return {"ClusterInfo": {"ClusterName": "c"}}

    aws = FakeAws({("kafka", "describe_cluster_v2"): slow})
    lookups = Lookups(aws)  # type: ignore[arg-type]
    threads = [threading.Thread(target=lookups.cluster, args=("arn:c",)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(aws.log) == 1


def test_calls_in_thread_counts_only_this_threads_calls():
    aws = FakeAws({("kafka", "describe_cluster_v2"): lambda **_: {"ClusterInfo": {}}})
    lookups = Lookups(aws)  # type: ignore[arg-type]
    before = calls_in_thread()
    lookups.cluster("arn:a")
    lookups.cluster("arn:a")  # memo hit: no call
    other = threading.Thread(target=lookups.cluster, args=("arn:b",))
    other.start()
    other.join()
    assert calls_in_thread() - before == 1
    assert lookups.total_calls == 2


def test_vpc_lookups_group_by_vpc_in_one_call():
    def tables(Filters: list[dict[str, Any]], **_: Any) -> dict[str, Any]:
        return {"RouteTables": [{"RouteTableId": f"rtb-{v}", "VpcId": v} for v in Filters[0]["Values"] if v != "vpc-3"]}

    aws = FakeAws({("ec2", "describe_route_tables"): tables})
    lookups = Lookups(aws)  # type: ignore[arg-type]
    lookups._by_vpc("rtb", ["vpc-1", "vpc-2", "vpc-3"], "describe_route_tables", "RouteTables")
    assert len(aws.log) == 1
    assert lookups.route_tables("vpc-2").value == [{"RouteTableId": "rtb-vpc-2", "VpcId": "vpc-2"}]
    assert lookups.route_tables("vpc-3").value == []
    assert len(aws.log) == 1


def test_pagination_follows_tokens():
    pages = {
        None: {"EventSourceMappings": [{"UUID": "a"}], "NextMarker": "m1"},
        "m1": {"EventSourceMappings": [{"UUID": "b"}]},
    }
    aws = FakeAws({("lambda", "list_event_source_mappings"): lambda Marker=None, **_: pages[Marker]})
    got = Lookups(aws).list_esms()  # type: ignore[arg-type]
    assert [i["UUID"] for i in got.get()] == ["a", "b"]
    assert len(aws.log) == 2


def test_secret_values_are_never_kept():
    password = "hunter2-do-not-keep"

    def value(**_: Any) -> dict[str, Any]:
        return {"SecretString": json.dumps({"username": "u", "password": password})}

    lookups = Lookups(FakeAws({("secretsmanager", "get_secret_value"): value}))  # type: ignore[arg-type]
    shape = lookups.secret_shape("arn:s", "SASL_SCRAM_512_AUTH")
    assert shape.ok and shape.get().ok
    assert password not in repr(lookups._cache)


def test_resolver_answers_are_classified_and_memoised():
    seen: list[str] = []

    def resolver(host: str) -> list[str]:
        seen.append(host)
        if host == "nx.example":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if host == "slow.example":
            raise TimeoutError("slow")
        return ["10.0.0.1"]

    lookups = Lookups(FakeAws({}), resolver=resolver)  # type: ignore[arg-type]
    assert lookups.resolve("B-1.Example.").addresses == ("10.0.0.1",)
    assert lookups.resolve("nx.example").error == "nxdomain"
    assert lookups.resolve("slow.example").error == "timeout"
    lookups.resolve("b-1.example")
    assert seen == ["b-1.example", "nx.example", "slow.example"]


def test_system_resolver_times_out(monkeypatch):
    def hang(*_: Any, **__: Any) -> list[Any]:
        time.sleep(1)
        return []

    monkeypatch.setattr(readcore.socket, "getaddrinfo", hang)
    with pytest.raises(TimeoutError):
        lk.system_resolver("hang.example", timeout=0.05)


def test_system_resolver_resolves_localhost():
    assert lk.system_resolver("localhost")
