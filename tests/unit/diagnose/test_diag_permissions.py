"""esm_medic.diagnose.permissions: what the execution role needs, on which exact ARNs."""

from __future__ import annotations

from esm_medic.diagnose.permissions import (
    EC2_ENI_ACTIONS,
    grant_statements,
    kafka_arns,
    required_permissions,
)
from esm_medic.esm import IAM, SASL_SCRAM_512, EsmConfig

REGION, ACCOUNT = "us-east-1", "123456789012"
CLUSTER = f"arn:aws:kafka:{REGION}:{ACCOUNT}:cluster/orders/1111-2222"
UUID = "a1b2c3d4-0000-1111-2222-333344445555"
SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:AmazonMSK_x-AbCdEf"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/k-1"


def msk(**extra) -> EsmConfig:
    item = {
        "UUID": UUID,
        "EventSourceArn": CLUSTER,
        "FunctionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:fn",
        "Topics": ["payments"],
        **extra,
    }
    return EsmConfig.from_api(item)


def actions_on(reqs, resource: str) -> set[str]:
    return {r.action for r in reqs if r.resource == resource}


def test_msk_iam_needs_scoped_kafka_cluster_actions():
    esm = msk()
    reqs = required_permissions(esm, mode=IAM, cluster={"ClusterName": "orders"})
    arns = kafka_arns(esm, {"ClusterName": "orders"})
    assert arns["topics"] == [f"arn:aws:kafka:{REGION}:{ACCOUNT}:topic/orders/1111-2222/payments"]
    assert arns["group"] == f"arn:aws:kafka:{REGION}:{ACCOUNT}:group/orders/1111-2222/{UUID}"
    assert actions_on(reqs, CLUSTER) >= {
        "kafka-cluster:Connect",
        "kafka-cluster:DescribeClusterDynamicConfiguration",
        "kafka:DescribeClusterV2",
        "kafka:GetBootstrapBrokers",
    }
    assert actions_on(reqs, arns["topics"][0]) == {"kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"}
    assert actions_on(reqs, arns["group"]) == {"kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"}
    assert actions_on(reqs, "*") == set(EC2_ENI_ACTIONS)
    describe = next(r for r in reqs if r.action == "kafka:DescribeClusterV2")
    assert describe.actions == ("kafka:DescribeClusterV2", "kafka:DescribeCluster")  # either is enough
    connect = next(r for r in reqs if r.action == "kafka-cluster:Connect")
    assert connect.step == "auth" and connect.causes[0] == "iam-missing-connect"


def test_custom_consumer_group_and_moto_style_cluster_arn():
    esm = msk(
        EventSourceArn=f"arn:aws:kafka:{REGION}:{ACCOUNT}:cluster/9999",
        AmazonManagedKafkaEventSourceConfig={"ConsumerGroupId": "billing"},
    )
    arns = kafka_arns(esm, {"ClusterName": "orders"})
    assert arns["group"].endswith(":group/orders/9999/billing")


def test_serverless_needs_describe_v2_only():
    reqs = required_permissions(msk(), mode=IAM, cluster={"Serverless": {"VpcConfigs": []}})
    assert next(r for r in reqs if r.action == "kafka:DescribeClusterV2").actions == ("kafka:DescribeClusterV2",)


def test_scram_needs_secret_and_key_but_no_kafka_cluster():
    esm = msk(SourceAccessConfigurations=[{"Type": "SASL_SCRAM_512_AUTH", "URI": SECRET}])
    reqs = required_permissions(esm, mode=SASL_SCRAM_512, cluster={}, secret_arns=[SECRET], key_arns=[KEY])
    assert actions_on(reqs, SECRET) == {"secretsmanager:GetSecretValue"}
    assert actions_on(reqs, KEY) == {"kms:Decrypt"}
    assert not any(r.action.startswith("kafka-cluster:") for r in reqs)


def test_self_managed_without_vpc_needs_no_eni_actions():
    esm = EsmConfig.from_api(
        {"UUID": UUID, "SelfManagedEventSource": {"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["b1.example.com:9092"]}}}
    )
    assert required_permissions(esm, mode="plaintext", in_vpc=False) == []
    assert actions_on(required_permissions(esm, mode="plaintext", in_vpc=True), "*") == set(EC2_ENI_ACTIONS)


def test_on_failure_destinations():
    sqs = f"arn:aws:sqs:{REGION}:{ACCOUNT}:dlq"
    reqs = required_permissions(msk(DestinationConfig={"OnFailure": {"Destination": sqs}}), mode=IAM, cluster={})
    assert actions_on(reqs, sqs) == {"sqs:SendMessage"}
    s3 = "arn:aws:s3:::failures"
    reqs = required_permissions(msk(DestinationConfig={"OnFailure": {"Destination": s3}}), mode=IAM, cluster={})
    assert actions_on(reqs, "arn:aws:s3:::failures/*") == {"s3:PutObject"}
    assert actions_on(reqs, s3) == {"s3:ListBucket"}


def test_grant_statements_group_by_resources_and_keep_scope():
    esm = msk()
    reqs = required_permissions(esm, mode=IAM, cluster={"ClusterName": "orders"}, secret_arns=[SECRET])
    statements = grant_statements(reqs)
    for st in statements:
        if any(a.startswith(("kafka-cluster:", "secretsmanager:", "kms:")) for a in st["actions"]):
            assert "*" not in st["resources"]
    ec2 = next(st for st in statements if "ec2:CreateNetworkInterface" in st["actions"])
    assert ec2["resources"] == ["*"] and set(ec2["actions"]) == set(EC2_ENI_ACTIONS)
    granted = {a for st in statements for a in st["actions"]}
    assert "kafka:DescribeCluster" not in granted  # alternatives: only the first is granted
