"""MSK in the patched moto: ACTIVE clusters, kept auth settings, bootstrap brokers per auth mode, nodes, SCRAM."""

from __future__ import annotations

import ipaddress
import re

import pytest
from botocore.exceptions import ClientError

from esm_medic import esm as esm_model

HOST = re.compile(r"^b-(\d)(-public)?\.(?P<name>[a-z0-9-]+)\.[0-9a-f]{6}\.c2\.kafka\.us-east-1\.amazonaws\.com:(\d+)$")


def _ports(brokers: dict) -> dict[str, set[int]]:
    out = {}
    for key, value in brokers.items():
        if key.startswith("BootstrapBroker"):
            out[key] = {int(h.rsplit(":", 1)[1]) for h in value.split(",")}
    return out


def test_clusters_are_active_after_create_v1_v2_and_serverless(sandbox_aws, msk_stack) -> None:
    stack = msk_stack()
    kafka = sandbox_aws.client("kafka")
    assert kafka.describe_cluster_v2(ClusterArn=stack.cluster_arn)["ClusterInfo"]["State"] == "ACTIVE"
    v1 = kafka.create_cluster(
        ClusterName="legacy",
        KafkaVersion="2.8.1",
        NumberOfBrokerNodes=3,
        BrokerNodeGroupInfo={"InstanceType": "kafka.m5.large", "ClientSubnets": stack.subnet_ids},
    )
    assert v1["State"] == "CREATING"  # the create answer, as in AWS
    assert kafka.describe_cluster(ClusterArn=v1["ClusterArn"])["ClusterInfo"]["State"] == "ACTIVE"
    serverless = kafka.create_cluster_v2(
        ClusterName="srv",
        Serverless={
            "VpcConfigs": [{"SubnetIds": stack.subnet_ids, "SecurityGroupIds": [stack.security_group_id]}],
            "ClientAuthentication": {"Sasl": {"Iam": {"Enabled": True}}},
        },
    )
    assert serverless["State"] == "CREATING"
    info = kafka.describe_cluster_v2(ClusterArn=serverless["ClusterArn"])["ClusterInfo"]
    assert (info["State"], info["ClusterType"]) == ("ACTIVE", "SERVERLESS")
    states = {c["ClusterName"]: c["State"] for c in kafka.list_clusters_v2()["ClusterInfoList"]}
    assert states == {stack.cluster_name: "ACTIVE", "legacy": "ACTIVE", "srv": "ACTIVE"}


def test_create_cluster_v2_keeps_auth_and_encryption(sandbox_aws, msk_stack) -> None:
    stack = msk_stack(auth="scram")
    info = sandbox_aws.call("kafka", "describe_cluster_v2", ClusterArn=stack.cluster_arn)["ClusterInfo"]
    prov = info["Provisioned"]
    assert prov["ClientAuthentication"]["Sasl"]["Scram"] == {"Enabled": True}
    assert prov["EncryptionInfo"]["EncryptionInTransit"]["ClientBroker"] == "TLS"
    assert esm_model.msk_client_authentication(info)["scram"] is True
    assert esm_model.msk_cluster_network(info) == (tuple(stack.subnet_ids), (stack.security_group_id,))


@pytest.mark.parametrize(
    ("auth", "public", "expected"),
    [
        ("iam", False, {"BootstrapBrokerStringSaslIam": {9098}}),
        ("scram", False, {"BootstrapBrokerStringSaslScram": {9096}}),
        ("mtls", False, {"BootstrapBrokerStringTls": {9094}}),
        ("tls", False, {"BootstrapBrokerStringTls": {9094}}),
        ("plaintext", False, {"BootstrapBrokerString": {9092}}),
        (
            "iam",
            True,
            {"BootstrapBrokerStringSaslIam": {9098}, "BootstrapBrokerStringPublicSaslIam": {9198}},
        ),
        (
            "scram",
            True,
            {"BootstrapBrokerStringSaslScram": {9096}, "BootstrapBrokerStringPublicSaslScram": {9196}},
        ),
        ("mtls", True, {"BootstrapBrokerStringTls": {9094}, "BootstrapBrokerStringPublicTls": {9194}}),
    ],
)
def test_bootstrap_brokers_per_auth_mode(sandbox_aws, msk_stack, auth, public, expected) -> None:
    stack = msk_stack(auth=auth, public_access=public)
    kafka = sandbox_aws.client("kafka")
    brokers = kafka.get_bootstrap_brokers(ClusterArn=stack.cluster_arn)
    assert _ports(brokers) == expected
    for key, value in ((k, v) for k, v in brokers.items() if k.startswith("Bootstrap")):
        hosts = value.split(",")
        assert len(hosts) == 3  # one per client subnet
        for host in hosts:
            m = HOST.match(host)
            assert m, host
            assert m.group("name") == stack.cluster_name
            assert bool(m.group(2)) == ("Public" in key)
    # consistent with esm-medic's own port model
    info = kafka.describe_cluster_v2(ClusterArn=stack.cluster_arn)["ClusterInfo"]
    item = {"UUID": "u", "EventSourceArn": stack.cluster_arn}
    if auth == "scram":
        item["SourceAccessConfigurations"] = [{"Type": "SASL_SCRAM_512_AUTH", "URI": "arn:secret"}]
    if auth == "mtls":
        item["SourceAccessConfigurations"] = [{"Type": "CLIENT_CERTIFICATE_TLS_AUTH", "URI": "arn:secret"}]
    cfg = esm_model.EsmConfig.from_api(item)
    mode = esm_model.auth_mode(cfg, info)
    offered = set().union(*_ports(brokers).values())
    assert set(esm_model.broker_ports(cfg, mode, info)) <= offered


def test_tls_plaintext_offers_both_listeners(sandbox_aws, msk_stack) -> None:
    stack = msk_stack(auth="tls")
    kafka = sandbox_aws.client("kafka")
    arn = kafka.create_cluster_v2(
        ClusterName="mixed",
        Provisioned={
            "BrokerNodeGroupInfo": {"InstanceType": "kafka.m5.large", "ClientSubnets": stack.subnet_ids[:2]},
            "KafkaVersion": "3.6.0",
            "NumberOfBrokerNodes": 2,
            "EncryptionInfo": {"EncryptionInTransit": {"ClientBroker": "TLS_PLAINTEXT"}},
        },
    )["ClusterArn"]
    ports = _ports(kafka.get_bootstrap_brokers(ClusterArn=arn))
    assert ports == {"BootstrapBrokerString": {9092}, "BootstrapBrokerStringTls": {9094}}
    assert len(kafka.get_bootstrap_brokers(ClusterArn=arn)["BootstrapBrokerString"].split(",")) == 2


def test_serverless_bootstrap_is_iam_only(sandbox_aws, msk_stack) -> None:
    stack = msk_stack()
    kafka = sandbox_aws.client("kafka")
    arn = kafka.create_cluster_v2(ClusterName="srv", Serverless={"VpcConfigs": [{"SubnetIds": stack.subnet_ids}]})[
        "ClusterArn"
    ]
    brokers = kafka.get_bootstrap_brokers(ClusterArn=arn)
    assert set(_ports(brokers)) == {"BootstrapBrokerStringSaslIam"}
    assert re.match(
        r"^boot-[0-9a-f]{8}\.c2\.kafka-serverless\.us-east-1\.amazonaws\.com:9098$",
        brokers["BootstrapBrokerStringSaslIam"],
    )


def test_unknown_cluster_is_not_found(sandbox_aws) -> None:
    kafka = sandbox_aws.client("kafka")
    arn = "arn:aws:kafka:us-east-1:123456789012:cluster/ghost/00000000-0000-0000-0000-000000000000-1"
    for call in (kafka.describe_cluster_v2, kafka.describe_cluster, kafka.get_bootstrap_brokers, kafka.list_nodes):
        with pytest.raises(ClientError) as err:
            call(ClusterArn=arn)
        assert err.value.response["Error"]["Code"] == "NotFoundException"


def test_list_nodes_spread_over_subnets_with_subnet_ips(sandbox_aws, msk_stack) -> None:
    stack = msk_stack()
    nodes = sandbox_aws.call("kafka", "list_nodes", ClusterArn=stack.cluster_arn)["NodeInfoList"]
    assert len(nodes) == 3
    cidrs = {
        s["SubnetId"]: ipaddress.ip_network(s["CidrBlock"])
        for s in sandbox_aws.call("ec2", "describe_subnets", SubnetIds=stack.subnet_ids)["Subnets"]
    }
    assert [n["BrokerNodeInfo"]["ClientSubnet"] for n in nodes] == stack.subnet_ids
    for n in nodes:
        info = n["BrokerNodeInfo"]
        assert ipaddress.ip_address(info["ClientVpcIpAddress"]) in cidrs[info["ClientSubnet"]]
        assert HOST.match(info["Endpoints"][0] + ":9098")


def test_scram_secret_association(sandbox_aws, msk_stack) -> None:
    stack = msk_stack(auth="scram")
    sm = sandbox_aws.client("secretsmanager")
    good = sm.create_secret(Name="AmazonMSK_orders", SecretString='{"username":"u","password":"p"}')["ARN"]
    bad_name = sm.create_secret(Name="orders-creds", SecretString='{"username":"u","password":"p"}')["ARN"]
    missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:AmazonMSK_missing-AbCdEf"
    kafka = sandbox_aws.client("kafka")
    out = kafka.batch_associate_scram_secret(ClusterArn=stack.cluster_arn, SecretArnList=[good, bad_name, missing])
    codes = {u["SecretArn"]: u["ErrorCode"] for u in out["UnprocessedScramSecrets"]}
    assert codes == {bad_name: "InvalidSecretName", missing: "SecretNotFound"}
    assert kafka.list_scram_secrets(ClusterArn=stack.cluster_arn)["SecretArnList"] == [good]
    again = kafka.batch_associate_scram_secret(ClusterArn=stack.cluster_arn, SecretArnList=[good])  # idempotent
    assert again["UnprocessedScramSecrets"] == []
    assert kafka.list_scram_secrets(ClusterArn=stack.cluster_arn)["SecretArnList"] == [good]
    out = kafka.batch_disassociate_scram_secret(ClusterArn=stack.cluster_arn, SecretArnList=[good, bad_name])
    assert [u["SecretArn"] for u in out["UnprocessedScramSecrets"]] == [bad_name]
    assert kafka.list_scram_secrets(ClusterArn=stack.cluster_arn)["SecretArnList"] == []


def test_scram_association_needs_scram_enabled(sandbox_aws, msk_stack) -> None:
    stack = msk_stack(auth="iam")
    secret = sandbox_aws.call("secretsmanager", "create_secret", Name="AmazonMSK_x", SecretString="{}")["ARN"]
    with pytest.raises(ClientError) as err:
        sandbox_aws.call("kafka", "batch_associate_scram_secret", ClusterArn=stack.cluster_arn, SecretArnList=[secret])
    assert err.value.response["Error"]["Code"] == "BadRequestException"


def test_create_cluster_v2_needs_a_type(sandbox_aws) -> None:
    with pytest.raises(ClientError) as err:
        sandbox_aws.call("kafka", "create_cluster_v2", ClusterName="neither")
    assert err.value.response["Error"]["Code"] == "BadRequestException"
