"""The fact types a diagnosis derives about one ESM (computed by :class:`~esm_medic.diagnose.context.Context`):
its network identity, its path to AWS services per subnet, and its secrets with their keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from esm_medic.diagnose import netpath
from esm_medic.diagnose.lookups import Fetched
from esm_medic.models import NetworkIdentity

AWS_MANAGED_SECRET_KEY = "alias/aws/secretsmanager"


# ---------------------------------------------------------------------------------------------- identity
@dataclass
class Identity:
    """Where the ESM's ENIs live: MSK -> the cluster's client subnets and SGs; self-managed -> VPC_SUBNET /
    VPC_SECURITY_GROUP; self-managed without them -> the internet (Lambda-managed networking)."""

    source: str  # cluster | esm | internet
    subnet_ids: list[str] = field(default_factory=list)
    sg_ids: list[str] = field(default_factory=list)
    subnets: dict[str, dict[str, Any]] = field(default_factory=dict)
    sgs: dict[str, dict[str, Any]] = field(default_factory=dict)
    missing_subnets: list[str] = field(default_factory=list)
    missing_sgs: list[str] = field(default_factory=list)
    failures: list[Fetched[Any]] = field(default_factory=list)  # reads that failed (denied, throttled, ...)
    vpc_ids: list[str] = field(default_factory=list)
    mode: str = ""
    ports: tuple[int, ...] = ()
    provisioned: bool = False

    @property
    def in_vpc(self) -> bool:
        return self.source in ("cluster", "esm")

    @property
    def vpc_id(self) -> str:
        return self.vpc_ids[0] if self.vpc_ids else ""

    @property
    def subnet_cidrs(self) -> list[netpath.IPNetwork]:
        return [n for n in (netpath.net(s.get("CidrBlock")) for s in self.subnets.values()) if n is not None]

    def subnets_per_az(self) -> list[str]:
        """One ENI subnet per availability zone (the first by id), for endpoint creation."""
        by_az: dict[str, str] = {}
        for sid in sorted(self.subnets):
            az = str(self.subnets[sid].get("AvailabilityZone") or sid)
            by_az.setdefault(az, sid)
        return [by_az[az] for az in sorted(by_az)]

    def to_model(self) -> NetworkIdentity:
        return NetworkIdentity(
            source=self.source,
            vpc_id=self.vpc_id,
            subnets=list(self.subnet_ids),
            security_groups=list(self.sg_ids),
            auth_mode=self.mode,
            ports=list(self.ports),
            provisioned=self.provisioned,
        )


# ---------------------------------------------------------------------------------------------- service path
@dataclass
class EndpointView:
    endpoint_id: str
    service: str
    state: str
    private_dns: bool
    subnet_ids: list[str]
    group_ids: list[str]
    azs: list[str]
    admits_443: bool
    policy: Any = None


@dataclass
class SubnetPath:
    subnet_id: str
    az: str
    route_target: str = ""  # 0.0.0.0/0 target: nat-…, igw-…, tgw-…, '' (none)
    nat_ok: bool = False
    nat_cause: str = "no-nat-or-endpoints"
    nat_reason: str = ""
    egress_443_to_nat: bool | None = None
    nacl_443_reason: str = ""
    endpoint_problems: dict[str, tuple[str, str]] = field(default_factory=dict)  # service -> (cause, reason)
    path: str = "none"  # nat | endpoints | unverified | none
    cause: str = ""  # root-cause hint when path is none
    reason: str = ""


@dataclass
class ServicePath:
    vpc_id: str
    services: list[str]
    subnets: dict[str, SubnetPath] = field(default_factory=dict)
    endpoints: dict[str, list[EndpointView]] = field(default_factory=dict)  # service -> endpoints in the VPC
    missing_services: list[str] = field(default_factory=list)
    dns: dict[str, bool] = field(default_factory=dict)
    failures: list[Fetched[Any]] = field(default_factory=list)

    @property
    def relies_on_endpoints(self) -> bool:
        return any(not p.nat_ok for p in self.subnets.values())


# ---------------------------------------------------------------------------------------------- secrets
@dataclass
class SecretInfo:
    sac_type: str
    uri: str  # as written in SourceAccessConfigurations
    meta: Fetched[dict[str, Any]]
    arn: str  # full ARN when DescribeSecret worked, else the URI
    key_id: str  # KmsKeyId ('' = the AWS managed aws/secretsmanager key)
    key: Fetched[dict[str, Any]] | None = None  # DescribeKey, for customer-managed keys

    @property
    def customer_key_arn(self) -> str:
        if not self.key_id or self.key_id == AWS_MANAGED_SECRET_KEY:
            return ""
        if self.key is not None and self.key.ok and self.key.value:
            if self.key.value.get("KeyManager") == "AWS":
                return ""
            return str(self.key.value.get("Arn") or self.key_id)
        return self.key_id if self.key_id.startswith("arn:") else ""
