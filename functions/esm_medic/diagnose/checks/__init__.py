"""The check registry: one small function per check id, each returning a :class:`~esm_medic.models.Finding`.

A check reads facts from the :class:`~esm_medic.diagnose.context.Context` (which reads AWS through the memoised
lookups), never raises (a crash becomes an ``unknown`` finding), and says which catalogue root causes a failure
supports in ``evidence["causes"]`` (the ranker uses them) and which fix would turn it into a pass.

Check ids are the lead's contract (catalogue ``checks``). ``per_esm`` marks checks that cost API calls per ESM
(secret values, policy simulations, role reads); the others only use lookups shared by a whole scan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from esm_medic.diagnose.context import Context
from esm_medic.diagnose.lookups import Fetched
from esm_medic.models import CheckStatus, Finding

CheckFunc = Callable[[Context], Finding]

logger = Logger(service="esm-medic")
METRIC_NAMESPACE = "esm-medic"


@dataclass(frozen=True)
class CheckSpec:
    id: str
    step: str
    func: CheckFunc
    per_esm: bool
    title: str


REGISTRY: dict[str, CheckSpec] = {}

#: Every check id, in set-up order (the order a full diagnosis runs and reports them)
CHECK_ORDER = (
    "esm-mode",
    "role-trust",
    "service-path",
    "vpc-endpoints",
    "vpc-dns",
    "sg-egress-https",
    "on-failure-destination",
    "secret-exists",
    "secret-format",
    "kms-key",
    "cluster-state",
    "broker-dns",
    "sg-self-inbound",
    "sg-self-outbound",
    "nacl",
    "subnet-capacity",
    "role-permissions",
)


def check(check_id: str, step: str, title: str, *, per_esm: bool = False) -> Callable[[CheckFunc], CheckFunc]:
    if check_id not in CHECK_ORDER:
        raise ValueError(f"unknown check id {check_id!r}")

    def register(func: CheckFunc) -> CheckFunc:
        REGISTRY[check_id] = CheckSpec(check_id, step, func, per_esm, title)
        return func

    return register


# ---------------------------------------------------------------------------------------------- helpers
def finding(
    check_id: str,
    status: CheckStatus,
    summary: str,
    *,
    step: str | None = None,
    evidence: dict[str, Any] | None = None,
    causes: Iterable[str] = (),
    fix: str | None = None,
    fix_params: dict[str, Any] | None = None,
    missing_permission: str | None = None,
    strength: str = "proof",
) -> Finding:
    ev = dict(evidence or {})
    cause_list = list(dict.fromkeys(c for c in causes if c))
    if cause_list:
        ev["causes"] = cause_list
    return Finding(
        check=check_id,
        status=status,
        summary=summary,
        step=step or REGISTRY[check_id].step,
        evidence=ev,
        fix=fix,
        fix_params=dict(fix_params or {}),
        missing_permission=missing_permission,
        strength=strength,
    )


def skip(check_id: str, why: str, **evidence: Any) -> Finding:
    return finding(check_id, CheckStatus.SKIP, why, evidence=evidence)


def unknown(check_id: str, failed: Fetched[Any], what: str, *, step: str | None = None, **evidence: Any) -> Finding:
    """A read failed (denied / throttled / unsupported / error): the check cannot decide."""
    ev = {**failed.evidence(), **evidence}
    denied = failed.error == "denied"
    summary = f"cannot read {what}: {failed.describe()}"
    return finding(
        check_id,
        CheckStatus.UNKNOWN,
        summary,
        step=step,
        evidence=ev,
        missing_permission=failed.permission if denied else None,
        strength="heuristic",
    )


def network_gate(ctx: Context, check_id: str) -> Finding | None:
    """None when the ESM's network identity is known; else the finding (skip / unknown / fail) to return."""
    ident = ctx.identity
    if ident.source == "internet":
        return skip(
            check_id,
            "self-managed ESM without VPC_SUBNET / VPC_SECURITY_GROUP: it reaches the brokers over the internet",
            source="internet",
        )
    if ident.failures:
        first = ident.failures[0]
        return unknown(check_id, first, "the ESM's network (cluster / subnets / security groups)")
    c = ctx.cluster
    if c is not None and c.not_found:
        return finding(
            check_id,
            CheckStatus.UNKNOWN,
            "the MSK cluster does not exist, so its network cannot be checked",
            evidence={"cluster_arn": ctx.esm.cluster_arn},
        )
    if not ident.sgs and not ident.subnets:
        return finding(
            check_id,
            CheckStatus.FAIL,
            "none of the ESM's subnets or security groups exist",
            evidence={"missing_subnets": ident.missing_subnets, "missing_security_groups": ident.missing_sgs},
            fix="ticket",
            fix_params={"reason": "the ESM's subnets / security groups were deleted"},
        )
    return None


def run(ctx: Context, check_id: str) -> Finding:
    """Run one check; any exception becomes an ``unknown`` finding (never a crash)."""
    spec = REGISTRY.get(check_id)
    if spec is None:
        return Finding(check=check_id, status=CheckStatus.UNKNOWN, summary="no such check", step="unknown")
    try:
        return spec.func(ctx)
    except Exception as exc:  # a bug or an unexpected response shape: report it, keep diagnosing
        logger.exception("diagnosis check crashed", extra={"check": check_id, "esm_uuid": ctx.esm.uuid})
        try:
            with single_metric(
                name="DiagnosisCheckErrors", unit=MetricUnit.Count, value=1, namespace=METRIC_NAMESPACE
            ) as metric:
                metric.add_dimension(name="Check", value=check_id)
        except Exception:  # a metric must never hide the finding
            logger.warning("metric DiagnosisCheckErrors not emitted", extra={"check": check_id})
        return Finding(
            check=check_id,
            status=CheckStatus.UNKNOWN,
            summary=f"check failed: {type(exc).__name__}: {exc}"[:300],
            step=spec.step,
            evidence={"error": type(exc).__name__, "why": "the check itself raised; see the esm-medic log"},
            strength="heuristic",
        )


# register the checks (imported for their side effect)
from esm_medic.diagnose.checks import auth, cluster, network, service  # noqa: E402

__all__ = [
    "CHECK_ORDER",
    "REGISTRY",
    "CheckSpec",
    "auth",
    "check",
    "cluster",
    "finding",
    "network",
    "network_gate",
    "run",
    "service",
    "skip",
    "unknown",
]
