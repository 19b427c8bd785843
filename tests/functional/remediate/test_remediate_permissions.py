"""The IAM actions each action declares are exactly the APIs it calls (Cloud Custodian's meta-test, run live in the
sandbox and recorded with the adapter's call counter), and the engine never calls outside ``all_permissions()``."""

from __future__ import annotations

from typing import Any

import pytest
from remediate_helpers import full_params

from esm_medic.aws import Aws
from esm_medic.remediate import engine, registry
from esm_medic.remediate.base import ActionContext, ActionRecord
from esm_medic.remediate.scope import resolve

CYCLES = {
    "add-sg-self-rule": "missing-sg-self-rule",
    "create-vpc-endpoints": "no-nat-no-endpoints",
    "grant-iam-permissions": "role-without-kafka-cluster",
    "enable-vpc-dns": "vpc-dns-off",
}


#: actions whose permission meta-test lives with their owner (no broken-world scenario needed to offer them)
EXERCISED_ELSEWHERE = {"enable-esm-system-logs": "tests/functional/detect/test_detect_esm_logging_action.py"}


def test_every_registered_action_is_exercised() -> None:
    assert set(CYCLES) | set(EXERCISED_ELSEWHERE) == set(registry.all_actions())


def _prepare(env: Any, name: str) -> tuple[Any, dict[str, Any]]:
    r = env.build(CYCLES[name])
    params = full_params(r, name)
    if name == "add-sg-self-rule":  # restrict egress so that both directions are added and revoked
        sg = params["group_id"]
        rules = env.world.call("ec2", "describe_security_group_rules", Filters=[{"Name": "group-id", "Values": [sg]}])
        egress = [x["SecurityGroupRuleId"] for x in rules["SecurityGroupRules"] if x["IsEgress"]]
        env.world.call("ec2", "revoke_security_group_egress", GroupId=sg, SecurityGroupRuleIds=egress)
        https = {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
        env.world.call("ec2", "authorize_security_group_egress", GroupId=sg, IpPermissions=[https])  # the NAT path
    return r, params


@pytest.mark.parametrize("name", sorted(CYCLES))
def test_declared_permissions_equal_the_calls_made(env: Any, name: str) -> None:
    r, params = _prepare(env, name)
    aws = Aws(region="us-east-1", max_attempts=3, session=env.world.session)
    cls = registry.get(name)
    scope = resolve(env.world, env.esm(r.uuid)) if cls.network_bound else None  # the engine's part, not counted
    ctx = ActionContext(
        aws, f"inc-meta{env.n}", r.uuid, "meta-test", "act-meta", env.settings, sleep=lambda _: None, scope=scope
    )
    plan = cls(params, ctx).plan()
    assert not plan.refused and not plan.noop and not plan.missing_permissions, plan.to_dict()
    act = cls(params, ctx)
    result = act.apply(plan)
    assert result.changed
    record = ActionRecord(
        action_id="act-meta",
        uuid=r.uuid,
        incident_id=ctx.incident_id,
        actor="meta-test",
        action=name,
        status="applied",
        params=act.params,
        before=result.before,
        after=result.after,
        created=result.created,
    )
    assert cls(params, ctx).verify(record).ok
    rolled = cls(params, ctx).rollback(record)
    assert rolled.changed

    called = set(aws.calls)
    declared = set(cls.permissions)
    assert called <= declared, f"{name} calls APIs it does not declare: {sorted(called - declared)}"
    unexplained = declared - called - set(cls.implied_permissions)
    assert not unexplained, f"{name} declares permissions it never needed: {sorted(unexplained)}"
    assert set(cls.implied_permissions) <= declared


@pytest.mark.parametrize("name", sorted(CYCLES))
def test_the_engine_stays_inside_all_permissions(env: Any, name: str) -> None:
    r, params = _prepare(env, name)
    res = engine.apply_fix(env.aws, action=name, params=params, uuid=r.uuid, settings=env.settings, approved=True)
    assert res["status"] == "applied", res
    assert engine.verify_fix(env.aws, res["action_id"], settings=env.settings)["status"] == "verified"
    assert engine.rollback(env.aws, res["action_id"], settings=env.settings)["status"] == "rolled-back"
    engine.history(env.aws, settings=env.settings)
    allowed = set(registry.all_permissions())
    outside = registry.iam_actions_for(env.aws.calls) - allowed
    assert not outside, f"the remediation role would lack {sorted(outside)}"
