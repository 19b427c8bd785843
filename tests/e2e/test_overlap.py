"""Overlapping executions and event storms on one ESM, with the real workflow.

- Overlap: executions of ONE incident whose status texts differ (the sweeper keeps an incident open across text
  changes) run at the same time. Whatever step they meet each other in, a verified fix is never undone: the fix
  stays, the ESM stays OK, no action is rolled back, and every recorded outcome is true (``recovered`` only for an
  ESM that is OK; the others ``joined`` the running incident or found the ESM healthy).
- Storm: 10 *distinct* incidents for one ESM at once give 1 change, at most 1 approval request and at most 1
  ticket, for each of the three demo cases (auto fix, approval, ticket). The losers join the running incident.
"""

from __future__ import annotations

import importlib
import threading
from collections import Counter
from typing import Any

import pytest

from tests.e2e.test_faults import self_rule_ports

AUTO = "missing-sg-self-rule"
APPROVAL = "no-nat-no-endpoints"
TICKET = "malformed-secret"
HONEST = {"recovered", "joined", "healthy-noop"}


class Calls:
    """Counts invocations of the wrapped handlers (the approval request and the ticket)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    def wrap(self, name: str) -> Any:
        module = importlib.import_module(f"esm_medic.handlers.{name}")

        def handler(event: Any, context: Any) -> Any:
            with self._lock:
                self.counts[name] += 1
            return module.handler(event, context)

        return handler

    def handlers(self) -> dict[str, Any]:
        return {name: self.wrap(name) for name in ("ticket", "approval_request")}


def slow(name: str, seconds: float) -> Any:
    """The named handler, delayed so concurrent executions overlap inside that step."""
    import time

    module = importlib.import_module(f"esm_medic.handlers.{name}")

    def handler(event: Any, context: Any) -> Any:
        time.sleep(seconds)
        return module.handler(event, context)

    return handler


def fire_all(t: Any, events: list[dict[str, Any]]) -> list[str]:
    arns = []
    for event in events:
        fired = t.workflow.fire(event)
        assert fired.exists, fired
        arns.append(fired.execution_arn)
    assert len(set(arns)) == len(events), "the events should start distinct executions"
    return arns


def wait_all(t: Any, arns: list[str], on_poll: Any = None) -> list[Any]:
    return [t.workflow.wait(arn, timeout=180, on_poll=on_poll) for arn in arns]


def variants(t: Any, n: int, *, incident_id: str | None) -> list[dict[str, Any]]:
    """n status-change events for the ESM; one incident id (overlap) or one per event (storm, when None)."""
    base = t.esm_status()
    assert base["LastProcessingResult"].startswith("PROBLEM")
    out = []
    for i in range(n):
        status = {**base, "LastProcessingResult": f"{base['LastProcessingResult']} (seen {i})"}
        inc = incident_id or f"inc-storm-{i:02d}-{t.uuid[:8]}"
        out.append(t.workflow.status_change_event(t.uuid, incident_id=inc, status=status))
    return out


def outcomes_of(t: Any, runs: list[Any]) -> dict[str, str]:
    final = {o["execution"]: o for o in t.final_outcomes()}
    out = {}
    for run in runs:
        assert run.execution_name in final, f"{run.execution_name} recorded no final outcome: {run.to_dict()}"
        out[run.execution_name] = str(final[run.execution_name]["outcome"])
    return out


def unclaimed_decide() -> Any:
    """The decide handler without the execution name: no incident claim, so every execution goes on to
    Remediate and they meet there (Powertools idempotency in progress / the ESM lock)."""
    from esm_medic.handlers import decide

    def handler(event: Any, context: Any) -> Any:
        return decide.handler({k: v for k, v in event.items() if k != "execution"}, context)

    return handler


@pytest.mark.parametrize("n", [2, 10])
@pytest.mark.parametrize("meet_in", ["remediate", "decide"])
def test_overlapping_executions_of_one_incident_never_undo_the_fix(e2e: Any, n: int, meet_in: str) -> None:
    handlers = {meet_in: slow(meet_in, 1.0)}
    if meet_in == "remediate":
        handlers["decide"] = unclaimed_decide()
    t = e2e(AUTO, handlers=handlers)
    events = variants(t, n, incident_id=f"inc-overlap-{t.uuid[:8]}")
    runs = wait_all(t, fire_all(t, events))
    outcomes = outcomes_of(t, runs)
    assert set(outcomes.values()) <= HONEST, outcomes
    assert list(outcomes.values()).count("recovered") == 1, outcomes
    assert self_rule_ports(t) == [9098]  # the fix stays
    status = t.esm_status()
    assert status["State"] == "Enabled" and status["LastProcessingResult"] == "OK"
    statuses = [r["status"] for r in t.action_rows()]
    assert statuses.count("applied") == 1 and "rolled-back" not in statuses, statuses
    for run in runs:
        assert "RollbackAfterError" not in run.state_names() and "Rollback" not in run.state_names()
        assert "Ticket" not in run.state_names()
    joined = [o for o in t.final_outcomes() if o["outcome"] == "joined"]
    owner = next(o for o in t.final_outcomes() if o["outcome"] == "recovered")
    for o in joined:
        assert o["joined_execution"] == owner["execution"], o


CASES = [
    pytest.param(AUTO, "auto", 1, 0, 0, id="auto-fix"),
    pytest.param(APPROVAL, "approve", 1, 1, 0, id="approval"),
    pytest.param(TICKET, "auto", 0, 0, 1, id="ticket"),
]


@pytest.mark.parametrize(("scenario", "mode", "changes", "approvals", "tickets"), CASES)
def test_a_storm_of_distinct_incidents_makes_one_change_one_request_one_ticket(
    e2e: Any, scenario: str, mode: str, changes: int, approvals: int, tickets: int
) -> None:
    calls = Calls()
    t = e2e(scenario, mode=mode, handlers=calls.handlers())
    events = variants(t, 10, incident_id=None)
    approver = t.workflow.auto_approver("alice@example.com")
    runs = wait_all(t, fire_all(t, events), on_poll=approver)
    outcomes = outcomes_of(t, runs)
    counted = Counter(outcomes.values())
    assert counted["joined"] >= 9 - (1 if scenario != TICKET else 0), counted
    applied = [r for r in t.action_rows() if r["status"] == "applied"]
    assert len(applied) == changes, [r["status"] for r in t.action_rows()]
    assert calls.counts["approval_request"] == approvals, calls.counts
    assert calls.counts["ticket"] <= tickets, calls.counts
    assert "failed-with-ticket" not in counted, counted
    ticket_files = sorted(t.ticket_dir.glob("*.md")) if t.ticket_dir.exists() else []
    assert len(ticket_files) == tickets, ticket_files
    if scenario == TICKET:
        assert counted["ticketed"] == 1 and calls.counts["ticket"] == 1, counted
    else:
        assert counted["recovered"] == 1, counted
        status = t.esm_status()
        assert status["State"] == "Enabled" and status["LastProcessingResult"] == "OK"
