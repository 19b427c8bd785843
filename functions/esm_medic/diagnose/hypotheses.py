"""From findings to ranked hypotheses and an ordered plan, obeying the ESM's own report.

1. **Observed step.** The status text's catalogue entry names the step the ESM failed at; every earlier set-up step
   worked. A *heuristic* failure at an earlier step (a name that does not resolve from where esm-medic runs) is
   contradicted: it is demoted to a warning and a note. A *proof* failure at an earlier step (read from the API
   state) is kept and the contradiction is reported: the status may be stale.
2. **Hypotheses.** Every catalogue root cause a failing finding names (or supports as one of the root cause's
   checks) becomes a hypothesis, scored by its evidence strength (proof 1.0, heuristic 0.6), how directly the
   finding names it (first cause 1.0, named 0.9, check only 0.8) and its agreement with the observed step (a root
   cause of the observed entry 1.0, the observed step 0.85, an earlier step 0.7, a later, latent one 0.5; 0.6 with
   no entry).
3. **Order.** Earlier set-up steps first (they block first), then score, then fixable before ticket, then id; a
   masking cause (:mod:`esm_medic.diagnose.checks.masks`) is moved before what it masks.
4. **Plan.** The unmasked hypotheses with an automatic fix, merged per fix and target, safe (``auto``) before
   ``approve``; then one ticket item per remaining evidence, naming its hypotheses. Masked hypotheses are listed
   under ``after`` of their masker's item: they are re-checked once it is applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from esm_medic.catalogue import Catalogue, Entry, RootCauseInfo
from esm_medic.diagnose.checks.masks import masked_by
from esm_medic.models import CheckStatus, Finding, Hypothesis, PlanItem
from esm_medic.steps import SETUP_ORDER, step_index

PROOF, HEURISTIC = "proof", "heuristic"
TICKET = "ticket"
_SAFETY_ORDER = {"auto": 0, "approve": 1, "manual": 2}


def causes(f: Finding) -> list[str]:
    value = f.evidence.get("causes") or []
    return [str(c) for c in value] if isinstance(value, list) else []


def observe(findings: Sequence[Finding], entry: Entry | None) -> list[str]:
    """Apply the observed step to the findings (in place): demote contradicted heuristic failures, report
    contradicted proof failures. Returns the notes."""
    notes: list[str] = []
    if entry is None or step_index(entry.step) < 0:
        return notes
    observed = step_index(entry.step)
    entry_causes = {rc.id for rc in entry.root_causes}
    for f in findings:
        idx = step_index(f.step)
        if f.status != CheckStatus.FAIL or idx < 0 or idx >= observed:
            continue
        if set(causes(f)) & entry_causes and f.strength == PROOF:
            continue  # e.g. a secret with the wrong password: read fine, fails at authentication
        if f.strength == HEURISTIC:
            f.status = CheckStatus.WARN
            f.evidence["contradicted"] = f"the ESM reports step '{entry.step}', so step '{f.step}' worked"
            f.summary = f"{f.summary} (contradicted by the ESM's own report: it got past step '{f.step}')"
            notes.append(
                f"{f.check}: heuristic failure at step '{f.step}' contradicted by the ESM (step "
                f"'{entry.step}'); kept as a note"
            )
        else:
            notes.append(
                f"the ESM reports step '{entry.step}' ({entry.id}), but '{f.check}' fails at the earlier step "
                f"'{f.step}' (read from the API state): the status may be stale, or it broke since"
            )
    return notes


def _find(cat: Catalogue, rc_id: str, step: str, entry: Entry | None) -> tuple[Entry, RootCauseInfo] | None:
    candidates: list[Entry] = [entry] if entry is not None else []
    candidates += [e for e in cat if e.step == step and e not in candidates]
    candidates += [e for e in cat if e not in candidates]
    for e in candidates:
        for rc in e.root_causes:
            if rc.id == rc_id:
                return e, rc
    return None


def _support_score(f: Finding, rc_id: str) -> float:
    named = causes(f)
    naming = 1.0 if named[:1] == [rc_id] else 0.9 if rc_id in named else 0.8
    return naming * (1.0 if f.strength == PROOF else 0.6)


def build(
    findings: Sequence[Finding],
    entry: Entry | None,
    cat: Catalogue,
    fix_for: Any,
    summary_for: Any,
) -> list[Hypothesis]:
    """Ranked hypotheses from the failing findings (after :func:`observe`). ``fix_for(owner, rc_id, support)``
    gives (fix, params, note); ``summary_for(rc, support)`` the text."""
    failing = [f for f in findings if f.status == CheckStatus.FAIL]
    failing_causes = {f.check: causes(f) for f in failing}
    observed = step_index(entry.step) if entry is not None else -1
    entry_ids = [rc.id for rc in entry.root_causes] if entry is not None else []
    support: dict[str, list[Finding]] = {}
    for f in failing:
        ids = list(causes(f))
        if entry is not None:
            ids += [rc.id for rc in entry.root_causes if f.check in rc.checks and not causes(f)]
        if not ids:
            ids = [f.check]
        for rc_id in dict.fromkeys(ids):
            support.setdefault(rc_id, []).append(f)
    out: list[Hypothesis] = []
    for rc_id, sup in support.items():
        found = _find(cat, rc_id, sup[0].step, entry)
        in_entry = rc_id in entry_ids
        # a finding that also names a cause of the observed entry agrees with the ESM's report: its other causes
        # are alternatives at the observed step, not an earlier blocker
        agrees = all(set(causes(f)) & set(entry_ids) for f in sup)
        step = min((f.step for f in sup), key=_step_key)
        if entry is not None and (in_entry or agrees):
            step = entry.step
        idx = step_index(step)
        if observed < 0:
            agree = 0.6
        elif in_entry:
            agree = 1.0
        elif idx == observed:
            agree = 0.85
        elif 0 <= idx < observed:
            agree = 0.7
        else:
            agree = 0.5
        strength = PROOF if any(f.strength == PROOF for f in sup) else HEURISTIC
        score = round(max(_support_score(f, rc_id) for f in sup) * agree, 2)
        if found is not None:
            owner, rc = found
            fix, params, note = fix_for(owner, rc_id, sup)
            safety = next((x.safety for x in owner.fixes if x.action == fix and fix != TICKET), "manual")
            text = summary_for(rc, sup)
        else:
            fix, params, note, safety = TICKET, {"reason": sup[0].summary[:500]}, "", "manual"
            text = sup[0].summary
        own = {f.check for f in sup}
        masks = [m for f in sup for m in masked_by(f.check, failing_causes) if m not in own]
        out.append(
            Hypothesis(
                id=rc_id,
                step=step,
                score=score,
                summary=text,
                fix=fix,
                fix_params=params,
                safety=safety,
                strength=strength,
                evidence=[f.check for f in sup],
                masked_by=list(dict.fromkeys(masks)),
                notes=[note] if note else [],
            )
        )
    out.sort(key=lambda h: (_step_key(h.step), -h.score, h.fix == TICKET, h.id))
    _maskers_first(out)
    return out


def _step_key(step: str) -> int:
    idx = step_index(step)
    return idx if idx >= 0 else len(SETUP_ORDER)


def _maskers_first(hyps: list[Hypothesis]) -> None:
    """Move every hypothesis whose evidence masks another one before it (stable otherwise)."""
    for _ in range(len(hyps)):
        moved = False
        for i, h in enumerate(hyps):
            if not h.masked_by:
                continue
            for j in range(i + 1, len(hyps)):
                if set(hyps[j].evidence) & set(h.masked_by):
                    hyps.insert(i, hyps.pop(j))
                    moved = True
                    break
            if moved:
                break
        if not moved:
            return


def _target(fix: str, params: dict[str, Any]) -> tuple[str, str]:
    key = {"add-sg-self-rule": "group_id", "enable-vpc-dns": "vpc_id", "create-vpc-endpoints": "vpc_id"}.get(fix)
    return fix, str(params.get(key or "role_name", ""))


def plan(hyps: Sequence[Hypothesis], merge: Any) -> list[PlanItem]:
    """The ordered plan: independent automatic fixes (safe first), then the ticket-only parts."""
    masked = [h for h in hyps if h.masked_by]
    free = [h for h in hyps if not h.masked_by]
    groups: dict[tuple[str, str], list[Hypothesis]] = {}
    for h in free:
        if h.fix and h.fix != TICKET:
            groups.setdefault(_target(h.fix, h.fix_params), []).append(h)
    items: list[PlanItem] = []
    covered: set[str] = set()
    for (fix, _), group in groups.items():
        params = merge(fix, group) if len(group) > 1 else dict(group[0].fix_params)
        checks = {c for h in group for c in h.evidence}
        after = [m.id for m in masked if set(m.masked_by) & checks]
        covered |= checks
        items.append(
            PlanItem(
                order=0,
                fix=fix,
                fix_params=params,
                hypotheses=[h.id for h in group],
                safety=group[0].safety,
                summary=group[0].summary,
                after=after,
            )
        )
    items.sort(key=lambda p: _SAFETY_ORDER.get(p.safety, 3))
    tickets: dict[tuple[str, ...], list[Hypothesis]] = {}
    for h in free:
        if (h.fix == TICKET or not h.fix) and not set(h.evidence) <= covered:
            tickets.setdefault(tuple(sorted(h.evidence)), []).append(h)
    for group in tickets.values():
        checks = {c for h in group for c in h.evidence}
        items.append(
            PlanItem(
                order=0,
                fix=TICKET,
                fix_params=dict(group[0].fix_params),
                hypotheses=[h.id for h in group],
                safety="manual",
                summary=group[0].summary,
                ticket_only=True,
                after=[m.id for m in masked if set(m.masked_by) & checks],
            )
        )
    for i, item in enumerate(items, 1):
        item.order = i
    return items


__all__ = ["HEURISTIC", "PROOF", "build", "causes", "observe", "plan"]
