"""Entry point of the ``esm-medic`` command. Each command family lives in its own module that exposes
``register(subparsers)``; modules import their heavy dependencies only inside ``run`` so ``--help`` is fast."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from esm_medic import __version__

#: command modules under esm_medic.cli, in help order
COMMAND_MODULES = ("explain", "diagnose", "fix", "demo", "sweep", "sandbox", "approve", "outbox")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        print("esm-medic: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
