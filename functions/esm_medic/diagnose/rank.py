"""Pick the root cause, the ranked hypotheses and the plan from the classification plus the findings.

1. A healthy classification -> root cause ``healthy`` with fix ``""``. Failed checks on a healthy ESM are latent
   problems: named in the notes, never acted on (no hypotheses, no plan).
2. Otherwise the ESM's own report constrains the evidence and every failing finding gives hypotheses, ranked and
   turned into an ordered plan (:mod:`esm_medic.diagnose.hypotheses`: observed step, evidence strength, masking).
   The best hypothesis is the root cause. A catalogue fix that the evidence cannot parameterise becomes ``ticket``.
3. Nothing failed: a known entry gets its most plausible unconfirmed root cause with ``ticket`` (one whose check
   could not decide, else one no check can rule out: SCPs, IAM propagation, quotas). When every root cause of the
   entry is ruled out by a passing check, the status is older than the account: root cause ``status-stale``, no
   fix ("the account looks fixed; the ESM has not reported since"). An unknown text gets ``unknown`` + ``ticket``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from esm_medic.catalogue import Catalogue, Entry, RootCauseInfo, get_catalogue
from esm_medic.classify import Classification
from esm_medic.diagnose import hypotheses
from esm_medic.diagnose.checks import CHECK_ORDER
from esm_medic.models import CheckStatus, Finding, Hypothesis, PlanItem, RootCause
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


def _merge_hyps(fix: str, group: Sequence[Hypothesis]) -> dict[str, Any]:
    pseudo = [Finding(h.id, CheckStatus.FAIL, "", fix=fix, fix_params=h.fix_params) for h in group]
    return merge_params(fix, pseudo)


def _root_from(h: Hypothesis, base: float, notes: list[str]) -> RootCause:
    return RootCause(
        id=h.id,
        summary=h.summary,
        step=h.step,
        fix=h.fix,
        fix_params=dict(h.fix_params),
        confidence=round(base * h.score, 2),
        evidence=list(h.evidence),
        notes=notes + h.notes,
    )


def _as_hypothesis(rc: RootCause, safety: str = "manual") -> Hypothesis:
    return Hypothesis(
        id=rc.id,
        step=rc.step,
        score=rc.confidence,
        summary=rc.summary,
        fix=rc.fix,
        fix_params=dict(rc.fix_params),
        safety=safety,
        strength="heuristic",
        evidence=list(rc.evidence),
    )


def rank(
    classification: Classification,
    findings: Sequence[Finding],
    *,
    catalogue: Catalogue | None = None,
    auth_mode: str = "",
    source_kind: str = "",
) -> RootCause:
    """The best hypothesis as a root cause (see :func:`assess` for all of them and the plan)."""
    return assess(classification, findings, catalogue=catalogue, auth_mode=auth_mode, source_kind=source_kind)[0]


def assess(
    classification: Classification,
    findings: Sequence[Finding],
    *,
    catalogue: Catalogue | None = None,
    auth_mode: str = "",
    source_kind: str = "",
) -> tuple[RootCause, list[Hypothesis], list[PlanItem]]:
    """(root cause, ranked hypotheses, ordered plan). Demotes contradicted heuristic findings in place."""
    cat = catalogue or get_catalogue()
    entry = cat.get(classification.entry) if classification.entry else None
    base = classification.confidence or 0.5

    # 1. healthy: failed checks are latent problems, never acted on
    if classification.healthy or (entry is not None and entry.healthy):
        failing = sorted((f for f in findings if f.status == CheckStatus.FAIL), key=_order_key)
        return (
            RootCause(
                id=HEALTHY,
                summary="The ESM reports no error" + (f"; {len(failing)} latent problem(s) found" if failing else "."),
                step=str(Step.NONE),
                fix=NO_FIX,
                fix_params={},
                confidence=round(base, 2),
                evidence=[f.check for f in failing],
                notes=[f"latent: {f.check}: {f.summary}" for f in failing],
            ),
            [],
            [],
        )

    # 2. the observed step constrains the evidence; every failing finding gives hypotheses
    notes = hypotheses.observe(findings, entry)
    hyps = hypotheses.build(findings, entry, cat, _fix_for, lambda rc, sup: wording(_summary(rc, sup), source_kind))
    if hyps:
        best = hyps[0]
        others = [h.id for h in hyps[1:]]
        if others:
            notes.append(f"also: {', '.join(others)}")
        if entry is not None and best.id not in {rc.id for rc in entry.root_causes}:
            notes.append(
                f"the ESM reports step '{entry.step}' ({entry.id}); the best-supported cause is '{best.id}' at step "
                f"'{best.step}'"
            )
        return _root_from(best, base, notes), hyps, hypotheses.plan(hyps, _merge_hyps)

    # 3. nothing failed
    root = _nothing_failed(classification, findings, entry, auth_mode, base, notes, source_kind)
    if root.fix == NO_FIX:
        return root, [], []
    hyp = _as_hypothesis(root)
    return root, [hyp], hypotheses.plan([hyp], _merge_hyps)


#: how long a failing Kafka ESM may take to report again after its account was repaired
RECHECK_SECONDS = 300
STALE = "status-stale"


def _nothing_failed(
    classification: Classification,
    findings: Sequence[Finding],
    entry: Entry | None,
    auth_mode: str,
    base: float,
    notes: list[str],
    source_kind: str,
) -> RootCause:
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
            # every cause the catalogue knows for this text is ruled out by a live check: the status is old
            return RootCause(
                id=STALE,
                summary=(
                    f"The account looks fixed: every check for '{entry.id}' passes; the ESM has not reported since. "
                    f"Run again in {RECHECK_SECONDS} s, or restart polling with `aws lambda "
                    "update-event-source-mapping --uuid UUID --no-enabled` then `--enabled`."
                ),
                step=entry.step,
                fix=NO_FIX,
                fix_params={},
                confidence=round(base * 0.8, 2),
                evidence=sorted(c for r in usable for c in r.checks),
                notes=[*notes, f"recheck_seconds={RECHECK_SECONDS}"],
            )
        notes.append(f"no check failed; '{pick.id}' is the most plausible cause because {why}")
        return RootCause(
            id=pick.id,
            summary=wording(pick.summary, source_kind),
            step=entry.step,
            fix=TICKET,
            fix_params={"reason": f"unconfirmed: {wording(pick.summary, source_kind)}"[:500]},
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


_SELF_MANAGED_WORDS = (
    ("the cluster security groups", "the ESM's security groups"),
    ("the cluster security group", "the ESM's security group"),
    ("The cluster security group", "The ESM's security group"),
    ("cluster SG", "ESM security group"),
    ("the MSK cluster", "the Kafka cluster"),
    ("MSK ", "Kafka "),
)


def wording(text: str, source_kind: str) -> str:
    """Catalogue texts speak of MSK; for self-managed Kafka the ENIs carry the ESM's own security groups."""
    if source_kind != "self-managed":
        return text
    for old, new in _SELF_MANAGED_WORDS:
        text = text.replace(old, new)
    return text


__all__ = [
    "HEALTHY",
    "NO_FIX",
    "STALE",
    "TICKET",
    "UNKNOWN",
    "applies",
    "assess",
    "causes",
    "merge_params",
    "rank",
    "supports",
    "valid_params",
    "wording",
]
