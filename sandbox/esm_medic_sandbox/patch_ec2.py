"""EC2 patches for the sandbox.

moto gap and what we do:

1. ``ModifyVpcEndpoint(PrivateDnsEnabled=...)`` is silently ignored (the endpoint keeps its old value), so a
   remediation that switches private DNS on or off could not be verified. We apply the flag to the endpoint after
   moto's own modification (only when the parameter is present in the request).
2. ``CreateVpcEndpoint``, ``ModifyVpcEndpoint`` and ``DeleteVpcEndpoints`` ignore ``DryRun=True`` and make the
   change (a remediation plan's dry-run probe created real endpoints). They now answer ``DryRunOperation`` without
   changing anything, as AWS does (moto's own ``error_on_dryrun``, the check its other EC2 calls make).
"""

from __future__ import annotations

import threading
from typing import Any

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
        _APPLIED = True
