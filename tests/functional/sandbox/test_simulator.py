"""The sandbox's fake Lambda poller: pure step helpers, then each step against a real (moto) account."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from typing import Any

import pytest
from esm_medic_sandbox import simulator
from esm_medic_sandbox.env import sandbox
from esm_medic_sandbox.scenarios import SCENARIOS, ScenarioResult
from esm_medic_sandbox.simulator import (
    nacl_allows,
    pem_problem,
    resolves,
    sg_allows,
    trust_problem,
)

from esm_medic.aws import Aws

NET = ipaddress.ip_network


def _sg(
    gid: str, ingress: list[dict[str, Any]] | None = None, egress: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    ingress = ingress or []
    if egress is None:
        egress = [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}], "UserIdGroupPairs": []}]
    return {"GroupId": gid, "IpPermissions": ingress, "IpPermissionsEgress": egress}


def _self(gid: str, lo: int, hi: int | None = None, proto: str = "tcp") -> dict[str, Any]:
    return {"IpProtocol": proto, "FromPort": lo, "ToPort": hi or lo, "UserIdGroupPairs": [{"GroupId": gid}]}


# ---------------------------------------------------------------------------------------------- pure helpers
class TestSecurityGroups:
    def test_self_reference_on_the_port(self) -> None:
        sg = _sg("sg-1", [_self("sg-1", 9098)])
        assert sg_allows([sg], egress=False, port=9098, peer_groups={"sg-1"})
        assert not sg_allows([sg], egress=False, port=9096, peer_groups={"sg-1"})
        assert not sg_allows([sg], egress=False, port=9098, peer_groups={"sg-2"})

    def test_port_ranges_and_all_traffic(self) -> None:
        assert sg_allows([_sg("sg-1", [_self("sg-1", 9092, 9098)])], egress=False, port=9096, peer_groups={"sg-1"})
        all_traffic = {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": "sg-1"}]}
        assert sg_allows([_sg("sg-1", [all_traffic])], egress=False, port=9098, peer_groups={"sg-1"})
        udp = _self("sg-1", 9098, proto="udp")
        assert not sg_allows([_sg("sg-1", [udp])], egress=False, port=9098, peer_groups={"sg-1"})

    def test_rule_from_another_group_of_the_eni_counts(self) -> None:
        a = _sg("sg-a", [_self("sg-b", 9098)])
        b = _sg("sg-b")
        assert sg_allows([a, b], egress=False, port=9098, peer_groups={"sg-a", "sg-b"})

    def test_cidr_rules_must_cover_the_peer(self) -> None:
        rule = {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "10.0.0.0/16"}]}
        sg = _sg("sg-1", [rule])
        assert sg_allows([sg], egress=False, port=443, peer_cidrs=[NET("10.0.1.0/24")])
        assert not sg_allows([sg], egress=False, port=443, peer_cidrs=[NET("10.1.1.0/24")])

    def test_egress(self) -> None:
        default = _sg("sg-1")
        assert sg_allows([default], egress=True, port=9098, peer_groups={"sg-1"}, peer_cidrs=[NET("10.0.1.0/24")])
        https_only = _sg(
            "sg-1",
            egress=[{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
        )
        assert sg_allows([https_only], egress=True, port=443, peer_cidrs=[NET("52.94.0.10/32")])
        assert not sg_allows([https_only], egress=True, port=9098, peer_groups={"sg-1"})
        assert not sg_allows([_sg("sg-1", egress=[])], egress=True, port=443, peer_cidrs=[NET("52.94.0.10/32")])


class TestNacl:
    ENTRIES = [
        {
            "RuleNumber": 100,
            "Egress": False,
            "Protocol": "6",
            "RuleAction": "deny",
            "CidrBlock": "0.0.0.0/0",
            "PortRange": {"From": 9098, "To": 9098},
        },
        {"RuleNumber": 200, "Egress": False, "Protocol": "-1", "RuleAction": "allow", "CidrBlock": "0.0.0.0/0"},
        {"RuleNumber": 32767, "Egress": False, "Protocol": "-1", "RuleAction": "deny", "CidrBlock": "0.0.0.0/0"},
        {
            "RuleNumber": 100,
            "Egress": True,
            "Protocol": "6",
            "RuleAction": "allow",
            "CidrBlock": "10.0.0.0/16",
            "PortRange": {"From": 1024, "To": 65535},
        },
        {"RuleNumber": 32767, "Egress": True, "Protocol": "-1", "RuleAction": "deny", "CidrBlock": "0.0.0.0/0"},
    ]

    def test_first_match_wins_by_rule_number(self) -> None:
        nacl = {"Entries": self.ENTRIES}
        assert not nacl_allows(nacl, egress=False, port=9098, peer=NET("10.0.1.0/24"))
        assert nacl_allows(nacl, egress=False, port=9096, peer=NET("10.0.1.0/24"))

    def test_egress_by_port_and_cidr(self) -> None:
        nacl = {"Entries": self.ENTRIES}
        assert nacl_allows(nacl, egress=True, port=49152, peer=NET("10.0.1.0/24"))
        assert not nacl_allows(nacl, egress=True, port=443, peer=NET("10.0.1.0/24"))
        assert not nacl_allows(nacl, egress=True, port=49152, peer=NET("52.94.0.10/32"))

    def test_no_nacl_means_allowed(self) -> None:
        assert nacl_allows(None, egress=True, port=1, peer=NET("10.0.0.0/8"))


class TestTrustAndSecrets:
    def test_trust_policy(self) -> None:
        ok = {
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ]
        }
        assert trust_problem(ok) == ""
        assert trust_problem(json.dumps(ok)) == ""
        ec2 = {
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ]
        }
        assert "does not allow" in trust_problem(ec2)
        src = {
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": ["lambda.amazonaws.com"]},
                    "Action": ["sts:AssumeRole"],
                    "Condition": {"StringEquals": {"sts:SourceIdentity": "x"}},
                }
            ]
        }
        assert "source identity" in trust_problem(src)
        deny = {"Statement": [ok["Statement"][0], {**ok["Statement"][0], "Effect": "Deny"}]}
        assert "denies" in trust_problem(deny)
        assert trust_problem(None)

    def test_pem(self) -> None:
        cert = "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----"
        key = "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----"
        assert pem_problem({"certificate": cert, "privateKey": key}, client=True) == ""
        assert pem_problem({"certificate": cert}, client=False) == ""
        assert pem_problem({"certificate": "MIIB", "privateKey": key}, client=True).startswith("not PEM")
        assert pem_problem({"certificate": cert, "privateKey": "MIIE"}, client=True).startswith("not PEM")
        assert pem_problem(None, client=True).startswith("not PEM")
        rsa = "-----BEGIN RSA PRIVATE KEY-----\nx\n-----END RSA PRIVATE KEY-----"
        assert pem_problem({"certificate": cert, "privateKey": rsa}, client=True).startswith("not PKCS#8")
        enc = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nx\n-----END ENCRYPTED PRIVATE KEY-----"
        assert "privateKeyPassword" in pem_problem({"certificate": cert, "privateKey": enc}, client=True)
        assert pem_problem({"certificate": cert, "privateKey": enc, "privateKeyPassword": "p"}, client=True) == ""


def test_resolution() -> None:
    simulator.reset()
    assert resolves("10.1.2.3") and resolves("b-1.my-cluster.abc123.c2.kafka.us-east-1.amazonaws.com")
    assert not resolves("broker.example.internal")
    gen = simulator.generation()
    simulator.dns_table()["broker.example.internal"] = "10.0.0.5"
    assert simulator.generation() > gen, "editing the DNS table is an account change"
    assert resolves("BROKER.example.internal.")
    assert resolves("b-2.zone.internal", frozenset({"*.zone.internal"}))
    assert not resolves("b-2.other.internal", frozenset({"*.zone.internal"}))
    simulator.reset()
    assert not resolves("broker.example.internal")


def test_mutation_detection() -> None:
    assert simulator._is_mutation("ec2", "AuthorizeSecurityGroupIngress")
    assert simulator._is_mutation("iam", "PutRolePolicy")
    assert simulator._is_mutation("awslambda", "UpdateFunctionConfiguration20150331v2")
    assert simulator._is_mutation("awslambda", "DeleteFunction20150331")
    assert not simulator._is_mutation("ec2", "DescribeSecurityGroups")
    assert not simulator._is_mutation("iam", "SimulatePrincipalPolicy")
    assert not simulator._is_mutation("awslambda", "CreateEventSourceMapping20150331")
    assert not simulator._is_mutation("sqs", "SendMessage")


def test_kafka_resource_arns() -> None:
    item = {
        "UUID": "u-1",
        "EventSourceArn": "arn:aws:kafka:us-east-1:123456789012:cluster/prod/abcd-1",
        "Topics": ["orders"],
    }
    arns = simulator.kafka_resource_arns(item, {"ClusterName": "prod"})
    assert arns["topics"] == ["arn:aws:kafka:us-east-1:123456789012:topic/prod/abcd-1/orders"]
    assert arns["group"] == "arn:aws:kafka:us-east-1:123456789012:group/prod/abcd-1/u-1"
    item["AmazonManagedKafkaEventSourceConfig"] = {"ConsumerGroupId": "my-group"}
    assert simulator.kafka_resource_arns(item, {})["group"].endswith("/abcd-1/my-group")
    # moto's ARNs have no name segment: the name comes from the cluster description
    moto_item = {"UUID": "u", "EventSourceArn": "arn:aws:kafka:us-east-1:1:cluster/abcd-2", "Topics": ["t"]}
    assert simulator.kafka_resource_arns(moto_item, {"ClusterName": "c"})["topics"] == [
        "arn:aws:kafka:us-east-1:1:topic/c/abcd-2/t"
    ]


def test_non_kafka_items_get_no_opinion() -> None:
    assert simulator.evaluate({"UUID": "x", "EventSourceArn": "arn:aws:sqs:us-east-1:1:q"}) == {}
    assert simulator.provider({"UUID": "x", "EventSourceArn": "arn:aws:sqs:us-east-1:1:q"}) is None


# ---------------------------------------------------------------------------------------------- against moto
@pytest.fixture(scope="module")
def aws() -> Iterator[Aws]:
    with sandbox() as a:
        simulator.install()
        yield a


def _item(aws: Aws, uuid: str) -> dict[str, Any]:
    return aws.call("lambda", "get_event_source_mapping", UUID=uuid)


def _failure(aws: Aws, uuid: str) -> tuple[str, str]:
    tr = simulator.trace(_item(aws, uuid))
    return tr["failed_step"], tr["cause"]


def _healthy(aws: Aws) -> ScenarioResult:
    r = SCENARIOS["healthy"].build(aws, prefix="sim-")
    assert _item(aws, r.uuid)["LastProcessingResult"] == "OK"
    return r


def _rule(sg: str, port: int, *, peer_sg: str | None = None, cidr: str | None = None) -> list[dict[str, Any]]:
    perm: dict[str, Any] = {"IpProtocol": "tcp", "FromPort": port, "ToPort": port}
    if peer_sg:
        perm["UserIdGroupPairs"] = [{"GroupId": peer_sg}]
    if cidr:
        perm["IpRanges"] = [{"CidrIp": cidr}]
    return [perm]


def test_evaluate_all_and_trace_shape(aws: Aws) -> None:
    r = _healthy(aws)
    statuses = simulator.evaluate_all()
    assert statuses[r.uuid]["LastProcessingResult"] == "OK"
    tr = simulator.trace(_item(aws, r.uuid))
    assert tr["uuid"] == r.uuid and tr["failed_step"] == "none"
    steps = [d["step"] for d in tr["decisions"]]
    for step in ("role", "sts", "dns", "network", "auth", "authz"):
        assert step in steps
    assert all({"step", "check", "ok", "detail", "evidence"} <= set(d) for d in tr["decisions"])


def test_sg_egress_decides_service_path_and_broker_path(aws: Aws) -> None:
    r = _healthy(aws)
    ec2 = aws.client("ec2")
    sg = r.security_group_ids[0]
    ec2.revoke_security_group_egress(
        GroupId=sg, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    )
    assert _failure(aws, r.uuid) == ("sts", "no-egress-443")
    ec2.authorize_security_group_egress(GroupId=sg, IpPermissions=_rule(sg, 443, cidr="0.0.0.0/0"))
    step, cause = _failure(aws, r.uuid)
    assert (step, cause) == ("network", "no-sg-self-rule")
    checks = [d["check"] for d in simulator.trace(_item(aws, r.uuid))["decisions"] if d["ok"] is False]
    assert checks == ["sg-egress"]
    ec2.authorize_security_group_egress(GroupId=sg, IpPermissions=_rule(sg, 9098, peer_sg=sg))
    assert _failure(aws, r.uuid) == ("none", "")


def test_nat_or_endpoints(aws: Aws) -> None:
    r = _healthy(aws)
    ec2 = aws.client("ec2")
    rtb = r.resources["private_route_table_id"]
    ec2.delete_route(RouteTableId=rtb, DestinationCidrBlock="0.0.0.0/0")
    assert _failure(aws, r.uuid) == ("sts", "no-nat-or-endpoints")

    ep_sg = ec2.create_security_group(GroupName="ep-closed", Description="x", VpcId=r.vpc_id)["GroupId"]
    ids = [
        ec2.create_vpc_endpoint(
            VpcId=r.vpc_id,
            ServiceName=f"com.amazonaws.us-east-1.{svc}",
            VpcEndpointType="Interface",
            SubnetIds=r.subnet_ids[:1],
            SecurityGroupIds=[ep_sg],
            PrivateDnsEnabled=True,
        )["VpcEndpoint"]["VpcEndpointId"]
        for svc in ("sts", "lambda")
    ]
    # endpoints in one AZ only, SG closed: the first subnet is refused by the SG, the others lack an AZ
    assert _failure(aws, r.uuid) == ("sts", "endpoint-sg-blocks-443")
    ec2.authorize_security_group_ingress(
        GroupId=ep_sg, IpPermissions=_rule(ep_sg, 443, peer_sg=r.security_group_ids[0])
    )
    assert _failure(aws, r.uuid) == ("sts", "no-nat-or-endpoints")
    trace = simulator.trace(_item(aws, r.uuid))
    assert "has no subnet in us-east-1b" in trace["decisions"][-1]["detail"]
    for ep in ids:
        ec2.modify_vpc_endpoint(VpcEndpointId=ep, AddSubnetIds=r.subnet_ids[1:])
    assert _failure(aws, r.uuid) == ("none", "")
    paths = next(d for d in simulator.trace(_item(aws, r.uuid))["decisions"] if d["check"] == "service-path")
    assert set(paths["evidence"]["paths"].values()) == {"endpoints"}


def test_deleted_nat_gateway_breaks_the_path(aws: Aws) -> None:
    r = _healthy(aws)
    aws.client("ec2").delete_nat_gateway(NatGatewayId=r.resources["nat_gateway_id"])
    assert _failure(aws, r.uuid) == ("sts", "no-nat-or-endpoints")


def test_provisioned_mode_ignores_the_service_path(aws: Aws) -> None:
    r = SCENARIOS["no-nat-no-endpoints"].build(aws, prefix="sim-")
    assert _failure(aws, r.uuid) == ("sts", "no-nat-or-endpoints")
    aws.call(
        "lambda",
        "update_event_source_mapping",
        UUID=r.uuid,
        ProvisionedPollerConfig={"MinimumPollers": 1, "MaximumPollers": 2},
    )
    item = _item(aws, r.uuid)
    assert item.get("ProvisionedPollerConfig"), "the sandbox must keep ProvisionedPollerConfig on update"
    assert item["LastProcessingResult"] == "OK"
    skipped = [d for d in simulator.trace(item)["decisions"] if d["check"] == "service-path"]
    assert skipped and skipped[0]["ok"] is None


def test_nacl_blocking_the_broker_port(aws: Aws) -> None:
    r = _healthy(aws)
    ec2 = aws.client("ec2")
    acl = ec2.create_network_acl(VpcId=r.vpc_id)["NetworkAcl"]["NetworkAclId"]
    for egress in (False, True):
        ec2.create_network_acl_entry(
            NetworkAclId=acl,
            RuleNumber=50,
            Protocol="6",
            RuleAction="deny",
            Egress=egress,
            CidrBlock="10.40.0.0/16",
            PortRange={"From": 9098, "To": 9098},
        )
        ec2.create_network_acl_entry(
            NetworkAclId=acl, RuleNumber=100, Protocol="-1", RuleAction="allow", Egress=egress, CidrBlock="0.0.0.0/0"
        )
    current = ec2.describe_network_acls(Filters=[{"Name": "association.subnet-id", "Values": r.subnet_ids}])
    assoc = {
        a["SubnetId"]: a["NetworkAclAssociationId"]
        for n in current["NetworkAcls"]
        for a in n["Associations"]
        if a["SubnetId"] in r.subnet_ids
    }
    for sid in r.subnet_ids:
        ec2.replace_network_acl_association(AssociationId=assoc[sid], NetworkAclId=acl)
    assert _failure(aws, r.uuid) == ("network", "nacl-blocks-brokers")


def test_self_managed_dns(aws: Aws) -> None:
    r = SCENARIOS["self-managed-unresolvable-broker"].build(aws, prefix="sim-")
    assert _failure(aws, r.uuid) == ("dns", "typo")
    for server in r.bootstrap_servers:
        simulator.dns_table()[server.rsplit(":", 1)[0]] = "10.40.1.50"
    assert _failure(aws, r.uuid) == ("none", "")
    aws.client("ec2").modify_vpc_attribute(VpcId=r.vpc_id, EnableDnsSupport={"Value": False})
    assert _failure(aws, r.uuid) == ("dns", "vpc-dns-disabled")
    for server in r.bootstrap_servers:
        del simulator.dns_table()[server.rsplit(":", 1)[0]]


def test_scram_credentials(aws: Aws) -> None:
    r = SCENARIOS["self-managed-missing-sg-rule"].build(aws, prefix="sim-")
    sg = r.security_group_ids[0]
    aws.client("ec2").authorize_security_group_ingress(GroupId=sg, IpPermissions=_rule(sg, 9096, peer_sg=sg))
    assert _failure(aws, r.uuid) == ("none", "")
    aws.client("ssm").put_parameter(
        Name=f"{simulator.SCRAM_SSM_PREFIX}{r.resources['scram_username']}",
        Value="rotated",
        Type="SecureString",
        Overwrite=True,
    )
    assert _failure(aws, r.uuid) == ("auth", "wrong-credentials")
    assert _item(aws, r.uuid)["LastProcessingResult"] == simulator.MESSAGES["sasl"]


def test_msk_scram_secret_must_be_associated(aws: Aws) -> None:
    r = SCENARIOS["missing-secretsmanager-endpoint"].build(aws, prefix="sim-")
    assert r.resources["scram"] == "associated"
    aws.client("kafka").batch_disassociate_scram_secret(ClusterArn=r.cluster_arn, SecretArnList=[r.secret_arn])
    ec2 = aws.client("ec2")
    ec2.create_vpc_endpoint(
        VpcId=r.vpc_id,
        ServiceName="com.amazonaws.us-east-1.secretsmanager",
        VpcEndpointType="Interface",
        SubnetIds=r.subnet_ids,
        SecurityGroupIds=[r.resources["endpoint_security_group_id"]],
        PrivateDnsEnabled=True,
    )
    assert _failure(aws, r.uuid) == ("auth", "scram-secret-not-associated")
    aws.client("kafka").batch_associate_scram_secret(ClusterArn=r.cluster_arn, SecretArnList=[r.secret_arn])
    assert _failure(aws, r.uuid) == ("none", "")


def test_secret_and_key_problems_disable_the_esm(aws: Aws) -> None:
    r = SCENARIOS["malformed-secret"].build(aws, prefix="sim-")
    key_id = r.resources["kms_key_arn"].rsplit("/", 1)[-1]
    aws.client("kms").disable_key(KeyId=key_id)
    item = _item(aws, r.uuid)
    assert (item["State"], item["StateTransitionReason"]) == ("Disabled", "EVENT_SOURCE_AUTHZ_ERROR")
    assert "is disabled" in item["LastProcessingResult"]
    aws.client("kms").enable_key(KeyId=key_id)
    aws.client("secretsmanager").delete_secret(SecretId=r.secret_arn, ForceDeleteWithoutRecovery=True)
    assert _failure(aws, r.uuid) == ("secret", "secret-missing")


def test_role_deleted(aws: Aws) -> None:
    r = _healthy(aws)
    iam = aws.client("iam")
    for name in iam.list_role_policies(RoleName=r.role_name)["PolicyNames"]:
        iam.delete_role_policy(RoleName=r.role_name, PolicyName=name)
    iam.delete_role(RoleName=r.role_name)
    item = _item(aws, r.uuid)
    assert item["LastProcessingResult"] == simulator.MESSAGES["role"]
    assert simulator.trace(item)["cause"] == "role-deleted"


def test_disabled_esm_keeps_its_last_result(aws: Aws) -> None:
    r = SCENARIOS["missing-sg-self-rule"].build(aws, prefix="sim-")
    broken = _item(aws, r.uuid)["LastProcessingResult"]
    off = aws.call("lambda", "update_event_source_mapping", UUID=r.uuid, Enabled=False)
    assert off["State"] == "Disabled" and off["StateTransitionReason"] == "USER_INITIATED"
    assert off["LastProcessingResult"] == broken
    assert simulator.trace(off)["failed_step"] == "disabled"


def test_reads_are_cached_until_the_account_changes(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    r = _healthy(aws)
    calls: list[str] = []
    original = simulator._Reader.call

    def counting(self: Any, service: str, op: str, **kw: Any) -> dict[str, Any]:
        calls.append(op)
        return original(self, service, op, **kw)

    monkeypatch.setattr(simulator._Reader, "call", counting)
    _item(aws, r.uuid)
    aws.call("lambda", "list_event_source_mappings", FunctionName=r.function_name)
    assert calls == [], "no account change: status served from the cache"
    gen = simulator.generation()
    aws.client("ec2").describe_security_groups(GroupIds=r.security_group_ids)
    assert simulator.generation() == gen, "reads are not changes"
    sg = r.security_group_ids[0]
    aws.client("ec2").revoke_security_group_ingress(GroupId=sg, IpPermissions=_rule(sg, 9098, peer_sg=sg))
    assert simulator.generation() > gen
    assert _item(aws, r.uuid)["LastProcessingResult"] == simulator.MESSAGES["brokers"]
    assert calls, "an account change forces a re-evaluation"


def test_simulator_errors_never_break_moto(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    r = SCENARIOS["missing-sg-self-rule"].build(aws, prefix="sim-")
    before = _item(aws, r.uuid)

    def boom(self: Any) -> Any:
        raise RuntimeError("simulator bug")

    monkeypatch.setattr(simulator._Walk, "run", boom)
    simulator.invalidate()
    after = _item(aws, r.uuid)  # does not raise
    assert after["LastProcessingResult"] == before["LastProcessingResult"]
    assert simulator.last_status(r.uuid)["LastProcessingResult"] == before["LastProcessingResult"]
