"""`esm-medic explain` and `esm-medic classify`, in-process."""

from __future__ import annotations

import io
import json

import pytest

from esm_medic.cli.main import main


def run(argv, stdin=None, monkeypatch=None, capsys=None):
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_explain_human(capsys, monkeypatch):
    rc, out, _ = run(
        ["explain", "PROBLEM: Connection error. Please check your event source connection configuration."],
        monkeypatch=monkeypatch,
        capsys=capsys,
    )
    assert rc == 0
    assert "connection-broker-unreachable" in out and "[NETWORK FAILED]" in out
    assert "add-sg-self-rule" in out and "runbooks/connection-broker-unreachable.md" in out


def test_explain_json_has_contract_keys(capsys, monkeypatch):
    rc, out, _ = run(
        ["explain", "--json", "PROBLEM: Cluster failed to authorize Lambda."], monkeypatch=monkeypatch, capsys=capsys
    )
    data = json.loads(out)
    assert rc == 0
    assert {"entry", "step", "auto_fixable", "runbook"} <= data.keys()
    assert data["entry"] == "cluster-authorization-failed" and data["step"] == "authz"
    assert data["auto_fixable"] is False and data["runbook"] == "cluster-authorization-failed.md"


def test_explain_stdin_text_and_json(capsys, monkeypatch):
    rc, out, _ = run(
        ["explain", "--json", "-"],
        stdin="PROBLEM: SASL authentication failed.\n",
        monkeypatch=monkeypatch,
        capsys=capsys,
    )
    assert rc == 0 and json.loads(out)["step"] == "auth"
    item = json.dumps({"UUID": "u", "StateTransitionReason": "ESM_CONFIG_NOT_VALID"})
    rc, out, _ = run(["explain", "--json", "-"], stdin=item, monkeypatch=monkeypatch, capsys=capsys)
    assert rc == 0 and json.loads(out)["entry"] == "esm-config-not-valid"


def test_explain_unknown_and_healthy(capsys, monkeypatch):
    rc, out, _ = run(["explain", "PROBLEM: something new"], monkeypatch=monkeypatch, capsys=capsys)
    assert rc == 0 and "not in the catalogue" in out
    rc, out, _ = run(["explain", "OK"], monkeypatch=monkeypatch, capsys=capsys)
    assert rc == 0 and "healthy" in out


def test_explain_usage_errors_exit_2(capsys, monkeypatch):
    with pytest.raises(SystemExit) as exc:
        main(["explain"])
    assert exc.value.code == 2
    rc, _, err = run(["explain", "-"], stdin="   ", monkeypatch=monkeypatch, capsys=capsys)
    assert rc == 2 and "empty" in err
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2


def test_classify_stream_of_lines_and_json(capsys, monkeypatch, tmp_path):
    stream = "\n".join(
        [
            "PROBLEM: Lambda internal error.",
            json.dumps({"LastProcessingResult": "OK"}),
            "{broken json",
            json.dumps(
                [
                    {"StateTransitionReason": "FUNCTION_CONFIG_NOT_VALID"},
                    {"LastProcessingResult": "No records processed"},
                ]
            ),
            "",
            "   ",
        ]
    )
    rc, out, _ = run(["classify"], stdin=stream, monkeypatch=monkeypatch, capsys=capsys)
    rows = [json.loads(line) for line in out.splitlines()]
    assert rc == 0
    assert [r["entry"] for r in rows] == [
        "lambda-internal-error",
        "healthy-ok",
        None,
        "function-config-not-valid",
        "healthy-no-records",
    ]
    f = tmp_path / "in.txt"
    f.write_text("PROBLEM: Function call failed\n")
    rc, out, _ = run(["classify", str(f)], monkeypatch=monkeypatch, capsys=capsys)
    assert rc == 0 and json.loads(out)["entry"] == "function-call-failed"
    rc, _, err = run(["classify", str(tmp_path / "missing")], monkeypatch=monkeypatch, capsys=capsys)
    assert rc == 2 and "cannot read" in err
