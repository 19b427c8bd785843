"""Errors the remediation package raises on purpose, and the translation of AWS errors into them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from esm_medic.aws import error_code, error_message, is_access_denied, is_throttling

if TYPE_CHECKING:  # pragma: no cover
    pass


# ---------------------------------------------------------------------------------------------- errors
class RemediationError(Exception):
    """Base of every error the remediation package raises on purpose."""

    code = "remediation-error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.details}


class InvalidParams(RemediationError):
    """The parameters do not match the action's schema or break one of its rules."""

    code = "invalid-params"


class UnknownAction(RemediationError):
    code = "unknown-action"


class ActionFailed(RemediationError):
    """A call failed while applying / verifying / rolling back. ``missing_permission`` names the IAM action
    when AWS said access denied; ``throttled`` is set when retries were exhausted on throttling."""

    code = "failed"

    def __init__(
        self,
        message: str,
        *,
        missing_permission: str | None = None,
        throttled: bool = False,
        aws_code: str = "",
        **details: Any,
    ) -> None:
        super().__init__(message, **details)
        self.missing_permission = missing_permission
        self.throttled = throttled
        self.aws_code = aws_code

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d.update(missing_permission=self.missing_permission, throttled=self.throttled, aws_code=self.aws_code)
        return d


class CidrRuleRejected(RemediationError):
    """Raised by the security-group guard: esm-medic never builds a rule that names a CIDR or prefix list."""

    code = "cidr-rejected"


class LockBusy(RemediationError):
    code = "locked"


class BudgetExceeded(RemediationError):
    code = "budget-exceeded"


# ---------------------------------------------------------------------------------------------- helpers
def iam_action(service: str, operation: str) -> str:
    """'ec2', 'describe_vpc_endpoints' -> 'ec2:DescribeVpcEndpoints' (botocore's own operation name)."""
    return f"{service}:{_op_name(service, operation)}"


_OP_NAME_CACHE: dict[tuple[str, str], str] = {}
_SPECIAL_OPS = {
    ("route53", "list_hosted_zones_by_vpc"): "ListHostedZonesByVPC",
    ("route53", "associate_vpc_with_hosted_zone"): "AssociateVPCWithHostedZone",
}


def _op_name(service: str, operation: str) -> str:
    key = (service, operation)
    cached = _OP_NAME_CACHE.get(key)
    if cached is None:
        cached = _SPECIAL_OPS.get(key) or "".join(p[:1].upper() + p[1:] for p in operation.split("_"))
        _OP_NAME_CACHE[key] = cached
    return cached


def failure_from(exc: BaseException, service: str, operation: str, what: str = "") -> ActionFailed:
    """Turn a botocore error into an ActionFailed naming the missing permission / throttling."""
    perm = iam_action(service, operation)
    code = error_code(exc)
    msg = error_message(exc)
    label = what or perm
    if is_access_denied(exc):
        return ActionFailed(
            f"{label}: access denied; the remediation role needs {perm} ({code}: {msg})",
            missing_permission=perm,
            aws_code=code,
        )
    if is_throttling(exc):
        return ActionFailed(
            f"{label}: still throttled after the adapter's retries ({code}); nothing more was changed",
            throttled=True,
            aws_code=code,
        )
    return ActionFailed(f"{label} failed: {code or type(exc).__name__}: {msg}", aws_code=code)
