"""``esm-medic fix`` / ``rollback`` / ``history`` against the sandbox."""

from __future__ import annotations

import json
from typing import Any

import pytest
from remediate_helpers import full_params

from esm_medic.cli.main import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def sg_case(env: Any) -> tuple[Any, str]:
    r = env.build("missing-sg-self-rule")
    return r, json.dumps(full_params(r, "add-sg-self-rule"))


def test_fix_prints_the_plan_and_changes_nothing(env: Any, sg_case: Any, capsys: Any) -> None:
    r, params = sg_case
    before = env.snapshot(r)
    code, out, _ = _run(capsys, "fix", r.uuid, "--action", "add-sg-self-rule", "--params", params)
    assert code == 0
    assert "ec2:AuthorizeSecurityGroupIngress(" in out and "dry run: allowed" in out
    assert "+ ingress tcp/9098" in out and "Decision: APPROVE" in out
    assert env.snapshot(r) == before


def test_fix_json(env: Any, sg_case: Any, capsys: Any) -> None:
    r, params = sg_case
    code, out, _ = _run(capsys, "fix", r.uuid, "--action", "add-sg-self-rule", "--params", params, "--json")
    data = json.loads(out)
    assert code == 0 and data["status"] == "planned" and data["plan"]["calls"][0]["dry_run"] == "allowed"


def test_apply_without_a_terminal_needs_yes(env: Any, sg_case: Any, capsys: Any) -> None:
    r, params = sg_case
    before = env.snapshot(r)
    code, _, err = _run(capsys, "fix", r.uuid, "--action", "add-sg-self-rule", "--params", params, "--apply")
    assert code == 2 and "--yes" in err
    assert env.snapshot(r) == before


def test_apply_history_rollback(env: Any, sg_case: Any, capsys: Any) -> None:
    r, params = sg_case
    before = env.snapshot(r)
    code, out, _ = _run(
        capsys, "fix", r.uuid, "--action", "add-sg-self-rule", "--params", params, "--apply", "--yes", "--json"
    )
    assert code == 0
    result = json.loads(out)["result"]
    assert result["status"] == "applied" and result["decision"]["approved_by"].startswith("cli:")
    action_id = result["action_id"]

    code, out, _ = _run(capsys, "history", r.uuid)
    assert code == 0 and action_id in out and "started -> applied -> restarted" in out
    code, out, _ = _run(capsys, "history", "--json")
    assert code == 0 and {row["action_id"] for row in json.loads(out)} == {action_id}

    code, _, err = _run(capsys, "rollback", action_id)
    assert code == 2 and "--yes" in err
    code, out, _ = _run(capsys, "rollback", action_id, "--yes")
    assert code == 0 and "rolled-back" in out
    assert env.snapshot(r) == before
    code, out, _ = _run(capsys, "rollback", action_id, "--yes", "--json")
    assert code == 0 and json.loads(out)["status"] == "noop"


def test_fix_from_the_diagnosis(env: Any, capsys: Any) -> None:
    pytest.importorskip("esm_medic.diagnose")
    r = env.build("vpc-dns-off")
    code, out, _ = _run(capsys, "fix", r.uuid)
    assert code == 0, out
    assert "enable-vpc-dns" in out and "ec2:ModifyVpcAttribute(" in out


def test_usage_errors(env: Any, sg_case: Any, capsys: Any) -> None:
    r, params = sg_case
    assert _run(capsys, "fix", r.uuid, "--params", params)[0] == 2
    assert _run(capsys, "fix", r.uuid, "--action", "add-sg-self-rule", "--params", "{nope")[0] == 2
    code, _, err = _run(capsys, "fix", r.uuid, "--action", "add-sg-self-rule", "--params", '{"group_id": "x"}')
    assert code == 2 and "invalid parameter" in err
    assert _run(capsys, "history", "--limit", "0")[0] == 2
    assert _run(capsys, "rollback", "act-nothing", "--yes")[0] == 1


def test_refused_plan_is_not_applied(env: Any, capsys: Any) -> None:
    r = env.build("missing-secretsmanager-endpoint")
    params = json.dumps(dict(full_params(r, "create-vpc-endpoints"), services=["sts"]))
    code, out, _ = _run(
        capsys, "fix", r.uuid, "--action", "create-vpc-endpoints", "--params", params, "--apply", "--yes"
    )
    assert code == 1 and "Refused" in out and "Not applied" in out


def test_fix_params_cannot_leave_the_esms_network(env: Any, capsys: Any) -> None:
    """``fix --action … --params`` naming an unrelated group of the same VPC: refused, and --apply changes nothing."""
    r = env.build("missing-sg-self-rule")
    near = env.world.call(
        "ec2", "create_security_group", GroupName=f"cli-near-{env.n}", Description="another workload", VpcId=r.vpc_id
    )["GroupId"]
    params = json.dumps(
        {k: v for k, v in dict(full_params(r, "add-sg-self-rule"), group_id=near).items() if k != "vpc_id"}
    )
    before = env.snapshot(r)
    _code, out, _ = _run(capsys, "fix", r.uuid, "--action", "add-sg-self-rule", "--params", params, "--json")
    data = json.loads(out)
    assert data["status"] == "refused" and "not one of the ESM's security groups" in data["error"], data
    _run(capsys, "fix", r.uuid, "--action", "add-sg-self-rule", "--params", params, "--apply", "--yes", "--json")
    assert env.snapshot(r) == before
