"""End to end with the sandbox's AWS-like delays on: the workflow's wait, retry and restart paths really run.

- an automatic fix restarts polling through ``Disabling`` / ``Enabling`` and verifies after the ESM settles;
- an approved endpoint fix verifies while the endpoints are still ``pending`` (a pending verification, not a failed
  one) and recovers once they are ``available``;
- rolling that fix back waits for ``deleting`` -> ``deleted`` and retries the security group deletion through the
  ``DependencyViolation`` of the endpoints' lingering network interfaces.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from esm_medic_sandbox import timing

DELAY = 1.0


@pytest.fixture(autouse=True)
def aws_like_delays() -> Iterator[float]:
    with timing.delays(DELAY) as seconds:
        yield seconds


def _restart_row(t: Any) -> dict[str, Any]:
    rows = [r for r in t.action_rows() if r["status"] == "restarted"]
    assert rows, [r["status"] for r in t.action_rows()]
    return dict(rows[-1]["details"])


def test_auto_fix_restarts_through_transitional_states(e2e: Any) -> None:
    t = e2e("missing-sg-self-rule")
    run = t.workflow.run(t.workflow.status_change_event(t.uuid))
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert run.outcome == "recovered", run.to_dict()
    restart = _restart_row(t)
    assert restart["restarted"] is True
    assert "Disabling" in restart["states"] and restart["states"][-1] == "Disabled"
    assert restart["final_state"] in ("Enabling", "Enabled")  # re-enabled; Enabling unless the machine was slow
    assert t.esm_status()["LastProcessingResult"] == "OK"


def test_endpoint_fix_waits_for_available_then_rolls_back_through_dependency_violation(e2e: Any) -> None:
    from esm_medic.config import Settings
    from esm_medic.remediate.engine import rollback

    t = e2e("no-nat-no-endpoints")
    run = t.workflow.run(t.workflow.status_change_event(t.uuid), on_poll=t.workflow.auto_approver())
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert run.outcome == "recovered", run.to_dict()
    applied = [r for r in t.action_rows() if r["status"] == "applied"][-1]
    endpoint_ids = applied["created"]["vpc_endpoint_ids"]
    states = {
        e["VpcEndpointId"]: e["State"]
        for e in t.aws.call("ec2", "describe_vpc_endpoints", VpcEndpointIds=endpoint_ids)["VpcEndpoints"]
    }
    assert set(states.values()) == {"available"}

    waits: list[float] = []

    def sleep(seconds: float) -> None:
        import time

        waits.append(seconds)
        time.sleep(seconds)

    out = rollback(
        t.aws,
        applied["action_id"],
        settings=Settings(poll_seconds=0.2, endpoint_delete_timeout_seconds=30),
        sleep=sleep,
    )
    assert out["status"] == "rolled-back", out
    assert sorted(out["removed"]["vpc_endpoint_ids"]) == sorted(endpoint_ids)
    assert out["removed"]["security_group_ids"] == applied["created"]["security_group_ids"]
    # it waited for deleting -> deleted, then through DependencyViolation while the interfaces lingered
    assert len(waits) >= 2
    gone = t.aws.call("ec2", "describe_vpc_endpoints", VpcEndpointIds=endpoint_ids)["VpcEndpoints"]
    assert {e["State"] for e in gone} == {"deleted"}
