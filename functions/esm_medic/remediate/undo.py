"""Undoing a fix from its audit rows (:func:`rollback`), and reading the audit history (:func:`history`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger

from esm_medic.aws import Aws
from esm_medic.config import Settings
from esm_medic.remediate import registry
from esm_medic.remediate.audit import AuditError, AuditLog
from esm_medic.remediate.base import (
    ActionContext,
    ActionRecord,
    RemediationError,
)
from esm_medic.remediate.lock import EsmLock
from esm_medic.remediate.prepare import (
    DEFAULT_ACTOR,
    _get_esm,
    _settings,
)
from esm_medic.remediate.scope import resolve
from esm_medic.tables import describe_error

logger = Logger(service="esm-medic", child=True)


def rollback(
    aws: Aws,
    action_id: str,
    *,
    settings: Settings | None = None,
    actor: str | None = None,
    sleep: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Undo one action from its audit rows: exactly what it created goes, recorded before values come back.

    Allowed whatever the mode, budget or kill switch (it only removes what esm-medic made). Idempotent: a second
    call answers ``noop``. Returns ``{"status": "rolled-back" | "noop" | "locked" | "not-found" | "failed",
    "action_id", "uuid", "action", "removed", "restored", "notes", "error"}``.
    """
    settings = _settings(settings)
    actor = actor or settings.actor or DEFAULT_ACTOR
    audit = AuditLog(aws, settings.audit_table)
    out: dict[str, Any] = {
        "status": "failed",
        "action_id": action_id,
        "uuid": "",
        "action": "",
        "removed": {},
        "restored": {},
        "notes": [],
        "error": None,
    }
    try:
        rows = audit.by_action(action_id)
    except AuditError as exc:
        out["error"] = str(exc)
        return out
    if not rows:
        out.update(status="not-found", error=f"no audit record for {action_id}")
        return out
    first = rows[0]
    out.update(uuid=first.uuid, action=first.action)
    done = [r for r in rows if r.status == "rolled-back"]
    if done:
        out.update(status="noop", notes=[f"already rolled back at {done[-1].at}"])
        return out
    source = next((r for r in reversed(rows) if r.status == "applied"), None)
    if source is None:
        source = next((r for r in reversed(rows) if r.status == "failed" and r.created), None)
    started = next((r for r in rows if r.status == "started"), None)
    if source is None and started is None:
        out.update(status="noop", notes=["this action never changed anything (no started / applied record)"])
        return out
    lock = EsmLock(
        aws,
        first.uuid,
        table=settings.state_table,
        ttl_seconds=settings.lock_ttl_seconds,
        purpose=f"rollback {action_id}",
    )
    try:
        if not lock.acquire():
            out.update(status="locked", error="another esm-medic run is working on this ESM")
            return out
    except Exception as exc:
        out["error"] = f"cannot take the ESM lock: {describe_error(exc, settings.state_table)}"
        return out
    try:
        try:
            cls = registry.get(first.action)
            ctx = ActionContext(aws, first.incident_id, first.uuid, actor, action_id, settings, sleep)
            act = cls(first.params, ctx)
            if source is None:  # interrupted before 'applied': find what it made by its incident tags / name
                assert started is not None
                if cls.network_bound:
                    ctx.scope = resolve(aws, _get_esm(aws, first.uuid)[0])
                plan = act.plan()
                source = ActionRecord.from_dict({**started.to_dict(), "created": plan.adopted})
            rb = act.rollback(source)
        except RemediationError as exc:
            out["error"] = exc.message
            _append_quietly(
                audit,
                first,
                actor,
                "failed",
                error=f"rollback failed: {exc.message}",
                details={"phase": "rollback", "error": exc.to_dict()},
            )
            return out
        _append_quietly(
            audit,
            first,
            actor,
            "rolled-back",
            before=source.after,
            after=source.before,
            created=source.created,
            details={"rollback": rb.to_dict()},
        )
        out.update(status="rolled-back", removed=rb.removed, restored=rb.restored, notes=rb.notes)
        return out
    finally:
        lock.release()


def _append_quietly(audit: AuditLog, like: ActionRecord, actor: str, status: str, **kw: Any) -> None:
    try:
        audit.append(like.followed_by(status, actor, **kw))
    except AuditError as exc:  # the change itself is done; its record is what is missing
        logger.error(
            "audit write failed",
            extra={"uuid": like.uuid, "action_id": like.action_id, "status": status, "error": str(exc)},
        )


# ---------------------------------------------------------------------------------------------- history
def history(
    aws: Aws, uuid: str | None = None, *, limit: int = 50, settings: Settings | None = None
) -> list[dict[str, Any]]:
    """Audit rows, newest first (one ESM by uuid, or any ESM up to ``limit``). Raises AuditError when unreadable."""
    settings = _settings(settings)
    return [r.to_dict() for r in AuditLog(aws, settings.audit_table).history(uuid, limit=limit)]
