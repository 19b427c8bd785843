"""The request rules AWS applies to a Kafka ``CreateEventSourceMapping`` (MSK or self-managed), for the sandbox's
Kafka branch in :mod:`esm_medic_sandbox.patch_lambda`: source, topics, starting position, batch size, source access
configurations, provisioned pollers, batching window. Errors are moto's ``LambdaClientError`` with AWS's codes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

SOURCE_ACCESS_TYPES = (
    "BASIC_AUTH",
    "VPC_SUBNET",
    "VPC_SECURITY_GROUP",
    "SASL_SCRAM_512_AUTH",
    "SASL_SCRAM_256_AUTH",
    "VIRTUAL_HOST",
    "CLIENT_CERTIFICATE_TLS_AUTH",
    "SERVER_ROOT_CA_CERTIFICATE",
)
STARTING_POSITIONS = ("TRIM_HORIZON", "LATEST", "AT_TIMESTAMP")
_HOST_PORT = re.compile(r"^[A-Za-z0-9.\-_\[\]:]+:\d{1,5}$")


def lambda_error(code: str, message: str, status: int = 400) -> Exception:
    from moto.awslambda.exceptions import LambdaClientError

    err = LambdaClientError(code, message)
    err.code = status
    return err


def invalid(message: str) -> Exception:
    return lambda_error("InvalidParameterValueException", message)


def validate_access(configs: Any) -> None:
    if configs is None:
        return
    if not isinstance(configs, list):
        raise invalid("SourceAccessConfigurations must be a list.")
    if len(configs) > 22:
        raise invalid("SourceAccessConfigurations can have at most 22 entries.")
    for c in configs:
        if not isinstance(c, Mapping) or not c.get("Type") or not c.get("URI"):
            raise invalid("Each SourceAccessConfiguration needs a Type and a URI.")
        if c["Type"] not in SOURCE_ACCESS_TYPES:
            raise invalid(
                f"Value '{c['Type']}' at 'sourceAccessConfigurations.type' failed to satisfy constraint: "
                f"Member must satisfy enum value set: [{', '.join(SOURCE_ACCESS_TYPES)}]"
            )
        if c["Type"] == "VPC_SUBNET" and not str(c["URI"]).startswith("subnet:"):
            raise invalid(f"Invalid VPC_SUBNET URI {c['URI']!r}: expected 'subnet:subnet-...'.")
        if c["Type"] == "VPC_SECURITY_GROUP" and not str(c["URI"]).startswith("security_group:"):
            raise invalid(f"Invalid VPC_SECURITY_GROUP URI {c['URI']!r}: expected 'security_group:sg-...'.")
    types = {c["Type"] for c in configs}
    if ("VPC_SUBNET" in types) != ("VPC_SECURITY_GROUP" in types):
        raise invalid("VPC_SUBNET and VPC_SECURITY_GROUP must be given together.")


def validate_batch_size(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 10000:
        raise invalid(f"BatchSize {value} is out of range: Kafka allows 1 to 10000.")


def validate_poller(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise invalid("ProvisionedPollerConfig must be an object.")
    lo, hi = value.get("MinimumPollers", 1), value.get("MaximumPollers", 200)
    if not (isinstance(lo, int) and 1 <= lo <= 200):
        raise invalid(f"ProvisionedPollerConfig.MinimumPollers {lo} is out of range 1..200.")
    if not (isinstance(hi, int) and 1 <= hi <= 2000):
        raise invalid(f"ProvisionedPollerConfig.MaximumPollers {hi} is out of range 1..2000.")
    if lo > hi:
        raise invalid("ProvisionedPollerConfig.MinimumPollers cannot exceed MaximumPollers.")


def msk_cluster_exists(backend: Any, arn: str) -> bool:
    from moto.kafka.models import kafka_backends

    parts = arn.split(":")
    if len(parts) < 6:
        return False
    region, account = parts[3], parts[4]
    if account != backend.account_id or region != backend.region_name:
        return False
    return arn in kafka_backends[account][region].clusters


def validate_kafka_create(backend: Any, spec: Mapping[str, Any]) -> None:
    arn = spec.get("EventSourceArn")
    sme = spec.get("SelfManagedEventSource")
    if arn and sme:
        raise invalid("Specify either EventSourceArn or SelfManagedEventSource, not both.")
    if arn:
        if not msk_cluster_exists(backend, arn):
            raise invalid(f"The MSK cluster {arn} does not exist in this account and Region.")
    else:
        endpoints = (sme or {}).get("Endpoints") if isinstance(sme, Mapping) else None
        if not isinstance(endpoints, Mapping) or set(endpoints) != {"KAFKA_BOOTSTRAP_SERVERS"}:
            raise invalid("SelfManagedEventSource.Endpoints must contain exactly the key KAFKA_BOOTSTRAP_SERVERS.")
        servers = endpoints["KAFKA_BOOTSTRAP_SERVERS"]
        if not isinstance(servers, list) or not 1 <= len(servers) <= 10:
            raise invalid("KAFKA_BOOTSTRAP_SERVERS must list 1 to 10 servers.")
        for s in servers:
            if not isinstance(s, str) or not _HOST_PORT.match(s.strip()):
                raise invalid(f"Invalid bootstrap server {s!r}: expected host:port.")
    topics = spec.get("Topics")
    if not isinstance(topics, list) or len(topics) != 1 or not isinstance(topics[0], str) or not topics[0]:
        raise invalid("Topics must contain exactly one topic name for a Kafka event source.")
    pos = spec.get("StartingPosition")
    if pos is None:
        raise invalid("StartingPosition is required for a Kafka event source.")
    if pos not in STARTING_POSITIONS:
        raise invalid(f"Invalid StartingPosition {pos!r}; expected one of {', '.join(STARTING_POSITIONS)}.")
    if pos == "AT_TIMESTAMP" and spec.get("StartingPositionTimestamp") is None:
        raise invalid("StartingPositionTimestamp is required when StartingPosition is AT_TIMESTAMP.")
    validate_batch_size(spec.get("BatchSize"))
    validate_access(spec.get("SourceAccessConfigurations"))
    validate_poller(spec.get("ProvisionedPollerConfig"))
    window = spec.get("MaximumBatchingWindowInSeconds")
    if window is not None and not (isinstance(window, int) and 0 <= window <= 300):
        raise invalid(f"MaximumBatchingWindowInSeconds {window} is out of range 0..300.")
