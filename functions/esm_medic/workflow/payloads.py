"""Typed step payloads shared by the handlers, the local runner and the tests."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


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
    phase: str = ""  # "suspected": detection emitted before its hold elapsed; the workflow waits it out
    hold_seconds: int = 0

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
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


# --- remediate / verify / rollback results ---


@dataclass
class RemediateResult:
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class VerifyResult:
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RollbackResult:
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
