"""Pick the root cause and the fix from the classification plus the failed checks.

Rules, in order:

1. A healthy classification -> root cause ``healthy`` with fix ``""`` (nothing to fix). Failed checks on a
   healthy ESM are latent problems: named in the notes, never acted on.
2. A catalogue entry -> among its ``root_causes``, the ones *supported* by a failed check (the check names the
   root cause in ``evidence["causes"]``, or it is one of the root cause's ``checks`` and names no cause).
   Preference: a check names it as its first cause > a check names it at all > all its checks failed >
   catalogue order. The fix is ``entry.fix_for(root_cause)`` with the parameters the supporting findings built for
   that fix; ``ticket`` when the catalogue lists none for it, or when no finding could build valid parameters.
3. When a failed check sits at an *earlier* set-up step than the classification's step (and supports none of
   the entry's root causes), the earlier failure is what blocks the ESM: it is reported (its step, the catalogue
   root cause it names, that root cause's fix) and the disagreement is written into the notes.
4. No supported root cause but failed checks -> the first failed check in set-up order, with the catalogue root
   cause it names (searched in the classified entry, then entries of the same step, then all) and that root
   cause's catalogue fix when the finding built it; else ``ticket``.
5. Nothing failed: a known entry gets its most plausible unconfirmed root cause with ``ticket``: among the root
   causes that fit the auth mode, one whose check could not decide (unknown / warn), else one no check rules out
   (no AWS API can see it, or part of it, like SCPs or IAM propagation), else the first. An unknown text gets
   ``unknown`` + ``ticket``. Without evidence nothing is ever fixed automatically.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from esm_medic.catalogue import Catalogue, Entry, RootCauseInfo, get_catalogue
from esm_medic.classify import Classification
from esm_medic.diagnose.checks import CHECK_ORDER
from esm_medic.models import CheckStatus, Finding, RootCause
from esm_medic.steps import SETUP_ORDER, Step, step_index

HEALTHY = "healthy"
UNKNOWN = "unknown"
TICKET = "ticket"
#: the fix of a healthy ESM: nothing to do
NO_FIX = ""


_SASL = frozenset({"sasl-scram-512", "sasl-scram-256", "sasl-plain"})
#: root causes that only make sense for some auth modes (the rest apply to every mode)
APPLIES_TO_MODES: dict[str, frozenset[str]] = {
    "kafka-acls": _SASL | {"mtls"},
    "iam-missing-kafka-cluster": frozenset({"iam"}),
    "iam-missing-topic-actions": frozenset({"iam"}),
    "iam-missing-group-actions": frozenset({"iam"}),
    "iam-missing-connect": frozenset({"iam"}),
    "scram-secret-not-associated": _SASL,
    "wrong-credentials": _SASL,
    "wrong-mechanism": _SASL,
    "no-client-cert": frozenset({"mtls"}),
    "untrusted-client-cert": frozenset({"mtls"}),
    "expired-client-cert": frozenset({"mtls"}),
}
#: root causes with a part no check can see (SCPs, IAM propagation, broker quotas): a passing check does not
#: rule them out
PARTLY_UNCHECKABLE = frozenset({"scp-or-boundary", "connection-quota", "service-side"})


def applies(rc_id: str, auth_mode: str) -> bool:
    modes = APPLIES_TO_MODES.get(rc_id)
    return not auth_mode or modes is None or auth_mode in modes


def causes(f: Finding) -> list[str]:
    value = f.evidence.get("causes") or []
    return [str(c) for c in value] if isinstance(value, list) else []


def supports(f: Finding, rc: RootCauseInfo) -> bool:
    """A failed check supports a root cause when it names it, or when it is one of the root cause's checks and
    names no cause of its own."""
    if f.status != CheckStatus.FAIL:
        return False
    named = causes(f)
    if rc.id in named:
        return True
    return f.check in rc.checks and not named


def _order_key(f: Finding) -> tuple[int, int]:
    idx = step_index(f.step)
    check_idx = CHECK_ORDER.index(f.check) if f.check in CHECK_ORDER else len(CHECK_ORDER)
    return (idx if idx >= 0 else len(SETUP_ORDER), check_idx)


# ---------------------------------------------------------------------------------------------- fix params
def valid_params(fix: str, params: dict[str, Any]) -> bool:
    """True when ``params`` satisfy the lead's contract for ``fix`` (never an empty or wildcard change)."""
    if fix == "add-sg-self-rule":
        return (
            str(params.get("group_id", "")).startswith("sg-")
            and bool(params.get("ports"))
            and bool(params.get("directions"))
            and set(params.get("directions") or []) <= {"ingress", "egress"}
            and str(params.get("vpc_id", "")).startswith("vpc-")
        )
    if fix == "create-vpc-endpoints":
        return (
            str(params.get("vpc_id", "")).startswith("vpc-")
            and bool(params.get("subnet_ids"))
            and bool(params.get("services"))
            and set(params.get("services") or []) <= {"sts", "lambda", "secretsmanager"}
            and bool(params.get("source_group_ids"))
        )
    if fix == "grant-iam-permissions":
        statements = params.get("statements") or []
        if not params.get("role_name") or not statements:
            return False
        for st in statements:
            actions, resources = st.get("actions") or [], st.get("resources") or []
            if not actions or not resources:
                return False
            scoped = any(str(a).startswith(("kafka-cluster:", "secretsmanager:", "kms:")) for a in actions)
            if scoped and "*" in resources:
                return False
        return True
    if fix == "enable-vpc-dns":
        attrs = params.get("attributes") or []
        return (
            str(params.get("vpc_id", "")).startswith("vpc-")
            and bool(attrs)
            and set(attrs) <= {"enableDnsSupport", "enableDnsHostnames"}
        )
    if fix == TICKET:
        return bool(params.get("reason"))
    return False


def merge_params(fix: str, findings: Iterable[Finding]) -> dict[str, Any]:
    """Combine the parameters several findings built for the same fix."""
    own = [f.fix_params for f in findings if f.fix == fix and f.fix_params]
    if not own:
        return {}
    first = dict(own[0])
    if fix == "add-sg-self-rule":
        same = [p for p in own if p.get("group_id") == first.get("group_id")]
        ports = sorted({int(p) for q in same for p in q.get("ports") or []})
        dirs = {d for q in same for d in q.get("directions") or []}
        first["ports"] = ports
        first["directions"] = [d for d in ("ingress", "egress") if d in dirs]
        return first
    if fix == "enable-vpc-dns":
        attrs = {a for q in own for a in q.get("attributes") or []}
        first["attributes"] = [a for a in ("enableDnsSupport", "enableDnsHostnames") if a in attrs]
        return first
    if fix == "grant-iam-permissions":
        by_action: dict[str, list[str]] = {}
        for q in own:
            if q.get("role_name") != first.get("role_name"):
                continue
            for st in q.get("statements") or []:
                for a in st.get("actions") or []:
                    res = by_action.setdefault(str(a), [])
                    res.extend(r for r in st.get("resources") or [] if r not in res)
        grouped: dict[tuple[str, ...], list[str]] = {}
        for a, res in by_action.items():
            grouped.setdefault(tuple(res), []).append(a)
        first["statements"] = [{"actions": acts, "resources": list(res)} for res, acts in grouped.items()]
        return first
    return first


# ---------------------------------------------------------------------------------------------- ranking
def _find_root_cause(
    catalogue: Catalogue, rc_id: str, step: str, entry: Entry | None
) -> tuple[Entry, RootCauseInfo] | None:
    candidates: list[Entry] = []
    if entry is not None:
        candidates.append(entry)
    candidates += [e for e in catalogue if e.step == step and e not in candidates]
    candidates += [e for e in catalogue if e not in candidates]
    for e in candidates:
        for rc in e.root_causes:
            if rc.id == rc_id:
                return e, rc
    return None


def _fix_for(entry: Entry, rc_id: str, support: Sequence[Finding]) -> tuple[str, dict[str, Any], str]:
    """(fix id, params, note) for a root cause of an entry, given the findings that support it."""
    fix = entry.fix_for(rc_id)
    reason = next((f.summary for f in support), "") or next(
        (r.summary for r in entry.root_causes if r.id == rc_id), rc_id
    )
    if fix is None or fix.action == TICKET:
        return TICKET, {"reason": reason[:500]}, ""
    params = merge_params(fix.action, support)
    if valid_params(fix.action, params):
        return fix.action, params, ""
    return (
        TICKET,
        {"reason": reason[:500]},
        f"the catalogue's fix '{fix.action}' could not be parameterised from the evidence; a person decides",
    )


def _summary(rc: RootCauseInfo, support: Sequence[Finding]) -> str:
    found = "; ".join(f.summary for f in support[:2])
    return f"{rc.summary} Found: {found}" if found else rc.summary


def rank(
    classification: Classification,
    findings: Sequence[Finding],
    *,
    catalogue: Catalogue | None = None,
    auth_mode: str = "",
) -> RootCause:
    cat = catalogue or get_catalogue()
    entry = cat.get(classification.entry) if classification.entry else None
    failing = sorted((f for f in findings if f.status == CheckStatus.FAIL), key=_order_key)
    base = classification.confidence or 0.5

    # 1. healthy
    if classification.healthy or (entry is not None and entry.healthy):
        return RootCause(
            id=HEALTHY,
            summary="The ESM reports no error" + (f"; {len(failing)} latent problem(s) found" if failing else "."),
            step=str(Step.NONE),
            fix=NO_FIX,
            fix_params={},
            confidence=round(base, 2),
            evidence=[f.check for f in failing],
            notes=[f"latent: {f.check}: {f.summary}" for f in failing],
        )

    # 2. the entry's root causes, scored by the failed checks
    notes: list[str] = []
    best: tuple[tuple[bool, bool, bool, int], RootCauseInfo, list[Finding]] | None = None
    if entry is not None:
        for i, rc in enumerate(entry.root_causes):
            sup = [f for f in failing if supports(f, rc)]
            if not sup:
                continue
            top = any(causes(f)[:1] == [rc.id] for f in sup)
            is_named = any(rc.id in causes(f) for f in sup)
            all_failed = bool(rc.checks) and all(any(f.check == c for f in sup) for c in rc.checks)
            score = (top, is_named, all_failed, -i)
            if best is None or score > best[0]:
                best = (score, rc, sup)

    earliest = failing[0] if failing else None
    if best is not None and entry is not None:
        score, rc, sup = best
        blocked_earlier = (
            earliest is not None and earliest not in sup and 0 <= step_index(earliest.step) < step_index(entry.step)
        )
        if not blocked_earlier or earliest is None:
            fix, params, note = _fix_for(entry, rc.id, sup)
            notes += [note] if note else []
            others = [f.check for f in failing if f not in sup]
            if others:
                notes.append(f"also failing: {', '.join(others)}")
            confidence = base * (0.95 if score[0] else 0.85 if score[1] else 0.8 if score[2] else 0.6)
            return RootCause(
                id=rc.id,
                summary=_summary(rc, sup),
                step=entry.step,
                fix=fix,
                fix_params=params,
                confidence=round(confidence, 2),
                evidence=[f.check for f in sup],
                notes=notes,
            )
        notes.append(
            f"the ESM reports step '{entry.step}' ({entry.id}: {rc.id}), but '{earliest.check}' fails at the earlier "
            f"step '{earliest.step}', which blocks the ESM first"
        )

    # 3./4. the first failed check in set-up order
    if earliest is not None:
        if entry is not None and best is None:
            notes.append(
                f"the ESM reports step '{entry.step}' ({entry.id}) but no check supports its root causes; the first "
                f"failed check is '{earliest.check}' at step '{earliest.step}'"
            )
        named = causes(earliest)
        found = None
        for c in named:
            found = _find_root_cause(cat, c, earliest.step, entry)
            if found is not None:
                break
        same_step = [f for f in failing if f.step == earliest.step]
        if found is not None:
            owner, rc = found
            sup = [f for f in same_step if rc.id in causes(f)] or [earliest]
            fix, params, note = _fix_for(owner, rc.id, sup)
            notes += [note] if note else []
            return RootCause(
                id=rc.id,
                summary=_summary(rc, sup),
                step=earliest.step,
                fix=fix,
                fix_params=params,
                confidence=round(base * 0.6 if entry else 0.5, 2),
                evidence=[f.check for f in sup],
                notes=notes,
            )
        return RootCause(
            id=named[0] if named else UNKNOWN,
            summary=earliest.summary,
            step=earliest.step,
            fix=TICKET,
            fix_params={"reason": earliest.summary[:500]},
            confidence=round(base * 0.4 if entry else 0.3, 2),
            evidence=[earliest.check],
            notes=notes,
        )

    # 5. nothing failed
    if entry is not None and entry.root_causes:
        undecided = {f.check for f in findings if f.status in (CheckStatus.UNKNOWN, CheckStatus.WARN)}
        ran = {f.check for f in findings}
        usable = [r for r in entry.root_causes if applies(r.id, auth_mode)] or list(entry.root_causes)

        def ruled_out(r: RootCauseInfo) -> bool:
            return bool(r.checks) and set(r.checks) <= ran and r.id not in PARTLY_UNCHECKABLE

        pick = next((r for r in usable if set(r.checks) & undecided), None)
        why = "its check could not decide"
        if pick is None:
            pick = next((r for r in usable if not ruled_out(r)), None)
            why = "no check can confirm or rule it out"
        if pick is None:
            pick = usable[0]
            why = "the catalogue lists it first"
        notes.append(f"no check failed; '{pick.id}' is the most plausible cause because {why}")
        return RootCause(
            id=pick.id,
            summary=pick.summary,
            step=entry.step,
            fix=TICKET,
            fix_params={"reason": f"unconfirmed: {pick.summary}"[:500]},
            confidence=round(base * 0.3, 2),
            evidence=sorted(set(pick.checks) & undecided),
            notes=notes,
        )
    return RootCause(
        id=UNKNOWN,
        summary="The ESM's status text is not in the catalogue and no check found a problem.",
        step=classification.step or str(Step.UNKNOWN),
        fix=TICKET,
        fix_params={"reason": f"unrecognised ESM status: {classification.text[:300]}"},
        confidence=0.1,
        evidence=[],
        notes=notes,
    )


__all__ = [
    "HEALTHY",
    "NO_FIX",
    "TICKET",
    "UNKNOWN",
    "applies",
    "causes",
    "merge_params",
    "rank",
    "supports",
    "valid_params",
]
