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

The data (:class:`Plan`, :class:`ActionRecord`, ...) lives in :mod:`.records`, the errors in :mod:`.errors`;
both are re-exported here. No boto3 import.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from esm_medic.aws import error_code, error_message, is_access_denied

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws
    from esm_medic.config import Settings
    from esm_medic.esm import EsmConfig
    from esm_medic.remediate.scope import NetworkScope
from esm_medic.remediate.errors import (
    ActionFailed,
    BudgetExceeded,
    CidrRuleRejected,
    InvalidParams,
    LockBusy,
    RemediationError,
    UnknownAction,
    failure_from,
    iam_action,
)
from esm_medic.remediate.records import (
    DRY_ALLOWED,
    DRY_DENIED,
    DRY_ERROR,
    DRY_SKIPPED,
    DRY_UNSUPPORTED,
    INCIDENT_ID_RE,
    INCIDENT_TAG,
    MANAGED_TAG,
    SAFETY_ORDER,
    STATUSES,
    TERMINAL_AFTER_START,
    ActionRecord,
    ApplyResult,
    Plan,
    PlannedCall,
    RollbackResult,
    VerifyResult,
    fingerprint,
    stricter,
    tag_map,
    tags_for,
)

__all__ = [
    "DRY_ALLOWED",
    "DRY_DENIED",
    "DRY_ERROR",
    "DRY_SKIPPED",
    "DRY_UNSUPPORTED",
    "INCIDENT_ID_RE",
    "INCIDENT_TAG",
    "MANAGED_TAG",
    "SAFETY_ORDER",
    "STATUSES",
    "TERMINAL_AFTER_START",
    "Action",
    "ActionContext",
    "ActionFailed",
    "ActionRecord",
    "ApplyResult",
    "BudgetExceeded",
    "CidrRuleRejected",
    "InvalidParams",
    "LockBusy",
    "Plan",
    "PlannedCall",
    "RemediationError",
    "RollbackResult",
    "UnknownAction",
    "VerifyResult",
    "failure_from",
    "fingerprint",
    "iam_action",
    "params_schema",
    "stricter",
    "tag_map",
    "tags_for",
]


def params_schema(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema of an action's parameters: an object of these properties and no others."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": False,
        "required": required,
        "properties": properties,
    }


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
    scope: NetworkScope | None = None  # the ESM's network; network actions refuse to plan without it

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
    #: touches the ESM's network (groups, subnets, VPC): only allowed inside ``ctx.scope``
    network_bound: ClassVar[bool] = False

    def __init__(self, params: Mapping[str, Any], ctx: ActionContext) -> None:
        self.params: dict[str, Any] = self.validate(params)
        self.ctx = ctx
        self.aws = ctx.aws
        self.created: dict[str, list[str]] = {}
        self.writes = 0  # mutating calls that succeeded (through write())
        self._reads: list[str] = []

    # ------------------------------------------------------------------ validation
    @classmethod
    def validate(cls, params: Any) -> dict[str, Any]:
        """Schema-check (esm_medic.validation) then the action's own rules; returns params with defaults."""
        from esm_medic.validation import first_error

        if not isinstance(params, Mapping):
            raise InvalidParams(f"{cls.name}: parameters must be a JSON object")
        problem = first_error(cls.schema, dict(params), root="<params>")
        if problem is not None:
            raise InvalidParams(f"{cls.name}: invalid parameter at {problem}")
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

    def check_scope(self, scope: NetworkScope) -> list[str]:
        """Targets in the params that lie outside the ESM's network (override for network actions)."""
        del scope
        return []

    def scope_problems(self) -> list[str]:
        """Why this network action may not run against ``ctx.scope`` (empty when it may, or when the action
        does not touch the network)."""
        if not self.network_bound:
            return []
        scope = self.ctx.scope
        if scope is None:
            return ["the ESM's network identity was not established: network changes need it"]
        if not scope.usable:
            return [scope.why_unusable()]
        return self.check_scope(scope)

    def refuse_outside_scope(self, plan: Plan) -> bool:
        """Set ``plan.refused`` when :meth:`scope_problems` finds any; True when refused."""
        problems = self.scope_problems()
        if problems and plan.refused is None:
            plan.refused = "outside the ESM's network: " + "; ".join(problems)
        return bool(problems)

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
            out = self.aws.call(service, operation, **params)
            self.writes += 1
            return out
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

    @property
    def changed_anything(self) -> bool:
        """Whether this instance made any change (a successful write or a created resource)."""
        return self.writes > 0 or any(self.created.values())

    def add_created(self, kind: str, resource_id: str) -> None:
        ids = self.created.setdefault(kind, [])
        if resource_id not in ids:
            ids.append(resource_id)

    def applied(
        self, plan: Plan, *, changed: bool, after: dict[str, Any], notes: list[str] | None = None
    ) -> ApplyResult:
        """The result of :meth:`apply`: what was there before (the plan's), what is there now, what was created."""
        return ApplyResult(
            changed=changed,
            before=plan.before,
            after=after,
            created={k: list(v) for k, v in self.created.items()},
            notes=list(notes or []),
        )

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
