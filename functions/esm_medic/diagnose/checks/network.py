"""Checks of the path from the ESM's ENIs to the brokers: security group self rules, NACLs, subnet capacity.

The ENIs carry the cluster's security groups (MSK) or the ESM's VPC_SECURITY_GROUP list (self-managed); the brokers
carry the cluster's groups too, so the groups must admit the broker port from themselves (a self-referencing rule,
or a CIDR rule covering the ENI subnets) inbound and outbound. For self-managed Kafka the brokers' own groups are
not visible from the ESM: the check assumes the documented set-up (brokers reachable through the ESM's groups).
"""

from __future__ import annotations

from typing import Any

from esm_medic.diagnose import netpath
from esm_medic.diagnose.checks import check, finding, network_gate, unknown
from esm_medic.diagnose.context import Context
from esm_medic.esm import MSK
from esm_medic.models import CheckStatus, Finding
from esm_medic.steps import Step, step_index

LOW_IP_WARNING = 5


def _self_rule(ctx: Context, check_id: str, *, egress: bool) -> Finding:
    gate = network_gate(ctx, check_id)
    if gate is not None:
        return gate
    ident = ctx.identity
    sgs = [ident.sgs[g] for g in ident.sg_ids if g in ident.sgs]
    direction = "outbound" if egress else "inbound"
    evidence: dict[str, Any] = {
        "security_groups": ident.sg_ids,
        "ports": list(ident.ports),
        "auth_mode": ident.mode,
        "direction": direction,
        "network_source": ident.source,
    }
    if ident.missing_sgs:
        evidence["missing_security_groups"] = ident.missing_sgs
    if ident.source == "esm":
        evidence["assumption"] = "the brokers are reachable through the ESM's security groups (documented set-up)"
    if not sgs:
        return finding(
            check_id,
            CheckStatus.FAIL,
            f"the ENI security groups {ident.sg_ids} do not exist",
            evidence=evidence,
            fix="ticket",
            fix_params={"reason": "the ESM's security groups were deleted"},
        )
    rules: dict[str, Any] = {}
    missing: list[int] = []
    for port in ident.ports:
        rule = netpath.sg_rule_for(
            sgs, egress=egress, port=port, peer_groups=ident.sg_ids, peer_cidrs=ident.subnet_cidrs
        )
        if rule is None:
            missing.append(port)
        else:
            rules[str(port)] = rule
    evidence["rules"] = rules
    if not missing:
        kinds = sorted({r["kind"] for r in rules.values()})
        return finding(
            check_id,
            CheckStatus.PASS,
            f"{direction} TCP {', '.join(map(str, ident.ports))} allowed between the ENIs and the brokers "
            f"({'/'.join(kinds)} rule)",
            evidence=evidence,
        )
    other = [p for p in netpath.referenced_ports(sgs, ident.sg_ids, egress=egress) if p not in ident.ports]
    evidence["missing_ports"] = missing
    causes = ["no-sg-self-rule", "network-path"]
    summary = f"no {direction} self-referencing rule for TCP {', '.join(map(str, missing))} on {ident.sg_ids}"
    if other:
        evidence["self_rule_ports"] = other
        summary += f"; self rules open {', '.join(map(str, other))}, the ports of another auth mode"
        if ctx.esm.source_kind == MSK:
            causes = ["wrong-port-for-auth", "no-sg-self-rule", "network-path"]
    params = {
        "group_id": ident.sg_ids[0] if ident.sg_ids[0] in ident.sgs else next(iter(ident.sgs)),
        "ports": missing,
        "directions": ["egress" if egress else "ingress"],
        "vpc_id": ident.vpc_id,
    }
    return finding(
        check_id, CheckStatus.FAIL, summary, evidence=evidence, causes=causes, fix="add-sg-self-rule", fix_params=params
    )


@check("sg-self-inbound", Step.NETWORK, "Security groups admit the broker port from themselves")
def sg_self_inbound(ctx: Context) -> Finding:
    return _self_rule(ctx, "sg-self-inbound", egress=False)


@check("sg-self-outbound", Step.NETWORK, "Security groups allow the broker port out to themselves")
def sg_self_outbound(ctx: Context) -> Finding:
    return _self_rule(ctx, "sg-self-outbound", egress=True)


def _broker_flows(
    subnets: dict[str, dict[str, Any]], ports: tuple[int, ...], acls: list[dict[str, Any]]
) -> list[tuple[str, str, str]]:
    """NACL problems for TCP ``ports`` between every pair of ENI / broker subnets (both directions' rules)."""
    problems: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for a, sub_a in subnets.items():
        for b, sub_b in subnets.items():
            net_a, net_b = netpath.net(sub_a.get("CidrBlock")), netpath.net(sub_b.get("CidrBlock"))
            if net_a is None or net_b is None:
                continue
            for port in ports:
                for reason in (
                    netpath.nacl_flow(netpath.nacl_for(a, acls), a, port, net_b, initiator=True),
                    netpath.nacl_flow(netpath.nacl_for(b, acls), b, port, net_a, initiator=False),
                ):
                    if reason and reason not in seen:
                        seen.add(reason)
                        problems.append(("nacl-blocks-brokers", str(Step.NETWORK), reason))
    return problems


@check("nacl", Step.NETWORK, "Network ACLs pass broker and HTTPS traffic")
def nacl(ctx: Context) -> Finding:
    gate = network_gate(ctx, "nacl")
    if gate is not None:
        return gate
    ident = ctx.identity
    nacls = ctx.lookups.network_acls(ident.vpc_id)
    if not nacls.ok:
        return unknown("nacl", nacls, f"the network ACLs of {ident.vpc_id}")
    acls = nacls.value or []
    key = ("nacl-brokers", ident.vpc_id, tuple(sorted(ident.subnets)), tuple(ident.ports))
    problems: list[tuple[str, str, str]] = list(
        ctx.lookups.derived(key, lambda: _broker_flows(ident.subnets, ident.ports, acls))
    )  # (cause, step, reason)
    seen: set[str] = {r for _, _, r in problems}
    sp = ctx.service_path
    if sp is not None:
        for path in sp.subnets.values():
            if path.route_target.startswith("nat-") and path.nacl_443_reason and path.nacl_443_reason not in seen:
                seen.add(path.nacl_443_reason)
                problems.append(("nacl-blocks-443", Step.STS, path.nacl_443_reason))
            if path.nat_ok:
                continue
            for cause, reason in path.endpoint_problems.values():
                if cause == "nacl-blocks-443" and reason not in seen:
                    seen.add(reason)
                    problems.append(("nacl-blocks-443", Step.STS, reason))
    used = sorted({str((netpath.nacl_for(s, acls) or {}).get("NetworkAclId", "?")) for s in ident.subnets})
    evidence: dict[str, Any] = {"network_acls": used, "ports": list(ident.ports)}
    if not problems:
        return finding(
            "nacl", CheckStatus.PASS, f"the NACLs {used} pass the broker and HTTPS traffic", evidence=evidence
        )
    evidence["blocked"] = [r for _, _, r in problems]
    step = min((s for _, s, _ in problems), key=step_index)
    causes = [c for c, _, _ in problems]
    return finding(
        "nacl",
        CheckStatus.FAIL,
        problems[0][2] + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""),
        step=step,
        evidence=evidence,
        causes=causes,
        fix="ticket",
        fix_params={"reason": "network ACL rules block the ESM's traffic; NACL changes are left to people"},
    )


@check("subnet-capacity", Step.NETWORK, "ENI subnets have free IP addresses")
def subnet_capacity(ctx: Context) -> Finding:
    gate = network_gate(ctx, "subnet-capacity")
    if gate is not None:
        return gate
    ident = ctx.identity
    free = {sid: s.get("AvailableIpAddressCount") for sid, s in ident.subnets.items()}
    evidence: dict[str, Any] = {"available_ips": free}
    if ident.missing_subnets:
        evidence["missing_subnets"] = ident.missing_subnets
    full = [sid for sid, n in free.items() if isinstance(n, int) and n <= 0]
    low = [sid for sid, n in free.items() if isinstance(n, int) and 0 < n < LOW_IP_WARNING]
    if full or (ident.missing_subnets and not ident.subnets):
        return finding(
            "subnet-capacity",
            CheckStatus.FAIL,
            f"no free IP addresses in {', '.join(full)}" if full else "the ESM's subnets do not exist",
            evidence=evidence,
            causes=["subnet-full"],
            fix="ticket",
            fix_params={"reason": "the ENI subnets have no free IP addresses"},
        )
    if low or ident.missing_subnets:
        what = f"few free IP addresses in {', '.join(low)}" if low else f"subnets {ident.missing_subnets} do not exist"
        return finding("subnet-capacity", CheckStatus.WARN, what, evidence=evidence)
    return finding("subnet-capacity", CheckStatus.PASS, "every ENI subnet has free IP addresses", evidence=evidence)
