"""Every sandbox scenario through the real workflow: EventBridge event -> start -> Step Functions (moto's ASL
interpreter) -> in-process handlers -> the sandbox account, in mode ``auto`` with the demo's auto-approver.

Expectations come from the scenario's own ``expected`` block and the catalogue (not from the workflow):

- no fix (healthy ESM, the event is stale) -> ``healthy-noop``, nothing changed;
- fix ``ticket`` -> ``ticketed``, a ticket file with the runbook, nothing changed;
- a fix whose catalogue safety is ``auto`` -> applied at once; ``approve`` -> applied after the (auto) approval;
  both -> ``recovered``, the ESM reports OK, the audit log has started / applied / restarted / verified;
- a transient entry is only reported on its first sighting (``notified``) and fixed on the next one.

Each test then delivers the same event again: no second execution starts and nothing changes a second time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from esm_medic_sandbox import timing
from esm_medic_sandbox.scenarios import SCENARIOS

STALE_ERROR = {
    "State": "Enabled",
    "StateTransitionReason": "USER_INITIATED",
    "LastProcessingResult": "PROBLEM: Connection error. Please check your event source connection configuration.",
}
FIX_STATUSES = ["started", "applied", "restarted", "verified"]


def expectation(name: str) -> dict[str, Any]:
    from esm_medic.catalogue import get_catalogue

    exp = SCENARIOS[name].expected
    if not exp.get("fix"):
        return {"outcome": "healthy-noop", "route": None, "transient": False}
    if exp["fix"] == "ticket":
        return {"outcome": "ticketed", "route": "ticket", "transient": False}
    entry = get_catalogue().get(exp["entry"])
    assert entry is not None, exp
    fix = entry.fix_for(exp["root_cause"])
    assert fix is not None and fix.action == exp["fix"], (exp, fix)
    return {
        "outcome": "recovered",
        "route": "auto" if fix.safety == "auto" else "approve",
        "transient": entry.transient,
    }


def _subsequence(items: list[str], wanted: list[str]) -> bool:
    it = iter(items)
    return all(any(x == w for x in it) for w in wanted)


@pytest.fixture(autouse=True)
def aws_like_delays() -> Iterator[float]:
    """Every scenario runs with the sandbox's transitional states on (short, to keep the file quick)."""
    with timing.delays(0.3) as seconds:
        yield seconds


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_through_the_workflow(e2e: Any, name: str) -> None:
    from esm_medic.approval import audit_records

    t = e2e(name)
    wf = t.workflow
    want = expectation(name)
    status = STALE_ERROR if want["outcome"] == "healthy-noop" else None
    event = wf.status_change_event(t.uuid, status=status, incident_id=f"inc-first-{t.uuid[:8]}")
    approvals: list[dict[str, Any]] = []
    run = wf.run(event, on_poll=wf.auto_approver(log=approvals.append))

    if want["transient"]:
        assert run.outcome == "notified", run.to_dict()
        assert not t.action_rows(), "a first sighting of a transient error must change nothing"
        event = wf.status_change_event(t.uuid, incident_id=f"inc-second-{t.uuid[:8]}")
        run = wf.run(event, on_poll=wf.auto_approver(log=approvals.append))

    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert run.outcome == want["outcome"], run.to_dict()
    assert len(json.dumps(run.output)) < 100_000  # far from Step Functions' 256 KB state limit
    final = t.final_outcomes()[-1]
    assert final["outcome"] == want["outcome"]
    assert final["execution"] == run.execution_name
    assert final["timings"]["total_seconds"] is not None
    exp = SCENARIOS[name].expected
    assert final["entry"] == (exp["entry"] if want["outcome"] != "healthy-noop" else "connection-broker-unreachable")
    workflow_rows = [r["status"] for r in t.workflow_rows()]
    assert want["outcome"] in workflow_rows

    if want["outcome"] == "recovered":
        assert final["root_cause"] == exp["root_cause"] and final["fix"] == exp["fix"]
        assert final["route"] == want["route"]
        assert t.esm_status()["LastProcessingResult"] == "OK"
        statuses = [r["status"] for r in t.action_rows()]
        assert _subsequence(statuses, FIX_STATUSES), statuses
        assert final["before"]["LastProcessingResult"] not in ("", "OK")
        assert final["after"]["LastProcessingResult"] == "OK"
        if want["route"] == "approve":
            assert approvals, "an approve-class fix ran without an approval"
            assert _subsequence(statuses, ["planned", *FIX_STATUSES]), statuses  # apply bound to the approved plan
            assert final["approver"] == "demo-approver"
            assert "pending-approval" in workflow_rows  # recorded while waiting, then the final outcome
            assert {r.get("event") for r in audit_records(t.aws, t.uuid)} >= {"requested"}
        else:
            assert not approvals
    elif want["outcome"] == "ticketed":
        assert not t.action_rows()
        location = final["ticket_location"]
        assert final["ticket_id"] and location
        body = Path(location).read_text(encoding="utf-8")
        assert t.uuid in body
        assert len(body) > 400
    else:
        assert not t.action_rows()
        assert final["route"] is None

    # the same event again: no second execution, no second change
    executions = len(wf.executions())
    rows = len(t.action_rows())
    again = wf.fire(event)
    assert again.execution_name == run.execution_name
    assert len(wf.executions()) == executions
    direct = wf.start_direct(event)
    assert direct["duplicate"] is True and direct["started"] is False
    assert len(t.action_rows()) == rows
