"""``esm-medic demo``: the whole product on this machine in under a minute (a local fake AWS, no account).

Three cases by default: a broken MSK ESM fixed automatically, a fix that needs an approval (approved by the demo
itself, visibly), and a problem that ends in a ticket with runbook text. ``--scenario NAME`` runs any sandbox
scenario instead (``--list`` shows them). Exit code 0 only when every case reached its expected outcome.
"""

from __future__ import annotations

import argparse
import sys

from esm_medic.cli.common import SandboxMissing, add_json_option, load_sandbox, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the product end to end in a local sandbox (no AWS account): fix, approve, ticket",
        description="Build broken accounts in a local fake AWS (moto + esm-medic patches), fire the ESM status "
        "event, and show classify -> diagnose -> plan -> apply -> verify -> outcome, step by step with timings.",
    )
    p.add_argument("--scenario", metavar="NAME", help="run one sandbox scenario instead of the three default cases")
    p.add_argument("--list", action="store_true", help="list the sandbox scenarios and exit")
    p.add_argument("--quiet", "-q", action="store_true", help="one line per case")
    p.add_argument("--ticket-dir", metavar="DIR", help="where tickets go (default: .esm-medic/demo/tickets)")
    add_json_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    try:
        scenarios = load_sandbox("scenarios")
        sandbox_demo = load_sandbox("demo")
    except SandboxMissing as exc:
        print(f"esm-medic: {exc}", file=sys.stderr)
        return 2
    if args.list:
        rows = [scenarios.get(n).summary() for n in scenarios.names()]
        if args.json:
            print_json(rows)
        else:
            for r in rows:
                print(f"{r['name']:<34} {r['title']}")
        return 0
    if args.scenario and args.scenario not in scenarios.SCENARIOS:
        print(f"esm-medic: unknown scenario {args.scenario!r}; known: {', '.join(scenarios.names())}", file=sys.stderr)
        return 2
    code, _ = sandbox_demo.run_demo(
        scenario=args.scenario,
        as_json=bool(args.json),
        quiet=bool(args.quiet),
        ticket_dir=Path(args.ticket_dir) if args.ticket_dir else None,
    )
    return code
