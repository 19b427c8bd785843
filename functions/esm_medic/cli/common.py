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


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable JSON output")


def make_aws(args: argparse.Namespace) -> Aws:
    from esm_medic.aws import Aws

    return Aws(
        region=getattr(args, "region", None),
        profile=getattr(args, "profile", None),
        endpoint_url=getattr(args, "endpoint_url", None),
    )


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
