"""A small local IAM policy evaluator, standing in for ``iam:SimulatePrincipalPolicy`` / ``SimulateCustomPolicy``.

moto gap: moto 5.2.5 does not implement either simulate call (``NotImplementedError`` in decorator mode, HTTP 500
in server mode). esm-medic's diagnosis asks "may the ESM's execution role call kafka-cluster:Connect /
secretsmanager:GetSecretValue / ec2:CreateNetworkInterface ...", so the sandbox needs an answer in the real
response shape. ``patch_iam`` gathers a principal's policies from moto's IAM backend and calls :func:`simulate`.

What this evaluator does (identity-based policies only):

- ``Allow`` / ``Deny`` statements, ``Action`` / ``NotAction``, ``Resource`` / ``NotResource`` (string or list);
- ``*`` (any run of characters, ``:`` and ``/`` included) and ``?`` (one character) wildcards; actions match
  case-insensitively, resources case-sensitively, as IAM does;
- an explicit deny wins over any allow; no matching allow means ``implicitDeny``;
- an optional permissions boundary: when given, an action is allowed only if the boundary allows it too;
- results per action, or per (action, resource) when resources are given, shaped like AWS's
  ``EvaluationResults`` (``EvalActionName``, ``EvalResourceName``, ``EvalDecision``, ``MatchedStatements`` with
  ``SourcePolicyId`` / ``SourcePolicyType`` / ``StartPosition`` / ``EndPosition``, ``MissingContextValues``,
  ``ResourceSpecificResults``, ``PermissionsBoundaryDecisionDetail``).

Known limitations (deliberate, documented):

- **Conditions are not evaluated.** A statement with a ``Condition`` block never matches (neither for Allow nor
  for Deny), which is what AWS's simulator does when the context keys it needs are not supplied; its condition
  keys are reported in ``MissingContextValues`` so a caller can see that the answer is conditional.
- Policy variables (``${aws:username}``) are compared literally; resource-based policies, SCPs and session
  policies are not considered; ``Principal`` / ``NotPrincipal`` are ignored (identity policies have none).

Pure code: no boto3, no moto.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

ALLOWED = "allowed"
EXPLICIT_DENY = "explicitDeny"
IMPLICIT_DENY = "implicitDeny"

#: SourcePolicyType values AWS uses in MatchedStatements
POLICY_TYPES = ("user", "group", "role", "aws-managed", "user-managed", "resource", "none")


class PolicyDocumentError(ValueError):
    """The policy document is not valid JSON or not shaped like an IAM policy."""


@dataclass(frozen=True)
class Position:
    line: int
    column: int

    def to_api(self) -> dict[str, int]:
        return {"Line": self.line, "Column": self.column}


@dataclass(frozen=True)
class Statement:
    """One statement of one policy, with where it came from and where it sits in the document."""

    effect: str
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    not_resources: tuple[str, ...] = ()
    condition_keys: tuple[str, ...] = ()
    has_condition: bool = False
    sid: str = ""
    source_policy_id: str = ""
    source_policy_type: str = "none"
    start: Position = Position(1, 1)
    end: Position = Position(1, 1)

    def matches_action(self, action: str) -> bool:
        if self.actions:
            return any(_match(p, action, ignore_case=True) for p in self.actions)
        if self.not_actions:
            return not any(_match(p, action, ignore_case=True) for p in self.not_actions)
        return False

    def matches_resource(self, resource: str) -> bool:
        if self.resources:
            return any(_match(p, resource, ignore_case=False) for p in self.resources)
        if self.not_resources:
            return not any(_match(p, resource, ignore_case=False) for p in self.not_resources)
        return False

    def matched_statement(self) -> dict[str, Any]:
        return {
            "SourcePolicyId": self.source_policy_id,
            "SourcePolicyType": self.source_policy_type,
            "StartPosition": self.start.to_api(),
            "EndPosition": self.end.to_api(),
        }


@dataclass(frozen=True)
class Policy:
    """A parsed policy document: its id (name), its type (see POLICY_TYPES) and its statements."""

    policy_id: str
    policy_type: str
    statements: tuple[Statement, ...]


@dataclass
class Decision:
    action: str
    resource: str
    decision: str
    matched: list[Statement] = field(default_factory=list)
    missing_context: list[str] = field(default_factory=list)
    boundary_allowed: bool | None = None


# ---------------------------------------------------------------------------------------------- wildcards
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


def _match(pattern: str, value: str, *, ignore_case: bool) -> bool:
    """IAM glob match: ``*`` = any run of characters (``:`` and ``/`` included), ``?`` = exactly one."""
    if pattern == "*":
        return True
    return _compile(pattern, ignore_case).fullmatch(value) is not None


def wildcard_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """Public form of the IAM wildcard match (used by tests and callers)."""
    return _match(pattern, value, ignore_case=ignore_case)


# ---------------------------------------------------------------------------------------------- parsing
def _as_tuple(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise PolicyDocumentError(f"{what} must be a string or a list of strings")


def _line_col(text: str, offset: int) -> Position:
    line = text.count("\n", 0, offset) + 1
    last_nl = text.rfind("\n", 0, offset)
    return Position(line, offset - last_nl)  # 1-based column


def _statement_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the elements of the top-level ``Statement`` (array or single object) in ``text``.

    Uses ``json.JSONDecoder.raw_decode`` to step over values, so the spans are exact for any valid JSON.
    Returns [] if the layout is not understood (positions then default to 1:1).
    """
    dec = json.JSONDecoder()
    ws = re.compile(r"[ \t\n\r]*")

    def skip(i: int) -> int:
        m = ws.match(text, i)
        return m.end() if m else i

    try:
        i = skip(0)
        if text[i] != "{":
            return []
        i = skip(i + 1)
        while i < len(text) and text[i] != "}":
            key, i = dec.raw_decode(text, i)
            i = skip(i)
            if text[i] != ":":
                return []
            i = skip(i + 1)
            start = i
            value, end = dec.raw_decode(text, i)
            if key == "Statement":
                if isinstance(value, dict):
                    return [(start, end)]
                spans = []
                j = skip(start + 1)
                while j < end and text[j] != "]":
                    _, k = dec.raw_decode(text, j)
                    spans.append((j, k))
                    j = skip(k)
                    if text[j] == ",":
                        j = skip(j + 1)
                return spans
            i = skip(end)
            if text[i] == ",":
                i = skip(i + 1)
    except (ValueError, IndexError):
        return []
    return []


def parse_policy(document: str | Mapping[str, Any], policy_id: str = "", policy_type: str = "none") -> Policy:
    """Parse a policy document (a JSON string, URL-decoded, or a dict) into a :class:`Policy`."""
    if isinstance(document, Mapping):
        text = json.dumps(document, indent=2)
        doc: Any = document
    else:
        text = str(document)
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PolicyDocumentError(f"policy {policy_id or '?'} is not valid JSON: {exc}") from exc
    if not isinstance(doc, Mapping):
        raise PolicyDocumentError(f"policy {policy_id or '?'} is not a JSON object")
    raw = doc.get("Statement")
    if raw is None:
        raise PolicyDocumentError(f"policy {policy_id or '?'} has no Statement")
    raw_list = [raw] if isinstance(raw, Mapping) else raw
    if not isinstance(raw_list, list):
        raise PolicyDocumentError(f"policy {policy_id or '?'}: Statement must be an object or a list")
    spans = _statement_spans(text)
    statements = []
    for n, st in enumerate(raw_list):
        if not isinstance(st, Mapping):
            raise PolicyDocumentError(f"policy {policy_id or '?'}: statement {n + 1} is not an object")
        effect = st.get("Effect")
        if effect not in ("Allow", "Deny"):
            raise PolicyDocumentError(f"policy {policy_id or '?'}: statement {n + 1} has Effect {effect!r}")
        actions = _as_tuple(st.get("Action"), "Action")
        not_actions = _as_tuple(st.get("NotAction"), "NotAction")
        resources = _as_tuple(st.get("Resource"), "Resource")
        not_resources = _as_tuple(st.get("NotResource"), "NotResource")
        if bool(actions) == bool(not_actions):
            raise PolicyDocumentError(f"policy {policy_id or '?'}: statement {n + 1} needs Action xor NotAction")
        cond = st.get("Condition")
        keys: list[str] = []
        if isinstance(cond, Mapping):
            for op_body in cond.values():
                if isinstance(op_body, Mapping):
                    keys.extend(str(k) for k in op_body)
        if n < len(spans):
            start, end = _line_col(text, spans[n][0]), _line_col(text, spans[n][1])
        else:
            start = end = Position(1, 1)
        statements.append(
            Statement(
                effect=str(effect),
                actions=actions,
                not_actions=not_actions,
                resources=resources,
                not_resources=not_resources,
                condition_keys=tuple(dict.fromkeys(keys)),
                has_condition=bool(cond),
                sid=str(st.get("Sid") or ""),
                source_policy_id=policy_id,
                source_policy_type=policy_type,
                start=start,
                end=end,
            )
        )
    return Policy(policy_id=policy_id, policy_type=policy_type, statements=tuple(statements))


# ---------------------------------------------------------------------------------------------- evaluation
def _statements_for(policies: Iterable[Policy], action: str, resource: str) -> tuple[list[Statement], list[str]]:
    """Statements that apply to (action, resource), and the condition keys of those skipped for a Condition."""
    hits: list[Statement] = []
    missing: list[str] = []
    for policy in policies:
        for st in policy.statements:
            if not (st.matches_action(action) and st.matches_resource(resource)):
                continue
            if st.has_condition:
                missing.extend(k for k in st.condition_keys if k not in missing)
                continue
            hits.append(st)
    return hits, missing


def decide(
    policies: Sequence[Policy], action: str, resource: str = "*", boundary: Sequence[Policy] | None = None
) -> Decision:
    """The decision for one action on one resource ("*" when no resource is given)."""
    hits, missing = _statements_for(policies, action, resource)
    denies = [s for s in hits if s.effect == "Deny"]
    allows = [s for s in hits if s.effect == "Allow"]
    boundary_allowed: bool | None = None
    if boundary is not None:
        b_hits, b_missing = _statements_for(boundary, action, resource)
        missing.extend(k for k in b_missing if k not in missing)
        b_denies = [s for s in b_hits if s.effect == "Deny"]
        boundary_allowed = bool([s for s in b_hits if s.effect == "Allow"]) and not b_denies
        denies.extend(b_denies)
    if denies:
        return Decision(action, resource, EXPLICIT_DENY, denies, missing, boundary_allowed)
    if allows and boundary_allowed is not False:
        return Decision(action, resource, ALLOWED, allows, missing, boundary_allowed)
    return Decision(action, resource, IMPLICIT_DENY, [], missing, boundary_allowed)


def _result_item(d: Decision, with_resource_detail: bool) -> dict[str, Any]:
    matched = [s.matched_statement() for s in d.matched]
    item: dict[str, Any] = {
        "EvalActionName": d.action,
        "EvalResourceName": d.resource,
        "EvalDecision": d.decision,
        "MatchedStatements": matched,
        "MissingContextValues": list(d.missing_context),
        "EvalDecisionDetails": {},
    }
    if d.boundary_allowed is not None:
        item["PermissionsBoundaryDecisionDetail"] = {"AllowedByPermissionsBoundary": d.boundary_allowed}
    if with_resource_detail:
        item["ResourceSpecificResults"] = [
            {
                "EvalResourceName": d.resource,
                "EvalResourceDecision": d.decision,
                "MatchedStatements": matched,
                "MissingContextValues": list(d.missing_context),
                "EvalDecisionDetails": {},
            }
        ]
    return item


def simulate(
    policies: Sequence[Policy],
    actions: Sequence[str],
    resources: Sequence[str] | None = None,
    boundary: Sequence[Policy] | None = None,
) -> list[dict[str, Any]]:
    """``EvaluationResults`` for every action (x every resource, when resources are given), in AWS's shape."""
    out = []
    for action in actions:
        if resources:
            for resource in resources:
                out.append(_result_item(decide(policies, action, resource, boundary), True))
        else:
            out.append(_result_item(decide(policies, action, "*", boundary), False))
    return out


def simulate_documents(
    documents: Sequence[str | Mapping[str, Any]],
    actions: Sequence[str],
    resources: Sequence[str] | None = None,
    boundary_documents: Sequence[str | Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """``SimulateCustomPolicy`` semantics: policy ids are ``PolicyInputList.<n>`` (1-based)."""
    policies = [parse_policy(doc, f"PolicyInputList.{n}", "none") for n, doc in enumerate(documents, 1)]
    boundary = None
    if boundary_documents:
        boundary = [
            parse_policy(doc, f"PermissionsBoundaryPolicyInputList.{n}", "none")
            for n, doc in enumerate(boundary_documents, 1)
        ]
    return simulate(policies, actions, resources, boundary)
