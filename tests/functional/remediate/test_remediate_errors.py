"""AWS errors and awkward states: AccessDenied (at plan and at apply), throttling, InvalidPermission.Duplicate,
endpoints that already exist, private-DNS conflicts, and the restart rules."""

from __future__ import annotations

import json
from typing import Any

import pytest
from remediate_helpers import full_params, inject, is_dry_run, on_call

from esm_medic.aws import Aws
from esm_medic.remediate import engine


def _not_dry(request: Any) -> bool:
    return not is_dry_run(request)


def _apply(env: Any, r: Any, action: str, params: dict[str, Any], **kw: Any) -> dict[str, Any]:
    kw.setdefault("approved", True)
    return engine.apply_fix(env.aws, action=action, params=params, uuid=r.uuid, settings=env.settings, **kw)


def _plan(env: Any, r: Any, action: str, params: dict[str, Any]) -> dict[str, Any]:
    return engine.plan_fix(env.aws, action=action, params=params, uuid=r.uuid, settings=env.settings)


# ---------------------------------------------------------------------------------------------- AccessDenied
def test_dry_run_denied_names_the_permission_and_makes_a_ticket(env: Any) -> None:
    r = env.build("missing-sg-self-rule")
    params = full_params(r, "add-sg-self-rule")
    with inject(env.aws, "ec2", "authorize_security_group_ingress", "UnauthorizedOperation") as hits:
        plan = _plan(env, r, "add-sg-self-rule", params)
        res = _apply(env, r, "add-sg-self-rule", params)
    assert hits["hits"] == 2  # one DryRun probe per planning, never a real call
    assert plan["plan"]["missing_permissions"] == ["ec2:AuthorizeSecurityGroupIngress"]
    assert plan["plan"]["calls"][0]["dry_run"] == "denied"
    assert plan["decision"]["outcome"] == "ticket" and "missing-permission" in plan["decision"]["codes"]
    assert res["status"] == "ticket"


def test_endpoint_creation_denied_removes_the_group_it_made(env: Any) -> None:
    r = env.build("no-nat-no-endpoints")
    params = full_params(r, "create-vpc-endpoints")
    before = env.snapshot(r)
    with inject(env.aws, "ec2", "create_vpc_endpoint", "UnauthorizedOperation", when=_not_dry):
        res = _apply(env, r, "create-vpc-endpoints", params)
    assert res["status"] == "failed", res
    assert res["missing_permission"] == "ec2:CreateVpcEndpoint"
    assert res["cleanup"]["ok"] and res["cleanup"]["removed"]["security_group_ids"]
    assert env.snapshot(r) == before
    rows = engine.history(env.aws, r.uuid, settings=env.settings)
    assert rows[0]["status"] == "failed" and rows[0]["details"]["attempted"]["security_group_ids"]


def test_second_endpoint_denied_removes_the_first(env: Any) -> None:
    r = env.build("no-nat-no-endpoints")
    params = full_params(r, "create-vpc-endpoints")
    before = env.snapshot(r)

    def second(request: Any) -> bool:
        return _not_dry(request) and b"lambda" in (
            request.body if isinstance(request.body, bytes) else request.body.encode()
        )

    with inject(env.aws, "ec2", "create_vpc_endpoint", "UnauthorizedOperation", when=second):
        res = _apply(env, r, "create-vpc-endpoints", params)
    assert res["status"] == "failed"
    assert len(res["cleanup"]["removed"]["vpc_endpoint_ids"]) == 1
    assert env.snapshot(r) == before


def test_iam_put_denied(env: Any) -> None:
    r = env.build("role-without-kafka-cluster")
    params = full_params(r, "grant-iam-permissions")
    before = env.snapshot(r)
    with inject(env.aws, "iam", "put_role_policy", "AccessDenied"):
        res = _apply(env, r, "grant-iam-permissions", params)
    assert res["status"] == "failed" and res["missing_permission"] == "iam:PutRolePolicy"
    assert "iam:PutRolePolicy" in res["error"]
    assert env.snapshot(r) == before


def test_plan_read_denied_fails_cleanly(env: Any) -> None:
    r = env.build("vpc-dns-off")
    with inject(env.aws, "ec2", "describe_vpc_attribute", "UnauthorizedOperation"):
        plan = _plan(env, r, "enable-vpc-dns", full_params(r, "enable-vpc-dns"))
    assert plan["status"] == "failed"
    assert plan["details"]["missing_permission"] == "ec2:DescribeVpcAttribute"


# ---------------------------------------------------------------------------------------------- throttling
def test_throttling_is_absorbed_by_the_adapter_retries(env: Any) -> None:
    r = env.build("missing-sg-self-rule")
    params = full_params(r, "add-sg-self-rule")
    with inject(
        env.aws, "ec2", "authorize_security_group_ingress", "RequestLimitExceeded", times=2, when=_not_dry
    ) as h:
        res = _apply(env, r, "add-sg-self-rule", params)
    assert h["hits"] == 2
    assert res["status"] == "applied", res
    assert len(res["created"]["ingress_rule_ids"]) == 1
    assert env.aws.calls["ec2:AuthorizeSecurityGroupIngress"] == 2  # one DryRun + one call (retries not counted)


def test_persistent_throttling_fails_cleanly(env: Any) -> None:
    r = env.build("vpc-dns-off")
    params = full_params(r, "enable-vpc-dns")
    before = env.snapshot(r)
    with inject(env.aws, "ec2", "modify_vpc_attribute", "RequestLimitExceeded") as h:
        res = _apply(env, r, "enable-vpc-dns", params)
    # botocore reads retries.max_attempts as *retries*: 1 call + max_attempts retries
    assert h["hits"] == env.aws.max_attempts + 1
    assert res["status"] == "failed" and res["throttled"] is True
    assert env.snapshot(r) == before


def test_throttled_second_change_rolls_back_the_first(env: Any) -> None:
    r = env.build("vpc-dns-off")
    params = full_params(r, "enable-vpc-dns")
    before = env.snapshot(r)

    def hostnames(request: Any) -> bool:
        body = request.body if isinstance(request.body, str) else request.body.decode()
        return "EnableDnsHostnames" in body and "Value=true" in body

    with inject(env.aws, "ec2", "modify_vpc_attribute", "Throttling", when=hostnames):
        res = _apply(env, r, "enable-vpc-dns", params)
    assert res["status"] == "failed" and res["throttled"]
    assert res["cleanup"]["restored"]["attributes"] == {"enableDnsSupport": False}
    assert env.snapshot(r) == before


# ---------------------------------------------------------------------------------------------- duplicates / exists
def test_duplicate_rule_added_concurrently_is_not_an_error(env: Any) -> None:
    r = env.build("missing-sg-self-rule")
    params = full_params(r, "add-sg-self-rule")
    sg = params["group_id"]

    def someone_else_adds_it(_: dict[str, Any]) -> None:
        env.world.call(
            "ec2",
            "authorize_security_group_ingress",
            GroupId=sg,
            IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": 9098, "ToPort": 9098, "UserIdGroupPairs": [{"GroupId": sg}]}
            ],
        )

    # AWS answers InvalidPermission.Duplicate when the same group/port rule exists (whatever its description);
    # moto accepts a second rule that differs only by description, so the answer is injected as AWS gives it
    with (
        on_call(env.aws, "ec2", "authorize_security_group_ingress", someone_else_adds_it),
        inject(env.aws, "ec2", "authorize_security_group_ingress", "InvalidPermission.Duplicate", when=_not_dry),
    ):
        res = _apply(env, r, "add-sg-self-rule", params)
    assert res["status"] == "applied", res
    assert res["changed"] is False and res["created"] == {}
    assert any("duplicate" in n for n in res["notes"])
    assert res["restart"] is None
    rb = engine.rollback(env.aws, res["action_id"], settings=env.settings)
    assert rb["status"] == "rolled-back" and rb["removed"] == {}
    rules = env.world.call("ec2", "describe_security_group_rules", Filters=[{"Name": "group-id", "Values": [sg]}])
    assert any(x.get("FromPort") == 9098 for x in rules["SecurityGroupRules"]), "someone else's rule is kept"


def test_existing_unmanaged_endpoint_is_refused(env: Any) -> None:
    r = env.build("missing-secretsmanager-endpoint")
    params = dict(full_params(r, "create-vpc-endpoints"), services=["sts", "secretsmanager"])
    plan = _plan(env, r, "create-vpc-endpoints", params)
    assert plan["status"] == "refused"
    assert "sts" in plan["plan"]["refused"] and r.resources["endpoint_ids"]["sts"] in plan["plan"]["refused"]
    assert plan["decision"]["outcome"] == "ticket"
    before = env.snapshot(r)
    assert _apply(env, r, "create-vpc-endpoints", params)["status"] == "refused"
    assert env.snapshot(r) == before


def test_private_hosted_zone_conflict_is_refused(env: Any) -> None:
    r = env.build("no-nat-no-endpoints")
    env.world.call(
        "route53",
        "create_hosted_zone",
        Name="sts.us-east-1.amazonaws.com",
        CallerReference=f"t{env.n}",
        VPC={"VPCRegion": "us-east-1", "VPCId": r.vpc_id},
        HostedZoneConfig={"PrivateZone": True, "Comment": "shared-services resolver"},
    )
    plan = _plan(env, r, "create-vpc-endpoints", full_params(r, "create-vpc-endpoints"))
    assert plan["status"] == "refused"
    assert "private hosted zone sts.us-east-1.amazonaws.com." in plan["plan"]["refused"]


def test_route53_denied_warns_and_requires_approval(env: Any) -> None:
    r = env.build("no-nat-no-endpoints")
    params = full_params(r, "create-vpc-endpoints")
    with inject(env.aws, "route53", "list_hosted_zones_by_vpc", "AccessDenied"):
        plan = _plan(env, r, "create-vpc-endpoints", params)
        res = engine.apply_fix(
            env.aws, action="create-vpc-endpoints", params=params, uuid=r.uuid, settings=env.settings
        )
    assert plan["status"] == "planned"
    assert plan["plan"]["requires_approval"] and "ListHostedZonesByVPC" in plan["plan"]["warnings"][0]
    assert res["status"] == "needs-approval"


def test_endpoints_need_vpc_dns(env: Any) -> None:
    r = env.build("vpc-dns-off")
    params = full_params(r, "enable-vpc-dns")
    ep = {
        "vpc_id": r.vpc_id,
        "subnet_ids": r.subnet_ids,
        "services": ["secretsmanager"],
        "source_group_ids": [r.resources["cluster_security_group_id"]],
    }
    plan = _plan(env, r, "create-vpc-endpoints", ep)
    assert plan["status"] == "refused" and "enable-vpc-dns" in plan["plan"]["refused"]
    assert _apply(env, r, "enable-vpc-dns", params)["status"] == "applied"
    assert _plan(env, r, "create-vpc-endpoints", ep)["status"] == "planned"


def test_endpoint_made_by_a_retried_request_is_adopted(env: Any) -> None:
    """CreateVpcEndpoint answers an error although the endpoint was made (a retry / timeout race): the action
    finds the endpoint tagged with its incident and carries on instead of failing or making a second one."""
    r = env.build("no-nat-no-endpoints")
    params = dict(full_params(r, "create-vpc-endpoints"), services=["sts"])
    other = Aws(region="us-east-1", max_attempts=1, session=env.world.session)
    made: list[str] = []

    def create_it_first(p: dict[str, Any]) -> None:
        resp = other.call("ec2", "create_vpc_endpoint", **{k: v for k, v in p.items() if k != "DryRun"})
        made.append(resp["VpcEndpoint"]["VpcEndpointId"])

    with (
        on_call(env.aws, "ec2", "create_vpc_endpoint", create_it_first),
        inject(
            env.aws, "ec2", "create_vpc_endpoint", "InvalidParameter", message="conflicting DNS domain", when=_not_dry
        ),
    ):
        res = _apply(env, r, "create-vpc-endpoints", params)
    assert res["status"] == "applied", res
    assert res["created"]["vpc_endpoint_ids"] == made
    engine.rollback(env.aws, res["action_id"], settings=env.settings)


def test_second_run_with_a_new_incident_is_a_noop(env: Any) -> None:
    for scenario, action in (
        ("no-nat-no-endpoints", "create-vpc-endpoints"),
        ("role-without-kafka-cluster", "grant-iam-permissions"),
    ):
        r = env.build(scenario)
        params = full_params(r, action)
        first = _apply(env, r, action, params, incident_id=f"inc-a{env.n}")
        assert first["status"] == "applied"
        second = _apply(env, r, action, params, incident_id=f"inc-b{env.n}")
        assert second["status"] == "noop", second


def test_policy_name_taken_before_is_restored_on_rollback(env: Any) -> None:
    r = env.build("role-without-kafka-cluster")
    params = full_params(r, "grant-iam-permissions")
    incident = f"inc-old{env.n}"
    old = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": "*"}]}
    env.world.call(
        "iam",
        "put_role_policy",
        RoleName=r.role_name,
        PolicyName=f"esm-medic-{incident}",
        PolicyDocument=json.dumps(old),
    )
    before = env.snapshot(r)
    plan = engine.plan_fix(
        env.aws, action="grant-iam-permissions", params=params, uuid=r.uuid, incident_id=incident, settings=env.settings
    )
    assert any(line.startswith("-") and "logs:PutLogEvents" in line for line in plan["plan"]["diff"]), plan["plan"][
        "diff"
    ]
    res = _apply(env, r, "grant-iam-permissions", params, incident_id=incident)
    assert res["status"] == "applied"
    engine.rollback(env.aws, res["action_id"], settings=env.settings)
    assert env.snapshot(r) == before


# ---------------------------------------------------------------------------------------------- restart
def test_esm_disabled_by_its_owner_is_not_restarted(env: Any) -> None:
    r = env.build("missing-sg-self-rule")
    env.world.call("lambda", "update_event_source_mapping", UUID=r.uuid, Enabled=False)
    res = _apply(env, r, "add-sg-self-rule", full_params(r, "add-sg-self-rule"))
    assert res["status"] == "applied"
    assert res["restart"]["restarted"] is False and "owner" in res["restart"]["reason"]
    assert env.esm(r.uuid)["State"] == "Disabled"
    assert engine.verify_fix(env.aws, res["action_id"], settings=env.settings)["status"] == "pending"


def test_invalid_params_never_reach_aws(env: Any) -> None:
    r = env.build("missing-sg-self-rule")
    bad = {"group_id": "sg-0123456789abcdef0", "ports": [9098], "cidr": "0.0.0.0/0"}
    calls_before = env.aws.total_calls
    res = _apply(env, r, "add-sg-self-rule", bad)
    assert res["status"] == "invalid" and "cidr" in res["error"]
    assert env.aws.total_calls == calls_before
    assert _apply(env, r, "no-such-action", {})["status"] == "invalid"


@pytest.mark.parametrize("port", [9092, 9094, 443, 22])
def test_msk_ports_are_the_auth_modes_ports(env: Any, port: int) -> None:
    """The cluster uses IAM (9098): any other port, even another MSK listener's, is refused."""
    r = env.build("missing-sg-self-rule")
    assert full_params(r, "add-sg-self-rule")["ports"] == [9098]
    params = dict(full_params(r, "add-sg-self-rule"), ports=[port])
    res = _plan(env, r, "add-sg-self-rule", params)
    assert res["status"] == "refused" and "not the ESM's broker ports (9098, from auth mode iam)" in res["error"]


def test_endpoint_plan_warns_about_other_workloads_in_the_vpc(env: Any) -> None:
    r = env.build("no-nat-no-endpoints")
    params = full_params(r, "create-vpc-endpoints")
    plan = _plan(env, r, "create-vpc-endpoints", params)
    assert not plan["plan"]["warnings"]
    other_sg = env.world.call(
        "ec2", "create_security_group", GroupName=f"batch-{env.n}", Description="another workload", VpcId=r.vpc_id
    )["GroupId"]
    eni = env.world.call("ec2", "create_network_interface", SubnetId=r.subnet_ids[0], Groups=[other_sg])[
        "NetworkInterface"
    ]["NetworkInterfaceId"]
    plan = _plan(env, r, "create-vpc-endpoints", params)
    (warning,) = plan["plan"]["warnings"]
    assert eni in warning and other_sg in warning and "whole VPC" in warning
    assert plan["plan"]["requires_approval"] is True


# ------------------------------------------------------------------------------------- budgets / reasons / tables
def test_budgets_count_changes_not_throttled_attempts(env: Any) -> None:
    """Authorize throttled on every attempt: nothing changes, so nothing is spent; the next real change still fits."""
    from esm_medic.remediate.budget import Budget

    r = env.build("missing-sg-self-rule")
    params = full_params(r, "add-sg-self-rule")
    env.with_settings(budget_per_sg=2)
    sg = params["group_id"]
    for _ in range(3):
        with inject(env.aws, "ec2", "authorize_security_group_ingress", "RequestLimitExceeded", when=_not_dry):
            res = _apply(env, r, "add-sg-self-rule", params)
        assert res["status"] == "failed" and res["throttled"] is True, res
        assert "throttled" in res["error"]
    assert [u.used for u in Budget(env.aws, env.settings).usage([("sg", sg)])] == [0]
    done = _apply(env, r, "add-sg-self-rule", params)
    assert done["status"] == "applied", done
    assert [u.used for u in Budget(env.aws, env.settings).usage([("sg", sg)])] == [1]


def test_a_change_that_was_made_counts_even_when_a_later_step_fails(env: Any) -> None:
    from esm_medic.remediate.budget import Budget

    r = env.build("vpc-dns-off")
    params = full_params(r, "enable-vpc-dns")

    def hostnames(request: Any) -> bool:
        body = request.body if isinstance(request.body, str) else request.body.decode()
        return "EnableDnsHostnames" in body and "Value=true" in body

    with inject(env.aws, "ec2", "modify_vpc_attribute", "Throttling", when=hostnames):
        res = _apply(env, r, "enable-vpc-dns", params)
    assert res["status"] == "failed"
    assert [u.used for u in Budget(env.aws, env.settings).usage([("vpc", r.vpc_id)])] == [1]


def test_every_unapplied_outcome_says_why(env: Any) -> None:
    """A budget-exhausted (ticket) decision carries its reason in ``error``: a ticket never opens with no reason."""
    r = env.build("missing-sg-self-rule")
    params = full_params(r, "add-sg-self-rule")
    env.with_settings(budget_per_sg=1)
    first = _apply(env, r, "add-sg-self-rule", params)
    assert engine.rollback(env.aws, first["action_id"], settings=env.settings)["status"] == "rolled-back"
    res = _apply(env, r, "add-sg-self-rule", params)
    assert res["status"] == "ticket"
    assert "budget" in res["error"] and "1/1 changes this window" in res["error"]
    env.with_settings(default_mode="notify")
    res = _apply(env, r, "add-sg-self-rule", params)
    assert res["status"] == "notify" and "mode is notify" in res["error"]


@pytest.mark.parametrize("table", ["audit", "state"])
def test_a_missing_table_is_named(env: Any, table: str) -> None:
    r = env.build("missing-sg-self-rule")
    params = full_params(r, "add-sg-self-rule")
    missing = f"esm-medic-{table}-missing-{env.n}"
    env.with_settings(**{f"{table}_table": missing})
    res = _apply(env, r, "add-sg-self-rule", params)
    assert res["status"] in ("failed", "ticket"), res
    text = json.dumps(res)
    assert f"DynamoDB table '{missing}' does not exist" in text, text
