"""``esm-medic sweep [--once] [--json]``: run the ESM status sweep against an account (or a sandbox) and print the
transitions it found. Each sweep uses the same DynamoDB snapshot as the deployed sweeper, so running both never
emits a transition twice.

Without ``--once`` it sweeps every ``--interval`` seconds until Ctrl-C. ``--json`` prints one JSON document per
sweep (the full result: counts, transitions, API calls). Exit code: 0 when every sweep completed, 1 when a sweep
failed or stopped early, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from esm_medic.cli.common import add_aws_options, add_json_option


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="sweep every Kafka ESM once (or every --interval) and print status transitions",
        description="List every ESM of the region, compare the Kafka ones with the stored snapshot and put an "
        "'ESM Status Change' event for each transition (exactly once, after the hold time). Prints the "
        "transitions found.",
    )
    p.add_argument("--once", action="store_true", help="run one sweep and exit (default: repeat every --interval)")
    p.add_argument(
        "--interval", type=int, help="seconds between sweeps (default: $ESM_MEDIC_SWEEP_INTERVAL_SECONDS/60)"
    )
    p.add_argument("--hold", type=int, help="seconds a new status must hold before it counts (default: 120)")
    p.add_argument("--bus", help="event bus for the events (default: $ESM_MEDIC_EVENT_BUS or 'default')")
    p.add_argument("--no-confirm", action="store_true", help="skip the confirming Get before emitting")
    p.add_argument(
        "--gc",
        action="store_true",
        help="forget deleted ESMs on this sweep even if $ESM_MEDIC_SWEEP_GC_SECONDS says not yet",
    )
    p.add_argument(
        "--create-tables", action="store_true", help="create the esm-medic DynamoDB tables if missing (sandbox)"
    )
    add_aws_options(p)
    add_json_option(p)
    p.set_defaults(func=run)


def _line(detail: dict[str, Any]) -> str:
    new = detail["new"]
    old = detail.get("old") or {}
    c = detail["classification"]
    what = "RECOVERED" if detail["recovered"] else f"{c.get('entry') or 'unknown'} (step {c['step']})"
    before = (old.get("LastProcessingResult") or old.get("State") or "?") if old else "first seen"
    after = new.get("LastProcessingResult") or new.get("State")
    head = f"{detail['observed_at']}  {detail['uuid']}  {what}  [{detail['incident_id']}]"
    return f"{head}\n    {before!s:.100} -> {after!s:.100}"


def _summary(r: dict[str, Any]) -> str:
    parts = [
        f"{r['kafka']} Kafka ESMs of {r['listed']}",
        f"{r['emitted']} transitions ({r['recovered']} recoveries)",
        f"{r['pending'] + r['held']} pending",
        f"{r['suppressed_flaps']} flaps suppressed",
        f"{r['first_seen']} new",
        f"{len(r['deleted'])} forgotten",
        f"{sum(r['calls'].values())} API calls",
        f"{r['duration_s']:.2f}s",
    ]
    if r["conflicts"]:
        parts.append(f"{r['conflicts']} lost to a concurrent sweep")
    if not r["complete"]:
        parts.append(f"INCOMPLETE: {r['stopped_reason']}")
    return "sweep: " + ", ".join(parts)


def run(args: argparse.Namespace) -> int:
    import json
    import time

    from esm_medic.cli.common import aws_error_message, fail, make_aws, print_json

    if args.interval is not None and args.interval < 1:
        return fail("--interval must be >= 1", 2)
    if args.hold is not None and args.hold < 0:
        return fail("--hold must be >= 0", 2)

    from esm_medic.detect.sweeper import SweepSettings, sweep

    overrides: dict[str, Any] = {}
    if args.interval is not None:
        overrides["interval_seconds"] = args.interval
    if args.hold is not None:
        overrides["hold_seconds"] = args.hold
    if args.bus:
        overrides["event_bus"] = args.bus
    if args.no_confirm:
        overrides["confirm_with_get"] = False
    try:
        settings = SweepSettings.from_env(**overrides)
    except ValueError as exc:
        return fail(str(exc), 2)
    aws = make_aws(args)
    rc = 0
    try:
        if args.create_tables:
            from esm_medic import tables

            tables.create_tables(aws)
        first = True
        while True:
            if not first:
                time.sleep(settings.interval_seconds)
            result = sweep(aws, settings=settings, force_gc=args.gc or first)
            first = False
            data = result.to_dict()
            if args.json:
                if args.once:
                    print_json(data)
                else:
                    sys.stdout.write(json.dumps(data, default=str) + "\n")
            else:
                for detail in result.transitions:
                    print(_line(detail))
                for err in result.errors:
                    print(f"  ! {err}", file=sys.stderr)
                print(_summary(data))
            sys.stdout.flush()
            if not result.complete or result.failed_events:
                rc = 1
            if args.once:
                return rc
    except Exception as exc:
        from esm_medic.aws import error_code

        if error_code(exc) == "ResourceNotFoundException":
            return fail(f"{aws_error_message(exc)}; or pass --create-tables to make them here (sandbox)")
        return fail(aws_error_message(exc))
