"""Every fixable sandbox scenario, through the engine: plan (no writes) -> apply -> re-apply (no-op) -> verify ->
rollback (the account is exactly as before) -> the ESM fails again."""

from __future__ import annotations

import json
from typing import Any

import pytest
from remediate_helpers import diff_snapshots, full_params

from esm_medic.classify import classify
from esm_medic.remediate import engine

CASES = [
    ("missing-sg-self-rule", "add-sg-self-rule"),
    ("wrong-port-self-rule", "add-sg-self-rule"),
    ("self-managed-missing-sg-rule", "add-sg-self-rule"),
    ("no-nat-no-endpoints", "create-vpc-endpoints"),
    ("missing-secretsmanager-endpoint", "create-vpc-endpoints"),
    ("role-without-kafka-cluster", "grant-iam-permissions"),
    ("vpc-dns-off", "enable-vpc-dns"),
]


def _healthy(env: Any, uuid: str) -> bool:
    return classify(env.esm(uuid)).healthy


@pytest.mark.parametrize(("scenario", "action"), CASES)
def test_full_cycle(env: Any, scenario: str, action: str) -> None:
    r = env.build(scenario)
    assert r.expected["fix"] == action
    params = full_params(r, action)
    if action != "add-sg-self-rule":
        env.with_settings(default_mode="approve")
    before = env.snapshot(r)
    assert not _healthy(env, r.uuid)

    plan = engine.plan_fix(env.aws, action=action, params=params, uuid=r.uuid, settings=env.settings)
    assert plan["status"] == "planned", plan
    assert env.snapshot(r) == before, "planning changed the account"
    calls = [c for c in plan["plan"]["calls"] if c["mutating"]]
    assert calls and plan["plan"]["diff"]
    assert all(c["dry_run"] in ("allowed", "unsupported", "skipped") for c in calls), calls
    if action == "create-vpc-endpoints":
        cost = plan["plan"]["cost"]
        n_az = len(set(r.subnet_ids))
        assert cost["monthly_total"] == pytest.approx(len(params["services"]) * n_az * 0.01 * 730)
    expected_outcome = "auto" if action == "add-sg-self-rule" else "approve"
    assert plan["decision"]["outcome"] == expected_outcome

    applied = engine.apply_fix(
        env.aws, action=action, params=params, uuid=r.uuid, settings=env.settings, approved=True, approver="tester"
    )
    assert applied["status"] == "applied", applied
    assert applied["restart"]["restarted"] is True
    assert any(applied["created"].values())
    after_apply = env.snapshot(r)
    assert after_apply != before
    assert _healthy(env, r.uuid), env.esm(r.uuid)

    again = engine.apply_fix(env.aws, action=action, params=params, uuid=r.uuid, settings=env.settings, approved=True)
    assert again["status"] == "noop", again
    assert env.snapshot(r) == after_apply

    verified = engine.verify_fix(env.aws, applied["action_id"], settings=env.settings)
    assert verified["status"] == "verified", verified
    assert verified["resource_ok"] and verified["failed_verifications"] == 0

    rolled = engine.rollback(env.aws, applied["action_id"], settings=env.settings, actor="tester")
    assert rolled["status"] == "rolled-back", rolled
    after_rollback = env.snapshot(r)
    assert after_rollback == before, diff_snapshots(before, after_rollback)
    assert not _healthy(env, r.uuid)
    assert engine.rollback(env.aws, applied["action_id"], settings=env.settings)["status"] == "noop"

    rows = engine.history(env.aws, r.uuid, settings=env.settings)
    assert [row["status"] for row in rows] == ["rolled-back", "verified", "restarted", "applied", "started"]
    for out in (plan, applied, again, verified, rolled, rows):  # what Lambda handlers return must be plain JSON
        json.dumps(out)


def test_wrong_port_keeps_the_other_rule(env: Any) -> None:
    r = env.build("wrong-port-self-rule")
    sg = r.resources["cluster_security_group_id"]
    rules_before = env.world.call(
        "ec2", "describe_security_group_rules", Filters=[{"Name": "group-id", "Values": [sg]}]
    )["SecurityGroupRules"]
    old = [x["SecurityGroupRuleId"] for x in rules_before if x.get("FromPort") == 9094]
    assert old
    res = engine.apply_fix(
        env.aws,
        action="add-sg-self-rule",
        params=full_params(r, "add-sg-self-rule"),
        uuid=r.uuid,
        settings=env.settings,
    )
    assert res["status"] == "applied"
    rules = env.world.call("ec2", "describe_security_group_rules", Filters=[{"Name": "group-id", "Values": [sg]}])[
        "SecurityGroupRules"
    ]
    mine = [x for x in rules if x["SecurityGroupRuleId"] in res["created"]["ingress_rule_ids"]]
    assert [(x["FromPort"], x["ToPort"], x["ReferencedGroupInfo"]["GroupId"]) for x in mine] == [(9098, 9098, sg)]
    tags = {t["Key"]: t["Value"] for t in mine[0]["Tags"]}
    assert tags == {"esm-medic:managed": "true", "esm-medic:incident": res["incident_id"]}
    assert all(x["SecurityGroupRuleId"] in {y["SecurityGroupRuleId"] for y in rules} for x in rules_before)
    engine.rollback(env.aws, res["action_id"], settings=env.settings)
    left = env.world.call("ec2", "describe_security_group_rules", Filters=[{"Name": "group-id", "Values": [sg]}])[
        "SecurityGroupRules"
    ]
    assert {x["SecurityGroupRuleId"] for x in left} == {x["SecurityGroupRuleId"] for x in rules_before}


def test_endpoints_are_tagged_and_behind_a_dedicated_group(env: Any) -> None:
    r = env.build("no-nat-no-endpoints")
    params = full_params(r, "create-vpc-endpoints")
    res = engine.apply_fix(
        env.aws, action="create-vpc-endpoints", params=params, uuid=r.uuid, settings=env.settings, approved=True
    )
    assert res["status"] == "applied", res
    ids = res["created"]["vpc_endpoint_ids"]
    (sg,) = res["created"]["security_group_ids"]
    eps = [
        e
        for e in env.world.call("ec2", "describe_vpc_endpoints", Filters=[{"Name": "vpc-id", "Values": [r.vpc_id]}])[
            "VpcEndpoints"
        ]
        if e["VpcEndpointId"] in ids
    ]
    assert sorted(e["ServiceName"].rsplit(".", 1)[-1] for e in eps) == ["lambda", "sts"]
    for e in eps:
        assert e["PrivateDnsEnabled"] is True
        assert [g["GroupId"] for g in e["Groups"]] == [sg]
        assert sorted(e["SubnetIds"]) == sorted(r.subnet_ids)
        tags = {t["Key"]: t["Value"] for t in e["Tags"]}
        assert tags["esm-medic:managed"] == "true" and tags["esm-medic:incident"] == res["incident_id"]
    rules = env.world.call("ec2", "describe_security_group_rules", Filters=[{"Name": "group-id", "Values": [sg]}])[
        "SecurityGroupRules"
    ]
    assert [(x["IsEgress"], x["FromPort"], x["ReferencedGroupInfo"]["GroupId"]) for x in rules] == [
        (False, 443, params["source_group_ids"][0])
    ], "the endpoint group admits 443 from the cluster group only and has no CIDR rule at all"


def test_diagnosis_drives_the_fix(env: Any) -> None:
    """`fix UUID` path: the diagnosis' root cause and parameters go straight into the engine."""
    pytest.importorskip("esm_medic.diagnose")
    from esm_medic.diagnose import diagnose

    r = env.build("missing-sg-self-rule")
    d = diagnose(env.aws, r.uuid)
    plan = engine.plan_fix(env.aws, d, settings=env.settings)
    assert plan["action"] == "add-sg-self-rule" and plan["status"] == "planned", plan
    res = engine.apply_fix(env.aws, d.to_dict(), settings=env.settings)
    assert res["status"] == "applied", res
    assert _healthy(env, r.uuid)
    healthy = engine.plan_fix(env.aws, diagnose(env.aws, r.uuid), settings=env.settings)
    assert healthy["status"] == "healthy"


def test_credentials_never_fixed_automatically(env: Any) -> None:
    pytest.importorskip("esm_medic.diagnose")
    from esm_medic.diagnose import diagnose

    r = env.build("malformed-secret")
    before = env.snapshot(r)
    d = diagnose(env.aws, r.uuid)
    res = engine.apply_fix(env.aws, d, settings=env.settings, approved=True)
    assert res["status"] == "ticket"
    assert res["decision"]["outcome"] == "ticket"
    assert env.snapshot(r) == before
