"""The one door through which esm-medic adds a security-group rule. It never lets a CIDR through, and never
touches a group outside the ESM's own network.

Every ``AuthorizeSecurityGroupIngress`` / ``AuthorizeSecurityGroupEgress`` call in the remediation package goes
through :func:`authorize` (a meta-test checks that no other module names those operations). Three layers:

1. :func:`check_permissions` validates the ``IpPermissions`` this code built: TCP only, one port per permission,
   only ``UserIdGroupPairs`` naming security groups (``sg-…``) with an optional description. Any ``IpRanges``,
   ``Ipv6Ranges`` or ``PrefixListIds`` key, even empty, any CIDR-looking text, any protocol ``-1`` (all traffic),
   any port range or peering / cross-account pair raises :class:`CidrRuleRejected`.
2. :func:`install_hook` registers a check on the adapter's EC2 client (botocore ``before-parameter-build``) for
   every API that can name a rule: authorize and revoke (by ``GroupId``, ``GroupName``, the flat ``CidrIp`` /
   ``SourceSecurityGroupName`` form, ``IpPermissions`` or ``SecurityGroupRuleIds``), ``ModifySecurityGroupRules``,
   ``UpdateSecurityGroupRuleDescriptions*`` and ``DeleteSecurityGroup``. A group is only ever named by id; the
   flat form, rule edits in place and description updates are refused outright.
3. :func:`confine` (used by the engine around plan and apply) limits those calls to the ESM's network: the target
   group must be one of the ESM's security groups (or one this run created and :func:`admit`-ted), and every
   referenced group must be one of the ESM's. Outside a confinement, layers 1 and 2 still hold.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from esm_medic.remediate.base import CidrRuleRejected

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws

FORBIDDEN_KEYS = frozenset({"IpRanges", "Ipv6Ranges", "PrefixListIds", "CidrIp", "CidrIpv6", "CidrIpv4"})
ALLOWED_PERMISSION_KEYS = frozenset({"IpProtocol", "FromPort", "ToPort", "UserIdGroupPairs"})
ALLOWED_PAIR_KEYS = frozenset({"GroupId", "Description"})
AUTHORIZE_OPERATIONS = ("authorize_security_group_ingress", "authorize_security_group_egress")
#: top-level parameters that name a rule without IpPermissions (the legacy flat form) or a group by name
FLAT_RULE_KEYS = frozenset(
    {"GroupName", "CidrIp", "IpProtocol", "FromPort", "ToPort", "SourceSecurityGroupName", "SourceSecurityGroupOwnerId"}
)
#: API name -> how the hook treats it
GUARDED_OPERATIONS = {
    "AuthorizeSecurityGroupIngress": "authorize",
    "AuthorizeSecurityGroupEgress": "authorize",
    "RevokeSecurityGroupIngress": "revoke",
    "RevokeSecurityGroupEgress": "revoke",
    "DeleteSecurityGroup": "delete",
    "ModifySecurityGroupRules": "refuse",
    "UpdateSecurityGroupRuleDescriptionsIngress": "refuse",
    "UpdateSecurityGroupRuleDescriptionsEgress": "refuse",
}
_GROUP_ID = re.compile(r"^sg-[0-9a-f]{8,17}$")
_CIDRISH = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}/\d{1,2}|[0-9a-f:]*::[0-9a-f:]*/\d{1,3}|\bpl-[0-9a-f]+", re.IGNORECASE)
_DESCRIPTION_OK = re.compile(r"^[A-Za-z0-9. _\-:/()#,@\[\]+=&;{}!$*]{0,255}$")
_HOOK_ATTR = "_esm_medic_sg_guard"


@dataclass
class Confinement:
    """The groups a run may write rules on (``targets``) and reference in them (``sources``)."""

    targets: set[str] = field(default_factory=set)
    sources: frozenset[str] = frozenset()
    network: str = ""  # for messages: the ESM's VPC

    def check_target(self, group_id: Any, api: str) -> None:
        if group_id not in self.targets:
            raise CidrRuleRejected(
                f"{api} on {group_id!r} refused: not a security group of the ESM's network "
                f"{self.network} ({', '.join(sorted(self.targets)) or 'none'})"
            )


_CONFINED: ContextVar[Confinement | None] = ContextVar("esm_medic_guard_confinement", default=None)


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


def check_call(api: str, params: Mapping[str, Any], confinement: Confinement | None = None) -> None:
    """Refuse an EC2 call that names a rule or group in a way esm-medic never does, or outside ``confinement``."""
    kind = GUARDED_OPERATIONS.get(api)
    if kind is None:
        return
    if kind == "refuse":
        raise CidrRuleRejected(f"{api} refused: esm-medic never edits rules in place")
    flat = sorted(FLAT_RULE_KEYS.intersection(params))
    if flat:
        raise CidrRuleRejected(f"{api} refused: groups and rules are named by id and IpPermissions only (got {flat})")
    group_id = params.get("GroupId")
    if not isinstance(group_id, str) or not _GROUP_ID.match(group_id):
        raise CidrRuleRejected(f"{api} refused: target {group_id!r} is not a security group id")
    if kind == "authorize":
        if params.get("SecurityGroupRuleIds") is not None:
            raise CidrRuleRejected("authorize calls must carry IpPermissions, nothing else")
        check_permissions(
            params.get("IpPermissions"), expect_group_ids=confinement.sources if confinement is not None else None
        )
    if confinement is not None:
        confinement.check_target(group_id, api)


def _hook(params: Any = None, model: Any = None, **_: Any) -> None:
    api = str(getattr(model, "name", "") or "")
    check_call(api, params if isinstance(params, Mapping) else {}, _CONFINED.get())


def install_hook(aws: Aws) -> None:
    """Make the adapter's EC2 client refuse any rule-naming call that fails :func:`check_call` (idempotent)."""
    client = aws.client("ec2")
    if getattr(client, _HOOK_ATTR, False):
        return
    events = client.meta.events
    for api in GUARDED_OPERATIONS:
        events.register(f"before-parameter-build.ec2.{api}", _hook, unique_id=f"{_HOOK_ATTR}-{api}")
    setattr(client, _HOOK_ATTR, True)


@contextmanager
def confine(aws: Aws, group_ids: Iterable[str], network: str = "") -> Iterator[Confinement]:
    """Within this block, rule and group writes through ``aws`` may only target and reference ``group_ids``
    (plus groups :func:`admit`-ted while it runs)."""
    install_hook(aws)
    groups = frozenset(group_ids)
    confinement = Confinement(targets=set(groups), sources=groups, network=network)
    token = _CONFINED.set(confinement)
    try:
        yield confinement
    finally:
        _CONFINED.reset(token)


def admit(group_id: str) -> None:
    """Let the current confinement target a group this run created (never one it was merely told about)."""
    confinement = _CONFINED.get()
    if confinement is not None:
        confinement.targets.add(group_id)


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
    kwargs: dict[str, Any] = {"GroupId": group_id, "IpPermissions": permissions}
    api = "AuthorizeSecurityGroupIngress" if direction == "ingress" else "AuthorizeSecurityGroupEgress"
    check_call(api, kwargs, _CONFINED.get())
    install_hook(aws)
    if tags:
        kwargs["TagSpecifications"] = [{"ResourceType": "security-group-rule", "Tags": tags}]
    if dry_run:
        kwargs["DryRun"] = True
    operation = AUTHORIZE_OPERATIONS[0] if direction == "ingress" else AUTHORIZE_OPERATIONS[1]
    return aws.call("ec2", operation, **kwargs)
