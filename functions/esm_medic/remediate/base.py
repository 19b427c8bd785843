"""The building blocks of a remediation action, in the style of Cloud Custodian's action classes.

An :class:`Action` is a small class that declares

- ``name`` (the fix id), ``schema`` (JSON schema of its parameters, checked with jsonschema before anything runs),
- ``permissions`` (the IAM actions its plan / apply / verify / rollback call; a meta-test holds it to that),
- ``default_safety`` (``auto`` or ``approve``), ``creates_resources`` (which kinds it creates and tags),
- ``restart_polling`` (disable / enable the ESM after a change so it retries at once),

and implements four steps over the :class:`~esm_medic.aws.Aws` adapter:

``plan()``      reads the live state and says exactly which calls it would make, with a human diff; never writes
                (EC2 calls are probed with ``DryRun=True`` where EC2 offers it);
``apply(plan)`` makes only the missing changes, records every id it creates in ``self.created`` *as it goes*
                (so a failure half-way can be undone), and returns before / after / created;
``verify(rec)`` checks that what ``apply`` made is there;
``rollback(rec)`` removes exactly what ``apply`` created (or restores the recorded before values), and is a
                no-op when that is already gone.

Everything here is plain data; no boto3 import.
"""

from __future__ import annotations

import hashlib
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from esm_medic.aws import error_code, error_message, is_access_denied, is_throttling

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws
    from esm_medic.config import Settings
    from esm_medic.esm import EsmConfig

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


# ---------------------------------------------------------------------------------------------- errors
class RemediationError(Exception):
    """Base of every error the remediation package raises on purpose."""

    code = "remediation-error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.details}


class InvalidParams(RemediationError):
    """The parameters do not match the action's schema or break one of its rules."""

    code = "invalid-params"


class UnknownAction(RemediationError):
    code = "unknown-action"


class ActionFailed(RemediationError):
    """A call failed while applying / verifying / rolling back. ``missing_permission`` names the IAM action
    when AWS said access denied; ``throttled`` is set when retries were exhausted on throttling."""

    code = "failed"

    def __init__(
        self,
        message: str,
        *,
        missing_permission: str | None = None,
        throttled: bool = False,
        aws_code: str = "",
        **details: Any,
    ) -> None:
        super().__init__(message, **details)
        self.missing_permission = missing_permission
        self.throttled = throttled
        self.aws_code = aws_code

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d.update(missing_permission=self.missing_permission, throttled=self.throttled, aws_code=self.aws_code)
        return d


class CidrRuleRejected(RemediationError):
    """Raised by the security-group guard: esm-medic never builds a rule that names a CIDR or prefix list."""

    code = "cidr-rejected"


class LockBusy(RemediationError):
    code = "locked"


class BudgetExceeded(RemediationError):
    code = "budget-exceeded"


# ---------------------------------------------------------------------------------------------- helpers
def iam_action(service: str, operation: str) -> str:
    """'ec2', 'describe_vpc_endpoints' -> 'ec2:DescribeVpcEndpoints' (botocore's own operation name)."""
    return f"{service}:{_op_name(service, operation)}"


_OP_NAME_CACHE: dict[tuple[str, str], str] = {}
_SPECIAL_OPS = {
    ("route53", "list_hosted_zones_by_vpc"): "ListHostedZonesByVPC",
    ("route53", "associate_vpc_with_hosted_zone"): "AssociateVPCWithHostedZone",
}


def _op_name(service: str, operation: str) -> str:
    key = (service, operation)
    cached = _OP_NAME_CACHE.get(key)
    if cached is None:
        cached = _SPECIAL_OPS.get(key) or "".join(p[:1].upper() + p[1:] for p in operation.split("_"))
        _OP_NAME_CACHE[key] = cached
    return cached


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


def failure_from(exc: BaseException, service: str, operation: str, what: str = "") -> ActionFailed:
    """Turn a botocore error into an ActionFailed naming the missing permission / throttling."""
    perm = iam_action(service, operation)
    code = error_code(exc)
    msg = error_message(exc)
    label = what or perm
    if is_access_denied(exc):
        return ActionFailed(
            f"{label}: access denied; the remediation role needs {perm} ({code}: {msg})",
            missing_permission=perm,
            aws_code=code,
        )
    if is_throttling(exc):
        return ActionFailed(
            f"{label}: still throttled after the adapter's retries ({code}); nothing more was changed",
            throttled=True,
            aws_code=code,
        )
    return ActionFailed(f"{label} failed: {code or type(exc).__name__}: {msg}", aws_code=code)


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

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ActionRecord:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in names})


# ---------------------------------------------------------------------------------------------- context
@dataclass
class ActionContext:
    aws: Aws
    incident_id: str
    uuid: str = ""
    actor: str = "esm-medic"
    action_id: str = ""
    settings: Settings | None = None
    sleep: Callable[[float], None] | None = None  # injectable for bounded polling loops

    def __post_init__(self) -> None:
        if not INCIDENT_ID_RE.match(self.incident_id or ""):
            raise InvalidParams(
                f"incident id {self.incident_id!r} must be 1-64 characters of letters, digits, '.', '_' or '-'"
            )

    def get_settings(self) -> Settings:
        if self.settings is None:
            from esm_medic.config import Settings

            self.settings = Settings.from_env()
        return self.settings

    def wait(self, seconds: float) -> None:
        if self.sleep is not None:
            self.sleep(seconds)
            return
        import time

        time.sleep(seconds)


# ---------------------------------------------------------------------------------------------- action
class Action(ABC):
    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    schema: ClassVar[dict[str, Any]] = {}
    permissions: ClassVar[tuple[str, ...]] = ()
    #: declared permissions AWS authorizes although no API of that name is called (e.g. ec2:CreateTags for
    #: TagSpecifications on create), with the reason; the permission meta-test accepts exactly these extras
    implied_permissions: ClassVar[dict[str, str]] = {}
    default_safety: ClassVar[str] = "approve"
    creates_resources: ClassVar[dict[str, str]] = {}  # kind -> how it is tagged / named
    restart_polling: ClassVar[bool] = True
    step: ClassVar[str] = "unknown"  # the ESM set-up step this action repairs (verification fallback)

    def __init__(self, params: Mapping[str, Any], ctx: ActionContext) -> None:
        self.params: dict[str, Any] = self.validate(params)
        self.ctx = ctx
        self.aws = ctx.aws
        self.created: dict[str, list[str]] = {}
        self._reads: list[str] = []

    # ------------------------------------------------------------------ validation
    @classmethod
    def validate(cls, params: Any) -> dict[str, Any]:
        """Schema-check (jsonschema, draft 2020-12) then the action's own rules; returns params with defaults."""
        import jsonschema

        if not isinstance(params, Mapping):
            raise InvalidParams(f"{cls.name}: parameters must be a JSON object")
        validator = jsonschema.Draft202012Validator(cls.schema)
        errors = sorted(validator.iter_errors(dict(params)), key=lambda e: list(e.path))
        if errors:
            best = jsonschema.exceptions.best_match(errors)
            where = "/".join(str(p) for p in best.absolute_path) or "<params>"
            raise InvalidParams(f"{cls.name}: invalid parameter at {where}: {best.message}")
        out = json.loads(json.dumps(dict(params)))
        for key, spec in (cls.schema.get("properties") or {}).items():
            if key not in out and "default" in spec:
                out[key] = json.loads(json.dumps(spec["default"]))
        cls.check_rules(out)
        return out

    @classmethod
    def check_rules(cls, params: dict[str, Any]) -> None:
        """Rules a JSON schema cannot say (override; raise InvalidParams)."""
        del params  # no extra rules by default

    def check_esm(self, esm: EsmConfig) -> list[str]:
        """Problems with applying these params to this ESM (override); the engine refuses when any."""
        return []

    # ------------------------------------------------------------------ the four steps
    @abstractmethod
    def plan(self) -> Plan: ...

    @abstractmethod
    def apply(self, plan: Plan) -> ApplyResult: ...

    @abstractmethod
    def verify(self, record: ActionRecord) -> VerifyResult: ...

    @abstractmethod
    def rollback(self, record: ActionRecord) -> RollbackResult: ...

    # ------------------------------------------------------------------ helpers for subclasses
    def new_plan(self, summary: str = "") -> Plan:
        return Plan(
            action=self.name,
            params=self.params,
            incident_id=self.ctx.incident_id,
            uuid=self.ctx.uuid,
            safety=self.default_safety,
            summary=summary or self.title,
            restart_esm=self.restart_polling,
        )

    def read(self, service: str, operation: str, **params: Any) -> dict[str, Any]:
        """A read-only call; errors become ActionFailed naming the permission."""
        api = iam_action(service, operation)
        if api not in self._reads:
            self._reads.append(api)
        try:
            return self.aws.call(service, operation, **params)
        except Exception as exc:
            if getattr(exc, "response", None) is None:
                raise
            raise failure_from(exc, service, operation) from exc

    def read_all(self, service: str, operation: str, result_key: str, **params: Any) -> list[Any]:
        """A paginated read-only call (every page); errors become ActionFailed naming the permission."""
        api = iam_action(service, operation)
        if api not in self._reads:
            self._reads.append(api)
        try:
            return list(self.aws.paginate(service, operation, result_key, **params))
        except Exception as exc:
            if getattr(exc, "response", None) is None:
                raise
            raise failure_from(exc, service, operation) from exc

    def write(self, service: str, operation: str, what: str = "", **params: Any) -> dict[str, Any]:
        """A mutating call; errors become ActionFailed naming the permission."""
        try:
            return self.aws.call(service, operation, **params)
        except Exception as exc:
            if getattr(exc, "response", None) is None:
                raise
            raise failure_from(exc, service, operation, what) from exc

    def dry_run(self, call: PlannedCall, plan: Plan, invoke: Callable[[], Any] | None = None) -> None:
        """Probe one EC2 call with DryRun=True and record the outcome on the call (and the plan).

        ``invoke`` makes the DryRun request itself when the call must go through a guard."""
        try:
            if invoke is not None:
                invoke()
            else:
                self.aws.call(call.service, call.operation, DryRun=True, **call.params)
        except Exception as exc:
            code = error_code(exc)
            if code == "DryRunOperation":
                call.dry_run = DRY_ALLOWED
                return
            if getattr(exc, "response", None) is None:
                raise
            call.note = (call.note + "; " if call.note else "") + f"dry run: {code}: {error_message(exc)}"
            if is_access_denied(exc):
                call.dry_run = DRY_DENIED
                if call.permission not in plan.missing_permissions:
                    plan.missing_permissions.append(call.permission)
                return
            call.dry_run = DRY_ERROR
            return
        # a 2xx answer to a DryRun request: the endpoint ignored DryRun (and may have made the change)
        call.dry_run = DRY_ERROR
        call.note = (call.note + "; " if call.note else "") + "endpoint ignored DryRun"
        plan.warnings.append(f"{call.permission}: the endpoint ignored DryRun=True")

    def add_created(self, kind: str, resource_id: str) -> None:
        ids = self.created.setdefault(kind, [])
        if resource_id not in ids:
            ids.append(resource_id)

    def finish_plan(self, plan: Plan) -> Plan:
        plan.reads = list(self._reads)
        if not plan.mutating_calls and plan.refused is None:
            plan.noop = True
        return plan

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {
            "name": cls.name,
            "title": cls.title,
            "default_safety": cls.default_safety,
            "permissions": sorted(cls.permissions),
            "implied_permissions": dict(cls.implied_permissions),
            "creates_resources": dict(cls.creates_resources),
            "restart_polling": cls.restart_polling,
            "schema": cls.schema,
        }


def stricter(*safeties: str | None) -> str:
    """The most cautious of several safety classes (auto < approve < manual); unknown values count as manual."""
    rank = -1
    for s in safeties:
        if s is None:
            continue
        r = SAFETY_ORDER.index(s) if s in SAFETY_ORDER else len(SAFETY_ORDER) - 1
        rank = max(rank, r)
    return SAFETY_ORDER[rank] if rank >= 0 else "approve"
