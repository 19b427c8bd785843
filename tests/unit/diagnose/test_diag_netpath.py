"""esm_medic.diagnose.netpath: security groups, NACLs and route tables evaluated over EC2's response shapes."""

from __future__ import annotations

import ipaddress

from esm_medic.diagnose import netpath

SG = "sg-aaa"
OTHER = "sg-bbb"
SUBNET_A = ipaddress.ip_network("10.0.1.0/24")


def sg(gid: str, ingress: list | None = None, egress: list | None = None) -> dict:
    return {"GroupId": gid, "IpPermissions": ingress or [], "IpPermissionsEgress": egress or []}


def self_rule(port: int, gid: str = SG, proto: str = "tcp", to: int | None = None) -> dict:
    return {"IpProtocol": proto, "FromPort": port, "ToPort": to or port, "UserIdGroupPairs": [{"GroupId": gid}]}


def test_self_rule_on_the_port_is_found():
    rule = netpath.sg_rule_for([sg(SG, [self_rule(9098)])], egress=False, port=9098, peer_groups=[SG])
    assert rule is not None and rule["kind"] == "self"
    assert netpath.sg_rule_for([sg(SG, [self_rule(9094)])], egress=False, port=9098, peer_groups=[SG]) is None


def test_port_ranges_all_traffic_and_other_protocols():
    assert netpath.sg_rule_for([sg(SG, [self_rule(9000, to=9100)])], egress=False, port=9098, peer_groups=[SG])
    all_traffic = {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": SG}]}
    assert netpath.sg_rule_for([sg(SG, [all_traffic])], egress=False, port=9098, peer_groups=[SG])
    assert not netpath.sg_rule_for([sg(SG, [self_rule(9098, proto="udp")])], egress=False, port=9098, peer_groups=[SG])


def test_rule_referencing_another_carried_group_counts():
    # the ENIs carry both groups: a rule on OTHER admitting SG is enough
    groups = [sg(SG), sg(OTHER, [self_rule(9096, gid=SG)])]
    rule = netpath.sg_rule_for(groups, egress=False, port=9096, peer_groups=[SG, OTHER])
    assert rule == {"group_id": OTHER, "kind": "group", "peer": SG, "rule": "tcp 9096"}


def test_cidr_rule_must_cover_every_peer_subnet():
    rng = {"IpProtocol": "tcp", "FromPort": 9098, "ToPort": 9098, "IpRanges": [{"CidrIp": "10.0.0.0/16"}]}
    narrow = {"IpProtocol": "tcp", "FromPort": 9098, "ToPort": 9098, "IpRanges": [{"CidrIp": "10.0.1.0/25"}]}
    peers = [SUBNET_A, ipaddress.ip_network("10.0.2.0/24")]
    assert netpath.sg_rule_for([sg(SG, [rng])], egress=False, port=9098, peer_cidrs=peers)["kind"] == "cidr"
    assert netpath.sg_rule_for([sg(SG, [narrow])], egress=False, port=9098, peer_cidrs=peers) is None


def test_referenced_ports_spots_another_auth_modes_port():
    groups = [sg(SG, [self_rule(9094), self_rule(443)])]
    assert netpath.referenced_ports(groups, [SG], egress=False) == [9094]


def test_route_table_explicit_association_beats_main():
    main = {"RouteTableId": "rtb-main", "Associations": [{"Main": True}], "Routes": []}
    own = {
        "RouteTableId": "rtb-own",
        "Associations": [{"SubnetId": "subnet-1"}],
        "Routes": [{"DestinationCidrBlock": "0.0.0.0/0", "NatGatewayId": "nat-1", "State": "active"}],
    }
    assert netpath.route_table_for("subnet-1", [main, own])["RouteTableId"] == "rtb-own"
    assert netpath.route_table_for("subnet-2", [main, own])["RouteTableId"] == "rtb-main"
    assert netpath.route_target(netpath.default_route(own)) == "nat-1"
    blackhole = {"Routes": [{"DestinationCidrBlock": "0.0.0.0/0", "NatGatewayId": "nat-1", "State": "blackhole"}]}
    assert netpath.default_route(blackhole) is None


def _nacl(*entries: dict) -> dict:
    return {"NetworkAclId": "acl-1", "Entries": list(entries)}


def _entry(n: int, action: str, egress: bool, cidr: str = "0.0.0.0/0", proto: str = "-1", ports=None) -> dict:
    e = {"RuleNumber": n, "RuleAction": action, "Egress": egress, "CidrBlock": cidr, "Protocol": proto}
    if ports:
        e["PortRange"] = {"From": ports[0], "To": ports[1]}
    return e


def test_nacl_first_match_by_rule_number():
    acl = _nacl(
        _entry(200, "allow", False),
        _entry(100, "deny", False, "10.0.0.0/16", "6", (9098, 9098)),
        _entry(32767, "deny", False),
    )
    assert netpath.nacl_decision(acl, egress=False, port=9098, peer=SUBNET_A) == (False, 100)
    assert netpath.nacl_decision(acl, egress=False, port=9096, peer=SUBNET_A) == (True, 200)
    assert netpath.nacl_decision(None, egress=False, port=1, peer=SUBNET_A) == (True, None)
    assert netpath.nacl_decision(_nacl(), egress=True, port=443, peer=SUBNET_A) == (False, None)


def test_nacl_flow_checks_return_traffic():
    acl = _nacl(
        _entry(100, "allow", True),
        _entry(100, "allow", False, proto="6", ports=(9098, 9098)),  # no ephemeral inbound
    )
    reason = netpath.nacl_flow(acl, "subnet-1", 9098, SUBNET_A, initiator=True)
    assert "return traffic" in reason
    assert netpath.nacl_flow(acl, "subnet-1", 9098, SUBNET_A, initiator=False) == ""
