"""``esm-medic fix`` (plan, and with ``--apply`` apply), ``esm-medic rollback``, ``esm-medic history``.

``fix UUID`` diagnoses the ESM and prints the plan of its fix: the human diff, the exact API calls (with their
EC2 dry-run results), the cost, the safety class and the policy decision. Nothing changes unless ``--apply`` is
given; then it asks for confirmation on a terminal (``--yes`` skips the question; without a terminal and without
``--yes`` it refuses, exit 2). ``--action NAME --params JSON`` plans a given action directly, without a diagnosis.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from esm_medic.cli.common import (
    CliError,
    add_aws_options,
    add_json_option,
    fail,
    human,
    print_json,
    stdin_is_tty,
    where,
)

MODES = ("off", "notify", "approve", "auto")
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fix",
        help="plan (and with --apply, apply) the fix for an ESM",
        description="Diagnose the ESM and print the plan of its fix: changes, exact API calls, cost, safety and "
        "decision. Nothing is changed unless --apply is given.",
    )
    p.add_argument("uuid", help="the event source mapping UUID")
    p.add_argument("--action", help="plan this action directly instead of diagnosing (e.g. add-sg-self-rule)")
    p.add_argument("--params", help="the action's parameters as JSON, or @file.json (with --action)")
    p.add_argument("--incident-id", help="incident id used in names, tags and descriptions (default: generated)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--apply", action="store_true", help="apply the plan (asks for confirmation unless --yes)")
    g.add_argument("--dry-run", action="store_true", help="plan only (the default)")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.add_argument("--mode", choices=MODES, help="override the ESM's esm-medic:mode for this run")
    p.add_argument("--no-restart", action="store_true", help="do not disable / enable the ESM after the change")
    add_aws_options(p)
    add_json_option(p)
    p.set_defaults(func=run_fix)

    r = sub.add_parser(
        "rollback",
        help="undo one applied fix by its action id",
        description="Remove exactly what the action created (or restore the values it recorded before changing).",
    )
    r.add_argument("action_id", help="the action id (esm-medic history shows them)")
    r.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    add_aws_options(r)
    add_json_option(r)
    r.set_defaults(func=run_rollback)

    h = sub.add_parser("history", help="show the audit trail of fixes", description="Audit records, newest first.")
    h.add_argument("uuid", nargs="?", help="only this ESM")
    h.add_argument("--limit", type=int, default=50, help="at most this many records (default 50)")
    add_aws_options(h)
    add_json_option(h)
    h.set_defaults(func=run_history)


# ---------------------------------------------------------------------------------------------- helpers
def _confirm(question: str) -> bool | None:
    """True / False from the user; None when there is no terminal to ask on."""
    if not (stdin_is_tty() and sys.stdout.isatty()):
        return None
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def _confirmed(args: argparse.Namespace, question: str, verb: str) -> int | None:
    """None when the user agreed (or passed --yes); otherwise the exit code to return."""
    if args.yes:
        return None
    answer = _confirm(question)
    if answer is None:
        return fail(f"refusing to {verb} without confirmation: no terminal (pass --yes)", EXIT_USAGE)
    if not answer:
        print("Aborted; nothing was changed.")
        return EXIT_FAILURE
    return None


def _failed(exc: Exception) -> int:
    """An error from AWS or the logic as a CLI failure (a CliError goes on up as it is)."""
    if isinstance(exc, CliError):
        raise exc
    from esm_medic.cli.common import aws_error_message

    return fail(aws_error_message(exc))


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """``data`` as JSON with --json, else ``text``."""
    if args.json:
        print_json(data)
    else:
        sys.stdout.write(text)


def _actor() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli:unknown"


def _load_params(raw: str | None) -> dict[str, Any]:
    import json

    if raw is None:
        return {}
    text = raw
    if raw.startswith("@"):
        with open(raw[1:], encoding="utf-8") as fh:
            text = fh.read()
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("--params must be a JSON object")
    return value


def _settings() -> Any:
    from esm_medic.config import Settings

    return Settings.from_env()


# ---------------------------------------------------------------------------------------------- fix
def run_fix(args: argparse.Namespace) -> int:
    if args.params is not None and not args.action:
        return fail("--params needs --action", EXIT_USAGE)
    try:
        params = _load_params(args.params)
    except (OSError, ValueError) as exc:
        return fail(f"bad --params: {exc}", EXIT_USAGE)
    from esm_medic.cli.common import make_aws
    from esm_medic.config import ConfigError

    try:
        settings = _settings()
    except ConfigError as exc:
        return fail(str(exc), EXIT_USAGE)
    from esm_medic.remediate import engine

    aws = make_aws(args)
    diagnosis: Any = None
    try:
        if not args.action:
            try:
                from esm_medic.diagnose import diagnose
            except ImportError:
                return fail("diagnosis is not available in this build; use --action NAME --params JSON", EXIT_USAGE)
            diagnosis = diagnose(aws, args.uuid)
            if diagnosis.root_cause.id == "status-stale":
                return _stale(args, diagnosis)
            if len(diagnosis.plan) > 1 and any(not p.ticket_only for p in diagnosis.plan):
                return _run_plan(args, aws, diagnosis, settings)
        plan = engine.plan_fix(
            aws,
            diagnosis,
            action=args.action,
            params=params if args.action else None,
            uuid=args.uuid,
            incident_id=args.incident_id,
            settings=settings,
            mode_override=args.mode,
        )
    except Exception as exc:
        return _failed(exc)
    if plan["status"] == "invalid":
        if args.json:
            print_json(plan)
        return fail(str(plan["error"]), EXIT_USAGE)
    if not args.apply:
        _emit(args, plan, render_plan(plan))
        return EXIT_FAILURE if plan["status"] == "failed" else EXIT_OK

    if not args.json:
        sys.stdout.write(render_plan(plan))
    stop = _apply_blocker(plan)
    if stop is not None:
        code, message = stop
        _emit(args, {"plan": plan, "result": None, "message": message}, message + "\n")
        return code
    decision = plan.get("decision") or {}
    if decision.get("outcome") != "shadow":
        n = len([c for c in plan["plan"]["calls"] if c["mutating"]])
        refused = _confirmed(args, f"Apply {n} change(s) for ESM {args.uuid}?", "apply")
        if refused is not None:
            return refused
    try:
        result = engine.apply_fix(
            aws,
            diagnosis,
            action=args.action,
            params=params if args.action else None,
            uuid=args.uuid,
            incident_id=plan.get("incident_id") or args.incident_id,
            settings=settings,
            approved=True,
            approver=_actor(),
            mode_override=args.mode,
            restart=not args.no_restart,
            approved_plan=plan.get("plan"),
        )
    except Exception as exc:
        return _failed(exc)
    _emit(args, {"plan": plan, "result": result}, render_result(result))
    return EXIT_OK if result["status"] in ("applied", "noop", "shadow") else EXIT_FAILURE


def _stale(args: argparse.Namespace, diagnosis: Any) -> int:
    text = diagnosis.root_cause.summary.replace("UUID", diagnosis.uuid)
    _emit(args, {"status": "stale", "uuid": diagnosis.uuid, "message": text}, f"Nothing to apply: {text}\n")
    return EXIT_OK


def _run_plan(args: argparse.Namespace, aws: Any, diagnosis: Any, settings: Any) -> int:
    """Several independent fixes: one combined diff, one approval for the whole plan, applied fix by fix."""
    from esm_medic.diagnose import diagnose
    from esm_medic.remediate import plan as fix_plan

    try:
        preview = fix_plan.preview(aws, diagnosis, settings=settings, mode_override=args.mode)
    except Exception as exc:
        return _failed(exc)
    if not args.json:
        sys.stdout.write(render_fix_plan(diagnosis, preview))
    if not args.apply:
        if args.json:
            print_json({"plan": [p.to_dict() for p in diagnosis.plan], "preview": preview})
        return EXIT_OK
    n = sum(1 for p in diagnosis.plan if not p.ticket_only)
    refused = _confirmed(args, f"Apply the plan ({n} fix(es), shown above as one diff) for ESM {args.uuid}?", "apply")
    if refused is not None:
        return refused
    try:
        result = fix_plan.apply_plan(
            aws,
            diagnosis,
            rediagnose=lambda: diagnose(aws, args.uuid),
            settings=settings,
            approved=True,
            approver=_actor(),
            mode_override=args.mode,
            restart=not args.no_restart,
            incident_id=args.incident_id,
        )
    except Exception as exc:
        return _failed(exc)
    _emit(args, result, render_plan_result(fix_plan.summary(result), result))
    return EXIT_OK if result["status"] in ("ok", "partial", "stale") else EXIT_FAILURE


def render_plan_result(summary: str, result: dict[str, Any]) -> str:
    lines = [summary]
    lines += [f"  kept {row['fix']} (action id {row.get('action_id')})" for row in result["applied"]]
    lines += [f"  rolled back {row['fix']}: it changed nothing" for row in result["rolled_back"]]
    for row in result["not_applied"]:
        lines.append(f"  not applied {row['fix']}: {row['status']} {row.get('reason') or ''}".rstrip())
    return "\n".join(lines) + "\n"


def render_fix_plan(diagnosis: Any, preview: dict[str, Any]) -> str:
    lines = [
        f"Plan for ESM {diagnosis.uuid}: {len(diagnosis.plan)} part(s), applied one at a time, re-checked after each"
    ]
    for p in diagnosis.plan:
        what = "ticket only" if p.ticket_only else f"safety {p.safety}"
        lines.append(f"  {p.order}. {p.fix} ({what}) for {', '.join(p.hypotheses)}")
    if preview["diff"]:
        lines.append("Changes (one diff for the whole plan):")
        lines.extend(f"  {d}" for d in preview["diff"])
    if preview["needs_approval"]:
        lines.append("The plan needs approval; approving it approves every change above.")
    for t in preview["tickets"]:
        lines.append(f"Ticket: {', '.join(t['hypotheses'])}: {t['summary']}")
    return "\n".join(lines) + "\n"


def _apply_blocker(plan: dict[str, Any]) -> tuple[int, str] | None:
    status = plan["status"]
    decision = plan.get("decision") or {}
    if status == "noop":
        return EXIT_OK, "Nothing to apply: the account already has what this fix would add."
    if status == "healthy":
        return EXIT_OK, "Nothing to apply: the ESM is healthy."
    if status == "failed":
        return EXIT_FAILURE, f"Cannot apply: {plan.get('error')}"
    if status == "refused":
        return EXIT_FAILURE, f"Not applied: the plan was refused ({(plan.get('plan') or {}).get('refused')})."
    outcome = decision.get("outcome")
    if outcome in ("ticket", "notify", "off"):
        return EXIT_FAILURE, f"Not applied: decision {outcome}: {'; '.join(decision.get('reasons') or [])}"
    return None


# ---------------------------------------------------------------------------------------------- rendering
def render_plan(res: dict[str, Any]) -> str:
    lines: list[str] = []
    decision = res.get("decision") or {}
    plan = res.get("plan") or {}
    head = f"Fix for ESM {res.get('uuid')}: {res.get('action')}"
    if plan:
        head += f"  (safety {plan.get('safety')}, incident {res.get('incident_id')})"
    lines.append(head)
    if res.get("status") == "healthy":
        return f"ESM {res.get('uuid')} is healthy: nothing to fix.\n"
    if res.get("status") == "ticket":
        lines.append(f"No automatic fix: a ticket with the runbook ({res.get('reason', '')}).")
    if plan.get("summary"):
        lines.append(f"Summary:  {plan['summary']}")
    if decision:
        lines.append(
            f"Decision: {str(decision.get('outcome', '')).upper()} (mode {decision.get('mode')} from "
            f"{decision.get('mode_source')})"
        )
        for reason in decision.get("reasons") or []:
            lines.append(f"          - {reason}")
    if res.get("status") == "failed":
        lines.append(f"Planning failed: {res.get('error')}")
    if res.get("in_flight"):
        lines.append(f"An earlier attempt ({res['in_flight']}) was interrupted; --apply completes it.")
    if plan.get("refused"):
        lines.append(f"Refused:  {plan['refused']}")
    elif plan.get("noop"):
        lines.append("Nothing to do: every change this fix would make is already in place.")
    if plan.get("diff"):
        lines.append("Changes:")
        lines.extend(f"  {d}" for d in plan["diff"])
    calls = [c for c in plan.get("calls") or [] if c.get("mutating")]
    if calls:
        lines.append("API calls, in order:")
        for i, c in enumerate(calls, 1):
            args = ", ".join(f"{k}={_short(v)}" for k, v in c["params"].items())
            lines.append(f"  {i}. {c['api']}({args})")
            note = f"dry run: {c['dry_run']}" + (f"; {c['note']}" if c.get("note") else "")
            lines.append(f"     [{note}]")
    cost = plan.get("cost")
    if cost:
        per = ", ".join(f"{k} {v['monthly_usd']:.2f}" for k, v in cost["per_service"].items())
        lines.append(
            f"Cost:     ~{cost['monthly_total']:.2f} {cost['currency']}/month ({per}) at "
            f"{cost['hourly_rate_per_endpoint_az']} per endpoint-AZ-hour x {cost['hours_per_month']} h; "
            f"{cost.get('note', '')}"
        )
    for w in plan.get("warnings") or []:
        lines.append(f"Warning:  {w}")
    if plan.get("missing_permissions"):
        lines.append(f"Missing permissions of the caller: {', '.join(plan['missing_permissions'])}")
    if calls and plan.get("restart_esm"):
        lines.append("Afterwards the ESM is disabled and enabled again so that it retries at once.")
    for note in res.get("notes") or []:
        lines.append(f"Note:     {note}")
    return "\n".join(lines) + "\n"


def _short(v: Any, limit: int = 160) -> str:
    import json

    text = json.dumps(v, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def render_result(res: dict[str, Any]) -> str:
    status = res.get("status")
    lines = [f"Result: {status}" + (f" (action id {res['action_id']})" if res.get("action_id") else "")]
    if res.get("error"):
        lines.append(f"  {res['error']}")
    if res.get("missing_permission"):
        lines.append(f"  missing permission: {res['missing_permission']}")
    for kind, ids in (res.get("created") or {}).items():
        if ids:
            lines.append(f"  created {kind}: {', '.join(ids)}")
    cleanup = res.get("cleanup") or {}
    if cleanup.get("removed"):
        lines.append(f"  removed what this attempt had made: {cleanup['removed']}")
    if cleanup and not cleanup.get("ok", True):
        lines.append(f"  cleanup failed ({cleanup.get('error')}): run `esm-medic rollback {res.get('action_id')}`")
    restart = res.get("restart")
    if restart:
        lines.append(f"  ESM restart: {'done' if restart.get('restarted') else 'not done'} ({restart.get('reason')})")
    if status == "applied":
        lines.append(f"  history: esm-medic history {res.get('uuid')}    undo: esm-medic rollback {res['action_id']}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- rollback
def run_rollback(args: argparse.Namespace) -> int:
    from esm_medic.cli.common import make_aws
    from esm_medic.config import ConfigError
    from esm_medic.remediate import engine
    from esm_medic.remediate.audit import AuditLog, summarize

    try:
        settings = _settings()
    except ConfigError as exc:
        return fail(str(exc), EXIT_USAGE)
    aws = make_aws(args)
    try:
        rows = AuditLog(aws, settings.audit_table).by_action(args.action_id)
    except Exception as exc:
        return _failed(exc)
    if not rows:
        return fail(f"no audit record for {args.action_id} ({where(aws)})")
    info = summarize(rows)[0]
    if not args.json:
        print(f"Action {args.action_id}: {info['action']} on ESM {info['uuid']} ({' -> '.join(info['statuses'])})")
        for kind, ids in (info.get("created") or {}).items():
            print(f"  would remove {kind}: {', '.join(ids)}")
    refused = _confirmed(args, "Roll this action back?", "roll back")
    if refused is not None:
        return refused
    try:
        result = engine.rollback(aws, args.action_id, settings=settings, actor=_actor())
    except Exception as exc:
        return _failed(exc)
    _emit(args, result, render_rollback(result))
    return EXIT_OK if result["status"] in ("rolled-back", "noop") else EXIT_FAILURE


def render_rollback(result: dict[str, Any]) -> str:
    lines = [f"Result: {result['status']}" + (f": {result['error']}" if result.get("error") else "")]
    lines += [f"  removed {kind}: {', '.join(ids)}" for kind, ids in (result.get("removed") or {}).items()]
    lines += [f"  restored {key}: {human(value)}" for key, value in (result.get("restored") or {}).items()]
    lines += [f"  note: {note}" for note in result.get("notes") or []]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- history
def run_history(args: argparse.Namespace) -> int:
    from esm_medic.cli.common import make_aws
    from esm_medic.config import ConfigError
    from esm_medic.remediate import engine
    from esm_medic.remediate.audit import summarize
    from esm_medic.remediate.base import ActionRecord

    if args.limit < 1:
        return fail("--limit must be at least 1", EXIT_USAGE)
    try:
        settings = _settings()
        aws = make_aws(args)
        rows = engine.history(aws, args.uuid, limit=args.limit, settings=settings)
    except ConfigError as exc:
        return fail(str(exc), EXIT_USAGE)
    except Exception as exc:
        return _failed(exc)
    if args.json:
        print_json(rows)
        return EXIT_OK
    if not rows:
        print("No esm-medic actions recorded" + (f" for {args.uuid}" if args.uuid else "") + f" ({where(aws)}).")
        return EXIT_OK
    for item in summarize(ActionRecord.from_dict(r) for r in rows):
        created = "; ".join(f"{k}: {', '.join(v)}" for k, v in (item["created"] or {}).items() if v)
        print(
            f"{item['last_at']}  {item['action_id']}  {item['uuid']}  {item['action']:<22} "
            f"{' -> '.join(item['statuses'])}  by {item['actor']}"
        )
        if created:
            print(f"    {created}")
        if item["error"]:
            print(f"    error: {item['error']}")
    return EXIT_OK
