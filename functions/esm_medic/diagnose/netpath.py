"""Pure evaluation of VPC network rules over the dicts EC2 returns: security groups, NACLs, route tables.

No AWS calls here. The checks feed these functions what :mod:`esm_medic.diagnose.lookups` fetched.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

HTTPS = 443
#: a representative ephemeral port for return traffic through stateless NACLs
EPHEMERAL_PORT = 49152
#: a representative public AWS service address (what a NAT gateway connects to for sts / lambda)
PUBLIC_SERVICE = ipaddress.ip_network("52.94.0.10/32")
#: MSK broker ports of every auth mode (in-VPC and public), to spot a self rule on another mode's port
MSK_BROKER_PORTS = (9092, 9094, 9096, 9098, 9194, 9196, 9198)


def is_ip(host: str) -> bool:
    """Whether ``host`` is an IP address (a broker given by address needs no DNS)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=4096)
def net(cidr: str | None) -> IPNetwork | None:
    """A CIDR string as a network (None when empty or invalid). Memoised: a scan compares the same few CIDRs
    thousands of times."""
    if not cidr:
        return None
    try:
        return ipaddress.ip_network(str(cidr), strict=False)
    except ValueError:
        return None


@lru_cache(maxsize=16384)
def covers(rule_cidr: str | None, peer: IPNetwork) -> bool:
    n = net(rule_cidr)
    if n is None or n.version != peer.version:
        return False
    return peer.subnet_of(n)  # type: ignore[arg-type]


@lru_cache(maxsize=4096)
def _representative(peer: IPNetwork) -> IPNetwork:
    """One address of ``peer`` (its first host) as a /32 (/128) network."""
    addr: Any = peer.network_address if peer.num_addresses == 1 else next(iter(peer.hosts()), peer.network_address)
    return ipaddress.ip_network(f"{addr}/{addr.max_prefixlen}")


def perm_covers_port(perm: Mapping[str, Any], port: int) -> bool:
    proto = str(perm.get("IpProtocol", ""))
    if proto in ("-1", "all"):
        return True
    if proto not in ("tcp", "6"):
        return False
    lo, hi = perm.get("FromPort"), perm.get("ToPort")
    if lo is None or hi is None or int(lo) == -1:
        return True
    return int(lo) <= port <= int(hi)


def sg_rule_for(
    groups: Iterable[Mapping[str, Any]],
    *,
    egress: bool,
    port: int,
    peer_groups: Iterable[str] = (),
    peer_cidrs: Sequence[IPNetwork] = (),
) -> dict[str, Any] | None:
    """The first rule of ``groups`` that admits TCP ``port`` (inbound, or outbound when ``egress``) from / to a peer
    carrying one of ``peer_groups`` or living inside every one of ``peer_cidrs``; None when no rule does."""
    peers = set(peer_groups)
    for sg in groups:
        for perm in sg.get("IpPermissionsEgress" if egress else "IpPermissions") or []:
            if not perm_covers_port(perm, port):
                continue
            for pair in perm.get("UserIdGroupPairs") or []:
                gid = pair.get("GroupId")
                if gid in peers:
                    kind = "self" if gid == sg.get("GroupId") else "group"
                    return {"group_id": sg.get("GroupId"), "kind": kind, "peer": gid, "rule": _perm_text(perm)}
            if peer_cidrs:
                ranges = [str(r.get("CidrIp", "")) for r in perm.get("IpRanges") or []]
                ranges += [str(r.get("CidrIpv6", "")) for r in perm.get("Ipv6Ranges") or []]
                for rng in ranges:
                    if all(covers(rng, p) for p in peer_cidrs):
                        return {"group_id": sg.get("GroupId"), "kind": "cidr", "peer": rng, "rule": _perm_text(perm)}
    return None


def referenced_ports(groups: Iterable[Mapping[str, Any]], peer_groups: Iterable[str], *, egress: bool) -> list[int]:
    """MSK broker ports that rules of ``groups`` open to / from ``peer_groups`` (to spot a wrong-port self rule)."""
    peers = set(peer_groups)
    out: set[int] = set()
    for sg in groups:
        for perm in sg.get("IpPermissionsEgress" if egress else "IpPermissions") or []:
            if not any(p.get("GroupId") in peers for p in perm.get("UserIdGroupPairs") or []):
                continue
            out.update(p for p in MSK_BROKER_PORTS if perm_covers_port(perm, p))
    return sorted(out)


def _perm_text(perm: Mapping[str, Any]) -> str:
    proto = str(perm.get("IpProtocol", ""))
    if proto in ("-1", "all"):
        return "all traffic"
    lo, hi = perm.get("FromPort"), perm.get("ToPort")
    return f"{proto} {lo}" if lo == hi else f"{proto} {lo}-{hi}"


# ---------------------------------------------------------------------------------------------- routes
def route_table_for(subnet_id: str, tables: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The route table a subnet uses: its explicit association, else the VPC's main table."""
    main = None
    for t in tables:
        for a in t.get("Associations") or []:
            if a.get("SubnetId") == subnet_id:
                return t
            if a.get("Main"):
                main = t
    return main


def default_route(table: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The active 0.0.0.0/0 route of a table (None when there is none)."""
    for r in (table or {}).get("Routes") or []:
        if r.get("DestinationCidrBlock") == "0.0.0.0/0" and str(r.get("State", "active")) != "blackhole":
            return r
    return None


def route_target(route: Mapping[str, Any] | None) -> str:
    if not route:
        return ""
    for key in (
        "NatGatewayId",
        "GatewayId",
        "TransitGatewayId",
        "NetworkInterfaceId",
        "VpcPeeringConnectionId",
        "InstanceId",
        "LocalGatewayId",
        "CarrierGatewayId",
        "CoreNetworkArn",
    ):
        value = route.get(key)
        if value:
            return str(value)
    return ""


# ---------------------------------------------------------------------------------------------- NACLs
def nacl_for(subnet_id: str, nacls: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    default = None
    for n in nacls:
        for a in n.get("Associations") or []:
            if a.get("SubnetId") == subnet_id:
                return n
        if n.get("IsDefault"):
            default = n
    return default


def nacl_decision(
    nacl: Mapping[str, Any] | None, *, egress: bool, port: int, peer: IPNetwork
) -> tuple[bool, int | None]:
    """(allowed, deciding rule number) for TCP ``port`` to / from a representative address of ``peer``;
    first match by rule number wins, the implicit last rule denies. No NACL known -> allowed."""
    if nacl is None:
        return True, None
    point = _representative(peer)
    entries = sorted(
        (e for e in nacl.get("Entries") or [] if bool(e.get("Egress")) == egress),
        key=lambda e: int(e.get("RuleNumber", 32767)),
    )
    for e in entries:
        proto = str(e.get("Protocol", "-1"))
        if proto not in ("-1", "6", "tcp"):
            continue
        cidr = e.get("CidrBlock") or e.get("Ipv6CidrBlock")
        if not covers(cidr, point):
            continue
        pr = e.get("PortRange")
        if proto != "-1" and pr and not (int(pr.get("From", 0)) <= port <= int(pr.get("To", 65535))):
            continue
        return str(e.get("RuleAction", "deny")).lower() == "allow", int(e.get("RuleNumber", 32767))
    return False, None


def nacl_flow(nacl: Mapping[str, Any] | None, subnet_id: str, port: int, peer: IPNetwork, *, initiator: bool) -> str:
    """'' when the NACL of ``subnet_id`` passes a TCP flow on ``port`` with ``peer`` (this side opens the connection
    when ``initiator``) including the return traffic; else the reason."""
    nacl_id = (nacl or {}).get("NetworkAclId", "?")
    if initiator:
        ok, rule = nacl_decision(nacl, egress=True, port=port, peer=peer)
        if not ok:
            return f"{nacl_id} on {subnet_id} blocks outbound TCP {port} to {peer} (rule {rule or '*'})"
        ok, rule = nacl_decision(nacl, egress=False, port=EPHEMERAL_PORT, peer=peer)
        if not ok:
            return f"{nacl_id} on {subnet_id} blocks the inbound return traffic from {peer} (rule {rule or '*'})"
    else:
        ok, rule = nacl_decision(nacl, egress=False, port=port, peer=peer)
        if not ok:
            return f"{nacl_id} on {subnet_id} blocks inbound TCP {port} from {peer} (rule {rule or '*'})"
        ok, rule = nacl_decision(nacl, egress=True, port=EPHEMERAL_PORT, peer=peer)
        if not ok:
            return f"{nacl_id} on {subnet_id} blocks the outbound return traffic to {peer} (rule {rule or '*'})"
    return ""


__all__ = [
    "EPHEMERAL_PORT",
    "HTTPS",
    "MSK_BROKER_PORTS",
    "PUBLIC_SERVICE",
    "covers",
    "default_route",
    "nacl_decision",
    "nacl_flow",
    "nacl_for",
    "net",
    "perm_covers_port",
    "referenced_ports",
    "route_table_for",
    "route_target",
    "sg_rule_for",
]
