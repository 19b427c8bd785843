"""The hold after detection (issue 15): an ``ESM Status Change`` event with ``phase: suspected`` is recorded as
suspected, waited out (``holdSeconds``, capped by the local runner), re-read and classified again; the workflow acts
only if the failure persisted, and records ``transient`` (changing nothing) when the ESM recovered by itself."""

from __future__ import annotations

from typing import Any

from tests.e2e.test_faults import SCENARIO, self_rule_ports


def suspected(event: dict[str, Any], hold: int = 120) -> dict[str, Any]:
    return {**event, "detail": {**event["detail"], "phase": "suspected", "holdSeconds": hold}}


def test_a_suspected_failure_that_persists_is_fixed_after_the_hold(e2e: Any) -> None:
    t = e2e(SCENARIO)
    run = t.workflow.run(suspected(t.workflow.status_change_event(t.uuid)))
    assert run.outcome == "recovered", run.to_dict()
    names = run.state_names()
    for state in ("OutcomeSuspected", "RecordSuspected", "HoldWait", "Recheck", "CarryRecheck", "Remediate"):
        assert state in names, names
    assert names.index("HoldWait") < names.index("Recheck") < names.index("Diagnose")
    assert (run.output or {})["hold_seconds"] == 1  # 120 s asked, capped by the runner
    assert [r["status"] for r in t.workflow_rows()] == ["suspected", "recovered"]
    assert self_rule_ports(t) == [9098]


def test_a_suspected_failure_that_clears_during_the_hold_is_transient(e2e: Any) -> None:
    t = e2e("healthy")
    broken = {
        "State": "Enabled",
        "StateTransitionReason": "USER_INITIATED",
        "LastProcessingResult": "PROBLEM: Connection error. Please check your event source connection configuration.",
    }
    run = t.workflow.run(suspected(t.workflow.status_change_event(t.uuid, status=broken), hold=30))
    assert run.status == "SUCCEEDED" and run.outcome == "transient", run.to_dict()
    assert "Diagnose" not in run.state_names() and "Remediate" not in run.state_names()
    final = t.final_outcomes()[-1]
    assert final["outcome"] == "transient" and "recovered by itself" in final["reason"]
    assert [r["status"] for r in t.workflow_rows()] == ["suspected", "transient"]
    assert not t.action_rows()


def test_an_event_without_phase_behaves_as_before(e2e: Any) -> None:
    t = e2e(SCENARIO)
    run = t.workflow.run(t.uuid)
    assert run.outcome == "recovered"
    assert "HoldWait" not in run.state_names() and (run.output or {})["phase"] == ""
