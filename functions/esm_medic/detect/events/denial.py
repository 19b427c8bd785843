"""Access denials (rule 3): a call refused to an ESM execution role (Secrets Manager, KMS, EC2 ENI, MSK describe)
or a refused ``sts:AssumeRole`` by Lambda, seen in CloudTrail.

- :func:`parse_access_denial` -> :class:`AccessDenial`, classified into a catalogue entry and step;
- :func:`esms_for_role`: the Kafka ESMs whose function runs with a given role;
- :func:`report_access_denial`: turn one denial into ``ESM Status Change`` events, de-duplicated per ESM.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from esm_medic.catalogue import get_catalogue
from esm_medic.classify import classify
from esm_medic.detect.events.base import MAX_TEXT, IgnoredEvent, MalformedEvent, first, get_path, mapping
from esm_medic.detect.events.cloudtrail import cloudtrail_record
from esm_medic.detect.events.publish import EventPublisher
from esm_medic.detect.events.status import build_status_change
from esm_medic.detect.snapshot import SnapshotStore, Status, iso, parse_iso
from esm_medic.esm import EsmConfig

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws

logger = Logger(service="esm-medic", child=True)


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
    req = mapping(rec.get("requestParameters"))
    itype = str(ident.get("type") or "")
    session = ""
    if source == "sts.amazonaws.com":
        if itype != "AWSService" or ident.get("invokedBy") != "lambda.amazonaws.com":
            raise IgnoredEvent(f"AssumeRole refused to {itype or '?'}, not to the Lambda service")
        role_arn = first(req, "roleArn")
        session = first(req, "roleSessionName")
        if not role_arn:
            raise MalformedEvent("refused AssumeRole record has no requestParameters.roleArn")
        lambda_session = True
    else:
        if itype != "AssumedRole":
            raise IgnoredEvent(f"caller is {itype or '?'}, not an assumed role")
        role_arn = str(get_path(ident, "sessionContext", "sessionIssuer", "arn") or "")
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
        return first(req, "secretId")
    if source == "kms.amazonaws.com":
        key = first(req, "keyId")
        if key:
            return key
        for r in rec.get("resources") or []:
            if isinstance(r, Mapping) and r.get("ARN"):
                return str(r["ARN"])
        return ""
    if source == "ec2.amazonaws.com":
        return first(req, "subnetId", "networkInterfaceId")
    if source == "kafka.amazonaws.com":
        return first(req, "clusterArn")
    if source == "sts.amazonaws.com":
        return first(req, "roleArn")
    return ""


def _classify_denial(source: str, code: str, name: str, message: str) -> tuple[str | None, str]:
    """The catalogue entry and step of a refused call: by the service that refused it (deterministic), checked
    against the catalogue; the classifier decides when the entry is not in the catalogue."""
    entry_id = DENIAL_CALLS[source][1]
    entry = get_catalogue().get(entry_id)
    if entry is not None:
        return entry.id, entry.step
    service = source.split(".", 1)[0]
    c = classify(f"{code} {service}:{name} {message}")
    return c.entry, c.step


# ---------------------------------------------------------------------------------- role -> ESMs
_ROLE_CACHE_LOCK = threading.Lock()
#: (region, endpoint, member account or "") -> (monotonic time of the listing, {(account, role name): [function ARNs]})
_ROLE_CACHE: dict[tuple[str, str, str], tuple[float, dict[tuple[str, str], list[str]]]] = {}


def _role_key(role_arn: str) -> tuple[str, str]:
    """(account, lower-case role name): role names are unique per account, case-insensitively, whatever the path."""
    parts = role_arn.split(":", 5)
    account = parts[4] if len(parts) > 5 else ""
    return account, role_arn.rsplit("/", 1)[-1].lower()


def _functions_by_role(aws: Aws, cache_seconds: float) -> dict[tuple[str, str], list[str]]:
    # one listing per account: a member adapter lists the member's functions
    key = (aws.region, aws.endpoint_url or "", str(getattr(aws, "member_account", "") or ""))
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
        for i, reason in result.failed:  # not delivered: free the marker so the next denial can try again
            logger.warning("denial event not delivered", extra={"uuid": details[i]["uuid"], "reason": reason})
            store.release_signal(details[i]["uuid"], key_for[details[i]["uuid"]])
        reports = [
            DenialReport(**{**r.__dict__, "emitted": bool(r.detail and r.detail["event_id"] in sent_ids)})
            for r in reports
        ]
    return reports


def _iso_or(text: str, default: str) -> str:
    try:
        return iso(parse_iso(text))
    except (ValueError, TypeError):
        return default
