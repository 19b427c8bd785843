"""``esm-medic diagnose`` / ``esm-medic scan``: in-process, and as a subprocess against ``esm-medic sandbox serve``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from esm_medic_sandbox import scenarios

from esm_medic.aws import Aws
from esm_medic.catalogue import get_catalogue
from esm_medic.cli.main import main


# ---------------------------------------------------------------------------------------------- in-process
def test_diagnose_json(sim_aws, build, capsys):
    result = build("missing-sg-self-rule")
    assert main(["diagnose", result.uuid, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["uuid"] == result.uuid
    assert (doc["step"], doc["root_cause"]["id"], doc["root_cause"]["fix"]) == (
        "network",
        "no-sg-self-rule",
        "add-sg-self-rule",
    )
    assert doc["root_cause"]["fix_params"]["ports"] == [9098]
    assert all({"check", "status", "evidence"} <= set(f) for f in doc["findings"])


def test_diagnose_human(sim_aws, build, capsys):
    result = build("no-nat-no-endpoints")
    assert main(["diagnose", result.uuid]) == 0
    out = capsys.readouterr().out
    assert f"ESM {result.uuid}" in out
    assert "Network identity (from the cluster)" in out
    assert "service-path" in out and "FAIL" in out
    assert "Root cause: no-nat-or-endpoints" in out
    assert "Fix: create-vpc-endpoints" in out
    assert f"esm-medic fix {result.uuid}" in out


def test_diagnose_healthy_human(sim_aws, build, capsys):
    assert main(["diagnose", build("healthy").uuid]) == 0
    assert "Root cause: none: the ESM is healthy." in capsys.readouterr().out


def test_diagnose_errors(sim_aws, capsys):
    assert main(["diagnose", "00000000-0000-0000-0000-000000000000"]) == 1
    assert "no event source mapping 00000000-0000-0000-0000-000000000000" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["diagnose"])
    assert exc.value.code == 2


def test_scan_table_json_and_only_broken(sim_aws, build, capsys):
    broken, healthy = build("wrong-port-self-rule"), build("healthy")
    assert main(["scan", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["ESM", "STATE", "STEP", "ROOT", "CAUSE", "FIX", "DETECTION"]
    assert any(broken.uuid in line and line.rstrip().endswith("sweep") for line in out.splitlines())
    assert any(
        broken.uuid in line and "wrong-port-for-auth" in line and "add-sg-self-rule" in line
        for line in out.splitlines()
    )
    assert any(healthy.uuid in line and "healthy" in line for line in out.splitlines())
    assert main(["scan", "--json", "--only-broken"]) == 0
    docs = json.loads(capsys.readouterr().out)
    uuids = {d["uuid"] for d in docs}
    assert broken.uuid in uuids and healthy.uuid not in uuids
    assert all(d["root_cause"]["id"] != "healthy" for d in docs)


def test_scan_usage_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["scan", "--workers", "0"])
    assert exc.value.code == 2


# ---------------------------------------------------------------------------------------------- subprocess
def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    return env


def _cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "esm_medic.cli.main", *args],
        capture_output=True,
        text=True,
        env=env or _env(),
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "esm_medic.cli.main", "sandbox", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline() if proc.stdout else ""), daemon=True)
    reader.start()
    reader.join(60)
    try:
        assert line and line[0].startswith("AWS_ENDPOINT_URL="), f"sandbox serve did not start: {line}"
        yield line[0].strip().split("=", 1)[1]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _build(url: str, name: str) -> Any:
    """Build a scenario in the server; when the server does not run the ESM simulator, give the ESM the status
    text its failure produces (a catalogue example) through the sandbox's control route."""
    from esm_medic_sandbox.server import set_status_remote

    aws = Aws(region="us-east-1", endpoint_url=url, max_attempts=2)
    result = scenarios.build(aws, name, prefix="cli-")
    status = aws.call("lambda", "get_event_source_mapping", UUID=result.uuid)
    entry = result.expected["entry"]
    if result.expected["step"] != "none" and not str(status.get("LastProcessingResult") or "").startswith("PROBLEM"):
        example = next(e for e in get_catalogue()[entry].examples if e.startswith("PROBLEM"))
        set_status_remote(url, result.uuid, last_processing_result=example)
    return result


@pytest.mark.slow
def test_cli_against_sandbox_serve(server):
    broken = _build(server, "missing-sg-self-rule")
    healthy = _build(server, "healthy")

    done = _cli("diagnose", broken.uuid, "--json", "--endpoint-url", server)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert (doc["step"], doc["root_cause"]["id"], doc["root_cause"]["fix"]) == (
        "network",
        "no-sg-self-rule",
        "add-sg-self-rule",
    )
    assert doc["root_cause"]["fix_params"]["group_id"] == broken.security_group_ids[0]
    assert doc["api_calls"] > 0

    env = {**_env(), "AWS_ENDPOINT_URL": server}  # the standard variable works too
    human = _cli("diagnose", healthy.uuid, env=env)
    assert human.returncode == 0, human.stderr
    assert "the ESM is healthy" in human.stdout

    table = _cli("scan", "--endpoint-url", server)
    assert table.returncode == 0, table.stderr
    rows = {line.split()[0]: line for line in table.stdout.splitlines() if line[8:9] == "-" and line[36:37] == " "}
    assert "no-sg-self-rule" in rows[broken.uuid] and "healthy" in rows[healthy.uuid]
    assert "scanning [" not in table.stderr  # no progress bar when stderr is not a terminal

    only = _cli("scan", "--json", "--only-broken", "--endpoint-url", server)
    assert only.returncode == 0, only.stderr
    assert broken.uuid in {d["uuid"] for d in json.loads(only.stdout)}
    assert healthy.uuid not in {d["uuid"] for d in json.loads(only.stdout)}

    missing = _cli("diagnose", "00000000-0000-0000-0000-000000000000", "--endpoint-url", server)
    assert missing.returncode == 1 and "no event source mapping" in missing.stderr


@pytest.mark.slow
def test_cli_unreachable_endpoint_fails_cleanly():
    done = _cli("scan", "--endpoint-url", "http://127.0.0.1:9", timeout=120)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "esm-medic:" in done.stderr


def test_progress_bar_renders_on_a_stream():
    import io

    from esm_medic.cli.diagnose import _ProgressBar

    out = io.StringIO()
    bar = _ProgressBar(out)
    for done in range(201):
        bar(done, 200)
    text = out.getvalue()
    assert text.count("\r") == 101  # one redraw per percent, not per ESM
    assert text.endswith("200/200 ESMs\n")
