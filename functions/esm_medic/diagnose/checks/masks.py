"""Masking links between checks, declared as data: a failing *masker* makes the *masked* checks' verdicts
meaningless until it is fixed (VPC DNS off: no name resolves in the VPC, so a broker-name or endpoint-name failure
says nothing of its own). A masking cause outranks what it masks, and the plan re-checks the masked ones after it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mask:
    masker: str  # check id
    masked: tuple[str, ...]  # check ids
    cause: str = ""  # only when the masker fails with this cause ('' = any failure)


_PERMISSION_CHECKS = ("role-permissions", "kms-key", "on-failure-destination", "secret-exists", "secret-format")
_NETWORK_CHECKS = ("sg-self-inbound", "sg-self-outbound", "nacl", "subnet-capacity", "service-path", "vpc-endpoints")

MASKS: tuple[Mask, ...] = (
    # no name resolves inside the VPC: broker names and endpoint private-DNS names fail with it
    Mask("vpc-dns", ("broker-dns", "vpc-endpoints", "service-path"), "vpc-dns-disabled"),
    # no outbound 443: neither the NAT nor the endpoints are reachable, whatever they look like
    Mask("sg-egress-https", ("vpc-endpoints", "service-path", "on-failure-destination")),
    # a missing role (or function) fails every permission check
    Mask("role-trust", _PERMISSION_CHECKS, "role-deleted"),
    Mask("role-trust", _PERMISSION_CHECKS, "function-missing"),
    # a missing / deleted secret: its shape and key cannot be judged
    Mask("secret-exists", ("secret-format", "kms-key"), "key-disabled"),
    # the cluster is gone or broken: its network says nothing
    Mask("cluster-state", _NETWORK_CHECKS, "cluster-unhealthy"),
)


def masked_by(check: str, failing_causes: dict[str, list[str]]) -> list[str]:
    """The failing checks that mask ``check``; ``failing_causes`` maps each failing check to its causes."""
    out: list[str] = []
    for m in MASKS:
        hit = check in m.masked and m.masker in failing_causes and m.masker != check
        if hit and (not m.cause or m.cause in failing_causes[m.masker]):
            out.append(m.masker)
    return list(dict.fromkeys(out))


__all__ = ["MASKS", "Mask", "masked_by"]
