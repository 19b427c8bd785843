"""Checks of the path from the ESM's ENIs to AWS services (on-demand mode): service-path, vpc-endpoints, vpc-dns,
sg-egress-https, on-failure-destination.

An on-demand ESM's ENIs must reach STS and Lambda (and Secrets Manager when a secret is used) through a 0.0.0.0/0
route to an available NAT gateway in a public subnet, or through interface endpoints with private DNS whose
security groups admit 443 from the ENIs. Provisioned-mode ESMs need neither, so these checks skip them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from esm_medic import iam_eval
from esm_medic.diagnose import netpath
from esm_medic.diagnose.checks import check, finding, network_gate, skip, unknown
from esm_medic.diagnose.context import Context, ServicePath
from esm_medic.diagnose.permissions import destination_service, grant_statements
from esm_medic.models import CheckStatus, Finding
from esm_medic.steps import Step

_ENDPOINT_ACTIONS = {
    "sts": ("sts:AssumeRole", "lambda.amazonaws.com"),
    "lambda": ("lambda:InvokeFunction", "lambda.amazonaws.com"),
    "secretsmanager": ("secretsmanager:GetSecretValue", ""),  # called with the execution role
}


def _service_gate(ctx: Context, check_id: str) -> tuple[Finding | None, ServicePath | None]:
    gate = network_gate(ctx, check_id)
    if gate is not None:
        return gate, None
    if ctx.identity.provisioned:
        return skip(check_id, "provisioned mode: Lambda needs no NAT gateway or endpoints for STS / Lambda"), None
    sp = ctx.service_path
    if sp is None:
        return skip(check_id, "no VPC found for the ENI subnets"), None
    if sp.failures:
        return unknown(check_id, sp.failures[0], f"the routes / endpoints of {sp.vpc_id}"), None
    return None, sp


def _endpoint_fix(ctx: Context, sp: ServicePath) -> dict[str, Any]:
    ident = ctx.identity
    return {
        "vpc_id": sp.vpc_id,
        "subnet_ids": ident.subnets_per_az(),
        "services": list(sp.missing_services),
        "source_group_ids": [g for g in ident.sg_ids if g in ident.sgs] or list(ident.sg_ids),
    }


@check("service-path", Step.STS, "ENI subnets reach STS / Lambda / Secrets Manager (NAT or endpoints)")
def service_path(ctx: Context) -> Finding:
    gate, sp = _service_gate(ctx, "service-path")
    if gate is not None or sp is None:
        return gate or skip("service-path", "not applicable")
    rows = {
        sid: {"az": p.az, "path": p.path, "route_target": p.route_target or None, "detail": p.reason or p.nat_reason}
        for sid, p in sp.subnets.items()
    }
    evidence: dict[str, Any] = {"vpc_id": sp.vpc_id, "services": sp.services, "subnets": rows}
    broken = [p for p in sp.subnets.values() if p.path == "none"]
    if broken:
        causes = [p.cause for p in broken]
        evidence["missing_endpoints"] = sp.missing_services
        fix, params = "ticket", {"reason": broken[0].reason[:300]}
        if "no-nat-or-endpoints" in causes and sp.missing_services:
            fix, params = "create-vpc-endpoints", _endpoint_fix(ctx, sp)
        return finding(
            "service-path",
            CheckStatus.FAIL,
            f"{len(broken)} of {len(sp.subnets)} ENI subnet(s) cannot reach {', '.join(sp.services)}: "
            f"{broken[0].reason}",
            evidence=evidence,
            causes=causes,
            fix=fix,
            fix_params=params,
        )
    unverified = [p for p in sp.subnets.values() if p.path == "unverified"]
    if unverified:
        return finding(
            "service-path",
            CheckStatus.WARN,
            f"{unverified[0].subnet_id}: {unverified[0].reason}; esm-medic cannot verify that path",
            evidence=evidence,
        )
    paths = sorted({p.path for p in sp.subnets.values()})
    return finding(
        "service-path",
        CheckStatus.PASS,
        f"every ENI subnet reaches {', '.join(sp.services)} ({'/'.join(paths)})",
        evidence=evidence,
    )


def _principal_matches(principal: Any, service_principal: str, role_arn: str, account: str) -> bool:
    if principal in (None, "*"):
        return True
    if not isinstance(principal, Mapping):
        return False
    values: list[str] = []
    for v in principal.values():
        values.extend([v] if isinstance(v, str) else [str(x) for x in v or []])
    wanted = {"*", service_principal, role_arn, account, f"arn:aws:iam::{account}:root"} - {""}
    return any(v in wanted for v in values)


def _policy_problem(policy: Any, service: str, ctx: Context) -> str:
    """'' when an endpoint policy lets the ESM's caller use the service; else why not (or 'maybe: ...')."""
    if not policy:
        return ""
    action, service_principal = _ENDPOINT_ACTIONS.get(service, ("", ""))
    if not action:
        return ""
    try:
        doc = iam_eval.load_document(policy if isinstance(policy, str | Mapping) else json.dumps(policy))
    except iam_eval.PolicyError:
        return "the endpoint policy is not valid JSON"
    raw = doc.get("Statement")
    statements = [raw] if isinstance(raw, Mapping) else list(raw or [])
    kept = [
        {k: v for k, v in st.items() if k not in ("Principal", "NotPrincipal")}
        for st in statements
        if isinstance(st, Mapping)
        and _principal_matches(st.get("Principal"), service_principal, ctx.role_arn, ctx.esm.account)
    ]
    if not kept:
        return f"no statement of the endpoint policy applies to {service_principal or 'the execution role'}"
    resources = ["*"]
    if service == "secretsmanager":
        resources = [s.arn for s in ctx.secrets] or ["*"]
    try:
        policy_obj = iam_eval.parse_policy({"Statement": kept}, "endpoint-policy", "endpoint")
    except iam_eval.PolicyError as exc:
        return f"the endpoint policy cannot be read: {exc}"
    for res in resources:
        d = iam_eval.evaluate([policy_obj], action, res)
        if d.decision == iam_eval.UNDECIDED:
            return f"maybe: the endpoint policy allows {action} only under conditions"
        if not d.allowed:
            return f"the endpoint policy does not allow {action} on {res} ({d.decision})"
    return ""


@check("vpc-endpoints", Step.STS, "Interface endpoints for sts / lambda / secretsmanager are usable")
def vpc_endpoints(ctx: Context) -> Finding:
    gate, sp = _service_gate(ctx, "vpc-endpoints")
    if gate is not None or sp is None:
        return gate or skip("vpc-endpoints", "not applicable")
    relying = sp.relies_on_endpoints
    rows: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []  # (cause, text)
    for svc in sp.services:
        eps = sp.endpoints.get(svc) or []
        rows[svc] = [
            {
                "endpoint_id": e.endpoint_id,
                "state": e.state,
                "private_dns": e.private_dns,
                "azs": e.azs,
                "security_groups": e.group_ids,
                "admits_443_from_enis": e.admits_443,
            }
            for e in eps
        ]
        if not eps:
            problems.append(("no-nat-or-endpoints", f"no interface endpoint for {svc}"))
            continue
        for e in eps:
            text = _policy_problem(e.policy, svc, ctx)
            if text:
                problems.append(
                    (
                        "endpoint-policy-maybe" if text.startswith("maybe:") else "endpoint-policy",
                        f"{e.endpoint_id}: {text}",
                    )
                )
    for path in sp.subnets.values():
        for cause, reason in path.endpoint_problems.values():
            if cause != "missing" and (cause, reason) not in problems:
                problems.append(("no-nat-or-endpoints" if cause == "endpoint-az" else cause, reason))
    if not relying:
        # A NAT path exists; an endpoint with private DNS still captures the service's name for the whole VPC.
        diverted = [
            f"{e.endpoint_id} ({svc}) has private DNS, so traffic goes to it and not to the NAT, but its SGs do "
            "not admit 443 from the ENIs"
            for svc in sp.services
            for e in sp.endpoints.get(svc) or []
            if e.private_dns and not e.admits_443 and e.state == "available"
        ]
        evidence = {"vpc_id": sp.vpc_id, "endpoints": rows, "needed": False}
        if diverted:
            return finding(
                "vpc-endpoints", CheckStatus.WARN, diverted[0], evidence=evidence, causes=["endpoint-sg-blocks-443"]
            )
        return finding(
            "vpc-endpoints",
            CheckStatus.PASS,
            "not needed: every ENI subnet has a NAT path",
            evidence=evidence,
        )
    evidence = {"vpc_id": sp.vpc_id, "endpoints": rows, "needed": True, "missing": sp.missing_services}
    hard = [(c, t) for c, t in problems if c != "endpoint-policy-maybe"]
    if not hard:
        if problems:
            return finding(
                "vpc-endpoints", CheckStatus.WARN, problems[0][1], evidence=evidence, causes=["endpoint-policy"]
            )
        return finding(
            "vpc-endpoints", CheckStatus.PASS, f"usable endpoints for {', '.join(sp.services)}", evidence=evidence
        )
    evidence["problems"] = [t for _, t in hard]
    causes = [c for c, _ in hard]
    fix, params = "ticket", {"reason": hard[0][1][:300]}
    if sp.missing_services:
        fix, params = "create-vpc-endpoints", _endpoint_fix(ctx, sp)
    summary = f"missing interface endpoints for {', '.join(sp.missing_services)}" if sp.missing_services else hard[0][1]
    return finding(
        "vpc-endpoints", CheckStatus.FAIL, summary, evidence=evidence, causes=causes, fix=fix, fix_params=params
    )


@check("vpc-dns", Step.STS, "VPC DNS support and hostnames")
def vpc_dns(ctx: Context) -> Finding:
    gate = network_gate(ctx, "vpc-dns")
    if gate is not None:
        return gate
    ident = ctx.identity
    got = ctx.lookups.vpc_dns(ident.vpc_id)
    if not got.ok or got.value is None:
        return unknown("vpc-dns", got, f"the DNS attributes of {ident.vpc_id}")
    attrs = got.value
    off = [a for a in ("enableDnsSupport", "enableDnsHostnames") if not attrs.get(a)]
    evidence: dict[str, Any] = {"vpc_id": ident.vpc_id, **attrs}
    sp = ctx.service_path if not ident.provisioned else None
    relying = sp is not None and sp.relies_on_endpoints
    names = [h for h, _ in ctx.esm.broker_hosts if not netpath.is_ip(h)] if ctx.esm.source_kind != "msk" else []
    needed: list[str] = []
    step = Step.STS
    if relying:
        needed = ["enableDnsSupport", "enableDnsHostnames"]
        evidence["why"] = "the interface endpoints' private DNS names need both attributes"
    elif names:
        needed = ["enableDnsSupport"]
        step = Step.DNS
        evidence["why"] = "the self-managed broker names are resolved by the VPC's DNS server"
    bad = [a for a in needed if a in off]
    if bad:
        return finding(
            "vpc-dns",
            CheckStatus.FAIL,
            f"{' and '.join(bad)} {'is' if len(bad) == 1 else 'are'} off in {ident.vpc_id}",
            step=step,
            evidence=evidence,
            causes=["vpc-dns-disabled"],
            fix="enable-vpc-dns",
            fix_params={"vpc_id": ident.vpc_id, "attributes": off},
        )
    if "enableDnsSupport" in off:
        return finding(
            "vpc-dns",
            CheckStatus.WARN,
            f"enableDnsSupport is off in {ident.vpc_id}: the Amazon DNS server does not answer in this VPC",
            evidence=evidence,
        )
    note = f" ({', '.join(off)} off, not needed here)" if off else ""
    return finding("vpc-dns", CheckStatus.PASS, f"VPC DNS is adequate{note}", evidence=evidence)


@check("sg-egress-https", Step.STS, "Security groups allow outbound HTTPS")
def sg_egress_https(ctx: Context) -> Finding:
    gate, sp = _service_gate(ctx, "sg-egress-https")
    if gate is not None or sp is None:
        return gate or skip("sg-egress-https", "not applicable")
    ident = ctx.identity
    sgs = list(ident.sgs.values())
    to_internet = netpath.sg_rule_for(sgs, egress=True, port=netpath.HTTPS, peer_cidrs=[netpath.PUBLIC_SERVICE])
    evidence: dict[str, Any] = {"security_groups": ident.sg_ids, "to_internet": to_internet}
    blocked: list[str] = []
    uses_nat = any(p.route_target.startswith("nat-") for p in sp.subnets.values())
    if uses_nat and to_internet is None:
        blocked.append("no outbound 443 to the internet (the NAT path)")
    endpoint_rules: dict[str, Any] = {}
    for svc in sp.services:
        for e in sp.endpoints.get(svc) or []:
            ep_subnets = {k: f.value for k, f in ctx.lookups.subnets(e.subnet_ids).items() if f.ok and f.value}
            cidrs = [n for n in (netpath.net(s.get("CidrBlock")) for s in ep_subnets.values()) if n is not None]
            rule = netpath.sg_rule_for(sgs, egress=True, port=netpath.HTTPS, peer_groups=e.group_ids, peer_cidrs=cidrs)
            endpoint_rules[e.endpoint_id] = rule
            if rule is None and sp.relies_on_endpoints:
                blocked.append(f"no outbound 443 to {e.endpoint_id} ({svc})")
    evidence["to_endpoints"] = endpoint_rules
    if not uses_nat and not endpoint_rules and to_internet is None:
        blocked.append("no outbound 443 at all")
    if blocked:
        return finding(
            "sg-egress-https",
            CheckStatus.FAIL,
            f"the ENI security groups allow {blocked[0]}",
            evidence=evidence,
            causes=["no-egress-443"],
            fix="ticket",
            fix_params={"reason": "the cluster / ESM security groups need an outbound 443 rule"},
        )
    return finding("sg-egress-https", CheckStatus.PASS, "outbound 443 allowed for the service path", evidence=evidence)


@check("on-failure-destination", Step.STS, "The on-failure destination is reachable and allowed", per_esm=True)
def on_failure_destination(ctx: Context) -> Finding:
    dest = ctx.esm.on_failure_destination
    if not dest:
        return skip("on-failure-destination", "no on-failure destination configured")
    service = destination_service(dest)
    evidence: dict[str, Any] = {"destination": dest, "service": service}
    if service not in ("sqs", "sns", "s3"):
        return finding(
            "on-failure-destination",
            CheckStatus.WARN,
            f"destination service '{service or '?'}' is not checked by esm-medic",
            evidence=evidence,
        )
    path_problem = ""
    sp = ctx.service_path if ctx.identity.in_vpc and not ctx.identity.provisioned else None
    if sp is not None and not sp.failures:
        no_nat = [p.subnet_id for p in sp.subnets.values() if not p.nat_ok]
        eps = [e for e in sp.endpoints.get(service) or [] if e.state == "available"]
        evidence["endpoints"] = [e.endpoint_id for e in eps]
        if no_nat and not eps:
            path_problem = f"{', '.join(no_nat)} have no NAT path and the VPC has no {service} endpoint"
    perms = ctx.permissions
    dest_verdicts = [v for v in perms.verdicts if v.requirement.action.split(":", 1)[0] == service]
    missing = [v for v in dest_verdicts if v.decision in (iam_eval.IMPLICIT_DENY, iam_eval.EXPLICIT_DENY)]
    evidence["permissions"] = [
        {"action": v.requirement.action, "resource": v.requirement.resource, "decision": v.decision}
        for v in dest_verdicts
    ]
    if missing:
        role = perms.role_arn.rsplit("/", 1)[-1]
        return finding(
            "on-failure-destination",
            CheckStatus.FAIL,
            f"the execution role may not {', '.join(v.requirement.action for v in missing)} to {dest}",
            evidence=evidence,
            causes=["destination-permission"] + (["no-destination-path"] if path_problem else []),
            fix="grant-iam-permissions",
            fix_params={"role_name": role, "statements": grant_statements(v.requirement for v in missing)},
        )
    if path_problem:
        return finding(
            "on-failure-destination",
            CheckStatus.FAIL,
            path_problem,
            evidence=evidence,
            causes=["no-destination-path"],
            fix="ticket",
            fix_params={"reason": f"add a {service} endpoint or a NAT path for the on-failure destination"},
        )
    if perms.failure is not None:
        return unknown("on-failure-destination", perms.failure, "the execution role's permissions", **evidence)
    if any(v.decision == iam_eval.UNDECIDED for v in dest_verdicts):
        return finding(
            "on-failure-destination", CheckStatus.WARN, "the send permission depends on conditions", evidence=evidence
        )
    return finding(
        "on-failure-destination", CheckStatus.PASS, f"{service} destination reachable and allowed", evidence=evidence
    )
