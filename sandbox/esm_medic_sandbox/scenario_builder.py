"""The building blocks of sandbox scenarios: constants of a realistic Kafka ESM set-up, the result record, and
:class:`AccountBuilder`, small composable steps that create resources with ordinary AWS calls."""

from __future__ import annotations

import io
import json
import secrets as _secrets
import uuid as _uuid
import zipfile
from dataclasses import asdict, dataclass, field
from typing import Any

from esm_medic.aws import Aws, is_unsupported

MSK = "msk"
SELF_MANAGED = "self-managed"

IAM_PORT, SCRAM_PORT, TLS_PORT, PLAIN_PORT = 9098, 9096, 9094, 9092
VPC_CIDR = "10.40.0.0/16"
PRIVATE_CIDRS = ("10.40.1.0/24", "10.40.2.0/24", "10.40.3.0/24")
PUBLIC_CIDR = "10.40.100.0/24"
ENDPOINT_SERVICES = ("sts", "lambda", "secretsmanager")
TAG_KEY = "esm-medic:scenario"
TRUST_LAMBDA = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
#: The actions of the AWS managed policy AWSLambdaMSKExecutionRole (no kafka-cluster:*, no secretsmanager:*).
MSK_EXECUTION_ACTIONS = [
    "kafka:DescribeCluster",
    "kafka:DescribeClusterV2",
    "kafka:GetBootstrapBrokers",
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeVpcs",
    "ec2:DeleteNetworkInterface",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
    "logs:CreateLogGroup",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
]
KAFKA_CLUSTER_ACTIONS = [
    "kafka-cluster:Connect",
    "kafka-cluster:DescribeGroup",
    "kafka-cluster:AlterGroup",
    "kafka-cluster:DescribeTopic",
    "kafka-cluster:ReadData",
    "kafka-cluster:DescribeClusterDynamicConfiguration",
]
HANDLER_SOURCE = (
    "def handler(event, context):\n"
    "    records = sum(len(v) for v in (event.get('records') or {}).values())\n"
    "    return {'records': records}\n"
)

_ZIP: bytes | None = None


def _zip() -> bytes:
    global _ZIP
    if _ZIP is None:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("index.py", HANDLER_SOURCE)
        _ZIP = buf.getvalue()
    return _ZIP


def _expected(step: str, root_cause: str | None, fix: str | None, entry: str, **fix_params: Any) -> dict[str, Any]:
    return {"step": step, "root_cause": root_cause, "fix": fix, "entry": entry, "fix_params": fix_params}


HEALTHY = _expected("none", None, None, "healthy-ok")


# ---------------------------------------------------------------------------------------------- results
@dataclass
class ScenarioResult:
    """What a scenario built: ids to find it again, what the diagnosis should say, and notes for people."""

    name: str
    uuid: str
    function_name: str
    role_name: str
    vpc_id: str = ""
    subnet_ids: list[str] = field(default_factory=list)
    security_group_ids: list[str] = field(default_factory=list)
    cluster_arn: str = ""
    bootstrap_servers: list[str] = field(default_factory=list)
    secret_arn: str = ""
    expected: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: everything else the build created: nat_gateway_id, public_subnet_id, endpoint ids, kms key, topic, ...
    resources: dict[str, Any] = field(default_factory=dict)

    @property
    def role_arn(self) -> str:
        return str(self.resources.get("role_arn", ""))

    @property
    def topic(self) -> str:
        return str(self.resources.get("topic", ""))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------- builder
class AccountBuilder:
    """Small, composable steps that build sandbox resources through the adapter (shared by scenarios and fleet)."""

    def __init__(self, aws: Aws, name: str, prefix: str = "") -> None:
        self.aws = aws
        self.name = name
        self.prefix = prefix
        self.token = _secrets.token_hex(3)
        self.region = aws.region
        self._account = ""

    # ------------------------------------------------------------------ naming / basics
    def n(self, kind: str, limit: int = 64) -> str:
        base = f"{self.prefix}{self.name[:24]}-{self.token}-{kind}"
        return base[:limit].rstrip("-")

    @property
    def account(self) -> str:
        if not self._account:
            self._account = self.aws.account_id()
        return self._account

    def tags(self, kind: str) -> list[dict[str, str]]:
        return [{"Key": "Name", "Value": self.n(kind, 255)}, {"Key": TAG_KEY, "Value": self.name}]

    def ec2(self, op: str, **kw: Any) -> dict[str, Any]:
        return self.aws.call("ec2", op, **kw)

    # ------------------------------------------------------------------ network
    def network(self, *, nat: bool, dns_support: bool = True, dns_hostnames: bool = True) -> dict[str, Any]:
        """A VPC with 3 private subnets (a/b/c) on one private route table; with ``nat``, a public subnet, an
        internet gateway, a NAT gateway and a 0.0.0.0/0 route to it from the private route table."""
        vpc_id = self.ec2(
            "create_vpc",
            CidrBlock=VPC_CIDR,
            TagSpecifications=[{"ResourceType": "vpc", "Tags": self.tags("vpc")}],
        )["Vpc"]["VpcId"]
        self.ec2("modify_vpc_attribute", VpcId=vpc_id, EnableDnsSupport={"Value": True})
        self.ec2("modify_vpc_attribute", VpcId=vpc_id, EnableDnsHostnames={"Value": True})
        azs = [f"{self.region}{z}" for z in ("a", "b", "c")]
        subnets = []
        for i, (cidr, az) in enumerate(zip(PRIVATE_CIDRS, azs, strict=True)):
            subnets.append(
                self.ec2(
                    "create_subnet",
                    VpcId=vpc_id,
                    CidrBlock=cidr,
                    AvailabilityZone=az,
                    TagSpecifications=[{"ResourceType": "subnet", "Tags": self.tags(f"private-{i + 1}")}],
                )["Subnet"]["SubnetId"]
            )
        private_rtb = self.ec2(
            "create_route_table",
            VpcId=vpc_id,
            TagSpecifications=[{"ResourceType": "route-table", "Tags": self.tags("private-rt")}],
        )["RouteTable"]["RouteTableId"]
        for sid in subnets:
            self.ec2("associate_route_table", RouteTableId=private_rtb, SubnetId=sid)
        out: dict[str, Any] = {"vpc_id": vpc_id, "subnet_ids": subnets, "private_route_table_id": private_rtb}
        if nat:
            out.update(self.nat(vpc_id, private_rtb, azs[0]))
        if not dns_hostnames:
            self.ec2("modify_vpc_attribute", VpcId=vpc_id, EnableDnsHostnames={"Value": False})
        if not dns_support:
            self.ec2("modify_vpc_attribute", VpcId=vpc_id, EnableDnsSupport={"Value": False})
        return out

    def nat(self, vpc_id: str, private_rtb: str, az: str) -> dict[str, Any]:
        public = self.ec2(
            "create_subnet",
            VpcId=vpc_id,
            CidrBlock=PUBLIC_CIDR,
            AvailabilityZone=az,
            TagSpecifications=[{"ResourceType": "subnet", "Tags": self.tags("public")}],
        )["Subnet"]["SubnetId"]
        igw = self.ec2(
            "create_internet_gateway",
            TagSpecifications=[{"ResourceType": "internet-gateway", "Tags": self.tags("igw")}],
        )["InternetGateway"]["InternetGatewayId"]
        self.ec2("attach_internet_gateway", InternetGatewayId=igw, VpcId=vpc_id)
        public_rtb = self.ec2(
            "create_route_table",
            VpcId=vpc_id,
            TagSpecifications=[{"ResourceType": "route-table", "Tags": self.tags("public-rt")}],
        )["RouteTable"]["RouteTableId"]
        self.ec2("create_route", RouteTableId=public_rtb, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
        self.ec2("associate_route_table", RouteTableId=public_rtb, SubnetId=public)
        eip = self.ec2("allocate_address", Domain="vpc")["AllocationId"]
        nat_id = self.ec2(
            "create_nat_gateway",
            SubnetId=public,
            AllocationId=eip,
            TagSpecifications=[{"ResourceType": "natgateway", "Tags": self.tags("nat")}],
        )["NatGateway"]["NatGatewayId"]
        self.ec2("create_route", RouteTableId=private_rtb, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat_id)
        return {
            "public_subnet_id": public,
            "internet_gateway_id": igw,
            "public_route_table_id": public_rtb,
            "nat_gateway_id": nat_id,
            "eip_allocation_id": eip,
        }

    def security_group(self, vpc_id: str, kind: str, *, self_ports: tuple[int, ...] = ()) -> str:
        """A security group (default egress: all traffic) with self-referencing inbound TCP rules on ``self_ports``."""
        sg = self.ec2(
            "create_security_group",
            GroupName=self.n(kind, 255),
            Description=f"esm-medic sandbox {self.name} {kind}",
            VpcId=vpc_id,
            TagSpecifications=[{"ResourceType": "security-group", "Tags": self.tags(kind)}],
        )["GroupId"]
        for port in self_ports:
            self.ec2(
                "authorize_security_group_ingress",
                GroupId=sg,
                IpPermissions=[
                    {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "UserIdGroupPairs": [{"GroupId": sg}]}
                ],
            )
        return sg

    def endpoints(
        self, vpc_id: str, subnet_ids: list[str], source_sg: str, services: tuple[str, ...]
    ) -> dict[str, Any]:
        """Interface endpoints with private DNS in ``subnet_ids``, behind an SG that admits 443 from ``source_sg``."""
        ep_sg = self.ec2(
            "create_security_group",
            GroupName=self.n("vpce", 255),
            Description=f"esm-medic sandbox {self.name} interface endpoints",
            VpcId=vpc_id,
            TagSpecifications=[{"ResourceType": "security-group", "Tags": self.tags("vpce")}],
        )["GroupId"]
        self.ec2(
            "authorize_security_group_ingress",
            GroupId=ep_sg,
            IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "UserIdGroupPairs": [{"GroupId": source_sg}]}
            ],
        )
        ids: dict[str, str] = {}
        for svc in services:
            ids[svc] = self.ec2(
                "create_vpc_endpoint",
                VpcId=vpc_id,
                ServiceName=f"com.amazonaws.{self.region}.{svc}",
                VpcEndpointType="Interface",
                SubnetIds=subnet_ids,
                SecurityGroupIds=[ep_sg],
                PrivateDnsEnabled=True,
                TagSpecifications=[{"ResourceType": "vpc-endpoint", "Tags": self.tags(f"vpce-{svc}")}],
            )["VpcEndpoint"]["VpcEndpointId"]
        return {"endpoint_security_group_id": ep_sg, "endpoint_ids": ids}

    # ------------------------------------------------------------------ MSK
    def msk_cluster(self, subnet_ids: list[str], sg_ids: list[str], auth: str) -> str:
        """A provisioned MSK cluster (3 brokers) with client auth ``iam`` | ``scram`` | ``mtls`` | ``tls``."""
        client_auth: dict[str, Any] = {"Unauthenticated": {"Enabled": False}}
        if auth == "iam":
            client_auth["Sasl"] = {"Iam": {"Enabled": True}, "Scram": {"Enabled": False}}
        elif auth == "scram":
            client_auth["Sasl"] = {"Iam": {"Enabled": False}, "Scram": {"Enabled": True}}
        elif auth == "mtls":
            ca = f"arn:aws:acm-pca:{self.region}:{self.account}:certificate-authority/{_uuid.uuid4()}"
            client_auth["Tls"] = {"Enabled": True, "CertificateAuthorityArnList": [ca]}
        else:  # unauthenticated TLS
            client_auth = {"Unauthenticated": {"Enabled": True}}
        resp = self.aws.call(
            "kafka",
            "create_cluster_v2",
            ClusterName=self.n("msk"),
            Tags={TAG_KEY: self.name},
            Provisioned={
                "BrokerNodeGroupInfo": {
                    "ClientSubnets": subnet_ids,
                    "SecurityGroups": sg_ids,
                    "InstanceType": "kafka.m5.large",
                    "StorageInfo": {"EbsStorageInfo": {"VolumeSize": 100}},
                },
                "KafkaVersion": "3.6.0",
                "NumberOfBrokerNodes": 3,
                "ClientAuthentication": client_auth,
                "EncryptionInfo": {"EncryptionInTransit": {"ClientBroker": "TLS", "InCluster": True}},
            },
        )
        return str(resp["ClusterArn"])

    def cluster_ids(self, cluster_arn: str) -> tuple[str, str]:
        """(cluster name, cluster uuid) as IAM resource ARNs use them."""
        info = self.aws.call("kafka", "describe_cluster_v2", ClusterArn=cluster_arn)["ClusterInfo"]
        return str(info["ClusterName"]), cluster_arn.rsplit("/", 1)[-1]

    def kafka_arns(self, cluster_arn: str) -> dict[str, str]:
        name, cid = self.cluster_ids(cluster_arn)
        base = f"arn:aws:kafka:{self.region}:{self.account}"
        return {
            "cluster": cluster_arn,
            "topics": f"{base}:topic/{name}/{cid}/*",
            "groups": f"{base}:group/{name}/{cid}/*",
        }

    def associate_scram(self, cluster_arn: str, secret_arn: str, username: str, password: str) -> str:
        """Make the brokers know the credential: associate the secret (if the sandbox implements it), else
        register the user in the simulator's SCRAM table. Returns how it was done."""
        try:
            resp = self.aws.call(
                "kafka", "batch_associate_scram_secret", ClusterArn=cluster_arn, SecretArnList=[secret_arn]
            )
            if not resp.get("UnprocessedScramSecrets"):
                return "associated"
        except Exception as exc:
            if not is_unsupported(exc):
                raise
        self.kafka_user(username, password)
        return "registered"

    def kafka_user(self, username: str, password: str) -> None:
        """Tell the sandbox brokers about a SCRAM / PLAIN user (an SSM SecureString the simulator reads)."""
        from esm_medic_sandbox.simulator import SCRAM_SSM_PREFIX

        self.aws.call(
            "ssm",
            "put_parameter",
            Name=f"{SCRAM_SSM_PREFIX}{username}",
            Value=password,
            Type="SecureString",
            Overwrite=True,
            Description=f"esm-medic sandbox broker credential ({self.name})",
        )

    def private_zone(self, vpc_id: str, domain: str, records: dict[str, str]) -> str:
        """A Route 53 private hosted zone for ``domain`` associated with ``vpc_id``, with A records."""
        zone_id = self.aws.call(
            "route53",
            "create_hosted_zone",
            Name=domain,
            CallerReference=f"esm-medic-{self.token}-{domain}",
            HostedZoneConfig={"Comment": f"esm-medic sandbox {self.name}", "PrivateZone": True},
            VPC={"VPCRegion": self.region, "VPCId": vpc_id},
        )["HostedZone"]["Id"]
        changes = [
            {
                "Action": "UPSERT",
                "ResourceRecordSet": {"Name": host, "Type": "A", "TTL": 300, "ResourceRecords": [{"Value": ip}]},
            }
            for host, ip in records.items()
        ]
        self.aws.call("route53", "change_resource_record_sets", HostedZoneId=zone_id, ChangeBatch={"Changes": changes})
        return str(zone_id).rsplit("/", 1)[-1]

    # ------------------------------------------------------------------ secrets
    def kms_key(self) -> str:
        meta = self.aws.call(
            "kms",
            "create_key",
            Description=f"esm-medic sandbox {self.name} secret key",
            Tags=[{"TagKey": TAG_KEY, "TagValue": self.name}],
        )["KeyMetadata"]
        return str(meta["Arn"])

    def secret(self, value: dict[str, Any] | str, *, msk: bool, key_arn: str) -> str:
        name = f"AmazonMSK_{self.n('secret', 200)}" if msk else self.n("secret", 200)
        text = value if isinstance(value, str) else json.dumps(value)
        resp = self.aws.call(
            "secretsmanager",
            "create_secret",
            Name=name,
            SecretString=text,
            KmsKeyId=key_arn,
            Tags=[{"Key": TAG_KEY, "Value": self.name}],
        )
        return str(resp["ARN"])

    # ------------------------------------------------------------------ IAM / Lambda
    def role(self, statements: list[dict[str, Any]], *, trust: dict[str, Any] | None = None) -> tuple[str, str]:
        """An execution role with one inline policy holding ``statements``. Returns (name, arn)."""
        name = self.n("role")
        arn = self.aws.call(
            "iam",
            "create_role",
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(trust or TRUST_LAMBDA),
            Description=f"esm-medic sandbox {self.name}",
            Tags=[{"Key": TAG_KEY, "Value": self.name}],
        )["Role"]["Arn"]
        self.aws.call(
            "iam",
            "put_role_policy",
            RoleName=name,
            PolicyName="esm-execution",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}),
        )
        return name, str(arn)

    def function(self, role_arn: str, kind: str = "fn") -> tuple[str, str]:
        name = self.n(kind)
        resp = self.aws.call(
            "lambda",
            "create_function",
            FunctionName=name,
            Runtime="python3.12",
            Role=role_arn,
            Handler="index.handler",
            Code={"ZipFile": _zip()},
            Timeout=60,
            Tags={TAG_KEY: self.name},
        )
        return name, str(resp["FunctionArn"])

    def esm(self, function_name: str, topic: str, **source: Any) -> str:
        resp = self.aws.call(
            "lambda",
            "create_event_source_mapping",
            FunctionName=function_name,
            Topics=[topic],
            StartingPosition="LATEST",
            BatchSize=100,
            **source,
        )
        return str(resp["UUID"])


# ---------------------------------------------------------------------------------------------- policies


def _exec_statement() -> dict[str, Any]:
    return {"Sid": "MSKExecutionRoleLike", "Effect": "Allow", "Action": MSK_EXECUTION_ACTIONS, "Resource": "*"}


def _kafka_statement(arns: dict[str, str], actions: list[str] | None = None) -> dict[str, Any]:
    return {
        "Sid": "KafkaClusterData",
        "Effect": "Allow",
        "Action": actions or KAFKA_CLUSTER_ACTIONS,
        "Resource": [arns["cluster"], arns["topics"], arns["groups"]],
    }


def _secret_statements(secret_arn: str, key_arn: str) -> list[dict[str, Any]]:
    return [
        {
            "Sid": "ReadKafkaSecret",
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": secret_arn,
        },
        {"Sid": "DecryptKafkaSecret", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": key_arn},
    ]
