"""The two recipes behind every scenario: an MSK cluster set-up (:func:`_build_msk`) and a self-managed Kafka
set-up (:func:`_build_self_managed`), each parameterised by a small spec of what to break."""

from __future__ import annotations

import secrets as _secrets
from dataclasses import dataclass
from typing import Any

from esm_medic_sandbox.scenario_builder import (
    IAM_PORT,
    MSK_EXECUTION_ACTIONS,
    PLAIN_PORT,
    SCRAM_PORT,
    TLS_PORT,
    AccountBuilder,
    ScenarioResult,
    _exec_statement,
    _kafka_statement,
    _secret_statements,
)


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
    extra: dict[str, Any] = {"EventSourceArn": cluster_arn}
    if access:
        extra["SourceAccessConfigurations"] = access
    if spec.provisioned:
        extra["ProvisionedPollerConfig"] = {"MinimumPollers": 1, "MaximumPollers": 3}
    resources.update(cluster_security_group_id=sg, kafka_arns=arns, auth=spec.auth)
    result = _consumer(b, statements, f"orders-{b.token}", extra, resources, trust=spec.trust)
    result.vpc_id, result.subnet_ids, result.security_group_ids = vpc_id, list(subnets), [sg]
    result.cluster_arn, result.secret_arn = cluster_arn, secret_arn
    return result


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
    source = {
        "SelfManagedEventSource": {"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": servers}},
        "SourceAccessConfigurations": access,
    }
    resources.update(broker_hosts=hosts, esm_security_group_id=sg, auth=spec.auth)
    result = _consumer(b, statements, f"payments-{b.token}", source, resources)
    result.vpc_id, result.subnet_ids, result.security_group_ids = vpc_id, list(subnets), [sg]
    result.bootstrap_servers, result.secret_arn = servers, secret_arn
    return result


def _consumer(
    b: AccountBuilder,
    statements: list[dict[str, Any]],
    topic: str,
    source: dict[str, Any],
    resources: dict[str, Any],
    *,
    trust: dict[str, Any] | None = None,
) -> ScenarioResult:
    """The consuming side both recipes end with: an execution role holding ``statements``, the function, and its
    ESM on ``topic`` from ``source``; ``resources`` gains the role, the function and the topic."""
    role_name, role_arn = b.role(statements, trust=trust)
    fn_name, fn_arn = b.function(role_arn)
    uuid = b.esm(fn_name, topic, **source)
    resources.update(role_arn=role_arn, function_arn=fn_arn, topic=topic)
    return ScenarioResult(name=b.name, uuid=uuid, function_name=fn_name, role_name=role_name, resources=resources)
