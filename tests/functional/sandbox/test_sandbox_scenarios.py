"""Every sandbox scenario: build it, check the simulated ESM status against the catalogue, repair the account by
hand with boto3, and check the ESM recovers after a disable / enable."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from esm_medic_sandbox import scenarios, simulator
from esm_medic_sandbox.env import sandbox
from esm_medic_sandbox.scenarios import KAFKA_CLUSTER_ACTIONS, SCENARIOS, ScenarioResult

from esm_medic.aws import Aws
from esm_medic.classify import classify

REQUIRED = {
    "missing-sg-self-rule",
    "wrong-port-self-rule",
    "no-nat-no-endpoints",
    "missing-secretsmanager-endpoint",
    "healthy",
    "provisioned-mode",
    "role-without-kafka-cluster",
    "malformed-secret",
    "vpc-dns-off",
    "self-managed-unresolvable-broker",
    "self-managed-missing-sg-rule",
}
FIX_IDS = {"add-sg-self-rule", "create-vpc-endpoints", "grant-iam-permissions", "enable-vpc-dns", "ticket", None}


@pytest.fixture(scope="module")
def aws() -> Iterator[Aws]:
    with sandbox() as a:
        simulator.install()
        yield a


def _status(aws: Aws, uuid: str) -> dict[str, Any]:
    return aws.call("lambda", "get_event_source_mapping", UUID=uuid)


def _bounce(aws: Aws, uuid: str) -> dict[str, Any]:
    """Disable then enable the ESM (what an operator does after a repair); returns the enabled item."""
    off = aws.call("lambda", "update_event_source_mapping", UUID=uuid, Enabled=False)
    assert off["State"] == "Disabled"
    assert off["StateTransitionReason"] == "USER_INITIATED"
    aws.call("lambda", "update_event_source_mapping", UUID=uuid, Enabled=True)
    return _status(aws, uuid)


# ---------------------------------------------------------------------------------------------- manual repairs
def _self_rule(port: int) -> Callable[[Aws, ScenarioResult], None]:
    def repair(aws: Aws, r: ScenarioResult) -> None:
        sg = r.security_group_ids[0]
        aws.client("ec2").authorize_security_group_ingress(
            GroupId=sg,
            IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "UserIdGroupPairs": [{"GroupId": sg}]}
            ],
        )

    return repair


def _endpoints(services: tuple[str, ...]) -> Callable[[Aws, ScenarioResult], None]:
    def repair(aws: Aws, r: ScenarioResult) -> None:
        ec2 = aws.client("ec2")
        ep_sg = r.resources.get("endpoint_security_group_id")
        if not ep_sg:
            ep_sg = ec2.create_security_group(GroupName=f"vpce-{r.uuid[:8]}", Description="vpce", VpcId=r.vpc_id)[
                "GroupId"
            ]
            ec2.authorize_security_group_ingress(
                GroupId=ep_sg,
                IpPermissions=[
                    {
                        "IpProtocol": "tcp",
                        "FromPort": 443,
                        "ToPort": 443,
                        "UserIdGroupPairs": [{"GroupId": r.security_group_ids[0]}],
                    }
                ],
            )
        for svc in services:
            ec2.create_vpc_endpoint(
                VpcId=r.vpc_id,
                ServiceName=f"com.amazonaws.us-east-1.{svc}",
                VpcEndpointType="Interface",
                SubnetIds=r.subnet_ids,
                SecurityGroupIds=[ep_sg],
                PrivateDnsEnabled=True,
            )

    return repair


def _grant_kafka(aws: Aws, r: ScenarioResult) -> None:
    arns = r.resources["kafka_arns"]
    doc = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": KAFKA_CLUSTER_ACTIONS,
                "Resource": [arns["cluster"], arns["topics"], arns["groups"]],
            }
        ],
    }
    aws.client("iam").put_role_policy(RoleName=r.role_name, PolicyName="kafka-data", PolicyDocument=json.dumps(doc))


def _fix_secret_json(aws: Aws, r: ScenarioResult) -> None:
    assert r.resources["scram"] in ("associated", "registered")
    value = {"username": r.resources["scram_username"], "password": "a-new-password-1"}
    aws.client("secretsmanager").put_secret_value(SecretId=r.secret_arn, SecretString=json.dumps(value))
    if r.resources["scram"] == "registered":  # the brokers must know the new password too
        aws.client("ssm").put_parameter(
            Name=f"{simulator.SCRAM_SSM_PREFIX}{value['username']}",
            Value=value["password"],
            Type="SecureString",
            Overwrite=True,
        )


def _enable_dns(aws: Aws, r: ScenarioResult) -> None:
    ec2 = aws.client("ec2")
    ec2.modify_vpc_attribute(VpcId=r.vpc_id, EnableDnsSupport={"Value": True})
    ec2.modify_vpc_attribute(VpcId=r.vpc_id, EnableDnsHostnames={"Value": True})


def _grant_secret(aws: Aws, r: ScenarioResult) -> None:
    doc = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": r.secret_arn},
            {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": r.resources["kms_key_arn"]},
        ],
    }
    aws.client("iam").put_role_policy(RoleName=r.role_name, PolicyName="secret", PolicyDocument=json.dumps(doc))


def _pem_secret(aws: Aws, r: ScenarioResult) -> None:
    value = {
        "certificate": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        "privateKey": "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
    }
    aws.client("secretsmanager").put_secret_value(SecretId=r.secret_arn, SecretString=json.dumps(value))


def _trust_lambda(aws: Aws, r: ScenarioResult) -> None:
    aws.client("iam").update_assume_role_policy(RoleName=r.role_name, PolicyDocument=json.dumps(scenarios.TRUST_LAMBDA))


def _dns_record(aws: Aws, r: ScenarioResult) -> None:
    # A person adds the misspelt names to DNS (a private zone for the typo'd domain, associated with the VPC).
    host = r.bootstrap_servers[0].rsplit(":", 1)[0]
    domain = host.split(".", 1)[1]
    r53 = aws.client("route53")
    zone = r53.create_hosted_zone(
        Name=domain,
        CallerReference=f"fix-{r.uuid}",
        HostedZoneConfig={"PrivateZone": True, "Comment": "fix"},
        VPC={"VPCRegion": "us-east-1", "VPCId": r.vpc_id},
    )["HostedZone"]["Id"]
    r53.change_resource_record_sets(
        HostedZoneId=zone,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "UPSERT",
                    "ResourceRecordSet": {
                        "Name": f"*.{domain}",
                        "Type": "A",
                        "TTL": 60,
                        "ResourceRecords": [{"Value": "10.40.1.50"}],
                    },
                }
            ]
        },
    )


def _nothing(aws: Aws, r: ScenarioResult) -> None:
    return None


REPAIRS: dict[str, Callable[[Aws, ScenarioResult], None]] = {
    "missing-sg-self-rule": _self_rule(9098),
    "wrong-port-self-rule": _self_rule(9098),
    "no-nat-no-endpoints": _endpoints(("sts", "lambda")),
    "missing-secretsmanager-endpoint": _endpoints(("secretsmanager",)),
    "healthy": _nothing,
    "provisioned-mode": _nothing,
    "role-without-kafka-cluster": _grant_kafka,
    "role-without-connect": _grant_kafka,
    "malformed-secret": _fix_secret_json,
    "vpc-dns-off": _enable_dns,
    "secret-access-denied": _grant_secret,
    "mtls-secret-not-pem": _pem_secret,
    "role-trust-broken": _trust_lambda,
    "self-managed-unresolvable-broker": _dns_record,
    "self-managed-missing-sg-rule": _self_rule(9096),
}


# ---------------------------------------------------------------------------------------------- tests
def test_registry_covers_the_required_scenarios() -> None:
    assert set(SCENARIOS) >= REQUIRED
    assert set(REPAIRS) == set(SCENARIOS), "every scenario needs a manual repair in this test"
    for s in SCENARIOS.values():
        assert {"step", "root_cause", "fix", "entry"} <= set(s.expected)
        assert s.expected["fix"] in FIX_IDS
        assert s.source_kind in ("msk", "self-managed")
    assert sum(s.source_kind == "self-managed" for s in SCENARIOS.values()) >= 2


def test_expected_ids_exist_in_the_catalogue() -> None:
    from esm_medic.catalogue import get_catalogue

    cat = get_catalogue()
    for s in SCENARIOS.values():
        entry = cat[s.expected["entry"]]
        assert entry.step == s.expected["step"], s.name
        if s.expected["root_cause"] is not None:
            assert s.expected["root_cause"] in {rc.id for rc in entry.root_causes}, s.name
            fix = entry.fix_for(s.expected["root_cause"])
            actions = {f.action for f in entry.fixes}
            assert s.expected["fix"] == (fix.action if fix is not None else "ticket") or s.expected["fix"] in actions


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_reports_its_error_then_recovers(aws: Aws, name: str) -> None:
    scenario = SCENARIOS[name]
    result = scenario.build(aws, prefix="t-")
    assert result.uuid and result.function_name and result.role_name and result.vpc_id
    assert len(result.subnet_ids) == 3
    assert result.expected == scenario.expected

    item = _status(aws, result.uuid)
    c = classify(item)
    assert c.entry == scenario.expected["entry"], (item.get("LastProcessingResult"), item.get("StateTransitionReason"))
    assert c.step == scenario.expected["step"]
    tr = simulator.trace(item)
    if scenario.expected["step"] == "none":
        assert item["State"] == "Enabled"
        assert item["LastProcessingResult"] == "OK"
        assert tr["failed_step"] == "none"
    else:
        assert tr["failed_step"] == scenario.expected["step"]
        assert tr["cause"] == scenario.expected["root_cause"]
        assert item["LastProcessingResult"] != "OK"

    REPAIRS[name](aws, result)
    healed = _bounce(aws, result.uuid)
    assert healed["State"] == "Enabled", healed
    assert healed["LastProcessingResult"] == "OK", simulator.trace(healed)
    assert classify(healed).healthy


def test_scenarios_can_be_built_twice_side_by_side(aws: Aws) -> None:
    a = SCENARIOS["missing-sg-self-rule"].build(aws, prefix="twice-")
    b = SCENARIOS["missing-sg-self-rule"].build(aws, prefix="twice-")
    assert a.uuid != b.uuid and a.role_name != b.role_name and a.cluster_arn != b.cluster_arn
    # repairing one does not repair the other
    _self_rule(9098)(aws, a)
    assert _status(aws, a.uuid)["LastProcessingResult"] == "OK"
    assert "Connection error" in _status(aws, b.uuid)["LastProcessingResult"]


def test_missing_secretsmanager_endpoint_names_only_that_service(aws: Aws) -> None:
    r = SCENARIOS["missing-secretsmanager-endpoint"].build(aws)
    tr = simulator.trace(_status(aws, r.uuid))
    failing = [d for d in tr["decisions"] if d["ok"] is False]
    assert failing[-1]["evidence"]["service"] == "secretsmanager"
    assert r.expected["fix_params"] == {"services": ["secretsmanager"]}


def test_breaking_a_healthy_account_breaks_the_esm(aws: Aws) -> None:
    r = SCENARIOS["healthy"].build(aws)
    assert _status(aws, r.uuid)["LastProcessingResult"] == "OK"
    sg = r.security_group_ids[0]
    aws.client("ec2").revoke_security_group_ingress(
        GroupId=sg,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 9098, "ToPort": 9098, "UserIdGroupPairs": [{"GroupId": sg}]}],
    )
    item = _status(aws, r.uuid)  # no update needed: the status follows the account on the next read
    assert classify(item).entry == "connection-broker-unreachable"


def test_fleet(aws: Aws) -> None:
    fleet = scenarios.build_fleet(aws, clusters=3, esms=30, broken_ratio=0.4, prefix="f-")
    assert len(fleet) == 30 and len(set(fleet)) == 30
    assert len(fleet.broken) == 12
    assert len(fleet.cluster_arns) == 3 and len(fleet.function_names) == 4
    statuses = simulator.evaluate_all()
    for uuid in fleet:
        entry = classify(statuses[uuid]["LastProcessingResult"]).entry
        assert entry == fleet.expected[uuid]["entry"], uuid
    kinds = {fleet.expected[u]["entry"] for u in fleet.broken}
    assert kinds == {"connection-broker-unreachable", "cluster-authorization-failed"}


def test_fleet_rejects_bad_arguments(aws: Aws) -> None:
    with pytest.raises(ValueError):
        scenarios.build_fleet(aws, clusters=0)
    with pytest.raises(ValueError):
        scenarios.build_fleet(aws, broken_ratio=1.5)


def test_cli_list(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    scenarios.cli_register(parser)
    assert scenarios.cli_run(parser.parse_args(["--list", "--json"])) == 0
    listing = json.loads(capsys.readouterr().out)
    assert {s["name"] for s in listing} == set(SCENARIOS)
    assert scenarios.cli_run(parser.parse_args(["--list"])) == 0
    assert "missing-sg-self-rule" in capsys.readouterr().out


def test_cli_refuses_unknown_names_and_remote_endpoints(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    scenarios.cli_register(parser)
    assert scenarios.cli_run(parser.parse_args(["nope", "--endpoint-url", "http://127.0.0.1:1"])) == 2
    assert scenarios.cli_run(parser.parse_args(["healthy", "--endpoint-url", "https://lambda.amazonaws.com"])) == 2
    assert "refusing" in capsys.readouterr().out
    args = parser.parse_args(["healthy"])
    args.endpoint_url = ""
    assert scenarios.cli_run(args) == 2


_SERVER = """
import sys
from esm_medic_sandbox import server, simulator
srv, port = server.serve()
simulator.install()
print(port, flush=True)
sys.stdin.read()
server.stop(srv)
"""


@pytest.mark.slow
def test_cli_builds_against_a_sandbox_server_in_another_process(capsys: pytest.CaptureFixture[str]) -> None:
    """The scenario's broker-side state (DNS in Route 53, SCRAM users in SSM) lives in the account, so a scenario
    built from another process is judged correctly by the server's simulator."""
    import argparse
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().strip())
        endpoint = f"http://127.0.0.1:{port}"
        parser = argparse.ArgumentParser()
        scenarios.cli_register(parser)
        rc = scenarios.cli_run(
            parser.parse_args(["self-managed-missing-sg-rule", "--json", "--endpoint-url", endpoint])
        )
        assert rc == 0
        out = json.loads(capsys.readouterr().out)
        assert classify(out["status"]["LastProcessingResult"]).entry == "connection-broker-unreachable"
        remote = Aws(region="us-east-1", endpoint_url=endpoint, max_attempts=2)
        sg = out["security_group_ids"][0]
        remote.call(
            "ec2",
            "authorize_security_group_ingress",
            GroupId=sg,
            IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": 9096, "ToPort": 9096, "UserIdGroupPairs": [{"GroupId": sg}]}
            ],
        )
        item = remote.call("lambda", "get_event_source_mapping", UUID=out["uuid"])
        assert item["LastProcessingResult"] == "OK", item
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
