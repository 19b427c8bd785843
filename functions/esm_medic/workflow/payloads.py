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
