"""The synthesized CDK app, deployed into the sandbox's CloudFormation, runs an incident end to end along the
production path: the sweeper Lambda sees the broken ESM and puts an 'ESM Status Change' event; the EventBridge rule
from the template invokes the start Lambda; the state machine from the template runs the handlers (in-process,
with the environment CloudFormation gave them); the account is repaired and the ESM reports OK.

This is the check that infra wires what the local runner wires: same functions, same env vars, same rules.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path

import pytest
from esm_medic_sandbox import cfn, simulator
from esm_medic_sandbox.env import sandbox
from esm_medic_sandbox.scenarios import SCENARIOS

ROOT = Path(__file__).resolve().parents[2]
FAST = {"VerifyWaitSeconds": "1", "VerifyMaxWaitSeconds": "2", "VerifyMaxAttempts": "4", "DefaultMode": "auto"}


@pytest.fixture(scope="module")
def cdk_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    os.environ["PATH"] = f"{ROOT / 'node_modules' / '.bin'}{os.pathsep}{os.environ['PATH']}"
    from infra.app import build_app

    outdir = tmp_path_factory.mktemp("cdk.out")
    build_app(str(outdir), install_deps=False, nag=False, context=dict(FAST)).synth()
    return outdir


def _wait_for_execution(aws, machine_arn: str, timeout: float = 120.0) -> dict:
    sfn = aws.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        execs = sfn.list_executions(stateMachineArn=machine_arn)["executions"]
        done = [e for e in execs if e["status"] != "RUNNING"]
        if execs and len(done) == len(execs):
            return sfn.describe_execution(executionArn=done[0]["executionArn"])
        time.sleep(0.5)
    raise AssertionError("the execution did not finish in time")


def test_deployed_stack_repairs_a_broken_esm(cdk_out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with sandbox() as aws, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*AWS::SNS::TopicPolicy.*")  # moto skips it; nothing uses it here
        simulator.install()
        stack = cfn.deploy(aws, cdk_out)
        assert stack.status == "CREATE_COMPLETE"
        # only what moto cannot create: the function URLs and the alarms (their template is checked in tests/infra)
        assert stack.removed and all(r.startswith(("ApprovalHttp", "Observability")) for r in stack.removed)

        machine = stack.physical("Workflow", "AWS::StepFunctions::StateMachine")
        sweeper = stack.physical("SweeperFunction", "AWS::Lambda::Function")
        lam = aws.client("lambda")
        # test settings on the deployed sweeper: no flap hold, and tickets/notifications into tmp_path
        env = lam.get_function_configuration(FunctionName=sweeper)["Environment"]["Variables"]
        lam.update_function_configuration(
            FunctionName=sweeper, Environment={"Variables": {**env, "ESM_MEDIC_SWEEP_HOLD_SECONDS": "0"}}
        )
        monkeypatch.setenv("ESM_MEDIC_TICKET_DIR", str(tmp_path / "tickets"))

        built = SCENARIOS["missing-sg-self-rule"].build(aws, prefix="cfn")
        before = lam.get_event_source_mapping(UUID=built.uuid)
        assert before["LastProcessingResult"].startswith("PROBLEM: Connection error")

        result = lam.invoke(FunctionName=sweeper, Payload=json.dumps({"source": "aws.events"}).encode())
        assert "FunctionError" not in result, result["Payload"].read()

        execution = _wait_for_execution(aws, machine)
        assert execution["status"] == "SUCCEEDED", execution.get("cause")
        assert execution["name"].startswith(built.uuid)  # named by the start function, not by EventBridge

        after = lam.get_event_source_mapping(UUID=built.uuid)
        assert (after["State"], after["LastProcessingResult"]) == ("Enabled", "OK")
        group = built.security_group_ids[0]
        rules = aws.client("ec2").describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group]}])[
            "SecurityGroupRules"
        ]
        self_rules = [r for r in rules if r.get("ReferencedGroupInfo", {}).get("GroupId") == group]
        assert any(r["FromPort"] == 9098 and not r["IsEgress"] for r in self_rules)
        assert not any(r.get("CidrIpv4") for r in rules if r.get("Description", "").startswith("esm-medic"))

        # the outcome and the audit trail live in the tables CloudFormation created
        audit = stack.physical("AuditTable", "AWS::DynamoDB::Table")
        rows = aws.client("dynamodb").query(
            TableName=audit,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"ESM#{built.uuid}"}},
        )["Items"]
        statuses = {r.get("status", {}).get("S") for r in rows}
        assert {"applied", "recovered"} <= statuses, statuses
