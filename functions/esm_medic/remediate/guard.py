"""The one door through which esm-medic adds a security-group rule. It never lets a CIDR through.

Every ``AuthorizeSecurityGroupIngress`` / ``AuthorizeSecurityGroupEgress`` call in the remediation package goes
through :func:`authorize` (a meta-test checks that no other module names those operations). Two layers:

1. :func:`check_permissions` validates the ``IpPermissions`` this code built: TCP only, one port per permission,
   only ``UserIdGroupPairs`` naming security groups (``sg-…``) with an optional description. Any ``IpRanges``,
   ``Ipv6Ranges`` or ``PrefixListIds`` key, even empty, any CIDR-looking text, any protocol ``-1`` (all traffic),
   any port range or peering / cross-account pair raises :class:`CidrRuleRejected`.
2. :func:`install_hook` registers the same check on the adapter's EC2 client (botocore ``before-parameter-build``)
   so that an authorize call made by anything through that adapter is refused before it is even signed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from esm_medic.remediate.base import CidrRuleRejected

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws

FORBIDDEN_KEYS = frozenset({"IpRanges", "Ipv6Ranges", "PrefixListIds", "CidrIp", "CidrIpv6", "CidrIpv4"})
ALLOWED_PERMISSION_KEYS = frozenset({"IpProtocol", "FromPort", "ToPort", "UserIdGroupPairs"})
ALLOWED_PAIR_KEYS = frozenset({"GroupId", "Description"})
AUTHORIZE_OPERATIONS = ("authorize_security_group_ingress", "authorize_security_group_egress")
_GROUP_ID = re.compile(r"^sg-[0-9a-f]{8,17}$")
_CIDRISH = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}/\d{1,2}|[0-9a-f:]*::[0-9a-f:]*/\d{1,3}|\bpl-[0-9a-f]+", re.IGNORECASE)
_DESCRIPTION_OK = re.compile(r"^[A-Za-z0-9. _\-:/()#,@\[\]+=&;{}!$*]{0,255}$")
_HOOK_ATTR = "_esm_medic_sg_guard"


def check_permissions(permissions: Any, *, expect_group_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Validate IpPermissions built by esm-medic; return them unchanged or raise CidrRuleRejected."""
    if not isinstance(permissions, list) or not permissions:
        raise CidrRuleRejected("IpPermissions must be a non-empty list")
    allowed_groups = set(expect_group_ids) if expect_group_ids is not None else None
    for i, perm in enumerate(permissions):
        where = f"IpPermissions[{i}]"
        if not isinstance(perm, Mapping):
            raise CidrRuleRejected(f"{where} must be an object")
        forbidden = FORBIDDEN_KEYS.intersection(perm)
        if forbidden:
            raise CidrRuleRejected(f"{where} carries {', '.join(sorted(forbidden))}: esm-medic never adds CIDR rules")
        extra = set(perm) - ALLOWED_PERMISSION_KEYS
        if extra:
            raise CidrRuleRejected(f"{where} has unexpected keys {sorted(extra)}")
        if perm.get("IpProtocol") != "tcp":
            raise CidrRuleRejected(f"{where}: only tcp rules are built (got {perm.get('IpProtocol')!r})")
        lo, hi = perm.get("FromPort"), perm.get("ToPort")
        if not isinstance(lo, int) or isinstance(lo, bool) or lo != hi or not 1 <= lo <= 65535:
            raise CidrRuleRejected(f"{where}: exactly one port per rule (got {lo!r}-{hi!r})")
        pairs = perm.get("UserIdGroupPairs")
        if not isinstance(pairs, list) or not pairs:
            raise CidrRuleRejected(f"{where}: needs UserIdGroupPairs naming security groups")
        for j, pair in enumerate(pairs):
            pw = f"{where}.UserIdGroupPairs[{j}]"
            if not isinstance(pair, Mapping):
                raise CidrRuleRejected(f"{pw} must be an object")
            bad = set(pair) - ALLOWED_PAIR_KEYS
            if bad:
                raise CidrRuleRejected(f"{pw} has forbidden keys {sorted(bad)}")
            gid = pair.get("GroupId")
            if not isinstance(gid, str) or not _GROUP_ID.match(gid):
                raise CidrRuleRejected(f"{pw}: GroupId must be a security group id, got {gid!r}")
            if allowed_groups is not None and gid not in allowed_groups:
                raise CidrRuleRejected(f"{pw}: group {gid} is not one this action may reference")
            desc = pair.get("Description", "")
            if not isinstance(desc, str) or not _DESCRIPTION_OK.match(desc) or _CIDRISH.search(desc):
                raise CidrRuleRejected(f"{pw}: description {desc!r} is not allowed")
    return permissions


def _hook(params: Any = None, **_: Any) -> None:
    if isinstance(params, Mapping):
        check_permissions(params.get("IpPermissions"))
        if params.get("SecurityGroupRuleIds") is not None:
            raise CidrRuleRejected("authorize calls must carry IpPermissions, nothing else")


def install_hook(aws: Aws) -> None:
    """Make the adapter's EC2 client refuse any authorize call whose permissions fail the check (idempotent)."""
    client = aws.client("ec2")
    if getattr(client, _HOOK_ATTR, False):
        return
    events = client.meta.events
    events.register("before-parameter-build.ec2.AuthorizeSecurityGroupIngress", _hook, unique_id=_HOOK_ATTR + "-in")
    events.register("before-parameter-build.ec2.AuthorizeSecurityGroupEgress", _hook, unique_id=_HOOK_ATTR + "-out")
    setattr(client, _HOOK_ATTR, True)


def build_permission(port: int, group_ids: Iterable[str], description: str) -> dict[str, Any]:
    """One TCP port from the given security groups. The only way this package builds a permission."""
    pairs = [{"GroupId": g, "Description": description} for g in group_ids]
    perm = {"IpProtocol": "tcp", "FromPort": int(port), "ToPort": int(port), "UserIdGroupPairs": pairs}
    check_permissions([perm])
    return perm


def authorize(
    aws: Aws,
    direction: str,
    group_id: str,
    permissions: list[dict[str, Any]],
    *,
    tags: list[dict[str, str]] | None = None,
    dry_run: bool = False,
    allowed_group_ids: Iterable[str] | None = None,
) -> dict[str, Any]:
    """Authorize ingress/egress rules on ``group_id`` after checking them. Raises CidrRuleRejected or the
    ClientError of the call (DryRunOperation included when ``dry_run``)."""
    if direction not in ("ingress", "egress"):
        raise ValueError(f"direction must be ingress or egress, not {direction!r}")
    if not isinstance(group_id, str) or not _GROUP_ID.match(group_id):
        raise CidrRuleRejected(f"target {group_id!r} is not a security group id")
    check_permissions(permissions, expect_group_ids=allowed_group_ids)
    install_hook(aws)
    kwargs: dict[str, Any] = {"GroupId": group_id, "IpPermissions": permissions}
    if tags:
        kwargs["TagSpecifications"] = [{"ResourceType": "security-group-rule", "Tags": tags}]
    if dry_run:
        kwargs["DryRun"] = True
    operation = AUTHORIZE_OPERATIONS[0] if direction == "ingress" else AUTHORIZE_OPERATIONS[1]
    return aws.call("ec2", operation, **kwargs)
