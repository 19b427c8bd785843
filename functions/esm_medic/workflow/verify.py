"""The ``verify`` step: one look at the ESM; recovered, keep polling, or exhausted."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from esm_medic.config import Settings
from esm_medic.remediate import engine
from esm_medic.remediate.budget import failed_verifications
from esm_medic.workflow.classify import classify_status
from esm_medic.workflow.common import logger, obj, status_of
from esm_medic.workflow.payloads import VerifyResult

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws


#: ESM states on the way to a final one (AWS moves an ESM through them after an update or a restart)
SETTLING_STATES = frozenset({"Creating", "Enabling", "Updating", "Disabling"})


def verify_step(aws: Aws, payload: Mapping[str, Any], *, settings: Settings | None = None) -> dict[str, Any]:
    """Verify task: one look at the ESM. Returns ``{"recovered", "exhausted", "attempts", "status", "step",
    "entry", "next_wait_seconds", "restarts", "history"}``.

    Restarts polling when the ESM sits Disabled although it was enabled when diagnosed (enable), and once
    (disable / enable) when the second look still shows the original error. ``exhausted`` is set when not
    recovered after ``max_attempts`` looks. The final verdict (recovered or exhausted) is recorded once through
    the engine's ``verify_fix`` (audit row ``verified`` / ``verify-failed``, failed-verification counter).
    """

    started = time.perf_counter()
    settings = settings or Settings.from_env()
    uuid = str(payload["uuid"])
    prev = obj(payload, "previous")
    attempts = int(prev.get("attempts") or 0) + 1
    restarts = int(prev.get("restarts") or 0)
    history = list(prev.get("history") or [])[-9:]
    max_attempts = max(1, int(payload.get("max_attempts") or 5))
    base_wait = max(0, int(payload.get("base_wait_seconds") or 0))
    max_wait = max(base_wait, int(payload.get("max_wait_seconds") or base_wait))
    diagnosis = obj(payload, "diagnosis")
    record = obj(payload, "action_record")
    before = status_of(obj(diagnosis, "esm_status"))

    item = aws.call("lambda", "get_event_source_mapping", UUID=uuid)
    status = status_of(item)
    note = ""
    if status["State"] == "Disabled" and before.get("State") not in ("Disabled", "Disabling"):
        aws.call("lambda", "update_event_source_mapping", UUID=uuid, Enabled=True)
        restarts += 1
        note = "enabled the ESM again (it was enabled when diagnosed)"
        item = aws.call("lambda", "get_event_source_mapping", UUID=uuid)
        status = status_of(item)
    elif (
        attempts == 2
        and restarts == 0
        and status["State"] == "Enabled"
        and status["LastProcessingResult"]
        and status["LastProcessingResult"] == before.get("LastProcessingResult")
    ):
        info = engine.restart_esm(aws, uuid, settings=settings)
        restarts += 1
        note = f"restarted polling: {info.get('reason')}"
        item = aws.call("lambda", "get_event_source_mapping", UUID=uuid)
        status = status_of(item)
    c = classify_status(status, uuid)
    recovered = status["State"] == "Enabled" and bool(c.get("healthy"))
    # an ESM still Enabling / Updating after the restart has not had its chance yet: such looks do not use up the
    # attempts (bounded at three times the budget), and the next look waits at least a second
    settling = status["State"] in SETTLING_STATES
    budget = max_attempts * 3 if settling else max_attempts
    exhausted = not recovered and attempts >= budget
    wait = 0 if base_wait == 0 else min(max_wait, base_wait * (2 ** (attempts - 1)))
    if settling:
        wait = max(wait, 1)
    entry: dict[str, Any] = {
        "attempt": attempts,
        "at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "State": status["State"],
        "LastProcessingResult": status["LastProcessingResult"][:300],
        "entry": c.get("entry"),
        "step": c.get("step"),
    }
    if note:
        entry["note"] = note
    verdict: dict[str, Any] | None = None
    if recovered or exhausted:
        verdict = _final_verdict(aws, settings, uuid, applied_ids(record), item, exhausted)
        entry["verdict"] = verdict
    history.append(entry)
    return VerifyResult(
        recovered=recovered,
        exhausted=exhausted,
        attempts=attempts,
        status=status,
        step=c.get("step"),
        entry=c.get("entry"),
        next_wait_seconds=int(wait),
        restarts=restarts,
        history=history,
        elapsed_ms=round((time.perf_counter() - started) * 1000, 1),
    ).to_dict()


def applied_ids(record: Mapping[str, Any]) -> list[str]:
    """Every action this execution applied, oldest first (``action_ids``; a one-fix record has ``action_id``)."""
    ids = [str(a) for a in record.get("action_ids") or [] if a]
    if not ids and record.get("action_id"):
        ids = [str(record["action_id"])]
    return ids


def _final_verdict(
    aws: Aws, settings: Settings, uuid: str, action_ids: list[str], item: Mapping[str, Any], exhausted: bool
) -> dict[str, Any]:
    """Record the verdict once: through the engine when actions were applied (audit rows + counter). A recovery
    is recorded on every applied action; a failure on the newest only (one failed verification of the ESM, not
    one per fix; the rollback that follows records the rest). When the workflow's window is over but the engine
    would still wait (its grace period is longer than the window), or no action was applied, the
    failed-verification counter is counted here so the policy's fallback still works."""
    verdict: dict[str, Any] = {"status": "verify-failed" if exhausted else "verified"}
    if action_ids:
        keys = ("status", "resource_ok", "failed_verifications", "fallback_to_ticket", "error")
        others = [] if exhausted else action_ids[:-1]
        for older in others:
            v = engine.verify_fix(aws, older, settings=settings, esm=dict(item))
            verdict.setdefault("actions", {})[older] = v.get("status")
        v = engine.verify_fix(aws, action_ids[-1], settings=settings, esm=dict(item))
        verdict = {**{k: v.get(k) for k in keys}, **({"actions": verdict["actions"]} if others else {})}
        if others:
            verdict["actions"][action_ids[-1]] = v.get("status")
        if not (exhausted and v.get("status") == "pending"):
            return verdict
        verdict["note"] = "the verification window ended while the engine's grace period was still running"
    if exhausted:
        try:
            verdict["failed_verifications"] = failed_verifications(aws, settings, uuid).increment()
        except Exception as exc:  # the counter is a guard rail; losing one increment must not fail verification
            verdict["error"] = f"counter unavailable: {exc}"
            logger.warning("ESM %s: %s", uuid, verdict["error"])
    return verdict
