"""The ``record`` step: the outcome of an execution (STATE item + audit row), and the safety net for executions
that died without one."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from esm_medic.accounts import account_of_payload
from esm_medic.aws import error_code, from_item, to_value
from esm_medic.notify import HOLD_KINDS, open_ticket, show_stage
from esm_medic.remediate.audit import AuditLog
from esm_medic.remediate.base import ActionRecord
from esm_medic.tables import AUDIT, STATE
from esm_medic.workflow.claim import finish_claim, finish_claims_of
from esm_medic.workflow.common import (
    _UUID_RE,
    ACTOR,
    OUTCOME_SK_PREFIX,
    OUTCOME_TTL_DAYS,
    OUTCOMES,
    TableMissing,
    dig,
    logger,
    obj,
)
from esm_medic.workflow.payloads import OutcomeRecord, RecordRequest, RecordResult, TicketResult

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws


STEP_KEYS = ("classification", "diagnosis", "decision", "action_record", "verification", "rollback")


def _lock_holder(state: Mapping[str, Any]) -> str | None:
    """The execution whose ESM lock made this one join (LockConflict's message names it)."""
    from esm_medic.workflow.remediate import HELD_BY_EXECUTION

    found = HELD_BY_EXECUTION.search(str(dig(state, "errors", "remediate", "Cause") or ""))
    return found.group(1) if found else None


def failure_summary(state: Mapping[str, Any]) -> tuple[str, str, str]:
    """(failed step, error name, message) from the error the Catch put in the state."""
    errors: dict[str, Any] = {}
    if isinstance(state.get("classify_error"), Mapping):
        errors["classify"] = state["classify_error"]
    if isinstance(state.get("errors"), Mapping):
        errors.update({k: v for k, v in state["errors"].items() if isinstance(v, Mapping)})
    if not errors:
        return "unknown", "Unknown", "the workflow failed without an error in its state"
    step, err = next(reversed(errors.items()))
    name = str(err.get("Error") or "Unknown")
    cause = str(err.get("Cause") or "")
    message = cause
    try:
        parsed = json.loads(cause)
        if isinstance(parsed, Mapping):
            message = str(parsed.get("errorMessage") or parsed.get("Cause") or cause)
    except ValueError:
        pass
    return step, name, message[:1500]


def timings(state: Mapping[str, Any], at: str) -> dict[str, Any]:
    run = obj(state, "run")
    out: dict[str, Any] = {"started_at": run.get("started_at"), "finished_at": at, "total_seconds": None}
    try:
        t0 = _parse_time(str(run.get("started_at")))
        t1 = _parse_time(at)
        out["total_seconds"] = round((t1 - t0).total_seconds(), 3)
    except (TypeError, ValueError):
        pass
    steps: dict[str, Any] = {}
    for key in STEP_KEYS:
        value = state.get(key)
        if isinstance(value, Mapping) and isinstance(value.get("elapsed_ms"), int | float):
            steps[key] = value["elapsed_ms"]
    out["steps_ms"] = steps
    return out


def _parse_time(text: str) -> datetime:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def outcome_record(payload: Mapping[str, Any] | RecordRequest) -> OutcomeRecord:
    """The outcome record of one execution (what :func:`record_outcome` stores), from the record task's event."""
    req = payload if isinstance(payload, RecordRequest) else RecordRequest.from_dict(payload)
    state = req.state
    at = req.at or datetime.now(UTC).isoformat()
    uuid = str(state.get("uuid") or dig(state, "input", "uuid") or "")
    if not uuid:
        detail_uuid = dig(state, "event", "detail", "uuid")
        uuid = str(detail_uuid or "unknown")
    incident_id = (
        str(state.get("incident_id") or "") or f"inc-{hashlib.sha256(req.execution.encode()).hexdigest()[:12]}"
    )
    outcome = obj(state, "outcome")
    record = OutcomeRecord(
        uuid=uuid,
        incident_id=incident_id,
        execution=req.execution,
        execution_id=req.execution_id,
        final=req.final,
        outcome="failed-with-ticket" if req.failure else str(outcome.get("outcome") or "failed-with-ticket"),
        reason=str(outcome.get("reason") or ""),
        at=at,
        trigger=state.get("trigger"),
        account=account_of_payload(state) or "",
        entry=dig(state, "classification", "entry"),
        step=dig(state, "diagnosis", "step") or dig(state, "classification", "step"),
        root_cause=dig(state, "diagnosis", "root_cause", "id"),
        fix=dig(state, "decision", "fix"),
        route=dig(state, "decision", "route"),
        mode=dig(state, "decision", "mode"),
        plan_fingerprint=dig(state, "plan", "fingerprint"),
        action_id=dig(state, "action_record", "action_id"),
        changed=dig(state, "action_record", "changed"),
        approver=dig(state, "approval", "approver"),
        verify_attempts=dig(state, "verification", "attempts"),
        before=dig(state, "diagnosis", "esm_status"),
        after=dig(state, "verification", "status"),
        rolled_back=dig(state, "rollback", "rolled_back"),
        ticket_id=dig(state, "ticket", "ticket_id"),
        ticket_location=dig(state, "ticket", "location"),
        root_cause_fingerprint=dig(state, "decision", "root_cause_fingerprint"),
        claim_owner=dig(state, "decision", "claim", "owner"),
        timings=timings(state, at),
    )
    delivery = [e for e in (dig(state, "ticket", "errors") or []) if e]
    delivery += [e for e in (dig(state, "notification", "result", "errors") or []) if e]
    if delivery:
        record.delivery_errors = delivery[:20]  # undelivered sinks stay with the incident
    joined = (
        dig(state, "decision", "claim", "joined_execution")
        or dig(state, "action_record", "joined_execution")
        or _lock_holder(state)
    )
    if joined and record.outcome == "joined":
        record.joined_execution = str(joined)
        record.joined_incident = dig(state, "decision", "claim", "joined_incident")
    if req.failure:
        record.failed_step, record.error, message = failure_summary(state)
        record.reason = f"step '{record.failed_step}' failed: {record.error}: {message}"[:2000]
    elif record.outcome not in OUTCOMES:
        record.reason = f"unknown outcome {record.outcome!r}; recorded as failed-with-ticket"
        record.outcome = "failed-with-ticket"
    return record


def open_failure_ticket(aws: Aws, state: Mapping[str, Any], record: OutcomeRecord) -> TicketResult:
    cls = obj(state, "classification")
    diag = obj(state, "diagnosis") or None
    plan = obj(state, "plan") or None
    result = open_ticket(
        aws,
        uuid=record.uuid,
        reason=record.reason,
        classification=dict(cls),
        diagnosis=dict(diag) if diag else None,
        plan=dict(plan) if plan else None,
        outcome="failed-with-ticket",
    )
    return TicketResult.from_dict(result)


def record_outcome(aws: Aws, payload: Mapping[str, Any] | RecordRequest) -> RecordResult:
    """Record task: write the outcome (STATE item + audit row). On the failure path, open the ticket first when
    the state holds none."""
    req = payload if isinstance(payload, RecordRequest) else RecordRequest.from_dict(payload)
    record = outcome_record(req)
    if record.outcome == "failed-with-ticket" and not record.ticket_id and record.final:
        try:
            ticket = open_failure_ticket(aws, req.state, record)
            record.ticket_id = ticket.ticket_id or None
            record.ticket_location = ticket.location or None
        except Exception as exc:  # the record must still be written
            record.ticket_error = f"{type(exc).__name__}: {exc}"[:500]
            logger.error("ESM %s: the failure ticket could not be opened: %s", record.uuid, record.ticket_error)
    keys = write_outcome(aws, record)
    if record.outcome in HOLD_KINDS:  # a held failure: the incident's Slack app message shows the stage
        show_stage(aws, record.outcome, req.state)
    if record.final:
        try:
            finish_claim(aws, record.to_dict())
        except Exception as exc:  # the claim expires by itself; the outcome is what matters
            record.claim_error = f"{type(exc).__name__}: {exc}"[:500]
            logger.warning("ESM %s: the incident claim was not finished: %s", record.uuid, record.claim_error)
    return RecordResult(outcome=record.outcome, recorded=keys, record=record)


def write_outcome(aws: Aws, outcome: OutcomeRecord | Mapping[str, Any]) -> dict[str, Any]:
    """STATE: ``pk=ESM#<uuid>, sk=OUTCOME#<execution>`` (overwritten by the final outcome; TTL ~13 months);
    AUDIT: one append-only ``workflow`` row per (execution, outcome)."""
    record = outcome.to_dict() if isinstance(outcome, OutcomeRecord) else dict(outcome)
    uuid = str(record["uuid"])
    execution = str(record["execution"]) or "unnamed"
    sk = f"{OUTCOME_SK_PREFIX}{execution}"
    expires = int((datetime.now(UTC) + timedelta(days=OUTCOME_TTL_DAYS)).timestamp())
    item = {
        "pk": to_value(f"ESM#{uuid}"),
        "sk": to_value(sk),
        "kind": to_value("outcome"),
        "uuid": to_value(uuid),
        "incident_id": to_value(str(record["incident_id"])),
        "execution": to_value(execution),
        "outcome": to_value(str(record["outcome"])),
        "final": to_value(bool(record.get("final", True))),
        "at": to_value(str(record["at"])),
        "record": to_value(json.dumps(record, default=str, separators=(",", ":"))),
        "expires_at": to_value(int(expires)),
    }
    try:
        aws.call("dynamodb", "put_item", TableName=STATE.name, Item=item)
    except Exception as exc:
        if error_code(exc) == "ResourceNotFoundException":
            raise TableMissing(f"the STATE table {STATE.name!r} does not exist ({STATE.env}): {exc}") from exc
        raise
    action_id = f"wf-{execution}-{record['outcome']}"[:200]
    audit = AuditLog(aws, AUDIT.name)
    existing = list(audit.by_action(action_id)) if record.get("final", True) else []
    if not existing:
        audit.append(
            ActionRecord(
                action_id=action_id,
                uuid=uuid,
                incident_id=str(record["incident_id"]),
                actor=ACTOR,
                action="workflow",
                status=str(record["outcome"]),
                account=str(record.get("account") or ""),
                reason=str(record.get("reason") or "")[:2000],
                fingerprint=str(record.get("plan_fingerprint") or ""),
                details={k: v for k, v in record.items() if k not in ("uuid", "incident_id", "reason")},
            )
        )
    return {"table": STATE.name, "pk": f"ESM#{uuid}", "sk": sk, "audit_action_id": action_id}


def outcomes(aws: Aws, uuid: str) -> list[dict[str, Any]]:
    """Every recorded outcome of one ESM (oldest first)."""

    out: list[dict[str, Any]] = []
    for item in aws.paginate(
        "dynamodb",
        "query",
        "Items",
        TableName=STATE.name,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :sk)",
        ExpressionAttributeValues={":pk": to_value(f"ESM#{uuid}"), ":sk": to_value(OUTCOME_SK_PREFIX)},
        ConsistentRead=True,
    ):
        try:
            out.append(json.loads(from_item(item)["record"]))
        except (KeyError, TypeError, ValueError):
            continue
    out.sort(key=lambda r: str(r.get("at") or ""))
    return out


# ================================================================================================ dead executions
EXECUTION_ENDED = "Step Functions Execution Status Change"
ENDED_BADLY = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})


def final_outcome_exists(aws: Aws, uuid: str, execution: str) -> bool:

    item = aws.call(
        "dynamodb",
        "get_item",
        TableName=STATE.name,
        Key={"pk": to_value(f"ESM#{uuid}"), "sk": to_value(f"{OUTCOME_SK_PREFIX}{execution}")},
        ConsistentRead=True,
    ).get("Item")
    return bool(item and item.get("final", {}).get("BOOL", True))


def execution_ended(aws: Aws, event: Mapping[str, Any]) -> dict[str, Any]:
    """Safety net for executions that died without recording an outcome.

    Step Functions' ``States.ALL`` does not catch ``States.Runtime`` (a bad path) or ``States.DataLimitExceeded``,
    and an execution can be stopped by hand or time out. The ``execution-ended`` rule sends every FAILED /
    TIMED_OUT / ABORTED execution of the workflow here; when its final outcome is missing, this records
    ``failed-with-ticket`` (and opens the ticket) from the execution's input and error. Executions that already
    recorded their outcome (the normal failure path ends FAILED too) are left alone.
    """
    detail = obj(event, "detail")
    status = str(detail.get("status") or "")
    arn = str(detail.get("executionArn") or "")
    name = str(detail.get("name") or arn.rsplit(":", 1)[-1])
    if status not in ENDED_BADLY:
        return {"recorded": False, "reason": f"execution {name} ended {status or 'without a status'}: nothing to do"}
    try:
        state = json.loads(detail.get("input") or "{}")
    except ValueError:
        state = {}
    if not isinstance(state, dict):
        state = {}
    uuid = str(state.get("uuid") or "")
    if not _UUID_RE.match(uuid) and _UUID_RE.match(name[:36]):
        uuid = name[:36]
    uuid = uuid or "unknown"
    if final_outcome_exists(aws, uuid, name):
        return {"recorded": False, "reason": f"execution {name} already recorded its outcome"}
    stopped = detail.get("stopDate")
    at = (
        datetime.fromtimestamp(float(stopped) / 1000, UTC).isoformat()
        if isinstance(stopped, int | float)
        else datetime.now(UTC).isoformat()
    )
    error = {
        "Error": str(detail.get("error") or f"States.{status.title().replace('_', '')}"),
        "Cause": str(detail.get("cause") or ""),
    }
    state = {**state, "uuid": uuid, "errors": {"execution": error}}
    result = record_outcome(
        aws, RecordRequest(state=state, final=True, failure=True, execution=name, execution_id=arn, at=at)
    )
    try:
        finish_claims_of(aws, uuid, name, result.outcome or "failed-with-ticket")
    except Exception as exc:  # the claim still expires with its TTL
        logger.warning("ESM %s: the claims of dead execution %s were not finished: %s", uuid, name, exc)
    return {"recorded": True, **result.to_dict()}
