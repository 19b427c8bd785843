"""``esm-medic diagnose UUID`` (one ESM, in depth) and ``esm-medic scan`` (every Kafka ESM of the account/region).

Both are read-only: they find the broken thing with evidence and name the fix; ``esm-medic fix`` applies it.
Exit codes: 0 when the diagnosis ran (even if ESMs are broken), 1 when it could not run (credentials, endpoint,
ESM not found, access denied on the ESM itself), 2 on bad usage.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import textwrap
from typing import TYPE_CHECKING, Any

from esm_medic.cli.common import CliError, add_aws_options, add_json_option, aws_error_message, fail, print_json, where

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.models import Diagnosis

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
_STATUS_MARK = {"pass": "ok", "fail": "FAIL", "warn": "warn", "unknown": "??", "skip": "-"}


def register(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser(
        "diagnose",
        help="diagnose one ESM read-only: the broken thing in the account, with evidence, and the fix",
        description="Read the ESM, classify its status, check its real network and auth path (the MSK cluster's "
        "subnets and security groups, routes, endpoints, DNS, secret, KMS key, role permissions) and name the root "
        "cause and the fix. Read-only.",
    )
    d.add_argument("uuid", metavar="UUID", help="the event source mapping UUID")
    add_aws_options(d)
    add_json_option(d)
    d.set_defaults(func=run_diagnose)

    s = sub.add_parser(
        "scan",
        help="diagnose every Kafka ESM of the account and region (a table, or --json)",
        description="List every MSK / self-managed Kafka ESM of the account and region and diagnose each one, "
        "sharing the lookups (clusters, security groups, routes, endpoints) between them. Read-only.",
    )
    add_aws_options(s)
    add_json_option(s)
    s.add_argument("--only-broken", action="store_true", help="show only ESMs that are not healthy")
    s.add_argument("--workers", type=_positive_int, default=4, help="ESMs diagnosed in parallel (default: 4)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar, even on a terminal")
    s.set_defaults(func=run_scan)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError("must be between 1 and 64")
    return value


# ---------------------------------------------------------------------------------------------- diagnose
def run_diagnose(args: argparse.Namespace) -> int:
    from esm_medic.cli.common import make_aws
    from esm_medic.diagnose import DiagnoseError, EsmNotFound, diagnose

    uuid = str(args.uuid).strip()
    if uuid.startswith("arn:") and ":event-source-mapping:" in uuid:
        uuid = uuid.rsplit(":", 1)[-1]  # an ESM ARN names its UUID last
    if not uuid:
        return fail("diagnose needs an ESM UUID", EXIT_USAGE)
    try:
        aws = make_aws(args)
        result = diagnose(aws, uuid)
    except EsmNotFound:
        return fail(f"no event source mapping {uuid} ({where(aws)})", error_code="not-found")
    except DiagnoseError as exc:
        return fail(str(exc))
    except Exception as exc:  # credentials, endpoint, region: say what, never a traceback
        if isinstance(exc, CliError):
            raise
        return fail(aws_error_message(exc))
    if args.json:
        print_json(result.to_dict())
    else:
        sys.stdout.write(render_diagnosis(result))
    return EXIT_OK


def _width() -> int:
    return max(80, min(shutil.get_terminal_size((120, 24)).columns, 160))


def render_diagnosis(d: Diagnosis) -> str:
    """The human form of one diagnosis."""
    width = _width()
    esm = d.esm
    c = d.classification
    lines = [f"ESM {d.uuid}  ({esm.get('source_kind')}, {esm.get('mode')}, state {d.state or '?'})"]
    lines.append(f"  function   {esm.get('function')}")
    if esm.get("role_arn"):
        lines.append(f"  role       {esm.get('role_arn')}")
    if esm.get("cluster_arn"):
        lines.append(f"  cluster    {esm.get('cluster_arn')}")
    if esm.get("bootstrap_servers"):
        lines.append(f"  brokers    {', '.join(esm['bootstrap_servers'])}")
    lines.append(f"  topics     {', '.join(esm.get('topics') or []) or '-'}")
    status = esm.get("last_processing_result") or esm.get("state_transition_reason") or "-"
    lines.append(f"  status     {_clip(status, width - 13)}")
    lines.append(
        f"  classified {c.get('entry') or 'not in the catalogue'} (step {c.get('step')}, "
        f"confidence {c.get('confidence')})"
    )
    if d.network is not None:
        n = d.network
        lines.append("")
        lines.append(f"Network identity (from the {n.source}):")
        if n.source == "internet":
            lines.append("  no VPC configuration: the ESM reaches the brokers over the internet")
        else:
            lines.append(f"  vpc        {n.vpc_id or '?'}")
            lines.append(f"  subnets    {', '.join(n.subnets) or '-'}")
            lines.append(f"  groups     {', '.join(n.security_groups) or '-'}")
        lines.append(f"  auth       {n.auth_mode} on port(s) {', '.join(map(str, n.ports)) or '-'}")
    lines.append("")
    lines.append("Findings:")
    check_w = max([len(f.check) for f in d.findings] + [5])
    for f in d.findings:
        mark = _STATUS_MARK.get(str(f.status), str(f.status))
        prefix = f"  {f.check:<{check_w}}  {mark:<4}  "
        summary = f.summary
        if f.missing_permission:
            summary += f" [needs {f.missing_permission}]"
        wrapped = textwrap.wrap(summary, width=max(30, width - len(prefix))) or [""]
        lines.append(prefix + wrapped[0])
        lines.extend(" " * len(prefix) + w for w in wrapped[1:3])
    rc = d.root_cause
    lines.append("")
    if rc.id == "healthy":
        lines.append("Root cause: none: the ESM is healthy.")
        for note in rc.notes:
            lines.append(f"  note: {note}")
    elif rc.id == "status-stale":
        lines.append("Verdict: the account looks fixed; the ESM has not reported since.")
        lines.extend("  " + w for w in textwrap.wrap(rc.summary.replace("UUID", d.uuid), width=width - 2))
    else:
        lines.append(f"Root cause: {rc.id}  (step {d.step}, confidence {rc.confidence})")
        lines.extend("  " + w for w in textwrap.wrap(rc.summary, width=width - 2))
        for note in rc.notes:
            lines.extend(textwrap.wrap(f"note: {note}", width=width - 2, initial_indent="  ", subsequent_indent="    "))
        lines.append("")
        lines.append(f"Fix: {rc.fix}")
        lines.extend(f"  {k}: {_param(v)}" for k, v in rc.fix_params.items())
        lines.extend(_render_plan(d, width))
        lines.append(f"({d.api_calls} AWS API calls, read-only)")
    return "\n".join(lines) + "\n"


def _render_plan(d: Diagnosis, width: int) -> list[str]:
    lines = [""]
    if len(d.hypotheses) > 1:
        lines.append("Hypotheses, best first:")
        for h in d.hypotheses:
            masked = f"; masked by {', '.join(h.masked_by)}" if h.masked_by else ""
            lines.append(f"  {h.score:.2f}  {h.id}  (step {h.step}, {h.strength}, fix {h.fix}{masked})")
        lines.append("")
    fixes = [p for p in d.plan if not p.ticket_only]
    lines.append("Plan:" if d.plan else "Plan: nothing to do automatically")
    for p in d.plan:
        head = f"  {p.order}. {p.fix}" + ("  (ticket only)" if p.ticket_only else f"  (safety {p.safety})")
        lines.append(head + f"  for {', '.join(p.hypotheses)}")
        lines.extend(f"       {k}: {_param(v)}" for k, v in p.fix_params.items())
        if p.after:
            lines.append(f"       then re-check: {', '.join(p.after)}")
    lines.append("")
    if fixes:
        lines.append(f"Next: esm-medic fix {d.uuid}    (dry-run first; nothing was changed)")
    else:
        lines.append(
            f"Next: esm-medic fix {d.uuid}    (a ticket with the runbook goes to the configured ticket "
            "provider or the outbox; nothing was changed)"
        )
    return lines


def _param(value: Any) -> str:
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return "; ".join(
            f"{', '.join(st.get('actions') or [])} on {', '.join(st.get('resources') or [])}" for st in value
        )
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _clip(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: max(0, n - 1)] + "…"


# ---------------------------------------------------------------------------------------------- scan
class _ProgressBar:
    """A one-line progress bar on stderr (only used when stderr is a terminal)."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.last = -1

    def __call__(self, done: int, total: int) -> None:
        pct = 100 if total == 0 else done * 100 // total
        if pct == self.last and done != total:
            return
        self.last = pct
        width = 30
        filled = width * pct // 100
        self.stream.write(f"\rscanning [{'#' * filled}{'.' * (width - filled)}] {done}/{total} ESMs")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def run_scan(args: argparse.Namespace) -> int:
    from esm_medic.cli.common import make_aws
    from esm_medic.diagnose import DiagnoseError, Lookups, scan

    progress = None
    if not args.no_progress and sys.stderr.isatty():
        progress = _ProgressBar()
    try:
        aws = make_aws(args)
        lookups = Lookups(aws)
        results = scan(aws, progress=progress, lookups=lookups, workers=args.workers)
    except DiagnoseError as exc:
        return fail(str(exc))
    except Exception as exc:
        if isinstance(exc, CliError):
            raise
        return fail(aws_error_message(exc))
    shown = [d for d in results if not (args.only_broken and d.healthy)]
    if not results and not args.json:
        print(f"No Kafka event source mappings found ({where(aws)}).")
        return EXIT_OK
    if args.json:
        print_json([d.to_dict() for d in shown])
        return EXIT_OK
    sys.stdout.write(render_scan(shown, total=len(results), stats=lookups.stats()))
    return EXIT_OK


def render_scan(results: list[Diagnosis], *, total: int, stats: dict[str, Any] | None = None) -> str:
    header = ("ESM", "STATE", "STEP", "ROOT CAUSE", "FIX", "DETECTION")
    rows = [
        (d.uuid, d.state or "?", d.step, d.root_cause.id, d.root_cause.fix or "-", str(d.esm.get("detection") or "?"))
        for d in results
    ]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    broken = sum(1 for d in results if not d.healthy)
    summary = f"{total} Kafka ESM(s), {broken} broken" if total else "no Kafka event source mappings found"
    if stats:
        calls = int(stats.get("api_calls", 0))
        per = f"{calls / total:.2f}" if total else "0"
        summary += f"; {calls} AWS API calls ({per} per ESM), read-only"
    if rows:
        lines.append("")
    lines.append(summary)
    if broken:
        lines.append("Details: esm-medic diagnose <ESM>    Repair: esm-medic fix <ESM>")
    return "\n".join(lines) + "\n"


__all__ = ["register", "render_diagnosis", "render_scan", "run_diagnose", "run_scan"]
