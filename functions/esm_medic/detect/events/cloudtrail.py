"""CloudTrail records delivered by EventBridge (``AWS API Call via CloudTrail``) or read from a trail.

:func:`cloudtrail_record` checks the record; :func:`parse_api_change` turns a successful
Create/UpdateEventSourceMapping20150331 of a Kafka ESM into an :class:`EsmApiChange` (rule 2: the watch follows it).
Access denials (rule 3) are in :mod:`esm_medic.detect.events.denial`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from esm_medic.detect.events.base import (
    CLOUDTRAIL_DETAIL_TYPE,
    UUID_RE,
    IgnoredEvent,
    MalformedEvent,
    as_object,
    envelope,
    first,
    get_path,
    mapping,
)
from esm_medic.validation import first_error

_CLOUDTRAIL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["eventSource", "eventName", "eventTime"],
    "properties": {
        "eventSource": {"type": "string", "pattern": r"^[a-z0-9.-]+\.amazonaws\.com$"},
        "eventName": {"type": "string", "minLength": 1, "maxLength": 256},
        "eventTime": {"type": "string", "format": "date-time"},
        "eventID": {"type": "string"},
        "awsRegion": {"type": "string"},
        "recipientAccountId": {"type": "string"},
        "errorCode": {"type": "string"},
        "errorMessage": {"type": "string"},
        "userIdentity": {"type": "object"},
        "requestParameters": {"type": ["object", "null"]},
        "responseElements": {"type": ["object", "null"]},
    },
}


def cloudtrail_record(event: Any) -> dict[str, Any]:
    """The CloudTrail record in an EventBridge ``AWS API Call via CloudTrail`` event (or a bare record)."""
    event = as_object(event)
    if "detail" in event:
        _source, detail_type, record = envelope(event)
        if detail_type != CLOUDTRAIL_DETAIL_TYPE:
            raise MalformedEvent(f"detail-type must be {CLOUDTRAIL_DETAIL_TYPE!r}, got {detail_type or None!r}")
    else:
        record = event
    if not isinstance(record, Mapping):
        raise MalformedEvent("CloudTrail detail must be an object")
    problem = first_error(_CLOUDTRAIL_SCHEMA, record, root="record")
    if problem is not None:
        raise MalformedEvent(f"invalid CloudTrail record at {problem}")
    return dict(record)


_KAFKA_ARN = re.compile(r"^arn:aws[a-z-]*:kafka:")


@dataclass(frozen=True)
class EsmApiChange:
    """A successful create or update of a Kafka ESM (rule 2)."""

    uuid: str
    action: str  # create | update
    event_name: str
    source_kind: str  # msk | self-managed
    event_source: str  # cluster ARN or bootstrap servers
    function: str
    state: str
    event_time: str
    event_id: str
    region: str
    account: str

    def to_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


def _kafka_source(params: Mapping[str, Any] | None) -> tuple[str, str]:
    """(source kind, event source) from CloudTrail request/response elements ('' when not Kafka or unknown)."""
    if not isinstance(params, Mapping):
        return "", ""
    arn = first(params, "eventSourceArn", "EventSourceArn")
    if arn and _KAFKA_ARN.match(arn):
        return "msk", arn
    sme = params.get("selfManagedEventSource") or params.get("SelfManagedEventSource")
    if isinstance(sme, Mapping):
        endpoints = sme.get("endpoints") or sme.get("Endpoints") or {}
        servers = endpoints.get("KAFKA_BOOTSTRAP_SERVERS") if isinstance(endpoints, Mapping) else None
        if isinstance(servers, list) and servers:
            return "self-managed", ",".join(str(s) for s in servers)
    if arn:
        return "other", arn
    return "", ""


def parse_api_change(event: Any) -> EsmApiChange:
    """Parse a CloudTrail Create/UpdateEventSourceMapping record of a Kafka ESM (rule 2)."""
    rec = cloudtrail_record(event)
    name = str(rec["eventName"])
    if rec["eventSource"] != "lambda.amazonaws.com":
        raise IgnoredEvent(f"not a Lambda API call ({rec['eventSource']})")
    if name.startswith("CreateEventSourceMapping"):
        action = "create"
    elif name.startswith("UpdateEventSourceMapping"):
        action = "update"
    else:
        raise IgnoredEvent(f"not an ESM create/update ({name})")
    if rec.get("errorCode"):
        raise IgnoredEvent(f"the {action} call failed ({rec['errorCode']}); nothing to watch")
    req = mapping(rec.get("requestParameters"))
    resp = mapping(rec.get("responseElements"))
    uuid = first(resp, "uUID", "UUID", "uuid") or first(req, "uUID", "UUID", "uuid")
    if not uuid:
        raise MalformedEvent(f"{name} record carries no ESM UUID (responseElements.uUID)")
    if not re.match(UUID_RE, uuid):
        raise MalformedEvent(f"{name} record carries an invalid ESM UUID {uuid[:64]!r}")
    kind, source = _kafka_source(req)
    if not kind:
        kind, source = _kafka_source(resp)
    if kind == "other":
        raise IgnoredEvent(f"ESM {uuid} is not a Kafka ESM ({source.split(':')[2] if ':' in source else source})")
    if not kind:
        raise IgnoredEvent(f"ESM {uuid}: the record does not say the source is Kafka")
    function = first(resp, "functionArn", "FunctionArn") or first(req, "functionName", "FunctionName")
    return EsmApiChange(
        uuid=uuid,
        action=action,
        event_name=name,
        source_kind=kind,
        event_source=source,
        function=function,
        state=first(resp, "state", "State"),
        event_time=str(rec["eventTime"]),
        event_id=str(rec.get("eventID") or ""),
        region=str(rec.get("awsRegion") or ""),
        account=str(rec.get("recipientAccountId") or get_path(rec, "userIdentity", "accountId") or ""),
    )
