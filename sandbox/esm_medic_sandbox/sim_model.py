"""The simulator's own model of a Kafka ESM: which source, which auth mode, which broker ports, which network.

This is the sandbox's *independent oracle*. It is written from the AWS documentation (the Lambda developer guide's
MSK / self-managed Kafka pages, the MSK developer guide's port table and the GetEventSourceMapping / DescribeClusterV2
API references), never imported from esm-medic's product code, so a mistake in the product's model shows up as a
disagreement in a sandbox test instead of being agreed with. Pure code over API dicts: no boto3, no moto.

Facts encoded here (MSK developer guide, "Port information"; Lambda guide, "MSK cluster authentication"):

============================  ========  ==============  =====================================================
listener                       in VPC    public access   offered when
============================  ========  ==============  =====================================================
plaintext                      9092      (none)          ClientBroker allows PLAINTEXT and unauthenticated access
TLS (unauthenticated or mTLS)  9094      9194            ClientBroker allows TLS and (mTLS or unauthenticated)
SASL/SCRAM                     9096      9196            ``Sasl.Scram.Enabled``
IAM                            9098      9198            ``Sasl.Iam.Enabled``; MSK Serverless offers IAM only
============================  ========  ==============  =====================================================

- A provisioned cluster created without any client authentication allows unauthenticated access; in-transit
  encryption between clients and brokers defaults to TLS.
- Lambda picks one broker type and never falls back: an mTLS secret, else a SCRAM secret, else IAM (when the
  cluster has it), else unauthenticated TLS, else plaintext.
- The ESM's ENIs live in the cluster's client subnets with the cluster's security groups (not the function's VPC
  config); a Serverless cluster without security groups uses its VPC's default security group.
- Self-managed Kafka: the ports are the ones written in ``KAFKA_BOOTSTRAP_SERVERS`` (9092 when one is missing); the
  network is the ESM's own ``VPC_SUBNET`` / ``VPC_SECURITY_GROUP`` entries, or the internet when it has none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

KIND_MSK = "msk"
KIND_SELF_MANAGED = "self-managed"
KIND_OTHER = "other"

# Broker types as Lambda names them in its docs (one per ESM).
MODE_MTLS = "mtls"
MODE_SCRAM_512 = "sasl-scram-512"
MODE_SCRAM_256 = "sasl-scram-256"
MODE_PLAIN = "sasl-plain"
MODE_IAM = "iam"
MODE_TLS = "tls"
MODE_PLAINTEXT = "plaintext"
SASL_MODES = frozenset({MODE_SCRAM_512, MODE_SCRAM_256, MODE_PLAIN})
ENCRYPTED_MODES = frozenset({MODE_MTLS, MODE_TLS, MODE_IAM, MODE_SCRAM_512, MODE_SCRAM_256})

#: MSK listener family -> (port inside the VPC, port with public access or None)
MSK_LISTENER_PORTS: dict[str, tuple[int, int | None]] = {
    "plaintext": (9092, None),
    "tls": (9094, 9194),
    "scram": (9096, 9196),
    "iam": (9098, 9198),
}
#: The broker type an ESM uses -> the MSK listener family that must serve it (MSK's SASL listener is SCRAM-512).
LISTENER_FOR_MODE = {
    MODE_MTLS: "tls",
    MODE_TLS: "tls",
    MODE_SCRAM_512: "scram",
    MODE_SCRAM_256: "scram",
    MODE_PLAIN: "scram",
    MODE_IAM: "iam",
    MODE_PLAINTEXT: "plaintext",
}
SELF_MANAGED_DEFAULT_PORT = 9092

#: SourceAccessConfigurations types holding a Secrets Manager secret (API_SourceAccessConfiguration).
SECRET_ACCESS_TYPES = frozenset(
    {
        "BASIC_AUTH",
        "SASL_SCRAM_512_AUTH",
        "SASL_SCRAM_256_AUTH",
        "CLIENT_CERTIFICATE_TLS_AUTH",
        "SERVER_ROOT_CA_CERTIFICATE",
    }
)
#: In Lambda's order of preference: the first one present decides the broker type.
_SECRET_MODE_ORDER = (
    ("CLIENT_CERTIFICATE_TLS_AUTH", MODE_MTLS),
    ("SASL_SCRAM_512_AUTH", MODE_SCRAM_512),
    ("SASL_SCRAM_256_AUTH", MODE_SCRAM_256),
    ("BASIC_AUTH", MODE_PLAIN),
)


def _arn_field(arn: str, index: int) -> str:
    parts = arn.split(":")
    return parts[index] if arn.startswith("arn:") and len(parts) > index else ""


def host_and_port(server: str) -> tuple[str, int | None]:
    """``"b-1.x:9096"`` -> ("b-1.x", 9096); ``"[fd00::1]:9092"`` -> ("fd00::1", 9092); no port -> (host, None)."""
    text = server.strip()
    if text.startswith("["):
        host, _, tail = text[1:].partition("]")
        tail = tail.removeprefix(":")
        return host, int(tail) if tail.isdigit() else None
    host, sep, tail = text.rpartition(":")
    if sep and ":" not in host and tail.isdigit():
        return host, int(tail)
    return text, None


@dataclass(frozen=True)
class EsmView:
    """What the simulated poller needs to know about one ESM (read from a GetEventSourceMapping item)."""

    uuid: str
    kind: str
    function_arn: str
    esm_arn: str
    cluster_arn: str
    bootstrap_servers: tuple[str, ...]
    topics: tuple[str, ...]
    group_id: str
    access: tuple[tuple[str, str], ...]
    provisioned: bool

    @classmethod
    def parse(cls, item: Mapping[str, Any]) -> EsmView:
        uuid = str(item.get("UUID") or "")
        arn = str(item.get("EventSourceArn") or "")
        endpoints = (
            ((item.get("SelfManagedEventSource") or {}).get("Endpoints") or {})
            if isinstance(item.get("SelfManagedEventSource"), Mapping)
            else {}
        )
        servers: list[str] = []
        for entry in (endpoints.get("KAFKA_BOOTSTRAP_SERVERS") or []) if isinstance(endpoints, Mapping) else []:
            servers.extend(s.strip() for s in str(entry).split(",") if s.strip())
        if _arn_field(arn, 2) == "kafka":
            kind, config_key = KIND_MSK, "AmazonManagedKafkaEventSourceConfig"
        elif servers:
            kind, config_key = KIND_SELF_MANAGED, "SelfManagedKafkaEventSourceConfig"
        else:
            kind, config_key = KIND_OTHER, ""
        config = item.get(config_key) if config_key else None
        group = str(config.get("ConsumerGroupId") or "") if isinstance(config, Mapping) else ""
        access = tuple(
            (str(a.get("Type") or ""), str(a.get("URI") or ""))
            for a in item.get("SourceAccessConfigurations") or []
            if isinstance(a, Mapping)
        )
        poller = item.get("ProvisionedPollerConfig")
        return cls(
            uuid=uuid,
            kind=kind,
            function_arn=str(item.get("FunctionArn") or ""),
            esm_arn=str(item.get("EventSourceMappingArn") or ""),
            cluster_arn=arn if kind == KIND_MSK else "",
            bootstrap_servers=tuple(servers),
            topics=tuple(str(t) for t in item.get("Topics") or []),
            # Lambda's consumer group is the ESM's UUID unless a ConsumerGroupId is set (kafka-esm-parameters)
            group_id=group or uuid,
            access=access,
            provisioned=isinstance(poller, Mapping) and bool(poller),
        )

    @property
    def is_kafka(self) -> bool:
        return self.kind in (KIND_MSK, KIND_SELF_MANAGED)

    def _uris(self, kind: str) -> tuple[str, ...]:
        return tuple(uri for t, uri in self.access if t == kind)

    @property
    def subnets(self) -> tuple[str, ...]:
        return tuple(u.removeprefix("subnet:") for u in self._uris("VPC_SUBNET"))

    @property
    def security_groups(self) -> tuple[str, ...]:
        return tuple(u.removeprefix("security_group:") for u in self._uris("VPC_SECURITY_GROUP"))

    @property
    def secrets(self) -> dict[str, str]:
        return {t: uri for t, uri in self.access if t in SECRET_ACCESS_TYPES}

    @property
    def brokers(self) -> tuple[tuple[str, int | None], ...]:
        return tuple(host_and_port(s) for s in self.bootstrap_servers)

    @property
    def account(self) -> str:
        for arn in (self.esm_arn, self.function_arn, self.cluster_arn):
            if _arn_field(arn, 4):
                return _arn_field(arn, 4)
        return ""

    @property
    def region(self) -> str:
        for arn in (self.esm_arn, self.function_arn, self.cluster_arn):
            if _arn_field(arn, 3):
                return _arn_field(arn, 3)
        return ""


# ---------------------------------------------------------------------------------------------- MSK clusters
def _provisioned_info(cluster: Mapping[str, Any]) -> Mapping[str, Any]:
    prov = cluster.get("Provisioned")
    return prov if isinstance(prov, Mapping) else cluster  # v2 nests it; v1 (DescribeCluster) is flat


def is_serverless(cluster: Mapping[str, Any]) -> bool:
    return isinstance(cluster.get("Serverless"), Mapping) or cluster.get("ClusterType") == "SERVERLESS"


def cluster_network(cluster: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(client subnets, security groups) the ESM's ENIs use. Serverless: every VPC config's subnets / groups (an
    empty group list means the VPC's default group: the caller resolves it)."""
    if is_serverless(cluster):
        subnets: list[str] = []
        groups: list[str] = []
        for vpc in (cluster.get("Serverless") or {}).get("VpcConfigs") or []:
            subnets += [str(s) for s in vpc.get("SubnetIds") or []]
            groups += [str(g) for g in vpc.get("SecurityGroupIds") or []]
        return tuple(dict.fromkeys(subnets)), tuple(dict.fromkeys(groups))
    nodes = _provisioned_info(cluster).get("BrokerNodeGroupInfo") or {}
    return tuple(nodes.get("ClientSubnets") or ()), tuple(nodes.get("SecurityGroups") or ())


def public_access(cluster: Mapping[str, Any]) -> bool:
    nodes = _provisioned_info(cluster).get("BrokerNodeGroupInfo") or {}
    kind = ((nodes.get("ConnectivityInfo") or {}).get("PublicAccess") or {}).get("Type") or "DISABLED"
    return str(kind).upper() == "SERVICE_PROVIDED_EIPS"


def listeners(cluster: Mapping[str, Any]) -> dict[str, bool]:
    """Which broker listeners a cluster runs: plaintext, tls, scram, iam; and who the TLS listener admits
    (``tls_unauthenticated``: anyone; ``mtls``: clients with a certificate from the cluster's private CA)."""
    if is_serverless(cluster):
        return {
            "plaintext": False,
            "tls": False,
            "tls_unauthenticated": False,
            "mtls": False,
            "scram": False,
            "iam": True,
        }
    info = _provisioned_info(cluster)
    auth = info.get("ClientAuthentication") or {}
    sasl = auth.get("Sasl") or {}
    tls = auth.get("Tls") or {}
    unauth_cfg = auth.get("Unauthenticated")
    iam = bool((sasl.get("Iam") or {}).get("Enabled"))
    scram = bool((sasl.get("Scram") or {}).get("Enabled"))
    mtls = bool(tls.get("Enabled")) or bool(tls.get("CertificateAuthorityArnList"))
    if isinstance(unauth_cfg, Mapping) and "Enabled" in unauth_cfg:
        unauthenticated = bool(unauth_cfg["Enabled"])
    else:  # not configured: open only when no other client authentication is on (the create-time default)
        unauthenticated = not (iam or scram or mtls)
    client_broker = str(
        ((info.get("EncryptionInfo") or {}).get("EncryptionInTransit") or {}).get("ClientBroker") or "TLS"
    ).upper()
    tls_ok = client_broker in ("TLS", "TLS_PLAINTEXT")
    plain_ok = client_broker in ("PLAINTEXT", "TLS_PLAINTEXT")
    return {
        "plaintext": unauthenticated and plain_ok,
        "tls": tls_ok and (unauthenticated or mtls),
        "tls_unauthenticated": tls_ok and unauthenticated,
        "mtls": tls_ok and mtls,
        "scram": scram,
        "iam": iam,
    }


# ---------------------------------------------------------------------------------------------- Lambda's choice
def broker_type(view: EsmView, cluster: Mapping[str, Any] | None) -> str:
    """The one broker type Lambda uses for this ESM (never a fallback to a weaker one)."""
    present = {t for t, _ in view.access}
    for access_type, mode in _SECRET_MODE_ORDER:
        if access_type in present:
            return mode
    if view.kind == KIND_MSK:
        offered = listeners(cluster or {})
        if cluster is None or offered["iam"]:
            return MODE_IAM
        if offered["tls_unauthenticated"]:
            return MODE_TLS
        if offered["plaintext"]:
            return MODE_PLAINTEXT
        return MODE_TLS
    return MODE_TLS if "SERVER_ROOT_CA_CERTIFICATE" in present else MODE_PLAINTEXT


def listener_offered(mode: str, cluster: Mapping[str, Any]) -> bool:
    """Does the MSK cluster run the listener this broker type needs?"""
    family = {MODE_MTLS: "mtls", MODE_TLS: "tls_unauthenticated"}.get(mode) or LISTENER_FOR_MODE.get(mode, "iam")
    return bool(listeners(cluster).get(family))


def target_ports(view: EsmView, mode: str, cluster: Mapping[str, Any] | None = None) -> tuple[int, ...]:
    """The TCP ports the ESM's ENIs open to the brokers."""
    if view.kind == KIND_MSK:
        private, public = MSK_LISTENER_PORTS[LISTENER_FOR_MODE.get(mode, "iam")]
        if public is not None and cluster is not None and public_access(cluster):
            return (private, public)
        return (private,)
    ports = sorted({port if port is not None else SELF_MANAGED_DEFAULT_PORT for _, port in view.brokers})
    return tuple(ports) or (SELF_MANAGED_DEFAULT_PORT,)


def cluster_name_and_id(cluster_arn: str, cluster: Mapping[str, Any] | None = None) -> tuple[str, str]:
    """(cluster name, cluster id) from ``arn:aws:kafka:REGION:ACCOUNT:cluster/NAME/UUID-N``."""
    resource = cluster_arn.split(":", 5)[-1]
    parts = resource.split("/")
    name = str((cluster or {}).get("ClusterName") or (parts[1] if len(parts) > 2 else ""))
    return name, parts[-1] if len(parts) > 1 else ""


def iam_resource_arns(view: EsmView, cluster: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The cluster / topic / group ARNs MSK checks the ESM's ``kafka-cluster:*`` actions against."""
    name, cid = cluster_name_and_id(view.cluster_arn, cluster)
    region = _arn_field(view.cluster_arn, 3) or "us-east-1"
    account = _arn_field(view.cluster_arn, 4) or "123456789012"
    base = f"arn:aws:kafka:{region}:{account}"
    return {
        "cluster": view.cluster_arn,
        "topics": [f"{base}:topic/{name}/{cid}/{t}" for t in view.topics] or [f"{base}:topic/{name}/{cid}/*"],
        "group": f"{base}:group/{name}/{cid}/{view.group_id}",
    }
