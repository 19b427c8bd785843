"""Options and helpers shared by the AWS-facing commands."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws


def add_aws_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("AWS")
    g.add_argument("--region", help="AWS region (default: the standard AWS resolution)")
    g.add_argument("--profile", help="named AWS profile")
    g.add_argument(
        "--endpoint-url",
        default=os.environ.get("AWS_ENDPOINT_URL"),
        help="AWS endpoint override, e.g. a local `esm-medic sandbox serve` (default: $AWS_ENDPOINT_URL)",
    )
    m = parser.add_argument_group("member account (one central install acting in another account)")
    target = m.add_mutually_exclusive_group()
    target.add_argument(
        "--account",
        type=_account_id,
        help="act in this member account through its EsmMedicMember role (esm-medic-diagnosis; "
        "esm-medic-remediation for fix --apply and rollback)",
    )
    target.add_argument("--role-arn", type=_role_arn, help="act through this role instead (any account)")
    m.add_argument(
        "--external-id",
        help="the sts:ExternalId to present (default: the SecureString named by $ESM_MEDIC_EXTERNAL_ID_PARAM, "
        "else $ESM_MEDIC_EXTERNAL_ID)",
    )


def _account_id(value: str) -> str:
    if not (len(value) == 12 and value.isdigit()):
        raise argparse.ArgumentTypeError(f"{value!r} is not a 12-digit account id")
    return value


def _role_arn(value: str) -> str:
    from esm_medic.accounts import AccountConfigError, role_arn_for

    try:
        role_arn_for(value)
    except AccountConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if ":role/" not in value:
        raise argparse.ArgumentTypeError(f"{value!r} is not an IAM role ARN")
    return value


def member_purpose(args: argparse.Namespace) -> str:
    """The member role a command needs: remediation to change things (fix --apply, rollback), else diagnosis."""
    if getattr(args, "apply", False) or getattr(args, "action_id", None):
        return "remediation"
    return "diagnosis"


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable JSON output")


def make_aws(args: argparse.Namespace) -> Aws:
    from esm_medic.aws import Aws

    central = Aws(
        region=getattr(args, "region", None),
        profile=getattr(args, "profile", None),
        endpoint_url=getattr(args, "endpoint_url", None),
    )
    target = getattr(args, "role_arn", None) or getattr(args, "account", None)
    if not target:
        return central
    from esm_medic.accounts import AccountConfigError, member_aws

    # deferred: the role is assumed on the first request, inside the command's own error handling
    try:
        return member_aws(
            central,
            target,
            purpose=member_purpose(args),
            external_id_value=getattr(args, "external_id", None),
            deferred=True,
        )
    except AccountConfigError as exc:
        raise SystemExit(fail(str(exc), 2)) from None


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str, ensure_ascii=False)
    sys.stdout.write("\n")


def is_tty() -> bool:
    return sys.stdout.isatty()


def fail(message: str, code: int = 1) -> int:
    print(f"esm-medic: {message}", file=sys.stderr)
    return code


def aws_error_message(exc: BaseException) -> str:
    """A one-line, human explanation of an AWS/botocore failure (credentials, endpoint, access)."""
    from esm_medic.aws import error_code, error_message, is_access_denied

    name = type(exc).__name__
    if name in ("AccountAccessError", "AccountConfigError"):
        return str(exc)
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return "no AWS credentials found (set AWS_PROFILE / --profile, or run against the sandbox with --endpoint-url)"
    if name in ("EndpointConnectionError", "ConnectionClosedError", "ConnectTimeoutError"):
        return f"cannot reach the AWS endpoint: {exc}"
    if is_access_denied(exc):
        return f"access denied: {error_message(exc)}"
    code = error_code(exc)
    return f"{code}: {error_message(exc)}" if code else f"{name}: {exc}"


SANDBOX_INSTALL_HINT = (
    "the esm-medic sandbox (a dev/test package, never deployed) is not installed: run `make venv` in a clone of "
    "esm-medic, or `pip install -e sandbox/` beside it"
)


class SandboxMissing(RuntimeError):
    """The optional ``esm_medic_sandbox`` package (dev and test code) is not installed."""


def load_sandbox(module: str) -> Any:
    """Import ``esm_medic_sandbox.<module>``; raises :class:`SandboxMissing` with the install hint when the sandbox
    package is absent (a production install has only the product)."""
    import importlib

    name = f"esm_medic_sandbox.{module}" if module else "esm_medic_sandbox"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == "esm_medic_sandbox" or exc.name.startswith(("esm_medic_sandbox.", "moto"))):
            raise SandboxMissing(SANDBOX_INSTALL_HINT) from exc
        raise
