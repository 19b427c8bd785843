"""Network paths beyond the stock scenarios: the account is changed by hand, the simulator re-derives the ESM's
status, and the diagnosis must find what changed."""

from __future__ import annotations

from typing import Any

from diag_helpers import sandbox_resolver
from esm_medic_sandbox import scenarios

from esm_medic.diagnose import diagnose


def _finding(d, check):
    return next(f for f in d.findings if f.check == check)


def _ec2(aws: Any, op: str, **kw: Any) -> dict[str, Any]:
    return aws.call("ec2", op, **kw)


def test_endpoint_security_group_blocks_443(fresh_aws):
    r = scenarios.build(fresh_aws, "no-nat-no-endpoints", prefix="ep-")
    sg = _ec2(fresh_aws, "create_security_group", GroupName="closed", Description="admits nothing", VpcId=r.vpc_id)
    for svc in ("sts", "lambda"):
        _ec2(
            fresh_aws,
            "create_vpc_endpoint",
            VpcId=r.vpc_id,
            ServiceName=f"com.amazonaws.us-east-1.{svc}",
            VpcEndpointType="Interface",
            SubnetIds=r.subnet_ids,
            SecurityGroupIds=[sg["GroupId"]],
            PrivateDnsEnabled=True,
        )
    d = diagnose(fresh_aws, r.uuid, resolver=sandbox_resolver)
    assert d.classification["entry"] == "connection-vpc-services"
    assert (d.root_cause.id, d.root_cause.fix) == ("endpoint-sg-blocks-443", "ticket")
    eps = _finding(d, "vpc-endpoints")
    assert eps.status == "fail" and eps.evidence["missing"] == []
    assert not any(e["admits_443_from_enis"] for e in eps.evidence["endpoints"]["sts"])


def test_public_subnet_with_only_an_internet_gateway(fresh_aws):
    r = scenarios.build(fresh_aws, "no-nat-no-endpoints", prefix="igw-")
    igw = _ec2(fresh_aws, "create_internet_gateway")["InternetGateway"]["InternetGatewayId"]
    _ec2(fresh_aws, "attach_internet_gateway", InternetGatewayId=igw, VpcId=r.vpc_id)
    tables = _ec2(
        fresh_aws, "describe_route_tables", Filters=[{"Name": "association.subnet-id", "Values": r.subnet_ids}]
    )
    for rt in tables["RouteTables"]:
        _ec2(
            fresh_aws, "create_route", RouteTableId=rt["RouteTableId"], DestinationCidrBlock="0.0.0.0/0", GatewayId=igw
        )
    d = diagnose(fresh_aws, r.uuid, resolver=sandbox_resolver)
    path = _finding(d, "service-path")
    assert path.status == "fail"
    assert "internet gateway is not enough" in path.summary
    assert (d.root_cause.id, d.root_cause.fix) == ("no-nat-or-endpoints", "create-vpc-endpoints")


def test_nacl_blocking_the_broker_port(fresh_aws):
    r = scenarios.build(fresh_aws, "healthy", prefix="nacl-")
    acl = _ec2(fresh_aws, "create_network_acl", VpcId=r.vpc_id)["NetworkAcl"]["NetworkAclId"]
    for egress in (False, True):
        _ec2(
            fresh_aws,
            "create_network_acl_entry",
            NetworkAclId=acl,
            RuleNumber=50,
            Protocol="6",
            RuleAction="deny",
            Egress=egress,
            CidrBlock="0.0.0.0/0",
            PortRange={"From": 9098, "To": 9098},
        )
        _ec2(
            fresh_aws,
            "create_network_acl_entry",
            NetworkAclId=acl,
            RuleNumber=100,
            Protocol="-1",
            RuleAction="allow",
            Egress=egress,
            CidrBlock="0.0.0.0/0",
        )
    current = _ec2(fresh_aws, "describe_network_acls", Filters=[{"Name": "vpc-id", "Values": [r.vpc_id]}])
    for n in current["NetworkAcls"]:
        for a in n.get("Associations") or []:
            if a.get("SubnetId") in r.subnet_ids:
                _ec2(
                    fresh_aws,
                    "replace_network_acl_association",
                    AssociationId=a["NetworkAclAssociationId"],
                    NetworkAclId=acl,
                )
    d = diagnose(fresh_aws, r.uuid, resolver=sandbox_resolver)
    assert d.classification["entry"] == "connection-broker-unreachable"
    nacl = _finding(d, "nacl")
    assert nacl.status == "fail" and "9098" in nacl.summary
    assert (d.root_cause.id, d.root_cause.fix, d.step) == ("nacl-blocks-brokers", "ticket", "network")


def test_no_outbound_https_on_the_nat_path(fresh_aws):
    r = scenarios.build(fresh_aws, "healthy", prefix="egress-")
    sg = r.security_group_ids[0]
    _ec2(
        fresh_aws,
        "revoke_security_group_egress",
        GroupId=sg,
        IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
    )
    _ec2(
        fresh_aws,
        "authorize_security_group_egress",
        GroupId=sg,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 9098, "ToPort": 9098, "UserIdGroupPairs": [{"GroupId": sg}]}],
    )
    d = diagnose(fresh_aws, r.uuid, resolver=sandbox_resolver)
    assert d.classification["entry"] == "connection-vpc-services"
    assert _finding(d, "sg-egress-https").status == "fail"
    assert _finding(d, "sg-self-outbound").status == "pass"  # the self egress rule carries the broker port
    assert (d.root_cause.id, d.root_cause.fix) == ("no-egress-443", "ticket")


def test_deleted_cluster(fresh_aws):
    r = scenarios.build(fresh_aws, "healthy", prefix="gone-")
    fresh_aws.call("kafka", "delete_cluster", ClusterArn=r.cluster_arn)
    d = diagnose(fresh_aws, r.uuid, resolver=sandbox_resolver)
    state = _finding(d, "cluster-state")
    assert state.status == "fail" and "does not exist" in state.summary
    assert _finding(d, "sg-self-inbound").status == "unknown"
    assert d.root_cause.fix == "ticket"


def test_self_managed_without_vpc_uses_the_internet_path(fresh_aws):
    r = scenarios.build(fresh_aws, "healthy", prefix="inet-")
    uuid = fresh_aws.call(
        "lambda",
        "create_event_source_mapping",
        FunctionName=r.function_name,
        Topics=["t"],
        StartingPosition="LATEST",
        SelfManagedEventSource={"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["203.0.113.7:9092", "nx.invalid:9092"]}},
    )["UUID"]
    d = diagnose(fresh_aws, uuid, resolver=sandbox_resolver)
    assert d.network is not None and d.network.source == "internet"
    assert d.network.ports == [9092]
    for check in ("sg-self-inbound", "service-path", "nacl", "vpc-dns"):
        assert _finding(d, check).status == "skip"
    dns = _finding(d, "broker-dns")
    assert dns.status == "fail" and "nx.invalid" in dns.summary
