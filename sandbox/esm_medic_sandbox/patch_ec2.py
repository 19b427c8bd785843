"""EC2 patches for the sandbox.

moto gap and what we do:

1. ``ModifyVpcEndpoint(PrivateDnsEnabled=...)`` is silently ignored (the endpoint keeps its old value), so a
   remediation that switches private DNS on or off could not be verified. We apply the flag to the endpoint after
   moto's own modification (only when the parameter is present in the request).
2. ``CreateVpcEndpoint``, ``ModifyVpcEndpoint`` and ``DeleteVpcEndpoints`` ignore ``DryRun=True`` and make the
   change (a remediation plan's dry-run probe created real endpoints). They now answer ``DryRunOperation`` without
   changing anything, as AWS does (moto's own ``error_on_dryrun``, the check its other EC2 calls make).
3. ``DescribeSecurityGroupRules`` dropped the description of rules that reference a security group (only CIDR rules
   kept theirs); it now returns ``Description`` for both.
4. Interface endpoints are ``available`` at once and ``deleted`` at once, and their network interfaces vanish with
   them. Like AWS, a new endpoint is now ``pending`` for :func:`timing.delay` seconds, a deleted one is ``deleting``
   for that long before ``deleted``, and its network interfaces linger half as long again
   (:data:`timing.ENI_LINGER_FACTOR`).
5. ``DeleteSecurityGroup`` never checked dependants. It now fails with ``DependencyViolation`` ("resource sg-... has
   a dependent object") while a network interface uses the group, including the lingering interfaces of a deleted
   endpoint.
"""

from __future__ import annotations

import threading
from typing import Any

from esm_medic_sandbox import timing

_APPLIED = False
_LOCK = threading.Lock()


def apply() -> None:
    global _APPLIED
    with _LOCK:
        if _APPLIED:
            return
        from moto.ec2.responses.vpcs import VPCs

        orig_modify = VPCs.modify_vpc_endpoint

        def modify_vpc_endpoint(self: Any) -> Any:
            result = orig_modify(self)
            if self._get_param("PrivateDnsEnabled") is not None:
                flag = self._get_bool_param("PrivateDnsEnabled")
                endpoint_id = self._get_param("VpcEndpointId")
                for endpoint in self.ec2_backend.describe_vpc_endpoints(vpc_end_point_ids=[endpoint_id]):
                    endpoint.private_dns_enabled = flag
            return result

        VPCs.modify_vpc_endpoint = modify_vpc_endpoint  # type: ignore[method-assign]

        def honour_dry_run(original: Any) -> Any:
            def call(self: Any) -> Any:
                self.error_on_dryrun()
                return original(self)

            return call

        for name in ("create_vpc_endpoint", "modify_vpc_endpoint", "delete_vpc_endpoints"):
            setattr(VPCs, name, honour_dry_run(getattr(VPCs, name)))
        _patch_rule_descriptions()
        _patch_endpoint_windows()
        _patch_dependency_violation()
        _APPLIED = True


def _patch_rule_descriptions() -> None:
    from moto.ec2.models.security_groups import SecurityGroupRule

    def description(self: Any) -> str | None:
        value = (self.ip_range or {}).get("Description") or (self.source_group or {}).get("Description")
        return str(value) if value else None

    SecurityGroupRule.description = property(description)  # type: ignore[method-assign,assignment]


# ---------------------------------------------------------------------------------------------- endpoints
def settle_endpoints(backend: Any) -> None:
    """Move every endpoint of ``backend`` whose window has ended to its next state (lazily, on each read)."""
    for endpoint in list(getattr(backend, "vpc_end_points", {}).values()):
        window = getattr(endpoint, "_esm_medic_window", None)
        if window is not None and not window.active:
            endpoint.state = window.final
            endpoint._esm_medic_window = None


def lingering_groups(backend: Any) -> set[str]:
    """Security groups used by the network interfaces of interface endpoints: live ones, and recently deleted ones
    whose interfaces linger."""
    out: set[str] = set()
    for endpoint in list(getattr(backend, "vpc_end_points", {}).values()):
        linger = getattr(endpoint, "_esm_medic_eni_window", None)
        live = str(getattr(endpoint, "state", "")).lower() not in ("deleted", "deleting", "failed", "rejected")
        interface = str(getattr(endpoint, "vpc_endpoint_type", "") or "").lower() == "interface"
        if (interface and live) or timing.active(linger) is not None:
            out.update(str(g) for g in getattr(endpoint, "security_group_ids", None) or [])
    return out


def _patch_endpoint_windows() -> None:
    from moto.ec2.models import EC2Backend

    orig_create = EC2Backend.create_vpc_endpoint
    orig_delete = EC2Backend.delete_vpc_endpoints
    orig_describe = EC2Backend.describe_vpc_endpoints

    def create_vpc_endpoint(self: Any, *args: Any, **kwargs: Any) -> Any:
        endpoint: Any = orig_create(self, *args, **kwargs)
        interface = str(getattr(endpoint, "vpc_endpoint_type", "") or "").lower() == "interface"
        window = timing.Window.start("pending", "available") if interface else None
        if window is not None and endpoint.state == "available":
            endpoint.state = "pending"
            endpoint._esm_medic_window = window
            timing.register_deadline(window.until)
        return endpoint

    def delete_vpc_endpoints(self: Any, vpce_ids: list[str] | None = None) -> Any:
        settle_endpoints(self)
        before = {i: getattr(self.vpc_end_points.get(i), "state", None) for i in vpce_ids or []}
        result = orig_delete(self, vpce_ids)
        for vpce_id, state in before.items():
            endpoint = self.vpc_end_points.get(vpce_id)
            if endpoint is None or state in (None, "deleted", "deleting") or endpoint.state != "deleted":
                continue
            window = timing.Window.start("deleting", "deleted")
            if window is None:
                continue
            endpoint.state = "deleting"
            endpoint._esm_medic_window = window
            endpoint._esm_medic_eni_window = timing.Window.start(
                "in-use", "available", factor=1 + timing.ENI_LINGER_FACTOR
            )
            timing.register_deadline(window.until)
        return result

    def describe_vpc_endpoints(self: Any, *args: Any, **kwargs: Any) -> Any:
        settle_endpoints(self)
        return orig_describe(self, *args, **kwargs)

    EC2Backend.create_vpc_endpoint = create_vpc_endpoint  # type: ignore[method-assign]
    EC2Backend.delete_vpc_endpoints = delete_vpc_endpoints  # type: ignore[method-assign]
    EC2Backend.describe_vpc_endpoints = describe_vpc_endpoints  # type: ignore[method-assign]


def _patch_dependency_violation() -> None:
    from moto.ec2.exceptions import DependencyViolationError
    from moto.ec2.models import EC2Backend

    orig_delete_group = EC2Backend.delete_security_group

    def delete_security_group(self: Any, name: str | None = None, group_id: str | None = None) -> Any:
        if group_id:
            in_use = group_id in lingering_groups(self) or any(
                group_id in {getattr(g, "id", g) for g in getattr(eni, "_group_set", None) or []}
                for eni in list(getattr(self, "enis", {}).values())
            )
            if in_use:
                raise DependencyViolationError(f"resource {group_id} has a dependent object")
        return orig_delete_group(self, name=name, group_id=group_id)

    EC2Backend.delete_security_group = delete_security_group  # type: ignore[method-assign]
