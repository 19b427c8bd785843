"""Per-scan memoised, read-only AWS lookups for the diagnosis, through the one adapter (``esm_medic.aws.Aws``).

:class:`Lookups` is the reads of the ESM, its function, its MSK cluster and its network (batched across the ESMs of
a scan), plus the role / secret reads (:mod:`~esm_medic.diagnose.lookups_identity`) and the DNS reads
(:mod:`~esm_medic.diagnose.lookups_dns`); the memo, the call counting and :class:`Fetched` live in
:mod:`~esm_medic.diagnose.readcore`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from esm_medic.diagnose.lookups_dns import DnsReads
from esm_medic.diagnose.lookups_identity import IdentityReads
from esm_medic.diagnose.readcore import (
    BATCH,
    LIST_CLUSTERS_THRESHOLD,
    LIST_FUNCTIONS_THRESHOLD,
    DnsAnswer,
    Fetched,
    Resolver,
    RolePolicies,
    _chunks,
    _strip,
    calls_in_thread,
    iam_action,
    system_resolver,
)


class Lookups(IdentityReads, DnsReads):
    """Memoised reads for one scan (or one diagnosis). Thread-safe: a key is fetched once even under threads."""

    # ------------------------------------------------------------------ lambda
    def get_esm(self, uuid: str) -> Fetched[dict[str, Any]]:
        def fetch() -> Fetched[dict[str, Any]]:
            return self._read(
                "lambda",
                "get_event_source_mapping",
                lambda: _strip(self._call("lambda", "get_event_source_mapping", UUID=uuid)),
            )

        return self._memo("esm", (uuid,), fetch)

    def list_esms(self, **filters: Any) -> Fetched[list[dict[str, Any]]]:
        """Every ESM of the account and region (ListEventSourceMappings, 100 per page)."""

        def fetch() -> Fetched[list[dict[str, Any]]]:
            return self._read(
                "lambda",
                "list_event_source_mappings",
                lambda: self._pages(
                    "lambda",
                    "list_event_source_mappings",
                    "EventSourceMappings",
                    token_in="Marker",
                    token_out="NextMarker",
                    MaxItems=100,
                    **filters,
                ),
            )

        return self._memo("esm-list", tuple(sorted(filters.items())), fetch)

    def function(self, function_arn: str) -> Fetched[dict[str, Any]]:
        """GetFunctionConfiguration (memoised by unqualified function name; the scan pre-lists functions)."""
        name = _function_key(function_arn)

        def fetch() -> Fetched[dict[str, Any]]:
            return self._read(
                "lambda",
                "get_function_configuration",
                lambda: _strip(self._call("lambda", "get_function_configuration", FunctionName=function_arn)),
            )

        return self._memo("function", (name,), fetch)

    def prefetch_functions(self, function_arns: Iterable[str]) -> None:
        wanted = {_function_key(a): a for a in function_arns if a}
        todo = {k: a for k, a in wanted.items() if not self._cached("function", (k,))[0]}
        if len(todo) <= LIST_FUNCTIONS_THRESHOLD:
            return  # a few Gets are cheaper than listing the account's functions
        with self._batch_lock("functions"):
            todo = {k: a for k, a in todo.items() if not self._cached("function", (k,))[0]}
            params: dict[str, Any] = {"MaxItems": 50}
            try:
                while todo:
                    page = self._call("lambda", "list_functions", **params)
                    for fn in page.get("Functions") or []:
                        key = _function_key(str(fn.get("FunctionArn") or fn.get("FunctionName") or ""))
                        if key in todo:
                            self._store("function", (key,), Fetched(dict(fn)), fetched=True)
                            todo.pop(key, None)
                    marker = page.get("NextMarker")
                    if not marker:
                        break
                    params["Marker"] = marker
            except Exception:  # the per-function Get (and its own error handling) takes over
                return
            finally:
                with self._lock:
                    self._stats.fetches["functions"] += 1

    # ------------------------------------------------------------------ kafka
    def cluster(self, cluster_arn: str) -> Fetched[dict[str, Any]]:
        def fetch() -> Fetched[dict[str, Any]]:
            return self._read(
                "kafka",
                "describe_cluster_v2",
                lambda: dict(
                    self._call("kafka", "describe_cluster_v2", ClusterArn=cluster_arn).get("ClusterInfo") or {}
                ),
            )

        return self._memo("cluster", (cluster_arn,), fetch)

    def prefetch_clusters(self, cluster_arns: Iterable[str]) -> None:
        todo = {a for a in cluster_arns if a and not self._cached("cluster", (a,))[0]}
        if len(todo) <= LIST_CLUSTERS_THRESHOLD:
            return
        with self._batch_lock("clusters"):
            todo = {a for a in todo if not self._cached("cluster", (a,))[0]}
            if not todo:
                return
            try:
                infos = self._pages("kafka", "list_clusters_v2", "ClusterInfoList", MaxResults=100)
            except Exception:
                return  # DescribeClusterV2 per cluster takes over
            finally:
                with self._lock:
                    self._stats.fetches["clusters"] += 1
            for info in infos:
                arn = str(info.get("ClusterArn") or "")
                if arn in todo:
                    self._store("cluster", (arn,), Fetched(dict(info)), fetched=False)

    def scram_secrets(self, cluster_arn: str) -> Fetched[list[str]]:
        def fetch() -> Fetched[list[str]]:
            return self._read(
                "kafka",
                "list_scram_secrets",
                lambda: [
                    str(s) for s in self._pages("kafka", "list_scram_secrets", "SecretArnList", ClusterArn=cluster_arn)
                ],
            )

        return self._memo("scram", (cluster_arn,), fetch)

    # ------------------------------------------------------------------ ec2: per id, batched
    def _by_ids(
        self, kind: str, ids: Iterable[str], operation: str, key: str, id_field: str, filter_name: str
    ) -> dict[str, Fetched[dict[str, Any]]]:
        wanted = list(dict.fromkeys(i for i in ids if i))
        missing = [i for i in wanted if not self._cached(kind, (i,))[0]]
        if missing:
            with self._batch_lock(kind):
                missing = [i for i in missing if not self._cached(kind, (i,))[0]]
                for chunk in _chunks(missing, BATCH):
                    try:
                        items = self._pages("ec2", operation, key, Filters=[{"Name": filter_name, "Values": chunk}])
                    except Exception as exc:
                        failure = Fetched.failed(exc, iam_action("ec2", operation))
                        for i in chunk:
                            self._store(kind, (i,), failure)
                        with self._lock:
                            self._stats.fetches[kind] += 1
                        continue
                    found = {str(it.get(id_field)): dict(it) for it in items}
                    for i in chunk:
                        value: Fetched[dict[str, Any]] = (
                            Fetched(found[i])
                            if i in found
                            else Fetched(None, "not-found", f"Invalid{kind}.NotFound", f"{i} does not exist", "")
                        )
                        self._store(kind, (i,), value)
                    with self._lock:
                        self._stats.fetches[kind] += 1
        out: dict[str, Fetched[dict[str, Any]]] = {}
        for i in wanted:
            _, value = self._cached(kind, (i,))
            out[i] = value
            if i not in missing:
                with self._lock:
                    self._stats.hits[kind] += 1
        return out

    def subnets(self, ids: Iterable[str]) -> dict[str, Fetched[dict[str, Any]]]:
        return self._by_ids("subnet", ids, "describe_subnets", "Subnets", "SubnetId", "subnet-id")

    def security_groups(self, ids: Iterable[str]) -> dict[str, Fetched[dict[str, Any]]]:
        return self._by_ids("sg", ids, "describe_security_groups", "SecurityGroups", "GroupId", "group-id")

    # ------------------------------------------------------------------ ec2: per VPC, batched
    def _by_vpc(
        self, kind: str, vpc_ids: Iterable[str], operation: str, key: str
    ) -> dict[str, Fetched[list[dict[str, Any]]]]:
        wanted = list(dict.fromkeys(v for v in vpc_ids if v))
        missing = [v for v in wanted if not self._cached(kind, (v,))[0]]
        if missing:
            with self._batch_lock(kind):
                missing = [v for v in missing if not self._cached(kind, (v,))[0]]
                for chunk in _chunks(missing, BATCH):
                    try:
                        items = self._pages("ec2", operation, key, Filters=[{"Name": "vpc-id", "Values": chunk}])
                    except Exception as exc:
                        failure = Fetched.failed(exc, iam_action("ec2", operation))
                        for v in chunk:
                            self._store(kind, (v,), failure)
                        with self._lock:
                            self._stats.fetches[kind] += 1
                        continue
                    grouped: dict[str, list[dict[str, Any]]] = {v: [] for v in chunk}
                    for it in items:
                        grouped.setdefault(str(it.get("VpcId") or ""), []).append(dict(it))
                    for v in chunk:
                        self._store(kind, (v,), Fetched(grouped.get(v, [])))
                    with self._lock:
                        self._stats.fetches[kind] += 1
        out: dict[str, Fetched[list[dict[str, Any]]]] = {}
        for v in wanted:
            out[v] = self._cached(kind, (v,))[1]
            if v not in missing:
                with self._lock:
                    self._stats.hits[kind] += 1
        return out

    def route_tables(self, vpc_id: str) -> Fetched[list[dict[str, Any]]]:
        return self._by_vpc("rtb", [vpc_id], "describe_route_tables", "RouteTables")[vpc_id]

    def nat_gateways(self, vpc_id: str) -> Fetched[list[dict[str, Any]]]:
        return self._by_vpc("nat", [vpc_id], "describe_nat_gateways", "NatGateways")[vpc_id]

    def vpc_endpoints(self, vpc_id: str) -> Fetched[list[dict[str, Any]]]:
        return self._by_vpc("vpce", [vpc_id], "describe_vpc_endpoints", "VpcEndpoints")[vpc_id]

    def network_acls(self, vpc_id: str) -> Fetched[list[dict[str, Any]]]:
        return self._by_vpc("nacl", [vpc_id], "describe_network_acls", "NetworkAcls")[vpc_id]

    def vpc_dns(self, vpc_id: str) -> Fetched[dict[str, bool]]:
        """{"enableDnsSupport": bool, "enableDnsHostnames": bool} (two DescribeVpcAttribute calls per VPC)."""

        def fetch() -> Fetched[dict[str, bool]]:
            def both() -> dict[str, bool]:
                out = {}
                for attr in ("enableDnsSupport", "enableDnsHostnames"):
                    resp = self._call("ec2", "describe_vpc_attribute", VpcId=vpc_id, Attribute=attr)
                    out[attr] = bool((resp.get(attr[0].upper() + attr[1:]) or {}).get("Value"))
                return out

            return self._read("ec2", "describe_vpc_attribute", both)

        return self._memo("vpc-dns", (vpc_id,), fetch)

    def prefetch_network(
        self, *, subnet_ids: Iterable[str], sg_ids: Iterable[str], service_subnet_ids: Iterable[str] = ()
    ) -> None:
        """Batch the shared network reads of many ESMs: the subnets, then per VPC the NACLs and DNS attributes,
        and the route tables, NAT gateways and endpoints of the VPCs holding ``service_subnet_ids`` (the subnets
        of on-demand ESMs, which need a path to STS / Lambda), then every security group in one request (the
        ESMs' groups plus the endpoints' groups)."""
        service = set(service_subnet_ids)
        subs = self.subnets([*subnet_ids, *service])
        vpcs: list[str] = []
        svc_vpcs: list[str] = []
        for sid, f in subs.items():
            vpc = str((f.value or {}).get("VpcId") or "")
            if not vpc:
                continue
            if vpc not in vpcs:
                vpcs.append(vpc)
            if sid in service and vpc not in svc_vpcs:
                svc_vpcs.append(vpc)
        self._by_vpc("nacl", vpcs, "describe_network_acls", "NetworkAcls")
        groups = list(sg_ids)
        extra_subnets: list[str] = []
        if svc_vpcs:
            self._by_vpc("rtb", svc_vpcs, "describe_route_tables", "RouteTables")
            for nat_list in self._by_vpc("nat", svc_vpcs, "describe_nat_gateways", "NatGateways").values():
                extra_subnets.extend(str(n.get("SubnetId")) for n in nat_list.value or [] if n.get("SubnetId"))
            for ep_list in self._by_vpc("vpce", svc_vpcs, "describe_vpc_endpoints", "VpcEndpoints").values():
                for ep in ep_list.value or []:
                    groups.extend(str(g.get("GroupId")) for g in ep.get("Groups") or [])
                    extra_subnets.extend(str(s) for s in ep.get("SubnetIds") or [])
        if extra_subnets:
            self.subnets(extra_subnets)
        self.security_groups(groups)
        for v in vpcs:
            self.vpc_dns(v)


def _function_key(function_arn: str) -> str:
    """Unqualified function name from a name or (qualified) ARN."""
    if function_arn.startswith("arn:"):
        parts = function_arn.split(":")
        return parts[6] if len(parts) > 6 else function_arn
    return function_arn.split(":", 1)[0]


__all__ = [
    "BATCH",
    "DnsAnswer",
    "Fetched",
    "Lookups",
    "Resolver",
    "RolePolicies",
    "calls_in_thread",
    "iam_action",
    "system_resolver",
]
