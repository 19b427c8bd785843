"""The sandbox's own ESM model (the independent oracle) against the AWS documentation, and against the product.

Each case states the expected answer from the docs (MSK port table, Lambda's broker-type order, the ESM network
identity). The oracle must give it; the product's model must give it too. A failure names which side is wrong, so a
mistake in the product's model cannot be hidden by the simulator agreeing with it.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from esm_medic_sandbox import sim_model as oracle

from esm_medic import esm as product

ARN = "arn:aws:kafka:us-east-1:123456789012:cluster/orders/0f1e2d3c-aaaa-bbbb-cccc-1234567890ab-2"
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:AmazonMSK_x-AbCdEf"


def _cluster(*, iam: bool = False, scram: bool = False, mtls: bool = False, unauth: bool | None = None,
             client_broker: str = "TLS", public: bool = False) -> dict[str, Any]:  # fmt: skip
    auth: dict[str, Any] = {"Sasl": {"Iam": {"Enabled": iam}, "Scram": {"Enabled": scram}}}
    if mtls:
        auth["Tls"] = {
            "CertificateAuthorityArnList": ["arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/x"]
        }
    if unauth is not None:
        auth["Unauthenticated"] = {"Enabled": unauth}
    return {
        "ClusterArn": ARN,
        "ClusterName": "orders",
        "ClusterType": "PROVISIONED",
        "Provisioned": {
            "BrokerNodeGroupInfo": {
                "ClientSubnets": ["subnet-a", "subnet-b"],
                "SecurityGroups": ["sg-cluster"],
                "ConnectivityInfo": {"PublicAccess": {"Type": "SERVICE_PROVIDED_EIPS" if public else "DISABLED"}},
            },
            "ClientAuthentication": auth,
            "EncryptionInfo": {"EncryptionInTransit": {"ClientBroker": client_broker, "InCluster": True}},
        },
    }


def _msk_item(*access: tuple[str, str]) -> dict[str, Any]:
    return {
        "UUID": "11111111-2222-3333-4444-555555555555",
        "EventSourceArn": ARN,
        "FunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:consumer",
        "Topics": ["orders"],
        "SourceAccessConfigurations": [{"Type": t, "URI": u} for t, u in access],
    }


def _self_item(*servers: str) -> dict[str, Any]:
    return {
        "UUID": "99999999-2222-3333-4444-555555555555",
        "FunctionArn": "arn:aws:lambda:eu-west-1:123456789012:function:consumer",
        "SelfManagedEventSource": {"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": list(servers)}},
        "Topics": ["orders"],
    }


def _both(item: dict[str, Any], cluster: dict[str, Any] | None) -> tuple[tuple[int, ...], tuple[int, ...]]:
    view = oracle.EsmView.parse(item)
    mine = oracle.target_ports(view, oracle.broker_type(view, cluster), cluster)
    cfg = product.EsmConfig.from_api(item)
    theirs = product.broker_ports(cfg, product.auth_mode(cfg, cluster), cluster)
    return mine, theirs


PORT_CASES = [
    ("scram-9096", _msk_item(("SASL_SCRAM_512_AUTH", SECRET)), _cluster(scram=True), (9096,)),
    ("iam-9098", _msk_item(), _cluster(iam=True), (9098,)),
    ("tls-9094", _msk_item(), _cluster(unauth=True), (9094,)),
    ("mtls-9094", _msk_item(("CLIENT_CERTIFICATE_TLS_AUTH", SECRET)), _cluster(mtls=True), (9094,)),
    ("plaintext-9092", _msk_item(), _cluster(unauth=True, client_broker="PLAINTEXT"), (9092,)),
    ("default-auth-is-tls", _msk_item(), _cluster(), (9094,)),
    ("iam-beats-tls", _msk_item(), _cluster(iam=True, unauth=True), (9098,)),
    (
        "mtls-secret-beats-scram",
        _msk_item(("SASL_SCRAM_512_AUTH", SECRET), ("CLIENT_CERTIFICATE_TLS_AUTH", SECRET)),
        _cluster(mtls=True, scram=True),
        (9094,),
    ),
    ("public-scram", _msk_item(("SASL_SCRAM_512_AUTH", SECRET)), _cluster(scram=True, public=True), (9096, 9196)),
    ("public-iam", _msk_item(), _cluster(iam=True, public=True), (9098, 9198)),
    ("public-tls", _msk_item(), _cluster(unauth=True, public=True), (9094, 9194)),
    (
        "public-plaintext-has-no-public-port",
        _msk_item(),
        _cluster(unauth=True, client_broker="PLAINTEXT", public=True),
        (9092,),
    ),
    ("self-managed-custom-port", _self_item("k1.example.com:9093", "k2.example.com:9093"), None, (9093,)),
    ("self-managed-two-ports", _self_item("k1.example.com:19092", "k2.example.com:9092"), None, (9092, 19092)),
    ("self-managed-comma-list", _self_item("k1.example.com:9095,k2.example.com:9095"), None, (9095,)),
    ("self-managed-ipv6", _self_item("[fd00::10]:9094"), None, (9094,)),
]


@pytest.mark.parametrize(("name", "item", "cluster", "want"), PORT_CASES, ids=[c[0] for c in PORT_CASES])
def test_broker_ports_match_the_docs(name: str, item: dict[str, Any], cluster: Any, want: tuple[int, ...]) -> None:
    mine, theirs = _both(item, cluster)
    assert mine == want, f"oracle: {name} gives {mine}, the docs say {want}"
    assert theirs == want, f"product: {name} gives {theirs}, the docs (and the oracle) say {want}"


def test_serverless_is_iam_only_on_9098() -> None:
    cluster = {
        "ClusterArn": ARN,
        "ClusterType": "SERVERLESS",
        "Serverless": {"VpcConfigs": [{"SubnetIds": ["subnet-a"], "SecurityGroupIds": ["sg-1"]}]},
    }
    view = oracle.EsmView.parse(_msk_item())
    assert oracle.broker_type(view, cluster) == oracle.MODE_IAM
    assert oracle.listener_offered(oracle.MODE_SCRAM_512, cluster) is False
    mine, theirs = _both(_msk_item(), cluster)
    assert mine == theirs == (9098,)


NETWORK_CASES = [
    ("provisioned", _cluster(iam=True), (("subnet-a", "subnet-b"), ("sg-cluster",))),
    (
        "serverless",
        {
            "Serverless": {
                "VpcConfigs": [
                    {"SubnetIds": ["s1", "s2"], "SecurityGroupIds": ["sg-1"]},
                    {"SubnetIds": ["s3"], "SecurityGroupIds": ["sg-1", "sg-2"]},
                ]
            }
        },
        (("s1", "s2", "s3"), ("sg-1", "sg-2")),
    ),
    (
        "describe-cluster-v1",
        {"BrokerNodeGroupInfo": {"ClientSubnets": ["s1"], "SecurityGroups": ["sg-9"]}},
        (("s1",), ("sg-9",)),
    ),
]


@pytest.mark.parametrize(("name", "cluster", "want"), NETWORK_CASES, ids=[c[0] for c in NETWORK_CASES])
def test_cluster_network_is_the_clusters_not_the_functions(name: str, cluster: dict[str, Any], want: Any) -> None:
    assert oracle.cluster_network(cluster) == want, "oracle"
    assert product.msk_cluster_network(cluster) == want, "product"


def test_listener_needed_by_each_broker_type() -> None:
    scram_only = _cluster(scram=True)
    assert oracle.listener_offered(oracle.MODE_SCRAM_512, scram_only)
    assert not oracle.listener_offered(oracle.MODE_IAM, scram_only)
    assert not oracle.listener_offered(oracle.MODE_TLS, scram_only)  # auth on: no unauthenticated TLS
    mtls_only = _cluster(mtls=True)
    assert oracle.listener_offered(oracle.MODE_MTLS, mtls_only)
    assert not oracle.listener_offered(oracle.MODE_TLS, mtls_only)  # no client certificate: refused
    assert not oracle.listener_offered(oracle.MODE_PLAINTEXT, _cluster(unauth=True))  # TLS-only in transit


def test_iam_resource_arns_from_a_real_shaped_cluster_arn() -> None:
    item = _msk_item()
    item["AmazonManagedKafkaEventSourceConfig"] = {"ConsumerGroupId": "billing"}
    arns = oracle.iam_resource_arns(oracle.EsmView.parse(item))
    cid = "0f1e2d3c-aaaa-bbbb-cccc-1234567890ab-2"
    assert arns["topics"] == [f"arn:aws:kafka:us-east-1:123456789012:topic/orders/{cid}/orders"]
    assert arns["group"] == f"arn:aws:kafka:us-east-1:123456789012:group/orders/{cid}/billing"


def test_the_simulator_imports_no_product_model() -> None:
    """Plumbing (the Aws adapter, table names) may come from the product; the ESM model may not."""
    package = Path(oracle.__file__).parent
    allowed = {"esm_medic.aws", "esm_medic.tables"}
    offenders = []
    for path in [
        *sorted(package.glob("sim*.py")),
        package / "patch_kafka.py",
        package / "patch_lambda.py",
        package / "lambda_kafka_rules.py",
    ]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "esm_medic" and n not in allowed]
    assert not offenders
