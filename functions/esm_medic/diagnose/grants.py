"""What the execution role may do: SimulatePrincipalPolicy with the exact ARNs (proof), or the local evaluator over
the role's policies when the simulator is unsupported or denied; a decision that needs context is undecided."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from esm_medic import iam_eval
from esm_medic.diagnose.lookups import Fetched, Lookups
from esm_medic.diagnose.permissions import Requirement


@dataclass
class Verdict:
    requirement: Requirement
    decision: str  # iam_eval decision: allowed | explicitDeny | implicitDeny | undecided
    detail: str = ""


@dataclass
class PermissionResult:
    role_arn: str
    source: str  # simulate | local | ""
    verdicts: list[Verdict] = field(default_factory=list)
    failure: Fetched[Any] | None = None  # neither the simulator nor the policies could be read
    notes: list[str] = field(default_factory=list)

    def missing(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.decision in (iam_eval.IMPLICIT_DENY, iam_eval.EXPLICIT_DENY)]

    def undecided(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.decision == iam_eval.UNDECIDED]

    def verdicts_for(self, action_prefix: str) -> list[Verdict]:
        return [v for v in self.verdicts if v.requirement.action.startswith(action_prefix)]


def role_name(role_arn: str) -> str:
    return role_arn.rsplit("/", 1)[-1] if role_arn else ""


def _simulation_decisions(results: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[str, str]]:
    """(action lower, resource) -> (decision, detail) from SimulatePrincipalPolicy EvaluationResults."""
    out: dict[tuple[str, str], tuple[str, str]] = {}
    for r in results:
        action = str(r.get("EvalActionName") or "").lower()
        missing_ctx = list(r.get("MissingContextValues") or [])
        org = r.get("OrganizationsDecisionDetail") or {}
        boundary = r.get("PermissionsBoundaryDecisionDetail") or {}
        detail = []
        if org and org.get("AllowedByOrganizations") is False:
            detail.append("denied by an SCP")
        if boundary and boundary.get("AllowedByPermissionsBoundary") is False:
            detail.append("not allowed by the permissions boundary")
        specific = r.get("ResourceSpecificResults") or []
        pairs = [
            (
                str(s.get("EvalResourceName") or "*"),
                str(s.get("EvalResourceDecision") or ""),
                s.get("MissingContextValues"),
            )
            for s in specific
        ] or [(str(r.get("EvalResourceName") or "*"), str(r.get("EvalDecision") or ""), None)]
        for resource, decision, rs_missing in pairs:
            miss = list(rs_missing or []) or missing_ctx
            d = decision
            if miss and d != iam_eval.EXPLICIT_DENY:
                d = iam_eval.UNDECIDED
            text = "; ".join([*detail, f"needs context {miss}"] if miss else detail)
            if d == iam_eval.EXPLICIT_DENY and org and org.get("AllowedByOrganizations") is False:
                text = text or "denied by an SCP"
            out[(action, resource)] = (d or iam_eval.IMPLICIT_DENY, text)
    return out


def evaluate(lookups: Lookups, fn: Fetched[dict[str, Any]], role_arn: str, reqs: list[Requirement]) -> PermissionResult:
    """What the execution role may do, for every requirement: SimulatePrincipalPolicy with the exact ARNs
    (one request for the ``*`` actions, shared per role, and one for the scoped ones); the local evaluator
    over the role's policies when the simulator is unsupported or denied."""
    if not fn.ok:
        return PermissionResult("", "", failure=fn)
    result = PermissionResult(role_arn, "simulate")
    if not reqs:
        return result
    star = [r for r in reqs if not r.scoped]
    scoped = [r for r in reqs if r.scoped]
    decisions: dict[tuple[str, str], tuple[str, str]] = {}
    sim_failure: Fetched[Any] | None = None
    for group in (star, scoped):
        if not group:
            continue
        actions = sorted({a for r in group for a in r.actions})
        resources = sorted({r.resource for r in group})
        sim = lookups.simulate(role_arn, actions, resources)
        if not sim.ok:
            sim_failure = sim
            break
        decisions.update(_simulation_decisions(sim.value or []))
    if sim_failure is not None:
        if sim_failure.not_found:  # the role itself is gone
            result.source = ""
            result.failure = sim_failure
            return result
        result.notes.append(f"iam:SimulatePrincipalPolicy unavailable ({sim_failure.describe()}); local evaluation")
        local = _local_decisions(lookups, role_arn, reqs)
        if isinstance(local, Fetched):
            result.source = ""
            result.failure = sim_failure
            result.notes.append(f"reading the role's policies failed too: {local.describe()}")
            return result
        decisions = local
        result.source = "local"
    for req in reqs:
        best, detail = iam_eval.IMPLICIT_DENY, ""
        for action in req.actions:
            d, text = decisions.get((action.lower(), req.resource), (iam_eval.IMPLICIT_DENY, "not evaluated"))
            if d == iam_eval.ALLOWED:
                best, detail = d, text
                break
            if d == iam_eval.UNDECIDED or (d == iam_eval.EXPLICIT_DENY and best == iam_eval.IMPLICIT_DENY):
                best, detail = d, text
        result.verdicts.append(Verdict(req, best, detail))
    return result


def _local_decisions(
    lookups: Lookups, role_arn: str, reqs: list[Requirement]
) -> dict[tuple[str, str], tuple[str, str]] | Fetched[Any]:
    got = lookups.role_policies(role_name(role_arn))
    if not got.ok or got.value is None:
        return got
    policies = []
    for pid, ptype, doc in got.value.documents:
        try:
            policies.append(iam_eval.parse_policy(doc, pid, ptype))
        except iam_eval.PolicyError:
            continue
    boundary = None
    if got.value.boundary is not None:
        try:
            boundary = [iam_eval.parse_policy(got.value.boundary[1], got.value.boundary[0], "permissions-boundary")]
        except iam_eval.PolicyError:
            boundary = None
    out: dict[tuple[str, str], tuple[str, str]] = {}
    for req in reqs:
        for action in req.actions:
            d = iam_eval.evaluate(policies, action, req.resource, boundary=boundary)
            text = d.reason + (f" (needs context {list(d.missing_context)})" if d.missing_context else "")
            out[(action.lower(), req.resource)] = (d.decision, text)
    return out


__all__ = ["PermissionResult", "Verdict", "evaluate", "role_name"]
