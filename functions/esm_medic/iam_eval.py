"""A small, pure IAM identity-policy evaluator for when ``iam:SimulatePrincipalPolicy`` is unavailable.

The diagnosis asks "may this execution role call X on resource Y". AWS's simulator is the authority; this module
answers the same question from the role's policy documents when the simulator is unsupported (some endpoints) or
denied to the caller. It is deliberately conservative:

- ``Allow`` / ``Deny``, ``Action`` / ``NotAction``, ``Resource`` / ``NotResource`` (a string or a list);
- ``*`` (any run of characters) and ``?`` (exactly one) wildcards; actions compare case-insensitively, resources
  case-sensitively;
- an explicit deny beats every allow; nothing allowing means an implicit deny;
- an optional permissions boundary: the action must be allowed by the boundary too;
- a statement that would match but carries a ``Condition`` (or a resource with a policy variable such as
  ``${aws:username}``) cannot be decided without the request context. Such a statement makes the result
  ``undecided`` whenever it could change the answer (a conditional allow with no unconditional allow, or a
  conditional deny next to an allow). Callers turn ``undecided`` into a warning, never into a pass or a fail.

Not modelled: SCPs, resource policies, session policies, ``Principal`` (identity policies have none).
Stdlib only: no boto3.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

ALLOWED = "allowed"
EXPLICIT_DENY = "explicitDeny"
IMPLICIT_DENY = "implicitDeny"
UNDECIDED = "undecided"

DECISIONS = (ALLOWED, EXPLICIT_DENY, IMPLICIT_DENY, UNDECIDED)


class PolicyError(ValueError):
    """A policy document is not JSON or not shaped like an IAM policy."""


@dataclass(frozen=True)
class Statement:
    effect: str  # Allow | Deny
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] | None = None
    resources: tuple[str, ...] = ()
    not_resources: tuple[str, ...] | None = None
    conditional: bool = False
    condition_keys: tuple[str, ...] = ()
    sid: str = ""
    policy_id: str = ""

    def matches_action(self, action: str) -> bool:
        if self.not_actions is not None:
            return not any(wildcard_match(p, action, ignore_case=True) for p in self.not_actions)
        return any(wildcard_match(p, action, ignore_case=True) for p in self.actions)

    def resource_match(self, resource: str) -> str:
        """'yes', 'no' or 'maybe' (a pattern carries a policy variable we cannot substitute)."""
        patterns = self.not_resources if self.not_resources is not None else self.resources
        hit = False
        maybe = False
        for p in patterns:
            if "${" in p:
                maybe = True
                continue
            if wildcard_match(p, resource, ignore_case=False):
                hit = True
                break
        if self.not_resources is not None:
            if hit:
                return "no"
            return "maybe" if maybe else "yes"
        if hit:
            return "yes"
        return "maybe" if maybe else "no"


@dataclass(frozen=True)
class Policy:
    policy_id: str
    statements: tuple[Statement, ...]
    policy_type: str = "none"  # role | aws-managed | user-managed | permissions-boundary | endpoint | none


@dataclass(frozen=True)
class Decision:
    action: str
    resource: str
    decision: str
    matched: tuple[str, ...] = ()  # "policy_id/sid" of the statements that decided
    reason: str = ""
    missing_context: tuple[str, ...] = field(default=())

    @property
    def allowed(self) -> bool:
        return self.decision == ALLOWED

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "resource": self.resource,
            "decision": self.decision,
            "matched": list(self.matched),
            "reason": self.reason,
            "missing_context": list(self.missing_context),
        }


# ---------------------------------------------------------------------------------------------- matching
@lru_cache(maxsize=4096)
def _compile(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    parts = []
    for ch in pattern:
        if ch == "*":
            parts.append(".*")
        elif ch == "?":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def wildcard_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM-style glob: ``*`` matches any run (``:`` and ``/`` included), ``?`` exactly one character."""
    if pattern == "*":
        return True
    return _compile(pattern, ignore_case).fullmatch(value) is not None


# ---------------------------------------------------------------------------------------------- parsing
def _strings(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise PolicyError(f"{what} must be a string or a list of strings")


def load_document(document: str | Mapping[str, Any]) -> Mapping[str, Any]:
    """A policy document as a mapping; accepts JSON text, URL-encoded JSON text (IAM's wire form) or a mapping."""
    if isinstance(document, Mapping):
        return document
    if not isinstance(document, str):
        raise PolicyError("policy document must be JSON text or a mapping")
    text = document.strip()
    if text and not text.startswith("{"):
        text = unquote(text)
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise PolicyError(f"policy document is not JSON: {exc}") from exc
    if not isinstance(doc, Mapping):
        raise PolicyError("policy document must be a JSON object")
    return doc


def parse_policy(document: str | Mapping[str, Any], policy_id: str = "", policy_type: str = "none") -> Policy:
    doc = load_document(document)
    raw = doc.get("Statement")
    if raw is None:
        raise PolicyError("policy has no Statement")
    items = [raw] if isinstance(raw, Mapping) else raw
    if not isinstance(items, list):
        raise PolicyError("Statement must be an object or a list")
    statements = []
    for n, st in enumerate(items):
        if not isinstance(st, Mapping):
            raise PolicyError(f"Statement[{n}] is not an object")
        effect = str(st.get("Effect", ""))
        if effect not in ("Allow", "Deny"):
            raise PolicyError(f"Statement[{n}] has Effect {effect!r}")
        has_action, has_not_action = "Action" in st, "NotAction" in st
        if has_action == has_not_action:
            raise PolicyError(f"Statement[{n}] needs exactly one of Action / NotAction")
        has_res, has_not_res = "Resource" in st, "NotResource" in st
        if has_res and has_not_res:
            raise PolicyError(f"Statement[{n}] has both Resource and NotResource")
        condition = st.get("Condition")
        keys: list[str] = []
        if isinstance(condition, Mapping):
            for block in condition.values():
                if isinstance(block, Mapping):
                    keys.extend(str(k) for k in block)
        statements.append(
            Statement(
                effect=effect,
                actions=_strings(st.get("Action"), "Action") if has_action else (),
                not_actions=_strings(st.get("NotAction"), "NotAction") if has_not_action else None,
                # Identity policies without Resource are invalid in AWS; endpoint policies may omit it: treat as "*".
                resources=_strings(st.get("Resource"), "Resource") if has_res else ("*",) if not has_not_res else (),
                not_resources=_strings(st.get("NotResource"), "NotResource") if has_not_res else None,
                conditional=bool(condition),
                condition_keys=tuple(sorted(set(keys))),
                sid=str(st.get("Sid") or n),
                policy_id=policy_id,
            )
        )
    return Policy(policy_id=policy_id, statements=tuple(statements), policy_type=policy_type)


# ---------------------------------------------------------------------------------------------- evaluation
@dataclass
class _Tally:
    allow: list[Statement] = field(default_factory=list)
    deny: list[Statement] = field(default_factory=list)
    maybe_allow: list[Statement] = field(default_factory=list)
    maybe_deny: list[Statement] = field(default_factory=list)


def _tally(policies: Iterable[Policy], action: str, resource: str) -> _Tally:
    t = _Tally()
    for policy in policies:
        for st in policy.statements:
            if not st.matches_action(action):
                continue
            rm = st.resource_match(resource)
            if rm == "no":
                continue
            certain = rm == "yes" and not st.conditional
            if st.effect == "Deny":
                (t.deny if certain else t.maybe_deny).append(st)
            else:
                (t.allow if certain else t.maybe_allow).append(st)
    return t


def _ids(statements: Iterable[Statement]) -> tuple[str, ...]:
    return tuple(f"{s.policy_id}/{s.sid}" for s in statements)


def _keys(statements: Iterable[Statement]) -> tuple[str, ...]:
    return tuple(sorted({k for s in statements for k in s.condition_keys}))


def _decide_one(policies: Sequence[Policy], action: str, resource: str) -> Decision:
    t = _tally(policies, action, resource)
    if t.deny:
        return Decision(action, resource, EXPLICIT_DENY, _ids(t.deny), "an explicit Deny matches")
    if t.allow:
        if t.maybe_deny:
            return Decision(
                action,
                resource,
                UNDECIDED,
                _ids(t.maybe_deny),
                "allowed, unless a conditional Deny applies",
                _keys(t.maybe_deny),
            )
        return Decision(action, resource, ALLOWED, _ids(t.allow), "an Allow matches")
    if t.maybe_allow:
        return Decision(
            action,
            resource,
            UNDECIDED,
            _ids(t.maybe_allow),
            "only a conditional Allow matches",
            _keys(t.maybe_allow),
        )
    return Decision(action, resource, IMPLICIT_DENY, (), "no statement allows it")


def evaluate(
    policies: Sequence[Policy],
    action: str,
    resource: str = "*",
    *,
    boundary: Sequence[Policy] | None = None,
) -> Decision:
    """The decision for one (action, resource) under identity ``policies`` and an optional permissions boundary."""
    d = _decide_one(policies, action, resource)
    if boundary is None or d.decision in (EXPLICIT_DENY, IMPLICIT_DENY):
        return d
    b = _decide_one(boundary, action, resource)
    if b.decision == ALLOWED:
        return d
    if b.decision == UNDECIDED:
        return Decision(
            action,
            resource,
            UNDECIDED,
            d.matched + b.matched,
            "the permissions boundary is conditional",
            b.missing_context,
        )
    return Decision(
        action,
        resource,
        b.decision if b.decision == EXPLICIT_DENY else IMPLICIT_DENY,
        b.matched,
        "the permissions boundary does not allow it",
    )


def evaluate_many(
    policies: Sequence[Policy],
    actions: Iterable[str],
    resources: Iterable[str],
    *,
    boundary: Sequence[Policy] | None = None,
) -> dict[tuple[str, str], Decision]:
    """Every (action, resource) combination."""
    res = list(resources) or ["*"]
    return {(a, r): evaluate(policies, a, r, boundary=boundary) for a in actions for r in res}


__all__ = [
    "ALLOWED",
    "DECISIONS",
    "EXPLICIT_DENY",
    "IMPLICIT_DENY",
    "UNDECIDED",
    "Decision",
    "Policy",
    "PolicyError",
    "Statement",
    "evaluate",
    "evaluate_many",
    "load_document",
    "parse_policy",
    "wildcard_match",
]
