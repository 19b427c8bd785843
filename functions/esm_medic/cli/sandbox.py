"""``esm-medic sandbox``: a local fake AWS (moto + esm-medic's patches) for demos, tests and other tools.

- ``sandbox serve [--port P] [--host H] [--no-simulator] [--no-tables]``: start the patched moto server (with the
  ESM simulator as status provider when available, and esm-medic's own tables created), print
  ``AWS_ENDPOINT_URL=...`` and block until Ctrl-C / SIGTERM;
- ``sandbox set-status UUID [--state S] [--reason R] [--last-processing-result TEXT] [--clear]``: set an ESM's
  status fields in a running server (``--endpoint-url``, default ``$AWS_ENDPOINT_URL``);
- ``sandbox get-status UUID``: show an ESM's explicit overrides and how the API renders it;
- ``sandbox scenario ...``: provided by ``esm_medic_sandbox.scenarios`` (``cli_register`` / ``cli_run``).

Heavy imports (moto) happen inside ``run``; only ``scenario`` imports its module at registration time, to let it
declare its own options.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
SCENARIOS_MODULE = "esm_medic_sandbox.scenarios"
SIMULATOR_MODULE = "esm_medic_sandbox.simulator"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sandbox",
        help="a local fake AWS (moto + esm-medic's patches): serve, set ESM status, run scenarios",
        description="A local fake AWS for demos and tests: moto with esm-medic's patches (Kafka ESMs, MSK, IAM "
        "simulation, EventBridge -> Step Functions / Lambda, in-process Lambda).",
    )
    p.set_defaults(func=run, sandbox_command=None)
    cmds = p.add_subparsers(dest="sandbox_command", metavar="SUBCOMMAND", parser_class=type(p))

    s = cmds.add_parser(
        "serve",
        help="start the sandbox server and block until Ctrl-C",
        description="Start a patched moto server in this process. Point other tools at the printed "
        "AWS_ENDPOINT_URL (any credentials work). Stops on Ctrl-C or SIGTERM.",
    )
    s.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    s.add_argument("--region", default="us-east-1", help="default region for clients in this process")
    s.add_argument("--verbose", action="store_true", help="log every request to standard error")
    s.add_argument(
        "--no-tables",
        dest="tables",
        action="store_false",
        help="do not create esm-medic's own DynamoDB tables (audit, state, idempotency) in the sandbox",
    )
    s.add_argument(
        "--no-simulator",
        dest="simulator",
        action="store_false",
        help="do not install the ESM simulator as the status provider (ESMs then always look healthy)",
    )
    s.set_defaults(func=run)

    for name, helptext in (
        ("set-status", "set State / StateTransitionReason / LastProcessingResult of an ESM in a running sandbox"),
        ("get-status", "show the status overrides and the rendered ESM item from a running sandbox"),
    ):
        c = cmds.add_parser(name, help=helptext, description=helptext[0].upper() + helptext[1:] + ".")
        c.add_argument("uuid", metavar="UUID", help="the event source mapping UUID")
        if name == "set-status":
            c.add_argument("--state", help="State, e.g. Enabled, Disabled, Creating, Updating")
            c.add_argument("--reason", help="StateTransitionReason text")
            c.add_argument("--last-processing-result", dest="last_processing_result", help="LastProcessingResult text")
            c.add_argument("--clear", action="store_true", help="drop every override first")
        c.add_argument(
            "--endpoint-url",
            default=os.environ.get("AWS_ENDPOINT_URL"),
            help="the sandbox URL (default: $AWS_ENDPOINT_URL)",
        )
        c.add_argument("--json", action="store_true", help="machine-readable JSON output")
        c.set_defaults(func=run)

    _register_scenario(cmds)


def _scenarios_module() -> Any:
    """The sandbox's scenarios module, or None when the sandbox is not installed."""
    import importlib

    try:
        return importlib.import_module(SCENARIOS_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != SCENARIOS_MODULE:
            raise
        return None


def _register_scenario(cmds: argparse._SubParsersAction) -> None:
    scenarios = _scenarios_module()
    sc = cmds.add_parser(
        "scenario",
        help="build a broken-ESM scenario in the sandbox (see --list)",
        description="Build a named broken-ESM scenario in the sandbox.",
    )
    if scenarios is not None and hasattr(scenarios, "cli_register"):
        scenarios.cli_register(sc)
    else:
        sc.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    sc.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from esm_medic.cli.common import SandboxMissing, load_sandbox

    try:
        load_sandbox("")
    except SandboxMissing as exc:
        print(f"esm-medic: {exc}", file=sys.stderr)
        return EXIT_USAGE
    command = getattr(args, "sandbox_command", None)
    if command == "serve":
        return _serve(args)
    if command in ("set-status", "get-status"):
        return _status(args)
    if command == "scenario":
        return _scenario(args)
    print("esm-medic sandbox: choose a subcommand: serve, set-status, get-status, scenario", file=sys.stderr)
    return EXIT_USAGE


def _serve(args: argparse.Namespace) -> int:
    import signal
    import threading

    from esm_medic.cli.common import load_sandbox

    server = load_sandbox("server")
    apply_sandbox_env = load_sandbox("env").apply_sandbox_env

    if not 0 <= args.port <= 65535:
        print(f"esm-medic: invalid port {args.port}", file=sys.stderr)
        return EXIT_USAGE
    apply_sandbox_env(args.region)
    if not args.verbose:
        import logging

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no per-request lines
    try:
        srv, port = server.serve(port=args.port, host=args.host)
    except OSError as exc:
        print(f"esm-medic: cannot start the sandbox on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    simulator = "off"
    if args.simulator:
        simulator = _install_simulator()
    if args.tables:  # what `cdk deploy` creates in a real account, so `fix` / `history` work against the sandbox
        from esm_medic.aws import Aws
        from esm_medic.tables import create_tables

        endpoint = os.environ["AWS_ENDPOINT_URL"]
        create_tables(Aws(region=args.region, endpoint_url=endpoint))
        # and in any other region on its first DynamoDB request, so `history --region X` finds them too
        server.provision_per_region(srv, lambda region: create_tables(Aws(region=region, endpoint_url=endpoint)))
    stop = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    print(f"AWS_ENDPOINT_URL={os.environ['AWS_ENDPOINT_URL']}", flush=True)
    print(
        f"esm-medic sandbox: listening on {args.host}:{port} (ESM simulator: {simulator}); Ctrl-C to stop",
        file=sys.stderr,
        flush=True,
    )
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.stop(srv)
    print("esm-medic sandbox: stopped", file=sys.stderr)
    return EXIT_OK


def _install_simulator() -> str:
    """Plug the ESM simulator in as the status provider when this build has it: 'on' or 'not available'."""
    import importlib

    try:
        simulator = importlib.import_module(SIMULATOR_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != SIMULATOR_MODULE:
            raise
        return "not available"
    simulator.install()
    return "on"


def _print_status(result: dict[str, Any], as_json: bool) -> None:
    from esm_medic.cli.common import print_json

    if as_json:
        print_json(result)
        return
    item = result.get("item") or {}
    print(f"UUID                   {result.get('UUID', '')}")
    for key in ("State", "StateTransitionReason", "LastProcessingResult"):
        marker = " (override)" if key in (result.get("override") or {}) else ""
        print(f"{key:<22} {item.get(key, '')}{marker}")


def _status(args: argparse.Namespace) -> int:
    from esm_medic.cli.common import load_sandbox

    server = load_sandbox("server")
    if not args.endpoint_url:
        print("esm-medic: no sandbox endpoint: pass --endpoint-url or set AWS_ENDPOINT_URL", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.sandbox_command == "get-status":
            result = server.get_status_remote(args.endpoint_url, args.uuid)
        else:
            if not (args.clear or any(v is not None for v in (args.state, args.reason, args.last_processing_result))):
                print(
                    "esm-medic: nothing to set: give --state, --reason, --last-processing-result or --clear",
                    file=sys.stderr,
                )
                return EXIT_USAGE
            result = server.set_status_remote(
                args.endpoint_url,
                args.uuid,
                state=args.state,
                reason=args.reason,
                last_processing_result=args.last_processing_result,
                clear=args.clear,
            )
    except server.ControlError as exc:
        print(f"esm-medic: {exc}", file=sys.stderr)
        return EXIT_USAGE if exc.status == 400 else EXIT_FAILURE
    _print_status(result, args.json)
    return EXIT_OK


def _scenario(args: argparse.Namespace) -> int:
    scenarios = _scenarios_module()
    if scenarios is None or not hasattr(scenarios, "cli_run"):
        print(
            f"esm-medic: sandbox scenarios are not available in this build ({SCENARIOS_MODULE}.cli_run missing)",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    return int(scenarios.cli_run(args) or 0)
