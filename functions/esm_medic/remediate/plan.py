"""Apply a diagnosis's ordered plan one fix at a time, through the engine's public API.

After each applied fix the checks run again (a fresh diagnosis). A fix is kept when it moved the ESM further along
its set-up (its reported step advanced, or it became healthy) or removed a proven fault (the checks behind the fix
no longer fail); a fix that changed neither is rolled back. A fix whose checks fail only on a resource still in
transition (an endpoint ``pending``) is waited for (``settle_seconds``), then kept as ``settling``. The next fix
comes from the fresh diagnosis's plan (so a cause that was masked shows up once its masker is fixed). What remains
is returned for a ticket.

Public API:

- :func:`preview` — read-only: every automatic fix of the plan planned by :func:`engine.plan_fix`, one combined
  diff, and whether any of them needs approval (an approval covers the whole plan).
- :func:`apply_plan` — apply the plan under the engine's lock, policy, budget and audit; returns ``{"status":
  "ok" | "stale" | "partial" | "unchanged" | "needs-approval", "applied", "rolled_back", "not_applied", "noop",
  "remaining", "ticket_reason", "diagnosis"}``.

An approval covers exactly the items it was shown: with ``bindings`` (item fingerprint -> ``planned_action_id`` /
``approved_plan``), an item outside it (e.g. one a re-diagnosis found) is applied only when the policy needs no
human for it; otherwise it is not applied and goes to the ticket.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from esm_medic.aws import Aws
from esm_medic.config import Settings
from esm_medic.models import CheckStatus, Diagnosis, PlanItem
from esm_medic.remediate import engine
from esm_medic.remediate.base import fingerprint
from esm_medic.steps import SETUP_ORDER, step_index

Rediagnose = Callable[[], Diagnosis]
STALE = "status-stale"
#: resource states on the way to a usable one (an interface endpoint is 'pending' for a minute or two)
SETTLING_STATES = frozenset({"pending", "pendingacceptance", "creating", "provisioning", "updating", "modifying"})
#: how long a fix's settling resources are waited for before it is kept as 'settling' (never rolled back for it)
SETTLE_SECONDS = 60.0
#: decisions that stop a fix without an error (the plan goes on with the next one)
_NOT_APPLIED = frozenset(
    {
        "needs-approval",
        "ticket",
        "notify",
        "off",
        "shadow",
        "refused",
        "locked",
        "budget-exceeded",
        "failed",
        "invalid",
        "time-budget",
    }
)


def _key(item: PlanItem) -> tuple[str, str]:
    p = item.fix_params
    return item.fix, str(p.get("group_id") or p.get("vpc_id") or p.get("role_name") or "")


def item_fingerprint(item: PlanItem | Mapping[str, Any]) -> str:
    """The engine's fingerprint of a plan item's fix (what an approval is bound to)."""
    if isinstance(item, PlanItem):
        return fingerprint(item.fix, item.fix_params)
    return fingerprint(
        str(item.get("fix") or item.get("action") or ""), item.get("fix_params") or item.get("params") or {}
    )


def _as_request(d: Diagnosis, item: PlanItem) -> dict[str, Any]:
    """The diagnosis as the engine reads it, with this plan item as its root cause (so the catalogue's safety
    class of that cause applies)."""
    out = d.to_dict()
    out["root_cause"] = {
        "id": item.hypotheses[0] if item.hypotheses else item.fix,
        "fix": item.fix,
        "fix_params": dict(item.fix_params),
        "summary": item.summary,
    }
    return out


def progress(d: Diagnosis) -> tuple[int, int]:
    """How far the ESM got: (its reported step's index, or past the end when healthy; minus the proven faults)."""
    if d.healthy:
        return len(SETUP_ORDER) + 1, 0
    observed = step_index(str(d.classification.get("step") or d.step))
    faults = sum(1 for f in d.findings if f.status == CheckStatus.FAIL and f.strength == "proof")
    return observed, -faults


def _still_failing(d: Diagnosis, checks: set[str]) -> bool:
    return any(f.check in checks and f.status == CheckStatus.FAIL for f in d.findings)


def _moved(before: Diagnosis, after: Diagnosis, checks: set[str]) -> bool:
    """The fix moved the ESM further along its set-up, or removed the proven fault behind it."""
    return progress(after) > progress(before) or (bool(checks) and not _still_failing(after, checks))


def _in_transition(value: Any, depth: int = 0) -> bool:
    if depth > 6:
        return False
    if isinstance(value, Mapping):
        return any(
            (str(k).lower() in ("state", "status") and str(v).lower() in SETTLING_STATES)
            or _in_transition(v, depth + 1)
            for k, v in value.items()
        )
    if isinstance(value, list):
        return any(_in_transition(v, depth + 1) for v in value)
    return False


def _settling(d: Diagnosis, checks: set[str]) -> bool:
    """A check behind the fix fails only on a resource still in transition (its evidence lists a 'pending' one)."""
    return any(f.check in checks and f.status == CheckStatus.FAIL and _in_transition(f.evidence) for f in d.findings)


def preview(
    aws: Aws, diagnosis: Diagnosis, *, settings: Settings | None = None, mode_override: str | None = None
) -> dict[str, Any]:
    """Plan every automatic fix of the plan (read-only): ``{"items": [plan_fix results], "diff": [...],
    "needs_approval": bool, "tickets": [plan items]}``."""
    items: list[dict[str, Any]] = []
    diff: list[str] = []
    needs = False
    for item in diagnosis.plan:
        if item.ticket_only:
            continue
        res = engine.plan_fix(aws, _as_request(diagnosis, item), settings=settings, mode_override=mode_override)
        items.append(res)
        diff += [f"[{item.order}. {item.fix}] {line}" for line in (res.get("plan") or {}).get("diff") or []]
        needs = needs or (res.get("decision") or {}).get("outcome") == "approve"
    return {
        "uuid": diagnosis.uuid,
        "items": items,
        "diff": diff,
        "needs_approval": needs,
        "tickets": [p.to_dict() for p in diagnosis.plan if p.ticket_only],
    }


def apply_plan(
    aws: Aws,
    diagnosis: Diagnosis | Mapping[str, Any],
    *,
    rediagnose: Rediagnose,
    settings: Settings | None = None,
    approved: bool = False,
    approver: str | None = None,
    mode_override: str | None = None,
    restart: bool = True,
    incident_id: str | None = None,
    sleep: Callable[[float], None] | None = None,
    max_fixes: int = 8,
    settle_seconds: float = SETTLE_SECONDS,
    deadline: float | None = None,
    lock_owner: str | None = None,
    bindings: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Apply the plan fix by fix; ``rediagnose()`` re-runs the checks (e.g. ``lambda: diagnose(aws, uuid)``).
    ``diagnosis`` may be a :class:`Diagnosis` or its ``to_dict()`` (a workflow payload).

    ``bindings`` (None: ``approved`` covers every item) maps :func:`item_fingerprint` to the engine keywords that
    bind the approval of that item (``planned_action_id`` or ``approved_plan``); an item not in it is applied
    unapproved. A held lock stops the plan (the other run is working on this ESM). No fix is started after
    ``deadline`` (a ``time.monotonic()`` value): what is left goes to the ticket as ``time-budget``."""
    diagnosis = diagnosis if isinstance(diagnosis, Diagnosis) else Diagnosis.from_dict(diagnosis)
    current = diagnosis
    tried: set[tuple[str, str]] = set()
    applied: list[dict[str, Any]] = []
    rolled_back: list[dict[str, Any]] = []
    not_applied: list[dict[str, Any]] = []
    noop: list[dict[str, Any]] = []
    incident = incident_id or engine.default_incident_id(diagnosis.uuid)
    poll = max(0.05, (settings or Settings.from_env()).poll_seconds)
    for _ in range(max_fixes):
        item = next((p for p in current.plan if not p.ticket_only and _key(p) not in tried), None)
        if item is None:
            break
        tried.add(_key(item))
        if deadline is not None and time.monotonic() >= deadline:  # no time left to apply, re-check and undo it
            not_applied.append(
                {"fix": item.fix, "hypotheses": item.hypotheses, "status": "time-budget", "reason": "out of time"}
            )
            continue
        bound: dict[str, Any] = {}
        item_approved = approved
        if bindings is not None:
            bound = dict(bindings.get(item_fingerprint(item)) or {})
            item_approved = approved and bool(bound)
        res = engine.apply_fix(
            aws,
            _as_request(current, item),
            incident_id=incident,
            settings=settings,
            approved=item_approved,
            approver=approver if item_approved else None,
            mode_override=mode_override,
            restart=restart,
            sleep=sleep,
            lock_owner=lock_owner,
            **bound,
        )
        row = {"fix": item.fix, "hypotheses": item.hypotheses, "status": res.get("status")}
        row["fingerprint"] = item_fingerprint(item)
        row.update({k: res[k] for k in ("action_id", "error", "throttled", "lock_holder") if res.get(k)})
        for k in ("before", "after", "created"):
            row[k] = res.get(k) or {}
        if res.get("status") == "noop":
            noop.append(row)
            continue
        if res.get("status") != "applied":
            row["reason"] = res.get("error") or "; ".join((res.get("decision") or {}).get("reasons") or [])
            not_applied.append(row)
            if res.get("status") == "locked":
                break
            continue
        checks = {c for h in current.hypotheses if h.id in item.hypotheses for c in h.evidence}
        after = rediagnose()
        waited = 0.0
        # what the fix made may still be settling (an endpoint 'pending'): its checks fail for now; wait for it
        while not _moved(current, after, checks) and _settling(after, checks) and waited < settle_seconds:
            (sleep or time.sleep)(poll)
            waited += poll
            after = rediagnose()
        if _moved(current, after, checks) or _settling(after, checks):
            if not _moved(current, after, checks):
                row["settling"] = True  # still being created: kept; the verification judges it
            applied.append(row)
            current = after
            continue
        undo = engine.rollback(aws, str(res.get("action_id") or ""), settings=settings, actor=approver, sleep=sleep)
        row["rollback"] = undo.get("status")
        rolled_back.append(row)
    out = _outcome(current, applied, rolled_back, not_applied)
    out["noop"] = noop
    return out


def _outcome(
    d: Diagnosis, applied: list[dict[str, Any]], rolled_back: list[dict[str, Any]], not_applied: list[dict[str, Any]]
) -> dict[str, Any]:
    remaining = [p.to_dict() for p in d.plan if p.ticket_only]
    waiting = [r for r in not_applied if r["status"] == "needs-approval"]
    remaining += [{"fix": r["fix"], "hypotheses": r["hypotheses"], "not_applied": r["status"]} for r in not_applied]
    if d.healthy:
        status = "ok"
    elif d.root_cause.id == STALE:
        status = "stale"
    elif waiting and not applied:
        status = "needs-approval"
    elif applied:
        status = "partial"
    else:
        status = "unchanged"
    names = [h for r in remaining for h in r.get("hypotheses") or []]
    reason = ""
    if remaining and status != "ok":
        reason = f"left for a person: {', '.join(dict.fromkeys(names))}"
        reason += "; " + "; ".join(str(r.get("summary") or r.get("not_applied") or "") for r in remaining[:3])
    return {
        "status": status,
        "uuid": d.uuid,
        "applied": applied,
        "rolled_back": rolled_back,
        "not_applied": not_applied,
        "remaining": remaining,
        "ticket_reason": reason[:1000],
        "diagnosis": d.to_dict(),
    }


def summary(result: Mapping[str, Any]) -> str:
    """One line for people."""
    parts = [f"plan {result.get('status')}: {len(result.get('applied') or [])} fix(es) kept"]
    if result.get("rolled_back"):
        parts.append(f"{len(result['rolled_back'])} rolled back (changed nothing)")
    if result.get("ticket_reason"):
        parts.append(str(result["ticket_reason"]))
    return "; ".join(parts)


__all__ = ["apply_plan", "item_fingerprint", "preview", "progress", "summary"]
