"""What a local run returns: the execution's status and outcome, with per-state timings read from its history."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from esm_medic.workflow.payloads import RecordResult

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
ENDED_BADLY = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})


@dataclass
class StepTiming:
    """One state of an execution, from its history."""

    name: str
    type: str
    entered: str
    ms: float | None
    retries: int = 0
    error: str | None = None
    output: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "entered": self.entered,
            "ms": self.ms,
            "retries": self.retries,
            "error": self.error,
        }


@dataclass
class Run:
    """A finished (or timed-out) execution: status, output, outcome record, per-state timings."""

    execution_arn: str
    execution_name: str
    status: str
    output: dict[str, Any] | None
    error: str | None
    cause: str | None
    seconds: float
    steps: list[StepTiming] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def outcome(self) -> str | None:
        """The recorded outcome: the ``recorded`` result of the execution's output, else of its last Record step."""
        outputs = [self.output or {}]
        outputs += [s.output for s in reversed(self.steps) if s.name in ("Record", "RecordFailure")]
        for out in outputs:
            raw = out.get("recorded") if isinstance(out, Mapping) else None
            if isinstance(raw, Mapping):
                recorded = RecordResult.from_dict(raw)
                if recorded.outcome:
                    return recorded.outcome
        return None

    def state_names(self) -> list[str]:
        return [s.name for s in self.steps]

    def step(self, name: str) -> StepTiming | None:
        return next((s for s in self.steps if s.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "execution_arn": self.execution_arn,
            "execution_name": self.execution_name,
            "status": self.status,
            "outcome": self.outcome,
            "error": self.error,
            "seconds": round(self.seconds, 3),
            "steps": [s.to_dict() for s in self.steps],
        }


@dataclass
class Fired:
    """What happened to one event put on the bus."""

    event: dict[str, Any]
    execution_name: str
    execution_arn: str
    exists: bool
    start_result: dict[str, Any] | None = None


def steps_from_history(events: list[dict[str, Any]]) -> list[StepTiming]:
    """Per-state timings (entered -> exited), retries (task attempts after the first) and the last task error."""
    steps: list[StepTiming] = []
    open_steps: dict[str, tuple[StepTiming, datetime]] = {}
    scheduled: dict[int, int] = {}
    current: StepTiming | None = None
    for ev in events:
        etype = str(ev.get("type") or "")
        ts = ev.get("timestamp")
        when = ts if isinstance(ts, datetime) else datetime.now(UTC)
        if etype.endswith("StateEntered"):
            d = ev.get("stateEnteredEventDetails") or {}
            st = StepTiming(
                name=str(d.get("name")), type=etype[: -len("StateEntered")], entered=when.isoformat(), ms=None
            )
            steps.append(st)
            open_steps[st.name] = (st, when)
            current = st
        elif etype.endswith("StateExited"):
            d = ev.get("stateExitedEventDetails") or {}
            name = str(d.get("name"))
            if name in open_steps:
                st, t0 = open_steps.pop(name)
                st.ms = round((when - t0).total_seconds() * 1000, 1)
                try:
                    st.output = json.loads(d.get("output") or "null")
                except ValueError:
                    st.output = None
        elif current is not None and etype == "TaskScheduled":
            scheduled[id(current)] = scheduled.get(id(current), 0) + 1
            current.retries = scheduled[id(current)] - 1
        elif current is not None and etype in ("TaskFailed", "TaskTimedOut", "LambdaFunctionFailed"):
            for key in ("taskFailedEventDetails", "taskTimedOutEventDetails", "lambdaFunctionFailedEventDetails"):
                details = ev.get(key)
                if details:
                    current.error = str(details.get("error") or "")
    return steps
