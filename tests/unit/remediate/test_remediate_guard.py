"""No permission esm-medic builds can carry a CIDR, a prefix list or all-traffic; every authorize call goes through
the guard (checked on the source)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esm_medic.remediate import guard
from esm_medic.remediate.actions.sg_self_rule import AddSgSelfRule
from esm_medic.remediate.base import ActionContext, CidrRuleRejected, InvalidParams

PKG = Path(__file__).resolve().parents[3] / "functions" / "esm_medic"
group_ids = st.from_regex(r"sg-[0-9a-f]{17}", fullmatch=True)
ports = st.integers(min_value=1, max_value=65535)
incidents = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,40}", fullmatch=True)
cidrs = st.sampled_from(["0.0.0.0/0", "10.0.0.0/8", "::/0", "2001:db8::/32", "192.168.1.1/32"])


@given(port=ports, groups=st.lists(group_ids, min_size=1, max_size=5, unique=True), incident=incidents)
def test_built_permissions_never_carry_a_cidr(port: int, groups: list[str], incident: str) -> None:
    perm = guard.build_permission(port, groups, f"esm-medic {incident}")
    assert set(perm) == {"IpProtocol", "FromPort", "ToPort", "UserIdGroupPairs"}
    assert perm["IpProtocol"] == "tcp" and perm["FromPort"] == perm["ToPort"] == port
    assert [p["GroupId"] for p in perm["UserIdGroupPairs"]] == groups
    assert not re.search(r"\d+\.\d+\.\d+\.\d+/\d+|::/", repr(perm))


@given(
    key=st.sampled_from(["IpRanges", "Ipv6Ranges", "PrefixListIds"]),
    value=st.one_of(
        st.just([]),
        cidrs.map(lambda c: [{"CidrIp": c}]),
        cidrs.map(lambda c: [{"CidrIpv6": c}]),
        st.just([{"PrefixListId": "pl-12345678"}]),
    ),
    port=ports,
    group=group_ids,
)
def test_any_cidr_key_is_rejected(key: str, value: Any, port: int, group: str) -> None:
    perm = {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "UserIdGroupPairs": [{"GroupId": group}], key: value}
    with pytest.raises(CidrRuleRejected):
        guard.check_permissions([perm])


@given(
    protocol=st.sampled_from(["-1", "udp", "icmp", "all", "6"]),
    span=st.tuples(ports, ports).filter(lambda t: t[0] != t[1]),
    group=group_ids,
)
def test_all_traffic_protocols_and_ranges_are_rejected(protocol: str, span: tuple[int, int], group: str) -> None:
    pairs = [{"GroupId": group}]
    with pytest.raises(CidrRuleRejected):
        guard.check_permissions([{"IpProtocol": protocol, "FromPort": 1, "ToPort": 1, "UserIdGroupPairs": pairs}])
    with pytest.raises(CidrRuleRejected):
        guard.check_permissions(
            [{"IpProtocol": "tcp", "FromPort": span[0], "ToPort": span[1], "UserIdGroupPairs": pairs}]
        )


@pytest.mark.parametrize(
    "pair",
    [
        {"GroupId": "sg-0123456789abcdef0", "CidrIp": "0.0.0.0/0"},
        {"GroupId": "sg-0123456789abcdef0", "VpcPeeringConnectionId": "pcx-1"},
        {"GroupId": "sg-0123456789abcdef0", "UserId": "999999999999"},
        {"GroupId": "0.0.0.0/0"},
        {"GroupId": "sg-0123456789abcdef0", "Description": "open 0.0.0.0/0"},
        {},
    ],
)
def test_group_pairs_name_security_groups_only(pair: dict[str, Any]) -> None:
    perm = {"IpProtocol": "tcp", "FromPort": 9098, "ToPort": 9098, "UserIdGroupPairs": [pair]}
    with pytest.raises(CidrRuleRejected):
        guard.check_permissions([perm])


def test_guard_refuses_other_targets_and_foreign_groups() -> None:
    perm = guard.build_permission(9098, ["sg-0123456789abcdef0"], "esm-medic x")
    with pytest.raises(CidrRuleRejected):
        guard.check_permissions([perm], expect_group_ids=["sg-0fedcba9876543210"])
    with pytest.raises(CidrRuleRejected):
        guard.authorize(None, "ingress", "10.0.0.0/8", [perm])  # type: ignore[arg-type]
    with pytest.raises(CidrRuleRejected):
        guard.check_permissions([])


@settings(max_examples=60)
@given(
    group=group_ids,
    port_list=st.lists(st.integers(1, 65535), min_size=1, max_size=4, unique=True),
    directions=st.lists(st.sampled_from(["ingress", "egress"]), min_size=1, max_size=2, unique=True),
    incident=incidents,
)
def test_the_sg_action_builds_only_self_references(
    group: str, port_list: list[int], directions: list[str], incident: str
) -> None:
    ctx = ActionContext(None, incident)  # type: ignore[arg-type]
    act = AddSgSelfRule({"group_id": group, "ports": port_list, "directions": directions}, ctx)
    for port in port_list:
        perm = act._permission(port)
        assert perm["UserIdGroupPairs"] == [{"GroupId": group, "Description": f"esm-medic {incident}"}]
        guard.check_permissions([perm], expect_group_ids=[group])


@given(extra=st.sampled_from(["cidr", "IpRanges", "cidr_ip", "ip_ranges"]), value=cidrs)
def test_the_sg_action_schema_has_no_place_for_a_cidr(extra: str, value: str) -> None:
    with pytest.raises(InvalidParams):
        AddSgSelfRule.validate({"group_id": "sg-0123456789abcdef0", "ports": [9098], extra: value})


def test_only_the_guard_names_the_authorize_operations() -> None:
    pattern = re.compile(r"authorize_security_group_(ingress|egress)|AuthorizeSecurityGroup(Ingress|Egress)")
    offenders = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG).as_posix()
        if rel.startswith("sandbox/") or rel == "remediate/guard.py":
            continue
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if pattern.search(code) and "guard." not in code and '"ec2:Authorize' not in code:
                offenders.append(f"{rel}:{i}: {line.strip()}")
    assert not offenders, "authorize calls must go through esm_medic.remediate.guard:\n" + "\n".join(offenders)
