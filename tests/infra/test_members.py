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


def test_no_members_no_cross_account_access(template: dict[str, Any]) -> None:
    _, by_role = _functions_and_policies(template)
    assert not [t for stmts in by_role.values() for t in _assume_targets(stmts)]


def test_the_grants_match_the_role_each_step_uses() -> None:
    from esm_medic.handlers._common import STEP_PURPOSE
    from infra.member_stack import MEMBER_FUNCTIONS

    for step, purpose in STEP_PURPOSE.items():
        assert MEMBER_FUNCTIONS[step] == {f"esm-medic-{purpose}"}, step
    assert set(MEMBER_FUNCTIONS) == {*STEP_PURPOSE, "sweeper"}
