"""The CDK app: what it deploys, that it deploys what the code declares, and that cdk-nag and cfn-lint pass."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from esm_medic.tables import TABLES
from infra.config import FUNCTIONS
from infra.stack import PATTERNS, RULES, STATEMACHINE, asl_placeholders, handler_modules

ROOT = Path(__file__).resolve().parents[2]


def resources(template: dict[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == rtype}


def test_every_handler_is_a_function_from_one_asset(template):
    fns = resources(template, "AWS::Lambda::Function")
    handlers = {f["Properties"]["Handler"] for f in fns.values()}
    assert handlers == {f"esm_medic.handlers.{m}.handler" for m in handler_modules()}
    assert len({json.dumps(f["Properties"]["Code"], sort_keys=True) for f in fns.values()}) == 1
    for f in fns.values():
        p = f["Properties"]
        assert p["Runtime"].startswith("python3.")
        assert p["TracingConfig"] == {"Mode": "Active"}
        assert "LoggingConfig" in p  # explicit log group, no log-retention custom resource
        env = p["Environment"]["Variables"]
        for spec in TABLES:
            assert spec.env in env


def test_every_handler_module_has_a_function_spec():
    assert set(handler_modules()) <= set(FUNCTIONS), "add a FunctionSpec in infra/config.py for each new handler"
    assert handler_modules(), "no handlers found"


def test_no_custom_resources(template):
    types = {r["Type"] for r in template["Resources"].values()}
    assert not [t for t in types if t.startswith("Custom::") or t == "AWS::CloudFormation::CustomResource"]


def test_tables_follow_the_specs(template):
    tables = resources(template, "AWS::DynamoDB::Table")
    assert len(tables) == len(TABLES)
    for spec in TABLES:
        (p,) = [t["Properties"] for k, t in tables.items() if k.startswith(f"{spec.key.capitalize()}Table")]
        keys = {k["KeyType"]: k["AttributeName"] for k in p["KeySchema"]}
        assert (keys["HASH"], keys.get("RANGE")) == (spec.pk, spec.sk)
        assert p["BillingMode"] == "PAY_PER_REQUEST"
        assert p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
        if spec.ttl:
            assert p["TimeToLiveSpecification"] == {"AttributeName": spec.ttl, "Enabled": True}
        assert {g["IndexName"] for g in p.get("GlobalSecondaryIndexes", [])} == {i for i, _ in spec.gsis}


def test_state_machine_is_the_asl_file_with_every_substitution(template):
    (sm,) = resources(template, "AWS::StepFunctions::StateMachine").values()
    p = sm["Properties"]
    assert p.get("StateMachineType", "STANDARD") == "STANDARD"
    text = STATEMACHINE.read_text()
    placeholders = asl_placeholders(text)
    assert placeholders, "the ASL should take its ARNs from substitutions"
    assert set(p["DefinitionSubstitutions"]) == placeholders
    definition = p["DefinitionString"]
    if isinstance(definition, dict):  # Fn::Join when tokens are present
        definition = "".join(x if isinstance(x, str) else "" for x in definition["Fn::Join"][1])
    assert json.loads(definition) == json.loads(text)


def test_rules_deploy_the_pattern_files_verbatim(template):
    rules = [
        r["Properties"] for r in resources(template, "AWS::Events::Rule").values() if "EventPattern" in r["Properties"]
    ]
    deployed = [r["EventPattern"] for r in rules]
    for rule_id, (filename, target, state) in RULES.items():
        path = PATTERNS / filename
        assert path.exists(), f"pattern file {filename} for rule {rule_id} is missing"
        pattern = json.loads(path.read_text())
        assert pattern in deployed, filename
        rule = next(r for r in rules if r["EventPattern"] == pattern)
        assert rule["State"] == state
        ident = "".join(p.capitalize() for p in target.split("_"))
        (tgt,) = rule["Targets"]
        assert tgt["Arn"]["Fn::GetAtt"][0].startswith(f"{ident}Function"), (filename, tgt)
    schedules = [
        r["Properties"]
        for r in resources(template, "AWS::Events::Rule").values()
        if "ScheduleExpression" in r["Properties"]
    ]
    by_target = {
        s["Targets"][0]["Arn"]["Fn::GetAtt"][0].split("Function")[0]: s["ScheduleExpression"] for s in schedules
    }
    assert by_target == {"Sweeper": "rate(1 minute)", "Outbox": "rate(5 minutes)"}


def _policy_actions(template: dict[str, Any], role_prefix: str) -> set[str]:
    actions: set[str] = set()
    for pol in resources(template, "AWS::IAM::Policy").values():
        roles = [r["Ref"] for r in pol["Properties"]["Roles"]]
        if not any(r.startswith(role_prefix) for r in roles):
            continue
        for stmt in pol["Properties"]["PolicyDocument"]["Statement"]:
            acts = stmt["Action"]
            actions.update([acts] if isinstance(acts, str) else acts)
    return actions


def test_remediation_role_is_built_from_the_actions_declarations(template):
    from esm_medic.remediate.registry import all_permissions

    declared = set(all_permissions(include_engine=False))
    assert declared
    assert declared <= _policy_actions(template, "RemediateRole")
    # the read-only functions get none of them
    for fn in ("DiagnoseRole", "ClassifyRole", "SweeperRole"):
        writes = {
            a for a in _policy_actions(template, fn) if a in declared and not re.match(r".*:(Describe|Get|List)", a)
        }
        assert not writes, (fn, writes)


def test_audit_table_is_append_only_for_every_function(template):
    audit = next(
        k
        for k, v in resources(template, "AWS::DynamoDB::Table").items()
        if {x["AttributeName"] for x in v["Properties"]["KeySchema"]} == {"pk", "sk"}
        and v["Properties"].get("GlobalSecondaryIndexes")
    )
    for pol in resources(template, "AWS::IAM::Policy").values():
        for stmt in pol["Properties"]["PolicyDocument"]["Statement"]:
            res = json.dumps(stmt.get("Resource"))
            if audit in res:
                acts = stmt["Action"] if isinstance(stmt["Action"], list) else [stmt["Action"]]
                assert not {"dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"} & set(acts)


def test_approval_endpoint_is_a_function_url(template):
    """Each URL function gets two: NONE (Slack and signed per-approver links) and AWS_IAM on the `iam` alias."""
    urls = resources(template, "AWS::Lambda::Url")
    n = len([n for n, s in FUNCTIONS.items() if s.url and n in handler_modules()])
    assert sorted(u["Properties"]["AuthType"] for u in urls.values()) == ["AWS_IAM", "NONE"] * n or n != 1
    iam_urls = [u for u in urls.values() if u["Properties"]["AuthType"] == "AWS_IAM"]
    assert len(iam_urls) == n and all(u["Properties"].get("Qualifier") == "iam" for u in iam_urls)


def test_approval_links_have_their_own_topic(template):
    fns = resources(template, "AWS::Lambda::Function")
    (request,) = [f for k, f in fns.items() if k.startswith("ApprovalRequestFunction")]
    ref = request["Properties"]["Environment"]["Variables"]["ESM_MEDIC_APPROVAL_LINK_TOPIC_ARN"]
    assert ref["Ref"].startswith("ApprovalLinks")


def test_code_asset_has_no_sandbox_and_carries_the_runbooks(synth):
    assets = json.loads((synth["outdir"] / "EsmMedic.assets.json").read_text())
    dirs = [
        synth["outdir"] / f["source"]["path"] for f in assets["files"].values() if f["source"].get("packaging") == "zip"
    ]
    code = next(d for d in dirs if (d / "esm_medic").is_dir())
    assert not (code / "esm_medic" / "sandbox").exists()
    assert (code / "esm_medic" / "_runbooks" / "connection-broker-unreachable.md").exists()
    assert (code / "esm_medic" / "catalogue" / "catalogue.json").exists()
    assert not list(code.rglob("__pycache__"))


def test_cfn_lint_passes(synth):
    venv = ROOT / ".venv" / "bin" / "cfn-lint"
    exe = str(venv) if venv.exists() else shutil.which("cfn-lint")
    assert exe, "cfn-lint is not installed"
    proc = subprocess.run(
        [exe, "--ignore-checks", "W3005", "--", str(synth["template_path"])],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_nag_report_has_no_unacknowledged_findings(synth):
    report = synth["outdir"] / "validation-report.json"
    if report.exists():  # written only when something was reported
        data = json.loads(report.read_text())
        violations = [v for p in data.get("pluginReports", []) for v in p.get("violations", [])]
        assert violations == []


def test_nag_catches_an_unvetted_wildcard(tmp_path):
    """The acknowledgement list is not a blanket: a new wildcard makes synth fail."""
    import aws_cdk as cdk
    import pytest
    from aws_cdk import aws_iam as iam
    from cdk_nag import AwsSolutionsChecks

    from infra.nag import acknowledge

    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "S")
    role = iam.Role(stack, "R", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=["arn:aws:s3:::bucket/*"]))
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    unvetted = acknowledge(stack)
    assert unvetted and "bucket/*" in unvetted[0]
    with pytest.raises(Exception, match="Validation"):
        app.synth()


def test_synth_with_a_concrete_environment_passes_nag(tmp_path, monkeypatch):
    """Under the CDK CLI the stack has a real account and region, so ARNs hold literals instead of tokens; the
    vetted wildcards must still match (and nothing else may)."""
    from infra.app import build_app

    monkeypatch.setenv("CDK_DEFAULT_ACCOUNT", "123456789012")
    monkeypatch.setenv("CDK_DEFAULT_REGION", "eu-west-1")
    app = build_app(str(tmp_path), install_deps=False, nag=True)
    app.synth()  # raises on any unacknowledged finding
    text = (tmp_path / "EsmMedic.template.json").read_text()
    assert "eu-west-1" in text
