"""The plumbing of the per-scan memoised, read-only AWS lookups (through the one adapter, ``esm_medic.aws.Aws``).

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
        "resolver-rules",
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


class ReadCore:
    """The memo, the call counter and the error capture every read family shares (thread-safe: a key is fetched
    once even under threads)."""

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


def _strip(response: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


def _chunks(items: Sequence[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


__all__ = [
    "BATCH",
    "DNS_TIMEOUT",
    "LIST_CLUSTERS_THRESHOLD",
    "LIST_FUNCTIONS_THRESHOLD",
    "SHARED_KINDS",
    "DnsAnswer",
    "Fetched",
    "ReadCore",
    "Resolver",
    "RolePolicies",
    "calls_in_thread",
    "iam_action",
    "system_resolver",
]
