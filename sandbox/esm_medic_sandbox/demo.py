"""``esm-medic demo``: the product end to end on one machine, in under a minute, with no AWS account.

One sandbox (moto + esm-medic's patches, ESM status simulated from the account) holds three broken accounts; the
real state machine runs in moto's Step Functions interpreter with the real handlers in-process, wired to
EventBridge as infra deploys it (:mod:`esm_medic_sandbox.runner`). For each case the demo builds the account,
puts the ``ESM Status Change`` event on the bus, and prints each step as the execution history shows it, with
its time:

1. ``missing-sg-self-rule``: classify -> diagnose -> plan -> apply -> verify -> recovered (mode auto);
2. ``no-nat-no-endpoints``: interface endpoints cost money, so the fix needs an approval; the demo approves it
   itself, visibly, as ``demo-approver``;
3. ``malformed-secret``: secret material is never changed automatically: a ticket with the runbook text, written
   to a local file.

``run_demo(scenario=NAME)`` runs one sandbox scenario instead. Output: readable text (ANSI colours on a terminal),
``quiet`` (one line per case) or ``as_json`` (one JSON summary). The exit code is 0 only when every case reached
its expected outcome.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from esm_medic_sandbox.demo_output import Out, StepPrinter, clip

DEMO_DIR = Path(".esm-medic") / "demo"
APPROVER = "demo-approver"
DEMO_TUNABLES = {
    "VerifyWaitSeconds": 1,
    "VerifyMaxWaitSeconds": 2,
    "VerifyMaxAttempts": 4,
    "ApprovalTimeoutSeconds": 120,
    "ApprovalHeartbeatSeconds": 110,
}
STALE_ERROR = {
    "State": "Enabled",
    "StateTransitionReason": "USER_INITIATED",
    "LastProcessingResult": "PROBLEM: Connection error. Please check your event source connection configuration.",
}


@dataclass(frozen=True)
class Case:
    scenario: str
    title: str
    expected: str  # recovered | ticketed | healthy-noop | notified
    note: str = ""
    stale: bool = False  # the account is healthy: fire a stale error event


DEFAULT_CASES = (
    Case(
        "missing-sg-self-rule",
        "A broken MSK ESM fixed automatically",
        "recovered",
        "The cluster security group has no self-referencing rule, so the ESM's ENIs cannot reach the brokers.",
    ),
    Case(
        "no-nat-no-endpoints",
        "A fix that needs an approval",
        "recovered",
        "No NAT and no VPC endpoints: interface endpoints cost money, so a human approves them.",
    ),
    Case(
        "malformed-secret",
        "A problem only a person can fix",
        "ticketed",
        "The SCRAM secret has no password: esm-medic never edits secret material; it opens a ticket.",
    ),
)


def expected_outcome(name: str) -> str:
    """What the workflow should reach for a sandbox scenario (from its ``expected`` block and the catalogue)."""
    from esm_medic.catalogue import get_catalogue
    from esm_medic_sandbox.scenarios import get

    exp = get(name).expected
    if not exp.get("fix"):
        return "healthy-noop"
    if exp["fix"] == "ticket":
        return "ticketed"
    entry = get_catalogue().get(exp["entry"])
    if entry is not None and entry.transient:
        return "notified"  # a transient error is only reported on its first sighting
    return "recovered"


def case_for(name: str) -> Case:
    from esm_medic_sandbox.scenarios import get

    sc = get(name)
    want = expected_outcome(name)
    return Case(name, sc.title, want, sc.description, stale=want == "healthy-noop")


# ---------------------------------------------------------------------------------------------- run
@dataclass
class CaseResult:
    case: Case
    uuid: str = ""
    outcome: str | None = None
    status: str = ""
    seconds: float = 0.0
    build_seconds: float = 0.0
    execution: str = ""
    steps: list[dict[str, Any]] = field(default_factory=list)
    approvals: list[dict[str, Any]] = field(default_factory=list)
    ticket: str | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == self.case.expected

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.case.scenario,
            "title": self.case.title,
            "expected": self.case.expected,
            "outcome": self.outcome,
            "ok": self.ok,
            "status": self.status,
            "uuid": self.uuid,
            "execution": self.execution,
            "seconds": round(self.seconds, 2),
            "build_seconds": round(self.build_seconds, 2),
            "steps": self.steps,
            "approvals": self.approvals,
            "ticket": self.ticket,
            "before": self.before,
            "after": self.after,
            "error": self.error,
        }


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Handlers log JSON to stdout and moto logs its interpreter's exceptions: keep the demo readable. Everything
    is restored afterwards (the demo also runs inside tests)."""
    names = ("moto", "botocore", "boto3", "urllib3", "aws_lambda_powertools", "esm-medic", "esm_medic")
    levels = {n: logging.getLogger(n).level for n in names}
    env = {k: os.environ.get(k) for k in ("POWERTOOLS_LOG_LEVEL", "POWERTOOLS_METRICS_DISABLED")}
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "CRITICAL")
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    for n in names:
        logging.getLogger(n).setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_case(out: Out, workflow: Any, aws: Any, case: Case, index: int, total: int) -> CaseResult:
    from esm_medic_sandbox import scenarios

    res = CaseResult(case)
    out.line()
    out.line(out.c(f"Case {index}/{total}  {case.title}", "1") + f"  [{case.scenario}]")
    if case.note:
        out.line(out.c(f"  {case.note}", "2"))
    t0 = time.monotonic()
    built = scenarios.build(aws, case.scenario, prefix=f"demo{index}")
    res.uuid = built.uuid
    res.build_seconds = time.monotonic() - t0
    item = aws.call("lambda", "get_event_source_mapping", UUID=built.uuid)
    shown = STALE_ERROR if case.stale else item
    out.step(
        "account",
        f"broken account built; ESM {built.uuid[:8]}{out.dots} {item.get('State')}: "
        f"{clip(shown.get('LastProcessingResult'), 70)}",
        res.build_seconds * 1000,
    )
    event = workflow.status_change_event(built.uuid, status=STALE_ERROR if case.stale else None)
    t1 = time.monotonic()
    fired = workflow.fire(event)
    res.execution = fired.execution_name
    out.step("event", f"'ESM Status Change' -> rule {workflow.rule_name} -> start -> execution started", None)
    out.detail(f"execution {fired.execution_name}")
    printer = StepPrinter(out, workflow, fired.execution_arn)
    approver = workflow.auto_approver(APPROVER, log=lambda d: _approved(out, res, d))

    def on_poll(wf: Any, arn: str) -> None:
        printer.poll()
        approver(wf, arn)

    run = workflow.wait(fired.execution_arn, on_poll=on_poll, poll=0.1)
    printer.poll()
    res.seconds = time.monotonic() - t1
    res.status = run.status
    res.outcome = run.outcome
    res.steps = printer.steps
    final = [o for o in workflow.outcomes(built.uuid) if o.get("execution") == fired.execution_name]
    record = final[-1] if final else {}
    res.before, res.after = record.get("before"), record.get("after")
    res.ticket = record.get("ticket_location")
    if run.status not in ("SUCCEEDED",) and not res.outcome:
        res.error = f"{run.status}: {run.error}: {clip(run.cause, 200)}"
    if res.outcome == "recovered" and res.before and res.after:
        out.detail(f"before: {clip(res.before.get('LastProcessingResult'), 90)}")
        out.detail(f"after:  {res.after.get('State')}, {clip(res.after.get('LastProcessingResult'), 80)}")
    if res.ticket:
        _show_ticket(out, res.ticket)
    mark = out.c(out.ok_mark, "32") if res.ok else out.c(out.bad_mark, "31")
    out.line(
        f"  {mark} Result: {res.outcome or res.status} in {res.seconds:.1f} s (expected {case.expected})"
        + ("" if out.verbose else f"  [{case.scenario}]"),
        always=True,
    )
    return res


def _approved(out: Out, res: CaseResult, decision: dict[str, Any]) -> None:
    pending = decision.get("approval") or {}
    result = decision.get("result") or {}
    res.approvals.append({"approval_id": pending.get("approval_id"), "result": result.get("status") or result})
    out.step(
        "approval",
        f"{pending.get('approval_id')}: auto-approved by {APPROVER} (this is the demo; a person approves in real life)",
        None,
    )


def _show_ticket(out: Out, location: str) -> None:
    path = Path(location)
    try:
        shown = path.relative_to(Path.cwd())
    except ValueError:
        shown = path
    from esm_medic.notify.providers import configured_provider_names

    out.detail(f"ticket providers: {', '.join(configured_provider_names())} (set by ESM_MEDIC_TICKET_PROVIDERS)")
    out.detail(f"ticket file: {shown} (the first lines of its runbook section:)")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        out.detail(f"(cannot read it: {exc})")
        return
    start = next((i + 1 for i, ln in enumerate(lines) if ln.strip().lower() == "## runbook"), 0)
    shown_lines = [ln for ln in lines[start:] if ln.strip()][:10]
    for ln in shown_lines:
        out.line("               | " + clip(ln, 100))


def run_demo(
    *,
    scenario: str | None = None,
    as_json: bool = False,
    quiet: bool = False,
    stream: IO[str] | None = None,
    color: bool | None = None,
    ticket_dir: Path | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[int, dict[str, Any]]:
    """Run the demo; returns (exit code, JSON summary). Prints as it goes unless ``as_json``."""
    stream = stream or sys.stdout
    color = stream.isatty() if color is None else color
    out = Out(stream, color=color and not as_json, verbose=not (quiet or as_json), silent=as_json)
    started = clock()
    with _quiet():
        results, setup_s, folder = _run_cases(out, scenario, ticket_dir, clock)
    total = clock() - started
    ok = all(r.ok for r in results)
    summary = {
        "ok": ok,
        "seconds": round(total, 2),
        "setup_seconds": round(setup_s, 2),
        "ticket_dir": str(folder),
        "cases": [r.to_dict() for r in results],
    }
    out.line()
    verdict = "all cases reached their expected outcome" if ok else "SOME CASES DID NOT reach their expected outcome"
    mark = out.c(out.ok_mark, "32") if ok else out.c(out.bad_mark, "31")
    out.line(f"{mark} {sum(r.ok for r in results)}/{len(results)} {verdict} ({total:.1f} s in all)", always=True)
    if as_json:
        stream.write(json.dumps(summary, indent=2, default=str) + "\n")
    return (0 if ok else 1), summary


def _run_cases(
    out: Out, scenario: str | None, ticket_dir: Path | None, clock: Callable[[], float]
) -> tuple[list[CaseResult], float, Path]:
    from esm_medic.handlers import _common
    from esm_medic_sandbox.env import sandbox
    from esm_medic_sandbox.runner import deploy

    cases = [case_for(scenario)] if scenario else list(DEFAULT_CASES)
    folder = (ticket_dir or DEMO_DIR / "tickets").resolve()
    out.line(out.c("esm-medic demo", "1") + " - a local fake AWS (moto + esm-medic patches), the real state machine,")
    out.line("the real handlers in-process; nothing leaves this machine.")
    results: list[CaseResult] = []
    setup_s = 0.0
    with sandbox() as aws:
        _common.reset_aws()
        _common.reset_idempotency()
        t0 = clock()
        workflow = deploy(
            aws,
            tunables=DEMO_TUNABLES,
            env={
                "ESM_MEDIC_DEFAULT_MODE": "auto",
                "ESM_MEDIC_TICKET_DIR": str(folder),
                "ESM_MEDIC_NOTIFY_SINKS": "file",
                # the sandbox's transitions last a second or so: poll the ESM state at that pace
                "ESM_MEDIC_POLL_SECONDS": "0.5",
                "POWERTOOLS_METRICS_DISABLED": "true",
                "POWERTOOLS_LOG_LEVEL": "CRITICAL",
            },
        )
        setup_s = clock() - t0
        out.line()
        out.step(
            "setup",
            f"sandbox up; {len(workflow.function_arns)} Lambda functions, state machine "
            f"{workflow.state_machine_arn.rsplit(':', 1)[-1]}, rule {workflow.rule_name} -> start",
            setup_s * 1000,
        )
        out.detail("mode auto: safe fixes apply at once; riskier ones wait for an approval")
        for i, case in enumerate(cases, 1):
            try:
                results.append(run_case(out, workflow, aws, case, i, len(cases)))
            except Exception as exc:  # a broken case is reported, the others still run
                r = CaseResult(case, error=f"{type(exc).__name__}: {exc}")
                out.line(f"  {out.c(out.bad_mark, '31')} {case.scenario}: {r.error}", always=True)
                results.append(r)
    return results, setup_s, folder
