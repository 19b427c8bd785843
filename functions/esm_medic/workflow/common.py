"""Shared pieces of the workflow steps: outcomes and routes, limits, naming, the errors the state machine routes by
name, and the one helper that reads a step payload."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger

#: the workflow's logic logs through the handlers' Powertools logger (same keys, the ESM uuid as correlation id)
logger = Logger(service="esm-medic", child=True)

#: final outcomes of an execution, plus the intermediate ``pending-approval``
OUTCOMES = (
    "recovered",
    "healthy-noop",
    "ticketed",
    "failed-with-ticket",
    "notified",
    "skipped",
    "joined",
    "transient",
    "pending-approval",
    "suspected",
)
#: outcomes recorded before a wait (overwritten by the final one)
INTERMEDIATE_OUTCOMES = ("pending-approval", "suspected")
FINAL_OUTCOMES = tuple(o for o in OUTCOMES if o not in INTERMEDIATE_OUTCOMES)
ROUTES = ("auto", "approve", "ticket", "notify", "skip", "join")
#: an incident claim outlives the longest wait of its owner (approval + verification) by this margin
CLAIM_MARGIN_SECONDS = 900
#: a finished owner's claim lingers this long (late executions of the same storm join it)
CLAIM_COOLDOWN_SECONDS = 900
#: policy outcome (esm_medic.policy.Decision.outcome) -> workflow route
POLICY_ROUTE = {"auto": "auto", "approve": "approve", "ticket": "ticket", "notify": "notify", "shadow": "notify"}

EXECUTION_NAME_MAX = 80
STATUS_FIELDS = ("State", "StateTransitionReason", "LastProcessingResult")
MAX_TEXT = 4096
MAX_DIAGNOSIS_BYTES = 96_000  # the whole state must stay well under Step Functions' 256 KB
OUTCOME_TTL_DAYS = 400
OUTCOME_SK_PREFIX = "OUTCOME#"
ACTOR = "esm-medic-workflow"
INCIDENT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]")
_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
TRANSITIONAL_STATES = frozenset({"Creating", "Enabling", "Updating", "Disabling", "Deleting"})
DUPLICATE_SKEW_SECONDS = 5


class InputRejected(ValueError):
    """The event is not one the workflow acts on (malformed, or well formed but not an error)."""

    def __init__(self, reason: str, *, ignored: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.ignored = ignored


# ================================================================================================ naming
def _norm(text: Any) -> str:
    return " ".join(str(text or "").split())


def status_of(obj: Mapping[str, Any] | None) -> dict[str, str]:
    """The three ESM status fields of an item / status dict, whitespace-normalised and clipped."""
    obj = obj or {}
    return {k: _norm(obj.get(k))[:MAX_TEXT] for k in STATUS_FIELDS}


def status_fingerprint(uuid: str, status: Mapping[str, Any], incident_id: str = "") -> str:
    """16 hex chars identifying (incident, ESM, status): duplicates of one event share it."""
    s = status_of(status)
    raw = "\x1f".join([incident_id, uuid.lower(), s["State"], s["StateTransitionReason"], s["LastProcessingResult"]])
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:16]


def sanitize_execution_name(text: str) -> str:
    """Step Functions execution names: 1-80 characters of letters, digits, ``-`` and ``_``."""
    name = _NAME_BAD.sub("_", text).strip("_") or "esm"
    return name[:EXECUTION_NAME_MAX]


def execution_name(uuid: str, status: Mapping[str, Any] | str, incident_id: str = "") -> str:
    """``<uuid>-<fingerprint>``: one name per (incident, ESM, status); ``status`` may be a ready fingerprint."""
    fp = status if isinstance(status, str) else status_fingerprint(uuid, status, incident_id)
    return sanitize_execution_name(f"{uuid}-{fp}")


def safe_incident_id(incident_id: str, uuid: str, fingerprint: str) -> str:
    """An incident id the remediation side accepts (1-64 of ``[A-Za-z0-9._-]``); derived when missing / odd."""
    if incident_id and INCIDENT_ID_RE.match(incident_id):
        return incident_id
    if incident_id:
        return f"inc-{hashlib.sha256(incident_id.encode()).hexdigest()[:20]}"
    return f"inc-{uuid[:8]}-{fingerprint[:12]}"


class StepFailed(RuntimeError):
    """A workflow step could not do its job; ``throttled`` tells the handler to raise ``Throttled``."""

    def __init__(self, message: str, *, throttled: bool = False) -> None:
        super().__init__(message)
        self.throttled = throttled


class NotApplied(RuntimeError):
    """The engine declined to apply at apply time (lock held, budget spent, plan refused, decision changed)."""


class RemediationFailed(RuntimeError):
    """The engine tried to apply and failed (what it had created was removed again); the message names the
    action id (``[action act-...]``) so the after-error rollback touches only this execution's action."""

    def __init__(self, message: str, *, throttled: bool = False, action_id: str | None = None) -> None:
        super().__init__(f"{message} [action {action_id}]" if action_id else message)
        self.throttled = throttled
        self.action_id = action_id


class TableMissing(RuntimeError):
    """A DynamoDB table esm-medic needs does not exist; the message names it."""


class LockConflict(RuntimeError):
    """Another run holds the ESM lock: this execution joins the running incident (no ticket, no rollback)."""


ACTION_ID_IN_ERROR = re.compile(r"\[action (act-[0-9a-f]{8,64})\]")


# ================================================================================================ payloads
def obj(holder: Any, *path: str) -> dict[str, Any]:
    """The object at ``holder[path[0]][path[1]]...`` as a dict ({} when missing or not an object)."""
    value = dig(holder, *path)
    return dict(value) if isinstance(value, Mapping) else {}


def dig(holder: Any, *path: str) -> Any:
    """The value at ``holder[path[0]][path[1]]...`` (None when a step of the path is missing)."""
    for p in path:
        if not isinstance(holder, Mapping):
            return None
        holder = holder.get(p)
    return holder
