"""Everything one diagnosis derives about one ESM, computed lazily and once: its real network identity, the path
its ENIs have to STS / Lambda / Secrets Manager, its secrets and keys, its role and what that role may do.

The fact types (:class:`Identity`, :class:`ServicePath`, :class:`SecretInfo`, ...) live in
:mod:`esm_medic.diagnose.facts` and stay importable from here; this module keeps the one lazily computed fact set
per ESM that every check relies on.

Checks read these facts; the facts read AWS only through :class:`~esm_medic.diagnose.lookups.Lookups`, so a scan
shares every lookup between ESMs.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any

from esm_medic.catalogue import Entry, get_catalogue
from esm_medic.classify import Classification
from esm_medic.diagnose import grants, netpath
from esm_medic.diagnose.facts import (
    AWS_MANAGED_SECRET_KEY,
    EndpointView,
    Identity,
    SecretInfo,
    ServicePath,
    SubnetPath,
)
from esm_medic.diagnose.grants import PermissionResult, Verdict, role_name
from esm_medic.diagnose.lookups import Fetched, Lookups
from esm_medic.diagnose.permissions import (
    Requirement,
    arn_parts,
    destination_service,
    required_permissions,
)
from esm_medic.esm import (
    MSK,
    SASL_PLAIN,
    SASL_SCRAM_256,
    SASL_SCRAM_512,
    EsmConfig,
    auth_mode,
    broker_ports,
    msk_cluster_network,
)

_GONE_ENDPOINT_STATES = frozenset({"deleting", "deleted", "failed", "rejected", "expired"})


# ---------------------------------------------------------------------------------------------- context
class Context:
    """Lazily derived facts about one ESM for one diagnosis."""

    def __init__(self, lookups: Lookups, esm: EsmConfig, classification: Classification) -> None:
        self.lookups = lookups
        self.esm = esm
        self.classification = classification
        self.entry: Entry | None = get_catalogue().get(classification.entry) if classification.entry else None
        self.region = esm.region or lookups.aws.region
        self.partition = arn_parts(esm.esm_arn or esm.function_arn or esm.cluster_arn)[0] or "aws"

    # ------------------------------------------------------------------ cluster / identity
    @cached_property
    def cluster(self) -> Fetched[dict[str, Any]] | None:
        if self.esm.source_kind != MSK or not self.esm.cluster_arn:
            return None
        return self.lookups.cluster(self.esm.cluster_arn)

    @property
    def cluster_info(self) -> dict[str, Any] | None:
        c = self.cluster
        return c.value if c is not None and c.ok else None

    @cached_property
    def identity(self) -> Identity:
        esm = self.esm
        cluster = self.cluster_info
        failures: list[Fetched[Any]] = []
        if esm.source_kind == MSK:
            source = "cluster"
            if cluster is not None:
                subnet_ids, sg_ids = msk_cluster_network(cluster)
            else:
                subnet_ids, sg_ids = (), ()
                if self.cluster is not None and not self.cluster.not_found:
                    failures.append(self.cluster)
        elif esm.vpc_subnets or esm.vpc_security_groups:
            source, subnet_ids, sg_ids = "esm", esm.vpc_subnets, esm.vpc_security_groups
        else:
            source, subnet_ids, sg_ids = "internet", (), ()
        mode = auth_mode(esm, cluster)
        port_mode = SASL_SCRAM_512 if esm.source_kind == MSK and mode in (SASL_SCRAM_256, SASL_PLAIN) else mode
        ident = Identity(
            source=source,
            subnet_ids=list(subnet_ids),
            sg_ids=list(sg_ids),
            mode=mode,
            ports=broker_ports(esm, port_mode, cluster),
            provisioned=esm.provisioned,
            failures=failures,
        )
        if not ident.in_vpc:
            return ident
        for sid, f in self.lookups.subnets(subnet_ids).items():
            if f.ok and f.value is not None:
                ident.subnets[sid] = f.value
                vpc = str(f.value.get("VpcId") or "")
                if vpc and vpc not in ident.vpc_ids:
                    ident.vpc_ids.append(vpc)
            elif f.not_found:
                ident.missing_subnets.append(sid)
            else:
                ident.failures.append(f)
        for gid, f in self.lookups.security_groups(sg_ids).items():
            if f.ok and f.value is not None:
                ident.sgs[gid] = f.value
            elif f.not_found:
                ident.missing_sgs.append(gid)
            else:
                ident.failures.append(f)
        return ident

    # ------------------------------------------------------------------ service path
    @cached_property
    def service_path(self) -> ServicePath | None:
        """The path from each ENI subnet to sts / lambda (/ secretsmanager); None when none is needed (provisioned
        mode, or no VPC)."""
        ident = self.identity
        if not ident.in_vpc or ident.provisioned or not ident.vpc_id:
            return None
        services = ["sts", "lambda"] + (["secretsmanager"] if self.esm.secrets else [])
        dest = destination_service(self.esm.on_failure_destination) if self.esm.on_failure_destination else ""
        key = (
            "service-path",
            self.region,
            ident.vpc_id,
            tuple(sorted(ident.subnets)),
            tuple(ident.sg_ids),
            tuple(services),
            dest,
        )
        return self.lookups.derived(key, lambda: self._compute_service_path(services))

    def _compute_service_path(self, services: list[str]) -> ServicePath:
        ident = self.identity
        vpc = ident.vpc_id
        sp = ServicePath(vpc, services)
        rtbs = self.lookups.route_tables(vpc)
        nats = self.lookups.nat_gateways(vpc)
        vpces = self.lookups.vpc_endpoints(vpc)
        nacls = self.lookups.network_acls(vpc)
        dns = self.lookups.vpc_dns(vpc)
        sp.failures = [f for f in (rtbs, nats, vpces, nacls, dns) if not f.ok]
        sp.dns = dict(dns.value or {}) if dns.ok else {}
        endpoints = self._endpoint_views(vpces.value or [], services)
        sp.endpoints = endpoints
        sp.missing_services = [s for s in services if not endpoints.get(s)]
        for sid, subnet in ident.subnets.items():
            sp.subnets[sid] = self._subnet_path(sid, subnet, sp, rtbs.value or [], nats.value or [], nacls.value or [])
        return sp

    def service_name(self, service: str) -> str:
        return f"com.amazonaws.{self.region}.{service}"

    def _endpoint_views(self, vpces: list[dict[str, Any]], services: list[str]) -> dict[str, list[EndpointView]]:
        ident = self.identity
        out: dict[str, list[EndpointView]] = {}
        names = {self.service_name(s): s for s in services}
        dest = destination_service(self.esm.on_failure_destination) if self.esm.on_failure_destination else ""
        if dest in ("sqs", "sns", "s3"):
            names.setdefault(self.service_name(dest), dest)
        for ep in vpces:
            svc = names.get(str(ep.get("ServiceName") or ""))
            if svc is None:
                continue
            state = str(ep.get("State") or "available").lower()
            if state in _GONE_ENDPOINT_STATES:
                continue
            etype = str(ep.get("VpcEndpointType") or "Interface")
            group_ids = [str(g.get("GroupId")) for g in ep.get("Groups") or [] if g.get("GroupId")]
            subnet_ids = [str(s) for s in ep.get("SubnetIds") or []]
            ep_subnets = {k: f.value for k, f in self.lookups.subnets(subnet_ids).items() if f.ok and f.value}
            azs = sorted({str(s.get("AvailabilityZone") or "") for s in ep_subnets.values()})
            if etype == "Gateway":  # S3 / DynamoDB gateway endpoints: route-table based, no SG
                admits = True
            else:
                ep_sgs = [f.value for f in self.lookups.security_groups(group_ids).values() if f.ok and f.value]
                admits = (
                    netpath.sg_rule_for(
                        ep_sgs,
                        egress=False,
                        port=netpath.HTTPS,
                        peer_groups=ident.sg_ids,
                        peer_cidrs=ident.subnet_cidrs,
                    )
                    is not None
                )
            out.setdefault(svc, []).append(
                EndpointView(
                    endpoint_id=str(ep.get("VpcEndpointId") or "?"),
                    service=svc,
                    state=state,
                    private_dns=bool(ep.get("PrivateDnsEnabled")) or etype == "Gateway",
                    subnet_ids=subnet_ids,
                    group_ids=group_ids,
                    azs=azs,
                    admits_443=admits,
                    policy=ep.get("PolicyDocument"),
                )
            )
        return out

    def _subnet_path(
        self,
        sid: str,
        subnet: Mapping[str, Any],
        sp: ServicePath,
        rtbs: list[dict[str, Any]],
        nats: list[dict[str, Any]],
        nacls: list[dict[str, Any]],
    ) -> SubnetPath:
        ident = self.identity
        path = SubnetPath(sid, str(subnet.get("AvailabilityZone") or ""))
        route = netpath.default_route(netpath.route_table_for(sid, rtbs))
        target = netpath.route_target(route)
        path.route_target = target
        sgs = list(ident.sgs.values())
        nacl = netpath.nacl_for(sid, nacls)
        if target.startswith("nat-"):
            nat = next((n for n in nats if n.get("NatGatewayId") == target), None)
            nat_state = str((nat or {}).get("State") or "missing")
            nat_rt = netpath.default_route(netpath.route_table_for(str((nat or {}).get("SubnetId") or ""), rtbs))
            if nat is None or nat_state != "available":
                path.nat_reason = f"the 0.0.0.0/0 route goes to {target}, which is {nat_state}"
            elif str(nat.get("ConnectivityType") or "public") == "private":
                path.nat_reason = f"{target} is a private NAT gateway (no internet)"
            elif not netpath.route_target(nat_rt).startswith("igw-"):
                path.nat_reason = f"{target} is not in a public subnet (its subnet has no 0.0.0.0/0 route to an IGW)"
            else:
                egress = netpath.sg_rule_for(sgs, egress=True, port=netpath.HTTPS, peer_cidrs=[netpath.PUBLIC_SERVICE])
                path.egress_443_to_nat = egress is not None
                path.nacl_443_reason = netpath.nacl_flow(
                    nacl, sid, netpath.HTTPS, netpath.PUBLIC_SERVICE, initiator=True
                )
                if egress is None:
                    path.nat_cause, path.nat_reason = "no-egress-443", "the ENI security groups allow no outbound 443"
                elif path.nacl_443_reason:
                    path.nat_cause, path.nat_reason = "nacl-blocks-443", path.nacl_443_reason
                else:
                    path.nat_ok, path.nat_cause, path.nat_reason = True, "", f"0.0.0.0/0 -> {target} (available)"
        elif target.startswith("igw-"):
            path.nat_reason = (
                f"public subnet (0.0.0.0/0 -> {target}): an internet gateway is not enough, the ESM ENIs have no "
                "public IP"
            )
        elif target:
            path.nat_reason = f"0.0.0.0/0 -> {target}: a path esm-medic cannot follow (firewall, TGW, peering)"
        else:
            path.nat_reason = "no 0.0.0.0/0 route"
        if path.nat_ok:
            path.path = "nat"
            return path
        for svc in sp.services:
            problem = self._endpoint_problem(sid, subnet, svc, sp, nacls)
            if problem is not None:
                path.endpoint_problems[svc] = problem
        if not path.endpoint_problems:
            path.path = "endpoints"
            return path
        if target and not target.startswith(("igw-", "nat-")):
            path.path = "unverified"
            path.reason = path.nat_reason
            return path
        path.path = "none"
        services_without = [s for s, (c, _) in path.endpoint_problems.items() if c == "missing"]
        if services_without:
            path.cause = path.nat_cause  # no endpoint at all: the NAT side tells the story
        else:
            path.cause = next(iter(path.endpoint_problems.values()))[0]
        details = "; ".join(f"{s}: {r}" for s, (_, r) in path.endpoint_problems.items())
        path.reason = f"NAT path: {path.nat_reason}; endpoint path: {details}"
        return path

    def _endpoint_problem(
        self, sid: str, subnet: Mapping[str, Any], svc: str, sp: ServicePath, nacls: list[dict[str, Any]]
    ) -> tuple[str, str] | None:
        """None when subnet ``sid`` reaches ``svc`` through an interface endpoint; else (cause, reason).
        cause 'missing' means there is no endpoint for the service at all."""
        candidates = sp.endpoints.get(svc) or []
        if not candidates:
            return "missing", f"no interface endpoint for {svc}"
        ident = self.identity
        az = str(subnet.get("AvailabilityZone") or "")
        sub_net = netpath.net(subnet.get("CidrBlock"))
        problems: list[tuple[str, str]] = []
        for ep in candidates:
            if ep.state != "available":
                problems.append(("no-nat-or-endpoints", f"{ep.endpoint_id} is {ep.state}"))
                continue
            if not ep.private_dns:
                problems.append(("endpoint-sg-blocks-443", f"{ep.endpoint_id} has private DNS off"))
                continue
            if sp.dns and not (sp.dns.get("enableDnsSupport") and sp.dns.get("enableDnsHostnames")):
                problems.append(
                    (
                        "vpc-dns-disabled",
                        f"VPC DNS is off ({_dns_text(sp.dns)}): the private DNS name of {ep.endpoint_id} does not "
                        "resolve",
                    )
                )
                continue
            if az and ep.azs and az not in ep.azs:
                problems.append(("endpoint-az", f"{ep.endpoint_id} has no subnet in {az}"))
                continue
            if not ep.admits_443:
                problems.append(
                    ("endpoint-sg-blocks-443", f"the SGs of {ep.endpoint_id} do not admit 443 from the ENIs")
                )
                continue
            ep_subnets = {k: f.value for k, f in self.lookups.subnets(ep.subnet_ids).items() if f.ok and f.value}
            ep_cidrs = [n for n in (netpath.net(s.get("CidrBlock")) for s in ep_subnets.values()) if n is not None]
            if (
                netpath.sg_rule_for(
                    list(ident.sgs.values()),
                    egress=True,
                    port=netpath.HTTPS,
                    peer_groups=ep.group_ids,
                    peer_cidrs=ep_cidrs,
                )
                is None
            ):
                problems.append(("no-egress-443", f"the ENI SGs allow no outbound 443 to {ep.endpoint_id}"))
                continue
            reason = ""
            if ep_cidrs:
                reason = netpath.nacl_flow(
                    netpath.nacl_for(sid, nacls), sid, netpath.HTTPS, ep_cidrs[0], initiator=True
                )
            if not reason and sub_net is not None:
                for es in ep_subnets:
                    reason = netpath.nacl_flow(netpath.nacl_for(es, nacls), es, netpath.HTTPS, sub_net, initiator=False)
                    if reason:
                        break
            if reason:
                problems.append(("nacl-blocks-443", reason))
                continue
            return None
        order = ("vpc-dns-disabled", "endpoint-sg-blocks-443", "no-egress-443", "nacl-blocks-443")
        problems.sort(key=lambda p: order.index(p[0]) if p[0] in order else len(order))
        return problems[0][0], "; ".join(p[1] for p in problems)

    # ------------------------------------------------------------------ function / role
    @cached_property
    def function(self) -> Fetched[dict[str, Any]]:
        return self.lookups.function(self.esm.function_arn)

    @property
    def role_arn(self) -> str:
        f = self.function
        return str((f.value or {}).get("Role") or "") if f.ok else ""

    # ------------------------------------------------------------------ secrets
    @cached_property
    def secrets(self) -> list[SecretInfo]:
        out = []
        for sac_type, uri in self.esm.secrets.items():
            meta = self.lookups.secret_meta(uri)
            arn = str((meta.value or {}).get("ARN") or uri) if meta.ok else uri
            key_id = str((meta.value or {}).get("KmsKeyId") or "") if meta.ok else ""
            info = SecretInfo(sac_type, uri, meta, arn, key_id)
            if key_id and key_id != AWS_MANAGED_SECRET_KEY:
                info.key = self.lookups.kms_key(key_id)
            out.append(info)
        return out

    # ------------------------------------------------------------------ permissions
    @cached_property
    def requirements(self) -> list[Requirement]:
        return required_permissions(
            self.esm,
            mode=self.identity.mode,
            cluster=self.cluster_info,
            in_vpc=self.identity.in_vpc,
            secret_arns=[s.arn for s in self.secrets],
            key_arns=[s.customer_key_arn for s in self.secrets if s.customer_key_arn],
        )

    @cached_property
    def permissions(self) -> PermissionResult:
        """What the execution role may do, for every requirement (see :func:`esm_medic.diagnose.grants.evaluate`)."""
        return grants.evaluate(self.lookups, self.function, self.role_arn, self.requirements)


def _dns_text(dns: Mapping[str, bool]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(dns.items()))


__all__ = [
    "AWS_MANAGED_SECRET_KEY",
    "Context",
    "EndpointView",
    "Identity",
    "PermissionResult",
    "SecretInfo",
    "ServicePath",
    "SubnetPath",
    "Verdict",
    "role_name",
]
