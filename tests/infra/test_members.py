"""The central stack when it looks after member accounts: the acting functions may assume the member roles (the
listed accounts, or any account of the organization), read the external id SecureString, and know the members.
Synthesized with cdk-nag: an unvetted wildcard fails the synth."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
MEMBERS = ("222233334444", "333344445555")


def _cfn_lint(path: Path) -> None:
    venv = ROOT / ".venv" / "bin" / "cfn-lint"
    exe = str(venv) if venv.exists() else shutil.which("cfn-lint")
    assert exe, "cfn-lint is not installed"
    proc = subprocess.run(
        [exe, "--ignore-checks", "W3005", "--", str(path)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _synth(tmp: Path, context: dict[str, Any]) -> dict[str, Any]:
    os.environ["PATH"] = f"{ROOT / 'node_modules' / '.bin'}{os.pathsep}{os.environ['PATH']}"
    from infra.app import build_app

    build_app(str(tmp), install_deps=False, nag=True, context=context).synth()
    _cfn_lint(tmp / "EsmMedic.template.json")
    template: dict[str, Any] = json.loads((tmp / "EsmMedic.template.json").read_text())
    return template


def _functions_and_policies(template: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    res = template["Resources"]
    fns = {k: v for k, v in res.items() if v["Type"] == "AWS::Lambda::Function"}
    by_role: dict[str, list[dict[str, Any]]] = {}
    for v in res.values():
        if v["Type"] == "AWS::IAM::Policy":
            for role in v["Properties"]["Roles"]:
                by_role.setdefault(role["Ref"], []).extend(v["Properties"]["PolicyDocument"]["Statement"])
    return fns, by_role


def _actions(st: dict[str, Any]) -> list[str]:
    return st["Action"] if isinstance(st["Action"], list) else [st["Action"]]


def _assume_targets(statements: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for st in statements:
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        if "sts:AssumeRole" in actions:
            res = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
            out += [json.dumps(r) for r in res]
    return out


@pytest.fixture(scope="module")
def members_template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _synth(tmp_path_factory.mktemp("members"), {"MemberAccounts": ",".join(MEMBERS)})


def test_acting_functions_assume_only_the_member_roles_they_need(members_template: dict[str, Any]) -> None:
    from infra.member_stack import EXTERNAL_ID_PARAMETER, MEMBER_FUNCTIONS

    fns, by_role = _functions_and_policies(members_template)
    seen = set()
    for fn in fns.values():
        handler = fn["Properties"]["Handler"].split(".")[-2]
        env = fn["Properties"]["Environment"]["Variables"]
        targets = _assume_targets(by_role.get(fn["Properties"]["Role"]["Fn::GetAtt"][0], []))
        if handler not in MEMBER_FUNCTIONS:
            assert not targets and "ESM_MEDIC_MEMBER_ACCOUNTS" not in env, handler
            continue
        seen.add(handler)
        assert env["ESM_MEDIC_MEMBER_ACCOUNTS"] == ",".join(MEMBERS)
        assert env["ESM_MEDIC_EXTERNAL_ID_PARAM"] == EXTERNAL_ID_PARAMETER
        wanted = {f"{a}:role/{r}" for a in MEMBERS for r in MEMBER_FUNCTIONS[handler]}
        assert {m for t in targets for m in re.findall(r"\d{12}:role/esm-medic-\w+", t)} == wanted, handler
        stmts = by_role[fn["Properties"]["Role"]["Fn::GetAtt"][0]]
        kms = [s for s in stmts if "kms:Decrypt" in _actions(s)]
        assert kms and all("kms:ViaService" in s["Condition"]["StringEquals"] for s in kms)
        assert any("ssm:GetParameter" in _actions(s) and "external-id" in json.dumps(s["Resource"]) for s in stmts)
    assert seen == set(MEMBER_FUNCTIONS)
    remediation = [h for h, roles in MEMBER_FUNCTIONS.items() if "esm-medic-remediation" in roles]
    assert sorted(remediation) == ["remediate", "rollback", "verify"]


def test_an_organization_allows_any_member_account_of_it(tmp_path: Path) -> None:
    template = _synth(tmp_path, {"OrganizationId": "o-abcdefghij"})
    fns, by_role = _functions_and_policies(template)
    sweeper = next(f for f in fns.values() if f["Properties"]["Handler"].endswith("sweeper.handler"))
    stmts = by_role[sweeper["Properties"]["Role"]["Fn::GetAtt"][0]]
    (assume,) = [s for s in stmts if "sts:AssumeRole" in _actions(s)]
    assert assume["Condition"] == {"StringEquals": {"aws:ResourceOrgID": "o-abcdefghij"}}
    assert json.dumps(assume["Resource"]).count(":iam::*:role/esm-medic-diagnosis") == 1
    assert "ESM_MEDIC_MEMBER_ACCOUNTS" not in sweeper["Properties"]["Environment"]["Variables"]


def test_an_organization_sweeper_may_list_the_organization_and_its_units(tmp_path: Path) -> None:
    from infra.member_stack import ORGANIZATION_LIST_ACTIONS

    ous = "ou-ab12-abcdefgh,ou-ab12-ijklmnop"
    template = _synth(
        tmp_path, {"OrganizationId": "o-abcdefghij", "OrganizationalUnits": ous, "MemberAccounts": MEMBERS[0]}
    )
    fns, by_role = _functions_and_policies(template)
    listing: dict[str, list[str]] = {}
    for fn in fns.values():
        stmts = by_role[fn["Properties"]["Role"]["Fn::GetAtt"][0]]
        listing[fn["Properties"]["Handler"]] = [a for s in stmts for a in _actions(s) if a.startswith("organizations:")]
    sweeper = next(f for f in fns.values() if f["Properties"]["Handler"].endswith("sweeper.handler"))
    assert sorted(listing.pop(sweeper["Properties"]["Handler"])) == sorted(ORGANIZATION_LIST_ACTIONS)
    assert not any(listing.values())  # only the sweeper lists the organization
    env = sweeper["Properties"]["Environment"]["Variables"]
    assert env["ESM_MEDIC_MEMBER_OUS"] == ous and env["ESM_MEDIC_ORGANIZATION_ID"] == "o-abcdefghij"
    assert env["ESM_MEDIC_MEMBER_ACCOUNTS"] == MEMBERS[0]
    # the listed member by ARN and any account of the organization by the org condition
    stmts = by_role[sweeper["Properties"]["Role"]["Fn::GetAtt"][0]]
    assumes = [s for s in stmts if "sts:AssumeRole" in _actions(s)]
    assert any(s.get("Condition") == {"StringEquals": {"aws:ResourceOrgID": "o-abcdefghij"}} for s in assumes)
    assert any(MEMBERS[0] in json.dumps(s["Resource"]) for s in assumes)
    # discovered accounts forward their events: the bus admits the organization besides the listed member
    sids = sorted(p["StatementId"] for p in _bus_policies(template))
    assert sids == ["esm-medic-member-events", "esm-medic-organization-events"]


def test_listed_members_only_no_organization_listing(members_template: dict[str, Any]) -> None:
    _, by_role = _functions_and_policies(members_template)
    assert not [a for stmts in by_role.values() for s in stmts for a in _actions(s) if a.startswith("organizations:")]


def test_no_members_no_cross_account_access(template: dict[str, Any]) -> None:
    _, by_role = _functions_and_policies(template)
    assert not [t for stmts in by_role.values() for t in _assume_targets(stmts)]


def test_the_grants_match_the_role_each_step_uses() -> None:
    from esm_medic.handlers._common import STEP_PURPOSE
    from infra.member_stack import MEMBER_FUNCTIONS

    for step, purpose in STEP_PURPOSE.items():
        assert MEMBER_FUNCTIONS[step] == {f"esm-medic-{purpose}"}, step
    detectors = {"watch", "cloudtrail_error", "esm_logs"}  # read a member's ESM where its event came from
    assert set(MEMBER_FUNCTIONS) == {*STEP_PURPOSE, "sweeper", *detectors}
    assert all(MEMBER_FUNCTIONS[d] == {"esm-medic-diagnosis"} for d in detectors)


# ---------------------------------------------------------------------------------------------- member events
def _bus_policies(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [v["Properties"] for v in template["Resources"].values() if v["Type"] == "AWS::Events::EventBusPolicy"]


def test_the_central_bus_admits_exactly_the_member_accounts(members_template: dict[str, Any]) -> None:
    (policy,) = _bus_policies(members_template)
    assert policy["EventBusName"] == "default"
    st = policy["Statement"]
    assert st["Effect"] == "Allow" and st["Action"] == "events:PutEvents" and "Condition" not in st
    principals = json.dumps(st["Principal"]["AWS"])
    assert sorted(re.findall(r":iam::(\d{12}):root", principals)) == sorted(MEMBERS)
    assert ":event-bus/default" in json.dumps(st["Resource"])


def test_an_organization_bus_policy_requires_the_organization(tmp_path: Path) -> None:
    template = _synth(tmp_path, {"OrganizationId": "o-abcdefghij"})
    (policy,) = _bus_policies(template)
    st = policy["Statement"]
    assert st["Principal"] == "*" and st["Action"] == "events:PutEvents"
    assert st["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": "o-abcdefghij"}}
    fns, _ = _functions_and_policies(template)
    watch = next(f for f in fns.values() if f["Properties"]["Handler"].endswith("watch.handler"))
    assert watch["Properties"]["Environment"]["Variables"]["ESM_MEDIC_ORGANIZATION_ID"] == "o-abcdefghij"


def test_no_members_no_bus_policy(template: dict[str, Any]) -> None:
    assert not _bus_policies(template)


def _member_template() -> dict[str, Any]:
    import aws_cdk as cdk

    from infra.member_stack import EsmMedicMemberStack
    from infra.settings import load

    app = cdk.App()
    settings = load({"CentralAccount": "111122223333", "ExternalId": "an-external-id"}, member=True)
    stack = EsmMedicMemberStack(app, "EsmMedicMember", settings=settings)
    from aws_cdk.assertions import Template

    return dict(Template.from_stack(stack).to_json())


def test_the_member_forwards_every_aws_sourced_detection_rule_to_the_central_bus() -> None:
    from infra.member_stack import forwarded_pattern
    from infra.stack import PATTERNS, RULES

    template = _member_template()
    res = template["Resources"]
    rules = {k: v["Properties"] for k, v in res.items() if v["Type"] == "AWS::Events::Rule"}
    forward_role = next(k for k, v in res.items() if v["Type"] == "AWS::IAM::Role" and k.startswith("ForwardRole"))
    wanted = {r: spec for r, spec in RULES.items() if forwarded_pattern(PATTERNS / spec[0]) is not None}
    assert set(wanted) == {"ApiChange", "RoleAccessDenied", "MetricAlarm"}  # not esm-medic's own StatusError
    assert len(rules) == len(wanted)
    for rule_id, (filename, _target, state) in wanted.items():
        (props,) = [p for k, p in rules.items() if k.startswith(f"{rule_id}Forward")]
        assert props["EventPattern"] == json.loads((PATTERNS / filename).read_text()), rule_id
        assert props["State"] == state, rule_id
        (target,) = props["Targets"]
        arn = json.dumps(target["Arn"])
        assert '{"Ref": "CentralAccount"}' in arn and '{"Ref": "CentralEventBus"}' in arn and ":event-bus/" in arn
        assert target["RoleArn"] == {"Fn::GetAtt": [forward_role, "Arn"]}
    trust = res[forward_role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "events.amazonaws.com"}]
    (policy,) = [
        v["Properties"]
        for v in res.values()
        if v["Type"] == "AWS::IAM::Policy" and v["Properties"]["Roles"] == [{"Ref": forward_role}]
    ]
    (st,) = policy["PolicyDocument"]["Statement"]
    assert st["Action"] == "events:PutEvents" and '{"Ref": "CentralAccount"}' in json.dumps(st["Resource"])
    assert template["Parameters"]["CentralEventBus"]["Default"] == "default"


def test_forwarded_patterns_are_only_aws_sourced(tmp_path: Path) -> None:
    from infra.member_stack import forwarded_pattern

    own = tmp_path / "own.json"
    own.write_text(json.dumps({"source": ["esm-medic"], "detail-type": ["ESM Status Change"]}))
    mixed = tmp_path / "mixed.json"
    mixed.write_text(json.dumps({"source": ["aws.lambda", "esm-medic"]}))
    aws = tmp_path / "aws.json"
    aws.write_text(json.dumps({"source": ["aws.cloudwatch"]}))
    assert forwarded_pattern(own) is None and forwarded_pattern(mixed) is None
    assert forwarded_pattern(tmp_path / "missing.json") is None
    assert forwarded_pattern(aws) == {"source": ["aws.cloudwatch"]}


def test_the_member_template_passes_cdk_nag_and_cfn_lint(tmp_path: Path) -> None:
    template = _synth(tmp_path, {"CentralAccount": "111122223333", "ExternalId": "an-external-id"})
    assert template  # the central template (cfn-lint ran on it in _synth)
    _cfn_lint(tmp_path / "EsmMedicMember.template.json")
    report = json.loads((tmp_path / "validation-report.json").read_text())
    assert all(p["conclusion"] == "success" and not p["violations"] for p in report["pluginReports"])


# ---------------------------------------------------------------------------------------------- member system logs
def _of_type(template: dict[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == rtype}


def test_the_central_destination_takes_the_members_system_logs(members_template: dict[str, Any]) -> None:
    from infra.member_logs import DESTINATION_NAME

    (dest,) = _of_type(members_template, "AWS::Logs::Destination").values()
    props = dest["Properties"]
    assert props["DestinationName"] == DESTINATION_NAME
    (stream_id,) = _of_type(members_template, "AWS::Kinesis::Stream")
    assert props["TargetArn"] == {"Fn::GetAtt": [stream_id, "Arn"]}
    policy = json.dumps(props["DestinationPolicy"])
    assert sorted(re.findall(r":iam::(\d{12}):root", policy)) == sorted(MEMBERS)
    assert "logs:PutSubscriptionFilter" in policy and "PrincipalOrgID" not in policy
    # CloudWatch Logs assumes the destination role only for the members' (and the install's) log groups
    role_id = props["RoleArn"]["Fn::GetAtt"][0]
    (trust,) = members_template["Resources"][role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "logs.amazonaws.com"}
    sources = json.dumps(trust["Condition"]["StringLike"]["aws:SourceArn"])
    assert all(f":{m}:*" in sources for m in MEMBERS)
    _, by_role = _functions_and_policies(members_template)
    writes = {a for st in by_role[role_id] for a in _actions(st)}
    assert writes and all(a.startswith("kinesis:Put") or a == "kinesis:ListShards" for a in writes)
    # the stream feeds esm_logs, which reports the failed record so Lambda retries from it
    (esm,) = _of_type(members_template, "AWS::Lambda::EventSourceMapping").values()
    assert esm["Properties"]["EventSourceArn"] == {"Fn::GetAtt": [stream_id, "Arn"]}
    assert esm["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    fns, _ = _functions_and_policies(members_template)
    target = esm["Properties"]["FunctionName"]["Ref"]
    assert fns[target]["Properties"]["Handler"].endswith("esm_logs.handler")


def test_an_organization_destination_requires_the_organization(tmp_path: Path) -> None:
    template = _synth(tmp_path, {"OrganizationId": "o-abcdefghij"})
    (dest,) = _of_type(template, "AWS::Logs::Destination").values()
    policy = json.dumps(dest["Properties"]["DestinationPolicy"])
    assert "aws:PrincipalOrgID" in policy and "o-abcdefghij" in policy


def test_members_and_an_organization_admit_both_to_the_destination(tmp_path: Path) -> None:
    """Accounts the sweeper discovers in the organization send their system logs too, not only the listed ones."""
    template = _synth(tmp_path, {"OrganizationId": "o-abcdefghij", "MemberAccounts": list(MEMBERS)})
    (dest,) = _of_type(template, "AWS::Logs::Destination").values()
    policy = json.dumps(dest["Properties"]["DestinationPolicy"])
    assert sorted(re.findall(r":iam::(\d{12}):root", policy)) == sorted(MEMBERS)
    assert "aws:PrincipalOrgID" in policy and "o-abcdefghij" in policy
    role_id = dest["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    (trust,) = template["Resources"][role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert ":*:*" in json.dumps(trust["Condition"]["StringLike"]["aws:SourceArn"])


def test_no_members_no_destination(template: dict[str, Any]) -> None:
    assert not _of_type(template, "AWS::Logs::Destination") and not _of_type(template, "AWS::Kinesis::Stream")


def test_the_member_subscribes_its_system_logs_to_the_central_destination() -> None:
    from esm_medic.detect.events.esm_log import FILTER_PATTERN
    from infra.member_logs import DESTINATION_NAME

    template = _member_template()
    (policy,) = _of_type(template, "AWS::Logs::AccountPolicy").values()
    assert policy["Condition"] == "EsmSystemLogsOn"
    assert template["Parameters"]["EsmSystemLogs"]["AllowedValues"] == ["account", "off"]
    props = policy["Properties"]
    assert props["PolicyType"] == "SUBSCRIPTION_FILTER_POLICY" and props["Scope"] == "ALL"
    doc = json.dumps(props["PolicyDocument"])
    assert '{"Ref": "CentralAccount"}' in doc and f":destination:{DESTINATION_NAME}" in doc
    assert all(kind in doc for kind in ("ESM_PROCESSING_EVENT", "POLLER_STATUS_EVENT")) and FILTER_PATTERN


def test_with_members_only_this_account_may_start_the_workflow(members_template: dict[str, Any]) -> None:
    """The bus policy lets members put events: a member's forged esm-medic event must not match the error rule."""
    from infra.stack import PATTERNS, RULES

    rules = [v["Properties"] for v in _of_type(members_template, "AWS::Events::Rule").values()]
    for _rule_id, (filename, _target, _state) in RULES.items():
        pattern = json.loads((PATTERNS / filename).read_text())
        (deployed,) = [
            r["EventPattern"]
            for r in rules
            if r.get("EventPattern", {}).get("source") == pattern["source"]
            and r["EventPattern"].get("detail-type") == pattern.get("detail-type")
            and r["EventPattern"].get("detail") == pattern.get("detail")
        ]
        if pattern["source"] == ["esm-medic"]:
            assert deployed == {**pattern, "account": [{"Ref": "AWS::AccountId"}]}, filename
        else:
            assert deployed == pattern, filename  # AWS's own events: a member's, forwarded by its rule
