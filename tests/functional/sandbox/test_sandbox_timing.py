"""The sandbox behaves like AWS in time: transitional states that last ``timing.delay()`` seconds, and what the
product's wait / retry / restart code does against them.

Every test turns the delays on itself (the suite default is instant) with a short window, then waits it out.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from esm_medic_sandbox import timing

WINDOW = 0.4


@pytest.fixture
def slow() -> Iterator[float]:
    with timing.delays(WINDOW) as seconds:
        yield seconds


def _wait_out(seconds: float = WINDOW) -> None:
    time.sleep(seconds * (1 + timing.ENI_LINGER_FACTOR) + 0.1)


def _code(exc: BaseException) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _state(aws: Any, uuid: str) -> str:
    return str(aws.call("lambda", "get_event_source_mapping", UUID=uuid)["State"])


# ---------------------------------------------------------------------------------------------- the knob
def test_knob_environment_override_and_clamp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(timing.ENV_VAR, "2.5")
    assert timing.delay() == 2.5
    monkeypatch.setenv(timing.ENV_VAR, "not-a-number")
    assert timing.delay() == timing.DEFAULT_DELAY_SECONDS
    monkeypatch.setenv(timing.ENV_VAR, "-3")
    assert timing.delay() == 0.0
    monkeypatch.delenv(timing.ENV_VAR)
    assert timing.delay() == timing.DEFAULT_DELAY_SECONDS
    with timing.delays(0):
        assert timing.delay() == 0.0
        assert timing.Window.start("Creating") is None
    assert timing.delay() == timing.DEFAULT_DELAY_SECONDS


def test_suite_default_is_instant(msk_stack: Any, sandbox_aws: Any) -> None:
    esm = msk_stack().create_esm(sandbox_aws)
    assert esm["State"] == "Enabled"


# ---------------------------------------------------------------------------------------------- ESMs
def test_esm_creating_then_enabled_and_busy_while_creating(slow: float, msk_stack: Any, sandbox_aws: Any) -> None:
    esm = msk_stack().create_esm(sandbox_aws)
    uuid = esm["UUID"]
    assert esm["State"] == "Creating"
    assert _state(sandbox_aws, uuid) == "Creating"
    with pytest.raises(ClientError) as err:
        sandbox_aws.call("lambda", "update_event_source_mapping", UUID=uuid, BatchSize=50)
    assert _code(err.value) == "ResourceInUseException"
    _wait_out()
    assert _state(sandbox_aws, uuid) == "Enabled"


def test_esm_disabling_enabling_updating(slow: float, msk_stack: Any, sandbox_aws: Any) -> None:
    uuid = msk_stack().create_esm(sandbox_aws)["UUID"]
    _wait_out()
    seen = sandbox_aws.call("lambda", "update_event_source_mapping", UUID=uuid, Enabled=False)["State"]
    assert seen == "Disabling"
    _wait_out()
    assert _state(sandbox_aws, uuid) == "Disabled"
    assert sandbox_aws.call("lambda", "update_event_source_mapping", UUID=uuid, Enabled=True)["State"] == "Enabling"
    _wait_out()
    assert _state(sandbox_aws, uuid) == "Enabled"
    assert sandbox_aws.call("lambda", "update_event_source_mapping", UUID=uuid, BatchSize=20)["State"] == "Updating"
    _wait_out()
    assert _state(sandbox_aws, uuid) == "Enabled"
    assert sandbox_aws.call("lambda", "delete_event_source_mapping", UUID=uuid)["State"] == "Deleting"


def test_product_restart_waits_through_updating(slow: float, msk_stack: Any, sandbox_aws: Any) -> None:
    from esm_medic.config import Settings
    from esm_medic.remediate.engine import restart_esm

    uuid = msk_stack().create_esm(sandbox_aws)["UUID"]
    _wait_out()
    sandbox_aws.call("lambda", "update_event_source_mapping", UUID=uuid, BatchSize=20)  # now Updating
    out = restart_esm(sandbox_aws, uuid, settings=Settings(poll_seconds=0.1, restart_timeout_seconds=10))
    assert out["restarted"], out
    assert out["initial_state"] == "Updating"
    assert "Disabling" in out["states"] and out["states"][-1] == "Disabled"
    assert out["final_state"] == "Enabling"
    _wait_out()
    assert _state(sandbox_aws, uuid) == "Enabled"


def test_sqs_esm_says_user_initiated(sandbox_aws: Any, msk_stack: Any) -> None:
    stack = msk_stack()
    q = sandbox_aws.call("sqs", "create_queue", QueueName="timing-q")["QueueUrl"]
    arn = sandbox_aws.call("sqs", "get_queue_attributes", QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"]
    esm = sandbox_aws.call(
        "lambda", "create_event_source_mapping", EventSourceArn=arn["QueueArn"], FunctionName=stack.function_name
    )
    assert esm["StateTransitionReason"] == "USER_INITIATED"


# ---------------------------------------------------------------------------------------------- VPC endpoints
def _endpoint(aws: Any, stack: Any) -> tuple[str, str]:
    sg = aws.call("ec2", "create_security_group", GroupName="vpce", Description="endpoint", VpcId=stack.vpc_id)
    resp = aws.call(
        "ec2",
        "create_vpc_endpoint",
        VpcId=stack.vpc_id,
        ServiceName="com.amazonaws.us-east-1.sts",
        VpcEndpointType="Interface",
        SubnetIds=stack.subnet_ids[:1],
        SecurityGroupIds=[sg["GroupId"]],
        PrivateDnsEnabled=True,
    )
    return resp["VpcEndpoint"]["VpcEndpointId"], sg["GroupId"]


def _endpoint_state(aws: Any, vpce: str) -> str:
    return str(aws.call("ec2", "describe_vpc_endpoints", VpcEndpointIds=[vpce])["VpcEndpoints"][0]["State"])


def test_endpoint_pending_available_deleting_deleted_and_dependency_violation(
    slow: float, msk_stack: Any, sandbox_aws: Any
) -> None:
    vpce, sg = _endpoint(sandbox_aws, msk_stack())
    assert _endpoint_state(sandbox_aws, vpce) == "pending"
    with pytest.raises(ClientError) as err:
        sandbox_aws.call("ec2", "delete_security_group", GroupId=sg)
    assert _code(err.value) == "DependencyViolation"
    assert f"resource {sg} has a dependent object" in str(err.value)
    time.sleep(WINDOW + 0.1)
    assert _endpoint_state(sandbox_aws, vpce) == "available"
    sandbox_aws.call("ec2", "delete_vpc_endpoints", VpcEndpointIds=[vpce])
    assert _endpoint_state(sandbox_aws, vpce) == "deleting"
    time.sleep(WINDOW + 0.05)
    assert _endpoint_state(sandbox_aws, vpce) == "deleted"
    with pytest.raises(ClientError) as err:  # its network interfaces linger a little longer
        sandbox_aws.call("ec2", "delete_security_group", GroupId=sg)
    assert _code(err.value) == "DependencyViolation"
    _wait_out()
    sandbox_aws.call("ec2", "delete_security_group", GroupId=sg)


def test_instant_endpoint_when_the_delay_is_zero(msk_stack: Any, sandbox_aws: Any) -> None:
    vpce, sg = _endpoint(sandbox_aws, msk_stack())
    assert _endpoint_state(sandbox_aws, vpce) == "available"
    sandbox_aws.call("ec2", "delete_vpc_endpoints", VpcEndpointIds=[vpce])
    assert _endpoint_state(sandbox_aws, vpce) == "deleted"
    sandbox_aws.call("ec2", "delete_security_group", GroupId=sg)


def test_rule_descriptions_for_group_references(sandbox_aws: Any, msk_stack: Any) -> None:
    stack = msk_stack()
    sg = stack.security_group_id
    sandbox_aws.call(
        "ec2",
        "authorize_security_group_ingress",
        GroupId=sg,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 9096,
                "ToPort": 9096,
                "UserIdGroupPairs": [{"GroupId": sg, "Description": "brokers from the ESM"}],
            }
        ],
    )
    rules = sandbox_aws.call("ec2", "describe_security_group_rules", Filters=[{"Name": "group-id", "Values": [sg]}])
    mine = [r for r in rules["SecurityGroupRules"] if r.get("FromPort") == 9096]
    assert [r.get("Description") for r in mine] == ["brokers from the ESM"]


# ---------------------------------------------------------------------------------------------- Route 53
def test_route53_change_pending_then_insync(slow: float, sandbox_aws: Any) -> None:
    zone = sandbox_aws.call("route53", "create_hosted_zone", Name="kafka.internal", CallerReference="t1")
    change = sandbox_aws.call(
        "route53",
        "change_resource_record_sets",
        HostedZoneId=zone["HostedZone"]["Id"],
        ChangeBatch={
            "Changes": [
                {
                    "Action": "UPSERT",
                    "ResourceRecordSet": {
                        "Name": "b-1.kafka.internal",
                        "Type": "A",
                        "TTL": 60,
                        "ResourceRecords": [{"Value": "10.0.0.10"}],
                    },
                }
            ]
        },
    )["ChangeInfo"]
    assert change["Status"] == "PENDING"
    assert change["Id"] != zone["ChangeInfo"]["Id"]
    assert sandbox_aws.call("route53", "get_change", Id=change["Id"])["ChangeInfo"]["Status"] == "PENDING"
    _wait_out()
    assert sandbox_aws.call("route53", "get_change", Id=change["Id"])["ChangeInfo"]["Status"] == "INSYNC"
    with pytest.raises(ClientError) as err:
        sandbox_aws.call("route53", "get_change", Id="/change/CNOSUCHCHANGE")
    assert _code(err.value) == "NoSuchChange"


# ---------------------------------------------------------------------------------------------- MSK
def test_cluster_creating_then_active_with_real_shapes(
    slow: float, msk_stack: Any, sandbox_aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the sandbox's clock stands still while the stack is built (a loaded box would otherwise outrun the window)
    clock = [time.monotonic()]
    monkeypatch.setattr(timing, "now", lambda: clock[0])
    stack = msk_stack(name="billing")
    arn = stack.cluster_arn
    assert re.fullmatch(r"arn:aws:kafka:us-east-1:123456789012:cluster/billing/[0-9a-f-]{36}-\d{1,2}", arn), arn
    info = sandbox_aws.call("kafka", "describe_cluster_v2", ClusterArn=arn)["ClusterInfo"]
    assert info["State"] == "CREATING"
    assert info["ActiveOperationArn"].startswith(arn.replace(":cluster/", ":cluster-operation/"))
    clock[0] += slow * (1 + timing.ENI_LINGER_FACTOR) + 0.1
    info = sandbox_aws.call("kafka", "describe_cluster_v2", ClusterArn=arn)["ClusterInfo"]
    assert info["State"] == "ACTIVE"
    assert "ActiveOperationArn" not in info and "StateInfo" not in info
    text = repr(info)
    assert "'string'" not in text and "example.com" not in text
    zk = info["Provisioned"]["ZookeeperConnectString"]
    assert re.fullmatch(r"(z-\d\.billing\.[0-9a-f]+\.c2\.kafka\.us-east-1\.amazonaws\.com:2181,?){3}", zk), zk
    listed = sandbox_aws.call("kafka", "list_clusters")["ClusterInfoList"]
    assert {c["ClusterArn"]: c["State"] for c in listed}[arn] == "ACTIVE"


def test_iam_topic_arn_built_the_real_way(msk_stack: Any, sandbox_aws: Any) -> None:
    from esm_medic_sandbox import simulator

    stack = msk_stack(name="billing")
    esm = stack.create_esm(sandbox_aws)
    arns = simulator.kafka_resource_arns(esm, {})
    cluster_id = stack.cluster_arn.rsplit("/", 1)[-1]
    assert arns["topics"] == [f"arn:aws:kafka:us-east-1:123456789012:topic/billing/{cluster_id}/orders"]


# ---------------------------------------------------------------------------------------------- regions
def test_unknown_region_is_refused_like_aws(sandbox_aws: Any) -> None:
    import boto3

    for service, op in (("lambda", "list_event_source_mappings"), ("ec2", "describe_vpcs"), ("kafka", "list_clusters")):
        client = boto3.client(service, region_name="xx-fake-9")
        with pytest.raises(ClientError) as err:
            getattr(client, op)()
        assert _code(err.value) == "InvalidSignatureException", service
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert "not 'xx-fake-9'" in str(err.value)


# ---------------------------------------------------------------------------------------------- the simulator
def test_simulator_sees_a_window_end_without_an_api_call(slow: float) -> None:
    from esm_medic_sandbox import sim_state

    before = sim_state.generation()
    window = timing.Window.start("pending", "available")
    assert window is not None
    timing.register_deadline(window.until)
    assert sim_state.generation() == before
    _wait_out()
    assert sim_state.generation() > before
