"""``create-vpc-endpoints``: PrivateLink for an on-demand ESM that has no NAT path to STS / Lambda / Secrets Manager.

Creates, for each requested service that is really missing, one interface endpoint with private DNS in the given
subnets (one per AZ), behind a dedicated security group that admits TCP 443 from the cluster / ESM security groups
only (its default allow-all egress is removed; security groups are stateful, endpoints need no egress rule).

Refuses, with the reason in the plan, when:

- the VPC's DNS attributes are off (private DNS needs both; ``enable-vpc-dns`` first),
- a subnet or source group is not in the VPC,
- an endpoint for the service already exists that esm-medic did not create (a second endpoint cannot take the
  service's DNS name; the existing one needs fixing instead), or a Route 53 private hosted zone for
  ``<svc>.<region>.amazonaws.com`` is associated with the VPC (private-DNS conflict).

A Route 53 read that is denied does not refuse: the plan warns and requires approval.

Blast radius: private DNS makes ``<svc>.<region>.amazonaws.com`` resolve to the endpoint for the *whole VPC*, and
the endpoint only admits the ESM's groups (never a CIDR). The plan lists the other network interfaces of the VPC
that would then be refused on 443 (their groups can be added as sources by a human) and requires approval.

Idempotency: an endpoint esm-medic manages with private DNS on already serves the service (no-op); resources
tagged with this incident (an earlier, interrupted attempt) are adopted, not re-created; ``ClientToken`` is derived
from (incident, action id, service) so a retried create returns the same endpoint (the action id makes a re-apply
after a rollback get a fresh token). Rollback deletes the endpoints, waits (bounded) until they are gone, then
deletes the security group.

Cost: interface endpoints are billed per endpoint per AZ per hour (``Settings.endpoint_hourly_usd``, default the
us-east-1 list price of 0.01 USD) plus data processing, which is not estimated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from esm_medic.aws import error_code
from esm_medic.remediate import guard
from esm_medic.remediate.actions.vpce_common import (
    GONE_STATES,
    NEW_SG,
    PURPOSE,
    PURPOSE_TAG,
    SERVICES,
    EndpointAction,
    client_token,
    normalize_endpoint,
    service_name,
)
from esm_medic.remediate.base import (
    INCIDENT_TAG,
    MANAGED_TAG,
    ActionFailed,
    ApplyResult,
    Plan,
    PlannedCall,
    failure_from,
    params_schema,
    tag_map,
)
from esm_medic.remediate.registry import register
from esm_medic.remediate.scope import NetworkScope

__all__ = [
    "GONE_STATES",
    "NEW_SG",
    "PURPOSE",
    "PURPOSE_TAG",
    "SERVICES",
    "CreateVpcEndpoints",
    "client_token",
    "normalize_endpoint",
    "service_name",
]


@register("create-vpc-endpoints")
class CreateVpcEndpoints(EndpointAction):
    title = "Interface VPC endpoints (PrivateLink) for STS / Lambda / Secrets Manager"
    schema: ClassVar[dict[str, Any]] = params_schema(
        ["vpc_id", "subnet_ids", "services", "source_group_ids"],
        {
            "vpc_id": {"type": "string", "pattern": "^vpc-[0-9a-f]{8,17}$"},
            "subnet_ids": {
                "type": "array",
                "minItems": 1,
                "maxItems": 6,
                "uniqueItems": True,
                "items": {"type": "string", "pattern": "^subnet-[0-9a-f]{8,17}$"},
            },
            "services": {
                "type": "array",
                "minItems": 1,
                "maxItems": len(SERVICES),
                "uniqueItems": True,
                "items": {"enum": list(SERVICES)},
            },
            "source_group_ids": {
                "type": "array",
                "minItems": 1,
                "maxItems": 5,
                "uniqueItems": True,
                "items": {"type": "string", "pattern": "^sg-[0-9a-f]{8,17}$"},
            },
        },
    )
    permissions = (
        "ec2:DescribeVpcAttribute",
        "ec2:DescribeSubnets",
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeSecurityGroupRules",
        "ec2:DescribeVpcEndpoints",
        "ec2:DescribeNetworkInterfaces",
        "route53:ListHostedZonesByVPC",
        "ec2:CreateSecurityGroup",
        "ec2:CreateTags",
        "ec2:AuthorizeSecurityGroupIngress",
        "ec2:RevokeSecurityGroupEgress",
        "ec2:CreateVpcEndpoint",
        "route53:AssociateVPCWithHostedZone",
        "ec2:DeleteVpcEndpoints",
        "ec2:DeleteSecurityGroup",
    )
    implied_permissions: ClassVar[dict[str, str]] = {
        "ec2:CreateTags": "TagSpecifications on CreateSecurityGroup / CreateVpcEndpoint / authorize are authorized "
        "as ec2:CreateTags",
        "route53:AssociateVPCWithHostedZone": "private DNS on an interface endpoint: AWS associates the service's "
        "private hosted zone with the VPC on the caller's behalf (dependent action of ec2:CreateVpcEndpoint)",
    }
    default_safety = "approve"
    creates_resources: ClassVar[dict[str, str]] = {
        "vpc-endpoint": "tags esm-medic:managed=true, esm-medic:incident=<id>, esm-medic:purpose=vpc-endpoints",
        "security-group": "esm-medic-vpce-<incident id>, same tags; ingress 443 from the source groups only",
    }
    restart_polling = True
    step = "sts"
    network_bound = True

    def check_scope(self, scope: NetworkScope) -> list[str]:
        problems = []
        if scope.outside("vpc", [self.vpc_id]):
            problems.append(f"{self.vpc_id} is not the ESM's VPC ({scope.vpc_id})")
        subnets = scope.outside("subnet", self.params["subnet_ids"])
        if subnets:
            problems.append(f"subnets {subnets} are not the ESM's subnets ({', '.join(scope.subnet_ids)})")
        groups = scope.outside("sg", self.params["source_group_ids"])
        if groups:
            problems.append(
                f"source groups {groups} are not the ESM's security groups ({', '.join(scope.security_group_ids)})"
            )
        return problems

    # ------------------------------------------------------------------ plan
    def plan(self) -> Plan:
        region = self.aws.region
        services = list(self.params["services"])
        plan = self.new_plan(f"Interface endpoints for {', '.join(services)} in {self.vpc_id}")
        plan.scopes = [("vpc", self.vpc_id)]
        if self.refuse_outside_scope(plan):
            return self.finish_plan(plan)
        dns = self._vpc_dns()
        if dns is None:
            plan.refused = f"VPC {self.vpc_id} does not exist"
            return self.finish_plan(plan)
        if not all(dns.values()):
            off = [k for k, v in dns.items() if not v]
            plan.refused = (
                f"private DNS needs enableDnsSupport and enableDnsHostnames on {self.vpc_id}; off: {', '.join(off)} "
                "(apply enable-vpc-dns first)"
            )
            return self.finish_plan(plan)
        try:
            subnets = self.read("ec2", "describe_subnets", SubnetIds=list(self.params["subnet_ids"]))["Subnets"]
            groups = self.read("ec2", "describe_security_groups", GroupIds=list(self.params["source_group_ids"]))[
                "SecurityGroups"
            ]
        except ActionFailed as exc:
            if exc.aws_code.endswith("NotFound") or exc.aws_code.endswith("Malformed"):
                plan.refused = f"a subnet or security group does not exist: {exc.message}"
                return self.finish_plan(plan)
            raise
        by_id = {s["SubnetId"]: s for s in subnets}
        chosen: dict[str, str] = {}  # AZ -> subnet
        for sid in self.params["subnet_ids"]:
            s = by_id.get(sid)
            if s is None or s.get("VpcId") != self.vpc_id:
                plan.refused = f"subnet {sid} is not in {self.vpc_id}"
                return self.finish_plan(plan)
            az = str(s.get("AvailabilityZone"))
            if az in chosen:
                plan.warnings.append(f"{sid} is a second subnet in {az}; using {chosen[az]} (one subnet per AZ)")
                continue
            chosen[az] = sid
        outside = [g["GroupId"] for g in groups if g.get("VpcId") != self.vpc_id]
        if outside:
            plan.refused = f"source security groups {outside} are not in {self.vpc_id}"
            return self.finish_plan(plan)
        subnet_ids = list(chosen.values())

        endpoints = self._endpoints()
        active = [e for e in endpoints if str(e.get("State", "")).lower() not in GONE_STATES]
        zones, zone_warning = self._private_zones()
        if zone_warning:
            plan.warnings.append(zone_warning)
            plan.requires_approval = True
        plan.before = {
            "vpc_id": self.vpc_id,
            "vpc_dns": dns,
            "endpoints": sorted((normalize_endpoint(e) for e in active), key=lambda e: str(e["VpcEndpointId"])),
        }

        to_create: list[str] = []
        conflicts: list[str] = []
        for svc in services:
            name = service_name(region, svc)
            eps = [e for e in active if e.get("ServiceName") == name]
            ours = [e for e in eps if tag_map(e.get("Tags")).get(INCIDENT_TAG) == self.ctx.incident_id]
            if ours:
                ids = [str(e["VpcEndpointId"]) for e in ours]
                plan.adopted.setdefault("vpc_endpoint_ids", []).extend(ids)
                plan.diff.append(f"  {svc}: {', '.join(ids)} already created for this incident")
                continue
            managed = [
                e
                for e in eps
                if tag_map(e.get("Tags")).get(MANAGED_TAG) == "true"
                and e.get("PrivateDnsEnabled")
                and e.get("VpcEndpointType") == "Interface"
            ]
            if managed:
                plan.diff.append(f"  {svc}: already served by {managed[0]['VpcEndpointId']} (esm-medic, private DNS)")
                continue
            if eps:
                e = eps[0]
                conflicts.append(
                    f"{svc}: endpoint {e['VpcEndpointId']} for {name} already exists in {self.vpc_id} (private DNS "
                    f"{'on' if e.get('PrivateDnsEnabled') else 'off'}); a second endpoint cannot own the service's "
                    "DNS name: fix the existing endpoint's subnets / security group / policy instead"
                )
                continue
            zone = f"{svc}.{region}.amazonaws.com."
            if zone in zones:
                conflicts.append(
                    f"{svc}: private hosted zone {zone} ({zones[zone]}) is associated with {self.vpc_id}; an "
                    "endpoint's private DNS would conflict with it"
                )
                continue
            to_create.append(svc)
        if conflicts:
            plan.refused = "private-DNS conflict: " + "; ".join(conflicts)
            return self.finish_plan(plan)

        sources = list(self.params["source_group_ids"])
        if to_create:
            self._blast_radius(plan, to_create, sources)
        our_groups = self._our_groups()
        sg_id = str(our_groups[0]["GroupId"]) if our_groups else ""
        if sg_id:
            plan.adopted.setdefault("security_group_ids", []).append(sg_id)
            guard.admit(sg_id)
        plan.state = {"to_create": to_create, "subnet_ids": subnet_ids, "sg_id": sg_id, "sources": sources}
        if not to_create:
            return self.finish_plan(plan)

        sg_name = f"esm-medic-vpce-{self.ctx.incident_id}"
        if sg_id:
            plan.diff.append(f"  security group {sg_id} ({sg_name}) already created for this incident")
            present = {
                (r.get("ReferencedGroupInfo") or {}).get("GroupId")
                for r in self._group_rules(sg_id)
                if not r.get("IsEgress") and r.get("FromPort") == 443 and r.get("IpProtocol") in ("tcp", "6")
            }
            missing_sources = [g for g in sources if g not in present]
            plan.state["missing_sources"] = missing_sources
            if missing_sources:
                call = self._authorize_call(sg_id, missing_sources)
                self.dry_run(call, plan, invoke=lambda: self._authorize(sg_id, missing_sources, dry_run=True))
                plan.calls.append(call)
        else:
            plan.state["missing_sources"] = sources
            create = PlannedCall(
                "ec2",
                "create_security_group",
                {
                    "GroupName": sg_name,
                    "Description": f"esm-medic {self.ctx.incident_id}: VPC endpoints, 443 from the ESM groups",
                    "VpcId": self.vpc_id,
                    "TagSpecifications": [{"ResourceType": "security-group", "Tags": self._tags(sg_name)}],
                },
            )
            self.dry_run(create, plan)
            plan.calls.append(create)
            plan.calls.append(
                PlannedCall(
                    "ec2",
                    "revoke_security_group_egress",
                    {"GroupId": NEW_SG, "SecurityGroupRuleIds": ["<its default allow-all egress rule(s)>"]},
                    dry_run="skipped",
                    note="removes the default 0.0.0.0/0 egress of the new group; endpoints need no egress",
                )
            )
            call = self._authorize_call(NEW_SG, sources)
            call.dry_run, call.note = "skipped", "the group does not exist before the call above"
            plan.calls.append(call)
            plan.diff.append(f"+ security group {sg_name} in {self.vpc_id} (tagged esm-medic:managed)")
            plan.diff.append("-   its default egress 0.0.0.0/0 (all traffic)")
        for g in plan.state["missing_sources"]:
            plan.diff.append(f'+   ingress tcp/443 from {g}  "{self.description}"')

        rate = float(self.ctx.get_settings().endpoint_hourly_usd)
        hours = int(self.ctx.get_settings().hours_per_month)
        per_service = {}
        for svc in to_create:
            name = service_name(region, svc)
            call = PlannedCall(
                "ec2",
                "create_vpc_endpoint",
                {
                    "VpcId": self.vpc_id,
                    "ServiceName": name,
                    "VpcEndpointType": "Interface",
                    "SubnetIds": subnet_ids,
                    "SecurityGroupIds": [sg_id or NEW_SG],
                    "PrivateDnsEnabled": True,
                    "ClientToken": client_token(self.ctx.incident_id, self.ctx.action_id or "plan", svc),
                    "TagSpecifications": [{"ResourceType": "vpc-endpoint", "Tags": self._tags(f"esm-medic {svc}")}],
                },
            )
            probe: dict[str, Any] = dict(call.params, SecurityGroupIds=[sg_id] if sg_id else sources[:1])
            probe.pop("ClientToken", None)
            self.dry_run(call, plan, invoke=self._probe_endpoint(probe))
            if not sg_id:
                call.note = (
                    call.note + "; " if call.note else ""
                ) + "probed with a source group in place of the new one"
            plan.calls.append(call)
            monthly = round(len(subnet_ids) * rate * hours, 2)
            per_service[svc] = {"endpoints_azs": len(subnet_ids), "monthly_usd": monthly}
            plan.diff.append(
                f"+ interface endpoint {name} in {', '.join(subnet_ids)}, private DNS on  (~{monthly:.2f} USD/month)"
            )
        plan.cost = {
            "currency": "USD",
            "hourly_rate_per_endpoint_az": rate,
            "hours_per_month": hours,
            "per_service": per_service,
            "monthly_total": round(sum(v["monthly_usd"] for v in per_service.values()), 2),
            "note": "hourly endpoint charge only; data processing per GB is extra",
        }
        return self.finish_plan(plan)

    def _probe_endpoint(self, params: dict[str, Any]) -> Callable[[], Any]:
        return lambda: self.aws.call("ec2", "create_vpc_endpoint", DryRun=True, **params)

    def _blast_radius(self, plan: Plan, services: list[str], sources: list[str]) -> None:
        """Warn about the VPC's other network interfaces, which private DNS would send to an endpoint that refuses
        them."""
        try:
            enis = self.read_all(
                "ec2",
                "describe_network_interfaces",
                "NetworkInterfaces",
                Filters=[{"Name": "vpc-id", "Values": [self.vpc_id]}],
            )
        except ActionFailed as exc:
            plan.warnings.append(f"could not list the VPC's network interfaces ({exc.aws_code}): blast radius unknown")
            plan.requires_approval = True
            return
        others = [
            e
            for e in enis
            if e.get("InterfaceType") not in ("vpc_endpoint", "nat_gateway")
            and not {g.get("GroupId") for g in e.get("Groups") or []} & set(sources)
        ]
        if not others:
            return
        examples = ", ".join(
            f"{e.get('NetworkInterfaceId')} ({'/'.join(g.get('GroupId', '') for g in e.get('Groups') or [])})"
            for e in others[:5]
        )
        names = ", ".join(f"{s}.{self.aws.region}.amazonaws.com" for s in services)
        plan.warnings.append(
            f"private DNS makes {names} resolve to the new endpoints for the whole VPC; {len(others)} other network "
            f"interface(s) in {self.vpc_id} without the source groups would be refused on 443 (e.g. {examples}); "
            "add their groups as sources if they call these services"
        )
        plan.requires_approval = True

    def _authorize_call(self, sg_id: str, sources: list[str]) -> PlannedCall:
        return PlannedCall(
            "ec2",
            guard.AUTHORIZE_OPERATIONS[0],
            {
                "GroupId": sg_id,
                "IpPermissions": [guard.build_permission(443, sources, self.description)],
                "TagSpecifications": [{"ResourceType": "security-group-rule", "Tags": self._tags()}],
            },
        )

    def _authorize(self, sg_id: str, sources: list[str], dry_run: bool = False) -> dict[str, Any]:
        return guard.authorize(
            self.aws,
            "ingress",
            sg_id,
            [guard.build_permission(443, sources, self.description)],
            tags=self._tags(),
            dry_run=dry_run,
            allowed_group_ids=sources,
        )

    # ------------------------------------------------------------------ apply
    def apply(self, plan: Plan) -> ApplyResult:
        for kind, ids in plan.adopted.items():
            for rid in ids:
                self.add_created(kind, rid)
        state = plan.state
        to_create = list(state.get("to_create") or [])
        if not to_create:
            return self.applied(plan, changed=False, after=dict(plan.before))
        sg_id = str(state.get("sg_id") or "")
        changed = False
        if not sg_id:
            name = f"esm-medic-vpce-{self.ctx.incident_id}"
            resp = self.write(
                "ec2",
                "create_security_group",
                GroupName=name,
                Description=f"esm-medic {self.ctx.incident_id}: VPC endpoints, 443 from the ESM groups",
                VpcId=self.vpc_id,
                TagSpecifications=[{"ResourceType": "security-group", "Tags": self._tags(name)}],
            )
            sg_id = str(resp["GroupId"])
            self.add_created("security_group_ids", sg_id)
            guard.admit(sg_id)
            changed = True
            default_egress = [
                str(r["SecurityGroupRuleId"])
                for r in self._group_rules(sg_id)
                if r.get("IsEgress") and (r.get("CidrIpv4") == "0.0.0.0/0" or r.get("CidrIpv6") == "::/0")
            ]
            if default_egress:
                self.write("ec2", "revoke_security_group_egress", GroupId=sg_id, SecurityGroupRuleIds=default_egress)
        missing_sources = list(state.get("missing_sources") or [])
        if missing_sources:
            try:
                resp = self._authorize(sg_id, missing_sources)
            except Exception as exc:
                if getattr(exc, "response", None) is None:
                    raise
                if error_code(exc) != "InvalidPermission.Duplicate":
                    raise failure_from(exc, "ec2", guard.AUTHORIZE_OPERATIONS[0]) from exc
                resp = {}
            for r in resp.get("SecurityGroupRules") or []:
                self.add_created("ingress_rule_ids", str(r.get("SecurityGroupRuleId")))
            changed = True
        region = self.aws.region
        for svc in to_create:
            ep_id = self._create_endpoint(svc, region, sg_id, list(state["subnet_ids"]))
            self.add_created("vpc_endpoint_ids", ep_id)
            changed = True
        made = set(self.created.get("vpc_endpoint_ids", []))
        after = [normalize_endpoint(e) for e in self._endpoints() if e.get("VpcEndpointId") in made]
        after_state = {"vpc_id": self.vpc_id, "endpoints": after, "security_group_ids": [sg_id]}
        return self.applied(plan, changed=changed, after=after_state)

    def _create_endpoint(self, svc: str, region: str, sg_id: str, subnet_ids: list[str]) -> str:
        name = service_name(region, svc)
        try:
            resp = self.write(
                "ec2",
                "create_vpc_endpoint",
                what=f"create the {svc} endpoint",
                VpcId=self.vpc_id,
                ServiceName=name,
                VpcEndpointType="Interface",
                SubnetIds=subnet_ids,
                SecurityGroupIds=[sg_id],
                PrivateDnsEnabled=True,
                ClientToken=client_token(self.ctx.incident_id, self.ctx.action_id or "apply", svc),
                TagSpecifications=[{"ResourceType": "vpc-endpoint", "Tags": self._tags(f"esm-medic {svc}")}],
            )
        except ActionFailed as exc:
            if exc.missing_permission or exc.throttled:
                raise
            # "already exists" / idempotency mismatch / DNS conflict: adopt ours if a retry already made it
            for e in self._endpoints():
                if (
                    e.get("ServiceName") == name
                    and str(e.get("State", "")).lower() not in GONE_STATES
                    and tag_map(e.get("Tags")).get(INCIDENT_TAG) == self.ctx.incident_id
                ):
                    return str(e["VpcEndpointId"])
            raise
        return str(resp["VpcEndpoint"]["VpcEndpointId"])
