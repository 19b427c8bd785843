"""``enable-esm-system-logs`` in the sandbox: plan / apply / verify / rollback, refusals, idempotence, declared IAM
equal to the calls made, and the engine (approve mode by default, dry run) staying inside all_permissions()."""

from __future__ import annotations

from typing import Any

from esm_medic.config import Settings
from esm_medic.remediate import engine, registry
from esm_medic.remediate.actions.esm_logging import EnableEsmSystemLogs, offer
from esm_medic.remediate.base import ActionContext, ActionRecord

NAME = "enable-esm-system-logs"
POLLERS = {"MinimumPollers": 1, "MaximumPollers": 2}


def _ctx(aws: Any, uuid: str) -> ActionContext:
    return ActionContext(aws, "inc-logs-1", uuid, "test", "act-logs-1", Settings.from_env(), sleep=lambda _: None)


def _level(aws: Any, uuid: str) -> str:
    item = aws.call("lambda", "get_event_source_mapping", UUID=uuid)
    return str((item.get("LoggingConfig") or {}).get("SystemLogLevel") or "")


def test_registered_with_approve_by_default() -> None:
    cls = registry.get(NAME)
    assert cls is EnableEsmSystemLogs and cls.default_safety == "approve" and not cls.restart_polling
    assert set(cls.permissions) <= set(registry.all_permissions())


def test_cycle_and_declared_permissions_equal_the_calls(detect: Any) -> None:
    (u,) = detect.add_msk(ProvisionedPollerConfig=POLLERS)
    item = detect.aws.call("lambda", "get_event_source_mapping", UUID=u)
    assert offer(item) == {"action": NAME, "params": {"uuid": u, "level": "INFO"}}
    detect.aws.reset_counts()
    ctx = _ctx(detect.aws, u)
    params = {"uuid": u}
    plan = EnableEsmSystemLogs(params, ctx).plan()
    assert not plan.refused and not plan.noop and plan.diff[-1] == "+ SystemLogLevel: INFO"
    assert _level(detect.aws, u) == ""  # planning changes nothing
    act = EnableEsmSystemLogs(params, ctx)
    result = act.apply(plan)
    assert result.changed and result.after["level"] == "INFO" and _level(detect.aws, u) == "INFO"
    record = ActionRecord(
        action_id="act-logs-1",
        uuid=u,
        incident_id=ctx.incident_id,
        actor="test",
        action=NAME,
        status="applied",
        params=act.params,
        before=result.before,
        after=result.after,
        created=result.created,
    )
    assert EnableEsmSystemLogs(params, ctx).verify(record).ok
    again = EnableEsmSystemLogs(params, ctx).plan()
    assert again.noop  # idempotent: already at the level
    rolled = EnableEsmSystemLogs(params, ctx).rollback(record)
    assert rolled.changed and _level(detect.aws, u) == "WARN"
    called = {c for c in detect.aws.calls if c.startswith("lambda:")}
    assert called == set(EnableEsmSystemLogs.permissions)
    assert offer(detect.aws.call("lambda", "get_event_source_mapping", UUID=u), level="WARN") is None


def test_refuses_on_demand_mode_and_missing_esm(detect: Any) -> None:
    (u,) = detect.add_msk()
    item = detect.aws.call("lambda", "get_event_source_mapping", UUID=u)
    assert offer(item) is None
    plan = EnableEsmSystemLogs({"uuid": u}, _ctx(detect.aws, u)).plan()
    assert plan.refused and "provisioned mode" in plan.refused
    gone = "00000000-0000-4000-8000-000000000000"
    assert "does not exist" in str(EnableEsmSystemLogs({"uuid": gone}, _ctx(detect.aws, gone)).plan().refused)


def test_rollback_leaves_a_level_changed_by_someone_else(detect: Any) -> None:
    (u,) = detect.add_msk(ProvisionedPollerConfig=POLLERS)
    ctx = _ctx(detect.aws, u)
    act = EnableEsmSystemLogs({"uuid": u, "level": "WARN"}, ctx)
    result = act.apply(act.plan())
    detect.aws.call("lambda", "update_event_source_mapping", UUID=u, LoggingConfig={"SystemLogLevel": "DEBUG"})
    record = ActionRecord(
        action_id="a",
        uuid=u,
        incident_id=ctx.incident_id,
        actor="t",
        action=NAME,
        status="applied",
        params=act.params,
        before=result.before,
        after=result.after,
        created=result.created,
    )
    rolled = EnableEsmSystemLogs({"uuid": u, "level": "WARN"}, ctx).rollback(record)
    assert not rolled.changed and _level(detect.aws, u) == "DEBUG"


def test_engine_approve_mode_dry_run_and_apply(detect: Any) -> None:
    (u,) = detect.add_msk(ProvisionedPollerConfig=POLLERS)
    settings = Settings(poll_seconds=0, restart_timeout_seconds=5, verify_grace_seconds=0)
    waiting = engine.apply_fix(detect.aws, action=NAME, params={"uuid": u}, uuid=u, settings=settings)
    assert waiting["status"] == "needs-approval" and _level(detect.aws, u) == ""
    dry = engine.plan_fix(detect.aws, action=NAME, params={"uuid": u}, uuid=u, settings=settings)
    assert "SystemLogLevel" in str(dry) and _level(detect.aws, u) == ""  # the dry run changes nothing
    detect.aws.reset_counts()
    res = engine.apply_fix(detect.aws, action=NAME, params={"uuid": u}, uuid=u, settings=settings, approved=True)
    assert res["status"] == "applied", res
    assert _level(detect.aws, u) == "INFO"
    assert engine.rollback(detect.aws, res["action_id"], settings=settings)["status"] == "rolled-back"
    outside = registry.iam_actions_for(detect.aws.calls) - set(registry.all_permissions())
    assert not outside, sorted(outside)
