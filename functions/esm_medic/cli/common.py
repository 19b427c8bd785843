"""Options and helpers shared by every command: AWS options and region resolution, input reading that never
fails (closed stdin, invalid UTF-8, size limits), output that never fails to encode, and one error style.

Exit codes (README "CLI"): 0 done; 1 the command ran but could not complete (AWS error, not found, not applied,
some inputs unreadable); 2 bad usage or unusable input (empty, closed stdin, too large, invalid JSON, no region);
130 interrupted. Errors are one line on stderr (``esm-medic: ...``), or ``{"error": {"code", "message"}}`` on
stdout with ``--json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sys
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

#: the largest input read from a file or stdin (bytes); ESM_MEDIC_MAX_INPUT_BYTES overrides it
MAX_INPUT_BYTES = 64 * 1024 * 1024
#: the CLI waits this long to connect and tries each call at most this often (the Lambdas keep their own budgets)
CLI_CONNECT_TIMEOUT = 3.0
CLI_MAX_ATTEMPTS = 2
NO_REGION_ADVICE = (
    'You must specify a region. You can also configure your region by running "aws configure" '
    "(or pass --region, or set AWS_REGION)."
)


class CliError(Exception):
    """A failure the user can act on: one line, an error code for JSON output, an exit code."""

    def __init__(self, code: str, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code, self.message, self.exit_code = code, message, exit_code


class _State:
    json_mode = False
    stdin_closed = False
    region = ""
    endpoint = ""  # the endpoint override already checked


STATE = _State()


# ---------------------------------------------------------------------------------------------- streams
def prepare_streams() -> None:
    """Closed standard streams read as empty / discard; output escapes what cannot be encoded (lone surrogates)."""
    if sys.stdin is None:
        STATE.stdin_closed = True
        sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115 - lives as long as the process
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None:
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115
        elif hasattr(stream, "reconfigure"):
            with contextlib.suppress(ValueError, OSError):  # a stream that cannot change keeps its errors
                stream.reconfigure(errors="backslashreplace")


def safe_text(text: str) -> str:
    """``text`` with anything UTF-8 cannot carry (lone surrogates) escaped as ``\\udcxx``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def write(text: str) -> None:
    sys.stdout.write(safe_text(text))


def print_json(obj: Any) -> None:
    write(json.dumps(obj, indent=2, default=str, ensure_ascii=False) + "\n")


def max_input_bytes() -> int:
    try:
        return max(1, int(os.environ.get("ESM_MEDIC_MAX_INPUT_BYTES") or MAX_INPUT_BYTES))
    except ValueError:
        return MAX_INPUT_BYTES


def _limit_error(source: str, limit: int) -> CliError:
    return CliError(
        "input-too-large",
        f"{source} is larger than {limit:,} bytes; split it, or raise ESM_MEDIC_MAX_INPUT_BYTES",
        EXIT_USAGE,
    )


def read_stdin() -> str:
    """All of standard input as text (invalid UTF-8 replaced), within the size limit."""
    if STATE.stdin_closed or sys.stdin is None:
        raise CliError(
            "stdin-closed", "standard input is closed: pipe the input in, or pass it as an argument", EXIT_USAGE
        )
    limit = max_input_bytes()
    buffer = getattr(sys.stdin, "buffer", None)
    try:
        if buffer is not None:
            data = buffer.read(limit + 1)
            if len(data) > limit:
                raise _limit_error("standard input", limit)
            return bytes(data).decode("utf-8", errors="replace")
        text = sys.stdin.read(limit + 1)
    except (OSError, ValueError) as exc:
        raise CliError("stdin-unreadable", f"cannot read standard input: {exc}", EXIT_USAGE) from None
    if len(text) > limit:
        raise _limit_error("standard input", limit)
    return str(text)


def read_file(path: str) -> str:
    limit = max_input_bytes()
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise CliError("unreadable-file", f"cannot read {path}: {exc.strerror or exc}", EXIT_USAGE) from None
    if len(data) > limit:
        raise _limit_error(path, limit)
    return data.decode("utf-8", errors="replace")


def is_tty() -> bool:
    return bool(sys.stdout and sys.stdout.isatty())


def stdin_is_tty() -> bool:
    return not STATE.stdin_closed and bool(sys.stdin) and sys.stdin.isatty()


def fail(message: str, code: int = EXIT_FAILURE, error_code: str = "") -> int:
    """Report one error (stderr line, or JSON on stdout under --json) and return the exit code."""
    kind = error_code or ("usage" if code == EXIT_USAGE else "failed")
    if STATE.json_mode:
        print_json({"error": {"code": kind, "message": message}})
    else:
        sys.stderr.write(safe_text(f"esm-medic: {message}\n"))
    return code


def human(value: Any) -> str:
    """A value for readable output: lists joined with commas, never a Python repr."""
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(human(v) for v in value) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={human(v)}" for k, v in value.items()) or "-"
    return str(value)


# ---------------------------------------------------------------------------------------------- AWS
def add_aws_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("AWS")
    g.add_argument("--region", help="AWS region (default: $AWS_REGION, $AWS_DEFAULT_REGION, then the profile's)")
    g.add_argument("--profile", help="named AWS profile (default: $AWS_PROFILE)")
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


def resolve_region(args: argparse.Namespace) -> str:
    """The region as the AWS CLI finds it: --region, then AWS_REGION / AWS_DEFAULT_REGION, then the profile."""
    region = getattr(args, "region", None) or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        return str(region)
    try:
        import botocore.session

        session = botocore.session.Session(profile=getattr(args, "profile", None) or None)
        region = session.get_config_variable("region")
    except Exception as exc:
        if type(exc).__name__ == "ProfileNotFound":
            raise CliError(
                "no-profile",
                f"the AWS profile {args.profile or os.environ.get('AWS_PROFILE')!r} "
                "is not configured (aws configure --profile NAME)",
                EXIT_USAGE,
            ) from None
        region = None
    if not region:
        raise CliError("no-region", NO_REGION_ADVICE, EXIT_USAGE)
    return str(region)


def check_endpoint(url: str) -> None:
    """Fail fast, with a hint, when an endpoint override does not accept connections."""
    parsed = urlparse(url if "://" in url else f"http://{url}")
    host = parsed.hostname
    if not host:
        raise CliError("bad-endpoint", f"--endpoint-url {url!r} is not a URL (e.g. http://127.0.0.1:5000)", EXIT_USAGE)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=CLI_CONNECT_TIMEOUT):
            pass
    except OSError:
        raise CliError(
            "endpoint-unreachable",
            f"cannot connect to the endpoint {url}: is the sandbox running? (`esm-medic sandbox serve` prints the "
            "AWS_ENDPOINT_URL to use; unset AWS_ENDPOINT_URL to use AWS)",
        ) from None


class _ShortTimeouts:
    """A boto3 session whose clients connect with the CLI's short timeout and few attempts."""

    def __init__(self, session: Any) -> None:
        self._session = session

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    def client(self, service: str, **kwargs: Any) -> Any:
        from botocore.config import Config

        short = Config(
            connect_timeout=CLI_CONNECT_TIMEOUT, retries={"mode": "standard", "total_max_attempts": CLI_MAX_ATTEMPTS}
        )
        given = kwargs.get("config")
        kwargs["config"] = given.merge(short) if given is not None else short
        return self._session.client(service, **kwargs)


def preflight(args: argparse.Namespace) -> None:
    """Before an AWS-facing command runs: the region (or the AWS CLI's advice) and a reachable endpoint."""
    if not hasattr(args, "region") or not hasattr(args, "endpoint_url"):
        return
    STATE.region = resolve_region(args)
    if args.endpoint_url:
        check_endpoint(args.endpoint_url)
        STATE.endpoint = args.endpoint_url


def make_aws(args: argparse.Namespace) -> Aws:
    """An ``Aws`` for a command: the region resolved as the AWS CLI does (or a clear stop), the endpoint
    checked, short connect timeouts and few retries."""
    from esm_medic.aws import Aws

    region = resolve_region(args)
    endpoint = getattr(args, "endpoint_url", None) or None
    if endpoint and endpoint != STATE.endpoint:
        check_endpoint(endpoint)
    profile = getattr(args, "profile", None) or None
    try:
        session = Aws(region=region, profile=profile, endpoint_url=endpoint).session
    except Exception as exc:
        raise CliError("no-profile", f"cannot use the AWS profile {profile!r}: {exc}", EXIT_USAGE) from None
    STATE.region, STATE.endpoint = region, endpoint or ""
    central = Aws(region=region, profile=profile, endpoint_url=endpoint, session=_ShortTimeouts(session))
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
        raise CliError("account-config", str(exc), EXIT_USAGE) from None


def where(aws: Aws) -> str:
    """'region R, account A' for "nothing found" messages (the account from STS; 'account ?' if unknown)."""
    try:
        account = aws.call("sts", "get_caller_identity").get("Account") or "?"
    except Exception:
        account = "?"
    return f"region {aws.region}, account {account}" + (f", endpoint {aws.endpoint_url}" if aws.endpoint_url else "")


def _deploy_hint(region: str) -> str:
    return (
        f"esm-medic is not deployed in {region or 'this region'} (its tables were not found): deploy it there "
        "(cdk deploy), pass --region for the region where it runs, or for the sandbox start it with "
        f"`esm-medic sandbox serve --region {region or 'REGION'}`"
    )


_DYNAMODB_OPERATIONS = frozenset(
    {
        "Query",
        "Scan",
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "DescribeTable",
        "BatchGetItem",
        "BatchWriteItem",
        "TransactWriteItems",
        "TransactGetItems",
    }
)


def aws_error_message(exc: BaseException) -> str:
    """A one-line, human explanation of an AWS/botocore failure (credentials, endpoint, access, deployment).
    Never starts with an exception class name."""
    from esm_medic.aws import error_code, error_message, is_access_denied

    if isinstance(exc, CliError):
        return exc.message
    if type(exc).__name__ in ("AccountAccessError", "AccountConfigError"):
        return str(exc)
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    name = type(cause).__name__
    if name in ("AccountAccessError", "AccountConfigError"):
        return str(cause)
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return "no AWS credentials found (set AWS_PROFILE / --profile, or run against the sandbox with --endpoint-url)"
    if name == "NoRegionError":
        return NO_REGION_ADVICE
    if name in ("EndpointConnectionError", "ConnectionClosedError", "ConnectTimeoutError", "ReadTimeoutError"):
        where_to = getattr(cause, "kwargs", {}).get("endpoint_url") or STATE.endpoint or "the AWS endpoint"
        hint = "is the sandbox running?" if STATE.endpoint else "check the network and the region"
        return f"cannot reach {where_to} ({hint})"
    if name == "ParamValidationError":
        return "invalid request: " + " ".join(str(cause).split()).replace("Parameter validation failed: ", "")
    code = error_code(cause)
    operation = str(getattr(cause, "operation_name", "") or "")
    if code == "ResourceNotFoundException" and (
        "table" in (error_message(cause) + str(exc)).lower() or operation in _DYNAMODB_OPERATIONS
    ):
        return _deploy_hint(STATE.region)
    if is_access_denied(cause):
        return f"access denied: {error_message(cause)}"
    if code:
        return f"{error_message(cause) or 'request failed'} ({code})"
    text = " ".join(str(exc).split())
    return text or "unexpected error"


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
