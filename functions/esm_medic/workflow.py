"""The remediation workflow's logic: what each Step Functions task does, as plain functions over the adapter.

The state machine (``statemachine/remediate.asl.json``) calls one thin handler per step
(``esm_medic.handlers.<step>``); each handler validates its event and calls one function here:

=============  ============================================================================================
start          :func:`start_workflow` - EventBridge target: normalise the event, derive the execution name
               from the ESM uuid + status fingerprint, ``StartExecution``; a duplicate event meets
               ``ExecutionAlreadyExists`` and is reported as a duplicate (nothing else happens).
classify       :func:`classify_step` - validate / normalise the execution input, classify the status text.
diagnose       :func:`diagnose_step` - :func:`esm_medic.diagnose.diagnose`, made small for the state.
decide         :func:`decide_step` - the fix the diagnosis names, its plan, and the policy decision -> route.
remediate      :func:`remediate_step` - apply the plan (once per incident + plan fingerprint), restart polling.
verify         :func:`verify_step` - re-read the ESM, restart polling if needed, decide recovered / retry / give up.
rollback       :func:`rollback_step` - undo the change when the ESM is no better than before (or after an error).
record         :func:`record_outcome` - the outcome (STATE record + audit entry, with timings); on the failure
               path it opens the ticket itself when none was opened.
=============  ============================================================================================

Routes (``decision.route``): ``auto`` (apply now), ``approve`` (wait for a human), ``ticket`` (a human fixes it),
``notify`` (tell, change nothing; also shadow mode), ``skip`` (mode off, ESM gone). Outcomes: :data:`OUTCOMES`.

Everything reaches AWS through :class:`esm_medic.aws.Aws`; nothing here imports handlers, the CLI or the sandbox.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from esm_medic.aws import error_code
from esm_medic.steps import step_index

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws
    from esm_medic.config import Settings

#: final outcomes of an execution, plus the intermediate ``pending-approval``
OUTCOMES = (
    "recovered",
    "healthy-noop",
    "ticketed",
    "failed-with-ticket",
    "notified",
    "skipped",
    "joined",
    "pending-approval",
)
FINAL_OUTCOMES = tuple(o for o in OUTCOMES if o != "pending-approval")
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


# ================================================================================================ input
@dataclass
class WorkflowInput:
    """The execution input the ``start`` handler builds (and ``classify`` re-validates)."""

    uuid: str
    incident_id: str
    fingerprint: str
    execution_name: str
    trigger: str
    status: dict[str, str]
    event: dict[str, Any]
    observed_at: str = ""

    def to_input(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "incident_id": self.incident_id,
            "fingerprint": self.fingerprint,
            "trigger": self.trigger,
            "status": self.status,
            "observed_at": self.observed_at,
            "event": self.event,
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compact_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """The event as kept in the state: the envelope keys and the detail, long texts clipped."""
    keep = ("version", "id", "source", "detail-type", "account", "region", "time", "resources")
    out: dict[str, Any] = {k: event[k] for k in keep if k in event}
    detail = event.get("detail")
    if isinstance(detail, Mapping):
        out["detail"] = _clip(detail, MAX_TEXT)
    return out


def _clip(obj: Any, limit: int, depth: int = 0) -> Any:
    if isinstance(obj, str):
        return obj[:limit]
    if depth > 8:
        return None
    if isinstance(obj, Mapping):
        return {str(k): _clip(v, limit, depth + 1) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clip(v, limit, depth + 1) for v in list(obj)[:200]]
    return obj


def normalise_event(event: Any) -> WorkflowInput:
    """Turn what can start the workflow into a :class:`WorkflowInput`.

    Accepted: an esm-medic ``ESM Status Change`` event (what the EventBridge rule delivers), an already
    normalised workflow input (``uuid`` + ``status``; manual / CLI starts), or a bare ESM item (``UUID`` + status
    fields). Recoveries and healthy statuses raise ``InputRejected(ignored=True)``; anything malformed raises
    ``InputRejected``.
    """
    if isinstance(event, str | bytes | bytearray):
        try:
            event = json.loads(event)
        except ValueError as exc:
            raise InputRejected(f"not JSON: {exc}") from None
    if not isinstance(event, Mapping):
        raise InputRejected(f"the event must be a JSON object, got {type(event).__name__}")
    if "detail-type" in event or "detail" in event:
        return _from_status_change(event)
    if "uuid" in event and "status" in event:
        return _from_workflow_input(event)
    if "UUID" in event:
        uuid = str(event["UUID"])
        return _from_parts(uuid, status_of(event), incident_id="", trigger="manual", event={"esm": _clip(event, 1024)})
    raise InputRejected("unrecognised input: expected an 'ESM Status Change' event, a workflow input or an ESM item")


def _from_status_change(event: Mapping[str, Any]) -> WorkflowInput:
    from esm_medic.detect.events import EventRejected, parse_status_change

    try:
        change = parse_status_change(event)
    except EventRejected as exc:
        raise InputRejected(exc.reason) from None
    if not change.is_error:
        raise InputRejected(f"ESM {change.uuid} reports no error (recovered or healthy): nothing to do", ignored=True)
    return _from_parts(
        change.uuid,
        status_of(change.new),
        incident_id=change.incident_id,
        trigger=change.trigger,
        event=compact_event(event),
        observed_at=change.observed_at,
    )


def _from_workflow_input(event: Mapping[str, Any]) -> WorkflowInput:
    uuid = str(event.get("uuid") or "")
    status = event.get("status")
    if not isinstance(status, Mapping):
        raise InputRejected("'status' must be an object with State / StateTransitionReason / LastProcessingResult")
    raw_event = event.get("event")
    return _from_parts(
        uuid,
        status_of(status),
        incident_id=str(event.get("incident_id") or ""),
        trigger=str(event.get("trigger") or "manual"),
        event=dict(raw_event) if isinstance(raw_event, Mapping) else {},
        observed_at=str(event.get("observed_at") or ""),
        fingerprint=str(event.get("fingerprint") or ""),
    )


def _from_parts(
    uuid: str,
    status: dict[str, str],
    *,
    incident_id: str,
    trigger: str,
    event: dict[str, Any],
    observed_at: str = "",
    fingerprint: str = "",
) -> WorkflowInput:
    if not _UUID_RE.match(uuid):
        raise InputRejected(f"not an event source mapping uuid: {uuid[:80]!r}")
    if not any(status.values()):
        raise InputRejected(f"ESM {uuid}: the status is empty")
    if not incident_id:
        # no incident from detection: one incident per (ESM, status, hour), so a re-break later is a new one
        hour = datetime.now(UTC).strftime("%Y%m%dT%H")
        base = status_fingerprint(uuid, status, hour)
        incident_id = f"inc-{hour}-{uuid[:8]}-{base[:6]}"
    fp = fingerprint if re.fullmatch(r"[0-9a-f]{16}", fingerprint or "") else ""
    fp = fp or status_fingerprint(uuid, status, incident_id)
    safe = safe_incident_id(incident_id, uuid, fp)
    return WorkflowInput(
        uuid=uuid,
        incident_id=safe,
        fingerprint=fp,
        execution_name=execution_name(uuid, fp),
        trigger=trigger or "manual",
        status=status,
        event=event,
        observed_at=observed_at or datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    )


# ================================================================================================ start
def start_workflow(aws: Aws, state_machine_arn: str, event: Any) -> dict[str, Any]:
    """Start one execution for ``event``; a duplicate (same name) is reported, not an error.

    Returns ``{"started", "duplicate", "ignored", "execution_name", "execution_arn", "uuid", "incident_id",
    "reason"}``. Raises InputRejected for malformed events (the handler turns it into a clean result).
    """
    try:
        wi = normalise_event(event)
    except InputRejected as exc:
        if exc.ignored:
            return {"started": False, "duplicate": False, "ignored": True, "reason": exc.reason}
        raise
    base = {"uuid": wi.uuid, "incident_id": wi.incident_id, "execution_name": wi.execution_name}
    arn = execution_arn(state_machine_arn, wi.execution_name)
    asked_at = datetime.now(UTC)
    try:
        resp = aws.call(
            "stepfunctions",
            "start_execution",
            stateMachineArn=state_machine_arn,
            name=wi.execution_name,
            input=json.dumps(wi.to_input(), separators=(",", ":")),
        )
    except Exception as exc:
        if error_code(exc) == "ExecutionAlreadyExists":
            return {
                **base,
                "started": False,
                "duplicate": True,
                "ignored": False,
                "execution_arn": arn,
                "reason": "an execution for this ESM and status already exists (duplicate event)",
            }
        raise
    started = resp.get("startDate")
    if isinstance(started, datetime) and started.astimezone(UTC) < asked_at - timedelta(seconds=DUPLICATE_SKEW_SECONDS):
        # AWS answers a repeated StartExecution with the same name and input, while the first still runs, with the
        # first execution (no error): an older start date means this event is a duplicate too
        return {
            **base,
            "started": False,
            "duplicate": True,
            "ignored": False,
            "execution_arn": resp["executionArn"],
            "reason": "the execution for this ESM and status is already running (duplicate event)",
        }
    return {**base, "started": True, "duplicate": False, "ignored": False, "execution_arn": resp["executionArn"]}


def execution_arn(state_machine_arn: str, name: str) -> str:
    """``arn:...:stateMachine:<sm>`` + name -> ``arn:...:execution:<sm>:<name>``."""
    return state_machine_arn.replace(":stateMachine:", ":execution:", 1) + ":" + name


# ================================================================================================ classify
CLASSIFICATION_KEYS = (
    "entry",
    "step",
    "kind",
    "healthy",
    "title",
    "confidence",
    "auto_fixable",
    "fixable",
    "transient",
    "runbook",
    "field",
    "text",
    "params",
    "catalogue_version",
)


def compact_classification(c: Any) -> dict[str, Any]:
    d = c.to_dict() if hasattr(c, "to_dict") else dict(c)
    out = {k: d.get(k) for k in CLASSIFICATION_KEYS}
    out["text"] = str(out.get("text") or "")[:1024]
    out["params"] = dict(out.get("params") or {})
    return out


def classify_status(status: Mapping[str, Any], uuid: str = "") -> dict[str, Any]:
    """Classify an ESM status dict (the same way as an ESM item)."""
    from esm_medic.classify import classify

    item = {"UUID": uuid, **status_of(status)}
    return compact_classification(classify(item))


def classify_step(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Classify task: ``{"input": <execution state>}`` -> the normalised input + ``run`` + ``classification``."""
    started = time.perf_counter()
    state = payload.get("input")
    if not isinstance(state, Mapping):
        raise InputRejected("classify: 'input' must be the execution state object")
    run = _obj(state, "run")
    source = {k: v for k, v in state.items() if k != "run"}
    wi = normalise_event(source)
    classification = classify_status(wi.status, wi.uuid)
    classification["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return {
        "uuid": wi.uuid,
        "incident_id": wi.incident_id,
        "fingerprint": wi.fingerprint,
        "trigger": wi.trigger,
        "status": wi.status,
        "event": wi.event,
        "observed_at": wi.observed_at,
        "run": dict(run),
        "classification": classification,
    }


# ================================================================================================ diagnose
def _json_size(obj: Any) -> int:
    return len(json.dumps(obj, default=str, separators=(",", ":")))


def esm_status_from(esm: Mapping[str, Any]) -> dict[str, str]:
    """The status fields of an ESM item (API keys) or of the diagnosis' ESM summary (snake_case keys)."""
    return status_of(
        {
            "State": esm.get("State") or esm.get("state"),
            "StateTransitionReason": esm.get("StateTransitionReason") or esm.get("state_transition_reason"),
            "LastProcessingResult": esm.get("LastProcessingResult") or esm.get("last_processing_result"),
        }
    )


def compact_diagnosis(d: Mapping[str, Any]) -> dict[str, Any]:
    """The diagnosis as the state carries it: no duplicate classification, findings kept, evidence clipped when
    the whole would be large; ``esm_status`` (the status when diagnosed) and ``function_arn`` always present."""
    esm = _obj(d, "esm")
    findings = [dict(f) for f in d.get("findings") or [] if isinstance(f, Mapping)]
    out: dict[str, Any] = {
        "healthy": bool(d.get("healthy")),
        "state": str(d.get("state") or ""),
        "step": str(d.get("step") or "unknown"),
        "root_cause": dict(d.get("root_cause") or {}),
        "findings": findings,
        "network": d.get("network"),
        "esm_status": esm_status_from(esm),
        "function_arn": str(esm.get("function") or esm.get("FunctionArn") or ""),
        "esm": esm,
        "api_calls": int(d.get("api_calls") or 0),
        "elapsed_ms": None,
    }
    if _json_size(out) > MAX_DIAGNOSIS_BYTES:
        for f in findings:
            f["evidence"] = {"clipped": True}
    if _json_size(out) > MAX_DIAGNOSIS_BYTES:
        out["findings"] = [f for f in findings if f.get("status") in ("fail", "unknown")][:50]
    return out


class StepFailed(RuntimeError):
    """A workflow step could not do its job; ``throttled`` tells the handler to raise ``Throttled``."""

    def __init__(self, message: str, *, throttled: bool = False) -> None:
        super().__init__(message)
        self.throttled = throttled


def _gone(uuid: str, state: str, summary: str) -> dict[str, Any]:
    return compact_diagnosis(
        {
            "healthy": False,
            "state": state,
            "step": "unknown",
            "root_cause": {
                "id": "esm-deleted" if state == "Deleted" else "not-kafka",
                "summary": summary,
                "step": "unknown",
                "fix": "ticket",
                "fix_params": {},
                "confidence": 1.0,
                "evidence": [],
            },
            "esm": {"uuid": uuid, "state": state},
        }
    )


def diagnose_step(aws: Aws, uuid: str) -> dict[str, Any]:
    """Diagnose task: read-only diagnosis. An ESM that no longer exists gives ``state: "Deleted"`` and one that is
    not a Kafka ESM ``state: "NotKafka"`` (the decision then skips); a read throttled past the adapter's retries
    raises :class:`StepFailed` with ``throttled``."""
    from esm_medic.diagnose import DiagnoseError, EsmNotFound, NotKafkaEsm, diagnose

    started = time.perf_counter()
    try:
        out = compact_diagnosis(diagnose(aws, uuid).to_dict())
    except EsmNotFound as exc:
        out = _gone(uuid, "Deleted", f"the event source mapping no longer exists ({exc})")
    except NotKafkaEsm as exc:
        out = _gone(uuid, "NotKafka", str(exc))
    except DiagnoseError as exc:
        raise StepFailed(f"diagnosis could not start: {exc}", throttled="throttl" in str(exc).lower()) from exc
    out["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return out


# ================================================================================================ decide
@dataclass
class RouteDecision:
    route: str
    mode: str
    reason: str
    safety: str = "manual"
    fix: str = "ticket"
    shadow: bool = False
    checks: dict[str, Any] = field(default_factory=dict)
    plan: dict[str, Any] | None = None
    planned_action_id: str | None = None  # the engine's 'planned' audit row an approval is bound to
    root_cause_fingerprint: str = ""
    claim: dict[str, Any] = field(default_factory=dict)
    elapsed_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def fix_request(uuid: str, classification: Mapping[str, Any], diagnosis: Mapping[str, Any]) -> dict[str, Any]:
    """What the engine reads from a diagnosis (its ``request_from``), built from the state's pieces. No ESM item:
    the engine reads the live one (mode tags, state)."""
    return {
        "uuid": uuid,
        "step": diagnosis.get("step"),
        "root_cause": dict(diagnosis.get("root_cause") or {}),
        "classification": {
            "entry": classification.get("entry"),
            "step": classification.get("step"),
            "transient": bool(classification.get("transient")),
        },
    }


def _plan_error_is_throttling(result: Mapping[str, Any]) -> bool:
    details = _obj(result, "details")
    return bool(details.get("throttled")) or "throttl" in str(result.get("error") or "").lower()


def root_cause_fingerprint(uuid: str, diagnosis: Mapping[str, Any]) -> str:
    """16 hex chars naming (ESM, root cause, fix): every incident of one cause on one ESM shares it, whatever the
    status text; incidents, approval requests and tickets are keyed by it."""
    rc = _obj(diagnosis, "root_cause")
    parts = [uuid.lower(), str(rc.get("id") or diagnosis.get("step") or "unknown"), str(rc.get("fix") or "ticket")]
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:16]


def claim_ttl(run: Mapping[str, Any]) -> int:
    """How long an owner may hold an incident: its approval wait plus its verification window, plus a margin."""

    def num(key: str, default: int) -> int:
        try:
            value = run.get(key)
            return default if value is None else max(0, int(value))
        except (TypeError, ValueError):
            return default

    verify = num("verify_max_attempts", 12) * max(1, num("verify_max_wait_seconds", 300))
    return num("approval_timeout_seconds", 86400) + verify + CLAIM_MARGIN_SECONDS


def _esm_ok_now(aws: Aws, uuid: str) -> bool:
    item = aws.call("lambda", "get_event_source_mapping", UUID=uuid)
    status = status_of(item)
    return status["State"] == "Enabled" and bool(classify_status(status, uuid).get("healthy"))


def claim_incident(
    aws: Aws,
    settings: Settings,
    *,
    uuid: str,
    incident_id: str,
    execution: str,
    key: str,
    ttl_seconds: int,
) -> dict[str, Any]:
    """Own the (ESM, root cause) incident ``key`` or join its owner.

    Returns ``{"key", "won", "owner", "joined_execution", "joined_incident", "holder_state", "holder_outcome"}``.
    The first execution owns it; a later one joins (its name is recorded on the claim) unless the owner finished
    with ``recovered`` and the ESM fails again now (then it takes over). Without an execution name (a direct
    call) nothing is claimed.
    """
    from esm_medic.remediate.lock import IncidentClaim

    out: dict[str, Any] = {
        "key": key,
        "won": True,
        "owner": execution,
        "joined_execution": None,
        "joined_incident": None,
        "holder_state": None,
        "holder_outcome": None,
    }
    if not execution:
        return out
    claim = IncidentClaim(aws, uuid, key, table=settings.state_table)
    for _ in range(4):
        if claim.acquire(execution, incident_id, ttl_seconds):
            return out
        holder = claim.holder()
        if holder is None:  # released between the two calls
            continue
        if holder.state == "done" and holder.outcome == "recovered" and not _esm_ok_now(aws, uuid):
            if claim.take_over(execution, incident_id, ttl_seconds, holder.owner):
                return out
            continue
        claim.join(execution)
        out.update(
            won=False,
            owner=holder.owner,
            joined_execution=holder.owner,
            joined_incident=holder.incident_id,
            holder_state=holder.state,
            holder_outcome=holder.outcome or None,
        )
        return out
    raise StepFailed(f"the incident claim {key} of ESM {uuid} kept changing hands; retry")


def finish_claim(aws: Aws, record: Mapping[str, Any], cooldown_seconds: int = CLAIM_COOLDOWN_SECONDS) -> bool:
    """The owner recorded its final outcome: mark its claim done (joiners of the cool-down see the outcome)."""
    from esm_medic.remediate.lock import IncidentClaim
    from esm_medic.tables import STATE

    key = str(record.get("root_cause_fingerprint") or "")
    owner = str(record.get("claim_owner") or "")
    if not key or not owner or owner != record.get("execution"):
        return False
    claim = IncidentClaim(aws, str(record["uuid"]), key, table=STATE.name)
    return claim.finish(owner, str(record.get("outcome") or ""), cooldown_seconds)


def decide_step(
    aws: Aws,
    *,
    uuid: str,
    incident_id: str,
    classification: Mapping[str, Any],
    diagnosis: Mapping[str, Any],
    settings: Settings | None = None,
    execution: str = "",
    run: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Decide task: the diagnosis' fix -> the engine's read-only plan + policy decision -> route (:data:`ROUTES`).

    First the execution claims the incident (ESM + root-cause fingerprint, :func:`claim_incident`); an execution
    that finds it owned by another one gets route ``join`` and plans nothing (no approval request, no ticket).
    A plan the engine could not make because AWS kept throttling raises :class:`StepFailed` with
    ``throttled`` so the handler maps it to ``Throttled`` (retried by the state machine).
    """
    from esm_medic.config import Settings
    from esm_medic.remediate import engine

    started = time.perf_counter()
    settings = settings or Settings.from_env()
    rc = _obj(diagnosis, "root_cause")
    action = str(rc.get("fix") or "ticket")
    summary = str(rc.get("summary") or "")
    key = root_cause_fingerprint(uuid, diagnosis)
    claim: dict[str, Any] = {"key": key, "won": True, "owner": execution or None}

    def done(d: RouteDecision) -> dict[str, Any]:
        d.elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
        d.root_cause_fingerprint = key
        d.claim = claim
        return d.to_dict()

    if diagnosis.get("state") in ("Deleted", "NotKafka"):
        return done(RouteDecision("skip", "n/a", f"nothing to fix: {summary}", fix="none"))

    claim = claim_incident(
        aws,
        settings,
        uuid=uuid,
        incident_id=incident_id,
        execution=execution,
        key=key,
        ttl_seconds=claim_ttl(run or {}),
    )
    if not claim["won"]:
        held = "finished" if claim["holder_state"] == "done" else "is handling"
        outcome = f" ({claim['holder_outcome']})" if claim["holder_outcome"] else ""
        reason = (
            f"joined the running incident: execution {claim['joined_execution']} {held} this cause{outcome} "
            f"(incident {claim['joined_incident']}); nothing else is done here"
        )
        return done(RouteDecision("join", "n/a", reason, fix=action))

    request = fix_request(uuid, classification, diagnosis)
    result = engine.plan_fix(aws, request, incident_id=incident_id, settings=settings)
    status = str(result.get("status") or "failed")
    decision = _obj(result, "decision")
    plan = _obj(result, "plan") or None
    outcome = str(decision.get("outcome") or "")
    reasons = [str(r) for r in decision.get("reasons") or [] if r]
    mode = str(decision.get("mode") or settings.default_mode)
    safety = str(decision.get("safety") or (plan or {}).get("safety") or "manual")

    if status in ("failed", "invalid"):
        if _plan_error_is_throttling(result):
            raise StepFailed(f"planning {action} was throttled: {result.get('error')}", throttled=True)
        route, reason = "ticket", f"esm-medic could not plan {action}: {result.get('error') or status}"
    elif status == "off" or outcome == "off":
        route, reason = "skip", "; ".join(reasons) or "mode is off"
    elif status == "ticket" or action == "ticket":
        route = POLICY_ROUTE.get(outcome, "ticket") if outcome in ("notify",) else "ticket"
        reason = str(result.get("reason") or "") or "; ".join(reasons) or "no automatic fix for this cause"
    elif status == "refused":
        route, reason = "ticket", f"the plan was refused: {result.get('error') or (plan or {}).get('refused')}"
    elif status == "healthy":
        route, reason = "ticket", "the diagnosis names no fix although the ESM reports an error"
    else:  # planned / noop
        route = POLICY_ROUTE.get(outcome, "ticket")
        reason = "; ".join(reasons) or outcome
        if status == "noop" and route in ("auto", "approve"):
            route = "auto"
            reason = f"{reason}; the account already has what {action} would add: restart polling and verify"
    planned_action_id: str | None = None
    if route == "approve" and status == "planned":
        # write the engine's 'planned' audit row: the approval (and the apply) are bound to exactly this plan
        recorded = engine.plan_fix(aws, request, incident_id=incident_id, settings=settings, record=True)
        if recorded.get("status") == "planned" and recorded.get("action_id"):
            planned_action_id = str(recorded["action_id"])
            plan = _obj(recorded, "plan") or plan
    if route == "notify" and outcome == "shadow":
        shadow = engine.apply_fix(aws, request, incident_id=incident_id, settings=settings, restart=False)
        reason = f"{reason} (shadow audit record: {shadow.get('status')})"
    if bool(classification.get("transient")) and status in ("planned", "noop"):
        _note_sighting(aws, settings, uuid, str(classification.get("entry") or action))
    if summary and route in ("ticket", "approve", "notify"):
        reason = f"{reason}. Diagnosis: {summary}"
    return done(
        RouteDecision(
            route=route,
            mode=mode,
            reason=reason[:2000],
            safety=safety,
            fix=action,
            shadow=bool(decision.get("shadow")),
            checks=dict(decision),
            plan=dict(plan) if plan is not None else None,
            planned_action_id=planned_action_id,
        )
    )


def _note_sighting(aws: Aws, settings: Settings, uuid: str, key: str) -> None:
    """Count one sighting of a transient error (policy fixes it from the second sighting on)."""
    try:
        from esm_medic.remediate.budget import sightings

        sightings(aws, settings, uuid, key).increment()
    except Exception:  # a lost count only delays a transient fix by one sighting
        return


# ================================================================================================ remediate
def remediate_step(aws: Aws, payload: Mapping[str, Any], *, settings: Settings | None = None) -> dict[str, Any]:
    """Remediate task: apply the fix under the engine's lock / policy / budget / audit, then restart polling.

    The engine re-plans from the live state, so a repeated call makes no second change; the handler also wraps
    this in Powertools idempotency (uuid + incident + plan fingerprint). An approved plan is applied as approved
    by the approver. Raises :class:`NotApplied` when the engine declined, :class:`RemediationFailed` when applying
    failed (``throttled`` set when AWS kept throttling).
    """
    from esm_medic.config import Settings
    from esm_medic.remediate import engine

    started = time.perf_counter()
    settings = settings or Settings.from_env()
    uuid = str(payload["uuid"])
    plan = _obj(payload, "plan")
    classification = _obj(payload, "classification")
    diagnosis = _obj(payload, "diagnosis")
    approval = _obj(payload, "approval")
    request = fix_request(uuid, classification, diagnosis)
    if plan.get("action"):
        request["root_cause"] = {**request["root_cause"], "fix": plan["action"], "fix_params": plan.get("params") or {}}
    approved = approval.get("approved") is True
    approver = str(approval.get("approver") or "") or None
    decision = _obj(payload, "decision")
    bound: dict[str, Any] = {}
    if approved:  # the apply may only make the calls of the plan the human saw
        if decision.get("planned_action_id"):
            bound["planned_action_id"] = str(decision["planned_action_id"])
        elif plan:
            bound["approved_plan"] = dict(plan)
    result = engine.apply_fix(
        aws,
        request,
        incident_id=str(payload["incident_id"]),
        settings=settings,
        approved=approved,
        approver=approver if approved else None,
        restart=True,
        **bound,
    )
    status = str(result.get("status") or "failed")
    restart_info = _obj(result, "restart") or None
    if status == "noop":
        restart_info = engine.restart_esm(aws, uuid, settings=settings)
    elif status == "failed":
        raise RemediationFailed(
            f"applying {result.get('action')} failed: {result.get('error')}",
            throttled=bool(result.get("throttled")),
            action_id=str(result.get("action_id") or "") or None,
        )
    elif status == "locked":
        raise LockConflict(f"the ESM lock is held by another run: {result.get('error') or ''}".strip())
    elif status not in ("applied",):
        raise NotApplied(f"the engine did not apply {result.get('action')}: {status}: {result.get('error') or ''}")
    return {
        "action": result.get("action"),
        "action_id": result.get("action_id"),
        "applied": status == "applied",
        "changed": bool(result.get("changed")),
        "noop": status == "noop",
        "restarted": bool((restart_info or {}).get("restarted")),
        "before": result.get("before") or {},
        "after": result.get("after") or {},
        "created": result.get("created") or {},
        "status": status,
        "execution": str(payload.get("execution") or ""),
        "joined": False,
        "joined_execution": None,
        "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
    }


# ================================================================================================ verify
def verify_step(aws: Aws, payload: Mapping[str, Any], *, settings: Settings | None = None) -> dict[str, Any]:
    """Verify task: one look at the ESM. Returns ``{"recovered", "exhausted", "attempts", "status", "step",
    "entry", "next_wait_seconds", "restarts", "history"}``.

    Restarts polling when the ESM sits Disabled although it was enabled when diagnosed (enable), and once
    (disable / enable) when the second look still shows the original error. ``exhausted`` is set when not
    recovered after ``max_attempts`` looks. The final verdict (recovered or exhausted) is recorded once through
    the engine's ``verify_fix`` (audit row ``verified`` / ``verify-failed``, failed-verification counter).
    """
    from esm_medic.config import Settings

    started = time.perf_counter()
    settings = settings or Settings.from_env()
    uuid = str(payload["uuid"])
    prev = _obj(payload, "previous")
    attempts = int(prev.get("attempts") or 0) + 1
    restarts = int(prev.get("restarts") or 0)
    history = list(prev.get("history") or [])[-9:]
    max_attempts = max(1, int(payload.get("max_attempts") or 5))
    base_wait = max(0, int(payload.get("base_wait_seconds") or 0))
    max_wait = max(base_wait, int(payload.get("max_wait_seconds") or base_wait))
    diagnosis = _obj(payload, "diagnosis")
    record = _obj(payload, "action_record")
    before = status_of(_obj(diagnosis, "esm_status"))

    item = aws.call("lambda", "get_event_source_mapping", UUID=uuid)
    status = status_of(item)
    note = ""
    if status["State"] == "Disabled" and before.get("State") not in ("Disabled", "Disabling"):
        aws.call("lambda", "update_event_source_mapping", UUID=uuid, Enabled=True)
        restarts += 1
        note = "enabled the ESM again (it was enabled when diagnosed)"
        item = aws.call("lambda", "get_event_source_mapping", UUID=uuid)
        status = status_of(item)
    elif (
        attempts == 2
        and restarts == 0
        and status["State"] == "Enabled"
        and status["LastProcessingResult"]
        and status["LastProcessingResult"] == before.get("LastProcessingResult")
    ):
        from esm_medic.remediate import engine

        info = engine.restart_esm(aws, uuid, settings=settings)
        restarts += 1
        note = f"restarted polling: {info.get('reason')}"
        item = aws.call("lambda", "get_event_source_mapping", UUID=uuid)
        status = status_of(item)
    c = classify_status(status, uuid)
    recovered = status["State"] == "Enabled" and bool(c.get("healthy"))
    exhausted = not recovered and attempts >= max_attempts
    wait = 0 if base_wait == 0 else min(max_wait, base_wait * (2 ** (attempts - 1)))
    entry: dict[str, Any] = {
        "attempt": attempts,
        "at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "State": status["State"],
        "LastProcessingResult": status["LastProcessingResult"][:300],
        "entry": c.get("entry"),
        "step": c.get("step"),
    }
    if note:
        entry["note"] = note
    verdict: dict[str, Any] | None = None
    if recovered or exhausted:
        verdict = _final_verdict(aws, settings, uuid, str(record.get("action_id") or ""), item, exhausted)
        entry["verdict"] = verdict
    history.append(entry)
    return {
        "recovered": recovered,
        "exhausted": exhausted,
        "attempts": attempts,
        "status": status,
        "step": c.get("step"),
        "entry": c.get("entry"),
        "next_wait_seconds": int(wait),
        "restarts": restarts,
        "history": history,
        "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
    }


def _final_verdict(
    aws: Aws, settings: Settings, uuid: str, action_id: str, item: Mapping[str, Any], exhausted: bool
) -> dict[str, Any]:
    """Record the verdict once: through the engine when an action was applied (audit row + counter). When the
    workflow's window is over but the engine would still wait (its grace period is longer than the window), or no
    action was applied, the failed-verification counter is counted here so the policy's fallback still works."""
    verdict: dict[str, Any] = {"status": "verify-failed" if exhausted else "verified"}
    if action_id:
        from esm_medic.remediate import engine

        v = engine.verify_fix(aws, action_id, settings=settings, esm=dict(item))
        keys = ("status", "resource_ok", "failed_verifications", "fallback_to_ticket", "error")
        verdict = {k: v.get(k) for k in keys}
        if not (exhausted and v.get("status") == "pending"):
            return verdict
        verdict["note"] = "the verification window ended while the engine's grace period was still running"
    if exhausted:
        try:
            from esm_medic.remediate.budget import failed_verifications

            verdict["failed_verifications"] = failed_verifications(aws, settings, uuid).increment()
        except Exception as exc:  # the counter is a guard rail; losing one increment must not fail verification
            verdict["error"] = f"counter unavailable: {exc}"
    return verdict


# ================================================================================================ rollback
def is_better(before_step: str, now_step: str) -> bool:
    """True when the ESM now fails later in the set-up chain than before (or is healthy)."""
    if now_step == "none":
        return True
    b, n = step_index(before_step), step_index(now_step)
    return b >= 0 and n > b


def failed_actions(error: Mapping[str, Any] | None) -> list[str]:
    """The action ids this execution's failed remediation names (``[action act-...]`` in the Catch's cause)."""
    text = str((error or {}).get("Cause") or "")
    ids: list[str] = []
    for action_id in ACTION_ID_IN_ERROR.findall(text):
        if action_id not in ids:
            ids.append(action_id)
    return ids


def left_behind(aws: Aws, action_id: str, settings: Settings) -> bool:
    """True when the audit shows that ``action_id`` left something in place (a ``failed`` row that still lists
    what it created, because the engine's own cleanup failed)."""
    from esm_medic.remediate.audit import AuditLog

    rows = AuditLog(aws, settings.audit_table).by_action(action_id)
    if any(r.status == "rolled-back" for r in rows):
        return False
    return any(r.status == "failed" and any(r.created.values()) for r in rows)


def rollback_step(aws: Aws, payload: Mapping[str, Any], *, settings: Settings | None = None) -> dict[str, Any]:
    """Rollback task.

    ``mode == "verify-failed"``: undo the applied action when the ESM is no better than before (the same or an
    earlier set-up step failing); keep it when the ESM now gets further. ``mode == "after-error"``: remediation
    failed; undo what THIS execution's failed action left behind (named by the error, ``payload["error"]``) when
    the engine's own cleanup did not remove it. Never another execution's action, never the incident's others.
    """
    from esm_medic.config import Settings
    from esm_medic.remediate import engine

    started = time.perf_counter()
    settings = settings or Settings.from_env()
    mode = str(payload.get("mode") or "verify-failed")
    diagnosis = _obj(payload, "diagnosis")
    verification = _obj(payload, "verification")
    record = _obj(payload, "action_record")
    before_step = str(diagnosis.get("step") or "unknown")
    now_step = str(verification.get("step") or "unknown")
    out: dict[str, Any] = {
        "rolled_back": False,
        "reason": "",
        "before_step": before_step,
        "now_step": now_step,
        "removed": {},
        "restored": {},
        "results": [],
        "elapsed_ms": None,
    }
    if mode == "verify-failed" and is_better(before_step, now_step):
        out["reason"] = (
            f"The change was kept: the ESM now gets further in its set-up (failing at '{now_step}' instead of "
            f"'{before_step}'), so what remains is a different problem."
        )
    else:
        if mode == "verify-failed":
            ids = [str(record["action_id"])] if record.get("action_id") else []
        else:
            ids = [a for a in failed_actions(_obj(payload, "error")) if left_behind(aws, a, settings)]
        removed: dict[str, list[str]] = {}
        restored: dict[str, Any] = {}
        for action_id in ids:
            r = engine.rollback(aws, action_id, settings=settings)
            out["results"].append({k: r.get(k) for k in ("action_id", "status", "error")})
            if r.get("status") == "rolled-back":
                out["rolled_back"] = True
                for k, v in (r.get("removed") or {}).items():
                    removed.setdefault(k, []).extend(v)
                restored.update(r.get("restored") or {})
            elif r.get("status") in ("failed", "locked"):
                raise RemediationFailed(f"rollback of {action_id} answered {r.get('status')}: {r.get('error')}")
        out.update(removed=removed, restored=restored)
        if mode == "after-error":
            out["reason"] = (
                "Remediation failed; what this execution's attempt had left in place was rolled back."
                if out["rolled_back"]
                else "Remediation failed; nothing it started was left in place."
            )
        elif not ids:
            out["reason"] = "Nothing was changed (the fix was already in place), so nothing was rolled back."
        else:
            out["reason"] = (
                f"The change was rolled back: the ESM is no better than before (failing at '{now_step}', "
                f"before at '{before_step}')."
                if out["rolled_back"]
                else "Nothing to roll back (the change was already gone)."
            )
    out["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return out


# ================================================================================================ record
STEP_KEYS = ("classification", "diagnosis", "decision", "action_record", "verification", "rollback")


def failure_summary(state: Mapping[str, Any]) -> tuple[str, str, str]:
    """(failed step, error name, message) from the error the Catch put in the state."""
    errors: dict[str, Any] = {}
    if isinstance(state.get("classify_error"), Mapping):
        errors["classify"] = state["classify_error"]
    if isinstance(state.get("errors"), Mapping):
        errors.update({k: v for k, v in state["errors"].items() if isinstance(v, Mapping)})
    if not errors:
        return "unknown", "Unknown", "the workflow failed without an error in its state"
    step, err = next(reversed(errors.items()))
    name = str(err.get("Error") or "Unknown")
    cause = str(err.get("Cause") or "")
    message = cause
    try:
        parsed = json.loads(cause)
        if isinstance(parsed, Mapping):
            message = str(parsed.get("errorMessage") or parsed.get("Cause") or cause)
    except ValueError:
        pass
    return step, name, message[:1500]


def timings(state: Mapping[str, Any], at: str) -> dict[str, Any]:
    run = _obj(state, "run")
    out: dict[str, Any] = {"started_at": run.get("started_at"), "finished_at": at, "total_seconds": None}
    try:
        t0 = _parse_time(str(run.get("started_at")))
        t1 = _parse_time(at)
        out["total_seconds"] = round((t1 - t0).total_seconds(), 3)
    except (TypeError, ValueError):
        pass
    steps: dict[str, Any] = {}
    for key in STEP_KEYS:
        value = state.get(key)
        if isinstance(value, Mapping) and isinstance(value.get("elapsed_ms"), int | float):
            steps[key] = value["elapsed_ms"]
    out["steps_ms"] = steps
    return out


def _parse_time(text: str) -> datetime:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _obj(holder: Any, key: str) -> dict[str, Any]:
    """``holder[key]`` as a dict ({} when missing or not an object)."""
    value = holder.get(key) if isinstance(holder, Mapping) else None
    return dict(value) if isinstance(value, Mapping) else {}


def _get(obj: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(p)
    return obj


def outcome_record(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The outcome record of one execution (what :func:`record_outcome` stores), from the record task's event."""
    state = _obj(payload, "state")
    failure = bool(payload.get("failure"))
    execution = str(payload.get("execution") or "")
    at = str(payload.get("at") or datetime.now(UTC).isoformat())
    uuid = str(state.get("uuid") or _get(state, "input", "uuid") or "")
    if not uuid:
        detail_uuid = _get(state, "event", "detail", "uuid")
        uuid = str(detail_uuid or "unknown")
    incident_id = str(state.get("incident_id") or "") or f"inc-{hashlib.sha256(execution.encode()).hexdigest()[:12]}"
    outcome = _obj(state, "outcome")
    record: dict[str, Any] = {
        "uuid": uuid,
        "incident_id": incident_id,
        "execution": execution,
        "execution_id": str(payload.get("execution_id") or ""),
        "final": bool(payload.get("final", True)),
        "outcome": "failed-with-ticket" if failure else str(outcome.get("outcome") or "failed-with-ticket"),
        "reason": str(outcome.get("reason") or ""),
        "at": at,
        "trigger": state.get("trigger"),
        "entry": _get(state, "classification", "entry"),
        "step": _get(state, "diagnosis", "step") or _get(state, "classification", "step"),
        "root_cause": _get(state, "diagnosis", "root_cause", "id"),
        "fix": _get(state, "decision", "fix"),
        "route": _get(state, "decision", "route"),
        "mode": _get(state, "decision", "mode"),
        "plan_fingerprint": _get(state, "plan", "fingerprint"),
        "action_id": _get(state, "action_record", "action_id"),
        "changed": _get(state, "action_record", "changed"),
        "approver": _get(state, "approval", "approver"),
        "verify_attempts": _get(state, "verification", "attempts"),
        "before": _get(state, "diagnosis", "esm_status"),
        "after": _get(state, "verification", "status"),
        "rolled_back": _get(state, "rollback", "rolled_back"),
        "ticket_id": _get(state, "ticket", "ticket_id"),
        "ticket_location": _get(state, "ticket", "location"),
        "root_cause_fingerprint": _get(state, "decision", "root_cause_fingerprint"),
        "claim_owner": _get(state, "decision", "claim", "owner"),
        "timings": timings(state, at),
    }
    delivery = [e for e in (_get(state, "ticket", "errors") or []) if e]
    delivery += [e for e in (_get(state, "notification", "result", "errors") or []) if e]
    if delivery:
        record["delivery_errors"] = delivery[:20]  # undelivered sinks stay with the incident
    joined = _get(state, "decision", "claim", "joined_execution") or _get(state, "action_record", "joined_execution")
    if joined and record["outcome"] == "joined":
        record["joined_execution"] = joined
        record["joined_incident"] = _get(state, "decision", "claim", "joined_incident")
    if failure:
        failed_step, error, message = failure_summary(state)
        record.update(failed_step=failed_step, error=error)
        record["reason"] = f"step '{failed_step}' failed: {error}: {message}"[:2000]
    elif record["outcome"] not in OUTCOMES:
        record["reason"] = f"unknown outcome {record['outcome']!r}; recorded as failed-with-ticket"
        record["outcome"] = "failed-with-ticket"
    return record


def open_failure_ticket(aws: Aws, state: Mapping[str, Any], record: Mapping[str, Any]) -> dict[str, Any]:
    from esm_medic.notify import open_ticket

    cls = _obj(state, "classification")
    diag = _obj(state, "diagnosis") or None
    plan = _obj(state, "plan") or None
    result: dict[str, Any] = open_ticket(
        aws,
        uuid=str(record["uuid"]),
        reason=str(record["reason"]),
        classification=dict(cls),
        diagnosis=dict(diag) if diag else None,
        plan=dict(plan) if plan else None,
        outcome="failed-with-ticket",
    )
    return result


def record_outcome(aws: Aws, payload: Mapping[str, Any]) -> dict[str, Any]:
    """Record task: write the outcome (STATE item + audit row). On the failure path, open the ticket first when
    the state holds none. Returns ``{"outcome", "recorded": {...}, "record": {...}}``."""
    state = _obj(payload, "state")
    record = outcome_record(payload)
    if record["outcome"] == "failed-with-ticket" and not record.get("ticket_id") and record["final"]:
        try:
            ticket = open_failure_ticket(aws, state, record)
            record["ticket_id"] = ticket.get("ticket_id")
            record["ticket_location"] = ticket.get("location")
        except Exception as exc:  # the record must still be written
            record["ticket_error"] = f"{type(exc).__name__}: {exc}"[:500]
    keys = write_outcome(aws, record)
    if record["final"]:
        try:
            finish_claim(aws, record)
        except Exception as exc:  # the claim expires by itself; the outcome is what matters
            record["claim_error"] = f"{type(exc).__name__}: {exc}"[:500]
    return {"outcome": record["outcome"], "recorded": keys, "record": record}


def write_outcome(aws: Aws, record: Mapping[str, Any]) -> dict[str, Any]:
    """STATE: ``pk=ESM#<uuid>, sk=OUTCOME#<execution>`` (overwritten by the final outcome; TTL ~13 months);
    AUDIT: one append-only ``workflow`` row per (execution, outcome)."""
    from esm_medic.remediate.audit import AuditLog
    from esm_medic.remediate.base import ActionRecord
    from esm_medic.tables import AUDIT, STATE

    uuid = str(record["uuid"])
    execution = str(record["execution"]) or "unnamed"
    sk = f"{OUTCOME_SK_PREFIX}{execution}"
    expires = int((datetime.now(UTC) + timedelta(days=OUTCOME_TTL_DAYS)).timestamp())
    item = {
        "pk": {"S": f"ESM#{uuid}"},
        "sk": {"S": sk},
        "kind": {"S": "outcome"},
        "uuid": {"S": uuid},
        "incident_id": {"S": str(record["incident_id"])},
        "execution": {"S": execution},
        "outcome": {"S": str(record["outcome"])},
        "final": {"BOOL": bool(record.get("final", True))},
        "at": {"S": str(record["at"])},
        "record": {"S": json.dumps(record, default=str, separators=(",", ":"))},
        "expires_at": {"N": str(expires)},
    }
    try:
        aws.call("dynamodb", "put_item", TableName=STATE.name, Item=item)
    except Exception as exc:
        if error_code(exc) == "ResourceNotFoundException":
            raise TableMissing(f"the STATE table {STATE.name!r} does not exist ({STATE.env}): {exc}") from exc
        raise
    action_id = f"wf-{execution}-{record['outcome']}"[:200]
    audit = AuditLog(aws, AUDIT.name)
    existing = list(audit.by_action(action_id)) if record.get("final", True) else []
    if not existing:
        audit.append(
            ActionRecord(
                action_id=action_id,
                uuid=uuid,
                incident_id=str(record["incident_id"]),
                actor=ACTOR,
                action="workflow",
                status=str(record["outcome"]),
                reason=str(record.get("reason") or "")[:2000],
                fingerprint=str(record.get("plan_fingerprint") or ""),
                details={k: v for k, v in record.items() if k not in ("uuid", "incident_id", "reason")},
            )
        )
    return {"table": STATE.name, "pk": f"ESM#{uuid}", "sk": sk, "audit_action_id": action_id}


def outcomes(aws: Aws, uuid: str) -> list[dict[str, Any]]:
    """Every recorded outcome of one ESM (oldest first)."""
    from esm_medic.tables import STATE

    out: list[dict[str, Any]] = []
    for item in aws.paginate(
        "dynamodb",
        "query",
        "Items",
        TableName=STATE.name,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :sk)",
        ExpressionAttributeValues={":pk": {"S": f"ESM#{uuid}"}, ":sk": {"S": OUTCOME_SK_PREFIX}},
        ConsistentRead=True,
    ):
        try:
            out.append(json.loads(item["record"]["S"]))
        except (KeyError, ValueError):
            continue
    out.sort(key=lambda r: str(r.get("at") or ""))
    return out


# ================================================================================================ dead executions
EXECUTION_ENDED = "Step Functions Execution Status Change"
ENDED_BADLY = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})


def final_outcome_exists(aws: Aws, uuid: str, execution: str) -> bool:
    from esm_medic.tables import STATE

    item = aws.call(
        "dynamodb",
        "get_item",
        TableName=STATE.name,
        Key={"pk": {"S": f"ESM#{uuid}"}, "sk": {"S": f"{OUTCOME_SK_PREFIX}{execution}"}},
        ConsistentRead=True,
    ).get("Item")
    return bool(item and item.get("final", {}).get("BOOL", True))


def execution_ended(aws: Aws, event: Mapping[str, Any]) -> dict[str, Any]:
    """Safety net for executions that died without recording an outcome.

    Step Functions' ``States.ALL`` does not catch ``States.Runtime`` (a bad path) or ``States.DataLimitExceeded``,
    and an execution can be stopped by hand or time out. The ``execution-ended`` rule sends every FAILED /
    TIMED_OUT / ABORTED execution of the workflow here; when its final outcome is missing, this records
    ``failed-with-ticket`` (and opens the ticket) from the execution's input and error. Executions that already
    recorded their outcome (the normal failure path ends FAILED too) are left alone.
    """
    detail = _obj(event, "detail")
    status = str(detail.get("status") or "")
    arn = str(detail.get("executionArn") or "")
    name = str(detail.get("name") or arn.rsplit(":", 1)[-1])
    if status not in ENDED_BADLY:
        return {"recorded": False, "reason": f"execution {name} ended {status or 'without a status'}: nothing to do"}
    try:
        state = json.loads(detail.get("input") or "{}")
    except ValueError:
        state = {}
    if not isinstance(state, dict):
        state = {}
    uuid = str(state.get("uuid") or "")
    if not _UUID_RE.match(uuid) and _UUID_RE.match(name[:36]):
        uuid = name[:36]
    uuid = uuid or "unknown"
    if final_outcome_exists(aws, uuid, name):
        return {"recorded": False, "reason": f"execution {name} already recorded its outcome"}
    stopped = detail.get("stopDate")
    at = (
        datetime.fromtimestamp(float(stopped) / 1000, UTC).isoformat()
        if isinstance(stopped, int | float)
        else datetime.now(UTC).isoformat()
    )
    error = {
        "Error": str(detail.get("error") or f"States.{status.title().replace('_', '')}"),
        "Cause": str(detail.get("cause") or ""),
    }
    state = {**state, "uuid": uuid, "errors": {"execution": error}}
    payload = {"state": state, "final": True, "failure": True, "execution": name, "execution_id": arn, "at": at}
    result = record_outcome(aws, payload)
    return {"recorded": True, **result}
