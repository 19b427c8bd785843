"""Amazon MSK (kafka) patches for the sandbox.

moto gaps and what we do:

1. Clusters stay ``CREATING`` forever. Every cluster made by ``CreateCluster`` or ``CreateClusterV2``
   (provisioned or serverless) is ``CREATING`` for :func:`timing.delay` seconds, then ``ACTIVE`` (at once when the
   delay is 0; the create response itself always says ``CREATING``, as AWS does).
6. Cluster ARNs were ``cluster/<uuid>`` (``serverless-cluster/<uuid>`` for Serverless). AWS writes
   ``cluster/<name>/<uuid>-<n>`` (``-s<n>`` for Serverless), and the topic / group ARNs of MSK IAM access control
   are built from that name and id; the sandbox now does the same.
7. ``DescribeCluster`` / ``DescribeClusterV2`` returned placeholders: ``"string"`` as the configuration ARN and
   state code, ``zookeeper.example.com``, an ``activeOperationArn`` of ``region:account-id`` even when no operation
   runs. They now answer like AWS: ZooKeeper names shaped like the brokers' (``z-1.<name>.<id>.c2.kafka...:2181``,
   ``:2182`` over TLS), no configuration ARN unless one was given, ``stateInfo`` only when there is something to
   say, and an ``activeOperationArn`` only while the cluster is being created.
2. ``CreateClusterV2`` (provisioned) drops ``clientAuthentication``, ``encryptionInfo``, ``configurationInfo``,
   ``enhancedMonitoring``, ``openMonitoring`` and ``loggingInfo``; we keep them so ``DescribeClusterV2`` returns
   them (esm-medic derives the auth mode and broker ports from them).
3. ``DescribeCluster`` / ``DescribeClusterV2`` / ``DeleteCluster`` of an unknown ARN crashed with a KeyError
   (HTTP 500); they now raise ``NotFoundException``. ``CreateClusterV2`` with neither ``provisioned`` nor
   ``serverless`` crashed too; it now raises ``BadRequestException``.
4. ``GetBootstrapBrokers`` is not implemented. We answer from the cluster's configuration with broker host names
   shaped like AWS's (``b-1.<cluster-name>.<id>.c2.kafka.<region>.amazonaws.com``, one broker per client subnet):

   ============================  =====  ==============================================================
   key                           port   present when
   ============================  =====  ==============================================================
   BootstrapBrokerString         9092   in-transit encryption allows plaintext and unauthenticated access
   BootstrapBrokerStringTls      9094   in-transit allows TLS and (mTLS enabled or unauthenticated access)
   BootstrapBrokerStringSaslScram 9096  SASL/SCRAM enabled
   BootstrapBrokerStringSaslIam  9098   IAM enabled
   ...Public{Tls,SaslScram,SaslIam} 9194/9196/9198  the same, when public access is SERVICE_PROVIDED_EIPS
   ============================  =====  ==============================================================

   "Unauthenticated access" is ``clientAuthentication.unauthenticated.enabled`` or, when no client
   authentication is configured at all, the implicit default (the same rule as ``esm_medic.esm``). Serverless
   clusters answer ``BootstrapBrokerStringSaslIam`` only (``boot-<id>.c2.kafka-serverless.<region>...:9098``).
5. ``ListNodes``, ``BatchAssociateScramSecret``, ``BatchDisassociateScramSecret`` and ``ListScramSecrets`` are
   not implemented. Nodes: ``numberOfBrokerNodes`` brokers spread over the client subnets, with an IP address from
   each subnet's CIDR when the subnet exists in moto's EC2. SCRAM: secrets are remembered per cluster; like AWS,
   the cluster must have SCRAM enabled, and a secret whose name does not start with ``AmazonMSK_`` or that does
   not exist in Secrets Manager is returned in ``UnprocessedScramSecrets``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import threading
from typing import Any
from urllib.parse import unquote

from esm_medic_sandbox import timing

_APPLIED = False
_LOCK = threading.Lock()

PORTS = {
    "BootstrapBrokerString": 9092,
    "BootstrapBrokerStringTls": 9094,
    "BootstrapBrokerStringSaslScram": 9096,
    "BootstrapBrokerStringSaslIam": 9098,
    "BootstrapBrokerStringPublicTls": 9194,
    "BootstrapBrokerStringPublicSaslScram": 9196,
    "BootstrapBrokerStringPublicSaslIam": 9198,
}


# ---------------------------------------------------------------------------------------------- auth model
def cluster_auth(cluster: Any) -> dict[str, bool]:
    """Which listeners a moto FakeKafkaCluster offers: plaintext, tls, scram, iam, public."""
    if cluster.cluster_type == "SERVERLESS":
        return {"plaintext": False, "tls": False, "scram": False, "iam": True, "public": False}
    ca = cluster.client_authentication or {}
    sasl = ca.get("sasl") or {}
    tls_auth = ca.get("tls") or {}
    unauth = ca.get("unauthenticated") or {}
    iam = bool((sasl.get("iam") or {}).get("enabled"))
    scram = bool((sasl.get("scram") or {}).get("enabled"))
    mtls = bool(tls_auth.get("enabled")) or bool(tls_auth.get("certificateAuthorityArnList"))
    no_auth = not (iam or scram or mtls)
    unauthenticated = bool(unauth.get("enabled")) or (no_auth and not unauth)
    client_broker = (
        ((cluster.encryption_info or {}).get("encryptionInTransit") or {}).get("clientBroker") or "TLS"
    ).upper()
    allows_tls = client_broker in ("TLS", "TLS_PLAINTEXT")
    allows_plain = client_broker in ("PLAINTEXT", "TLS_PLAINTEXT")
    bng = cluster.broker_node_group_info or {}
    public = ((bng.get("connectivityInfo") or {}).get("publicAccess") or {}).get("type", "DISABLED")
    return {
        "plaintext": unauthenticated and allows_plain,
        "tls": allows_tls and (mtls or unauthenticated),
        "scram": scram,
        "iam": iam,
        "public": public not in ("DISABLED", "", None),
    }


def _short_id(cluster: Any, n: int = 6) -> str:
    return hashlib.sha1(cluster.arn.encode()).hexdigest()[:n]


def _dns_label(name: str) -> str:
    label = "".join(ch if ch.isalnum() or ch == "-" else "-" for ch in name.lower()).strip("-")
    return label or "cluster"


def _client_subnets(cluster: Any) -> list[str]:
    if cluster.cluster_type == "SERVERLESS":
        out: list[str] = []
        for vc in (cluster.serverless_config or {}).get("vpcConfigs") or []:
            out.extend(vc.get("subnetIds") or [])
        return out
    return list((cluster.broker_node_group_info or {}).get("clientSubnets") or [])


def cluster_arn(cluster: Any) -> str:
    """``arn:<partition>:kafka:<region>:<account>:cluster/<name>/<uuid>-<n>`` (``-s<n>`` for Serverless)."""
    from moto.utilities.utils import get_partition

    n = int(hashlib.sha1(str(cluster.cluster_id).encode()).hexdigest()[:4], 16) % 25 + 1
    suffix = f"s{n % 3 + 1}" if cluster.cluster_type == "SERVERLESS" else str(n)
    return (
        f"arn:{get_partition(cluster.region_name)}:kafka:{cluster.region_name}:{cluster.account_id}:"
        f"cluster/{cluster.cluster_name}/{cluster.cluster_id}-{suffix}"
    )


def zookeeper_hosts(cluster: Any, port: int) -> str:
    suffix = f"{_dns_label(cluster.cluster_name)}.{_short_id(cluster)}.c2.kafka.{cluster.region_name}.amazonaws.com"
    return ",".join(f"z-{i}.{suffix}:{port}" for i in (1, 2, 3))


def _operation_arn(cluster: Any) -> str:
    op = hashlib.sha1(f"{cluster.arn}/create".encode()).hexdigest()
    op_id = f"{op[:8]}-{op[8:12]}-{op[12:16]}-{op[16:20]}-{op[20:32]}"
    return cluster.arn.replace(":cluster/", ":cluster-operation/", 1) + f"/{op_id}"


def real_shaped(cluster: Any, info: dict[str, Any]) -> dict[str, Any]:
    """Replace moto's placeholders in a DescribeCluster(V2) ClusterInfo (camelCase keys) with AWS-shaped values."""
    if info.get("state") == "CREATING":
        info["activeOperationArn"] = _operation_arn(cluster)
    else:
        info.pop("activeOperationArn", None)
    if (info.get("stateInfo") or {}).get("code") == "string":
        info.pop("stateInfo", None)
    for holder in (info, info.get("provisioned")):
        if not isinstance(holder, dict):
            continue
        software = holder.get("currentBrokerSoftwareInfo")
        if isinstance(software, dict) and software.get("configurationArn") in ("string", None):
            software.pop("configurationArn", None)
            software.pop("configurationRevision", None)
        for key, port in (("zookeeperConnectString", 2181), ("zookeeperConnectStringTls", 2182)):
            if "example.com" in str(holder.get(key, "")):
                holder[key] = zookeeper_hosts(cluster, port)
    return info


def settle(backend: Any) -> None:
    """Clusters whose CREATING window has ended become ACTIVE (lazily, on each read)."""
    for cluster in list(backend.clusters.values()):
        window = getattr(cluster, "_esm_medic_window", None)
        if window is not None and not window.active:
            cluster.state = window.final
            cluster._esm_medic_window = None


def _start_creating(cluster: Any) -> None:
    window = timing.Window.start("CREATING", "ACTIVE")
    if window is None:
        cluster.state = "ACTIVE"
        return
    cluster.state = "CREATING"
    cluster._esm_medic_window = window
    timing.register_deadline(window.until)


def broker_hosts(cluster: Any, public: bool = False) -> list[str]:
    """Broker host names of a provisioned cluster: one per client subnet (or per broker if no subnets)."""
    count = len(_client_subnets(cluster)) or int(cluster.number_of_broker_nodes or 1)
    suffix = f"{_dns_label(cluster.cluster_name)}.{_short_id(cluster)}.c2.kafka.{cluster.region_name}.amazonaws.com"
    return [f"b-{i}{'-public' if public else ''}.{suffix}" for i in range(1, count + 1)]


def bootstrap_brokers(cluster: Any) -> dict[str, str]:
    """The GetBootstrapBrokers answer (PascalCase keys) for a moto FakeKafkaCluster."""
    if cluster.cluster_type == "SERVERLESS":
        host = f"boot-{_short_id(cluster, 8)}.c2.kafka-serverless.{cluster.region_name}.amazonaws.com"
        return {"BootstrapBrokerStringSaslIam": f"{host}:9098"}
    auth = cluster_auth(cluster)
    private, public = broker_hosts(cluster), broker_hosts(cluster, public=True)

    def join(hosts: list[str], port: int) -> str:
        return ",".join(f"{h}:{port}" for h in hosts)

    out: dict[str, str] = {}
    if auth["plaintext"]:
        out["BootstrapBrokerString"] = join(private, 9092)
    if auth["tls"]:
        out["BootstrapBrokerStringTls"] = join(private, 9094)
    if auth["scram"]:
        out["BootstrapBrokerStringSaslScram"] = join(private, 9096)
    if auth["iam"]:
        out["BootstrapBrokerStringSaslIam"] = join(private, 9098)
    if auth["public"]:
        if auth["tls"]:
            out["BootstrapBrokerStringPublicTls"] = join(public, 9194)
        if auth["scram"]:
            out["BootstrapBrokerStringPublicSaslScram"] = join(public, 9196)
        if auth["iam"]:
            out["BootstrapBrokerStringPublicSaslIam"] = join(public, 9198)
    return out


def _subnet_ip(account_id: str, region: str, subnet_id: str, index: int) -> str:
    try:
        from moto.ec2.models import ec2_backends

        subnet = ec2_backends[account_id][region].get_subnet(subnet_id)
        net = ipaddress.ip_network(subnet.cidr_block, strict=False)
        return str(net.network_address + 10 + index)
    except Exception:  # subnet unknown to moto: a stable private address
        return f"10.0.{index % 250}.{10 + index // 250}"


def list_nodes(cluster: Any) -> list[dict[str, Any]]:
    if cluster.cluster_type == "SERVERLESS":
        return []
    subnets = _client_subnets(cluster) or ["subnet-unknown"]
    hosts = broker_hosts(cluster)
    count = int(cluster.number_of_broker_nodes or len(hosts) or 1)
    instance_type = (cluster.broker_node_group_info or {}).get("instanceType", "kafka.m5.large")
    nodes = []
    for i in range(count):
        subnet = subnets[i % len(subnets)]
        host = hosts[i] if i < len(hosts) else hosts[0].replace("b-1.", f"b-{i + 1}.", 1)
        nodes.append(
            {
                "AddedToClusterTime": cluster.creation_time,
                "InstanceType": instance_type,
                "NodeARN": f"{cluster.arn.replace(':cluster/', ':broker/', 1)}/{i + 1}",
                "NodeType": "BROKER",
                "BrokerNodeInfo": {
                    "BrokerId": float(i + 1),
                    "ClientSubnet": subnet,
                    "ClientVpcIpAddress": _subnet_ip(cluster.account_id, cluster.region_name, subnet, i),
                    "Endpoints": [host],
                    "AttachedENIId": f"eni-{hashlib.sha1(f'{cluster.arn}/{i}'.encode()).hexdigest()[:17]}",
                },
            }
        )
    return nodes


# ---------------------------------------------------------------------------------------------- responses
def _cluster_arn_from_path(response: Any, suffix: str) -> str:
    return unquote(response.parsed_url.path.split("/clusters/", 1)[-1]).removesuffix(suffix)


def _get_cluster(response: Any, suffix: str) -> Any:
    from moto.kafka.exceptions import NotFoundException

    arn = _cluster_arn_from_path(response, suffix)
    cluster = response.kafka_backend.clusters.get(arn)
    if cluster is None:
        raise NotFoundException(f"Cluster {arn} not found.")
    return cluster


def _get_bootstrap_brokers(self: Any) -> Any:
    from moto.core.responses import ActionResult

    return ActionResult(bootstrap_brokers(_get_cluster(self, "/bootstrap-brokers")))


def _list_nodes(self: Any) -> Any:
    from moto.core.responses import ActionResult

    return ActionResult({"NodeInfoList": list_nodes(_get_cluster(self, "/nodes"))})


def _scram_secrets(cluster: Any) -> list[str]:
    secrets = getattr(cluster, "_esm_medic_scram", None)
    if secrets is None:
        secrets = cluster._esm_medic_scram = []
    return secrets


def _secret_exists(cluster: Any, arn: str) -> bool:
    try:
        from moto.secretsmanager.models import secretsmanager_backends

        backend = secretsmanager_backends[cluster.account_id][cluster.region_name]
        return bool(backend.secrets.get(arn) is not None or any(s.arn == arn for s in backend.secrets.values()))
    except Exception:
        return False


def _scram_change(self: Any, associate: bool) -> Any:
    from moto.core.responses import ActionResult
    from moto.kafka.exceptions import BadRequestException

    cluster = _get_cluster(self, "/scram-secrets")
    arns = self._get_param("secretArnList") or []
    if not arns:
        raise BadRequestException("secretArnList must contain at least one secret ARN.")
    if associate and not cluster_auth(cluster)["scram"]:
        raise BadRequestException("SASL/SCRAM authentication is not enabled on this cluster.")
    unprocessed = []
    with _LOCK:
        current = _scram_secrets(cluster)
        for arn in arns:
            name = str(arn).split(":secret:", 1)[-1]
            if associate:
                if not name.startswith("AmazonMSK_"):
                    unprocessed.append(
                        {
                            "SecretArn": arn,
                            "ErrorCode": "InvalidSecretName",
                            "ErrorMessage": "The secret name must start with AmazonMSK_.",
                        }
                    )
                elif not _secret_exists(cluster, arn):
                    unprocessed.append(
                        {"SecretArn": arn, "ErrorCode": "SecretNotFound", "ErrorMessage": "The secret does not exist."}
                    )
                elif arn not in current:
                    current.append(arn)
            elif arn in current:
                current.remove(arn)
            else:
                unprocessed.append(
                    {
                        "SecretArn": arn,
                        "ErrorCode": "NotAssociated",
                        "ErrorMessage": "The secret is not associated with this cluster.",
                    }
                )
    return ActionResult({"ClusterArn": cluster.arn, "UnprocessedScramSecrets": unprocessed})


def _batch_associate_scram_secret(self: Any) -> Any:
    return _scram_change(self, associate=True)


def _batch_disassociate_scram_secret(self: Any) -> Any:
    return _scram_change(self, associate=False)


def _list_scram_secrets(self: Any) -> Any:
    from moto.core.responses import ActionResult

    cluster = _get_cluster(self, "/scram-secrets")
    with _LOCK:
        return ActionResult({"SecretArnList": list(_scram_secrets(cluster))})


# ---------------------------------------------------------------------------------------------- apply
def apply() -> None:
    global _APPLIED
    with _LOCK:
        if _APPLIED:
            return
        from moto.kafka.exceptions import NotFoundException
        from moto.kafka.models import FakeKafkaCluster, KafkaBackend
        from moto.kafka.responses import KafkaResponse

        orig_create = KafkaBackend.create_cluster
        orig_create_v2 = KafkaBackend.create_cluster_v2
        orig_describe = KafkaBackend.describe_cluster
        orig_describe_v2 = KafkaBackend.describe_cluster_v2
        orig_delete = KafkaBackend.delete_cluster
        orig_list = KafkaBackend.list_clusters

        def create_cluster(self: Any, *args: Any, **kwargs: Any) -> Any:
            result = orig_create(self, *args, **kwargs)
            _start_creating(self.clusters[result[0]])
            return result

        def create_cluster_v2(self: Any, cluster_name: str, tags: Any, provisioned: Any, serverless: Any) -> Any:
            if not provisioned and not serverless:
                from moto.kafka.exceptions import BadRequestException

                raise BadRequestException("Either provisioned or serverless must be specified.")
            result = orig_create_v2(self, cluster_name, tags, provisioned, serverless)
            cluster = self.clusters[result[0]]
            if provisioned:
                cluster.client_authentication = provisioned.get("clientAuthentication")
                cluster.encryption_info = provisioned.get("encryptionInfo")
                cluster.configuration_info = provisioned.get("configurationInfo")
                cluster.enhanced_monitoring = provisioned.get("enhancedMonitoring") or "DEFAULT"
                cluster.open_monitoring = provisioned.get("openMonitoring")
                cluster.logging_info = provisioned.get("loggingInfo")
            _start_creating(cluster)
            return result

        def _known(self: Any, cluster_arn: str) -> None:
            if cluster_arn not in self.clusters:
                raise NotFoundException(f"Cluster {cluster_arn} not found.")

        def describe_cluster(self: Any, cluster_arn: str) -> Any:
            _known(self, cluster_arn)
            settle(self)
            return real_shaped(self.clusters[cluster_arn], orig_describe(self, cluster_arn))

        def describe_cluster_v2(self: Any, cluster_arn: str) -> Any:
            _known(self, cluster_arn)
            settle(self)
            return real_shaped(self.clusters[cluster_arn], orig_describe_v2(self, cluster_arn))

        def list_clusters(self: Any, *args: Any, **kwargs: Any) -> Any:
            settle(self)
            return orig_list(self, *args, **kwargs)

        def delete_cluster(self: Any, cluster_arn: str, current_version: str) -> Any:
            _known(self, cluster_arn)
            return orig_delete(self, cluster_arn, current_version)

        KafkaBackend.create_cluster = create_cluster  # type: ignore[method-assign]
        KafkaBackend.create_cluster_v2 = create_cluster_v2  # type: ignore[method-assign]
        KafkaBackend.describe_cluster = describe_cluster  # type: ignore[method-assign]
        KafkaBackend.describe_cluster_v2 = describe_cluster_v2  # type: ignore[method-assign]
        KafkaBackend.delete_cluster = delete_cluster  # type: ignore[method-assign]
        KafkaBackend.list_clusters = list_clusters  # type: ignore[method-assign]
        FakeKafkaCluster._generate_arn = cluster_arn  # type: ignore[method-assign,assignment]
        KafkaResponse.get_bootstrap_brokers = _get_bootstrap_brokers  # type: ignore[attr-defined]
        KafkaResponse.list_nodes = _list_nodes  # type: ignore[attr-defined]
        KafkaResponse.batch_associate_scram_secret = _batch_associate_scram_secret  # type: ignore[attr-defined]
        KafkaResponse.batch_disassociate_scram_secret = _batch_disassociate_scram_secret  # type: ignore[attr-defined]
        KafkaResponse.list_scram_secrets = _list_scram_secrets  # type: ignore[attr-defined]
        _APPLIED = True
