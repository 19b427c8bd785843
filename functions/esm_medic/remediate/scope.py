"""The ESM's effective network identity: the only network a fix may touch, whatever its parameters say.

An ESM's ENIs live in

- MSK: the cluster's client subnets, with the cluster's security groups (``kafka:DescribeClusterV2``);
- self-managed Kafka: the ``VPC_SUBNET`` / ``VPC_SECURITY_GROUP`` SourceAccessConfigurations;
- self-managed Kafka without them: no VPC at all (Lambda's own networking), so no network fix applies.

The VPC is the one those subnets (else those security groups) belong to. The broker ports come from the ESM's
configuration only: MSK by the auth mode in use (plus the public-access port when it is on), self-managed Kafka by
the bootstrap servers' ports. Remote-administration ports (SSH, RDP, ...) are never broker ports.

:func:`resolve` reads the live state; a :class:`NetworkScope` whose ``problems`` is not empty cannot be trusted and
every network action is refused against it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from esm_medic.aws import error_code, error_message
from esm_medic.esm import MSK, SELF_MANAGED, EsmConfig, auth_mode, broker_ports, msk_cluster_network

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws

#: ports that are never a Kafka listener: remote shells and desktops, whatever a bootstrap list says
ADMIN_PORTS = frozenset({22, 23, 3389, 5900, 5985, 5986})

#: IAM actions :func:`resolve` needs (the engine's role carries them)
PERMISSIONS = ("kafka:DescribeClusterV2", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups")


@dataclass(frozen=True)
class NetworkScope:
    source: str  # cluster | esm | internet | unknown
    vpc_id: str = ""
    subnet_ids: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    auth_mode: str = ""
    problems: tuple[str, ...] = ()

    @property
    def usable(self) -> bool:
        return not self.problems and self.source in ("cluster", "esm") and bool(self.vpc_id)

    def why_unusable(self) -> str:
        if self.problems:
            return "the ESM's network cannot be established: " + "; ".join(self.problems)
        if self.source == "internet":
            return "the ESM uses no VPC (self-managed Kafka without VPC_SUBNET / VPC_SECURITY_GROUP)"
        return "the ESM's VPC is unknown"

    def outside(self, kind: str, ids: Iterable[str]) -> list[str]:
        """The ids of ``kind`` (``sg`` | ``subnet`` | ``vpc``) that are not part of this network."""
        own = {"sg": self.security_group_ids, "subnet": self.subnet_ids, "vpc": (self.vpc_id,)}[kind]
        return [i for i in ids if i not in own]

    def bad_ports(self, ports: Iterable[int]) -> list[int]:
        return sorted({int(p) for p in ports if int(p) not in self.ports or int(p) in ADMIN_PORTS})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NetworkScope:
        return cls(
            source=str(d.get("source") or "unknown"),
            vpc_id=str(d.get("vpc_id") or ""),
            subnet_ids=tuple(d.get("subnet_ids") or ()),
            security_group_ids=tuple(d.get("security_group_ids") or ()),
            ports=tuple(int(p) for p in d.get("ports") or ()),
            auth_mode=str(d.get("auth_mode") or ""),
            problems=tuple(d.get("problems") or ()),
        )


def _why(exc: BaseException) -> str:
    return f"{error_code(exc) or type(exc).__name__}: {error_message(exc)}"


def resolve(aws: Aws, esm_item: Mapping[str, Any] | None) -> NetworkScope:
    """The live network identity of the ESM described by ``esm_item`` (a GetEventSourceMapping answer)."""
    if not esm_item:
        return NetworkScope("unknown", problems=("the ESM could not be read",))
    esm = EsmConfig.from_api(esm_item)
    cluster: dict[str, Any] | None = None
    problems: list[str] = []
    if esm.source_kind == MSK:
        source = "cluster"
        try:
            cluster = dict(
                aws.call("kafka", "describe_cluster_v2", ClusterArn=esm.cluster_arn).get("ClusterInfo") or {}
            )
        except Exception as exc:
            return NetworkScope(source, problems=(f"cannot read the cluster {esm.cluster_arn} ({_why(exc)})",))
        subnets, groups = msk_cluster_network(cluster)
    elif esm.source_kind == SELF_MANAGED:
        subnets, groups = esm.vpc_subnets, esm.vpc_security_groups
        if not subnets and not groups:
            return NetworkScope("internet", ports=_ports(esm, None))
        source = "esm"
    else:
        return NetworkScope("unknown", problems=(f"ESM {esm.uuid} is not a Kafka event source mapping",))
    if not groups:
        problems.append("the ESM has no security groups")
    vpcs: set[str] = set()
    try:
        if subnets:
            found = aws.call("ec2", "describe_subnets", SubnetIds=list(subnets)).get("Subnets") or []
            vpcs.update(str(s.get("VpcId") or "") for s in found)
        if not vpcs and groups:
            found = aws.call("ec2", "describe_security_groups", GroupIds=list(groups)).get("SecurityGroups") or []
            vpcs.update(str(g.get("VpcId") or "") for g in found)
    except Exception as exc:
        problems.append(f"cannot read the ESM's subnets / security groups ({_why(exc)})")
    vpcs.discard("")
    if len(vpcs) > 1:
        problems.append(f"the ESM's subnets span several VPCs ({', '.join(sorted(vpcs))})")
    elif not vpcs and not problems:
        problems.append("the VPC of the ESM's subnets / security groups cannot be found")
    return NetworkScope(
        source,
        vpc_id=next(iter(vpcs)) if len(vpcs) == 1 else "",
        subnet_ids=tuple(subnets),
        security_group_ids=tuple(groups),
        ports=_ports(esm, cluster),
        auth_mode=auth_mode(esm, cluster),
        problems=tuple(problems),
    )


def _ports(esm: EsmConfig, cluster: Mapping[str, Any] | None) -> tuple[int, ...]:
    ports = broker_ports(esm, auth_mode(esm, cluster), cluster)
    return tuple(p for p in ports if p not in ADMIN_PORTS)
