"""One incident per ESM and root cause: the first execution owns it, later ones join it (no second change,
approval request or ticket). Storage: :class:`esm_medic.remediate.lock.IncidentClaim`."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from esm_medic.aws import from_item, to_value
from esm_medic.config import Settings
from esm_medic.remediate.lock import IncidentClaim
from esm_medic.tables import STATE
from esm_medic.workflow.classify import classify_status
from esm_medic.workflow.common import CLAIM_COOLDOWN_SECONDS, CLAIM_MARGIN_SECONDS, StepFailed, logger, obj, status_of

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws


def root_cause_fingerprint(uuid: str, diagnosis: Mapping[str, Any]) -> str:
    """16 hex chars naming (ESM, root cause, fix): every incident of one cause on one ESM shares it, whatever the
    status text; incidents, approval requests and tickets are keyed by it."""
    rc = obj(diagnosis, "root_cause")
    parts = [uuid.lower(), str(rc.get("id") or diagnosis.get("step") or "unknown"), str(rc.get("fix") or "ticket")]
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:16]


def claim_ttl(run: Mapping[str, Any]) -> int:
    """How long an owner may hold an incident: its approval wait plus its verification window, plus a margin."""

    def num(key: str, default: int) -> int:
        try:
            value = run.get(key)
            return default if value is None else max(0, int(value))
        except (TypeError, ValueError):
            return default

    verify = num("verify_max_attempts", 12) * max(1, num("verify_max_wait_seconds", 300))
    return num("approval_timeout_seconds", 86400) + verify + CLAIM_MARGIN_SECONDS


def started_epoch(run: Mapping[str, Any]) -> float:
    """The execution's start (``run.started_at``, ISO 8601) in epoch seconds; 0 when unknown."""
    text = str(run.get("started_at") or "")
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def _esm_ok_now(aws: Aws, uuid: str) -> bool:
    item = aws.call("lambda", "get_event_source_mapping", UUID=uuid)
    status = status_of(item)
    return status["State"] == "Enabled" and bool(classify_status(status, uuid).get("healthy"))


def claim_incident(
    aws: Aws,
    settings: Settings,
    *,
    uuid: str,
    incident_id: str,
    execution: str,
    key: str,
    ttl_seconds: int,
    started_at: float = 0.0,
) -> dict[str, Any]:
    """Own the (ESM, root cause) incident ``key`` or join its owner.

    Returns ``{"key", "won", "owner", "joined_execution", "joined_incident", "holder_state", "holder_outcome"}``.
    The first execution owns it; a later one joins (its name is recorded on the claim). A finished (``done``) claim
    is taken over instead by an execution that started after the owner finished (``started_at``, epoch seconds: a
    new sighting, not a straggler of the same storm), or when the owner recovered the ESM and it fails again now.
    Without an execution name (a direct call) nothing is claimed.
    """

    out: dict[str, Any] = {
        "key": key,
        "won": True,
        "owner": execution,
        "joined_execution": None,
        "joined_incident": None,
        "holder_state": None,
        "holder_outcome": None,
    }
    if not execution:
        return out
    claim = IncidentClaim(aws, uuid, key, table=settings.state_table)
    for _ in range(4):
        if claim.acquire(execution, incident_id, ttl_seconds):
            return out
        holder = claim.holder()
        if holder is None:  # released between the two calls
            continue
        newer = bool(started_at) and holder.finished_at > 0 and started_at > holder.finished_at
        if holder.state == "done" and (newer or (holder.outcome == "recovered" and not _esm_ok_now(aws, uuid))):
            if claim.take_over(execution, incident_id, ttl_seconds, holder.owner):
                logger.info("ESM %s: taking over %s from finished %s", uuid, key, holder.owner)
                return out
            continue
        if not claim.join(execution):
            logger.warning(
                "incident %s of ESM %s: joiner %s not listed on the claim (full or gone)", key, uuid, execution
            )
        logger.info("ESM %s: joining %s (%s), which owns root cause %s", uuid, holder.owner, holder.state, key)
        out.update(
            won=False,
            owner=holder.owner,
            joined_execution=holder.owner,
            joined_incident=holder.incident_id,
            holder_state=holder.state,
            holder_outcome=holder.outcome or None,
        )
        return out
    raise StepFailed(f"the incident claim {key} of ESM {uuid} kept changing hands; retry")


def finish_claim(aws: Aws, record: Mapping[str, Any], cooldown_seconds: int = CLAIM_COOLDOWN_SECONDS) -> bool:
    """The owner recorded its final outcome: mark its claim done (joiners of the cool-down see the outcome)."""

    key = str(record.get("root_cause_fingerprint") or "")
    owner = str(record.get("claim_owner") or "")
    if not key or not owner or owner != record.get("execution"):
        return False
    claim = IncidentClaim(aws, str(record["uuid"]), key, table=STATE.name)
    return claim.finish(owner, str(record.get("outcome") or ""), cooldown_seconds)


def finish_claims_of(aws: Aws, uuid: str, execution: str, outcome: str) -> list[str]:
    """Mark done every claim of ESM ``uuid`` that ``execution`` owns (an execution that died without recording
    its outcome normally: its claim must not block the cause until its TTL). Returns the finished keys."""
    finished: list[str] = []
    for item in aws.paginate(
        "dynamodb",
        "query",
        "Items",
        TableName=STATE.name,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": to_value(f"CLAIM#{uuid}")},
        ConsistentRead=True,
    ):
        claim = from_item(item)
        key = str(claim.get("sk") or "")
        if claim.get("owner") != execution or not key:
            continue
        if IncidentClaim(aws, uuid, key, table=STATE.name).finish(execution, outcome, CLAIM_COOLDOWN_SECONDS):
            finished.append(key)
    return finished
