"""ESM system logs in the sandbox: what a Kafka ESM in provisioned mode writes when ``LoggingConfig.SystemLogLevel``
is set, into moto's CloudWatch Logs, and the payload a CloudWatch Logs subscription would deliver from it.

As AWS does it (Lambda developer guide, "Kafka event source mapping logging"): only Kafka ESMs in provisioned mode
write them; the records go to the function's log group (``/aws/lambda/<function>``), in a stream named
``<yyyy>/<mm>/<dd>/<esm uuid>``; the level filters the kinds: WARN gives ``ESM_PROCESSING_EVENT`` (errors), INFO adds
``POLLER_STATUS_EVENT`` (security protocol, SASL mechanism, the pollers' subnets / security groups / IPs), DEBUG
adds ``KAFKA_STATUS_EVENT``. The records here are JSON objects with an ``eventType`` field; AWS documents examples,
not a schema, and the product reads them tolerantly.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from esm_medic.aws import Aws, error_code

LEVELS = ("WARN", "INFO", "DEBUG")
KIND_LEVEL = {"ESM_PROCESSING_EVENT": "WARN", "POLLER_STATUS_EVENT": "INFO", "KAFKA_STATUS_EVENT": "DEBUG"}


class NoSystemLogs(RuntimeError):
    """The ESM would not write this record (not Kafka, not provisioned mode, or its level excludes the kind)."""


def stream_name(uuid: str, when: datetime) -> str:
    return f"{when.astimezone(UTC):%Y/%m/%d}/{uuid}"


def _esm(aws: Aws, uuid: str) -> dict[str, Any]:
    item = aws.call("lambda", "get_event_source_mapping", UUID=uuid)
    item.pop("ResponseMetadata", None)
    return item


def log_group_for(item: Mapping[str, Any]) -> str:
    return f"/aws/lambda/{str(item.get('FunctionArn') or '').split(':')[-1]}"


def check_writes(item: Mapping[str, Any], kind: str) -> None:
    """Raise NoSystemLogs unless this ESM writes records of ``kind``."""
    kafka = ":kafka:" in str(item.get("EventSourceArn") or "") or bool(item.get("SelfManagedEventSource"))
    pollers = item.get("ProvisionedPollerConfig") or {}
    level = str((item.get("LoggingConfig") or {}).get("SystemLogLevel") or "")
    if not kafka:
        raise NoSystemLogs("only Kafka ESMs write system logs")
    if not (isinstance(pollers, Mapping) and (pollers.get("MinimumPollers") or pollers.get("MaximumPollers"))):
        raise NoSystemLogs("system logs need provisioned mode (ProvisionedPollerConfig)")
    if not level:
        raise NoSystemLogs("LoggingConfig.SystemLogLevel is not set")
    if LEVELS.index(level) < LEVELS.index(KIND_LEVEL[kind]):
        raise NoSystemLogs(f"level {level} does not include {kind}")


def emit(aws: Aws, uuid: str, kind: str, fields: Mapping[str, Any], *, when: datetime | None = None) -> dict[str, Any]:
    """Write one system-log record of ``kind`` for ESM ``uuid``; returns {log_group, log_stream, message}."""
    when = when or datetime.now(UTC)
    item = _esm(aws, uuid)
    check_writes(item, kind)
    group, stream = log_group_for(item), stream_name(uuid, when)
    for op, params in (
        ("create_log_group", {"logGroupName": group}),
        ("create_log_stream", {"logGroupName": group, "logStreamName": stream}),
    ):
        try:
            aws.call("logs", op, **params)
        except Exception as exc:
            if error_code(exc) != "ResourceAlreadyExistsException":
                raise
    record = {
        "eventType": kind,
        "logLevel": KIND_LEVEL[kind],
        "eventSourceMappingArn": str(item.get("EventSourceMappingArn") or ""),
        "timestamp": when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        **fields,
    }
    message = json.dumps(record, separators=(",", ":"))
    aws.call(
        "logs",
        "put_log_events",
        logGroupName=group,
        logStreamName=stream,
        logEvents=[{"timestamp": int(when.timestamp() * 1000), "message": message}],
    )
    return {"log_group": group, "log_stream": stream, "message": message}


def processing_event(aws: Aws, uuid: str, error: str | None = None, *, when: datetime | None = None) -> dict[str, Any]:
    """An ``ESM_PROCESSING_EVENT`` with ``error`` (default: the ESM's current LastProcessingResult)."""
    text = error if error is not None else str(_esm(aws, uuid).get("LastProcessingResult") or "")
    return emit(aws, uuid, "ESM_PROCESSING_EVENT", {"errorMessage": text}, when=when)


def poller_status_event(aws: Aws, uuid: str, *, when: datetime | None = None) -> dict[str, Any]:
    """A ``POLLER_STATUS_EVENT`` with the network the pollers use: an MSK cluster's subnets and security groups."""
    item = _esm(aws, uuid)
    subnets: list[str] = []
    groups: list[str] = []
    arn = str(item.get("EventSourceArn") or "")
    if ":kafka:" in arn:
        info = aws.call("kafka", "describe_cluster_v2", ClusterArn=arn)["ClusterInfo"]
        vpc = ((info.get("Provisioned") or {}).get("BrokerNodeGroupInfo")) or {}
        subnets, groups = list(vpc.get("ClientSubnets") or []), list(vpc.get("SecurityGroups") or [])
    auth = {c.get("Type") for c in item.get("SourceAccessConfigurations") or []}
    if "SASL_SCRAM_512_AUTH" in auth:
        sasl = "SCRAM-SHA-512"
    elif "SASL_SCRAM_256_AUTH" in auth:
        sasl = "SCRAM-SHA-256"
    elif "CLIENT_CERTIFICATE_TLS_AUTH" in auth:
        sasl = ""
    else:  # MSK without an authentication configuration: IAM
        sasl = "AWS_MSK_IAM"
    fields = {
        "securityProtocol": "SASL_SSL" if sasl else "SSL",
        "saslMechanism": sasl,
        "subnetIds": subnets,
        "securityGroupIds": groups,
        "pollerIps": [],
    }
    return emit(aws, uuid, "POLLER_STATUS_EVENT", fields, when=when)


def subscription_payload(aws: Aws, uuid: str, *, since: datetime | None = None, filter_name: str = "esm-medic") -> dict:
    """The event a CloudWatch Logs subscription delivers to a Lambda function for the ESM's records of today (from
    ``since``): ``{"awslogs": {"data": base64(gzip(JSON))}}``."""
    item = _esm(aws, uuid)
    group, stream = log_group_for(item), stream_name(uuid, datetime.now(UTC))
    params: dict[str, Any] = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
    if since is not None:
        params["startTime"] = int(since.timestamp() * 1000)
    events = aws.call("logs", "get_log_events", **params).get("events") or []
    body = {
        "messageType": "DATA_MESSAGE",
        "owner": str(item.get("FunctionArn") or "::::").split(":")[4],
        "logGroup": group,
        "logStream": stream,
        "subscriptionFilters": [filter_name],
        "logEvents": [
            {"id": f"{e['timestamp']}{i:04d}", "timestamp": e["timestamp"], "message": e["message"]}
            for i, e in enumerate(events)
        ],
    }
    return {"awslogs": {"data": base64.b64encode(gzip.compress(json.dumps(body).encode())).decode()}}


__all__ = [
    "NoSystemLogs",
    "check_writes",
    "emit",
    "log_group_for",
    "poller_status_event",
    "processing_event",
    "stream_name",
    "subscription_payload",
]
