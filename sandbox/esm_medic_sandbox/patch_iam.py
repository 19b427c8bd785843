"""IAM patches for the sandbox.

moto gaps and what we do:

1. ``SimulatePrincipalPolicy`` / ``SimulateCustomPolicy`` are not implemented (``NotImplementedError``; HTTP 500
   in server mode). We add both operations to moto's ``IamResponse``. The principal's identity policies are read
   from moto's IAM backend (inline + attached managed policies of a role, of a user and of the user's groups, plus
   the ``PolicyInputList`` of the request; the role's / user's permissions boundary, or the request's
   ``PermissionsBoundaryPolicyInputList``, when there is one) and evaluated by :mod:`esm_medic_sandbox.iam_sim`
   (see its docstring for the exact semantics: Conditions are not evaluated, such statements never match).
2. AWS managed policies are only known to moto when ``MOTO_IAM_LOAD_MANAGED_POLICIES=true`` (parsing all ~1,600
   of them for every backend costs ~0.4 s). We load just the one asked for, on demand, when an
   ``arn:aws:iam::aws:policy/...`` ARN is attached to a role / user / group or read with ``GetPolicy`` /
   ``GetPolicyVersion``. Unknown AWS managed ARNs still fail as in AWS (``NoSuchEntity``).
"""

from __future__ import annotations

import json
import threading
from typing import Any
from urllib.parse import unquote

from esm_medic_sandbox import iam_sim

_APPLIED = False
_AWS_DATA: dict[str, Any] | None = None
_AWS_DATA_LOCK = threading.Lock()


def _aws_managed_data() -> dict[str, Any]:
    global _AWS_DATA
    with _AWS_DATA_LOCK:
        if _AWS_DATA is None:
            from moto.iam.aws_managed_policies import aws_managed_policies_data

            _AWS_DATA = json.loads(aws_managed_policies_data)
        return _AWS_DATA


def ensure_aws_managed_policy(backend: Any, policy_arn: str) -> None:
    """Make an AWS managed policy known to ``backend`` (an IAMBackend) if moto has data for it."""
    if not isinstance(policy_arn, str) or ":iam::aws:policy/" not in policy_arn:
        return
    if policy_arn in backend.managed_policies:
        return
    name = policy_arn.rsplit("/", 1)[-1]
    data = _aws_managed_data().get(name)
    if data is None:
        return
    from moto.iam.models import AWSManagedPolicy

    policy = AWSManagedPolicy.from_data(name, backend.account_id, backend.region_name, data)
    if policy.arn == policy_arn:
        backend.managed_policies[policy.arn] = policy


# ---------------------------------------------------------------------------------------------- gathering
def _default_document(policy: Any) -> str:
    for version in getattr(policy, "versions", []) or []:
        if getattr(version, "is_default", False):
            return str(version.document)
    return str(getattr(policy, "document", "") or "{}")


def _managed_type(policy_arn: str) -> str:
    return "aws-managed" if ":iam::aws:policy/" in policy_arn else "user-managed"


def _parse(doc: str, policy_id: str, policy_type: str) -> iam_sim.Policy:
    text = doc
    if text and not text.lstrip().startswith("{"):
        text = unquote(text)  # documents stored URL-encoded
    return iam_sim.parse_policy(text, policy_id, policy_type)


def _principal_policies(backend: Any, principal_arn: str) -> tuple[list[iam_sim.Policy], str | None]:
    """(identity policies, permissions boundary ARN or None) of a role / user / group ARN."""
    from moto.iam.exceptions import NotFoundException

    if ":role/" in principal_arn:
        principal = backend.get_role_by_arn(principal_arn)
        inline_type, groups = "role", []
    elif ":user/" in principal_arn:
        principal = next((u for u in backend.users.values() if u.arn == principal_arn), None)
        if principal is None:
            raise NotFoundException(f"The user with name {principal_arn.rsplit('/', 1)[-1]} cannot be found.")
        inline_type = "user"
        groups = backend.get_groups_for_user(principal.name)
    elif ":group/" in principal_arn:
        principal = next((g for g in backend.groups.values() if g.arn == principal_arn), None)
        if principal is None:
            raise NotFoundException(f"The group with name {principal_arn.rsplit('/', 1)[-1]} cannot be found.")
        inline_type, groups = "group", []
    else:
        raise _invalid_input(f"Invalid ARN {principal_arn!r}: expected a role, user or group ARN.")
    policies: list[iam_sim.Policy] = []
    for name, doc in sorted((principal.policies or {}).items()):
        policies.append(_parse(doc, name, inline_type))
    for arn, policy in sorted((principal.managed_policies or {}).items()):
        policies.append(_parse(_default_document(policy), policy.name, _managed_type(arn)))
    for group in groups:
        for name, doc in sorted((group.policies or {}).items()):
            policies.append(_parse(doc, name, "group"))
        for arn, policy in sorted((group.managed_policies or {}).items()):
            policies.append(_parse(_default_document(policy), policy.name, _managed_type(arn)))
    boundary = getattr(principal, "permissions_boundary_arn", None) or getattr(principal, "permissions_boundary", None)
    if isinstance(boundary, dict):  # some moto models keep {"PermissionsBoundaryArn": ...}
        boundary = boundary.get("PermissionsBoundaryArn")
    return policies, (str(boundary) if boundary else None)


def _invalid_input(message: str) -> Exception:
    from moto.iam.exceptions import IAMException

    class InvalidInputException(IAMException):
        code = "InvalidInput"

    return InvalidInputException(message)


def _parse_inputs(docs: list[str] | None, prefix: str) -> list[iam_sim.Policy]:
    out = []
    for n, doc in enumerate(docs or [], 1):
        try:
            out.append(iam_sim.parse_policy(doc, f"{prefix}.{n}", "none"))
        except iam_sim.PolicyDocumentError as exc:
            from moto.iam.exceptions import MalformedPolicyDocument

            raise MalformedPolicyDocument(str(exc)) from exc
    return out


def _result(results: list[dict[str, Any]]) -> Any:
    from moto.core.responses import ActionResult

    return ActionResult({"EvaluationResults": results, "IsTruncated": False})


def _require_actions(actions: Any) -> list[str]:
    if not actions:
        raise _invalid_input("ActionNames must contain at least one action.")
    return [str(a) for a in actions]


# ---------------------------------------------------------------------------------------------- responses
def _simulate_principal_policy(self: Any) -> Any:
    principal_arn = self._get_param("PolicySourceArn")
    if not principal_arn:
        raise _invalid_input("PolicySourceArn is required.")
    actions = _require_actions(self._get_param("ActionNames"))
    resources = self._get_param("ResourceArns") or None
    try:
        policies, boundary_arn = _principal_policies(self.backend, principal_arn)
    except iam_sim.PolicyDocumentError as exc:
        from moto.iam.exceptions import MalformedPolicyDocument

        raise MalformedPolicyDocument(str(exc)) from exc
    policies.extend(_parse_inputs(self._get_param("PolicyInputList"), "PolicyInputList"))
    boundary: list[iam_sim.Policy] | None = None
    boundary_inputs = self._get_param("PermissionsBoundaryPolicyInputList")
    if boundary_inputs:
        boundary = _parse_inputs(boundary_inputs, "PermissionsBoundaryPolicyInputList")
    elif boundary_arn:
        ensure_aws_managed_policy(self.backend, boundary_arn)
        policy = self.backend.managed_policies.get(boundary_arn)
        if policy is not None:
            boundary = [_parse(_default_document(policy), policy.name, "permissions-boundary")]
    return _result(iam_sim.simulate(policies, actions, resources, boundary))


def _simulate_custom_policy(self: Any) -> Any:
    actions = _require_actions(self._get_param("ActionNames"))
    resources = self._get_param("ResourceArns") or None
    docs = self._get_param("PolicyInputList") or []
    if not docs:
        raise _invalid_input("PolicyInputList must contain at least one policy.")
    policies = _parse_inputs(docs, "PolicyInputList")
    boundary_inputs = self._get_param("PermissionsBoundaryPolicyInputList")
    boundary = _parse_inputs(boundary_inputs, "PermissionsBoundaryPolicyInputList") if boundary_inputs else None
    return _result(iam_sim.simulate(policies, actions, resources, boundary))


# ---------------------------------------------------------------------------------------------- apply
def _wrap_with_managed(original: Any, arn_index: int) -> Any:
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        arn = kwargs.get("policy_arn", args[arn_index] if len(args) > arn_index else None)
        if isinstance(arn, str):
            ensure_aws_managed_policy(self, arn)
        return original(self, *args, **kwargs)

    wrapper.__wrapped__ = original  # type: ignore[attr-defined]
    wrapper.__name__ = getattr(original, "__name__", "wrapper")
    return wrapper


def apply() -> None:
    global _APPLIED
    if _APPLIED:
        return
    from moto.iam.models import IAMBackend
    from moto.iam.responses import IamResponse

    IamResponse.simulate_principal_policy = _simulate_principal_policy  # type: ignore[attr-defined]
    IamResponse.simulate_custom_policy = _simulate_custom_policy  # type: ignore[attr-defined]
    # (policy_arn, ...) is the first positional argument of each of these
    for name in ("attach_role_policy", "attach_user_policy", "attach_group_policy", "get_policy"):
        setattr(IAMBackend, name, _wrap_with_managed(getattr(IAMBackend, name), 0))
    IAMBackend.get_policy_version = _wrap_with_managed(IAMBackend.get_policy_version, 0)  # type: ignore[method-assign]
    _APPLIED = True
