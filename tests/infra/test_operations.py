"""Operating esm-medic: alarms, the dashboard, the member stack's roles and trust, and the settings validation."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from infra.observability import CUSTOM_METRICS, NAMESPACE
from infra.settings import SettingsError, load

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "functions" / "esm_medic"
EMIT = re.compile(r"""(?:count|add_metric|single_metric|metric)\(\s*(?:name\s*=\s*)?["']([A-Za-z][A-Za-z0-9]*)["']""")


def resources(template: dict[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == rtype}


def emitted_metric_names() -> set[str]:
    names: set[str] = set()
    for path in SOURCES.rglob("*.py"):
        names.update(EMIT.findall(path.read_text(encoding="utf-8")))
    return names


@pytest.fixture(scope="module")
def member(synth: dict[str, Any]) -> dict[str, Any]:
    return json.loads((synth["outdir"] / "EsmMedicMember.template.json").read_text())


def test_every_alarm_notifies_the_alarm_topic(template):
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    names = {a["Properties"]["AlarmName"] for a in alarms.values()}
    assert names == {
        f"esm-medic-{k}"
        for k in (
            "workflow-failed",
            "workflow-timed-out",
            "sweeper-errors",
            "sweep-failed",
            "member-unreachable",
            "sweep-missing",
            "sweep-late",
            "outbox-not-empty",
            "rolled-back",
            "budget-exhausted",
            "kill-switch-on",
        )
    }
    (topic,) = [k for k in resources(template, "AWS::SNS::Topic") if k.startswith("Alarms")]
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic}]


def test_alarms_and_dashboard_read_only_metrics_the_handlers_emit(template):
    emitted = emitted_metric_names()
    missing = sorted(set(CUSTOM_METRICS) - emitted)
    assert not missing, f"the dashboard/alarms read metrics no handler emits: {missing}"
    used: set[str] = set()
    for alarm in resources(template, "AWS::CloudWatch::Alarm").values():
        p = alarm["Properties"]
        if p.get("Namespace") == NAMESPACE:
            used.add(p["MetricName"])
            assert p["Dimensions"] == [{"Name": "service", "Value": "esm-medic"}]
    (dashboard,) = resources(template, "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    used.update(re.findall(r'MetricName=\\\\\\"([A-Za-z0-9]+)', body))
    used.update(n for n in CUSTOM_METRICS if f'\\"{NAMESPACE}\\",\\"{n}\\"' in body)
    assert used, "no custom metric found in the alarms or the dashboard"
    assert used <= set(CUSTOM_METRICS), used - set(CUSTOM_METRICS)
    assert not sorted(used - emitted)


def test_dashboard_covers_the_operators_questions(template):
    (dashboard,) = resources(template, "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for title in (
        "Executions by outcome",
        "Fixes applied / rolled back",
        "Tickets opened, approvals waiting / answered",
        "ESMs swept, transitions, by catalogue entry",
        "Sweeper duration and errors",
        "Undelivered notifications, budgets, kill switch",
    ):
        assert title in body


def test_logs_have_retention_and_tables_are_encrypted_with_recovery(template):
    for group in resources(template, "AWS::Logs::LogGroup").values():
        assert group["Properties"]["RetentionInDays"] > 0
        assert "KmsKeyId" in group["Properties"]
    for table in resources(template, "AWS::DynamoDB::Table").values():
        p = table["Properties"]
        assert p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
        assert p.get("SSESpecification", {}).get("SSEEnabled", True) is not False


def _trust(role: dict[str, Any]) -> dict[str, Any]:
    (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    return statement


def test_member_roles_trust_only_the_central_install_with_the_external_id(member):
    roles = {k: v for k, v in resources(member, "AWS::IAM::Role").items() if not k.startswith("ForwardRole")}
    assert {r["Properties"]["RoleName"] for r in roles.values()} == {"esm-medic-diagnosis", "esm-medic-remediation"}
    for role in roles.values():
        st = _trust(role)
        assert st["Action"] == "sts:AssumeRole" and st["Effect"] == "Allow"
        cond = st["Condition"]
        assert cond["StringEquals"]["sts:ExternalId"] == {"Ref": "ExternalId"}
        arn = json.dumps(cond["ArnLike"]["aws:PrincipalArn"])
        assert "CentralAccount" in arn and "role/EsmMedic*" in arn
        assert cond["StringLikeIfExists"]["aws:PrincipalOrgID"] == {"Ref": "OrganizationId"}
    params = member["Parameters"]
    assert params["ExternalId"]["NoEcho"] is True and params["ExternalId"]["MinLength"] == 8
    assert params["CentralAccount"]["AllowedPattern"] == r"\d{12}"


def test_member_remediation_role_holds_exactly_the_declared_actions(member):
    from infra.stack import remediation_actions

    policies = resources(member, "AWS::IAM::Policy")
    by_role: dict[str, set[str]] = {}
    for pol in policies.values():
        (role_ref,) = pol["Properties"]["Roles"]
        for st in pol["Properties"]["PolicyDocument"]["Statement"]:
            acts = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            by_role.setdefault(role_ref["Ref"], set()).update(acts)
    remediation = next(v for k, v in by_role.items() if k.startswith("RemediationRole"))
    assert set(remediation_actions()) <= remediation
    assert not [a for a in remediation if a.endswith(":*") or a == "*"]
    diagnosis = next(v for k, v in by_role.items() if k.startswith("DiagnosisRole"))
    assert not [a for a in diagnosis if re.search(r":(Create|Delete|Authorize|Revoke|Put|Update|Modify)", a)]


def test_settings_report_every_problem_at_once():
    with pytest.raises(SettingsError) as err:
        load(
            {
                "DefaultMode": "yolo",
                "SweepMinutes": "0",
                "Budgets": {"sg": -1, "galaxy": 3},
                "Tracing": "maybe",
                "AlarmEmail": "not-an-address",
                "TicketProviders": "jira,carrier-pigeon",
                "MemberAccounts": "12345",
            }
        )
    text = str(err.value)
    for word in ("DefaultMode", "SweepMinutes", "Budgets.sg", "galaxy", "Tracing", "AlarmEmail", "carrier-pigeon"):
        assert word in text
    assert "MemberAccounts" in text


def test_member_settings_require_central_account_and_external_id():
    with pytest.raises(SettingsError, match="CentralAccount is required"):
        load({}, member=True)
    s = load(
        {"CentralAccount": "111122223333", "ExternalId": "esm-medic-xyz", "OrganizationId": "o-abcdefghij"}, member=True
    )
    assert (s.central_account, s.organization_id) == ("111122223333", "o-abcdefghij")


def test_settings_from_a_config_file(tmp_path):
    f = tmp_path / "esm-medic.json"
    f.write_text(json.dumps({"DefaultMode": "notify", "SweepMinutes": 5, "Budgets": {"sg": 1}, "Tracing": False}))
    s = load({"ConfigFile": str(f), "SweepMinutes": "2"})  # context beats the file
    assert (s.default_mode, s.sweep_minutes, s.budgets, s.tracing) == ("notify", 2, {"sg": 1}, False)


def test_tracing_off_by_context(tmp_path):
    from infra.app import build_app

    app = build_app(str(tmp_path), install_deps=False, nag=False, context={"Tracing": "false"})
    app.synth()
    template = json.loads((tmp_path / "EsmMedic.template.json").read_text())
    for fn in resources(template, "AWS::Lambda::Function").values():
        assert "TracingConfig" not in fn["Properties"] or fn["Properties"]["TracingConfig"]["Mode"] != "Active"


def test_organizational_units_are_validated_and_need_the_organization(tmp_path):
    with pytest.raises(SettingsError) as err:
        load({"OrganizationalUnits": "ou-ab12-abcdefgh,r-root"})
    text = str(err.value)
    assert "'r-root' is not an organizational unit id" in text and "needs OrganizationId" in text
    f = tmp_path / "esm-medic.json"
    f.write_text(json.dumps({"OrganizationId": "o-abcdefghij", "OrganizationalUnits": ["ou-ab12-abcdefgh"]}))
    s = load({"ConfigFile": str(f)})
    assert (s.organization_id, s.organizational_units) == ("o-abcdefghij", ("ou-ab12-abcdefgh",))
