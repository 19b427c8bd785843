"""A typed, read-only view of a Kafka event source mapping and the facts derived from it.

Pure code over the dicts that GetEventSourceMapping / DescribeClusterV2 return: no boto3 here. It answers
"which network identity does this ESM really use", "which auth mode and broker ports", "on-demand or
provisioned" — the facts every diagnosis and every fix is derived from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

MSK = "msk"
SELF_MANAGED = "self-managed"
OTHER = "other"

# Auth modes, strongest first: MSK picks the strongest one the ESM / cluster offers and never falls back.
MTLS = "mtls"
SASL_SCRAM_512 = "sasl-scram-512"
SASL_SCRAM_256 = "sasl-scram-256"
SASL_PLAIN = "sasl-plain"
IAM = "iam"
TLS = "tls"
PLAINTEXT = "plaintext"
AUTH_MODES = (MTLS, SASL_SCRAM_512, SASL_SCRAM_256, SASL_PLAIN, IAM, TLS, PLAINTEXT)

#: MSK broker ports per auth mode: (in-VPC, public access)
MSK_PORTS: dict[str, tuple[int, int | None]] = {
    PLAINTEXT: (9092, None),
    TLS: (9094, 9194),
    MTLS: (9094, 9194),
    SASL_SCRAM_512: (9096, 9196),
    # MSK only offers SCRAM-SHA-512; an ESM configured with SCRAM-256 or PLAIN still talks to the SASL listener
    SASL_SCRAM_256: (9096, 9196),
    SASL_PLAIN: (9096, 9196),
    IAM: (9098, 9198),
}

#: SourceAccessConfigurations types that carry a Secrets Manager secret
SECRET_TYPES = (
    "BASIC_AUTH",
    "SASL_SCRAM_512_AUTH",
    "SASL_SCRAM_256_AUTH",
    "CLIENT_CERTIFICATE_TLS_AUTH",
    "SERVER_ROOT_CA_CERTIFICATE",
)

_SAC_AUTH = {
    "CLIENT_CERTIFICATE_TLS_AUTH": MTLS,
    "SASL_SCRAM_512_AUTH": SASL_SCRAM_512,
    "SASL_SCRAM_256_AUTH": SASL_SCRAM_256,
    "BASIC_AUTH": SASL_PLAIN,
}

HEALTHY_RESULTS = ("ok", "no records processed")


@dataclass(frozen=True)
class EsmConfig:
    """The fields of an ESM that esm-medic reasons about."""

    uuid: str
    source_kind: str
    state: str = ""
    state_transition_reason: str = ""
    last_processing_result: str = ""
    function_arn: str = ""
    esm_arn: str = ""
    cluster_arn: str = ""
    bootstrap_servers: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    consumer_group_id: str = ""
    access: tuple[tuple[str, str], ...] = ()  # SourceAccessConfigurations (Type, URI)
    provisioned: bool = False
    on_failure_destination: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_api(cls, item: Mapping[str, Any]) -> EsmConfig:
        """Build from a GetEventSourceMapping / ListEventSourceMappings item. Tolerates missing keys."""
        uuid = str(item.get("UUID") or item.get("uuid") or "")
        source_arn = str(item.get("EventSourceArn") or "")
        sme = item.get("SelfManagedEventSource") or {}
        servers: list[str] = []
        if isinstance(sme, Mapping):
            endpoints = sme.get("Endpoints") or {}
            if isinstance(endpoints, Mapping):
                for s in endpoints.get("KAFKA_BOOTSTRAP_SERVERS") or []:
                    servers.extend(p.strip() for p in str(s).split(",") if p.strip())
        if source_arn.startswith("arn:") and ":kafka:" in source_arn:
            kind = MSK
        elif servers:
            kind = SELF_MANAGED
        else:
            kind = OTHER
        group_cfg = (
            item.get("AmazonManagedKafkaEventSourceConfig")
            if kind == MSK
            else item.get("SelfManagedKafkaEventSourceConfig")
        )
        group = ""
        if isinstance(group_cfg, Mapping):
            group = str(group_cfg.get("ConsumerGroupId") or "")
        access = tuple(
            (str(a.get("Type", "")), str(a.get("URI", "")))
            for a in (item.get("SourceAccessConfigurations") or [])
            if isinstance(a, Mapping)
        )
        ppc = item.get("ProvisionedPollerConfig")
        dest = item.get("DestinationConfig") or {}
        on_failure = ""
        if isinstance(dest, Mapping):
            on_failure = str((dest.get("OnFailure") or {}).get("Destination") or "")
        return cls(
            uuid=uuid,
            source_kind=kind,
            state=str(item.get("State") or ""),
            state_transition_reason=str(item.get("StateTransitionReason") or ""),
            last_processing_result=str(item.get("LastProcessingResult") or ""),
            function_arn=str(item.get("FunctionArn") or ""),
            esm_arn=str(item.get("EventSourceMappingArn") or ""),
            cluster_arn=source_arn if kind == MSK else "",
            bootstrap_servers=tuple(servers),
            topics=tuple(str(t) for t in (item.get("Topics") or [])),
            consumer_group_id=group or uuid,
            access=access,
            provisioned=isinstance(ppc, Mapping) and bool(ppc),
            on_failure_destination=on_failure,
            raw=dict(item),
        )

    # --- derived facts -------------------------------------------------------------------------------
    @property
    def is_kafka(self) -> bool:
        return self.source_kind in (MSK, SELF_MANAGED)

    def access_uris(self, kind: str) -> tuple[str, ...]:
        return tuple(uri for t, uri in self.access if t == kind)

    @property
    def vpc_subnets(self) -> tuple[str, ...]:
        return tuple(u.split(":", 1)[-1] for u in self.access_uris("VPC_SUBNET"))

    @property
    def vpc_security_groups(self) -> tuple[str, ...]:
        return tuple(u.split(":", 1)[-1] for u in self.access_uris("VPC_SECURITY_GROUP"))

    @property
    def secrets(self) -> dict[str, str]:
        """SourceAccessConfigurations type -> secret ARN, for the types that carry a secret."""
        return {t: uri for t, uri in self.access if t in SECRET_TYPES}

    @property
    def auth_secret_arn(self) -> str:
        for t in ("CLIENT_CERTIFICATE_TLS_AUTH", "SASL_SCRAM_512_AUTH", "SASL_SCRAM_256_AUTH", "BASIC_AUTH"):
            for kind, uri in self.access:
                if kind == t:
                    return uri
        return ""

    @property
    def function_name(self) -> str:
        arn = self.function_arn
        if arn.startswith("arn:"):
            parts = arn.split(":")
            return parts[6] if len(parts) > 6 else arn
        return arn

    @property
    def region(self) -> str:
        for arn in (self.esm_arn, self.function_arn, self.cluster_arn):
            parts = arn.split(":")
            if arn.startswith("arn:") and len(parts) > 3 and parts[3]:
                return parts[3]
        return ""

    @property
    def account(self) -> str:
        for arn in (self.esm_arn, self.function_arn, self.cluster_arn):
            parts = arn.split(":")
            if arn.startswith("arn:") and len(parts) > 4 and parts[4]:
                return parts[4]
        return ""

    @property
    def broker_hosts(self) -> tuple[tuple[str, int | None], ...]:
        out = []
        for server in self.bootstrap_servers:
            host, port = split_host_port(server)
            out.append((host, port))
        return tuple(out)

    def status(self) -> dict[str, str]:
        return {
            "State": self.state,
            "StateTransitionReason": self.state_transition_reason,
            "LastProcessingResult": self.last_processing_result,
        }


def split_host_port(server: str) -> tuple[str, int | None]:
    """'b-1.example:9096' -> ('b-1.example', 9096); '[::1]:9092' -> ('::1', 9092); 'host' -> ('host', None)."""
    s = server.strip()
    if s.startswith("["):
        host, _, rest = s[1:].partition("]")
        port = rest.lstrip(":")
        return host, int(port) if port.isdigit() else None
    if s.count(":") == 1:
        host, port = s.split(":")
        return host, int(port) if port.isdigit() else None
    return s, None


def msk_cluster_network(cluster: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(client subnets, security groups) from a DescribeClusterV2 ClusterInfo (provisioned or serverless)."""
    prov = cluster.get("Provisioned")
    if isinstance(prov, Mapping):
        bng = prov.get("BrokerNodeGroupInfo") or {}
        return tuple(bng.get("ClientSubnets") or ()), tuple(bng.get("SecurityGroups") or ())
    srv = cluster.get("Serverless")
    if isinstance(srv, Mapping):
        subnets: list[str] = []
        sgs: list[str] = []
        for vc in srv.get("VpcConfigs") or []:
            subnets.extend(vc.get("SubnetIds") or [])
            sgs.extend(vc.get("SecurityGroupIds") or [])
        return tuple(subnets), tuple(dict.fromkeys(sgs))
    bng = cluster.get("BrokerNodeGroupInfo")  # DescribeCluster (v1) shape
    if isinstance(bng, Mapping):
        return tuple(bng.get("ClientSubnets") or ()), tuple(bng.get("SecurityGroups") or ())
    return (), ()


def msk_client_authentication(cluster: Mapping[str, Any]) -> dict[str, bool]:
    """Which client auth methods a cluster has enabled: keys iam, scram, mtls, tls, plaintext."""
    if isinstance(cluster.get("Serverless"), Mapping):
        return {"iam": True, "scram": False, "mtls": False, "tls": True, "plaintext": False}
    prov = cluster.get("Provisioned")
    info: Mapping[str, Any] = prov if isinstance(prov, Mapping) else cluster
    ca = info.get("ClientAuthentication") or {}
    sasl = ca.get("Sasl") or {}
    tls_auth = ca.get("Tls") or {}
    unauth = ca.get("Unauthenticated") or {}
    enc = ((info.get("EncryptionInfo") or {}).get("EncryptionInTransit") or {}).get("ClientBroker", "TLS")
    iam = bool((sasl.get("Iam") or {}).get("Enabled"))
    scram = bool((sasl.get("Scram") or {}).get("Enabled"))
    mtls = bool(tls_auth.get("Enabled")) or bool(tls_auth.get("CertificateAuthorityArnList"))
    no_auth_configured = not (iam or scram or mtls)
    unauthenticated = bool(unauth.get("Enabled")) or (no_auth_configured and not unauth)
    return {
        "iam": iam,
        "scram": scram,
        "mtls": mtls,
        "tls": unauthenticated and enc in ("TLS", "TLS_PLAINTEXT"),
        "plaintext": unauthenticated and enc in ("PLAINTEXT", "TLS_PLAINTEXT"),
    }


def msk_public_access(cluster: Mapping[str, Any]) -> bool:
    prov = cluster.get("Provisioned")
    info: Mapping[str, Any] = prov if isinstance(prov, Mapping) else cluster
    bng = info.get("BrokerNodeGroupInfo") or {}
    pa = ((bng.get("ConnectivityInfo") or {}).get("PublicAccess") or {}).get("Type", "DISABLED")
    return pa not in ("DISABLED", "", None)


def auth_mode(esm: EsmConfig, cluster: Mapping[str, Any] | None = None) -> str:
    """The auth mode the ESM will use. MSK: strongest of (ESM secret, cluster methods); never a fallback."""
    types = {t for t, _ in esm.access}
    for sac_type in ("CLIENT_CERTIFICATE_TLS_AUTH", "SASL_SCRAM_512_AUTH", "SASL_SCRAM_256_AUTH", "BASIC_AUTH"):
        if sac_type in types:
            return _SAC_AUTH[sac_type]
    if esm.source_kind == MSK:
        methods = msk_client_authentication(cluster or {})
        if methods["iam"]:
            return IAM
        if methods["tls"]:
            return TLS
        if methods["plaintext"]:
            return PLAINTEXT
        return IAM if cluster is None else TLS
    if "SERVER_ROOT_CA_CERTIFICATE" in types:
        return TLS
    return PLAINTEXT


def broker_ports(esm: EsmConfig, mode: str, cluster: Mapping[str, Any] | None = None) -> tuple[int, ...]:
    """The TCP ports the ESM connects to. MSK: by auth mode (plus the public port if public access is on);
    self-managed: the ports in the bootstrap list (9092 when a server names none)."""
    if esm.source_kind == MSK:
        private, public = MSK_PORTS.get(mode, (9098, 9198))
        ports = [private]
        if public is not None and cluster is not None and msk_public_access(cluster):
            ports.append(public)
        return tuple(ports)
    ports = sorted({port or 9092 for _, port in esm.broker_hosts})
    return tuple(ports) or (9092,)


def needs_secret(esm: EsmConfig) -> bool:
    return bool(esm.secrets)


def to_dict(obj: Any) -> dict[str, Any]:
    d = asdict(obj)
    d.pop("raw", None)
    return d
