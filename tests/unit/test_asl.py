"""The remediation state machine definition: npm asl-validator, plus structural rules of our own.

- the file is valid ASL (``asl-validator`` 4.0.0 from the repo's package.json, installed by `make node`);
- every Next / Default / Catch target exists and every state is reachable from StartAt;
- no execution can end without recording an outcome: with the Record states removed, no terminal state is
  reachable;
- every Lambda Task retries throttling / transient / Lambda service errors and catches States.ALL;
- every ``${...}`` placeholder has a value in the local runner and in infra (function ARNs for existing handler
  modules, tunables in infra's TUNABLES);
- after substitution (as the runner / CloudFormation do) the definition is valid JSON with numbers where ASL
  wants them.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
from collections import deque
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ASL = ROOT / "statemachine" / "remediate.asl.json"
VALIDATOR = ROOT / "node_modules" / ".bin" / "asl-validator"
HANDLERS = ROOT / "functions" / "esm_medic" / "handlers"
LAMBDA_ERRORS = {"Lambda.TooManyRequestsException", "Lambda.ServiceException", "Lambda.SdkClientException"}
RECORD_STATES = {"Record", "RecordFailure"}


@pytest.fixture(scope="session")
def asl_validator() -> Path:
    """node_modules/.bin/asl-validator, which `make node` (a prerequisite of `make test`) installs; unit tests never
    touch the network themselves."""
    assert VALIDATOR.exists(), "node_modules/.bin/asl-validator is missing: run `make node` (or `make test`)"
    return VALIDATOR


@pytest.fixture(scope="module")
def text() -> str:
    return ASL.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def definition(text: str) -> dict[str, Any]:
    return json.loads(text)


def _targets(state: dict[str, Any]) -> list[str]:
    out = []
    if "Next" in state:
        out.append(state["Next"])
    if "Default" in state:
        out.append(state["Default"])
    for choice in state.get("Choices") or []:
        out.append(choice["Next"])
    for catcher in state.get("Catch") or []:
        out.append(catcher["Next"])
    return out


def _reachable(states: dict[str, Any], start: str, removed: frozenset[str] = frozenset()) -> set[str]:
    seen: set[str] = set()
    todo = deque([start])
    while todo:
        name = todo.popleft()
        if name in seen or name in removed:
            continue
        seen.add(name)
        todo.extend(_targets(states[name]))
    return seen


def _lambda_tasks(states: dict[str, Any]) -> dict[str, Any]:
    return {
        n: s
        for n, s in states.items()
        if s["Type"] == "Task" and str(s.get("Resource", "")).startswith("arn:aws:states:::lambda:invoke")
    }


# ---------------------------------------------------------------------------------------------- validator
def test_asl_validator_accepts_the_definition(asl_validator: Path) -> None:
    proc = subprocess.run(
        [str(asl_validator), "--json-path", str(ASL)], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_asl_validator_rejects_a_broken_definition(asl_validator: Path, tmp_path: Path, definition: dict) -> None:
    broken = json.loads(json.dumps(definition))
    broken["States"]["Classify"]["Next"] = "NoSuchState"
    path = tmp_path / "broken.asl.json"
    path.write_text(json.dumps(broken), encoding="utf-8")
    proc = subprocess.run([str(asl_validator), "--json-path", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0


# ---------------------------------------------------------------------------------------------- structure
def test_targets_exist_and_every_state_is_reachable(definition: dict[str, Any]) -> None:
    states = definition["States"]
    assert definition["StartAt"] in states
    for name, state in states.items():
        for target in _targets(state):
            assert target in states, f"{name} -> {target}: no such state"
    unreachable = set(states) - _reachable(states, definition["StartAt"])
    assert not unreachable, f"unreachable states: {sorted(unreachable)}"


def test_every_state_can_finish(definition: dict[str, Any]) -> None:
    states = definition["States"]
    terminal = {n for n, s in states.items() if s["Type"] in ("Succeed", "Fail") or s.get("End")}
    for name in states:
        assert _reachable(states, name) & terminal, f"{name} can never reach an end"


def test_no_execution_ends_without_recording_an_outcome(definition: dict[str, Any]) -> None:
    """Remove the two Record states: no Succeed / Fail state may still be reachable from StartAt."""
    states = definition["States"]
    terminal = {n for n, s in states.items() if s["Type"] in ("Succeed", "Fail") or s.get("End")}
    reachable = _reachable(states, definition["StartAt"], frozenset(RECORD_STATES))
    assert not (reachable & terminal), f"reachable without a Record state: {sorted(reachable & terminal)}"
    # and the Record states' own failure ends in a Fail state that says so
    for name in RECORD_STATES:
        catch = states[name]["Catch"]
        assert [c["Next"] for c in catch] == ["RecordFailed"]
    assert states["RecordFailed"]["Type"] == "Fail"


def test_every_lambda_task_retries_and_catches(definition: dict[str, Any]) -> None:
    tasks = _lambda_tasks(definition["States"])
    assert len(tasks) >= 12
    for name, state in tasks.items():
        retried = {e for r in state.get("Retry") or [] for e in r["ErrorEquals"]}
        assert retried >= LAMBDA_ERRORS | {"Throttled", "Transient"}, f"{name} retries only {sorted(retried)}"
        for r in state["Retry"]:
            assert r["IntervalSeconds"] >= 1 and r["MaxAttempts"] >= 1 and r.get("BackoffRate", 1) >= 1
        caught = [e for c in state.get("Catch") or [] for e in c["ErrorEquals"]]
        assert "States.ALL" in caught, f"{name} does not catch States.ALL"
        assert caught[-1] == "States.ALL", f"{name}: States.ALL must be the last catcher"


def test_every_choice_has_a_default(definition: dict[str, Any]) -> None:
    for name, state in definition["States"].items():
        if state["Type"] == "Choice":
            assert "Default" in state, f"{name} has no Default"


def test_approval_waits_for_a_token_with_timeout_and_heartbeat(definition: dict[str, Any]) -> None:
    state = definition["States"]["RequestApproval"]
    assert state["Resource"] == "arn:aws:states:::lambda:invoke.waitForTaskToken"
    assert state["Parameters"]["Payload"]["task_token.$"] == "$$.Task.Token"
    assert "TimeoutSecondsPath" in state and "HeartbeatSecondsPath" in state
    caught = {e: c["Next"] for c in state["Catch"] for e in c["ErrorEquals"]}
    assert caught["States.Timeout"] == caught["States.HeartbeatTimeout"] == "ReasonApprovalTimeout"
    assert caught["Rejected"] == "ReasonApprovalRejected"
    for reason in ("ReasonApprovalTimeout", "ReasonApprovalRejected", "ReasonApprovalDeclined"):
        assert definition["States"][reason]["Next"] == "Ticket"


def test_route_covers_every_decision(definition: dict[str, Any]) -> None:
    from esm_medic.workflow import ROUTES

    route = definition["States"]["Route"]
    handled = {c["StringEquals"] for c in route["Choices"]}
    assert handled | {"ticket"} == set(ROUTES)
    assert route["Default"] == "ReasonManual"


def test_verify_loop_waits_then_verifies_with_an_exit(definition: dict[str, Any]) -> None:
    states = definition["States"]
    assert states["PrepareVerify"]["Next"] == "VerifyWait"
    assert states["VerifyWait"]["Type"] == "Wait" and states["VerifyWait"]["SecondsPath"]
    assert states["VerifyWait"]["Next"] == "Verify"
    choice = {c["Next"]: c for c in states["VerifyChoice"]["Choices"]}
    assert set(choice) == {"NotifyRecovered", "Rollback"}
    assert states["VerifyChoice"]["Default"] == "VerifyWait"
    assert states["Rollback"]["Next"] == "ReasonVerifyFailed"


def test_state_keeps_the_documented_shape(definition: dict[str, Any]) -> None:
    """Classify builds the state skeleton; each later step writes its own key."""
    states = definition["States"]
    skeleton = states["Classify"]["ResultSelector"]
    keys = {k.removesuffix(".$") for k in skeleton}
    assert {
        "event",
        "uuid",
        "classification",
        "diagnosis",
        "decision",
        "plan",
        "action_record",
        "verification",
        "outcome",
    } <= keys
    assert states["Classify"]["ResultPath"] == "$"
    written = {s.get("ResultPath") for s in states.values()}
    for key in ("diagnosis", "decision", "plan", "action_record", "verification", "rollback", "ticket", "outcome"):
        assert f"$.{key}" in written, f"no state writes $.{key}"


def _selected(state: dict[str, Any]) -> dict[str, str]:
    """ResultSelector key -> the Payload field it reads."""
    return {k.removesuffix(".$"): v.removeprefix("$.Payload.") for k, v in state["ResultSelector"].items()}


@pytest.mark.parametrize(
    ("states", "result"),
    [
        (("Remediate",), "RemediateResult"),
        (("Verify",), "VerifyResult"),
        (("Rollback", "RollbackAfterError"), "RollbackResult"),
    ],
)
def test_step_results_are_read_as_the_typed_results_write_them(
    definition: dict[str, Any], states: tuple[str, ...], result: str
) -> None:
    """Every Payload field a ResultSelector reads is a field of the step's typed result (a missing one fails the
    execution at run time), and every field of the result reaches the state."""
    from dataclasses import fields

    from esm_medic.workflow import payloads

    names = {f.name for f in fields(getattr(payloads, result))}
    for name in states:
        selected = _selected(definition["States"][name])
        assert set(selected.values()) == names, (name, set(selected.values()) ^ names)
        assert all(k == v for k, v in selected.items()), name


def test_the_whole_plan_reaches_decide_remediate_verify_and_rollback(definition: dict[str, Any]) -> None:
    """The diagnosis carries its ranked hypotheses and ordered plan (Decide plans every item, Remediate re-checks
    them); the remediation record carries every applied action id, which Verify and Rollback read."""
    states = definition["States"]
    diagnosis = _selected(states["Diagnose"])
    assert {"plan", "hypotheses"} <= set(diagnosis)
    assert states["Decide"]["Parameters"]["Payload"]["diagnosis.$"] == "$.diagnosis"
    assert states["Remediate"]["Parameters"]["Payload"]["diagnosis.$"] == "$.diagnosis"
    assert states["Remediate"]["Parameters"]["Payload"]["plan.$"] == "$.plan"
    assert states["Remediate"]["Parameters"]["Payload"]["approval.$"] == "$.approval"
    assert {"action_ids", "fixes", "remaining", "plan_status", "ticket_reason"} <= set(_selected(states["Remediate"]))
    for name in ("Verify", "Rollback"):
        assert states[name]["Parameters"]["Payload"]["action_record.$"] == "$.action_record"
    assert states["CarryPlan"]["InputPath"] == "$.decision.plan"
    assert states["RequestApproval"]["Parameters"]["Payload"]["plan.$"] == "$.plan"


# ---------------------------------------------------------------------------------------------- substitutions
def _infra_tunables() -> set[str]:
    """TUNABLES of infra/stack.py, read with ast (importing it would load aws_cdk)."""
    tree = ast.parse((ROOT / "infra" / "stack.py").read_text(encoding="utf-8"))
    for node in tree.body:
        target = (
            node.target
            if isinstance(node, ast.AnnAssign)
            else (node.targets[0] if isinstance(node, ast.Assign) else None)
        )
        if isinstance(target, ast.Name) and target.id == "TUNABLES" and node.value is not None:
            return set(ast.literal_eval(node.value))
    raise AssertionError("infra/stack.py has no TUNABLES")


def test_every_placeholder_has_a_substitution(text: str) -> None:
    from esm_medic_sandbox.runner import LOCAL_TUNABLES, function_placeholder

    handler_modules = {p.stem for p in HANDLERS.glob("*.py") if not p.stem.startswith("_")}
    functions = {function_placeholder(h): h for h in handler_modules}
    found = set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", text))
    assert found, "the ASL has no ${...} placeholders"
    for name in sorted(found):
        if name.endswith("FunctionArn"):
            assert name in functions, f"${{{name}}} names no handler module in esm_medic/handlers"
        else:
            assert name in LOCAL_TUNABLES, f"${{{name}}} has no value in the local runner"
    tunables = {n for n in found if not n.endswith("FunctionArn")}
    missing_in_infra = tunables - _infra_tunables()
    assert not missing_in_infra, f"infra/stack.py TUNABLES lacks {sorted(missing_in_infra)}"


def test_substituted_definition_is_valid_and_typed(text: str) -> None:
    from esm_medic_sandbox.runner import LOCAL_TUNABLES, function_placeholder, prepare_definition

    subs: dict[str, Any] = dict(LOCAL_TUNABLES)
    for name in re.findall(r"\$\{([A-Za-z0-9_]+FunctionArn)\}", text):
        subs[name] = f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
    definition = prepare_definition(text, subs)
    init = definition["States"]["Init"]["Parameters"]
    assert init["verify_wait_seconds.$"] == f"States.StringToJson('{LOCAL_TUNABLES['VerifyWaitSeconds']}')"
    assert "${" not in json.dumps(definition)
    fn = definition["States"]["Classify"]["Parameters"]["FunctionName"]
    assert fn.endswith(function_placeholder("classify"))
    with pytest.raises(ValueError, match="VerifyWaitSeconds"):
        prepare_definition(text, {k: v for k, v in subs.items() if k != "VerifyWaitSeconds"})


def test_retry_cap_only_shortens_retries(text: str) -> None:
    from esm_medic_sandbox.runner import LOCAL_TUNABLES, prepare_definition

    subs: dict[str, Any] = dict(LOCAL_TUNABLES)
    for name in re.findall(r"\$\{([A-Za-z0-9_]+FunctionArn)\}", text):
        subs[name] = "arn:aws:lambda:us-east-1:123456789012:function:x"
    plain = prepare_definition(text, subs)
    capped = prepare_definition(text, subs, retry_cap_seconds=1)
    for name, state in plain["States"].items():
        other = capped["States"][name]
        assert [r["ErrorEquals"] for r in state.get("Retry") or []] == [
            r["ErrorEquals"] for r in other.get("Retry") or []
        ]
        assert {k: v for k, v in state.items() if k != "Retry"} == {k: v for k, v in other.items() if k != "Retry"}
        for r in other.get("Retry") or []:
            assert r["IntervalSeconds"] == 1


def test_execution_ended_pattern_matches_only_bad_endings() -> None:
    from moto.events.models import EventPattern

    pattern = json.loads((ROOT / "statemachine" / "execution-ended.pattern.json").read_text(encoding="utf-8"))
    pattern["detail"]["stateMachineArn"] = ["arn:aws:states:us-east-1:123456789012:stateMachine:m"]
    matcher = EventPattern.load(json.dumps(pattern))

    def event(status: str, machine: str = "m") -> dict[str, Any]:
        return {
            "source": "aws.states",
            "detail-type": "Step Functions Execution Status Change",
            "detail": {
                "status": status,
                "stateMachineArn": f"arn:aws:states:us-east-1:123456789012:stateMachine:{machine}",
            },
        }

    for status in ("FAILED", "TIMED_OUT", "ABORTED"):
        assert matcher.matches_event(event(status))
    assert not matcher.matches_event(event("SUCCEEDED"))
    assert not matcher.matches_event(event("RUNNING"))
    assert not matcher.matches_event(event("FAILED", machine="other"))
