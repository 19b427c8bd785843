"""What ``create-vpc-endpoints`` shares between planning / applying and undoing: names, client tokens, the reads of
the VPC's endpoints and groups, and :class:`EndpointAction`, whose ``verify`` and ``rollback`` check and remove
exactly the endpoints and security group an apply recorded."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from esm_medic.aws import error_code, is_access_denied, is_not_found
from esm_medic.remediate.actions.vpc_dns import dns_attributes
from esm_medic.remediate.base import (
    INCIDENT_TAG,
    Action,
    ActionFailed,
    ActionRecord,
    RollbackResult,
    VerifyResult,
    failure_from,
    tags_for,
)

SERVICES = ("sts", "lambda", "secretsmanager")
PURPOSE_TAG = "esm-medic:purpose"
PURPOSE = "vpc-endpoints"
GONE_STATES = frozenset({"deleted", "deleting", "failed", "rejected", "expired"})
NEW_SG = "<security group created above>"


def service_name(region: str, svc: str) -> str:
    return f"com.amazonaws.{region}.{svc}"


def client_token(incident_id: str, action_id: str, svc: str) -> str:
    digest = hashlib.sha256(f"{incident_id}|{action_id}|{svc}".encode()).hexdigest()[:40]
    return f"esm-medic-{digest}"


def normalize_endpoint(ep: dict[str, Any]) -> dict[str, Any]:
    return {
        "VpcEndpointId": ep.get("VpcEndpointId"),
        "ServiceName": ep.get("ServiceName"),
        "VpcEndpointType": ep.get("VpcEndpointType"),
        "State": ep.get("State"),
        "PrivateDnsEnabled": bool(ep.get("PrivateDnsEnabled")),
        "SubnetIds": sorted(ep.get("SubnetIds") or []),
        "Groups": sorted(g.get("GroupId", "") for g in ep.get("Groups") or []),
    }


class EndpointAction(Action):
    """Reads, verify and rollback of the endpoint action (registered as ``create-vpc-endpoints``)."""

    @property
    def vpc_id(self) -> str:
        return str(self.params["vpc_id"])

    @property
    def description(self) -> str:
        return f"esm-medic {self.ctx.incident_id}"

    def _tags(self, name: str = "") -> list[dict[str, str]]:
        extra = {PURPOSE_TAG: PURPOSE}
        if name:
            extra["Name"] = name
        return tags_for(self.ctx.incident_id, **extra)

    # ------------------------------------------------------------------ reads
    def _vpc_dns(self) -> dict[str, bool] | None:
        return dns_attributes(self, self.vpc_id)

    def _endpoints(self) -> list[dict[str, Any]]:
        return self.read_all(
            "ec2", "describe_vpc_endpoints", "VpcEndpoints", Filters=[{"Name": "vpc-id", "Values": [self.vpc_id]}]
        )

    def _our_groups(self) -> list[dict[str, Any]]:
        return self.read_all(
            "ec2",
            "describe_security_groups",
            "SecurityGroups",
            Filters=[
                {"Name": "vpc-id", "Values": [self.vpc_id]},
                {"Name": f"tag:{INCIDENT_TAG}", "Values": [self.ctx.incident_id]},
                {"Name": f"tag:{PURPOSE_TAG}", "Values": [PURPOSE]},
            ],
        )

    def _group_rules(self, group_id: str) -> list[dict[str, Any]]:
        return self.read_all(
            "ec2",
            "describe_security_group_rules",
            "SecurityGroupRules",
            Filters=[{"Name": "group-id", "Values": [group_id]}],
        )

    def _private_zones(self) -> tuple[dict[str, str], str | None]:
        """name (with trailing dot) -> zone id of the private hosted zones associated with the VPC; or a warning."""
        try:
            zones = self.read_all(
                "route53",
                "list_hosted_zones_by_vpc",
                "HostedZoneSummaries",
                VPCId=self.vpc_id,
                VPCRegion=self.aws.region,
            )
        except ActionFailed as exc:
            if exc.missing_permission:
                return {}, (
                    "could not list the private hosted zones of the VPC (route53:ListHostedZonesByVPC denied); "
                    "a private-DNS conflict cannot be ruled out: a human must approve"
                )
            raise
        return {str(z.get("Name", "")).lower(): str(z.get("HostedZoneId", "")) for z in zones}, None

    # ------------------------------------------------------------------ verify
    def verify(self, record: ActionRecord) -> VerifyResult:
        ids = list(record.created.get("vpc_endpoint_ids", []))
        by_id = {e.get("VpcEndpointId"): e for e in self._endpoints()}
        problems, states = [], {}
        settling = 0
        for i in ids:
            e = by_id.get(i)
            state = str((e or {}).get("State", "missing")).lower()
            states[i] = state
            if e is None or state in GONE_STATES:
                problems.append(f"endpoint {i} is gone ({state})")
            elif state != "available":
                problems.append(f"endpoint {i} is {state}, not available yet")
                settling += state == "pending"
            elif not e.get("PrivateDnsEnabled"):
                problems.append(f"endpoint {i} has private DNS off")
        for sg_id in record.created.get("security_group_ids", []):
            sources = set(self.params["source_group_ids"])
            present = {
                (r.get("ReferencedGroupInfo") or {}).get("GroupId")
                for r in self._group_rules(sg_id)
                if not r.get("IsEgress") and r.get("FromPort") == 443
            }
            if not sources <= present:
                problems.append(f"{sg_id} does not admit 443 from {sorted(sources - present)}")
        return VerifyResult(
            ok=not problems,
            details={"endpoint_states": states},
            problems=problems,
            settling=bool(problems) and settling == len(problems),
        )

    # ------------------------------------------------------------------ rollback
    def rollback(self, record: ActionRecord) -> RollbackResult:
        settings = self.ctx.get_settings()
        ids = list(record.created.get("vpc_endpoint_ids", []))
        groups = list(record.created.get("security_group_ids", []))
        removed: dict[str, list[str]] = {}
        notes: list[str] = []
        live = {e.get("VpcEndpointId"): e for e in self._endpoints()}
        to_delete = [i for i in ids if i in live and str(live[i].get("State", "")).lower() not in GONE_STATES]
        for i in ids:
            if i not in to_delete:
                notes.append(f"{i} is already gone")
        if to_delete:
            resp = self.write("ec2", "delete_vpc_endpoints", VpcEndpointIds=to_delete)
            for item in resp.get("Unsuccessful") or []:
                code = str((item.get("Error") or {}).get("Code", ""))
                if not code.endswith("NotFound"):
                    raise ActionFailed(
                        f"could not delete {item.get('ResourceId')}: {code} {(item.get('Error') or {}).get('Message')}",
                        aws_code=code,
                    )
            removed["vpc_endpoint_ids"] = to_delete
        deadline = time.monotonic() + float(settings.endpoint_delete_timeout_seconds)
        while True:
            states = {e.get("VpcEndpointId"): str(e.get("State", "")).lower() for e in self._endpoints()}
            waiting = [i for i in ids if i in states and states[i] not in ("deleted", "failed", "rejected", "expired")]
            if not waiting:
                break
            if time.monotonic() >= deadline:
                raise ActionFailed(
                    f"endpoints {waiting} are still being deleted after "
                    f"{settings.endpoint_delete_timeout_seconds:.0f}s; their security group was kept: run the "
                    "rollback again later",
                    removed=removed,
                )
            self.ctx.wait(settings.poll_seconds)
        for sg_id in groups:
            if self._delete_group(sg_id, deadline, notes):
                removed.setdefault("security_group_ids", []).append(sg_id)
        return RollbackResult(changed=any(removed.values()), removed=removed, notes=notes)

    def _delete_group(self, sg_id: str, deadline: float, notes: list[str]) -> bool:
        while True:
            try:
                self.aws.call("ec2", "delete_security_group", GroupId=sg_id)
                return True
            except Exception as exc:
                code = error_code(exc)
                if is_not_found(exc) or code == "InvalidGroup.NotFound":
                    notes.append(f"{sg_id} is already gone")
                    return False
                if code == "DependencyViolation" and time.monotonic() < deadline:
                    self.ctx.wait(self.ctx.get_settings().poll_seconds)
                    continue
                if is_access_denied(exc) or getattr(exc, "response", None) is not None:
                    raise failure_from(exc, "ec2", "delete_security_group") from exc
                raise
