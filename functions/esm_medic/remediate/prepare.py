"""What every engine entry point shares: the fix request (from a diagnosis or an explicit action), reading the ESM,
validating the parameters, establishing the ESM's network scope, and the policy decision."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger

from esm_medic.aws import Aws, error_code, error_message, is_not_found
from esm_medic.config import Settings
from esm_medic.remediate import guard, registry
from esm_medic.remediate.base import (
    ActionRecord,
    InvalidParams,
    Plan,
    UnknownAction,
    stricter,
)
from esm_medic.remediate.budget import sightings
from esm_medic.remediate.scope import NetworkScope, resolve

logger = Logger(service="esm-medic", child=True)
TRANSITIONAL_STATES = frozenset({"Creating", "Enabling", "Updating", "Disabling", "Deleting"})
DEFAULT_ACTOR = "esm-medic"


# ---------------------------------------------------------------------------------------------- request
@dataclass
class FixRequest:
    uuid: str
    action: str
    params: dict[str, Any]
    incident_id: str = ""
    catalogue_safety: str | None = None
    transient: bool = False
    entry: str = ""
    root_cause: str = ""
    step: str = ""
    reason: str = ""
    esm: dict[str, Any] = field(default_factory=dict)
    healthy: bool = False


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def request_from(
    diagnosis: Any = None,
    *,
    action: str | None = None,
    params: Mapping[str, Any] | None = None,
    uuid: str | None = None,
    incident_id: str | None = None,
) -> FixRequest:
    """Normalize a diagnosis (object or dict) and/or an explicit action + params into one request."""
    req = FixRequest(uuid=str(uuid or ""), action=str(action or ""), params=dict(params or {}))
    if diagnosis is not None:
        rc = _get(diagnosis, "root_cause") or {}
        cls_ = _get(diagnosis, "classification") or {}
        req.uuid = req.uuid or str(_get(diagnosis, "uuid") or "")
        req.root_cause = str(_get(rc, "id") or "")
        req.healthy = str(_get(diagnosis, "step") or "") == "none" or req.root_cause == "healthy"
        if not action:
            req.action = str(_get(rc, "fix") or ("" if req.healthy else "ticket"))
            req.params = dict(_get(rc, "fix_params") or {})
        req.reason = str(_get(rc, "summary") or "")
        req.entry = str(_get(cls_, "entry") or "")
        req.transient = bool(_get(cls_, "transient") or False)
        req.step = str(_get(diagnosis, "step") or _get(cls_, "step") or "")
        esm = _get(diagnosis, "esm") or {}
        if isinstance(esm, Mapping) and (esm.get("EventSourceMappingArn") or esm.get("FunctionArn")):
            req.esm = dict(esm)
        if req.entry and req.root_cause:
            req.catalogue_safety = _catalogue_safety(req.entry, req.root_cause, req.action)
    req.incident_id = str(incident_id or "")
    if not req.action and not req.healthy:
        req.action = "ticket"
    return req


def _catalogue_safety(entry_id: str, root_cause: str, action: str) -> str | None:
    try:
        from esm_medic.catalogue import get_catalogue

        entry = get_catalogue().get(entry_id)
    except Exception as exc:  # the action's own safety class still applies
        logger.warning("catalogue unreadable: no catalogue safety class", extra={"entry": entry_id, "error": str(exc)})
        return None
    if entry is None:
        return None
    fix = entry.fix_for(root_cause)
    if fix is None or fix.action != action:
        return None
    return fix.safety


def default_incident_id(uuid: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"inc-{stamp}-{(uuid or 'manual')[:8]}"


def _settings(settings: Settings | None) -> Settings:
    return settings or Settings.from_env()


def _get_esm(aws: Aws, uuid: str) -> tuple[dict[str, Any] | None, str]:
    if not uuid:
        return None, "no ESM uuid given"
    try:
        item = aws.call("lambda", "get_event_source_mapping", UUID=uuid)
    except Exception as exc:
        if is_not_found(exc):
            return None, f"ESM {uuid} does not exist"
        return None, f"cannot read ESM {uuid}: {error_code(exc) or type(exc).__name__}: {error_message(exc)}"
    item.pop("ResponseMetadata", None)
    return item, ""


def _account(aws: Aws, esm: Mapping[str, Any] | None) -> str:
    for key in ("EventSourceMappingArn", "FunctionArn", "EventSourceArn"):
        arn = str((esm or {}).get(key) or "")
        parts = arn.split(":")
        if arn.startswith("arn:") and len(parts) > 4 and parts[4]:
            return parts[4]
    try:
        return aws.account_id()
    except Exception as exc:  # the account budget scope becomes 'unknown' (still counted)
        logger.warning("account id unreadable", extra={"error": str(exc)})
        return "unknown"


def _base_result(req: FixRequest, status: str, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "status": status,
        "uuid": req.uuid,
        "action": req.action,
        "params": req.params,
        "incident_id": req.incident_id,
        "action_id": None,
        "plan": None,
        "decision": None,
        "error": None,
    }
    out.update(extra)
    return out


# ---------------------------------------------------------------------------------------------- shared steps
@dataclass
class _Prepared:
    req: FixRequest
    cls: type[Any]
    esm: dict[str, Any] | None
    settings: Settings
    safety: str
    resumed: ActionRecord | None = None
    notes: list[str] = field(default_factory=list)
    scope: NetworkScope | None = None  # the ESM's network (network actions only)

    def confined(self, aws: Aws) -> contextlib.AbstractContextManager[guard.Confinement]:
        """Rule and group writes limited to the ESM's security groups (none at all for other actions)."""
        scope = self.scope if self.scope is not None and self.scope.usable else None
        return guard.confine(aws, scope.security_group_ids if scope else (), scope.vpc_id if scope else "")


def _prepare(
    aws: Aws, req: FixRequest, settings: Settings, esm: Mapping[str, Any] | None
) -> _Prepared | dict[str, Any]:
    try:
        cls = registry.get(req.action)
        req.params = cls.validate(req.params)
    except (UnknownAction, InvalidParams) as exc:
        return _base_result(req, "invalid", error=exc.message)
    item = dict(esm) if esm else (req.esm or None)
    notes: list[str] = []
    if item is None:
        item, note = _get_esm(aws, req.uuid)
        if note:
            notes.append(note)
    safety = stricter(cls.default_safety, req.catalogue_safety)
    scope = resolve(aws, item) if cls.network_bound else None
    return _Prepared(req=req, cls=cls, esm=item, settings=settings, safety=safety, notes=notes, scope=scope)


def _esm_problems(prep: _Prepared, act: Any) -> list[str]:
    if not prep.esm:
        return []
    from esm_medic.esm import EsmConfig

    try:
        return list(act.check_esm(EsmConfig.from_api(prep.esm)))
    except Exception as exc:  # pragma: no cover - defensive: a malformed ESM item never crashes the plan
        logger.warning("cannot check the ESM", extra={"uuid": prep.req.uuid, "error": str(exc)})
        return [f"cannot check the ESM: {exc}"]


def _decide(aws: Aws, prep: _Prepared, plan: Plan | None, *, mode_override: str | None, seen: int, account: str) -> Any:
    from esm_medic import policy

    scopes = [*(plan.scopes if plan else []), ("account", account)]
    return policy.evaluate(
        aws,
        action=prep.req.action,
        safety=prep.safety,
        esm=prep.esm,
        settings=prep.settings,
        uuid=prep.req.uuid,
        scopes=scopes,
        transient=prep.req.transient,
        sightings=seen,
        refused=plan.refused if plan else None,
        missing_permissions=plan.missing_permissions if plan else (),
        requires_approval=plan.requires_approval if plan else False,
        mode_override=mode_override,
    )


def _ticket(aws: Aws, req: FixRequest, settings: Settings, esm: Mapping[str, Any] | None, mode_override: str | None):
    from esm_medic import policy

    item = dict(esm) if esm else (req.esm or _get_esm(aws, req.uuid)[0])
    decision = policy.evaluate(
        aws, action="ticket", safety="manual", esm=item, settings=settings, uuid=req.uuid, mode_override=mode_override
    )
    reason = str(req.params.get("reason") or req.reason or "no automatic fix for this cause")
    status = "off" if decision.outcome == "off" else "ticket"
    return _base_result(req, status, decision=decision.to_dict(), reason=reason)


def _sightings(aws: Aws, settings: Settings, req: FixRequest, *, increment: bool) -> int:
    """Earlier sightings of a transient error (0 when the entry is not transient or the table is unreadable)."""
    if not req.transient or not req.uuid:
        return 0
    counter = sightings(aws, settings, req.uuid, req.entry or req.action)
    try:
        if increment:
            return counter.increment() - 1
        return counter.get()
    except Exception as exc:  # counted as a first sighting: the cautious answer (notify, no change)
        logger.warning("sightings counter unavailable", extra={"uuid": req.uuid, "error": str(exc)})
        return 0
