"""The real workflow applies a diagnosis's whole plan (issue 10): two coexisting faults built by
``esm_medic_sandbox.combos``, the ASL in moto's Step Functions interpreter, the handlers in-process.

- two fixable faults (one of them approve-class): one approval for the whole plan, shown as one diff; both fixes
  applied, the ESM recovers and both actions are in the audit log;
- a fixable fault next to a ticket-only one: the fix is kept (it moved the ESM), the other is ticketed, and the
  ticket names the kept fix with its rollback command;
- a fix a re-diagnosis finds and that needs a human is not applied (nobody approved it): it goes to the ticket;
- a verification that never recovers rolls back both fixes, newest first.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import E2E, FAST_TUNABLES

TWO_FIXES = ("no-self-inbound", "no-nat")  # add-sg-self-rule (auto class) + create-vpc-endpoints (approve class)
WITH_TICKET = ("no-self-inbound", "broken-trust")  # add-sg-self-rule + a trust policy only a person may change
MASKED_APPROVAL = ("no-self-inbound", "no-kafka-data")  # the IAM grant shows up only once the SG is fixed


@pytest.fixture
def combo(tmp_path: Path) -> Iterator[Callable[..., E2E]]:
    from esm_medic_sandbox import combos
    from esm_medic_sandbox.env import sandbox
    from esm_medic_sandbox.runner import deploy

    from esm_medic.handlers import _common

    stack = contextlib.ExitStack()
    for name in ("moto", "botocore", "aws_lambda_powertools"):
        logging.getLogger(name).setLevel(logging.CRITICAL)

    def make(pair: tuple[str, str], *, mode: str = "auto") -> E2E:
        aws = stack.enter_context(sandbox())
        _common.reset_aws()
        _common.reset_idempotency()
        built = combos.build(aws, pair, prefix="e2e-")
        ticket_dir = tmp_path / "tickets"
        env = {
            "ESM_MEDIC_DEFAULT_MODE": mode,
            "ESM_MEDIC_TICKET_DIR": str(ticket_dir),
            "ESM_MEDIC_NOTIFY_SINKS": "file",
            "ESM_MEDIC_POLL_SECONDS": "0.2",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }
        workflow = deploy(aws, tunables=dict(FAST_TUNABLES), env=env)
        return E2E(aws=aws, workflow=workflow, scenario=built.result, ticket_dir=ticket_dir)

    with stack:
        yield make


def approver(seen: list[dict[str, Any]]) -> Callable[[Any, str], None]:
    """An ``on_poll`` callback that approves every pending approval and keeps what each one showed."""
    from esm_medic.approval import decide_approval, pending_approvals

    def approve(workflow: Any, arn: str) -> None:
        for pending in pending_approvals(workflow.aws):
            seen.append(pending)
            decide_approval(workflow.aws, approval_id=pending["approval_id"], decision="approve", approver="alice")

    return approve


def rows_by_action(t: E2E) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in t.action_rows():
        out.setdefault(r["action"], []).append(r)
    return out


def self_rule(t: E2E) -> bool:
    sg = t.scenario.security_group_ids[0]
    group = t.aws.call("ec2", "describe_security_groups", GroupIds=[sg])["SecurityGroups"][0]
    return any(
        any(p.get("GroupId") == sg for p in perm.get("UserIdGroupPairs") or []) for perm in group["IpPermissions"]
    )


def live_endpoints(t: E2E) -> list[str]:
    eps = t.aws.call("ec2", "describe_vpc_endpoints", Filters=[{"Name": "vpc-id", "Values": [t.scenario.vpc_id]}])[
        "VpcEndpoints"
    ]
    return [e["VpcEndpointId"] for e in eps if e.get("State", "").lower() not in ("deleted", "deleting")]


def test_two_fault_plan_is_approved_once_as_one_diff_and_recovers(combo: Any) -> None:
    t = combo(TWO_FIXES, mode="approve")
    assert not self_rule(t) and not live_endpoints(t)
    seen: list[dict[str, Any]] = []
    run = t.workflow.run(t.uuid, on_poll=approver(seen))
    assert run.outcome == "recovered", run.to_dict()
    assert len({a["approval_id"] for a in seen}) == 1, "the whole plan is approved once"
    shown = seen[0]["plan"]
    assert [i["action"] for i in shown["items"]] == ["add-sg-self-rule", "create-vpc-endpoints"]
    assert any(line.startswith("[1. add-sg-self-rule]") for line in shown["diff"])
    assert any(line.startswith("[2. create-vpc-endpoints]") for line in shown["diff"])
    assert "add-sg-self-rule + create-vpc-endpoints" in seen[0]["fix"]
    out = run.output or {}
    planned = out["decision"]["plan"]["action_ids"]
    assert len(planned) == 2
    assert out["action_record"]["action_ids"] == planned  # applied exactly as approved, in order
    by = rows_by_action(t)
    for action in ("add-sg-self-rule", "create-vpc-endpoints"):
        statuses = [r["status"] for r in by[action]]
        assert statuses[0] == "planned" and "applied" in statuses and "verified" in statuses, (action, statuses)
    assert [r["status"] for r in t.action_rows()].count("restarted") == 1  # polling restarted once, at the end
    assert self_rule(t) and live_endpoints(t)
    assert t.esm_status()["LastProcessingResult"] == "OK"


def test_fixable_fault_is_kept_and_the_ticket_only_one_is_ticketed(combo: Any) -> None:
    t = combo(WITH_TICKET)
    run = t.workflow.run(t.uuid)
    assert run.outcome == "ticketed", run.to_dict()
    out = run.output or {}
    record = out["action_record"]
    assert [f["fix"] for f in record["fixes"]] == ["add-sg-self-rule"]
    assert record["plan_status"] == "partial"
    assert "trust-policy" in {h for r in record["remaining"] for h in r.get("hypotheses") or []}
    assert out["rollback"]["rolled_back"] is False
    action_id = record["action_ids"][0]
    assert f"esm-medic rollback {action_id}" in out["ticket_reason"]["text"]
    assert "trust" in out["ticket_reason"]["text"].lower()
    assert self_rule(t)  # kept: the ESM got past the network, only the role remains
    assert "rolled-back" not in [r["status"] for r in t.action_rows()]
    assert "assume" in t.esm_status()["LastProcessingResult"]


def test_a_fix_found_only_by_re_diagnosis_that_needs_a_human_is_not_applied(combo: Any) -> None:
    t = combo(MASKED_APPROVAL)
    run = t.workflow.run(t.uuid)
    assert run.outcome == "ticketed", run.to_dict()
    out = run.output or {}
    record = out["action_record"]
    assert [f["fix"] for f in record["fixes"]] == ["add-sg-self-rule"]
    assert [r.get("not_applied") for r in record["remaining"] if r.get("fix") == "grant-iam-permissions"] == [
        "needs-approval"
    ]
    assert "grant-iam-permissions" not in rows_by_action(t)  # not even started
    assert self_rule(t)
    assert "authorize" in t.esm_status()["LastProcessingResult"]


def test_a_verification_that_never_recovers_rolls_back_both_fixes_newest_first(combo: Any) -> None:
    from esm_medic_sandbox.patches import set_esm_status

    t = combo(TWO_FIXES, mode="approve")
    broken = t.esm_status()["LastProcessingResult"]
    set_esm_status(t.uuid, last_processing_result=broken)  # whatever the account looks like, the ESM stays broken
    run = t.workflow.run(t.uuid, on_poll=approver([]))
    assert run.outcome == "ticketed", run.to_dict()
    out = run.output or {}
    assert out["ticket_reason"]["code"] == "verification-failed"
    ids = out["action_record"]["action_ids"]
    assert len(ids) == 2
    assert [r["action_id"] for r in out["rollback"]["results"]] == ids[::-1]
    assert all(r["status"] == "rolled-back" for r in out["rollback"]["results"])
    undone = sorted((r for r in t.action_rows() if r["status"] == "rolled-back"), key=lambda r: r["epoch"])
    assert [r["action_id"] for r in undone] == ids[::-1]
    assert not self_rule(t) and not live_endpoints(t)
