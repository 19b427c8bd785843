"""The ``rollback`` step: undo only what THIS execution applied, when the ESM is no better (or after its error)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from esm_medic.config import Settings
from esm_medic.remediate import engine
from esm_medic.remediate.audit import AuditLog
from esm_medic.steps import step_index
from esm_medic.workflow.common import ACTION_ID_IN_ERROR, RemediationFailed, obj
from esm_medic.workflow.payloads import RollbackResult
from esm_medic.workflow.verify import applied_ids

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws


def is_better(before_step: str, now_step: str) -> bool:
    """True when the ESM now fails later in the set-up chain than before (or is healthy)."""
    if now_step == "none":
        return True
    b, n = step_index(before_step), step_index(now_step)
    return b >= 0 and n > b


def failed_actions(error: Mapping[str, Any] | None) -> list[str]:
    """The action ids this execution's failed remediation names (``[action act-...]`` in the Catch's cause)."""
    text = str((error or {}).get("Cause") or "")
    ids: list[str] = []
    for action_id in ACTION_ID_IN_ERROR.findall(text):
        if action_id not in ids:
            ids.append(action_id)
    return ids


def left_behind(aws: Aws, action_id: str, settings: Settings) -> bool:
    """True when the audit shows that ``action_id`` left something in place (a ``failed`` row that still lists
    what it created, because the engine's own cleanup failed)."""

    rows = AuditLog(aws, settings.audit_table).by_action(action_id)
    if any(r.status == "rolled-back" for r in rows):
        return False
    return any(r.status == "failed" and any(r.created.values()) for r in rows)


def kept_fixes(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The applied fixes of a remediation record, each with the command that undoes it."""
    fixes = [f for f in record.get("fixes") or [] if isinstance(f, Mapping) and f.get("action_id")]
    if not fixes:
        fixes = [{"fix": record.get("action"), "action_id": a} for a in applied_ids(record)]
    return [
        {
            "fix": str(f.get("fix") or f.get("action") or ""),
            "action_id": str(f["action_id"]),
            "rollback": f"esm-medic rollback {f['action_id']}",
        }
        for f in fixes
    ]


def _named(kept: list[dict[str, Any]]) -> str:
    return "; ".join(f"{k['fix']} ({k['action_id']}; undo: `{k['rollback']}`)" for k in kept)


def rollback_step(aws: Aws, payload: Mapping[str, Any], *, settings: Settings | None = None) -> dict[str, Any]:
    """Rollback task.

    ``mode == "verify-failed"``: undo EVERY action this execution applied (``action_record.action_ids``), newest
    first, when the ESM is no better than before (the same or an earlier set-up step failing). Keep them when the
    ESM now gets further, or when the plan left ticket-only parts and the kept fixes moved the ESM (each was kept
    because it did): the ticket names them with their rollback commands. ``mode == "after-error"``: remediation
    failed; undo what THIS execution's failed action left behind (named by the error, ``payload["error"]``) when
    the engine's own cleanup did not remove it. Never another execution's action, never the incident's others.
    """

    started = time.perf_counter()
    settings = settings or Settings.from_env()
    mode = str(payload.get("mode") or "verify-failed")
    diagnosis = obj(payload, "diagnosis")
    verification = obj(payload, "verification")
    record = obj(payload, "action_record")
    before_step = str(diagnosis.get("step") or "unknown")
    now_step = str(verification.get("step") or "unknown")
    out = RollbackResult(rolled_back=False, reason="", before_step=before_step, now_step=now_step)
    kept = kept_fixes(record) if mode == "verify-failed" else []
    partial = bool(record.get("remaining")) and bool(kept) and record.get("plan_status") == "partial"
    if mode == "verify-failed" and is_better(before_step, now_step):
        out.kept = kept
        out.reason = (
            f"The change was kept: the ESM now gets further in its set-up (failing at '{now_step}' instead of "
            f"'{before_step}'), so what remains is a different problem."
        )
        if len(kept) > 1:
            out.reason += f" Kept: {_named(kept)}."
    elif mode == "verify-failed" and partial:
        out.kept = kept
        out.reason = (
            f"The fixes that moved the ESM further were kept: {_named(kept)}. What remains is "
            f"{record.get('ticket_reason') or 'left for a person (see the plan)'}"
        )
    else:
        if mode == "verify-failed":
            ids = [k["action_id"] for k in reversed(kept)]  # newest first
        else:
            ids = [a for a in failed_actions(obj(payload, "error")) if left_behind(aws, a, settings)]
        for action_id in ids:
            r = engine.rollback(aws, action_id, settings=settings)
            out.results.append({k: r.get(k) for k in ("action_id", "status", "error")})
            if r.get("status") == "rolled-back":
                out.rolled_back = True
                for k, v in (r.get("removed") or {}).items():
                    out.removed.setdefault(k, []).extend(v)
                out.restored.update(r.get("restored") or {})
            elif r.get("status") in ("failed", "locked"):
                raise RemediationFailed(f"rollback of {action_id} answered {r.get('status')}: {r.get('error')}")
        if mode == "after-error":
            out.reason = (
                "Remediation failed; what this execution's attempt had left in place was rolled back."
                if out.rolled_back
                else "Remediation failed; nothing it started was left in place."
            )
        elif not ids:
            out.reason = "Nothing was changed (the fix was already in place), so nothing was rolled back."
        elif not out.rolled_back:
            out.reason = "Nothing to roll back (the change was already gone)."
        else:
            what = "The change was" if len(ids) == 1 else f"All {len(ids)} changes were"
            out.reason = (
                f"{what} rolled back: the ESM is no better than before (failing at '{now_step}', "
                f"before at '{before_step}')."
            )
            if len(ids) > 1:
                out.reason += " Undone, newest first: " + ", ".join(ids) + "."
    out.elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    return out.to_dict()
