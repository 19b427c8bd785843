"""Entry point of the ``esm-medic`` command. Each command family lives in its own module that exposes
``register(subparsers)``; modules import their heavy dependencies only inside ``run`` so ``--help`` is fast."""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

from esm_medic import __version__
from esm_medic.cli.common import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    STATE,
    CliError,
    aws_error_message,
    fail,
    preflight,
    prepare_streams,
)

#: command modules under esm_medic.cli, in help order
COMMAND_MODULES = ("explain", "diagnose", "fix", "demo", "sweep", "sandbox", "approve", "outbox")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse exits 2 on usage errors; keep that, with our prefix
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"esm-medic: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="esm-medic",
        description="Detect, explain, diagnose and safely repair Lambda Kafka (MSK / self-managed) event source "
        "mappings.",
    )
    parser.add_argument("--version", action="version", version=f"esm-medic {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"esm_medic.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"esm_medic.cli.{name}":
                continue  # command family not installed in this build
            raise
        module.register(sub)
    return parser


_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def _check_ids(args: argparse.Namespace) -> None:
    """Malformed ESM UUIDs and empty action ids are usage errors, before any AWS call."""
    uuid = getattr(args, "uuid", None)
    if isinstance(uuid, str) and args.command in ("diagnose", "fix", "history"):
        value = uuid.strip()
        if value.startswith("arn:") and ":event-source-mapping:" in value:
            value = value.rsplit(":", 1)[-1]
        if not _UUID.match(value):
            raise CliError(
                "bad-uuid",
                f"{uuid!r} is not an event source mapping UUID (like 14e0db71-5d35-4eb5-b481-8945cf9d10c2) or ARN",
                EXIT_USAGE,
            )
        args.uuid = value
    action_id = getattr(args, "action_id", None)
    if isinstance(action_id, str) and not action_id.strip():
        raise CliError("bad-action-id", "the action id is empty (esm-medic history lists them)", EXIT_USAGE)


def main(argv: Sequence[str] | None = None) -> int:
    prepare_streams()
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    STATE.json_mode = bool(getattr(args, "json", False))
    try:
        _check_ids(args)
        preflight(args)
        return int(func(args) or 0)
    except CliError as exc:
        return fail(exc.message, exc.exit_code, exc.code)
    except KeyboardInterrupt:
        return fail("interrupted", EXIT_INTERRUPTED, "interrupted")
    except BrokenPipeError:
        return EXIT_OK
    except RecursionError:
        return fail("the input is nested too deeply to read", EXIT_USAGE, "too-deep")
    except Exception as exc:  # the last line of defence: one line, never a traceback
        if isinstance(exc, CliError):
            raise
        return fail(aws_error_message(exc), EXIT_FAILURE, "error")
    finally:
        STATE.json_mode = False
        STATE.endpoint = ""


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
