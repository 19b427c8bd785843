"""Fix id -> action class, Cloud Custodian style: ``@register("add-sg-self-rule")`` on a small class.

``all_permissions()`` is what infra grants the remediation role: the union of every action's declared IAM
actions plus what the engine itself needs (ESM restart, tags, kill switch, audit / state tables).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import TypeVar

from esm_medic.remediate.base import Action, UnknownAction

_REGISTRY: dict[str, type[Action]] = {}
_LOADED = False
A = TypeVar("A", bound=type[Action])

#: modules under esm_medic.remediate.actions that register actions
ACTION_MODULES = ("sg_self_rule", "vpc_endpoints", "iam_grant", "vpc_dns", "esm_logging")

#: IAM actions the engine calls around every action (not part of any action's own plan/apply/verify/rollback)
ENGINE_PERMISSIONS: tuple[str, ...] = (
    "lambda:GetEventSourceMapping",  # read the ESM (tags ARN, state) and verify its status
    "lambda:UpdateEventSourceMapping",  # restart polling: disable, then enable
    "lambda:ListTags",  # esm-medic:mode / esm-medic:shadow on the ESM and on its function
    "ssm:GetParameter",  # the kill switch
    "dynamodb:PutItem",  # audit records, locks
    "dynamodb:GetItem",  # budget / verification counters
    "dynamodb:DeleteItem",  # lock release
    "dynamodb:UpdateItem",  # verification counters
    "dynamodb:Query",  # history, by_action GSI, half-applied detection
    "dynamodb:Scan",  # history without an ESM uuid
    "kafka:DescribeClusterV2",  # the ESM's network: an MSK cluster's subnets and security groups
    "ec2:DescribeSubnets",  # the ESM's network: the VPC of its subnets
    "ec2:DescribeSecurityGroups",  # the ESM's network: the VPC of its groups when no subnet says it
)

#: API operations IAM does not authorize under their own name, and the IAM actions it checks instead. A
#: TransactWriteItems call is authorized item by item; the budget's transactions only hold Update items.
AUTHORIZED_AS: dict[str, tuple[str, ...]] = {"dynamodb:TransactWriteItems": ("dynamodb:UpdateItem",)}


def iam_actions_for(calls: Iterable[str]) -> set[str]:
    """The IAM actions that authorize the given API calls ("service:Operation", as the adapter counts them)."""
    out: set[str] = set()
    for call in calls:
        out.update(AUTHORIZED_AS.get(call, (call,)))
    return out


def register(name: str) -> Callable[[A], A]:
    def deco(cls: A) -> A:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"remediation action {name!r} registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def _load() -> None:
    global _LOADED
    if _LOADED:
        return
    for mod in ACTION_MODULES:
        importlib.import_module(f"esm_medic.remediate.actions.{mod}")
    _LOADED = True


def get(name: str) -> type[Action]:
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise UnknownAction(f"no remediation action {name!r} (known: {known})") from None


def all_actions() -> dict[str, type[Action]]:
    _load()
    return dict(sorted(_REGISTRY.items()))


def all_permissions(include_engine: bool = True) -> list[str]:
    """Every IAM action the remediation role needs, sorted (for infra's policy)."""
    perms: set[str] = set()
    for cls in all_actions().values():
        perms.update(cls.permissions)
    if include_engine:
        perms.update(ENGINE_PERMISSIONS)
    return sorted(perms)
