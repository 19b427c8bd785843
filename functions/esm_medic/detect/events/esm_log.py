"""ESM system-log records delivered by a CloudWatch Logs subscription (the log path of detection).

Kafka ESMs in provisioned mode with ``LoggingConfig.SystemLogLevel`` set write system logs into their function's log
group, one stream per ESM named ``<yyyy>/<mm>/<dd>/<esm uuid>``. ``ESM_PROCESSING_EVENT`` records (WARN) carry the
errors; ``POLLER_STATUS_EVENT`` records (INFO) the security protocol, the SASL mechanism and the pollers' IPs,
subnets and security groups; ``KAFKA_STATUS_EVENT`` (DEBUG) the offsets.

AWS documents examples, not a schema, so the fields are read tolerantly: the kind from ``eventType`` (or ``type`` /
``event_type``, or the first of the three names found in a non-JSON message); the ESM uuid from the record, else
from the stream name; the error text from ``errorMessage`` / ``message`` / ``error``.

:func:`decode_subscription` opens the subscription payload (base64 + gzip) with Powertools' ``CloudWatchLogsEvent``
and returns :class:`EsmLogRecord` values; control messages and other streams give none.
"""

from __future__ import annotations

import binascii
import json
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from esm_medic.detect.events.base import MAX_TEXT, UUID_IN_TEXT, MalformedEvent

PROCESSING = "ESM_PROCESSING_EVENT"
POLLER_STATUS = "POLLER_STATUS_EVENT"
KAFKA_STATUS = "KAFKA_STATUS_EVENT"
KINDS = (PROCESSING, POLLER_STATUS, KAFKA_STATUS)

#: an ESM system-log stream: date, then the ESM uuid
STREAM_RE = re.compile(rf"^\d{{4}}/\d{{2}}/\d{{2}}/({UUID_IN_TEXT.pattern})$")
#: the subscription filter pattern: only records that name one of the kinds reach the handler
FILTER_PATTERN = '?"ESM_PROCESSING_EVENT" ?"POLLER_STATUS_EVENT"'


@dataclass(frozen=True)
class EsmLogRecord:
    uuid: str
    kind: str
    timestamp: datetime
    log_group: str
    log_stream: str
    event_id: str
    message: str  # the error text (processing) or the raw message, clipped
    fields: Mapping[str, Any] = field(default_factory=dict)  # the decoded JSON object ({} for a text record)

    def poller_status(self) -> dict[str, Any]:
        """The ESM's own network view from a POLLER_STATUS_EVENT, normalised."""
        f = self.fields
        return {
            "security_protocol": _text(f, "securityProtocol", "security_protocol"),
            "sasl_mechanism": _text(f, "saslMechanism", "sasl_mechanism"),
            "subnets": _strings(f, "subnetIds", "subnets", "subnetCidr", "subnet_cidr", "subnetCidrs"),
            "security_groups": _strings(f, "securityGroupIds", "securityGroups", "security_groups"),
            "ips": _strings(f, "pollerIps", "ips", "ipAddresses", "pollerIp"),
        }

    def evidence(self) -> dict[str, Any]:
        return {
            "log_group": self.log_group,
            "log_stream": self.log_stream,
            "log_event_id": self.event_id,
            "event_type": self.kind,
            "message": self.message[:512],
            "timestamp": self.timestamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }


def _text(f: Mapping[str, Any], *keys: str) -> str:
    for k in keys:
        v = f.get(k)
        if isinstance(v, str) and v:
            return v[:256]
    return ""


def _strings(f: Mapping[str, Any], *keys: str) -> list[str]:
    out: list[str] = []
    for k in keys:
        v = f.get(k)
        items = v if isinstance(v, list) else [v] if isinstance(v, str) and v else []
        out.extend(str(i)[:128] for i in items if isinstance(i, str | int) and str(i) not in out)
    return out[:64]


def _kind_of(fields: Mapping[str, Any], message: str) -> str:
    for key in ("eventType", "type", "event_type", "EventType"):
        v = fields.get(key)
        if isinstance(v, str) and v in KINDS:
            return v
    for kind in KINDS:
        if kind in message:
            return kind
    return ""


def parse_record(log_group: str, log_stream: str, event: Mapping[str, Any]) -> EsmLogRecord | None:
    """One log event as an :class:`EsmLogRecord` (None when it is not an ESM system-log record)."""
    message = str(event.get("message") or "")
    try:
        decoded = json.loads(message)
    except ValueError:
        decoded = None
    fields: Mapping[str, Any] = decoded if isinstance(decoded, Mapping) else {}
    kind = _kind_of(fields, message)
    if not kind:
        return None
    uuid = _text(fields, "eventSourceMappingUuid", "eventSourceMappingUUID", "uuid", "UUID", "esmUuid")
    if not uuid:
        arn = _text(fields, "eventSourceMappingArn")
        found = UUID_IN_TEXT.search(arn) if arn else None
        uuid = found.group(0) if found else ""
    if not uuid:
        m = STREAM_RE.match(log_stream)
        uuid = m.group(1) if m else ""
    if not uuid:
        return None
    ts_ms = event.get("timestamp")
    ts = datetime.fromtimestamp(ts_ms / 1000.0, UTC) if isinstance(ts_ms, int | float) else datetime.now(UTC)
    text = _text(fields, "errorMessage", "error", "message", "errorCode") if fields else message
    if kind == PROCESSING and fields and not text:
        text = json.dumps(fields, sort_keys=True)
    return EsmLogRecord(
        uuid=uuid.lower(),
        kind=kind,
        timestamp=ts,
        log_group=log_group,
        log_stream=log_stream,
        event_id=str(event.get("id") or ""),
        message=" ".join(text.split())[:MAX_TEXT],
        fields=dict(fields),
    )


def decode_subscription(event: Any) -> tuple[str, list[EsmLogRecord]]:
    """(log group, records) of a CloudWatch Logs subscription event; raises MalformedEvent on a bad payload."""
    batch = decode_batch(event)
    return batch.log_group, batch.records


@dataclass(frozen=True)
class SubscriptionBatch:
    log_group: str
    owner: str  # the account whose log group it is (a member's, through a cross-account destination)
    records: list[EsmLogRecord]


def decode_batch(event: Any) -> SubscriptionBatch:
    """The log group, its owner account and the records of a CloudWatch Logs subscription event; raises
    MalformedEvent on a bad payload."""
    # imported here: the data_classes package costs ~38 ms at import, and only the log path needs it
    from aws_lambda_powertools.utilities.data_classes import CloudWatchLogsEvent

    if not isinstance(event, Mapping) or not isinstance(event.get("awslogs"), Mapping):
        raise MalformedEvent("expected a CloudWatch Logs subscription event ({'awslogs': {'data': ...}})")
    try:
        data = CloudWatchLogsEvent(dict(event)).parse_logs_data()
        message_type = data.message_type
        log_group, log_stream = data.log_group, data.log_stream
        owner = str(data.raw_event.get("owner") or "")
        raw_events = list(data.raw_event.get("logEvents") or [])
    except (KeyError, TypeError, ValueError, binascii.Error, zlib.error, UnicodeDecodeError) as exc:
        raise MalformedEvent(f"undecodable CloudWatch Logs payload: {type(exc).__name__}: {exc}"[:300]) from None
    if message_type != "DATA_MESSAGE":
        return SubscriptionBatch(str(log_group or ""), owner, [])
    records = [
        r for e in raw_events if isinstance(e, Mapping) and (r := parse_record(log_group, log_stream, e)) is not None
    ]
    return SubscriptionBatch(log_group, owner, records)


__all__ = [
    "FILTER_PATTERN",
    "KAFKA_STATUS",
    "POLLER_STATUS",
    "PROCESSING",
    "STREAM_RE",
    "EsmLogRecord",
    "SubscriptionBatch",
    "decode_batch",
    "decode_subscription",
    "parse_record",
]
