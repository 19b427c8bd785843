"""Events in and out of detection.

Out: the ``ESM Status Change`` event (source ``esm-medic``) that the sweeper, the watch and the CloudTrail path put on
the bus. :func:`build_status_change` makes its detail, :func:`validate_detail` checks it against
:data:`STATUS_CHANGE_SCHEMA` (fastjsonschema, compiled once), :func:`parse_status_change` is the one parser the
workflow uses too, and :class:`EventPublisher` puts them (PutEvents, 10 entries per call, bounded retry of failed
entries).

In: CloudTrail records delivered by EventBridge (``AWS API Call via CloudTrail``) or read from a trail, and
CloudWatch alarm state changes:

- :func:`parse_api_change`: a successful Create/UpdateEventSourceMapping20150331 of a Kafka ESM ->
  :class:`EsmApiChange`;
- :func:`parse_access_denial`: a call refused to an ESM execution role (Secrets Manager, KMS, EC2 ENI, MSK describe)
  or a refused ``sts:AssumeRole`` by Lambda -> :class:`AccessDenial`, classified into a catalogue entry and step;
- :func:`parse_metric_alarm`: an esm-medic alarm on an ESM metric -> :class:`AlarmSignal`;
- :func:`esms_for_role`: the Kafka ESMs whose function runs with a given role;
- :func:`report_access_denial`: turn one denial into ``ESM Status Change`` events, de-duplicated per ESM.

Every parser raises :class:`MalformedEvent` (bad shape) or :class:`IgnoredEvent` (well formed, not for us) with a
one-line reason; handlers log the reason and return a clean result.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from esm_medic.steps import Step

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws
    from esm_medic.esm import EsmConfig

SOURCE = "esm-medic"
DETAIL_TYPE = "ESM Status Change"
DETAIL_VERSION = 1
CLOUDTRAIL_DETAIL_TYPE = "AWS API Call via CloudTrail"
ALARM_DETAIL_TYPE = "CloudWatch Alarm State Change"
TRIGGERS = ("sweep", "watch", "cloudtrail")
PUT_EVENTS_MAX = 10  # PutEvents entries per call (API limit)
MAX_TEXT = 4096

PATTERNS_DIR = Path(__file__).resolve().parent / "patterns"
#: rule name -> pattern file (one EventBridge pattern per rule; deployed by infra)
PATTERN_FILES = {
    "esm-status-error": "esm-status-error.json",
    "esm-api-change": "esm-api-change.json",
    "esm-role-access-denied": "esm-role-access-denied.json",
    "esm-metric-alarm": "esm-metric-alarm.json",
}

_UUID_RE = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_UUID_IN_TEXT = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class EventRejected(ValueError):
    """An input event esm-medic will not act on; ``reason`` says why in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MalformedEvent(EventRejected):
    """The event does not have the shape it must have."""


class IgnoredEvent(EventRejected):
    """The event is well formed but not one esm-medic acts on (another source kind, a failed call, ...)."""


# ================================================================================== ESM Status Change
_STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["State", "StateTransitionReason", "LastProcessingResult"],
    "properties": {
        "State": {"type": "string", "maxLength": 64},
        "StateTransitionReason": {"type": "string", "maxLength": MAX_TEXT},
        "LastProcessingResult": {"type": "string", "maxLength": MAX_TEXT},
    },
}

#: JSON schema (draft-07) of the ``detail`` of an ``ESM Status Change`` event, version 1.
STATUS_CHANGE_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "esm-medic ESM Status Change detail, version 1",
    "type": "object",
    "required": [
        "version",
        "event_id",
        "uuid",
        "incident_id",
        "function_arn",
        "event_source",
        "source_kind",
        "old",
        "new",
        "classification",
        "recovered",
        "observed_at",
        "since",
        "trigger",
    ],
    "properties": {
        "version": {"const": DETAIL_VERSION},
        "event_id": {"type": "string", "minLength": 1, "maxLength": 256},
        "uuid": {"type": "string", "pattern": _UUID_RE},
        "incident_id": {"type": "string", "minLength": 1, "maxLength": 256},
        "function_arn": {"type": "string", "maxLength": 2048},
        "event_source": {"type": "string", "maxLength": MAX_TEXT},
        "source_kind": {"enum": ["msk", "self-managed"]},
        "old": {"anyOf": [{"type": "null"}, _STATUS_SCHEMA]},
        "new": _STATUS_SCHEMA,
        "classification": {
            "type": "object",
            "required": ["entry", "step"],
            "properties": {
                "entry": {"type": ["string", "null"], "maxLength": 128},
                "step": {"enum": [s.value for s in Step]},
                "kind": {"enum": ["error", "healthy", "unknown", "empty"]},
                "title": {"type": "string"},
            },
        },
        "recovered": {"type": "boolean"},
        "observed_at": {"type": "string", "format": "date-time"},
        "since": {"type": "string", "format": "date-time"},
        "trigger": {"enum": list(TRIGGERS)},
        "evidence": {"type": "object"},
    },
}


@lru_cache(maxsize=1)
def _status_change_validator() -> Callable[[Any], Any]:
    import fastjsonschema

    return fastjsonschema.compile(STATUS_CHANGE_SCHEMA)


@dataclass(frozen=True)
class StatusChange:
    """A parsed, validated ``ESM Status Change`` detail."""

    event_id: str
    uuid: str
    incident_id: str
    function_arn: str
    event_source: str
    source_kind: str
    old: Mapping[str, str] | None
    new: Mapping[str, str]
    entry: str | None
    step: str
    recovered: bool
    observed_at: str
    since: str
    trigger: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    detail: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_error(self) -> bool:
        """True for an event that reports an ESM going into (or staying in) an error status."""
        return not self.recovered and self.step != Step.NONE.value

    def to_detail(self) -> dict[str, Any]:
        return dict(self.detail)


def validate_detail(detail: Any) -> dict[str, Any]:
    """Check a detail against the schema and the cross-field rules; returns it, or raises MalformedEvent."""
    import fastjsonschema

    if not isinstance(detail, Mapping):
        raise MalformedEvent(f"detail must be an object, got {type(detail).__name__}")
    try:
        _status_change_validator()(detail)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise MalformedEvent(f"invalid ESM Status Change detail: {exc.message}") from None
    if detail["recovered"] and detail["old"] is None:
        raise MalformedEvent("invalid ESM Status Change detail: a recovery needs the old status")
    return dict(detail)


def parse_status_change(event: Any) -> StatusChange:
    """Parse an ``ESM Status Change`` EventBridge event (or its bare detail, or either as JSON text).

    Raises MalformedEvent with the reason when the envelope or the detail is wrong.
    """
    if isinstance(event, str | bytes | bytearray):
        try:
            event = json.loads(event)
        except ValueError as exc:
            raise MalformedEvent(f"not JSON: {exc}") from None
    if not isinstance(event, Mapping):
        raise MalformedEvent(f"event must be an object, got {type(event).__name__}")
    if "detail" in event or "detail-type" in event or "source" in event:
        if event.get("source") != SOURCE:
            raise MalformedEvent(f"source must be {SOURCE!r}, got {event.get('source')!r}")
        if event.get("detail-type") != DETAIL_TYPE:
            raise MalformedEvent(f"detail-type must be {DETAIL_TYPE!r}, got {event.get('detail-type')!r}")
        detail = event.get("detail")
    else:
        detail = event
    d = validate_detail(detail)
    cls = d["classification"]
    return StatusChange(
        event_id=d["event_id"],
        uuid=d["uuid"],
        incident_id=d["incident_id"],
        function_arn=d["function_arn"],
        event_source=d["event_source"],
        source_kind=d["source_kind"],
        old=d["old"],
        new=d["new"],
        entry=cls.get("entry"),
        step=cls["step"],
        recovered=d["recovered"],
        observed_at=d["observed_at"],
        since=d["since"],
        trigger=d["trigger"],
        evidence=d.get("evidence") or {},
        detail=d,
    )


def build_status_change(
    *,
    event_id: str,
    uuid: str,
    incident_id: str,
    function_arn: str,
    event_source: str,
    source_kind: str,
    old: Mapping[str, str] | None,
    new: Mapping[str, str],
    classification: Mapping[str, Any],
    recovered: bool,
    observed_at: str,
    since: str,
    trigger: str = "sweep",
    evidence: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The detail of an ``ESM Status Change`` event, validated (raises MalformedEvent on a programming error)."""
    detail: dict[str, Any] = {
        "version": DETAIL_VERSION,
        "event_id": event_id,
        "uuid": uuid,
        "incident_id": incident_id,
        "function_arn": function_arn,
        "event_source": event_source[:MAX_TEXT],
        "source_kind": source_kind,
        "old": _clip_status(old) if old is not None else None,
        "new": _clip_status(new),
        "classification": {
            "entry": classification.get("entry"),
            "step": classification.get("step") or Step.UNKNOWN.value,
            **({"kind": classification["kind"]} if classification.get("kind") else {}),
            **({"title": classification["title"]} if classification.get("title") else {}),
        },
        "recovered": bool(recovered),
        "observed_at": observed_at,
        "since": since,
        "trigger": trigger,
    }
    if evidence:
        detail["evidence"] = dict(evidence)
    return validate_detail(detail)


def _clip_status(status: Mapping[str, str]) -> dict[str, str]:
    return {
        "State": str(status.get("State") or "")[:64],
        "StateTransitionReason": str(status.get("StateTransitionReason") or "")[:MAX_TEXT],
        "LastProcessingResult": str(status.get("LastProcessingResult") or "")[:MAX_TEXT],
    }


def put_entry(detail: Mapping[str, Any], bus: str) -> dict[str, Any]:
    """A PutEvents entry for one detail."""
    return {
        "Source": SOURCE,
        "DetailType": DETAIL_TYPE,
        "Detail": json.dumps(detail, separators=(",", ":"), sort_keys=True),
        "EventBusName": bus,
    }


@dataclass
class PutResult:
    sent: list[int] = field(default_factory=list)  # indexes (into the input) delivered
    failed: list[tuple[int, str]] = field(default_factory=list)  # (index, "code: message") not delivered
    calls: int = 0


class EventPublisher:
    """PutEvents in batches of 10; entries that come back failed are retried (bounded, with backoff)."""

    def __init__(
        self,
        aws: Aws,
        bus: str = "default",
        *,
        max_attempts: int = 3,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.aws = aws
        self.bus = bus
        self.max_attempts = max(1, max_attempts)
        self._sleep = sleep

    def put(self, details: Sequence[Mapping[str, Any]]) -> PutResult:
        result = PutResult()
        for start in range(0, len(details), PUT_EVENTS_MAX):
            todo = list(range(start, min(start + PUT_EVENTS_MAX, len(details))))
            last_error: dict[int, str] = {}
            for attempt in range(self.max_attempts):
                if attempt:
                    self._sleep(min(0.2 * 2 ** (attempt - 1), 2.0))
                entries = [put_entry(details[i], self.bus) for i in todo]
                result.calls += 1
                try:
                    resp = self.aws.call("events", "put_events", Entries=entries)
                except Exception as exc:  # throttled past the adapter's retries, endpoint down, ...
                    from esm_medic.aws import error_code

                    reason = f"{error_code(exc) or type(exc).__name__}: {exc}"[:300]
                    last_error = dict.fromkeys(todo, reason)
                    continue
                retry: list[int] = []
                for i, out in zip(todo, resp.get("Entries") or [], strict=False):
                    if out.get("EventId") and not out.get("ErrorCode"):
                        result.sent.append(i)
                    else:
                        retry.append(i)
                        last_error[i] = f"{out.get('ErrorCode', '?')}: {out.get('ErrorMessage', '')}"[:300]
                answered = len(resp.get("Entries") or [])
                for i in todo[answered:]:  # fewer results than entries: treat the rest as failed
                    retry.append(i)
                    last_error[i] = "no result for entry"
                todo = retry
                if not todo:
                    break
            result.failed.extend((i, last_error.get(i, "unknown")) for i in todo)
        return result


# ================================================================================== patterns
def load_pattern(name: str) -> dict[str, Any]:
    """The EventBridge pattern of rule ``name`` (a key of PATTERN_FILES, with or without ``.json``)."""
    key = name.removesuffix(".json")
    if key not in PATTERN_FILES:
        raise KeyError(f"no pattern {name!r}; known: {', '.join(PATTERN_FILES)}")
    data: dict[str, Any] = json.loads((PATTERNS_DIR / PATTERN_FILES[key]).read_text(encoding="utf-8"))
    return data


# ================================================================================== CloudTrail
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


@lru_cache(maxsize=1)
def _cloudtrail_validator() -> Callable[[Any], Any]:
    import fastjsonschema

    return fastjsonschema.compile(_CLOUDTRAIL_SCHEMA)


def cloudtrail_record(event: Any) -> dict[str, Any]:
    """The CloudTrail record in an EventBridge ``AWS API Call via CloudTrail`` event (or a bare record)."""
    import fastjsonschema

    if isinstance(event, str | bytes | bytearray):
        try:
            event = json.loads(event)
        except ValueError as exc:
            raise MalformedEvent(f"not JSON: {exc}") from None
    if not isinstance(event, Mapping):
        raise MalformedEvent(f"event must be an object, got {type(event).__name__}")
    if "detail" in event:
        if event.get("detail-type") != CLOUDTRAIL_DETAIL_TYPE:
            raise MalformedEvent(f"detail-type must be {CLOUDTRAIL_DETAIL_TYPE!r}, got {event.get('detail-type')!r}")
        record = event.get("detail")
    else:
        record = event
    if not isinstance(record, Mapping):
        raise MalformedEvent("CloudTrail detail must be an object")
    try:
        _cloudtrail_validator()(record)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise MalformedEvent(f"invalid CloudTrail record: {exc.message}") from None
    return dict(record)


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _mapping(obj: Any) -> Mapping[str, Any]:
    return obj if isinstance(obj, Mapping) else {}


def _first(obj: Mapping[str, Any] | None, *keys: str) -> str:
    if not isinstance(obj, Mapping):
        return ""
    for k in keys:
        v = obj.get(k)
        if isinstance(v, str) and v:
            return v
    return ""


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
    arn = _first(params, "eventSourceArn", "EventSourceArn")
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
    req = _mapping(rec.get("requestParameters"))
    resp = _mapping(rec.get("responseElements"))
    uuid = _first(resp, "uUID", "UUID", "uuid") or _first(req, "uUID", "UUID", "uuid")
    if not uuid:
        raise MalformedEvent(f"{name} record carries no ESM UUID (responseElements.uUID)")
    if not re.match(_UUID_RE, uuid):
        raise MalformedEvent(f"{name} record carries an invalid ESM UUID {uuid[:64]!r}")
    kind, source = _kafka_source(req)
    if not kind:
        kind, source = _kafka_source(resp)
    if kind == "other":
        raise IgnoredEvent(f"ESM {uuid} is not a Kafka ESM ({source.split(':')[2] if ':' in source else source})")
    if not kind:
        raise IgnoredEvent(f"ESM {uuid}: the record does not say the source is Kafka")
    function = _first(resp, "functionArn", "FunctionArn") or _first(req, "functionName", "FunctionName")
    return EsmApiChange(
        uuid=uuid,
        action=action,
        event_name=name,
        source_kind=kind,
        event_source=source,
        function=function,
        state=_first(resp, "state", "State"),
        event_time=str(rec["eventTime"]),
        event_id=str(rec.get("eventID") or ""),
        region=str(rec.get("awsRegion") or ""),
        account=str(rec.get("recipientAccountId") or _get(rec, "userIdentity", "accountId") or ""),
    )


# ---------------------------------------------------------------------------------- access denials
#: (eventSource, eventName) -> catalogue entry for a refused call made with an ESM's execution role
DENIAL_CALLS: dict[str, tuple[frozenset[str], str]] = {
    "secretsmanager.amazonaws.com": (frozenset({"GetSecretValue"}), "secret-access-denied"),
    "kms.amazonaws.com": (frozenset({"Decrypt"}), "secret-access-denied"),
    "ec2.amazonaws.com": (
        frozenset(
            {
                "CreateNetworkInterface",
                "DescribeNetworkInterfaces",
                "DeleteNetworkInterface",
                "DescribeSubnets",
                "DescribeSecurityGroups",
                "DescribeVpcs",
            }
        ),
        "eni-permission-denied",
    ),
    "kafka.amazonaws.com": (
        frozenset({"DescribeClusterV2", "DescribeCluster", "GetBootstrapBrokers", "DescribeVpcConnection"}),
        "msk-describe-permission-denied",
    ),
    "sts.amazonaws.com": (frozenset({"AssumeRole"}), "execution-role-assume-failed"),
}
LAMBDA_SESSION_PREFIX = "awslambda_"


def is_denial_code(code: str) -> bool:
    """errorCodes that mean "refused": AccessDenied*, *UnauthorizedOperation, KMS*, DisabledException,
    DecryptionFailure."""
    return (
        code.startswith(("AccessDenied", "KMS"))
        or code.endswith("UnauthorizedOperation")
        or code in ("DisabledException", "DecryptionFailure")
    )


@dataclass(frozen=True)
class AccessDenial:
    """A call refused to a role that may be an ESM execution role (rule 3)."""

    role_arn: str
    role_name: str
    account: str
    region: str
    event_source: str
    event_name: str
    error_code: str
    error_message: str
    resource: str
    session_name: str
    lambda_session: bool  # the session name starts awslambda_ or the caller is lambda.amazonaws.com
    entry: str | None
    step: str
    event_time: str
    event_id: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def evidence(self) -> dict[str, Any]:
        return {
            "cloudtrail_event_id": self.event_id,
            "event_source": self.event_source,
            "event_name": self.event_name,
            "error_code": self.error_code,
            "error_message": self.error_message[:512],
            "role_arn": self.role_arn,
            "resource": self.resource,
            "session_name": self.session_name,
            "event_time": self.event_time,
        }


def _role_from_assumed_arn(arn: str) -> tuple[str, str, str]:
    """'arn:aws:sts::123:assumed-role/name/session' -> (account, role name, session)."""
    parts = arn.split(":", 5)
    if len(parts) < 6 or not parts[5].startswith("assumed-role/"):
        return "", "", ""
    segs = parts[5].split("/")
    return parts[4], segs[1] if len(segs) > 1 else "", segs[-1] if len(segs) > 2 else ""


def parse_access_denial(event: Any) -> AccessDenial:
    """Parse a refused call made with an ESM-like execution role (or a refused AssumeRole by Lambda)."""
    rec = cloudtrail_record(event)
    source, name = str(rec["eventSource"]), str(rec["eventName"])
    code = str(rec.get("errorCode") or "")
    if not code:
        raise IgnoredEvent(f"{source} {name} succeeded (no errorCode)")
    if not is_denial_code(code):
        raise IgnoredEvent(f"{source} {name} failed with {code}, which is not an access denial")
    known = DENIAL_CALLS.get(source)
    if known is None or name not in known[0]:
        raise IgnoredEvent(f"{source} {name} is not a call an ESM makes")
    ident = rec.get("userIdentity")
    if not isinstance(ident, Mapping):
        raise MalformedEvent("record has no userIdentity")
    req = _mapping(rec.get("requestParameters"))
    itype = str(ident.get("type") or "")
    session = ""
    if source == "sts.amazonaws.com":
        if itype != "AWSService" or ident.get("invokedBy") != "lambda.amazonaws.com":
            raise IgnoredEvent(f"AssumeRole refused to {itype or '?'}, not to the Lambda service")
        role_arn = _first(req, "roleArn")
        session = _first(req, "roleSessionName")
        if not role_arn:
            raise MalformedEvent("refused AssumeRole record has no requestParameters.roleArn")
        lambda_session = True
    else:
        if itype != "AssumedRole":
            raise IgnoredEvent(f"caller is {itype or '?'}, not an assumed role")
        role_arn = str(_get(ident, "sessionContext", "sessionIssuer", "arn") or "")
        _acct, _name, session = _role_from_assumed_arn(str(ident.get("arn") or ""))
        if not role_arn:
            acct, rname, _s = _role_from_assumed_arn(str(ident.get("arn") or ""))
            if not rname:
                raise MalformedEvent("record names no role (userIdentity.sessionContext.sessionIssuer.arn)")
            role_arn = f"arn:aws:iam::{acct}:role/{rname}"
        if not session:
            principal = str(ident.get("principalId") or "")
            session = principal.split(":", 1)[1] if ":" in principal else ""
        lambda_session = session.startswith(LAMBDA_SESSION_PREFIX) or ident.get("invokedBy") == "lambda.amazonaws.com"
    if ":role/" not in role_arn:
        raise MalformedEvent(f"not a role ARN: {role_arn[:200]!r}")
    account = role_arn.split(":")[4] if role_arn.count(":") >= 5 else ""
    entry, step = _classify_denial(source, code, name, str(rec.get("errorMessage") or ""))
    return AccessDenial(
        role_arn=role_arn,
        role_name=role_arn.rsplit("/", 1)[-1],
        account=account,
        region=str(rec.get("awsRegion") or ""),
        event_source=source,
        event_name=name,
        error_code=code,
        error_message=str(rec.get("errorMessage") or "")[:MAX_TEXT],
        resource=_denied_resource(source, req, rec),
        session_name=session,
        lambda_session=lambda_session,
        entry=entry,
        step=step,
        event_time=str(rec["eventTime"]),
        event_id=str(rec.get("eventID") or ""),
    )


def _denied_resource(source: str, req: Mapping[str, Any], rec: Mapping[str, Any]) -> str:
    if source == "secretsmanager.amazonaws.com":
        return _first(req, "secretId")
    if source == "kms.amazonaws.com":
        key = _first(req, "keyId")
        if key:
            return key
        for r in rec.get("resources") or []:
            if isinstance(r, Mapping) and r.get("ARN"):
                return str(r["ARN"])
        return ""
    if source == "ec2.amazonaws.com":
        return _first(req, "subnetId", "networkInterfaceId")
    if source == "kafka.amazonaws.com":
        return _first(req, "clusterArn")
    if source == "sts.amazonaws.com":
        return _first(req, "roleArn")
    return ""


def _classify_denial(source: str, code: str, name: str, message: str) -> tuple[str | None, str]:
    """The catalogue entry and step of a refused call: by the service that refused it (deterministic), checked
    against the catalogue; the classifier decides when the entry is not in the catalogue."""
    from esm_medic.catalogue import get_catalogue

    entry_id = DENIAL_CALLS[source][1]
    entry = get_catalogue().get(entry_id)
    if entry is not None:
        return entry.id, entry.step
    from esm_medic.classify import classify

    service = source.split(".", 1)[0]
    c = classify(f"{code} {service}:{name} {message}")
    return c.entry, c.step


# ---------------------------------------------------------------------------------- role -> ESMs
_ROLE_CACHE_LOCK = threading.Lock()
#: (region, endpoint) -> (monotonic time of the listing, {(account, role name): [function ARNs]})
_ROLE_CACHE: dict[tuple[str, str], tuple[float, dict[tuple[str, str], list[str]]]] = {}


def _role_key(role_arn: str) -> tuple[str, str]:
    """(account, lower-case role name): role names are unique per account, case-insensitively, whatever the path."""
    parts = role_arn.split(":", 5)
    account = parts[4] if len(parts) > 5 else ""
    return account, role_arn.rsplit("/", 1)[-1].lower()


def _functions_by_role(aws: Aws, cache_seconds: float) -> dict[tuple[str, str], list[str]]:
    key = (aws.region, aws.endpoint_url or "")
    now = time.monotonic()
    with _ROLE_CACHE_LOCK:
        hit = _ROLE_CACHE.get(key)
        if hit and now - hit[0] < cache_seconds:
            return hit[1]
    mapping: dict[tuple[str, str], list[str]] = {}
    for fn in aws.paginate("lambda", "list_functions", "Functions"):
        role = str(fn.get("Role") or "")
        arn = str(fn.get("FunctionArn") or "")
        if role and arn:
            mapping.setdefault(_role_key(role), []).append(arn)
    with _ROLE_CACHE_LOCK:
        _ROLE_CACHE[key] = (now, mapping)
    return mapping


def clear_role_cache() -> None:
    with _ROLE_CACHE_LOCK:
        _ROLE_CACHE.clear()


def esms_for_role(aws: Aws, role_arn: str, *, cache_seconds: float = 300.0) -> list[EsmConfig]:
    """The Kafka ESMs whose function runs with ``role_arn`` (matched by account + role name, so a role path in one
    ARN and not the other still matches). Cost: ListFunctions pages (cached ``cache_seconds`` per process) plus one
    ListEventSourceMappings per matching function."""
    from esm_medic.esm import EsmConfig

    functions = _functions_by_role(aws, cache_seconds).get(_role_key(role_arn), [])
    out: list[EsmConfig] = []
    seen: set[str] = set()
    for fn_arn in functions:
        for item in aws.paginate("lambda", "list_event_source_mappings", "EventSourceMappings", FunctionName=fn_arn):
            cfg = EsmConfig.from_api(item)
            if cfg.is_kafka and cfg.uuid not in seen:
                seen.add(cfg.uuid)
                out.append(cfg)
    return out


@dataclass(frozen=True)
class DenialReport:
    uuid: str
    function_arn: str
    entry: str | None
    step: str
    incident_id: str
    emitted: bool  # an ESM Status Change was put for it
    duplicate: bool  # the same denial was already reported for this ESM within the de-duplication window
    detail: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "function_arn": self.function_arn,
            "classification": {"entry": self.entry, "step": self.step},
            "incident_id": self.incident_id,
            "emitted": self.emitted,
            "duplicate": self.duplicate,
        }


def report_access_denial(
    aws: Aws,
    denial: AccessDenial,
    *,
    now: datetime,
    bus: str = "default",
    dedupe_seconds: int = 900,
    emit: bool = True,
    esms: Iterable[EsmConfig] | None = None,
    table: str | None = None,
) -> list[DenialReport]:
    """For each Kafka ESM using the denied role: claim a de-duplication marker (per ESM and catalogue entry, for
    ``dedupe_seconds``) and, for the first claimer, put an ``ESM Status Change`` (trigger ``cloudtrail``) so the
    error rule starts the workflow. The event's ``old`` is the sweeper's snapshot status (None if never seen), its
    ``new`` the ESM's current status, its classification the denial's; the incident is the snapshot's open one,
    else a new id for this signal (the sweeper's snapshot is not changed: it still follows the ESM's own status)."""
    from esm_medic.detect.snapshot import SnapshotStore, Status, iso

    store = SnapshotStore(aws, table)
    targets = list(esms) if esms is not None else esms_for_role(aws, denial.role_arn)
    reports: list[DenialReport] = []
    details: list[dict[str, Any]] = []
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    key_for: dict[str, str] = {}
    for esm in targets:
        snap = store.get(esm.uuid, consistent=False)
        incident = (snap.incident_id if snap else "") or f"inc-{stamp}-{esm.uuid[:8]}-ct"
        key = key_for[esm.uuid] = f"cloudtrail#{denial.entry or denial.step}"
        claimed = store.claim_signal(esm.uuid, key, now=now, ttl_seconds=dedupe_seconds, data=denial.event_id)
        detail = None
        if claimed:
            old = snap.status.to_api() if snap and snap.status else None
            detail = build_status_change(
                event_id=f"{esm.uuid}:ct:{denial.event_id or stamp}",
                uuid=esm.uuid,
                incident_id=incident,
                function_arn=esm.function_arn,
                event_source=esm.cluster_arn or ",".join(esm.bootstrap_servers),
                source_kind=esm.source_kind,
                old=old,
                new=Status.from_esm(esm).to_api(),
                classification={"entry": denial.entry, "step": denial.step, "kind": "error"},
                recovered=False,
                observed_at=iso(now),
                since=_iso_or(denial.event_time, iso(now)),
                trigger="cloudtrail",
                evidence=denial.evidence(),
            )
            details.append(detail)
        reports.append(
            DenialReport(
                uuid=esm.uuid,
                function_arn=esm.function_arn,
                entry=denial.entry,
                step=denial.step,
                incident_id=incident,
                emitted=False,
                duplicate=not claimed,
                detail=detail,
            )
        )
    if emit and details:
        result = EventPublisher(aws, bus).put(details)
        sent_ids = {details[i]["event_id"] for i in result.sent}
        for i, _reason in result.failed:  # not delivered: free the marker so the next denial can try again
            store.release_signal(details[i]["uuid"], key_for[details[i]["uuid"]])
        reports = [
            DenialReport(**{**r.__dict__, "emitted": bool(r.detail and r.detail["event_id"] in sent_ids)})
            for r in reports
        ]
    return reports


def _iso_or(text: str, default: str) -> str:
    from esm_medic.detect.snapshot import iso, parse_iso

    try:
        return iso(parse_iso(text))
    except (ValueError, TypeError):
        return default


# ================================================================================== CloudWatch alarms
@dataclass(frozen=True)
class AlarmSignal:
    """An esm-medic alarm on ESM metrics went into ALARM (rule 4): re-check these ESMs."""

    uuids: tuple[str, ...]
    alarm_name: str
    metrics: tuple[str, ...]
    state: str
    reason: str
    time: str


def parse_metric_alarm(event: Any) -> AlarmSignal:
    """Parse a ``CloudWatch Alarm State Change`` event of an alarm on ESM metrics.

    The ESM UUID comes from the metric dimension ``EventSourceMappingUUID`` or, failing that, from the alarm name
    (infra names the alarms ``esm-medic-<uuid>-<metric>``)."""
    if not isinstance(event, Mapping):
        raise MalformedEvent(f"event must be an object, got {type(event).__name__}")
    if event.get("detail-type") != ALARM_DETAIL_TYPE or event.get("source") != "aws.cloudwatch":
        raise MalformedEvent(f"not a CloudWatch alarm state change (detail-type {event.get('detail-type')!r})")
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        raise MalformedEvent("alarm event has no detail object")
    name = str(detail.get("alarmName") or "")
    state = str(_get(detail, "state", "value") or "")
    if not name or not state:
        raise MalformedEvent("alarm event lacks detail.alarmName or detail.state.value")
    if state != "ALARM":
        raise IgnoredEvent(f"alarm {name} is {state}, not ALARM")
    uuids: list[str] = []
    metric_names: list[str] = []
    for m in _get(detail, "configuration", "metrics") or []:
        metric = _get(m, "metricStat", "metric")
        if not isinstance(metric, Mapping):
            continue
        if metric.get("name"):
            metric_names.append(str(metric["name"]))
        dims = metric.get("dimensions")
        if isinstance(dims, Mapping):
            u = str(dims.get("EventSourceMappingUUID") or dims.get("UUID") or "")
            if u and re.match(_UUID_RE, u) and u not in uuids:
                uuids.append(u)
    if not uuids:
        found = _UUID_IN_TEXT.search(name)
        if found:
            uuids.append(found.group(0))
    if not uuids:
        raise MalformedEvent(f"alarm {name} names no ESM (no EventSourceMappingUUID dimension, no UUID in its name)")
    return AlarmSignal(
        uuids=tuple(uuids),
        alarm_name=name,
        metrics=tuple(dict.fromkeys(metric_names)),
        state=state,
        reason=str(_get(detail, "state", "reason") or "")[:512],
        time=str(event.get("time") or ""),
    )


__all__ = [
    "ALARM_DETAIL_TYPE",
    "CLOUDTRAIL_DETAIL_TYPE",
    "DENIAL_CALLS",
    "DETAIL_TYPE",
    "DETAIL_VERSION",
    "PATTERN_FILES",
    "SOURCE",
    "STATUS_CHANGE_SCHEMA",
    "AccessDenial",
    "AlarmSignal",
    "DenialReport",
    "EsmApiChange",
    "EventPublisher",
    "EventRejected",
    "IgnoredEvent",
    "MalformedEvent",
    "PutResult",
    "StatusChange",
    "build_status_change",
    "clear_role_cache",
    "cloudtrail_record",
    "esms_for_role",
    "is_denial_code",
    "load_pattern",
    "parse_access_denial",
    "parse_api_change",
    "parse_metric_alarm",
    "parse_status_change",
    "put_entry",
    "report_access_denial",
    "validate_detail",
]
