"""Ready-made broken (and healthy) sandbox accounts: one realistic Kafka ESM set-up per scenario.

Each scenario builds the whole chain with ordinary AWS calls through :class:`esm_medic.aws.Aws`: a VPC with three
private subnets in three AZs (plus a public subnet, internet gateway and NAT gateway when the scenario has NAT),
route tables, security groups, an MSK cluster (``CreateClusterV2``, provisioned, with the scenario's client
authentication) or self-managed bootstrap servers, a KMS key and secret when SASL is used (``AmazonMSK_`` prefix
for MSK SCRAM, associated with the cluster), an execution role trusted by Lambda with the scenario's policies, the
function and the event source mapping. Nothing writes the error text into the ESM: the sandbox simulator
(:mod:`esm_medic_sandbox.simulator`) derives the status from the account, so repairing the account makes the ESM
recover.

Every build gets a random token in its resource names, so a scenario can be built many times in one account and
several scenarios can live side by side; ``prefix`` groups names (e.g. per test or per demo run).

Public API: :data:`SCENARIOS`, :class:`Scenario`, :class:`ScenarioResult`, :func:`get`, :func:`names`,
:func:`build`, :func:`build_fleet` / :class:`FleetResult`, and the CLI hooks :func:`cli_register` /
:func:`cli_run` used by ``esm-medic sandbox scenario``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import secrets as _secrets
import uuid as _uuid
import zipfile
from collections.abc import Callable, Iterator
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


# ---------------------------------------------------------------------------------------------- recipes
@dataclass
class _Spec:
    """What an MSK recipe varies."""

    auth: str = "iam"  # iam | scram | mtls
    nat: bool = True
    endpoints: tuple[str, ...] = ()
    self_ports: tuple[int, ...] | None = None  # None: the right port for the auth mode
    kafka_actions: list[str] | None = None  # None: all six; []: none
    secret_value: dict[str, Any] | str | None = None  # None: a correct secret for the auth mode
    secret_permissions: bool = True
    provisioned: bool = False
    dns_off: bool = False
    trust: dict[str, Any] | None = None


_PORT_FOR = {"iam": IAM_PORT, "scram": SCRAM_PORT, "mtls": TLS_PORT, "tls": TLS_PORT}
_PEM_CERT = "-----BEGIN CERTIFICATE-----\nMIIBsandboxcertificate\n-----END CERTIFICATE-----\n"
_PEM_KEY = "-----BEGIN PRIVATE KEY-----\nMIIEsandboxprivatekey\n-----END PRIVATE KEY-----\n"


def _build_msk(b: AccountBuilder, spec: _Spec) -> ScenarioResult:
    net = b.network(nat=spec.nat)
    vpc_id, subnets = net["vpc_id"], net["subnet_ids"]
    ports = spec.self_ports if spec.self_ports is not None else (_PORT_FOR[spec.auth],)
    sg = b.security_group(vpc_id, "msk", self_ports=ports)
    resources: dict[str, Any] = dict(net)
    if spec.endpoints:
        resources.update(b.endpoints(vpc_id, subnets, sg, spec.endpoints))
    if spec.dns_off:
        b.ec2("modify_vpc_attribute", VpcId=vpc_id, EnableDnsHostnames={"Value": False})
        b.ec2("modify_vpc_attribute", VpcId=vpc_id, EnableDnsSupport={"Value": False})
    cluster_arn = b.msk_cluster(subnets, [sg], spec.auth)
    arns = b.kafka_arns(cluster_arn)
    statements = [_exec_statement()]
    if spec.auth == "iam" and spec.kafka_actions != []:
        statements.append(_kafka_statement(arns, spec.kafka_actions))
    secret_arn = key_arn = ""
    access: list[dict[str, str]] = []
    if spec.auth in ("scram", "mtls"):
        key_arn = b.kms_key()
        username, password = f"esm-{b.token}", _secrets.token_urlsafe(18)
        if spec.auth == "scram":
            value = spec.secret_value if spec.secret_value is not None else {"username": username, "password": password}
            sac_type = "SASL_SCRAM_512_AUTH"
        else:
            value = (
                spec.secret_value
                if spec.secret_value is not None
                else {"certificate": _PEM_CERT, "privateKey": _PEM_KEY}
            )
            sac_type = "CLIENT_CERTIFICATE_TLS_AUTH"
        secret_arn = b.secret(value, msk=True, key_arn=key_arn)
        if spec.auth == "scram":
            resources["scram"] = b.associate_scram(cluster_arn, secret_arn, username, password)
            resources["scram_username"] = username
        if spec.secret_permissions:
            statements.extend(_secret_statements(secret_arn, key_arn))
        access.append({"Type": sac_type, "URI": secret_arn})
        resources["kms_key_arn"] = key_arn
    role_name, role_arn = b.role(statements, trust=spec.trust)
    fn_name, fn_arn = b.function(role_arn)
    topic = f"orders-{b.token}"
    extra: dict[str, Any] = {"EventSourceArn": cluster_arn}
    if access:
        extra["SourceAccessConfigurations"] = access
    if spec.provisioned:
        extra["ProvisionedPollerConfig"] = {"MinimumPollers": 1, "MaximumPollers": 3}
    uuid = b.esm(fn_name, topic, **extra)
    resources.update(
        role_arn=role_arn,
        function_arn=fn_arn,
        topic=topic,
        cluster_security_group_id=sg,
        kafka_arns=arns,
        auth=spec.auth,
    )
    return ScenarioResult(
        name=b.name,
        uuid=uuid,
        function_name=fn_name,
        role_name=role_name,
        vpc_id=vpc_id,
        subnet_ids=list(subnets),
        security_group_ids=[sg],
        cluster_arn=cluster_arn,
        secret_arn=secret_arn,
        resources=resources,
    )


@dataclass
class _SelfSpec:
    auth: str = "scram"  # scram | plaintext
    self_ports: tuple[int, ...] | None = None
    typo: bool = False


def _build_self_managed(b: AccountBuilder, spec: _SelfSpec) -> ScenarioResult:
    port = SCRAM_PORT if spec.auth == "scram" else PLAIN_PORT
    net = b.network(nat=True)
    vpc_id, subnets = net["vpc_id"], net["subnet_ids"]
    ports = spec.self_ports if spec.self_ports is not None else (port,)
    sg = b.security_group(vpc_id, "kafka", self_ports=ports)
    domain = f"kafka-{b.token}.example.internal"
    hosts = [f"b-{i}.{domain}" for i in (1, 2, 3)]
    zone_id = b.private_zone(vpc_id, domain, {h: f"10.40.{i + 1}.50" for i, h in enumerate(hosts)})
    resources_zone = {"hosted_zone_id": zone_id, "domain": domain}
    # The ESM is given a misspelt domain when the scenario wants a DNS failure (a one-letter typo).
    listed_domain = domain.replace("example", "exmaple") if spec.typo else domain
    servers = [f"b-{i}.{listed_domain}:{port}" for i in (1, 2, 3)]
    resources: dict[str, Any] = {**net, **resources_zone}
    statements = [
        {
            "Sid": "EsmEniAndLogs",
            "Effect": "Allow",
            "Action": [a for a in MSK_EXECUTION_ACTIONS if not a.startswith("kafka:")],
            "Resource": "*",
        }
    ]
    access = [{"Type": "VPC_SUBNET", "URI": f"subnet:{s}"} for s in subnets] + [
        {"Type": "VPC_SECURITY_GROUP", "URI": f"security_group:{sg}"}
    ]
    secret_arn = ""
    if spec.auth == "scram":
        key_arn = b.kms_key()
        username, password = f"esm-{b.token}", _secrets.token_urlsafe(18)
        secret_arn = b.secret({"username": username, "password": password}, msk=False, key_arn=key_arn)
        b.kafka_user(username, password)
        statements.extend(_secret_statements(secret_arn, key_arn))
        access.append({"Type": "SASL_SCRAM_512_AUTH", "URI": secret_arn})
        resources.update(kms_key_arn=key_arn, scram_username=username)
    role_name, role_arn = b.role(statements)
    fn_name, fn_arn = b.function(role_arn)
    topic = f"payments-{b.token}"
    uuid = b.esm(
        fn_name,
        topic,
        SelfManagedEventSource={"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": servers}},
        SourceAccessConfigurations=access,
    )
    resources.update(
        role_arn=role_arn,
        function_arn=fn_arn,
        topic=topic,
        broker_hosts=hosts,
        esm_security_group_id=sg,
        auth=spec.auth,
    )
    return ScenarioResult(
        name=b.name,
        uuid=uuid,
        function_name=fn_name,
        role_name=role_name,
        vpc_id=vpc_id,
        subnet_ids=list(subnets),
        security_group_ids=[sg],
        bootstrap_servers=servers,
        secret_arn=secret_arn,
        resources=resources,
    )


# ---------------------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    description: str
    source_kind: str  # msk | self-managed
    auth_mode: str  # iam | sasl-scram-512 | mtls | plaintext
    expected: dict[str, Any]
    recipe: Callable[[AccountBuilder], ScenarioResult] = field(repr=False, compare=False)
    notes: tuple[str, ...] = ()

    def build(self, aws: Aws, *, prefix: str = "") -> ScenarioResult:
        """Build the account and the ESM; the simulator gives the ESM its status."""
        builder = AccountBuilder(aws, self.name, prefix)
        result = self.recipe(builder)
        result.expected = json.loads(json.dumps(self.expected))
        result.notes = list(self.notes)
        return result

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "source_kind": self.source_kind,
            "auth_mode": self.auth_mode,
            "expected": self.expected,
        }


SCENARIOS: dict[str, Scenario] = {}


def _register(scenario: Scenario) -> None:
    SCENARIOS[scenario.name] = scenario


_register(
    Scenario(
        name="missing-sg-self-rule",
        title="MSK (IAM auth) cluster SG has no self-referencing rule",
        description="NAT present and IAM complete, but the cluster security group (which the ESM's ENIs also use) "
        "admits nothing from itself, so the ENIs cannot open TCP 9098 to the brokers.",
        source_kind=MSK,
        auth_mode="iam",
        expected=_expected(
            "network", "no-sg-self-rule", "add-sg-self-rule", "connection-broker-unreachable", ports=[IAM_PORT]
        ),
        recipe=lambda b: _build_msk(b, _Spec(auth="iam", self_ports=())),
        notes=("Repair: authorize inbound TCP 9098 on the cluster SG from the same SG.",),
    )
)
_register(
    Scenario(
        name="wrong-port-self-rule",
        title="MSK IAM auth, but the self rule opens the TLS port 9094 only",
        description="The cluster uses IAM access control (port 9098) while the cluster SG's self rule opens 9094; "
        "Lambda never falls back to another listener.",
        source_kind=MSK,
        auth_mode="iam",
        expected=_expected(
            "network", "wrong-port-for-auth", "add-sg-self-rule", "connection-broker-unreachable", ports=[IAM_PORT]
        ),
        recipe=lambda b: _build_msk(b, _Spec(auth="iam", self_ports=(TLS_PORT,))),
        notes=("Repair: authorize inbound TCP 9098 on the cluster SG from the same SG.",),
    )
)
_register(
    Scenario(
        name="no-nat-no-endpoints",
        title="On-demand MSK ESM in private subnets with neither NAT nor VPC endpoints",
        description="Brokers are reachable, but the ESM's ENIs (in the cluster's private subnets) have no route to a "
        "NAT gateway and the VPC has no interface endpoints for STS and Lambda.",
        source_kind=MSK,
        auth_mode="iam",
        expected=_expected(
            "sts", "no-nat-or-endpoints", "create-vpc-endpoints", "connection-vpc-services", services=["sts", "lambda"]
        ),
        recipe=lambda b: _build_msk(b, _Spec(auth="iam", nat=False)),
        notes=("Repair: interface endpoints for sts and lambda (private DNS) admitting 443 from the cluster SG.",),
    )
)
_register(
    Scenario(
        name="missing-secretsmanager-endpoint",
        title="SCRAM ESM with sts + lambda endpoints but no Secrets Manager endpoint",
        description="The VPC has no NAT; interface endpoints exist for STS and Lambda, but the ESM also needs Secrets "
        "Manager to read its SASL/SCRAM secret.",
        source_kind=MSK,
        auth_mode="sasl-scram-512",
        expected=_expected(
            "sts", "no-nat-or-endpoints", "create-vpc-endpoints", "connection-vpc-services", services=["secretsmanager"]
        ),
        recipe=lambda b: _build_msk(b, _Spec(auth="scram", nat=False, endpoints=("sts", "lambda"))),
        notes=("Repair: an interface endpoint for secretsmanager only; sts and lambda already have one.",),
    )
)
_register(
    Scenario(
        name="healthy",
        title="A correctly configured MSK (IAM auth) ESM",
        description="NAT gateway, cluster SG self rule on 9098, execution role with the kafka-cluster actions.",
        source_kind=MSK,
        auth_mode="iam",
        expected=HEALTHY,
        recipe=lambda b: _build_msk(b, _Spec(auth="iam")),
    )
)
_register(
    Scenario(
        name="provisioned-mode",
        title="Provisioned-mode ESM in private subnets without NAT or endpoints",
        description="Everything else is right; provisioned mode needs neither NAT nor PrivateLink, so the ESM is "
        "healthy and a diagnosis must not blame the service path.",
        source_kind=MSK,
        auth_mode="iam",
        expected=HEALTHY,
        recipe=lambda b: _build_msk(b, _Spec(auth="iam", nat=False, provisioned=True)),
        notes=("A diagnosis that reports no-nat-or-endpoints here is wrong: the check does not apply.",),
    )
)
_register(
    Scenario(
        name="role-without-kafka-cluster",
        title="IAM-auth ESM whose role can connect but has no topic / group permissions",
        description="The role has the AWSLambdaMSKExecutionRole actions and kafka-cluster:Connect, but none of "
        "DescribeGroup, AlterGroup, DescribeTopic, ReadData, DescribeClusterDynamicConfiguration.",
        source_kind=MSK,
        auth_mode="iam",
        expected=_expected(
            "authz",
            "iam-missing-kafka-cluster",
            "grant-iam-permissions",
            "cluster-authorization-failed",
            actions=KAFKA_CLUSTER_ACTIONS[1:],
        ),
        recipe=lambda b: _build_msk(b, _Spec(auth="iam", kafka_actions=["kafka-cluster:Connect"])),
        notes=(
            "kafka-cluster:Connect is granted on purpose: without it a real ESM fails earlier, at SASL authentication "
            "(see role-without-connect).",
        ),
    )
)
_register(
    Scenario(
        name="role-without-connect",
        title="IAM-auth ESM whose role has only AWSLambdaMSKExecutionRole-like permissions",
        description="No kafka-cluster actions at all: the IAM SASL login itself is refused.",
        source_kind=MSK,
        auth_mode="iam",
        expected=_expected(
            "auth",
            "iam-missing-connect",
            "grant-iam-permissions",
            "sasl-authentication-failed",
            actions=KAFKA_CLUSTER_ACTIONS,
        ),
        recipe=lambda b: _build_msk(b, _Spec(auth="iam", kafka_actions=[])),
    )
)
_register(
    Scenario(
        name="malformed-secret",
        title="MSK SASL/SCRAM secret without a password",
        description="The AmazonMSK_ secret is associated with the cluster, but its JSON lacks the password key, so "
        "the SCRAM login fails.",
        source_kind=MSK,
        auth_mode="sasl-scram-512",
        expected=_expected("auth", "wrong-credentials", "ticket", "sasl-authentication-failed"),
        recipe=lambda b: _build_msk(b, _Spec(auth="scram", secret_value={"username": f"esm-{b.token}"})),
        notes=("Secret material is never changed automatically: a person must put the right JSON in the secret.",),
    )
)
_register(
    Scenario(
        name="vpc-dns-off",
        title="Endpoints with private DNS in a VPC whose DNS support / hostnames are off",
        description="Interface endpoints for STS and Lambda exist with private DNS, but enableDnsSupport and "
        "enableDnsHostnames are off, so their private names do not resolve; no NAT.",
        source_kind=MSK,
        auth_mode="iam",
        expected=_expected("sts", "vpc-dns-disabled", "enable-vpc-dns", "connection-vpc-services"),
        recipe=lambda b: _build_msk(b, _Spec(auth="iam", nat=False, endpoints=("sts", "lambda"), dns_off=True)),
    )
)
_register(
    Scenario(
        name="secret-access-denied",
        title="SCRAM ESM whose role may not read its secret",
        description="NAT and network are fine, but the execution role lacks secretsmanager:GetSecretValue and "
        "kms:Decrypt for the ESM's secret.",
        source_kind=MSK,
        auth_mode="sasl-scram-512",
        expected=_expected("secret", "missing-getsecretvalue", "grant-iam-permissions", "secret-access-denied"),
        recipe=lambda b: _build_msk(b, _Spec(auth="scram", secret_permissions=False)),
    )
)
_register(
    Scenario(
        name="mtls-secret-not-pem",
        title="mTLS ESM whose client certificate secret is not PEM",
        description="The CLIENT_CERTIFICATE_TLS_AUTH secret holds base64 DER instead of PEM text.",
        source_kind=MSK,
        auth_mode="mtls",
        expected=_expected("secret", "not-pem", "ticket", "certificate-not-pem"),
        recipe=lambda b: _build_msk(
            b, _Spec(auth="mtls", secret_value={"certificate": "MIIBsandboxDER==", "privateKey": "MIIEsandboxDER=="})
        ),
    )
)
_register(
    Scenario(
        name="role-trust-broken",
        title="Execution role that does not trust lambda.amazonaws.com",
        description="The role's trust policy names ec2.amazonaws.com instead of Lambda, so the ESM cannot assume it.",
        source_kind=MSK,
        auth_mode="iam",
        expected=_expected("role", "trust-policy", "ticket", "execution-role-assume-failed"),
        recipe=lambda b: _build_msk(
            b,
            _Spec(
                auth="iam",
                trust={
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
                    ],
                },
            ),
        ),
    )
)
_register(
    Scenario(
        name="self-managed-unresolvable-broker",
        title="Self-managed Kafka with a misspelt bootstrap domain",
        description="The bootstrap servers name 'exmaple.internal' while the brokers live under 'example.internal'; "
        "the names do not resolve from the ESM's VPC.",
        source_kind=SELF_MANAGED,
        auth_mode="sasl-scram-512",
        expected=_expected("dns", "typo", "ticket", "broker-endpoint-unresolvable"),
        recipe=lambda b: _build_self_managed(b, _SelfSpec(auth="scram", typo=True)),
        notes=("Bootstrap servers cannot be changed on an ESM: the fix is a new ESM (or a DNS record) by a person.",),
    )
)
_register(
    Scenario(
        name="self-managed-missing-sg-rule",
        title="Self-managed Kafka: the ESM security group lacks its self rule on the broker port",
        description="The ESM runs in the brokers' VPC with VPC_SUBNET / VPC_SECURITY_GROUP; the security group has no "
        "self-referencing inbound rule on 9096.",
        source_kind=SELF_MANAGED,
        auth_mode="sasl-scram-512",
        expected=_expected(
            "network", "no-sg-self-rule", "add-sg-self-rule", "connection-broker-unreachable", ports=[SCRAM_PORT]
        ),
        recipe=lambda b: _build_self_managed(b, _SelfSpec(auth="scram", self_ports=())),
    )
)


def names() -> list[str]:
    return list(SCENARIOS)


def get(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise KeyError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}") from None


def build(aws: Aws, name: str, *, prefix: str = "") -> ScenarioResult:
    return get(name).build(aws, prefix=prefix)


# ---------------------------------------------------------------------------------------------- fleet
@dataclass
class FleetResult:
    """A fleet of ESMs built by :func:`build_fleet`. Iterates / len() over the ESM UUIDs."""

    uuids: list[str]
    expected: dict[str, dict[str, Any]]  # uuid -> expected (as in Scenario.expected)
    broken: list[str]
    cluster_arns: list[str]
    function_names: list[str]
    resources: dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[str]:
        return iter(self.uuids)

    def __len__(self) -> int:
        return len(self.uuids)


def build_fleet(
    aws: Aws,
    clusters: int = 10,
    esms: int = 1000,
    broken_ratio: float = 0.2,
    *,
    prefix: str = "fleet-",
    seed: int = 0,
) -> FleetResult:
    """Many ESMs on a few clusters, sharing a VPC (with NAT), roles and functions, as real fleets do.

    About ``broken_ratio`` of the ESMs are broken, half by network and half by IAM where the numbers allow:
    whole clusters lose their SG self rule (every ESM on them reports connection-broker-unreachable), and the
    rest of the broken ESMs use a function whose role can connect but lacks the topic / group actions
    (cluster-authorization-failed). ESMs are spread round-robin over the clusters, one topic each.
    """
    if clusters < 1 or esms < 0 or not 0.0 <= broken_ratio <= 1.0:
        raise ValueError("clusters >= 1, esms >= 0 and 0 <= broken_ratio <= 1 are required")
    rng = random.Random(seed)
    b = AccountBuilder(aws, "fleet", prefix)
    net = b.network(nat=True)
    vpc_id, subnets = net["vpc_id"], net["subnet_ids"]
    per_cluster = max(1, esms // clusters)
    n_broken = round(esms * broken_ratio)
    # about half of the broken ESMs by network (whole clusters), the rest by IAM
    broken_clusters = min(clusters - 1, n_broken // per_cluster, int(n_broken / 2 / per_cluster + 0.5)) if esms else 0
    cluster_arns: list[str] = []
    sgs: list[str] = []
    for c in range(clusters):
        ports = () if c < broken_clusters else (IAM_PORT,)
        sg = b.security_group(vpc_id, f"msk-{c:02d}", self_ports=ports)
        sgs.append(sg)
        cluster_arns.append(b.msk_cluster(subnets, [sg], "iam"))
    base = f"arn:aws:kafka:{b.region}:{b.account}"
    all_kafka = {"cluster": f"{base}:cluster/*", "topics": f"{base}:topic/*", "groups": f"{base}:group/*"}
    _, good_role_arn = b.role([_exec_statement(), _kafka_statement(all_kafka)])
    b_bad = AccountBuilder(aws, "fleet-connect-only", prefix)
    _, bad_role_arn = b_bad.role([_exec_statement(), _kafka_statement(all_kafka, ["kafka-cluster:Connect"])])
    good_fns = [b.function(good_role_arn, f"fn-{c:02d}")[0] for c in range(clusters)]
    bad_fn = b_bad.function(bad_role_arn, "fn")[0]

    index_by_cluster: dict[int, list[int]] = {}
    for i in range(esms):
        index_by_cluster.setdefault(i % clusters, []).append(i)
    broken_network = {i for c in range(broken_clusters) for i in index_by_cluster.get(c, [])}
    healthy_pool = [i for i in range(esms) if i not in broken_network]
    rng.shuffle(healthy_pool)
    broken_authz = set(healthy_pool[: max(0, n_broken - len(broken_network))])

    uuids: list[str] = []
    expected: dict[str, dict[str, Any]] = {}
    broken: list[str] = []
    authz_expected = SCENARIOS["role-without-kafka-cluster"].expected
    network_expected = SCENARIOS["missing-sg-self-rule"].expected
    for i in range(esms):
        c = i % clusters
        fn = bad_fn if i in broken_authz else good_fns[c]
        uuid = b.esm(fn, f"topic-{i:05d}", EventSourceArn=cluster_arns[c])
        uuids.append(uuid)
        if i in broken_network:
            expected[uuid] = network_expected
            broken.append(uuid)
        elif i in broken_authz:
            expected[uuid] = authz_expected
            broken.append(uuid)
        else:
            expected[uuid] = HEALTHY
    return FleetResult(
        uuids=uuids,
        expected=expected,
        broken=broken,
        cluster_arns=cluster_arns,
        function_names=[*good_fns, bad_fn],
        resources={**net, "security_group_ids": sgs, "broken_clusters": cluster_arns[:broken_clusters]},
    )


# ---------------------------------------------------------------------------------------------- CLI hooks
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]", "0.0.0.0")


def cli_register(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``esm-medic sandbox scenario``."""
    parser.add_argument("name", nargs="?", metavar="NAME", help="scenario to build (see --list)")
    parser.add_argument("--list", action="store_true", help="list the scenarios with their expected outcome")
    parser.add_argument("--json", action="store_true", help="JSON output")
    parser.add_argument(
        "--endpoint-url",
        default=os.environ.get("AWS_ENDPOINT_URL"),
        help="a running `esm-medic sandbox serve` (default: $AWS_ENDPOINT_URL); never real AWS",
    )
    parser.add_argument("--region", default=None, help="region (default: the sandbox's, us-east-1)")
    parser.add_argument("--prefix", default="", help="prefix for the names of what is built")


def _is_local(url: str) -> bool:
    from urllib.parse import urlparse

    host = (urlparse(url).hostname or "").lower()
    return host in _LOCAL_HOSTS or host.endswith(".localhost")


def cli_run(args: argparse.Namespace) -> int:
    as_json = bool(getattr(args, "json", False))
    name = getattr(args, "name", None)
    if getattr(args, "list", False) or not name:
        listing = [s.summary() for s in SCENARIOS.values()]
        if as_json:
            print(json.dumps(listing, indent=2))
        else:
            for s in listing:
                e = s["expected"]
                outcome = "healthy" if e["step"] == "none" else f"{e['entry']} / {e['step']} / {e['root_cause']}"
                print(f"{s['name']:34} {s['source_kind']:13} {s['auth_mode']:15} -> {outcome} (fix: {e['fix']})")
                print(f"{'':34} {s['title']}")
        return 0 if getattr(args, "list", False) or name else 2
    if name not in SCENARIOS:
        print(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
        return 2
    endpoint = getattr(args, "endpoint_url", None) or ""
    if not endpoint:
        print("building a scenario needs --endpoint-url (or AWS_ENDPOINT_URL) of `esm-medic sandbox serve`")
        return 2
    if not _is_local(endpoint):
        print(f"refusing to build scenario resources at {endpoint}: only a local sandbox endpoint is allowed")
        return 2
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    aws = Aws(region=getattr(args, "region", None) or "us-east-1", endpoint_url=endpoint, max_attempts=2)
    try:
        result = SCENARIOS[name].build(aws, prefix=getattr(args, "prefix", "") or "")
        status = aws.call("lambda", "get_event_source_mapping", UUID=result.uuid)
    except Exception as exc:
        print(f"building {name} failed: {type(exc).__name__}: {exc}")
        return 1
    out = result.to_dict()
    out["status"] = {k: status.get(k, "") for k in ("State", "StateTransitionReason", "LastProcessingResult")}
    if as_json:
        print(json.dumps(out, indent=2, default=str))
    else:
        e = result.expected
        print(f"built {name}: ESM {result.uuid} (function {result.function_name}, role {result.role_name})")
        if result.cluster_arn:
            print(f"  cluster   {result.cluster_arn}")
        if result.bootstrap_servers:
            print(f"  brokers   {', '.join(result.bootstrap_servers)}")
        print(
            f"  vpc       {result.vpc_id}  subnets {', '.join(result.subnet_ids)}  "
            f"sgs {', '.join(result.security_group_ids)}"
        )
        print(
            f"  status    {out['status']['State']} / {out['status']['StateTransitionReason']} / "
            f"{out['status']['LastProcessingResult']}"
        )
        print(f"  expected  entry={e['entry']} step={e['step']} root_cause={e['root_cause']} fix={e['fix']}")
        for note in result.notes:
            print(f"  note      {note}")
    return 0
