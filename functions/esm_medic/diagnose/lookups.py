"""Per-scan memoised, read-only AWS lookups for the diagnosis, through the one adapter (``esm_medic.aws.Aws``).

Everything many ESMs share (an MSK cluster, subnets, security groups, a VPC's route tables / NAT gateways /
endpoints / NACLs / DNS attributes, a function's role, a role's policies, a KMS key) is fetched once per
:class:`Lookups` and batched across ESMs where the API allows it (one DescribeSecurityGroups for all the groups of
a scan, one DescribeRouteTables for all its VPCs, ListClustersV2 / ListFunctions instead of one Get per item).

Every read returns a :class:`Fetched`: the value, or why it could not be read (access denied with the IAM action
that was needed, throttled after the adapter's retries, not implemented by the endpoint, not found). A failed
read is memoised too: one AccessDenied does not turn into a thousand.

API calls are counted per operation and per thread (``calls_in_thread``) so a diagnosis can report its own cost
even when a scan runs ESMs on several threads. Secret values are analysed the moment they arrive and dropped;
only their shape (:mod:`esm_medic.diagnose.secretshape`) is memoised.
"""

from __future__ import annotations

import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from esm_medic.aws import Aws, error_code, error_message, is_access_denied, is_not_found, is_throttling, is_unsupported
from esm_medic.diagnose import secretshape

T = TypeVar("T")

#: Filter values per request (EC2 caps a filter at 200 values)
BATCH = 200
#: Above this many distinct functions a scan lists functions instead of getting each one
LIST_FUNCTIONS_THRESHOLD = 5
#: Above this many distinct clusters a scan lists clusters instead of describing each one
LIST_CLUSTERS_THRESHOLD = 2
DNS_TIMEOUT = 2.0

#: Lookup kinds fetched once per scan and shared by ESMs (the rest are per ESM: the ESM itself, simulations)
SHARED_KINDS = frozenset(
    {
        "cluster",
        "clusters",
        "scram",
        "subnet",
        "sg",
        "rtb",
        "nat",
        "vpce",
        "nacl",
        "vpc-dns",
        "function",
        "functions",
        "role",
        "role-policies",
        "policy",
        "kms",
        "secret",
        "secret-shape",
        "dns",
        "zones",
        "zone-records",
    }
)

_SERVICE_PREFIX = {"route53": "route53"}

Resolver = Callable[[str], Sequence[str]]
"""Resolve a host name to addresses; raise ``socket.gaierror`` (EAI_NONAME for NXDOMAIN) or ``TimeoutError``."""

_TL = threading.local()


def calls_in_thread() -> int:
    """API calls made through any Lookups on this thread so far (a diagnosis takes the delta)."""
    return int(getattr(_TL, "calls", 0))


_ACTION_OVERRIDES = {("route53", "list_hosted_zones_by_vpc"): "route53:ListHostedZonesByVPC"}


def iam_action(service: str, operation: str) -> str:
    """'ec2', 'describe_security_groups' -> 'ec2:DescribeSecurityGroups'."""
    override = _ACTION_OVERRIDES.get((service, operation))
    if override:
        return override
    prefix = _SERVICE_PREFIX.get(service, service)
    return f"{prefix}:{''.join(p[:1].upper() + p[1:] for p in operation.split('_'))}"


@dataclass(frozen=True)
class Fetched[T]:
    """A read's value, or the reason it has none."""

    value: T | None = None
    error: str = ""  # "" | denied | throttled | unsupported | not-found | error
    code: str = ""  # the AWS error code (or exception type)
    message: str = ""
    permission: str = ""  # the IAM action the read needed

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def not_found(self) -> bool:
        return self.error == "not-found"

    def get(self) -> T:
        if self.value is None:
            raise LookupError(self.describe())
        return self.value

    def describe(self) -> str:
        if self.ok:
            return "ok"
        if self.error == "denied":
            return f"access denied: {self.permission} ({self.code})"
        if self.error == "throttled":
            return f"throttled after retries: {self.permission} ({self.code})"
        if self.error == "unsupported":
            return f"{self.permission} is not supported by this endpoint"
        if self.error == "not-found":
            return f"not found ({self.code})"
        return f"{self.permission} failed: {self.code} {self.message}".strip()

    def evidence(self) -> dict[str, Any]:
        out: dict[str, Any] = {"read": self.permission, "error": self.error, "error_code": self.code}
        if self.message:
            out["message"] = self.message[:300]
        return out

    @classmethod
    def failed(cls, exc: BaseException, permission: str) -> Fetched[Any]:
        code = error_code(exc) or type(exc).__name__
        if is_not_found(exc):
            kind = "not-found"
        elif is_access_denied(exc):
            kind = "denied"
        elif is_throttling(exc):
            kind = "throttled"
        elif is_unsupported(exc):
            kind = "unsupported"
        else:
            kind = "error"
        return cls(None, kind, code, error_message(exc), permission)

    def cast(self) -> Fetched[Any]:
        """The same failure, for a differently typed value."""
        return Fetched(None, self.error, self.code, self.message, self.permission)


@dataclass(frozen=True)
class DnsAnswer:
    host: str
    addresses: tuple[str, ...] = ()
    error: str = ""  # "" | nxdomain | timeout | error
    detail: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and bool(self.addresses)


@dataclass(frozen=True)
class RolePolicies:
    """The documents of a role's identity policies (inline + attached) and its permissions boundary."""

    documents: tuple[tuple[str, str, Any], ...]  # (policy id, policy type, document)
    boundary: tuple[str, Any] | None = None  # (policy arn, document)


def system_resolver(host: str, timeout: float = DNS_TIMEOUT) -> Sequence[str]:
    """``socket.getaddrinfo`` with a timeout (it has none of its own). Raises gaierror / TimeoutError."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["v"] = sorted({str(ai[4][0]) for ai in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)})
        except BaseException as exc:  # handed to the caller's thread
            box["e"] = exc

    t = threading.Thread(target=run, name=f"esm-medic-dns-{host}", daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise TimeoutError(f"no DNS answer for {host} within {timeout}s")
    if "e" in box:
        raise box["e"]
    return list(box.get("v") or [])


@dataclass
class _Stats:
    calls: Counter[str] = field(default_factory=Counter)  # "ec2:DescribeSecurityGroups" -> calls
    fetches: Counter[str] = field(default_factory=Counter)  # lookup kind -> cache misses (fetches)
    hits: Counter[str] = field(default_factory=Counter)  # lookup kind -> cache hits


class Lookups:
    """Memoised reads for one scan (or one diagnosis). Thread-safe: a key is fetched once even under threads."""

    def __init__(self, aws: Aws, *, resolver: Resolver | None = None) -> None:
        self.aws = aws
        self.resolver: Resolver = resolver or system_resolver
        self._cache: dict[tuple[Any, ...], Any] = {}
        self._lock = threading.RLock()
        self._key_locks: dict[tuple[Any, ...], threading.Lock] = {}
        self._stats = _Stats()
        self._derived: dict[tuple[Any, ...], Any] = {}

    # ------------------------------------------------------------------ plumbing
    def _call(self, service: str, operation: str, **params: Any) -> dict[str, Any]:
        action = iam_action(service, operation)
        with self._lock:
            self._stats.calls[action] += 1
        _TL.calls = calls_in_thread() + 1
        result = self.aws.call(service, operation, **params)
        return dict(result) if isinstance(result, Mapping) else {}

    def _pages(
        self,
        service: str,
        operation: str,
        key: str,
        *,
        token_in: str = "NextToken",
        token_out: str = "NextToken",
        **params: Any,
    ) -> list[Any]:
        items: list[Any] = []
        seen: set[str] = set()
        while True:
            page = self._call(service, operation, **params)
            items.extend(page.get(key) or [])
            token = page.get(token_out)
            if not token or (token_out == "Marker" and not page.get("IsTruncated")) or token in seen:
                return items
            seen.add(str(token))
            params = {**params, token_in: token}

    def _memo(self, kind: str, key: tuple[Any, ...], fetch: Callable[[], Any]) -> Any:
        full = (kind, *key)
        with self._lock:
            if full in self._cache:
                self._stats.hits[kind] += 1
                return self._cache[full]
            lock = self._key_locks.setdefault(full, threading.Lock())
        with lock:
            with self._lock:
                if full in self._cache:
                    self._stats.hits[kind] += 1
                    return self._cache[full]
            value = fetch()
            with self._lock:
                self._cache[full] = value
                self._stats.fetches[kind] += 1
            return value

    def _cached(self, kind: str, key: tuple[Any, ...]) -> tuple[bool, Any]:
        with self._lock:
            full = (kind, *key)
            if full in self._cache:
                return True, self._cache[full]
            return False, None

    def _store(self, kind: str, key: tuple[Any, ...], value: Any, *, fetched: bool = False) -> None:
        with self._lock:
            self._cache[(kind, *key)] = value
            if fetched:
                self._stats.fetches[kind] += 1

    def _read(self, service: str, operation: str, fn: Callable[[], T]) -> Fetched[T]:
        try:
            return Fetched(fn())
        except Exception as exc:  # every failure becomes evidence, never a crash
            return Fetched.failed(exc, iam_action(service, operation))

    def _batch_lock(self, kind: str) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(("batch", kind), threading.Lock())

    def derived(self, key: tuple[Any, ...], compute: Callable[[], T]) -> T:
        """Memoise a pure computation over already-fetched data (no API call) for the life of this Lookups:
        ESMs that share a network identity share its evaluation."""
        with self._lock:
            if key in self._derived:
                return self._derived[key]
        value = compute()
        with self._lock:
            return self._derived.setdefault(key, value)

    # ------------------------------------------------------------------ stats
    @property
    def total_calls(self) -> int:
        with self._lock:
            return sum(self._stats.calls.values())

    def stats(self) -> dict[str, Any]:
        """API calls by operation, fetches (cache misses) and hits by lookup kind, and the shared-lookup count."""
        with self._lock:
            fetches = dict(self._stats.fetches)
            return {
                "api_calls": sum(self._stats.calls.values()),
                "calls": dict(sorted(self._stats.calls.items())),
                "fetches": dict(sorted(fetches.items())),
                "hits": dict(sorted(self._stats.hits.items())),
                "shared_lookups": sum(n for k, n in fetches.items() if k in SHARED_KINDS),
            }

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

    # ------------------------------------------------------------------ iam
    def role(self, role_name: str) -> Fetched[dict[str, Any]]:
        def fetch() -> Fetched[dict[str, Any]]:
            return self._read(
                "iam", "get_role", lambda: dict(self._call("iam", "get_role", RoleName=role_name).get("Role") or {})
            )

        return self._memo("role", (role_name,), fetch)

    def simulate(
        self, role_arn: str, actions: Sequence[str], resources: Sequence[str]
    ) -> Fetched[list[dict[str, Any]]]:
        """iam:SimulatePrincipalPolicy for every (action, resource) pair; memoised per (role, actions, resources)."""
        acts = tuple(sorted(set(actions)))
        res = tuple(sorted(set(resources)))

        def fetch() -> Fetched[list[dict[str, Any]]]:
            return self._read(
                "iam",
                "simulate_principal_policy",
                lambda: self._pages(
                    "iam",
                    "simulate_principal_policy",
                    "EvaluationResults",
                    token_in="Marker",
                    token_out="Marker",
                    PolicySourceArn=role_arn,
                    ActionNames=list(acts),
                    ResourceArns=list(res),
                    MaxItems=1000,
                ),
            )

        return self._memo("simulate", (role_arn, acts, res), fetch)

    def _policy_document(self, policy_arn: str) -> Fetched[Any]:
        def fetch() -> Fetched[Any]:
            def read() -> Any:
                pol = self._call("iam", "get_policy", PolicyArn=policy_arn).get("Policy") or {}
                ver = self._call(
                    "iam",
                    "get_policy_version",
                    PolicyArn=policy_arn,
                    VersionId=str(pol.get("DefaultVersionId") or "v1"),
                )
                return (ver.get("PolicyVersion") or {}).get("Document")

            try:
                return Fetched(read())
            except Exception as exc:
                return Fetched.failed(exc, "iam:GetPolicyVersion")

        return self._memo("policy", (policy_arn,), fetch)

    def role_policies(self, role_name: str) -> Fetched[RolePolicies]:
        """The role's inline and attached policy documents and its boundary (for the local evaluator)."""

        def fetch() -> Fetched[RolePolicies]:
            role = self.role(role_name)
            if not role.ok:
                return role.cast()
            docs: list[tuple[str, str, Any]] = []
            try:
                names = self._pages(
                    "iam",
                    "list_role_policies",
                    "PolicyNames",
                    token_in="Marker",
                    token_out="Marker",
                    RoleName=role_name,
                )
            except Exception as exc:
                return Fetched.failed(exc, "iam:ListRolePolicies")
            for name in names:
                try:
                    doc = self._call("iam", "get_role_policy", RoleName=role_name, PolicyName=name).get(
                        "PolicyDocument"
                    )
                except Exception as exc:
                    return Fetched.failed(exc, "iam:GetRolePolicy")
                docs.append((str(name), "role", doc))
            try:
                attached = self._pages(
                    "iam",
                    "list_attached_role_policies",
                    "AttachedPolicies",
                    token_in="Marker",
                    token_out="Marker",
                    RoleName=role_name,
                )
            except Exception as exc:
                return Fetched.failed(exc, "iam:ListAttachedRolePolicies")
            for att in attached:
                arn = str(att.get("PolicyArn") or "")
                got = self._policy_document(arn)
                if not got.ok:
                    return got.cast()
                ptype = "aws-managed" if ":iam::aws:policy/" in arn else "user-managed"
                docs.append((str(att.get("PolicyName") or arn), ptype, got.value))
            boundary: tuple[str, Any] | None = None
            b_arn = str(((role.value or {}).get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn") or "")
            if b_arn:
                got = self._policy_document(b_arn)
                if not got.ok:
                    return got.cast()
                boundary = (b_arn, got.value)
            return Fetched(RolePolicies(tuple(docs), boundary))

        return self._memo("role-policies", (role_name,), fetch)

    # ------------------------------------------------------------------ secrets / kms
    def secret_meta(self, secret_arn: str) -> Fetched[dict[str, Any]]:
        def fetch() -> Fetched[dict[str, Any]]:
            return self._read(
                "secretsmanager",
                "describe_secret",
                lambda: _strip(self._call("secretsmanager", "describe_secret", SecretId=secret_arn)),
            )

        return self._memo("secret", (secret_arn,), fetch)

    def secret_shape(self, secret_arn: str, sac_type: str) -> Fetched[secretshape.SecretShape]:
        """GetSecretValue, analysed at once; only the shape is kept (never the value)."""

        def fetch() -> Fetched[secretshape.SecretShape]:
            def read() -> secretshape.SecretShape:
                response = self._call("secretsmanager", "get_secret_value", SecretId=secret_arn)
                try:
                    return secretshape.analyse(response, sac_type)
                finally:
                    response.clear()

            return self._read("secretsmanager", "get_secret_value", read)

        return self._memo("secret-shape", (secret_arn, sac_type), fetch)

    def kms_key(self, key_id: str) -> Fetched[dict[str, Any]]:
        def fetch() -> Fetched[dict[str, Any]]:
            return self._read(
                "kms",
                "describe_key",
                lambda: dict(self._call("kms", "describe_key", KeyId=key_id).get("KeyMetadata") or {}),
            )

        return self._memo("kms", (key_id,), fetch)

    # ------------------------------------------------------------------ dns
    def private_zones(self, vpc_id: str, region: str) -> Fetched[list[tuple[str, str]]]:
        """(zone name without the trailing dot, zone id) of the Route 53 private zones associated with a VPC."""

        def fetch() -> Fetched[list[tuple[str, str]]]:
            def read() -> list[tuple[str, str]]:
                zones = self._pages(
                    "route53", "list_hosted_zones_by_vpc", "HostedZoneSummaries", VPCId=vpc_id, VPCRegion=region
                )
                return [
                    (str(z.get("Name") or "").lower().rstrip("."), str(z.get("HostedZoneId") or "").rsplit("/", 1)[-1])
                    for z in zones
                ]

            return self._read("route53", "list_hosted_zones_by_vpc", read)

        return self._memo("zones", (vpc_id, region), fetch)

    def zone_names(self, zone_id: str) -> Fetched[frozenset[str]]:
        """Names with an A / AAAA / CNAME / ALIAS record in a hosted zone (``*`` for wildcard records)."""

        def fetch() -> Fetched[frozenset[str]]:
            def read() -> frozenset[str]:
                names: set[str] = set()
                params: dict[str, Any] = {"HostedZoneId": zone_id}
                for _ in range(1000):  # pages of 300 records; a guard, not a limit anyone reaches
                    page = self._call("route53", "list_resource_record_sets", **params)
                    for rr in page.get("ResourceRecordSets") or []:
                        if rr.get("Type") in ("A", "AAAA", "CNAME"):
                            names.add(str(rr.get("Name") or "").lower().rstrip(".").replace("\\052", "*"))
                    if not page.get("IsTruncated"):
                        break
                    params = {
                        "HostedZoneId": zone_id,
                        "StartRecordName": page.get("NextRecordName"),
                        "StartRecordType": page.get("NextRecordType"),
                    }
                return frozenset(names)

            return self._read("route53", "list_resource_record_sets", read)

        return self._memo("zone-records", (zone_id,), fetch)

    def resolve(self, host: str) -> DnsAnswer:
        h = host.strip().rstrip(".").lower()

        def fetch() -> DnsAnswer:
            try:
                addrs = tuple(str(a) for a in self.resolver(h))
            except socket.gaierror as exc:
                nx = exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME))
                return DnsAnswer(h, (), "nxdomain" if nx else "error", str(exc))
            except TimeoutError as exc:
                return DnsAnswer(h, (), "timeout", str(exc))
            except Exception as exc:
                return DnsAnswer(h, (), "error", f"{type(exc).__name__}: {exc}")
            return DnsAnswer(h, addrs, "" if addrs else "nxdomain", "" if addrs else "no addresses")

        return self._memo("dns", (h,), fetch)


def _strip(response: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


def _function_key(function_arn: str) -> str:
    """Unqualified function name from a name or (qualified) ARN."""
    if function_arn.startswith("arn:"):
        parts = function_arn.split(":")
        return parts[6] if len(parts) > 6 else function_arn
    return function_arn.split(":", 1)[0]


def _chunks(items: Sequence[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


__all__ = [
    "DnsAnswer",
    "Fetched",
    "Lookups",
    "Resolver",
    "RolePolicies",
    "calls_in_thread",
    "iam_action",
    "system_resolver",
]
