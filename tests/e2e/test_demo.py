"""``esm-medic demo``: the three default cases reach their outcomes, readable as plain text off a terminal; the
JSON summary; the command line (``--list``, an unknown scenario)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def fresh_handlers() -> None:
    from esm_medic.handlers import _common

    _common.reset_aws()
    _common.reset_idempotency()


def test_default_demo_reaches_every_outcome(tmp_path: Path) -> None:
    from esm_medic_sandbox import timing
    from esm_medic_sandbox.demo import DEFAULT_CASES, run_demo

    buf = io.StringIO()
    with timing.delays(timing.DEFAULT_DELAY_SECONDS):  # as `esm-medic demo` runs: AWS-like transitions on
        code, summary = run_demo(stream=buf, ticket_dir=tmp_path / "tickets")
    text = buf.getvalue()
    assert code == 0, text
    assert summary["ok"] is True and [c["scenario"] for c in summary["cases"]] == [c.scenario for c in DEFAULT_CASES]
    assert "\033[" not in text  # no ANSI codes off a terminal
    auto, approval, ticket = summary["cases"]
    assert [s["step"] for s in auto["steps"]] == [
        "classify",
        "diagnose",
        "plan",
        "apply",
        "verify",
        "notify",
        "outcome",
    ]
    assert all(isinstance(s["ms"], float) for s in auto["steps"])
    assert auto["outcome"] == "recovered" and auto["after"]["LastProcessingResult"] == "OK"
    assert approval["approvals"] and "auto-approved by demo-approver (this is the demo" in text
    assert ticket["outcome"] == "ticketed" and Path(ticket["ticket"]).is_file()
    assert Path(ticket["ticket"]).parent == (tmp_path / "tickets").resolve()
    runbook_lines = re.findall(r"^\s+\| .+$", text, flags=re.M)
    assert len(runbook_lines) >= 5
    assert "3/3 all cases reached their expected outcome" in text
    assert "ESM states seen while restarting: " in text and "Disabling" in text


def test_json_summary_for_one_scenario(tmp_path: Path) -> None:
    from esm_medic_sandbox.demo import run_demo

    buf = io.StringIO()
    code, summary = run_demo(scenario="healthy", as_json=True, stream=buf, ticket_dir=tmp_path)
    assert code == 0
    printed = json.loads(buf.getvalue())  # nothing but one JSON document
    assert printed["cases"][0]["outcome"] == "healthy-noop" == printed["cases"][0]["expected"]
    assert printed == json.loads(json.dumps(summary, default=str))


def test_cli_lists_scenarios_and_refuses_unknown_ones(capsys: Any) -> None:
    from esm_medic_sandbox.scenarios import names

    from esm_medic.cli.main import main

    assert main(["demo", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(n in listed for n in names())
    assert main(["demo", "--scenario", "no-such-thing"]) == 2
    assert "unknown scenario" in capsys.readouterr().err
