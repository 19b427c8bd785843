"""Only the ESM's own network: every fix is checked against the ESM's effective network identity (the MSK cluster's
groups, subnets and VPC, or a self-managed ESM's VPC_* entries), whatever its parameters say, and the EC2 guard hook
refuses every way of naming a rule or group outside it. Each attack is tried through the engine (plan and apply)
or straight through the adapter, and the account is compared before and after: 0 changes outside the network."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from remediate_helpers import full_params, snapshot

from esm_medic.aws import Aws
from esm_medic.remediate import engine, guard
from esm_medic.remediate.base import CidrRuleRejected
from esm_medic.remediate.scope import ADMIN_PORTS, resolve


def _world(env: Any, r: Any) -> Any:
    """A second VPC with its own group, and an unrelated group in the ESM's VPC."""
    other_vpc = env.world.call("ec2", "create_vpc", CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
    far_sg = env.world.call(
        "ec2", "create_security_group", GroupName=f"far-{env.n}", Description="another VPC", VpcId=other_vpc
    )["GroupId"]
    near_sg = env.world.call(
        "ec2", "create_security_group", GroupName=f"near-{env.n}", Description="another workload", VpcId=r.vpc_id
    )["GroupId"]
    far_subnet = env.world.call("ec2", "create_subnet", VpcId=other_vpc, CidrBlock="10.77.1.0/24")["Subnet"]["SubnetId"]
    return other_vpc, far_sg, near_sg, far_subnet


def _state(env: Any, r: Any, other_vpc: str) -> dict[str, Any]:
    return {"esm_vpc": snapshot(env.world, r.vpc_id), "other_vpc": snapshot(env.world, other_vpc)}


def _try_both(env: Any, r: Any, action: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    kw = {"action": action, "params": params, "uuid": r.uuid, "settings": env.settings}
    return [engine.plan_fix(env.aws, **kw), engine.apply_fix(env.aws, approved=True, **kw)]


# ---------------------------------------------------------------------------------------------- the engine
def test_the_scope_is_the_clusters_network(env: Any) -> None:
    r = env.build("missing-sg-self-rule")
    scope = resolve(env.aws, env.esm(r.uuid))
    assert scope.usable and scope.source == "cluster"
    assert scope.vpc_id == r.vpc_id
    assert set(scope.security_group_ids) == set(r.security_group_ids)
    assert set(scope.subnet_ids) == set(r.subnet_ids)
    assert scope.ports == (9098,) and scope.auth_mode == "iam"


def test_sg_self_rule_outside_the_network_is_refused(env: Any) -> None:
    r = env.build("missing-sg-self-rule")
    other_vpc, far_sg, near_sg, _ = _world(env, r)
    good = full_params(r, "add-sg-self-rule")
    attempts = {
        "unrelated group in the same VPC": dict(good, group_id=near_sg),
        "group of another VPC, vpc_id given": dict(good, group_id=far_sg, vpc_id=other_vpc),
        "group of another VPC, vpc_id omitted": {k: v for k, v in dict(good, group_id=far_sg).items() if k != "vpc_id"},
        "the ESM's group, another vpc_id": dict(good, vpc_id=other_vpc),
        "a port of another auth mode": dict(good, ports=[9092]),
        "SSH": dict(good, ports=[22]),
    }
    before = _state(env, r, other_vpc)
    for label, params in attempts.items():
        for res in _try_both(env, r, "add-sg-self-rule", params):
            assert res["status"] == "refused", (label, res)
            assert "outside the ESM's network" in res["error"], (label, res["error"])
    assert _state(env, r, other_vpc) == before
    assert env.authorize_calls == []  # not even a dry run reached EC2
    assert _try_both(env, r, "add-sg-self-rule", good)[1]["status"] == "applied"


def test_vpc_endpoints_outside_the_network_are_refused(env: Any) -> None:
    r = env.build("no-nat-no-endpoints")
    other_vpc, far_sg, near_sg, far_subnet = _world(env, r)
    good = full_params(r, "create-vpc-endpoints")
    attempts = {
        "unrelated source group in the VPC": dict(good, source_group_ids=[*good["source_group_ids"], near_sg]),
        "source group of another VPC": dict(good, source_group_ids=[far_sg]),
        "subnet of another VPC": dict(good, subnet_ids=[far_subnet]),
        "another VPC": dict(good, vpc_id=other_vpc, subnet_ids=[far_subnet], source_group_ids=[far_sg]),
    }
    before = _state(env, r, other_vpc)
    for label, params in attempts.items():
        for res in _try_both(env, r, "create-vpc-endpoints", params):
            assert res["status"] == "refused", (label, res)
    assert _state(env, r, other_vpc) == before


def test_vpc_dns_of_another_vpc_is_refused(env: Any) -> None:
    r = env.build("vpc-dns-off")
    other_vpc, *_ = _world(env, r)
    env.world.call("ec2", "modify_vpc_attribute", VpcId=other_vpc, EnableDnsSupport={"Value": False})
    before = _state(env, r, other_vpc)
    params = dict(full_params(r, "enable-vpc-dns"), vpc_id=other_vpc, attributes=["enableDnsSupport"])
    for res in _try_both(env, r, "enable-vpc-dns", params):
        assert res["status"] == "refused" and other_vpc in res["error"]
    assert _state(env, r, other_vpc) == before


@pytest.mark.parametrize("port", sorted(ADMIN_PORTS | {9092, 9094}))
def test_self_managed_ports_come_from_the_bootstrap_servers(env: Any, port: int) -> None:
    r = env.build("self-managed-missing-sg-rule")
    scope = resolve(env.aws, env.esm(r.uuid))
    assert scope.source == "esm" and scope.ports == (9096,)
    params = dict(full_params(r, "add-sg-self-rule"), ports=[port])
    before = snapshot(env.world, r.vpc_id)
    for res in _try_both(env, r, "add-sg-self-rule", params):
        assert res["status"] == "refused" and f"ports [{port}]" in res["error"], res
    assert snapshot(env.world, r.vpc_id) == before


def test_an_esm_that_cannot_be_read_gets_no_network_change(env: Any) -> None:
    r = env.build("missing-sg-self-rule")
    params = full_params(r, "add-sg-self-rule")
    res = engine.plan_fix(
        env.aws,
        action="add-sg-self-rule",
        params=params,
        uuid="00000000-0000-0000-0000-000000000000",
        settings=env.settings,
    )
    assert res["status"] == "refused" and "cannot be established" in res["error"]


# ---------------------------------------------------------------------------------------------- the hook
def _perm(group: str, port: int = 9098) -> dict[str, Any]:
    return {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "UserIdGroupPairs": [{"GroupId": group}]}


def test_every_rule_naming_path_is_refused_outside_the_network(env: Any) -> None:
    r = env.build("missing-sg-self-rule")
    other_vpc, far_sg, near_sg, _ = _world(env, r)
    own = r.security_group_ids[0]
    near_name = f"near-{env.n}"
    aws = Aws(region="us-east-1", max_attempts=0, session=env.world.session)  # not env.aws: it records attempts
    ec2 = aws.client("ec2")
    own_rule = env.world.call(
        "ec2", "authorize_security_group_ingress", GroupId=near_sg, IpPermissions=[_perm(near_sg, 9092)]
    )["SecurityGroupRules"][0]["SecurityGroupRuleId"]
    attempts: dict[str, Callable[[], Any]] = {
        "GroupName": lambda: ec2.authorize_security_group_ingress(GroupName=near_name, IpPermissions=[_perm(own)]),
        "GroupId of an unrelated group": lambda: ec2.authorize_security_group_ingress(
            GroupId=near_sg, IpPermissions=[_perm(near_sg)]
        ),
        "GroupId of another VPC": lambda: ec2.authorize_security_group_egress(
            GroupId=far_sg, IpPermissions=[_perm(far_sg)]
        ),
        "IpPermissions naming an unrelated group": lambda: ec2.authorize_security_group_ingress(
            GroupId=own, IpPermissions=[_perm(near_sg)]
        ),
        "flat SourceSecurityGroupName": lambda: ec2.authorize_security_group_ingress(
            GroupId=own, SourceSecurityGroupName=near_name
        ),
        "flat CidrIp": lambda: ec2.authorize_security_group_ingress(
            GroupId=own, IpProtocol="tcp", FromPort=9098, ToPort=9098, CidrIp="10.0.0.0/8"
        ),
        "IpRanges 0.0.0.0/0": lambda: ec2.authorize_security_group_ingress(
            GroupId=own, IpPermissions=[{**_perm(own), "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
        ),
        "Ipv6Ranges ::/0": lambda: ec2.authorize_security_group_egress(
            GroupId=own,
            IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": 9098, "ToPort": 9098, "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}
            ],
        ),
        "prefix list": lambda: ec2.authorize_security_group_ingress(
            GroupId=own,
            IpPermissions=[
                {
                    "IpProtocol": "tcp",
                    "FromPort": 443,
                    "ToPort": 443,
                    "PrefixListIds": [{"PrefixListId": "pl-1234abcd"}],
                }
            ],
        ),
        "all ports": lambda: ec2.authorize_security_group_ingress(
            GroupId=own, IpPermissions=[{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": own}]}]
        ),
        "a port range": lambda: ec2.authorize_security_group_ingress(
            GroupId=own, IpPermissions=[{**_perm(own), "FromPort": 0, "ToPort": 65535}]
        ),
        "ModifySecurityGroupRules": lambda: ec2.modify_security_group_rules(
            GroupId=near_sg,
            SecurityGroupRules=[
                {
                    "SecurityGroupRuleId": own_rule,
                    "SecurityGroupRule": {"IpProtocol": "tcp", "FromPort": 1, "ToPort": 65535, "CidrIpv4": "0.0.0.0/0"},
                }
            ],
        ),
        "UpdateSecurityGroupRuleDescriptionsIngress": lambda: ec2.update_security_group_rule_descriptions_ingress(
            GroupId=near_sg, SecurityGroupRuleDescriptions=[{"SecurityGroupRuleId": own_rule, "Description": "x"}]
        ),
        "revoke on an unrelated group": lambda: ec2.revoke_security_group_ingress(
            GroupId=near_sg, SecurityGroupRuleIds=[own_rule]
        ),
        "revoke by GroupName": lambda: ec2.revoke_security_group_ingress(
            GroupName=near_name, IpPermissions=[_perm(near_sg, 9092)]
        ),
        "delete an unrelated group": lambda: ec2.delete_security_group(GroupId=near_sg),
        "delete by GroupName": lambda: ec2.delete_security_group(GroupName=near_name),
    }
    before = _state(env, r, other_vpc)
    scope = resolve(aws, env.esm(r.uuid))
    accepted = []
    with guard.confine(aws, scope.security_group_ids, scope.vpc_id):
        for label, attempt in attempts.items():
            try:
                attempt()
            except CidrRuleRejected:
                continue
            accepted.append(label)
    assert accepted == []
    assert _state(env, r, other_vpc) == before
    # outside a confinement (any adapter the guard was installed on) the naming rules and the CIDR ban still hold
    for label in (
        "GroupName",
        "flat CidrIp",
        "IpRanges 0.0.0.0/0",
        "Ipv6Ranges ::/0",
        "prefix list",
        "all ports",
        "ModifySecurityGroupRules",
        "delete by GroupName",
    ):
        with pytest.raises(CidrRuleRejected):
            attempts[label]()
    assert _state(env, r, other_vpc) == before


def test_a_confinement_admits_the_groups_its_run_creates(env: Any) -> None:
    r = env.build("missing-sg-self-rule")
    own = r.security_group_ids[0]
    with guard.confine(env.aws, [own], r.vpc_id):
        new = env.aws.call(
            "ec2", "create_security_group", GroupName=f"made-{env.n}", Description="made here", VpcId=r.vpc_id
        )["GroupId"]
        with pytest.raises(CidrRuleRejected):
            guard.authorize(env.aws, "ingress", new, [guard.build_permission(443, [own], "esm-medic t")])
        guard.admit(new)
        guard.authorize(env.aws, "ingress", new, [guard.build_permission(443, [own], "esm-medic t")])
    rules = env.world.call("ec2", "describe_security_group_rules", Filters=[{"Name": "group-id", "Values": [new]}])
    assert any((x.get("ReferencedGroupInfo") or {}).get("GroupId") == own for x in rules["SecurityGroupRules"])
