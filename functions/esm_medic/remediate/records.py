"""The plain data of a remediation: planned calls, plans, results of apply / verify / rollback, audit records,
and the small helpers around them (fingerprints, tags, safety classes)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    pass
from esm_medic.remediate.errors import iam_action

SAFETY_ORDER = ("auto", "approve", "manual")
MANAGED_TAG = "esm-medic:managed"
INCIDENT_TAG = "esm-medic:incident"
INCIDENT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

# Dry-run outcomes of one planned call
DRY_ALLOWED = "allowed"  # EC2 answered DryRunOperation: the caller may make this call
DRY_DENIED = "denied"  # EC2 answered UnauthorizedOperation: the permission is missing
DRY_UNSUPPORTED = "unsupported"  # the API has no DryRun (IAM, modify_vpc_attribute, ...)
DRY_SKIPPED = "skipped"  # cannot be probed (it names a resource an earlier call creates)
DRY_ERROR = "error"  # the probe failed for another reason (kept in the note)


def fingerprint(action: str, params: Mapping[str, Any]) -> str:
    """A stable short hash of (action, params): list order does not matter."""
    canonical = json.dumps({"action": action, "params": _canonical(params)}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _canonical(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _canonical(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        items = [_canonical(v) for v in obj]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    return obj


def tags_for(incident_id: str, **extra: str) -> list[dict[str, str]]:
    tags = {MANAGED_TAG: "true", INCIDENT_TAG: incident_id, **extra}
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def tag_map(tags: Any) -> dict[str, str]:
    """EC2-style [{'Key','Value'}] (or a plain dict) -> dict."""
    if isinstance(tags, Mapping):
        return {str(k): str(v) for k, v in tags.items()}
    out: dict[str, str] = {}
    for t in tags or []:
        if isinstance(t, Mapping) and "Key" in t:
            out[str(t["Key"])] = str(t.get("Value", ""))
    return out


# ---------------------------------------------------------------------------------------------- data
@dataclass
class PlannedCall:
    """One API call the action would make (mutating) or made to decide (read)."""

    service: str
    operation: str  # boto3 snake_case method name
    params: dict[str, Any]
    mutating: bool = True
    dry_run: str = DRY_UNSUPPORTED
    note: str = ""

    @property
    def permission(self) -> str:
        return iam_action(self.service, self.operation)

    def to_dict(self) -> dict[str, Any]:
        return {
            "api": self.permission,
            "service": self.service,
            "operation": self.operation,
            "params": self.params,
            "mutating": self.mutating,
            "dry_run": self.dry_run,
            "note": self.note,
        }

    def render(self) -> str:
        args = ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in self.params.items())
        return f"{self.permission}({args})"


@dataclass
class Plan:
    action: str
    params: dict[str, Any]
    incident_id: str
    uuid: str = ""
    safety: str = "approve"
    summary: str = ""
    calls: list[PlannedCall] = field(default_factory=list)
    reads: list[str] = field(default_factory=list)  # read-only APIs used to build the plan
    diff: list[str] = field(default_factory=list)  # human lines: '+ ...' adds, '- ...' removes, '  ...' context
    noop: bool = False
    refused: str | None = None
    warnings: list[str] = field(default_factory=list)
    requires_approval: bool = False
    cost: dict[str, Any] | None = None
    before: dict[str, Any] = field(default_factory=dict)
    adopted: dict[str, list[str]] = field(default_factory=dict)  # ids an earlier attempt of this incident made
    missing_permissions: list[str] = field(default_factory=list)
    restart_esm: bool = False
    scopes: list[tuple[str, str]] = field(default_factory=list)  # budget scopes (kind, id), account added later
    state: dict[str, Any] = field(default_factory=dict)  # what apply needs (action-private)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.action, self.params)

    @property
    def mutating_calls(self) -> list[PlannedCall]:
        return [c for c in self.calls if c.mutating]

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "params": self.params,
            "fingerprint": self.fingerprint,
            "incident_id": self.incident_id,
            "uuid": self.uuid,
            "safety": self.safety,
            "summary": self.summary,
            "noop": self.noop,
            "refused": self.refused,
            "warnings": list(self.warnings),
            "requires_approval": self.requires_approval,
            "diff": list(self.diff),
            "calls": [c.to_dict() for c in self.calls],
            "reads": list(self.reads),
            "cost": self.cost,
            "before": self.before,
            "adopted": self.adopted,
            "missing_permissions": list(self.missing_permissions),
            "restart_esm": self.restart_esm,
            "scopes": [list(s) for s in self.scopes],
            "state": self.state,
        }


@dataclass
class ApplyResult:
    changed: bool
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    created: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class VerifyResult:
    ok: bool
    details: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    #: not ok only because what the fix created is still in a transitional AWS state (an endpoint ``pending``)
    settling: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RollbackResult:
    changed: bool
    removed: dict[str, list[str]] = field(default_factory=dict)
    restored: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Audit statuses, in the order an action normally goes through them
STATUSES = (
    "planned",
    "shadow",
    "started",
    "applied",
    "restarted",
    "verified",
    "verify-failed",
    "rolled-back",
    "failed",
)
#: statuses after which a started action is no longer "in flight"
TERMINAL_AFTER_START = frozenset({"applied", "restarted", "verified", "verify-failed", "rolled-back", "failed"})


@dataclass
class ActionRecord:
    """One append-only audit row. Several rows share an ``action_id`` (started, applied, verified, ...)."""

    action_id: str
    uuid: str
    incident_id: str
    actor: str
    action: str
    status: str
    params: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""
    decision: dict[str, Any] = field(default_factory=dict)
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    created: dict[str, list[str]] = field(default_factory=dict)
    plan: dict[str, Any] = field(default_factory=dict)
    reason: str = ""  # why (root cause / diagnosis summary)
    error: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    account: str = ""  # the account the ESM lives in (a member account when acting through its role)
    at: str = ""  # ISO-8601 UTC with microseconds (set by the audit log)
    epoch: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def followed_by(self, status: str, actor: str, **fields: Any) -> ActionRecord:
        """A later row of the same action (its id, ESM, incident, action, params, fingerprint and account)."""
        return ActionRecord(
            action_id=self.action_id,
            uuid=self.uuid,
            incident_id=self.incident_id,
            actor=actor,
            action=self.action,
            status=status,
            params=self.params,
            fingerprint=self.fingerprint,
            account=self.account,
            **fields,
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ActionRecord:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in names})


def stricter(*safeties: str | None) -> str:
    """The most cautious of several safety classes (auto < approve < manual); unknown values count as manual."""
    rank = -1
    for s in safeties:
        if s is None:
            continue
        r = SAFETY_ORDER.index(s) if s in SAFETY_ORDER else len(SAFETY_ORDER) - 1
        rank = max(rank, r)
    return SAFETY_ORDER[rank] if rank >= 0 else "approve"
