"""The sandbox server: in this process (serve / stop / control route) and the CLI against `sandbox serve` in a
subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from esm_medic_sandbox import inproc, server
from esm_medic_sandbox.env import create_msk_stack

ROOT = Path(__file__).resolve().parents[3]


def _aws(url: str):
    from esm_medic.aws import Aws

    return Aws(region="us-east-1", endpoint_url=url, max_attempts=2)


@pytest.fixture
def running():
    before = {k: os.environ.get(k) for k in ("MOTO_PORT", "AWS_ENDPOINT_URL")}
    srv, port = server.serve(port=0)
    try:
        yield f"http://127.0.0.1:{port}", port
    finally:
        server.stop(srv)
        inproc.clear_handlers()
        from esm_medic_sandbox import patches

        patches.reset_status()
    assert {k: os.environ.get(k) for k in before} == before  # restored


def test_serve_in_process_with_control_route(running) -> None:
    url, port = running
    assert os.environ["MOTO_PORT"] == str(port)
    assert os.environ["AWS_ENDPOINT_URL"] == url
    assert server.health_remote(url)["patches"][0] == "patch_lambda"
    aws = _aws(url)
    stack = create_msk_stack(aws)
    brokers = aws.call("kafka", "get_bootstrap_brokers", ClusterArn=stack.cluster_arn)
    assert brokers["BootstrapBrokerStringSaslIam"].endswith(":9098")
    uuid = stack.create_esm(aws)["UUID"]
    out = server.set_status_remote(url, uuid, state="Disabled", reason="ESM_CONFIG_NOT_VALID")
    assert out["override"] == {"State": "Disabled", "StateTransitionReason": "ESM_CONFIG_NOT_VALID"}
    got = aws.call("lambda", "get_event_source_mapping", UUID=uuid)
    assert (got["State"], got["StateTransitionReason"]) == ("Disabled", "ESM_CONFIG_NOT_VALID")
    out = server.set_status_remote(url, uuid, last_processing_result="PROBLEM: x", clear=True)
    assert out["override"] == {"LastProcessingResult": "PROBLEM: x"}
    assert server.get_status_remote(url, uuid)["item"]["State"] == "Enabled"
    with pytest.raises(server.ControlError) as err:
        server.set_status_remote(url, "no-such-uuid", state="Enabled")
    assert err.value.status == 404
    with pytest.raises(server.ControlError) as err:
        server.set_status_remote(url, uuid, state="Exploded")
    assert err.value.status == 400
    # IAM simulation over HTTP too (server mode answered HTTP 500 before the patch)
    r = aws.call(
        "iam", "simulate_principal_policy", PolicySourceArn=stack.role_arn, ActionNames=["kafka-cluster:Connect"]
    )
    assert r["EvaluationResults"][0]["EvalDecision"] == "allowed"


def test_server_mode_runs_step_functions_with_in_process_lambda(running) -> None:
    url, _ = running
    aws = _aws(url)
    stack = create_msk_stack(aws)
    calls = []

    def handler(event, context):
        # the handler's own boto3 calls reach the same server
        clusters = boto3.client("kafka", region_name="us-east-1").list_clusters_v2()["ClusterInfoList"]
        calls.append(event)
        return {"clusters": len(clusters)}

    inproc.register_handler(stack.function_name, handler)
    definition = {
        "StartAt": "Call",
        "States": {"Call": {"Type": "Task", "Resource": stack.function_arn, "End": True}},
    }
    sm = aws.call(
        "stepfunctions", "create_state_machine", name="srv", roleArn=stack.role_arn, definition=json.dumps(definition)
    )["stateMachineArn"]
    ex = aws.call("stepfunctions", "start_execution", stateMachineArn=sm, name="one", input='{"k": 1}')["executionArn"]
    deadline = time.monotonic() + 15
    while (desc := aws.call("stepfunctions", "describe_execution", executionArn=ex))["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert desc["status"] == "SUCCEEDED", desc
    assert json.loads(desc["output"]) == {"clusters": 1}
    assert calls == [{"k": 1}]


def test_control_error_when_unreachable() -> None:
    with pytest.raises(server.ControlError) as err:
        server.set_status_remote("http://127.0.0.1:9", "u", state="Enabled")
    assert err.value.status == 0


# ---------------------------------------------------------------------------------------------- CLI subprocess
def _cli(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "esm_medic.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )


def _main(capsys, *args: str) -> tuple[int, str, str]:
    """The CLI in this process: (exit code, stdout, stderr)."""
    from esm_medic.cli.main import main

    rc = main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.slow
def test_cli_serve_and_set_status_in_subprocesses(capsys, monkeypatch, tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    errors = (tmp_path / "serve.err").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "esm_medic.cli.main", "sandbox", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        line = proc.stdout.readline().strip()  # blocks until the server is up
        assert line.startswith("AWS_ENDPOINT_URL=http://127.0.0.1:"), (line, (tmp_path / "serve.err").read_text())
        url = line.split("=", 1)[1]
        aws = _aws(url)
        from esm_medic.tables import TABLES

        assert {t.name for t in TABLES} <= set(aws.call("dynamodb", "list_tables")["TableNames"])  # serve made them
        stack = create_msk_stack(aws)
        uuid = stack.create_esm(aws)["UUID"]
        cli_env = {**env, "AWS_ENDPOINT_URL": url}
        text = "PROBLEM: Connection error. Please check your event source connection configuration."
        done = _cli("sandbox", "set-status", uuid, "--state", "Enabled", "--last-processing-result", text, env=cli_env)
        assert done.returncode == 0, done.stderr
        assert "(override)" in done.stdout and "PROBLEM: Connection error" in done.stdout
        got = aws.call("lambda", "get_event_source_mapping", UUID=uuid)
        assert (got["State"], got["LastProcessingResult"]) == ("Enabled", text)
        # the rest in this process (same HTTP path, no interpreter start-up per call)
        rc, out, _ = _main(capsys, "sandbox", "get-status", uuid, "--json", "--endpoint-url", url)
        assert rc == 0
        assert json.loads(out)["item"]["LastProcessingResult"] == text
        # bad usage and failures have distinct exit codes
        assert _main(capsys, "sandbox", "set-status", uuid, "--endpoint-url", url)[0] == 2  # nothing to set
        assert _main(capsys, "sandbox", "set-status", uuid, "--state", "Sideways", "--endpoint-url", url)[0] == 2
        rc, _, err = _main(capsys, "sandbox", "set-status", "nope", "--state", "Enabled", "--endpoint-url", url)
        assert rc == 1 and "no event source mapping" in err
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
        assert _main(capsys, "sandbox", "set-status", uuid, "--clear")[0] == 2  # no endpoint at all
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
            errors.close()
    assert rc == 0


def test_delay_control_route(running) -> None:
    from esm_medic_sandbox import timing

    url, _ = running
    route = f"{url}/moto-api/esm-medic/delay"
    try:
        assert server._request(route, "POST", {"seconds": 2.5}) == {"delay_seconds": 2.5}
        assert server._request(route, "GET") == {"delay_seconds": 2.5}
        assert server.health_remote(url)["delay_seconds"] == 2.5
        with pytest.raises(server.ControlError) as err:
            server._request(route, "POST", {"seconds": "soon"})
        assert err.value.status == 400
        assert server._request(route, "POST", {"seconds": None}) == {"delay_seconds": timing.delay()}
    finally:
        timing.set_delay(None)


def test_tables_are_provisioned_in_whatever_region_is_used() -> None:
    """`sandbox serve` creates esm-medic's tables in a region on its first DynamoDB request there, so `history
    --region eu-west-1` against the sandbox finds them as a deployment there would."""
    from esm_medic.aws import Aws
    from esm_medic.tables import TABLES, create_tables

    srv, port = server.serve(port=0)
    url = f"http://127.0.0.1:{port}"
    try:
        server.provision_per_region(srv, lambda region: create_tables(Aws(region=region, endpoint_url=url)))
        for region in ("eu-west-1", "ap-northeast-2"):
            names = Aws(region=region, endpoint_url=url, max_attempts=1).call("dynamodb", "list_tables")["TableNames"]
            assert {t.name for t in TABLES} <= set(names), region
    finally:
        server.stop(srv)
