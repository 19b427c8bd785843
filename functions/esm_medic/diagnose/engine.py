"""The diagnosis engine: classify, plan the checks, run them over shared lookups, rank a root cause.

Read-only by construction: the engine reaches AWS only through :class:`~esm_medic.diagnose.lookups.Lookups`,
which only calls Describe / Get / List / Simulate operations.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from esm_medic.aws import Aws
from esm_medic.catalogue import Entry, get_catalogue
from esm_medic.classify import Classification, classify
from esm_medic.diagnose import checks
from esm_medic.diagnose.checks import CHECK_ORDER
from esm_medic.diagnose.context import Context
from esm_medic.diagnose.lookups import Lookups, Resolver, calls_in_thread
from esm_medic.diagnose.rank import assess
from esm_medic.esm import MSK, EsmConfig, msk_cluster_network
from esm_medic.models import Diagnosis
from esm_medic.steps import Step

#: checks every non-healthy diagnosis runs besides the entry's own: they only use lookups a scan shares
#: (cluster, subnets, security groups, routes, endpoints, NACLs, VPC attributes, private zones / DNS)
NETWORK_BASICS = (
    "esm-mode",
    "cluster-state",
    "service-path",
    "vpc-endpoints",
    "vpc-dns",
    "sg-egress-https",
    "broker-dns",
    "sg-self-inbound",
    "sg-self-outbound",
    "nacl",
    "subnet-capacity",
)
#: cheap per-role (not per-ESM) checks added for broken ESMs: the role step comes first in the set-up chain
BROKEN_BASICS = ("role-trust",)

Progress = Callable[[int, int], None]


class DiagnoseError(Exception):
    """The diagnosis cannot start (the ESM cannot be read)."""


class EsmNotFound(DiagnoseError):
    pass


class NotKafkaEsm(DiagnoseError):
    pass


def plan(classification: Classification, entry: Entry | None) -> list[str]:
    """Which checks to run, in report order: the entry's own checks first, then the basics.
    Healthy -> the shared network basics only; unknown / empty text -> everything."""
    if classification.healthy or (entry is not None and entry.healthy):
        return list(NETWORK_BASICS)
    if entry is None:
        return list(CHECK_ORDER)
    wanted = list(dict.fromkeys(entry.checks))
    extra = set(NETWORK_BASICS) | set(BROKEN_BASICS)
    if entry.step == Step.STS:
        extra.add("on-failure-destination")  # the VPC-services message covers the on-failure destination too
    wanted += [c for c in CHECK_ORDER if c in extra and c not in wanted]
    return wanted


def needs_role(check_ids: Iterable[str]) -> bool:
    return bool({"role-trust", "role-permissions", "kms-key", "on-failure-destination"} & set(check_ids))


def detection_path(esm: EsmConfig) -> str:
    """How fast a failure of this ESM is seen: ``system-logs`` (provisioned mode with ESM system logs on: the log
    path, seconds), ``sweep, logs available`` (provisioned without them: enable-esm-system-logs is on offer) or
    ``sweep`` (on-demand ESMs write no system logs)."""
    if not esm.provisioned:
        return "sweep"
    level = str(((esm.raw or {}).get("LoggingConfig") or {}).get("SystemLogLevel") or "").upper()
    return "system-logs" if level in ("WARN", "INFO", "DEBUG") else "sweep, logs available"


def esm_summary(esm: EsmConfig, ctx: Context | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "uuid": esm.uuid,
        "arn": esm.esm_arn,
        "function": esm.function_arn,
        "source_kind": esm.source_kind,
        "state": esm.state,
        "state_transition_reason": esm.state_transition_reason,
        "last_processing_result": esm.last_processing_result,
        "topics": list(esm.topics),
        "consumer_group_id": esm.consumer_group_id,
        "mode": "provisioned" if esm.provisioned else "on-demand",
        "secrets": dict(esm.secrets),
        "on_failure_destination": esm.on_failure_destination or None,
        "detection": detection_path(esm),
    }
    if esm.source_kind == MSK:
        out["cluster_arn"] = esm.cluster_arn
    else:
        out["bootstrap_servers"] = list(esm.bootstrap_servers)
    if ctx is not None and "function" in ctx.__dict__ and ctx.role_arn:
        out["role_arn"] = ctx.role_arn
    return out


def prefetch(lookups: Lookups, esms: Sequence[EsmConfig], role_esms: Sequence[EsmConfig] = ()) -> None:
    """Batch what many ESMs share before diagnosing them one by one (the per-ESM work then hits the memo)."""
    cluster_arns = list(dict.fromkeys(e.cluster_arn for e in esms if e.source_kind == MSK and e.cluster_arn))
    lookups.prefetch_clusters(cluster_arns)
    networks: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    for arn in cluster_arns:
        got = lookups.cluster(arn)
        if got.ok and got.value:
            networks[arn] = msk_cluster_network(got.value)
    subnets: list[str] = []
    sgs: list[str] = []
    service_subnets: list[str] = []
    for e in esms:
        if e.source_kind == MSK:
            subs, groups = networks.get(e.cluster_arn, ((), ()))
        else:
            subs, groups = e.vpc_subnets, e.vpc_security_groups
        subnets += subs
        sgs += groups
        if not e.provisioned:
            service_subnets += subs
    if subnets or sgs:
        lookups.prefetch_network(
            subnet_ids=dict.fromkeys(subnets),
            sg_ids=dict.fromkeys(sgs),
            service_subnet_ids=dict.fromkeys(service_subnets),
        )
    if role_esms:
        lookups.prefetch_functions(dict.fromkeys(e.function_arn for e in role_esms if e.function_arn))


def diagnose_item(
    aws: Aws,
    esm_item: Mapping[str, Any],
    lookups: Lookups | None = None,
    *,
    resolver: Resolver | None = None,
    classification: Classification | None = None,
    prefetch_shared: bool | None = None,
) -> Diagnosis:
    """Diagnose an ESM item already read (GetEventSourceMapping / ListEventSourceMappings).

    ``prefetch_shared`` batches the shared lookups for this ESM first (default: only when no ``lookups`` is
    given; a scan prefetches for all its ESMs at once)."""
    lk = lookups if lookups is not None else Lookups(aws, resolver=resolver)
    start = calls_in_thread()
    esm = EsmConfig.from_api(esm_item)
    if not esm.is_kafka:
        raise NotKafkaEsm(f"ESM {esm.uuid or '?'} is not a Kafka (MSK / self-managed) event source mapping")
    c = classification or classify(dict(esm_item))
    ctx = Context(lk, esm, c)
    check_ids = plan(c, ctx.entry)
    if prefetch_shared or (prefetch_shared is None and lookups is None):
        prefetch(lk, [esm], [esm] if needs_role(check_ids) else [])
    findings = [checks.run(ctx, cid) for cid in check_ids]
    root, hyps, fix_plan = assess(c, findings, auth_mode=ctx.identity.mode, source_kind=esm.source_kind)
    return Diagnosis(
        uuid=esm.uuid,
        state=esm.state,
        step=root.step,
        classification=c.to_dict(),
        root_cause=root,
        findings=findings,
        network=ctx.identity.to_model(),
        esm=esm_summary(esm, ctx),
        api_calls=calls_in_thread() - start,
        hypotheses=hyps,
        plan=fix_plan,
    )


def diagnose(aws: Aws, uuid: str, *, lookups: Lookups | None = None, resolver: Resolver | None = None) -> Diagnosis:
    """Read one ESM (GetEventSourceMapping) and diagnose it. Raises EsmNotFound / NotKafkaEsm / DiagnoseError when
    it cannot start. ``api_calls`` is the adapter's call-count delta for this diagnosis, Get included."""
    before_adapter, before_thread = aws.total_calls, calls_in_thread()
    lk = lookups if lookups is not None else Lookups(aws, resolver=resolver)
    got = lk.get_esm(uuid)
    if got.not_found:
        raise EsmNotFound(f"no event source mapping {uuid} in {aws.region}")
    if not got.ok or got.value is None:
        raise DiagnoseError(f"cannot read event source mapping {uuid}: {got.describe()}")
    result = diagnose_item(aws, got.value, lk, prefetch_shared=True)
    adapter_delta = aws.total_calls - before_adapter
    # the adapter counts real boto3 calls; an injected fake adapter may not, then our own count stands
    result.api_calls = adapter_delta or calls_in_thread() - before_thread
    return result


def scan(
    aws: Aws,
    *,
    progress: Progress | None = None,
    lookups: Lookups | None = None,
    resolver: Resolver | None = None,
    workers: int = 1,
) -> list[Diagnosis]:
    """Diagnose every Kafka ESM of the account and region: one ListEventSourceMappings (never a Get per ESM),
    batched shared lookups, then one diagnosis per ESM (optionally on ``workers`` threads). Results keep the
    listing order. Per-ESM ``api_calls`` count the calls made on that ESM's behalf; ``lookups.stats()`` has the
    totals."""
    lk = lookups if lookups is not None else Lookups(aws, resolver=resolver)
    listed = lk.list_esms()
    if not listed.ok or listed.value is None:
        raise DiagnoseError(f"cannot list event source mappings: {listed.describe()}")
    items = [dict(i) for i in listed.value if EsmConfig.from_api(i).is_kafka]
    esms = [EsmConfig.from_api(i) for i in items]
    cls = [classify(i) for i in items]
    cat = get_catalogue()
    role_esms = [e for e, c in zip(esms, cls, strict=True) if needs_role(plan(c, cat.get(c.entry or "")))]
    total = len(items)
    if progress:
        progress(0, total)
    prefetch(lk, esms, role_esms)
    results: list[Diagnosis | None] = [None] * total
    done = 0
    lock = threading.Lock()

    def one(i: int) -> None:
        nonlocal done
        results[i] = diagnose_item(aws, items[i], lk, classification=cls[i])
        with lock:
            done += 1
            n = done
        if progress:
            progress(n, total)

    if workers > 1 and total > 1:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="esm-medic-scan") as pool:
            list(pool.map(one, range(total)))
    else:
        for i in range(total):
            one(i)
    return [r for r in results if r is not None]


__all__ = [
    "BROKEN_BASICS",
    "NETWORK_BASICS",
    "DiagnoseError",
    "EsmNotFound",
    "NotKafkaEsm",
    "diagnose",
    "diagnose_item",
    "esm_summary",
    "plan",
    "prefetch",
    "scan",
]
