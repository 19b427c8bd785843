"""Every command against closed, empty, huge, malformed and wrapped input: a one-line message (or a JSON error
with --json) and the documented exit code, never a traceback. Plus a small profile of the fuzz bench."""

from __future__ import annotations

import io
import json
import time

import pytest

from bench.bench_fuzz import fuzz
from esm_medic.cli import common
from esm_medic.cli.main import main

UNREACHABLE = "http://127.0.0.1:9"  # discard port: nothing listens
PAGE = {
    "EventSourceMappings": [
        {"UUID": "a", "LastProcessingResult": "OK"},
        {"UUID": "b", "LastProcessingResult": "PROBLEM: SASL authentication failed."},
    ],
    "NextMarker": "m",
}
INPUTS = {
    "empty": "",
    "blank": "  \n\t\n",
    "huge": "PROBLEM: SASL authentication failed. " + "x" * 3_000_000,
    "malformed": '{"EventSourceMappings": [{"UUID": "a", "LastProc',
    "wrapped": json.dumps(PAGE),
    "pages": json.dumps(PAGE) + json.dumps({"EventSourceMappings": [{"UUID": "c", "StateTransitionReason": "OK"}]}),
    "surrogates": "PROBLEM: Lambda internal error. \udcff\ud800",
    "deep": "[" * 5000 + "]" * 5000,
}


@pytest.fixture(autouse=True)
def _reset_state():
    yield
    common.STATE.stdin_closed = False


def run(capsys, monkeypatch, argv, stdin):
    if stdin is None:
        monkeypatch.setattr("sys.stdin", None)
    else:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    rc = main(argv)
    out = capsys.readouterr()
    assert "Traceback" not in out.err and "Error:" not in out.err.split(":", 1)[-1][:40]
    out.out.encode("utf-8")
    out.err.encode("utf-8")
    return rc, out.out, out.err


EXPECTED = {  # input -> (explain - exit, classify exit)
    None: (2, 2),
    "empty": (2, 0),
    "blank": (2, 0),
    "huge": (0, 0),
    "malformed": (2, 1),
    "wrapped": (0, 0),
    "pages": (0, 0),
    "surrogates": (0, 0),
    "deep": (2, 1),
}


@pytest.mark.parametrize("name", list(EXPECTED), ids=[str(n) for n in EXPECTED])
def test_explain_and_classify_input_matrix(capsys, monkeypatch, name):
    stdin = None if name is None else INPUTS[name]
    want_explain, want_classify = EXPECTED[name]
    rc, out, err = run(capsys, monkeypatch, ["explain", "-"], stdin)
    assert rc == want_explain, err
    if rc:
        assert err.startswith("esm-medic: ") and err.count("\n") == 1
    rc, out, err = run(capsys, monkeypatch, ["explain", "--json", "-"], stdin)
    data = json.loads(out)
    assert rc == want_explain
    if rc:
        assert set(data) == {"error"} and {"code", "message"} <= set(data["error"])
    else:
        assert len(out) < 20_000  # a huge input is summarised, never echoed whole
    rc, out, err = run(capsys, monkeypatch, ["classify"], stdin)
    assert rc == want_classify, err
    rows = [json.loads(line) for line in out.splitlines()]
    if name in ("wrapped", "pages"):
        assert [r["uuid"] for r in rows] == (["a", "b"] if name == "wrapped" else ["a", "b", "c"])
        assert rows[1]["entry"] == "sasl-authentication-failed"
    if name in ("malformed", "deep"):
        assert len([r for r in rows if "error" in r]) == 1


def test_malformed_json_can_be_explained_as_text(capsys, monkeypatch):
    rc, out, _ = run(capsys, monkeypatch, ["explain", "--text", "-"], INPUTS["malformed"])
    assert rc == 0 and "not in the catalogue" in out
    rc, out, _ = run(capsys, monkeypatch, ["classify", "--text"], INPUTS["malformed"])
    assert rc == 0 and "error" not in json.loads(out)


def test_explain_lists_each_fix_once_and_cuts_the_runbook_at_a_paragraph(capsys, monkeypatch):
    rc, out, _ = run(
        capsys,
        monkeypatch,
        ["explain", "PROBLEM: Connection error. Your VPC must be able to connect to Lambda and STS."],
        "",
    )
    fixes = [line for line in out.splitlines() if line.startswith("  [")]
    assert rc == 0 and len(fixes) == len(set(fixes))
    assert "['" not in out and "[9098]" not in out
    tail = out.rstrip().splitlines()[-3:]
    assert tail[-1].strip() in ("…", "") or not tail[-2].rstrip().endswith("\\")


def test_unclosed_bracket_lines_are_reported_once(capsys, monkeypatch):
    rc, out, err = run(capsys, monkeypatch, ["classify"], "[\n" * 50_000 + '{"LastProcessingResult": "OK"}\n')
    rows = [json.loads(line) for line in out.splitlines()]
    assert rc == 1 and len([r for r in rows if "error" in r]) == 1
    assert rows[-1]["entry"] == "healthy-ok" and "skipped" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["fix", "14e0db71-5d35-4eb5-b481-8945cf9d10c2", "--apply"],
        ["rollback", "act-1"],
        ["history"],
        ["diagnose", "14e0db71-5d35-4eb5-b481-8945cf9d10c2"],
        ["scan"],
    ],
)
def test_aws_commands_with_closed_stdin_and_no_sandbox_fail_fast_with_a_hint(capsys, monkeypatch, argv):
    started = time.perf_counter()
    rc, out, err = run(capsys, monkeypatch, [*argv, "--endpoint-url", UNREACHABLE], None)
    assert rc == 1 and "is the sandbox running?" in err and UNREACHABLE in err
    assert err.count("\n") == 1 and time.perf_counter() - started < 10
    rc, out, _ = run(capsys, monkeypatch, [*argv, "--endpoint-url", UNREACHABLE, "--json"], None)
    assert rc == 1 and json.loads(out)["error"]["code"]


def test_region_is_resolved_like_the_aws_cli(capsys, monkeypatch, tmp_path):
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    rc, _, err = run(capsys, monkeypatch, ["history", "--endpoint-url", UNREACHABLE], "")
    assert rc == 2 and "You must specify a region" in err
    config = tmp_path / "config"
    config.write_text("[profile dev]\nregion = ap-northeast-2\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    rc, _, err = run(capsys, monkeypatch, ["history", "--profile", "dev", "--endpoint-url", UNREACHABLE], "")
    assert rc == 1 and "is the sandbox running?" in err
    assert common.STATE.region == "" or common.STATE.region == "ap-northeast-2"
    rc, _, err = run(capsys, monkeypatch, ["history", "--profile", "nope"], "")
    assert rc == 2 and "profile" in err


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["diagnose", "not-a-uuid"], "not an event source mapping UUID"),
        (["fix", "1234"], "not an event source mapping UUID"),
        (["rollback", " "], "action id is empty"),
    ],
)
def test_malformed_ids_are_usage_errors(capsys, monkeypatch, argv, needle):
    rc, _, err = run(capsys, monkeypatch, argv, "")
    assert rc == 2 and needle in err and "ParamValidationError" not in err and "ValidationException" not in err


def test_fuzz_small_profile_has_no_unhandled_exceptions():
    result = fuzz(600, pool_size=200)
    assert result["exceptions"] == 0, result["first_failure"]


def test_missing_deployment_and_aws_errors_read_as_advice(monkeypatch):
    from botocore.exceptions import ClientError, ParamValidationError

    from esm_medic.remediate.audit import AuditError

    monkeypatch.setattr(common.STATE, "region", "eu-central-1")
    missing = ClientError(
        {"Error": {"Code": "ResourceNotFoundException", "Message": "Requested resource not found"}}, "Query"
    )
    for exc in (missing, _chained(AuditError("cannot read the audit table esm-medic-audit"), missing)):
        message = common.aws_error_message(exc)
        assert "not deployed in eu-central-1" in message and "--region" in message
        assert "sandbox serve --region eu-central-1" in message
    message = common.aws_error_message(ParamValidationError(report="Invalid length for parameter UUID"))
    assert message.startswith("invalid request") and "ParamValidationError" not in message
    throttled = ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "GetItem")
    assert common.aws_error_message(throttled) == "Rate exceeded (ThrottlingException)"
    assert not common.aws_error_message(KeyError("x")).startswith("KeyError")


def _chained(exc: BaseException, cause: BaseException) -> BaseException:
    exc.__cause__ = cause
    return exc


def test_confirmation_with_stdin_closed_is_no_terminal(monkeypatch):
    """fix --apply and rollback ask through _confirm: with stdin closed there is no terminal, so they refuse with
    their documented message and exit 2 instead of an AttributeError."""
    from esm_medic.cli.fix import _confirm

    monkeypatch.setattr("sys.stdin", None)
    common.prepare_streams()
    assert common.STATE.stdin_closed and _confirm("Apply?") is None
    with pytest.raises(common.CliError) as exc:
        common.read_stdin()
    assert exc.value.exit_code == 2 and "closed" in exc.value.message
