"""AssumeRole refused as AWS refuses it: the role's trust policy is evaluated.

moto gap and what we do: moto's ``AssumeRole`` hands out credentials for any role ARN, existing or not, whatever its
trust policy says, so a member role that trusts only the central install with an external id is as open as one that
trusts everybody. The sandbox now looks the role up in its account and evaluates its trust policy against the caller
(its own small evaluator, written from the IAM documentation; nothing of esm-medic's is imported):

- the caller is the principal of the request's access key: an assumed role counts as its role ARN
  (``aws:PrincipalArn``), an IAM user as its ARN, the sandbox's default credentials as the account root;
- a statement applies when its ``Action`` covers ``sts:AssumeRole`` and its ``Principal`` names ``*``, the caller's
  account (``123456789012`` or ``arn:aws:iam::123456789012:root``) or the caller's ARN (``NotPrincipal`` is not
  supported: such a statement never applies);
- ``Condition`` operators ``StringEquals`` / ``StringNotEquals`` / ``StringLike`` / ``StringNotLike`` /
  ``ArnEquals`` / ``ArnLike`` / ``ArnNotLike`` / ``Bool`` / ``Null``, each with an ``IfExists`` form, over the keys
  ``sts:ExternalId``, ``sts:RoleSessionName``, ``aws:PrincipalArn``, ``aws:PrincipalAccount`` and
  ``aws:PrincipalOrgID`` (from moto's Organizations, when the caller's account is in one); an unknown operator
  fails closed;
- an explicit ``Deny`` wins; no ``Allow`` means ``AccessDenied`` with AWS's message.

A role that does not exist is refused too, except ``OrganizationAccountAccessRole`` asked for from another account:
AWS Organizations creates that administrator role in every member account, and the sandbox stands in for it.
"""

from __future__ import annotations

import fnmatch
import json
import threading
import urllib.parse
import warnings
from collections.abc import Mapping
from typing import Any

_APPLIED = False
_LOCK = threading.Lock()
ORG_ADMIN_ROLE = "OrganizationAccountAccessRole"


class TrustRefused(Exception):
    """The trust policy does not let the caller assume the role."""


# ---------------------------------------------------------------------------------------------- evaluator
def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _like(pattern: str, value: str) -> bool:
    """IAM wildcard match: ``*`` any run of characters, ``?`` one character, case sensitive."""
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


def _action_applies(statement: Mapping[str, Any]) -> bool:
    actions = _as_list(statement.get("Action"))
    return any(_like(str(a).lower(), "sts:assumerole") for a in actions)


def _principal_applies(principal: Any, caller_arn: str, caller_account: str) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, Mapping):
        return False
    for value in _as_list(principal.get("AWS")):
        text = str(value)
        if text == "*" or text == caller_arn:
            return True
        if text == caller_account or text.endswith(f":iam::{caller_account}:root"):
            return True
    return False


def _operator(name: str) -> tuple[str, bool]:
    if name.endswith("IfExists"):
        return name[: -len("IfExists")], True
    return name, False


def _test(op: str, wanted: list[str], actual: str | None) -> bool:
    if op == "Null":
        return all((actual is None) == (str(w).lower() == "true") for w in wanted)
    if actual is None:
        return op in ("StringNotEquals", "StringNotLike", "ArnNotLike", "ArnNotEquals")
    if op == "StringEquals":
        return actual in wanted
    if op == "StringNotEquals":
        return actual not in wanted
    if op in ("StringLike", "ArnLike", "ArnEquals"):
        return any(_like(w, actual) for w in wanted) if op != "ArnEquals" else actual in wanted
    if op in ("StringNotLike", "ArnNotLike", "ArnNotEquals"):
        return not any(_like(w, actual) for w in wanted)
    if op == "Bool":
        return actual.lower() in [str(w).lower() for w in wanted]
    raise TrustRefused(f"condition operator {op} is not supported by the sandbox")


def _conditions_hold(conditions: Any, context: Mapping[str, str | None]) -> bool:
    if not conditions:
        return True
    if not isinstance(conditions, Mapping):
        return False
    lowered = {k.lower(): v for k, v in context.items()}
    for name, block in conditions.items():
        op, if_exists = _operator(str(name))
        if not isinstance(block, Mapping):
            return False
        for key, values in block.items():
            actual = lowered.get(str(key).lower())
            if actual is None and if_exists:
                continue
            try:
                if not _test(op, [str(v) for v in _as_list(values)], actual):
                    return False
            except TrustRefused:
                return False
    return True


def evaluate(document: Mapping[str, Any], caller_arn: str, caller_account: str, context: Mapping[str, Any]) -> bool:
    """True when ``document`` (a trust policy) lets the caller assume the role (explicit Deny wins)."""
    allowed = False
    for statement in _as_list(document.get("Statement")):
        if not isinstance(statement, Mapping) or "NotPrincipal" in statement or not _action_applies(statement):
            continue
        if not _principal_applies(statement.get("Principal"), caller_arn, caller_account):
            continue
        if not _conditions_hold(statement.get("Condition"), context):
            continue
        if statement.get("Effect") == "Deny":
            return False
        allowed = allowed or statement.get("Effect") == "Allow"
    return allowed


def parse_document(text: Any) -> dict[str, Any]:
    if isinstance(text, Mapping):
        return dict(text)
    raw = str(text or "")
    for candidate in (raw, urllib.parse.unquote(raw)):
        try:
            doc = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(doc, dict):
            return doc
    return {}


def principal_arn(caller_arn: str) -> str:
    """``aws:PrincipalArn``: an assumed-role session counts as its role; the default identity as the root."""
    parts = caller_arn.split(":", 5)
    if len(parts) < 6:
        return caller_arn
    partition, account, resource = parts[1], parts[4], parts[5]
    if resource.startswith("assumed-role/"):
        role = resource.split("/")[1]
        return f"arn:{partition}:iam::{account}:role/{role}"
    if parts[2] == "sts" and resource == "user/moto":
        return f"arn:{partition}:iam::{account}:root"
    return caller_arn


# ---------------------------------------------------------------------------------------------- moto glue
def _org_id(account: str) -> str | None:
    try:
        from moto.organizations.models import organizations_backends

        for acct in list(organizations_backends.keys()):
            backend = organizations_backends[acct]["aws"]
            org = getattr(backend, "org", None)
            if org is None:
                continue
            members = {str(getattr(a, "id", "")) for a in getattr(backend, "accounts", [])}
            if account == acct or account in members:
                return str(org.id)
    except Exception:
        return None
    return None


def _find_role(account: str, role_arn: str) -> Any:
    from moto.iam.models import iam_backends

    name = role_arn.rsplit("/", 1)[-1]
    partition = role_arn.split(":")[1] if role_arn.count(":") >= 5 else "aws"
    backend = iam_backends[account][partition]
    for role in backend.get_roles():
        if role.name == name:
            return role
    return None


def check(response: Any) -> None:
    """Raise moto's AccessDenied when the caller may not assume the requested role."""
    from moto.sts.exceptions import STSClientError

    role_arn = str(response._get_param("RoleArn") or "")
    parts = role_arn.split(":")
    target = parts[4] if len(parts) > 5 else ""
    _, caller, caller_account = response.backend.get_caller_identity(response.get_access_key(), response.region)
    caller = str(caller)
    who = principal_arn(caller)
    refused = f"User: {caller} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
    if not target.isdigit():
        return  # moto's own validation answers a malformed ARN
    role = _find_role(target, role_arn)
    if role is None:
        if role_arn.rsplit("/", 1)[-1] == ORG_ADMIN_ROLE and caller_account != target:
            return
        raise STSClientError("AccessDenied", refused)
    context = {
        "sts:ExternalId": response._get_param("ExternalId"),
        "sts:RoleSessionName": response._get_param("RoleSessionName"),
        "aws:PrincipalArn": who,
        "aws:PrincipalAccount": str(caller_account),
        "aws:PrincipalOrgID": _org_id(str(caller_account)),
    }
    if not evaluate(parse_document(role.assume_role_policy_document), who, str(caller_account), context):
        raise STSClientError("AccessDenied", refused)


def apply() -> None:
    global _APPLIED
    with _LOCK:
        if _APPLIED:
            return
        from moto.sts.responses import TokenResponse

        original = TokenResponse.assume_role

        def assume_role(self: Any) -> Any:
            check(self)
            return original(self)

        TokenResponse.assume_role = assume_role  # type: ignore[method-assign]
        # moto's serializer finds no STS error shape for AccessDenied; the code and message still reach the client
        warnings.filterwarnings("ignore", message=r"Exception\(STSClientError\) with code AccessDenied")
        _APPLIED = True


__all__ = ["ORG_ADMIN_ROLE", "apply", "check", "evaluate", "parse_document", "principal_arn"]
