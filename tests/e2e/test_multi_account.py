"""One central install acting in a member account (moto: several account ids; an assumed role's credentials act in
the role's account; the sandbox's STS evaluates trust policies, ``esm_medic_sandbox.patch_sts``).

The member stack (``infra/member_stack.py``, synthesized alone) is deployed with CloudFormation into the member
account; broken ESMs are built there. From the central account, as an ``EsmMedic*`` role (what the member roles
trust), the CLI diagnoses and fixes one through the assumed roles; the central sweeper detects another and the
central Step Functions workflow (the real ASL, the local runner) diagnoses and fixes it through the assumed roles.
The fixes land in the member account, the audit log stays central and names the member account. A wrong external
id, a principal outside ``role/EsmMedic*`` and a role that does not trust the central account are refused by STS;
the workflow records that as a ticket. A member in ``notify`` mode gets no change.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from esm_medic_sandbox import multi_account
from esm_medic_sandbox.multi_account import assumed, create_central_role, credentials

from esm_medic import accounts
from esm_medic.aws import Aws
from esm_medic.cli.main import main

MEMBER = "222233334444"
EXTERNAL_ID = "esm-medic-e2e-external-id"


def synth_member_template(central: str, external_id: str) -> dict[str, Any]:
    import aws_cdk as cdk

    from infra.member_stack import EsmMedicMemberStack
    from infra.settings import load

    app = cdk.App()
    settings = load({"CentralAccount": central, "ExternalId": external_id}, member=True)
    EsmMedicMemberStack(
        app,
        "EsmMedicMember",
        settings=settings,
        synthesizer=cdk.DefaultStackSynthesizer(generate_bootstrap_version_rule=False),
    )
    template: dict[str, Any] = app.synth().get_stack_by_name("EsmMedicMember").template
    return template


def central_role(root: Aws, name: str) -> tuple[Aws, dict[str, str]]:
    """A role of the central account that its root may assume, as (adapter, environment credentials): the central
    functions and the operator run as ``role/EsmMedic*``, the principals the member roles trust."""
    arn = create_central_role(root, name)
    creds = credentials(root, arn, name)
    env = {
        "AWS_ACCESS_KEY_ID": creds["access_key"],
        "AWS_SECRET_ACCESS_KEY": creds["secret_key"],
        "AWS_SESSION_TOKEN": creds["token"],
    }
    return assumed(root, arn, name), env


def admin_of(central: Aws, account: str) -> Aws:
    """The member account as its own administrator (as through OrganizationAccountAccessRole): builds the world."""
    return multi_account.admin_of(central, account, "e2e-admin")


@pytest.fixture(scope="module")
def world() -> Iterator[dict[str, Any]]:
    from esm_medic_sandbox import scenarios, simulator
    from esm_medic_sandbox.env import sandbox

    from esm_medic.tables import create_tables

    with sandbox() as root:
        simulator.install()
        central, operator_env = central_role(root, "EsmMedicOperator")
        create_tables(central)
        admin = admin_of(central, MEMBER)
        assert admin.account_id() == MEMBER and central.account_id() != MEMBER
        template = synth_member_template(central.account_id(), EXTERNAL_ID)
        admin.call(
            "cloudformation",
            "create_stack",
            StackName="EsmMedicMember",
            TemplateBody=json.dumps(template),
            Parameters=[
                {"ParameterKey": "CentralAccount", "ParameterValue": central.account_id()},
                {"ParameterKey": "ExternalId", "ParameterValue": EXTERNAL_ID},
            ],
            Capabilities=["CAPABILITY_NAMED_IAM"],
        )
        stack = admin.call("cloudformation", "describe_stacks", StackName="EsmMedicMember")["Stacks"][0]
        assert stack["StackStatus"] == "CREATE_COMPLETE", stack
        broken = scenarios.build(admin, "missing-sg-self-rule", prefix="member")
        yield {"root": root, "central": central, "env": operator_env, "admin": admin, "scenario": broken}


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _self_rule_ports(admin: Aws, sg_id: str) -> set[int]:
    sg = admin.call("ec2", "describe_security_groups", GroupIds=[sg_id])["SecurityGroups"][0]
    return {
        int(p.get("FromPort", -1))
        for p in sg.get("IpPermissions", [])
        if any(pair.get("GroupId") == sg_id for pair in p.get("UserIdGroupPairs", []))
    }


def test_the_member_roles_trust_only_the_central_install_with_the_external_id(world: dict[str, Any]) -> None:
    admin, central = world["admin"], world["central"]
    for name in (accounts.DIAGNOSIS_ROLE, accounts.REMEDIATION_ROLE):
        trust = admin.call("iam", "get_role", RoleName=name)["Role"]["AssumeRolePolicyDocument"]
        doc = json.loads(trust) if isinstance(trust, str) else trust
        (statement,) = doc["Statement"]
        assert statement["Condition"]["StringEquals"]["sts:ExternalId"] == EXTERNAL_ID
        assert statement["Condition"]["ArnLike"]["aws:PrincipalArn"].endswith(
            f":iam::{central.account_id()}:role/EsmMedic*"
        )


def test_central_diagnoses_and_fixes_in_the_member_account(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("esm_medic.diagnose")
    central, admin, r = world["central"], world["admin"], world["scenario"]
    for k, v in world["env"].items():  # the operator's shell: an EsmMedic* role of the central account
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("ESM_MEDIC_MEMBER_ACCOUNTS", MEMBER)
    monkeypatch.setenv("ESM_MEDIC_EXTERNAL_ID", EXTERNAL_ID)
    sg = r.security_group_ids[0]
    assert 9098 not in _self_rule_ports(admin, sg)

    # the ESM is not visible from the central account itself
    code, _, err = _run(capsys, "diagnose", r.uuid, "--json")
    assert code != 0 and "Traceback" not in err

    code, out, err = _run(capsys, "diagnose", r.uuid, "--account", MEMBER, "--json")
    assert code in (0, 1), err
    assert "no-sg-self-rule" in out

    code, out, err = _run(capsys, "scan", "--account", MEMBER, "--json", "--no-progress")
    assert r.uuid in out, err

    code, out, err = _run(capsys, "fix", r.uuid, "--account", MEMBER, "--apply", "--yes", "--json")
    assert code == 0, err + out
    result = json.loads(out)["result"]
    assert result["status"] == "applied", result
    assert 9098 in _self_rule_ports(admin, sg)

    # the audit log is central and names the member account
    from esm_medic.remediate.audit import AuditLog
    from esm_medic.tables import AUDIT

    rows = AuditLog(central, AUDIT.default_name).rows_for(r.uuid)
    assert rows and {row.account for row in rows} == {MEMBER}
    assert {row.action_id for row in rows} == {result["action_id"]}
    # nothing of esm-medic's own state was written in the member account
    assert AUDIT.default_name not in admin.call("dynamodb", "list_tables")["TableNames"]


def test_a_member_adapter_uses_the_roles_and_keeps_state_central(world: dict[str, Any]) -> None:
    central = world["central"]
    settings = accounts.MemberSettings(accounts=(MEMBER,), external_id=EXTERNAL_ID)
    diag = accounts.member_aws(central, MEMBER, purpose="diagnosis", settings=settings)
    fix = accounts.member_aws(central, MEMBER, purpose="remediation", settings=settings)
    assert diag is accounts.member_aws(central, MEMBER, purpose="diagnosis", settings=settings)  # cached
    identity = diag.call("sts", "get_caller_identity")
    assert identity["Account"] == MEMBER and "esm-medic-diagnosis/esm-medic-diagnosis" in identity["Arn"]
    assert "esm-medic-remediation/esm-medic-remediation" in fix.call("sts", "get_caller_identity")["Arn"]
    assert diag.client("dynamodb") is central.client("dynamodb")
    assert diag.client("lambda") is not central.client("lambda")


def test_no_external_id_or_an_unlisted_account_is_refused(world: dict[str, Any]) -> None:
    central = world["central"]
    with pytest.raises(accounts.AccountConfigError, match="no external id"):
        accounts.member_aws(central, MEMBER, settings=accounts.MemberSettings())
    with pytest.raises(accounts.AccountConfigError, match="not a member account"):
        accounts.member_aws(
            central, "999988887777", settings=accounts.MemberSettings(accounts=(MEMBER,), external_id=EXTERNAL_ID)
        )


def test_the_sandbox_sts_refuses_what_the_trust_policy_does_not_allow(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong external id, a caller outside role/EsmMedic* and a role that does not trust the central account are
    refused by STS itself; esm-medic turns each refusal into a clear error naming the account and role."""
    central, root, admin = world["central"], world["root"], world["admin"]
    wrong = accounts.MemberSettings(external_id="a-wrong-external-id")
    with pytest.raises(accounts.AccountAccessError) as info:
        accounts.member_aws(central, MEMBER, settings=wrong)
    assert info.value.account == MEMBER and info.value.role_arn.endswith(":role/esm-medic-diagnosis")
    assert info.value.code == "AccessDenied" and "sts:ExternalId" in str(info.value)

    # the right external id from a principal that is not role/EsmMedic* (the account's default identity)
    right = accounts.MemberSettings(external_id=EXTERNAL_ID)
    with pytest.raises(accounts.AccountAccessError, match="access denied"):
        accounts.member_aws(root, MEMBER, settings=right)

    # a role named like the member stack's that trusts another account, not the central install
    other = "777788889999"
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": other}, "Action": "sts:AssumeRole"}],
    }
    admin.call("iam", "create_role", RoleName="esm-medic-untrusting", AssumeRolePolicyDocument=json.dumps(trust))
    try:
        with pytest.raises(accounts.AccountAccessError, match="access denied"):
            accounts.member_aws(central, f"arn:aws:iam::{MEMBER}:role/esm-medic-untrusting", settings=right)
    finally:
        admin.call("iam", "delete_role", RoleName="esm-medic-untrusting")

    for k, v in world["env"].items():
        monkeypatch.setenv(k, v)
    uuid = "a4b792af-bd05-4736-98c3-8e0c4bc115b4"
    code, _, err = _run(capsys, "diagnose", uuid, "--account", MEMBER, "--external-id", "wrong-xid")
    assert code == 1 and "esm-medic-diagnosis" in err and MEMBER in err and "Traceback" not in err


def test_events_name_the_esm_account_and_route_to_its_adapter(world: dict[str, Any]) -> None:
    central = world["central"]
    home = central.account_id()
    event = {
        "account": home,  # the central bus the sweeper puts its events on
        "detail-type": "ESM Status Change",
        "detail": {"function_arn": f"arn:aws:lambda:us-east-1:{MEMBER}:function:orders"},
    }
    assert accounts.account_of_event(event) == MEMBER
    assert accounts.account_of_event({"account": MEMBER, "detail": {}}) == MEMBER
    assert accounts.account_of_event({"account": "bogus"}) is None
    assert accounts.aws_for(central, home) is central and accounts.aws_for(central, None) is central
    settings = accounts.MemberSettings(external_id=EXTERNAL_ID)
    member = accounts.aws_for(central, MEMBER, "remediation", settings=settings)
    assert isinstance(member, accounts.MemberAws) and member.role_arn.endswith(":role/esm-medic-remediation")
    assert member.account_id() == MEMBER


def test_credentials_are_assumed_once_and_renewed_near_expiry(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime, timedelta

    for k, v in world["env"].items():  # an EsmMedic* role of the central account, with its own adapter cache
        monkeypatch.setenv(k, v)
    central = Aws(region=world["central"].region, max_attempts=1)
    assumed: list[str] = []
    lifetime = {"minutes": 60}
    original = Aws.call

    def counting(self: Aws, service: str, operation: str, **params: Any) -> dict[str, Any]:
        resp = original(self, service, operation, **params)
        if (service, operation) == ("sts", "assume_role"):
            assumed.append(params["RoleArn"])
            resp["Credentials"]["Expiration"] = datetime.now(UTC) + timedelta(minutes=lifetime["minutes"])
        return resp

    monkeypatch.setattr(Aws, "call", counting)
    settings = accounts.MemberSettings(external_id=EXTERNAL_ID)
    member = accounts.member_aws(central, MEMBER, settings=settings)
    for _ in range(3):
        assert accounts.member_aws(central, MEMBER, settings=settings).call("sts", "get_caller_identity")
    assert len(assumed) == 1  # fresh credentials are reused

    lifetime["minutes"] = 5  # inside botocore's mandatory refresh window: renewed before each use
    accounts.clear_cache(central)
    member = accounts.member_aws(central, MEMBER, settings=settings)
    member.call("sts", "get_caller_identity")
    member.call("sts", "get_caller_identity")
    assert len(assumed) >= 3


# ---------------------------------------------------------------------------------------------- the central workflow
#: small waits: the simulator answers at once, so verification needs no real delay
FAST_TUNABLES = {
    "VerifyWaitSeconds": 0,
    "VerifyMaxWaitSeconds": 1,
    "VerifyMaxAttempts": 3,
    "ApprovalTimeoutSeconds": 60,
    "ApprovalHeartbeatSeconds": 55,
}
EXTERNAL_ID_PARAM = "/esm-medic/external-id"


class _Ctx:
    function_name = "EsmMedic-sweeper"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:EsmMedic-sweeper"
    memory_limit_in_mb = 512
    aws_request_id = "sweep-1"
    log_group_name = "/aws/lambda/EsmMedic-sweeper"
    log_stream_name = "s"

    def get_remaining_time_in_millis(self) -> int:
        return 120_000


@pytest.fixture(scope="module")
def central(world: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The central install: the workflow deployed in the central account (functions run as role/EsmMedicFunctions),
    the member list and the external id SecureString as infra sets them."""
    from esm_medic_sandbox.runner import deploy, function_env

    root = world["root"]
    _, fn_creds = central_role(root, "EsmMedicFunctions")
    root.call("ssm", "put_parameter", Name=EXTERNAL_ID_PARAM, Value=EXTERNAL_ID, Type="SecureString")
    env = {
        "ESM_MEDIC_DEFAULT_MODE": "auto",
        "ESM_MEDIC_TICKET_DIR": str(tmp_path_factory.mktemp("tickets")),
        "ESM_MEDIC_NOTIFY_SINKS": "file",
        "ESM_MEDIC_POLL_SECONDS": "0.2",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "ESM_MEDIC_MEMBER_ACCOUNTS": MEMBER,
        "ESM_MEDIC_EXTERNAL_ID_PARAM": EXTERNAL_ID_PARAM,
    }
    workflow = deploy(root, prefix="EsmMedic", tunables=FAST_TUNABLES, env=env, simulate=False)
    sweeper_env = {
        **function_env(env),
        "ESM_MEDIC_SWEEP_HOLD_SECONDS": "0",  # act on the first sighting (the hold has its own tests)
        "ESM_MEDIC_SWEEP_PASS_SECONDS": "0",
    }
    return {"workflow": workflow, "creds": fn_creds, "sweeper_env": sweeper_env}


@pytest.fixture
def as_functions(central: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """This process runs the central functions (in-process Lambda): their role's credentials, a fresh adapter."""
    from esm_medic.handlers import _common

    for k, v in {**central["creds"], **central["sweeper_env"]}.items():
        monkeypatch.setenv(k, v)
    _common.reset_aws()
    _common.reset_idempotency()
    yield central
    _common.reset_aws()


def _sweep() -> dict[str, Any]:
    from esm_medic.handlers import sweeper

    result: dict[str, Any] = sweeper.handler({"id": "sched-1"}, _Ctx())
    assert result["ok"], result
    return result


def _execution_of(workflow: Any, uuid: str) -> str:
    arns = [e["executionArn"] for e in workflow.executions() if e["name"].startswith(uuid)]
    assert arns, f"no execution was started for {uuid}"
    return str(arns[-1])


def test_the_central_sweeper_and_workflow_fix_a_member_esm(world: dict[str, Any], as_functions: dict[str, Any]) -> None:
    from esm_medic_sandbox import scenarios

    admin, workflow = world["admin"], as_functions["workflow"]
    r = scenarios.build(admin, "missing-sg-self-rule", prefix="wf")
    sg = r.security_group_ids[0]
    assert 9098 not in _self_rule_ports(admin, sg)

    swept = _sweep()
    assert swept["accounts"][MEMBER]["kafka"] >= 2 and swept["accounts_failed"] == 0
    assert swept["calls"].get("sts:AssumeRole") == 1  # one AssumeRole for the member, reused after
    run = workflow.wait(_execution_of(workflow, r.uuid), timeout=120)
    assert run.outcome == "recovered", run.to_dict()
    assert 9098 in _self_rule_ports(admin, sg)  # the fix landed in the member account

    rows = [row for row in workflow.audit(r.uuid) if row["action"] not in ("workflow", "")]
    assert rows and {row["account"] for row in rows} == {MEMBER}
    assert "applied" in {row["status"] for row in rows}
    final = [o for o in workflow.outcomes(r.uuid) if o.get("final")][-1]
    assert final["outcome"] == "recovered" and final["account"] == MEMBER
    outcome_rows = [row for row in workflow.audit(r.uuid) if row["action"] == "workflow"]
    assert outcome_rows and {row["account"] for row in outcome_rows} == {MEMBER}


def test_a_member_in_notify_mode_gets_no_change(world: dict[str, Any], as_functions: dict[str, Any]) -> None:
    from esm_medic_sandbox import scenarios

    admin, workflow, root = world["admin"], as_functions["workflow"], world["root"]
    mode = f"/esm-medic/accounts/{MEMBER}/mode"
    root.call("ssm", "put_parameter", Name=mode, Value="notify", Type="String", Overwrite=True)
    try:
        r = scenarios.build(admin, "missing-sg-self-rule", prefix="nt")
        sg = r.security_group_ids[0]
        _sweep()
        run = workflow.wait(_execution_of(workflow, r.uuid), timeout=120)
        assert run.outcome == "notified", run.to_dict()
        assert "Remediate" not in run.state_names()
        assert 9098 not in _self_rule_ports(admin, sg)
        assert not [row for row in workflow.audit(r.uuid) if row["status"] == "applied"]
        decide = run.step("Decide")
        assert decide is not None and "member-account-parameter" in json.dumps(decide.output)
    finally:
        root.call("ssm", "delete_parameter", Name=mode)


def test_a_refused_member_is_counted_by_the_sweeper_and_ticketed_by_the_workflow(
    world: dict[str, Any], as_functions: dict[str, Any]
) -> None:
    from esm_medic_sandbox import scenarios

    from esm_medic.detect import events as ev

    admin, workflow, root = world["admin"], as_functions["workflow"], world["root"]
    r = scenarios.build(admin, "missing-sg-self-rule", prefix="rf")
    root.call("ssm", "put_parameter", Name=EXTERNAL_ID_PARAM, Value="not-the-agreed-id", Overwrite=True)
    try:
        swept = _sweep()  # the member is refused: logged, counted, the install's own account still swept
        assert swept["accounts_failed"] == 1 and "error" in swept["accounts"][MEMBER]
        assert any(MEMBER in e for e in swept["errors"])
        assert swept["accounts"][world["central"].account_id()]["complete"]

        item = admin.call("lambda", "get_event_source_mapping", UUID=r.uuid)
        now = "2026-01-01T00:00:00Z"
        detail = ev.build_status_change(
            event_id=f"evt-{r.uuid[:8]}",
            uuid=r.uuid,
            incident_id=f"inc-refused-{r.uuid[:8]}",
            function_arn=str(item["FunctionArn"]),
            event_source=str(item.get("EventSourceArn") or ""),
            source_kind="msk",
            old=None,
            new={k: str(item.get(k) or "") for k in ("State", "StateTransitionReason", "LastProcessingResult")},
            classification={"entry": None, "step": "unknown"},
            recovered=False,
            observed_at=now,
            since=now,
        )
        assert detail["account"] == MEMBER
        event = {"source": ev.SOURCE, "detail-type": ev.DETAIL_TYPE, "detail": detail}
        run = workflow.wait(workflow.fire(event).execution_arn, timeout=120)
        assert run.outcome == "failed-with-ticket", run.to_dict()
        final = [o for o in workflow.outcomes(r.uuid) if o.get("final")][-1]
        assert final["failed_step"] == "diagnose" and final["error"] == "AccountAccessError"
        assert MEMBER in final["reason"] and "esm-medic-diagnosis" in final["reason"]
        assert final["ticket_id"] and final["account"] == MEMBER
        ticket = Path(final["ticket_location"]).read_text(encoding="utf-8")
        assert MEMBER in ticket and "esm-medic-diagnosis" in ticket
    finally:
        root.call("ssm", "put_parameter", Name=EXTERNAL_ID_PARAM, Value=EXTERNAL_ID, Overwrite=True)
