"""Policy and guard rails around the fixes: modes from tags, kill switch, shadow, budgets, failed verifications,
transient errors, the per-ESM lock, and interrupted (half-applied) changes."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from remediate_helpers import SimulatedCrash, diff_snapshots, full_params, inject, on_call

from esm_medic.aws import Aws
from esm_medic.remediate import engine
from esm_medic.remediate.audit import AuditLog
from esm_medic.remediate.lock import EsmLock


def _sg_case(env: Any, scenario: str = "missing-sg-self-rule") -> tuple[Any, dict[str, Any]]:
    r = env.build(scenario)
    return r, full_params(r, "add-sg-self-rule")


def _apply(env: Any, r: Any, params: dict[str, Any], action: str = "add-sg-self-rule", **kw: Any) -> dict[str, Any]:
    return engine.apply_fix(env.aws, action=action, params=params, uuid=r.uuid, settings=env.settings, **kw)


def _tag(env: Any, arn: str, **tags: str) -> None:
    env.world.call("lambda", "tag_resource", Resource=arn, Tags={k.replace("_", ":"): v for k, v in tags.items()})


# ---------------------------------------------------------------------------------------------- modes
def test_mode_from_esm_tag_wins_over_function_tag(env: Any) -> None:
    r, params = _sg_case(env)
    esm = env.esm(r.uuid)
    _tag(env, esm["FunctionArn"], **{"esm-medic_mode": "auto"})
    _tag(env, esm["EventSourceMappingArn"], **{"esm-medic_mode": "notify"})
    before = env.snapshot(r)
    res = _apply(env, r, params)
    assert res["status"] == "notify"
    assert res["decision"]["mode_source"] == "esm-tag"
    assert env.snapshot(r) == before


def test_mode_from_function_tag_then_settings(env: Any) -> None:
    r, params = _sg_case(env)
    esm = env.esm(r.uuid)
    _tag(env, esm["FunctionArn"], **{"esm-medic_mode": "off"})
    res = _apply(env, r, params)
    assert res["status"] == "off" and res["decision"]["mode_source"] == "function-tag"
    _tag(env, esm["FunctionArn"], **{"esm-medic_mode": "approve"})
    res = _apply(env, r, params)
    assert res["status"] == "needs-approval"
    assert engine.history(env.aws, r.uuid, settings=env.settings) == []
    res = _apply(env, r, params, approved=True, approver="alice")
    assert res["status"] == "applied" and res["decision"]["approved_by"] == "alice"


def test_invalid_mode_tag_is_treated_as_notify(env: Any) -> None:
    r, params = _sg_case(env)
    _tag(env, env.esm(r.uuid)["EventSourceMappingArn"], **{"esm-medic_mode": "atuo"})
    res = _apply(env, r, params)
    assert res["status"] == "notify"
    assert any("atuo" in reason for reason in res["decision"]["reasons"])


def test_settings_default_mode_and_cli_override(env: Any) -> None:
    r, params = _sg_case(env)
    env.with_settings(default_mode="notify")
    assert _apply(env, r, params)["status"] == "notify"
    res = _apply(env, r, params, mode_override="auto")
    assert res["status"] == "applied" and res["decision"]["mode_source"] == "cli"


def test_approve_class_actions_wait_for_approval_in_auto_mode(env: Any) -> None:
    r = env.build("vpc-dns-off")
    params = full_params(r, "enable-vpc-dns")
    res = _apply(env, r, params, action="enable-vpc-dns")
    assert res["status"] == "needs-approval"
    assert res["decision"]["codes"][-1] == "safety"
    assert _apply(env, r, params, action="enable-vpc-dns", approved=True)["status"] == "applied"


# ---------------------------------------------------------------------------------------------- kill switch / shadow
@pytest.mark.parametrize("value", ["on", "TRUE", "yes"])
def test_kill_switch_stops_every_change(env: Any, value: str) -> None:
    r, params = _sg_case(env)
    env.kill_switch(value)
    before = env.snapshot(r)
    res = _apply(env, r, params, approved=True)
    assert res["status"] == "ticket"
    assert res["decision"]["kill_switch"] is True and "kill-switch" in res["decision"]["codes"]
    assert env.snapshot(r) == before
    env.kill_switch("off")
    assert _apply(env, r, params)["status"] == "applied"


def test_unreadable_kill_switch_fails_safe(env: Any) -> None:
    r, params = _sg_case(env)
    with inject(env.aws, "ssm", "get_parameter", "AccessDeniedException"):
        res = _apply(env, r, params)
    assert res["status"] == "ticket" and res["decision"]["kill_switch"] is True


def test_shadow_mode_records_the_plan_and_changes_nothing(env: Any) -> None:
    r, params = _sg_case(env)
    env.with_settings(shadow=True)
    before = env.snapshot(r)
    res = _apply(env, r, params)
    assert res["status"] == "shadow"
    assert env.snapshot(r) == before
    (row,) = engine.history(env.aws, r.uuid, settings=env.settings)
    assert row["status"] == "shadow"
    assert row["plan"]["calls"][0]["api"] == "ec2:AuthorizeSecurityGroupIngress"


def test_shadow_from_function_tag(env: Any) -> None:
    r, params = _sg_case(env)
    _tag(env, env.esm(r.uuid)["FunctionArn"], **{"esm-medic_shadow": "true"})
    res = _apply(env, r, params)
    assert res["status"] == "shadow" and res["decision"]["shadow"] is True


# ---------------------------------------------------------------------------------------------- budget
def test_budget_per_security_group(env: Any) -> None:
    r, params = _sg_case(env)
    env.with_settings(budget_per_sg=1)
    first = _apply(env, r, params)
    assert first["status"] == "applied"
    assert engine.rollback(env.aws, first["action_id"], settings=env.settings)["status"] == "rolled-back"
    before = env.snapshot(r)
    plan = engine.plan_fix(env.aws, action="add-sg-self-rule", params=params, uuid=r.uuid, settings=env.settings)
    assert plan["decision"]["outcome"] == "ticket" and "budget" in plan["decision"]["codes"]
    second = _apply(env, r, params)
    assert second["status"] == "ticket"
    assert env.snapshot(r) == before


def test_budget_race_is_caught_by_the_conditional_counter(env: Any) -> None:
    """The decision's budget read says yes, but another run spends the budget before ours: the conditional
    transaction refuses and nothing changes."""
    from esm_medic.remediate.budget import Budget

    r, params = _sg_case(env)
    env.with_settings(budget_per_sg=1)
    sg = params["group_id"]
    budget = Budget(env.world, env.settings)
    original = Budget.check

    raced: list[bool] = []

    def check_then_race(self: Budget, scopes: Any) -> tuple[bool, str]:
        out = original(self, scopes)
        if not raced:
            raced.append(True)
            budget.consume([("sg", sg)])  # the concurrent run, right after our read
        return out

    before = env.snapshot(r)
    try:
        Budget.check = check_then_race  # type: ignore[method-assign]
        res = _apply(env, r, params)
    finally:
        Budget.check = original  # type: ignore[method-assign]
    assert res["status"] == "budget-exceeded", res
    assert env.snapshot(r) == before


def test_budget_counts_all_scopes_or_none(env: Any) -> None:
    from esm_medic.remediate.base import BudgetExceeded
    from esm_medic.remediate.budget import Budget

    b = Budget(env.aws, env.with_settings(budget_per_sg=2, budget_per_vpc=1))
    b.consume([("sg", "sg-a"), ("vpc", "vpc-a")])
    with pytest.raises(BudgetExceeded):
        b.consume([("sg", "sg-a"), ("vpc", "vpc-a")])
    assert [u.used for u in b.usage([("sg", "sg-a"), ("vpc", "vpc-a")])] == [1, 1]


# ---------------------------------------------------------------------------------------------- verification fallback
def test_failed_verifications_fall_back_to_ticket(env: Any) -> None:
    from esm_medic_sandbox import patches

    r, params = _sg_case(env)
    env.with_settings(max_failed_verifications=2)
    res = _apply(env, r, params)
    assert res["status"] == "applied"
    broken = "PROBLEM: Connection error. Please check your event source connection configuration."
    patches.set_esm_status(r.uuid, state="Enabled", last_processing_result=broken)
    try:
        v1 = engine.verify_fix(env.aws, res["action_id"], settings=env.settings)
        assert v1["status"] == "verify-failed" and v1["resource_ok"] and not v1["fallback_to_ticket"]
        v2 = engine.verify_fix(env.aws, res["action_id"], settings=env.settings)
        assert v2["failed_verifications"] == 2 and v2["fallback_to_ticket"]
        plan = engine.plan_fix(env.aws, action="add-sg-self-rule", params=params, uuid=r.uuid, settings=env.settings)
        assert plan["decision"]["outcome"] == "ticket" and "verify-fallback" in plan["decision"]["codes"]
        patches.set_esm_status(r.uuid, state="Disabled")
        assert engine.verify_fix(env.aws, res["action_id"], settings=env.settings)["status"] == "pending"
    finally:
        patches.clear_esm_status(r.uuid)
    v3 = engine.verify_fix(env.aws, res["action_id"], settings=env.settings)
    assert v3["status"] == "verified" and v3["failed_verifications"] == 0


def test_verify_detects_a_removed_rule(env: Any) -> None:
    r, params = _sg_case(env)
    res = _apply(env, r, params)
    (rule_id,) = res["created"]["ingress_rule_ids"]
    env.world.call("ec2", "revoke_security_group_ingress", GroupId=params["group_id"], SecurityGroupRuleIds=[rule_id])
    v = engine.verify_fix(env.aws, res["action_id"], settings=env.settings)
    assert v["status"] == "verify-failed" and not v["resource_ok"]


def test_transient_error_is_not_fixed_on_first_sighting(env: Any) -> None:
    r, params = _sg_case(env)
    diagnosis = {
        "uuid": r.uuid,
        "step": "network",
        "classification": {"entry": "connection-broker-unreachable", "transient": True},
        "root_cause": {"id": "no-sg-self-rule", "fix": "add-sg-self-rule", "fix_params": params},
    }
    first = engine.apply_fix(env.aws, diagnosis, settings=env.settings)
    assert first["status"] == "notify" and "transient-first-sighting" in first["decision"]["codes"]
    second = engine.apply_fix(env.aws, diagnosis, settings=env.settings)
    assert second["status"] == "applied", second


# ---------------------------------------------------------------------------------------------- lock
def test_lock_held_by_another_run(env: Any) -> None:
    r, params = _sg_case(env)
    lock = EsmLock(env.world, r.uuid, table=env.settings.state_table, ttl_seconds=60, purpose="other")
    assert lock.acquire()
    try:
        res = _apply(env, r, params)
        assert res["status"] == "locked"
        assert engine.rollback(env.aws, "act-unknown", settings=env.settings)["status"] == "not-found"
    finally:
        lock.release()
    assert _apply(env, r, params)["status"] == "applied"


def test_expired_lock_is_taken_over(env: Any) -> None:
    r, params = _sg_case(env)
    stale = EsmLock(env.world, r.uuid, table=env.settings.state_table, ttl_seconds=60, clock=lambda: 1_000.0)
    assert stale.acquire()
    assert _apply(env, r, params)["status"] == "applied"


def test_two_concurrent_applies_one_wins(env: Any) -> None:
    r, params = _sg_case(env)
    inside, release = threading.Event(), threading.Event()
    results: dict[str, dict[str, Any]] = {}
    slow = Aws(region="us-east-1", max_attempts=3, session=env.world.session)
    fast = Aws(region="us-east-1", max_attempts=3, session=env.world.session)

    def pause(_: dict[str, Any]) -> None:
        inside.set()
        assert release.wait(20)

    def run(name: str, aws: Aws) -> None:
        results[name] = engine.apply_fix(
            aws, action="add-sg-self-rule", params=params, uuid=r.uuid, settings=env.settings
        )

    with on_call(slow, "ec2", "describe_security_group_rules", pause):
        t = threading.Thread(target=run, args=("slow", slow))
        t.start()
        assert inside.wait(20)
        run("fast", fast)  # while the slow run holds the lock
        release.set()
        t.join(30)
    assert results["fast"]["status"] == "locked"
    assert results["slow"]["status"] == "applied"


# ---------------------------------------------------------------------------------------------- half-applied
def _restrict_egress(env: Any, sg: str) -> None:
    rules = env.world.call("ec2", "describe_security_group_rules", Filters=[{"Name": "group-id", "Values": [sg]}])
    ids = [x["SecurityGroupRuleId"] for x in rules["SecurityGroupRules"] if x["IsEgress"]]
    env.world.call("ec2", "revoke_security_group_egress", GroupId=sg, SecurityGroupRuleIds=ids)


def _crash(_: dict[str, Any]) -> None:
    raise SimulatedCrash("the process died")


def test_interrupted_apply_is_completed_by_the_next_run(env: Any) -> None:
    r, params = _sg_case(env)
    _restrict_egress(env, params["group_id"])
    before = env.snapshot(r)
    with on_call(env.aws, "ec2", "authorize_security_group_egress", _crash), pytest.raises(SimulatedCrash):
        _apply(env, r, params)
    audit = AuditLog(env.aws, env.settings.audit_table)
    (dangling,) = audit.in_flight(r.uuid)
    assert dangling.status == "started"
    plan = engine.plan_fix(env.aws, action="add-sg-self-rule", params=params, uuid=r.uuid, settings=env.settings)
    assert plan["in_flight"] == dangling.action_id
    assert plan["incident_id"] == dangling.incident_id
    assert plan["plan"]["adopted"]["ingress_rule_ids"], "the ingress rule made before the crash is recognised"

    res = _apply(env, r, params)
    assert res["status"] == "applied" and res["resumed"] == dangling.action_id
    assert len(res["created"]["ingress_rule_ids"]) == 1 and len(res["created"]["egress_rule_ids"]) == 1
    assert audit.in_flight(r.uuid) == []
    assert engine.rollback(env.aws, dangling.action_id, settings=env.settings)["status"] == "rolled-back"
    after = env.snapshot(r)
    assert after == before, diff_snapshots(before, after)


def test_interrupted_endpoint_creation_is_completed(env: Any) -> None:
    r = env.build("no-nat-no-endpoints")
    params = full_params(r, "create-vpc-endpoints")
    before = env.snapshot(r)

    def crash_on_lambda(p: dict[str, Any]) -> None:
        if "lambda" in p["ServiceName"]:
            _crash(p)

    with on_call(env.aws, "ec2", "create_vpc_endpoint", crash_on_lambda), pytest.raises(SimulatedCrash):
        _apply(env, r, params, action="create-vpc-endpoints", approved=True)
    res = _apply(env, r, params, action="create-vpc-endpoints", approved=True)
    assert res["status"] == "applied" and res["resumed"], res
    assert len(res["created"]["vpc_endpoint_ids"]) == 2 and len(res["created"]["security_group_ids"]) == 1
    engine.rollback(env.aws, res["action_id"], settings=env.settings)
    assert env.snapshot(r) == before


def test_interrupted_change_is_left_alone_under_the_kill_switch_and_can_be_rolled_back(env: Any) -> None:
    r, params = _sg_case(env)
    _restrict_egress(env, params["group_id"])
    before = env.snapshot(r)
    with on_call(env.aws, "ec2", "authorize_security_group_egress", _crash), pytest.raises(SimulatedCrash):
        _apply(env, r, params)
    half = env.snapshot(r)
    env.kill_switch("on")
    res = _apply(env, r, params)
    assert res["status"] == "half-applied"
    assert env.snapshot(r) == half
    (dangling,) = AuditLog(env.aws, env.settings.audit_table).in_flight(r.uuid)
    rb = engine.rollback(env.aws, dangling.action_id, settings=env.settings)
    assert rb["status"] == "rolled-back" and rb["removed"]["ingress_rule_ids"]
    assert env.snapshot(r) == before


def test_failure_mid_apply_leaves_nothing_behind(env: Any) -> None:
    """An error (not a crash) half-way: what this attempt made is removed at once and the audit says failed."""
    r, params = _sg_case(env)
    _restrict_egress(env, params["group_id"])
    before = env.snapshot(r)
    with inject(env.aws, "ec2", "authorize_security_group_egress", "UnauthorizedOperation", when=_not_dry):
        res = _apply(env, r, params)
    assert res["status"] == "failed"
    assert res["missing_permission"] == "ec2:AuthorizeSecurityGroupEgress"
    assert res["cleanup"]["ok"] and res["cleanup"]["removed"]["ingress_rule_ids"]
    assert env.snapshot(r) == before
    rows = engine.history(env.aws, r.uuid, settings=env.settings)
    assert [x["status"] for x in rows] == ["failed", "started"]
    assert "ec2:AuthorizeSecurityGroupEgress" in rows[0]["error"]
    assert AuditLog(env.aws, env.settings.audit_table).in_flight(r.uuid) == []


def _not_dry(request: Any) -> bool:
    from remediate_helpers import is_dry_run

    return not is_dry_run(request)


# ---------------------------------------------------------------------------------------------- approval binding
def test_apply_is_bound_to_the_recorded_plan(env: Any) -> None:
    r, params = _sg_case(env)
    env.with_settings(default_mode="approve")
    planned = engine.plan_fix(
        env.aws, action="add-sg-self-rule", params=params, uuid=r.uuid, settings=env.settings, record=True
    )
    assert planned["status"] == "planned" and planned["action_id"]
    waiting = _apply(env, r, params, planned_action_id=planned["action_id"])
    assert waiting["status"] == "needs-approval" and waiting["action_id"] == planned["action_id"]
    res = _apply(env, r, params, approved=True, approver="bob", planned_action_id=planned["action_id"])
    assert res["status"] == "applied" and res["action_id"] == planned["action_id"]
    assert res["incident_id"] == planned["incident_id"]
    rows = engine.history(env.aws, r.uuid, settings=env.settings)
    assert [x["status"] for x in rows] == ["restarted", "applied", "started", "planned"]
    again = _apply(env, r, params, approved=True, planned_action_id=planned["action_id"])
    assert again["status"] == "invalid" and "already used" in again["error"]


def test_a_plan_that_grew_after_approval_is_not_applied(env: Any) -> None:
    r, params = _sg_case(env)
    planned = engine.plan_fix(env.aws, action="add-sg-self-rule", params=params, uuid=r.uuid, settings=env.settings)
    assert len([c for c in planned["plan"]["calls"] if c["mutating"]]) == 1  # ingress only: egress is open
    _restrict_egress(env, params["group_id"])  # meanwhile, someone closes egress: the live plan now adds egress too
    before = env.snapshot(r)
    res = _apply(
        env,
        r,
        params,
        approved=True,
        incident_id=planned["incident_id"],
        approved_plan=planned["plan"],
    )
    assert res["status"] == "needs-approval" and "plan-changed" in res["decision"]["codes"]
    assert env.snapshot(r) == before


def test_an_old_error_right_after_the_fix_is_pending_not_failed(env: Any) -> None:
    from esm_medic_sandbox import patches

    r, params = _sg_case(env)
    env.with_settings(verify_grace_seconds=600)
    res = _apply(env, r, params)
    patches.set_esm_status(r.uuid, last_processing_result="PROBLEM: Connection error. Please check your event source.")
    try:
        v = engine.verify_fix(env.aws, res["action_id"], settings=env.settings)
    finally:
        patches.clear_esm_status(r.uuid)
    assert v["status"] == "pending" and v["failed_verifications"] == 0
    assert next(x["status"] for x in engine.history(env.aws, r.uuid, settings=env.settings)) == "restarted"
