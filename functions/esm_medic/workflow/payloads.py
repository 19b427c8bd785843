"""Typed step payloads shared by the handlers, the local runner and the tests.

Each result's ``to_dict()`` is the exact JSON its Lambda returns (the keys the ASL's ``ResultSelector`` and the
later steps read; ``tests/unit/test_payloads.py`` checks them against ``statemachine/remediate.asl.json``), and
``from_dict()`` reads that JSON back (missing keys get their defaults, unknown keys are kept where the step passes
them through).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Self, cast


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _ms(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class _AsDict:
    """``to_dict()`` as :func:`dataclasses.asdict` (for results whose JSON is exactly their fields)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(cast(Any, self))


def _known(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of ``data`` that are fields of the dataclass ``cls``."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass
class WorkflowInput(_AsDict):
    """The execution input the ``start`` handler builds (and ``classify`` re-validates)."""

    uuid: str
    incident_id: str
    fingerprint: str
    execution_name: str
    trigger: str
    status: dict[str, str]
    event: dict[str, Any]
    observed_at: str = ""
    phase: str = ""  # "suspected": detection emitted before its hold elapsed; the workflow waits it out
    hold_seconds: int = 0
    account: str = ""  # the ESM's account (a member account of a central install); "" = from ``event``

    def __post_init__(self) -> None:
        if not self.account:
            from esm_medic.accounts import account_of_event

            self.account = account_of_event(self.event) or ""

    def to_input(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "incident_id": self.incident_id,
            "fingerprint": self.fingerprint,
            "trigger": self.trigger,
            "status": self.status,
            "observed_at": self.observed_at,
            "event": self.event,
            "phase": self.phase,
            "hold_seconds": self.hold_seconds,
            "account": self.account,
        }


@dataclass
class RouteDecision(_AsDict):
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


# ---------------------------------------------------------------------------------------------- classify
@dataclass
class ClassifyResult(_AsDict):
    """The ``classify`` task's result: the normalised input, the run settings and the classification (the
    :data:`~esm_medic.workflow.classify.CLASSIFICATION_KEYS` of the catalogue match, plus ``elapsed_ms``)."""

    uuid: str
    incident_id: str
    fingerprint: str
    trigger: str
    status: dict[str, str]
    event: dict[str, Any]
    classification: dict[str, Any]
    run: dict[str, Any] = field(default_factory=dict)
    observed_at: str = ""
    phase: str = ""
    hold_seconds: int = 0

    @classmethod
    def of(cls, wi: WorkflowInput, *, run: Mapping[str, Any], classification: dict[str, Any], hold: int) -> Self:
        return cls(
            uuid=wi.uuid,
            incident_id=wi.incident_id,
            fingerprint=wi.fingerprint,
            trigger=wi.trigger,
            status=dict(wi.status),
            event=wi.event,
            classification=classification,
            run=dict(run),
            observed_at=wi.observed_at,
            phase=wi.phase,
            hold_seconds=hold,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            uuid=str(data.get("uuid") or ""),
            incident_id=str(data.get("incident_id") or ""),
            fingerprint=str(data.get("fingerprint") or ""),
            trigger=str(data.get("trigger") or ""),
            status=_dict(data.get("status")),
            event=_dict(data.get("event")),
            classification=_dict(data.get("classification")),
            run=_dict(data.get("run")),
            observed_at=str(data.get("observed_at") or ""),
            phase=str(data.get("phase") or ""),
            hold_seconds=int(data.get("hold_seconds") or 0),
        )


@dataclass
class RecheckResult(_AsDict):
    """The ``Recheck`` task's result (``classify`` with ``recheck: true``) after a suspected failure's hold."""

    persists: bool
    status: dict[str, str]
    classification: dict[str, Any]
    reason: str
    elapsed_ms: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            persists=bool(data.get("persists")),
            status=_dict(data.get("status")),
            classification=_dict(data.get("classification")),
            reason=str(data.get("reason") or ""),
            elapsed_ms=_ms(data.get("elapsed_ms")),
        )


# ---------------------------------------------------------------------------------------------- diagnose
@dataclass
class DiagnosisResult(_AsDict):
    """The ``diagnose`` task's result: the diagnosis made small for the state. ``esm_status`` is the ESM's status
    when diagnosed (API keys); ``state`` is ``Deleted`` / ``NotKafka`` when there is nothing to diagnose."""

    healthy: bool
    state: str
    step: str
    root_cause: dict[str, Any]
    findings: list[dict[str, Any]]
    network: Any
    esm_status: dict[str, str]
    function_arn: str
    esm: dict[str, Any]
    api_calls: int = 0
    hypotheses: list[dict[str, Any]] = field(default_factory=list)  # ranked, each with its evidence and fix
    plan: list[dict[str, Any]] = field(default_factory=list)  # the ordered fixes (ticket-only parts named)
    elapsed_ms: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            healthy=bool(data.get("healthy")),
            state=str(data.get("state") or ""),
            step=str(data.get("step") or "unknown"),
            root_cause=_dict(data.get("root_cause")),
            findings=[dict(f) for f in _list(data.get("findings")) if isinstance(f, Mapping)],
            network=data.get("network"),
            esm_status=_dict(data.get("esm_status")),
            function_arn=str(data.get("function_arn") or ""),
            esm=_dict(data.get("esm")),
            api_calls=int(data.get("api_calls") or 0),
            hypotheses=[dict(h) for h in _list(data.get("hypotheses")) if isinstance(h, Mapping)],
            plan=[dict(p) for p in _list(data.get("plan")) if isinstance(p, Mapping)],
            elapsed_ms=_ms(data.get("elapsed_ms")),
        )


# ---------------------------------------------------------------------------------------------- notify / ticket
@dataclass
class NotificationResult:
    """The ``notify`` task's result (the state keeps it whole under ``notification.result``). ``extra`` carries the
    delivery details passed through verbatim (``route``, ``slack``, ``outbox``, ``fallback``, ``location``)."""

    kind: str
    title: str
    sent: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    tickets: dict[str, Any] | None = None  # on recovery: the ESM's open tickets resolved with the proof
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self.extra, "kind": self.kind, "title": self.title}
        out["sent"] = list(self.sent)
        out["errors"] = list(self.errors)
        if self.tickets is not None:
            out["tickets"] = self.tickets
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        tickets = data.get("tickets")
        return cls(
            kind=str(data.get("kind") or ""),
            title=str(data.get("title") or ""),
            sent=[str(x) for x in _list(data.get("sent"))],
            errors=[dict(e) for e in _list(data.get("errors")) if isinstance(e, Mapping)],
            tickets=dict(tickets) if isinstance(tickets, Mapping) else None,
            extra={k: v for k, v in data.items() if k not in ("kind", "title", "sent", "errors", "tickets")},
        )


@dataclass
class TicketResult:
    """The ``ticket`` task's result. ``extra`` carries the rest verbatim (``fingerprint``, ``providers``,
    ``delivered``, ``pending``, ``catalogue_gap``, ``fallback``, ``relapse_of``, ``route``, ``slack``)."""

    ticket_id: str
    location: str
    title: str
    body: str = ""
    duplicate: bool = False
    sent: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    _KEYS = ("ticket_id", "location", "title", "body", "duplicate", "sent", "errors")

    @property
    def delivered(self) -> list[str]:
        return [str(x) for x in _list(self.extra.get("delivered"))]

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.extra,
            "ticket_id": self.ticket_id,
            "location": self.location,
            "title": self.title,
            "body": self.body,
            "duplicate": self.duplicate,
            "sent": list(self.sent),
            "errors": list(self.errors),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            ticket_id=str(data.get("ticket_id") or ""),
            location=str(data.get("location") or ""),
            title=str(data.get("title") or ""),
            body=str(data.get("body") or ""),
            duplicate=bool(data.get("duplicate")),
            sent=[str(x) for x in _list(data.get("sent"))],
            errors=[dict(e) for e in _list(data.get("errors")) if isinstance(e, Mapping)],
            extra={k: v for k, v in data.items() if k not in cls._KEYS},
        )


# ---------------------------------------------------------------------------------------------- record
@dataclass
class RecordRequest(_AsDict):
    """The ``record`` task's input: the whole execution state, and where in the workflow it is recorded."""

    state: dict[str, Any]
    execution: str = ""
    execution_id: str = ""
    at: str = ""
    final: bool = True
    failure: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            state=_dict(data.get("state")),
            execution=str(data.get("execution") or ""),
            execution_id=str(data.get("execution_id") or ""),
            at=str(data.get("at") or ""),
            final=bool(data.get("final", True)),
            failure=bool(data.get("failure")),
        )


@dataclass
class OutcomeRecord:
    """One execution's outcome as stored (STATE ``OUTCOME#<execution>`` and the audit row) and as ``history``
    reads it back. The optional fields are left out of :meth:`to_dict` when they do not apply."""

    uuid: str
    incident_id: str
    execution: str
    outcome: str
    reason: str
    at: str
    execution_id: str = ""
    final: bool = True
    trigger: Any = None
    account: str = ""  # the ESM's account ("" : the install's own)
    entry: Any = None
    step: Any = None
    root_cause: Any = None
    fix: Any = None
    route: Any = None
    mode: Any = None
    plan_fingerprint: Any = None
    action_id: Any = None
    changed: Any = None
    approver: Any = None
    verify_attempts: Any = None
    before: Any = None
    after: Any = None
    rolled_back: Any = None
    ticket_id: Any = None
    ticket_location: Any = None
    root_cause_fingerprint: Any = None
    claim_owner: Any = None
    timings: dict[str, Any] = field(default_factory=dict)
    # only when they apply
    delivery_errors: list[dict[str, Any]] | None = None  # sinks that did not take the ticket / notification
    joined_execution: str | None = None  # outcome "joined": the execution it joined (and its incident)
    joined_incident: Any = None
    failed_step: str | None = None  # the failure path: the step that failed and its error
    error: str | None = None
    ticket_error: str | None = None  # the failure ticket could not be opened
    claim_error: str | None = None  # the incident claim was not finished

    _OPTIONAL = ("delivery_errors", "failed_step", "error", "ticket_error", "claim_error")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name in self._OPTIONAL:
            if out[name] is None:
                del out[name]
        if self.joined_execution is None:
            del out["joined_execution"], out["joined_incident"]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        required = {"uuid": "", "incident_id": "", "execution": "", "outcome": "", "reason": "", "at": ""}
        return cls(**{**required, **_known(cls, data)})


@dataclass
class RecordResult:
    """The ``record`` task's result: the outcome, the keys it was written under, and the record itself."""

    outcome: str
    recorded: dict[str, Any]
    record: OutcomeRecord

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "recorded": dict(self.recorded), "record": self.record.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            outcome=str(data.get("outcome") or ""),
            recorded=_dict(data.get("recorded")),
            record=OutcomeRecord.from_dict(_dict(data.get("record"))),
        )


# --- remediate / verify / rollback results ---


@dataclass
class RemediateResult(_AsDict):
    """What the ``remediate`` step returns (``$.action_record``). ``action_id`` is the newest applied action;
    ``action_ids`` every action this execution applied, in order; ``fixes`` one row per applied fix."""

    action: str | None
    action_id: str | None
    applied: bool
    changed: bool
    noop: bool
    restarted: bool
    status: str
    execution: str
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    created: dict[str, Any] = field(default_factory=dict)
    joined: bool = False
    joined_execution: str | None = None
    action_ids: list[str] = field(default_factory=list)
    fixes: list[dict[str, Any]] = field(default_factory=list)
    rolled_back: list[dict[str, Any]] = field(default_factory=list)  # applied, changed nothing, undone at once
    remaining: list[dict[str, Any]] = field(default_factory=list)  # left for the ticket
    plan_status: str = ""  # apply_plan's status: ok | stale | partial | unchanged | needs-approval ("" for one fix)
    ticket_reason: str = ""
    elapsed_ms: float | None = None


@dataclass
class VerifyResult(_AsDict):
    """What the ``verify`` step returns (``$.verification``)."""

    recovered: bool
    exhausted: bool
    attempts: int
    status: dict[str, str]
    step: str | None
    entry: str | None
    next_wait_seconds: int
    restarts: int
    history: list[dict[str, Any]] = field(default_factory=list)
    elapsed_ms: float | None = None


@dataclass
class RollbackResult(_AsDict):
    """What the ``rollback`` step returns (``$.rollback``). ``kept`` names the fixes left in place (they moved the
    ESM further) with the command that undoes each."""

    rolled_back: bool
    reason: str
    before_step: str
    now_step: str
    removed: dict[str, list[str]] = field(default_factory=dict)
    restored: dict[str, Any] = field(default_factory=dict)
    results: list[dict[str, Any]] = field(default_factory=list)
    kept: list[dict[str, Any]] = field(default_factory=list)
    elapsed_ms: float | None = None
