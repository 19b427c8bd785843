"""Fault combinations: accounts with two faults at once, and traps that look broken but are not.

A *fault* is a small mutation applied, with ordinary AWS calls, to an account built healthy by a scenario recipe
(:mod:`esm_medic_sandbox.scenarios`). :func:`pairs` lists every pair of faults that can coexist (two faults that
edit the same rule are not a pair); :func:`build` builds one combination. Each fault says whether esm-medic may
fix it (``ticket_only`` False) and the root-cause ids a diagnosis may name it by, so a test can check that what
remains after the plan was applied is ticket-only and named.

*Traps* are healthy set-ups a careless diagnosis gets wrong: the function's own VPC config differs from the ESM's
network path, provisioned mode without NAT, an egress 0.0.0.0/0 rule that already covers the self rule, endpoints
whose SG does not admit the cluster SG while a NAT path exists, a Route 53 Resolver FORWARD rule for a
self-managed broker domain. No fix may be proposed on them.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from esm_medic.aws import Aws
from esm_medic_sandbox import scenarios, simulator
from esm_medic_sandbox.scenarios import IAM_PORT, TLS_PORT, ScenarioResult

Mutate = Callable[[Aws, ScenarioResult], None]


@dataclass(frozen=True)
class Fault:
    name: str
    mutate: Mutate
    ticket_only: bool
    names: frozenset[str]  # root-cause ids a diagnosis may give it
    touches: frozenset[str] = field(default_factory=frozenset)  # what it edits (two faults never share one)
    base: str = "healthy"


def _sg(r: ScenarioResult) -> str:
    return r.security_group_ids[0]


def _revoke_all(aws: Aws, r: ScenarioResult, direction: str) -> None:
    """Revoke every ``ingress`` or ``egress`` rule of the scenario's security group."""
    sg = _sg(r)
    key = "IpPermissions" if direction == "ingress" else "IpPermissionsEgress"
    perms = aws.call("ec2", "describe_security_groups", GroupIds=[sg])["SecurityGroups"][0][key]
    if perms:
        aws.call("ec2", f"revoke_security_group_{direction}", GroupId=sg, IpPermissions=perms)


def _revoke_self_inbound(aws: Aws, r: ScenarioResult) -> None:
    _revoke_all(aws, r, "ingress")


def _wrong_port(aws: Aws, r: ScenarioResult) -> None:
    _revoke_self_inbound(aws, r)
    aws.call(
        "ec2",
        "authorize_security_group_ingress",
        GroupId=_sg(r),
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": TLS_PORT, "ToPort": TLS_PORT, "UserIdGroupPairs": [{"GroupId": _sg(r)}]}
        ],
    )


def _revoke_egress(aws: Aws, r: ScenarioResult) -> None:
    _revoke_all(aws, r, "egress")


def _no_nat(aws: Aws, r: ScenarioResult) -> None:
    aws.call(
        "ec2",
        "delete_route",
        RouteTableId=r.resources["private_route_table_id"],
        DestinationCidrBlock="0.0.0.0/0",
    )


def _role_policy(aws: Aws, r: ScenarioResult, drop: Callable[[str], bool]) -> None:
    for name in aws.call("iam", "list_role_policies", RoleName=r.role_name)["PolicyNames"]:
        doc = aws.call("iam", "get_role_policy", RoleName=r.role_name, PolicyName=name)["PolicyDocument"]
        doc = json.loads(doc) if isinstance(doc, str) else doc
        kept = []
        for st in doc.get("Statement") or []:
            actions = st.get("Action")
            actions = [actions] if isinstance(actions, str) else list(actions or [])
            left = [a for a in actions if not drop(a)]
            if left:
                kept.append({**st, "Action": left})
        doc["Statement"] = kept
        aws.call("iam", "put_role_policy", RoleName=r.role_name, PolicyName=name, PolicyDocument=json.dumps(doc))


def _no_kafka_data(aws: Aws, r: ScenarioResult) -> None:
    _role_policy(aws, r, lambda a: a.startswith("kafka-cluster:") and a != "kafka-cluster:Connect")


def _broken_trust(aws: Aws, r: ScenarioResult) -> None:
    doc = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
    aws.call("iam", "update_assume_role_policy", RoleName=r.role_name, PolicyDocument=json.dumps(doc))


FAULTS: dict[str, Fault] = {
    f.name: f
    for f in (
        Fault("no-self-inbound", _revoke_self_inbound, False, frozenset({"no-sg-self-rule"}), frozenset({"ingress"})),
        Fault("wrong-port", _wrong_port, False, frozenset({"wrong-port-for-auth"}), frozenset({"ingress"})),
        Fault("egress-revoked", _revoke_egress, True, frozenset({"no-egress-443"}), frozenset({"egress"})),
        Fault("no-nat", _no_nat, False, frozenset({"no-nat-or-endpoints"}), frozenset({"route"})),
        Fault("no-kafka-data", _no_kafka_data, False, frozenset({"iam-missing-kafka-cluster"}), frozenset({"policy"})),
        Fault("broken-trust", _broken_trust, True, frozenset({"trust-policy"}), frozenset({"trust"})),
    )
}


# ---------------------------------------------------------------------------------------------- traps
def _function_elsewhere(aws: Aws, r: ScenarioResult) -> None:
    """The function itself runs in another subnet with another SG: the ESM's path is the cluster's, not this."""
    other = aws.call("ec2", "create_security_group", GroupName=f"fn-{r.uuid[:8]}", Description="fn", VpcId=r.vpc_id)
    aws.call(
        "lambda",
        "update_function_configuration",
        FunctionName=r.function_name,
        VpcConfig={"SubnetIds": r.subnet_ids[:1], "SecurityGroupIds": [other["GroupId"]]},
    )


def _endpoints_not_admitting(aws: Aws, r: ScenarioResult) -> None:
    """Interface endpoints whose SG admits nothing, next to a working NAT path."""
    sg = aws.call("ec2", "create_security_group", GroupName=f"ep-{r.uuid[:8]}", Description="ep", VpcId=r.vpc_id)
    region = aws.region
    for svc in ("sts", "lambda"):
        aws.call(
            "ec2",
            "create_vpc_endpoint",
            VpcId=r.vpc_id,
            VpcEndpointType="Interface",
            ServiceName=f"com.amazonaws.{region}.{svc}",
            SubnetIds=r.subnet_ids,
            SecurityGroupIds=[sg["GroupId"]],
            PrivateDnsEnabled=False,
        )


def _forwarding_rule(aws: Aws, r: ScenarioResult) -> None:
    """The broker domain is forwarded by a Resolver rule (names answered by DNS esm-medic cannot ask): drop the
    private zone, forward the domain, and let the sandbox DNS (the "on-premises" servers) answer for the ESM."""
    domain = str(r.resources["domain"])
    zone = str(r.resources["hosted_zone_id"])
    records = aws.call("route53", "list_resource_record_sets", HostedZoneId=zone)["ResourceRecordSets"]
    changes = [{"Action": "DELETE", "ResourceRecordSet": rr} for rr in records if rr["Type"] in ("A", "CNAME")]
    if changes:
        aws.call("route53", "change_resource_record_sets", HostedZoneId=zone, ChangeBatch={"Changes": changes})
    aws.call("route53", "delete_hosted_zone", Id=zone)
    for i, host in enumerate(r.resources["broker_hosts"]):
        simulator.register_dns(host, f"10.40.{i + 1}.50")
    sg = _sg(r)
    ep = aws.call(
        "route53resolver",
        "create_resolver_endpoint",
        CreatorRequestId=f"out-{r.uuid[:12]}",
        SecurityGroupIds=[sg],
        Direction="OUTBOUND",
        IpAddresses=[{"SubnetId": s} for s in r.subnet_ids[:2]],
    )["ResolverEndpoint"]["Id"]
    rule = aws.call(
        "route53resolver",
        "create_resolver_rule",
        CreatorRequestId=f"rule-{r.uuid[:12]}",
        RuleType="FORWARD",
        DomainName=domain,
        TargetIps=[{"Ip": "192.168.10.53", "Port": 53}],
        ResolverEndpointId=ep,
    )["ResolverRule"]["Id"]
    aws.call("route53resolver", "associate_resolver_rule", ResolverRuleId=rule, VPCId=r.vpc_id)


@dataclass(frozen=True)
class Trap:
    name: str
    base: str  # scenario name to build
    mutate: Mutate | None = None


TRAPS: dict[str, Trap] = {
    t.name: t
    for t in (
        Trap("function-vpc-elsewhere", "healthy", _function_elsewhere),
        Trap("provisioned-no-nat", "provisioned-mode"),
        Trap("egress-all-covers-self", "healthy"),  # the default 0.0.0.0/0 egress rule is the only outbound rule
        Trap("endpoints-sg-not-admitting", "healthy", _endpoints_not_admitting),
        Trap("resolver-forwarding-rule", "self-managed-missing-sg-rule", None),  # see build_trap
    )
}


def pairs() -> list[tuple[str, str]]:
    """Every pair of faults that can coexist (they edit different things)."""
    return [(a.name, b.name) for a, b in itertools.combinations(FAULTS.values(), 2) if not (a.touches & b.touches)]


@dataclass
class Combo:
    name: str
    faults: tuple[str, ...]
    result: ScenarioResult

    @property
    def ticket_names(self) -> set[str]:
        return {n for f in self.faults if FAULTS[f].ticket_only for n in FAULTS[f].names}


def build(aws: Aws, names: tuple[str, ...], *, prefix: str = "combo-") -> Combo:
    """Build the healthy MSK (IAM) account and apply the named faults."""
    result = scenarios.build(aws, "healthy", prefix=prefix)
    for name in names:
        FAULTS[name].mutate(aws, result)
    simulator.invalidate()
    return Combo("+".join(names), tuple(names), result)


def build_trap(aws: Aws, name: str, *, prefix: str = "trap-") -> Combo:
    trap = TRAPS[name]
    if name == "resolver-forwarding-rule":
        result = scenarios.build(aws, trap.base, prefix=prefix)
        # a healthy self-managed account: give the ESM security group its self rule back first
        port = 9096
        aws.call(
            "ec2",
            "authorize_security_group_ingress",
            GroupId=_sg(result),
            IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "UserIdGroupPairs": [{"GroupId": _sg(result)}]}
            ],
        )
        _forwarding_rule(aws, result)
    else:
        result = scenarios.build(aws, trap.base, prefix=prefix)
        if trap.mutate is not None:
            trap.mutate(aws, result)
    simulator.invalidate()
    return Combo(name, (), result)


def status(aws: Aws, uuid: str) -> dict[str, Any]:
    """What the simulated ESM reports now, and the cause the simulator found ('' when healthy)."""
    item = aws.call("lambda", "get_event_source_mapping", UUID=uuid)
    t = simulator.trace(item)
    return {"result": item.get("LastProcessingResult"), "step": t.get("failed_step"), "cause": t.get("cause") or ""}


__all__ = ["FAULTS", "IAM_PORT", "TRAPS", "Combo", "Fault", "Trap", "build", "build_trap", "pairs", "status"]
