"""Run the real remediation workflow locally: the ASL in moto's Step Functions interpreter, the handlers in-process.

:func:`deploy` (inside :func:`esm_medic_sandbox.env.sandbox`) wires the sandbox account the way infra deploys the
real one (``infra/stack.py``):

- the DynamoDB tables (:func:`esm_medic.tables.create_tables`);
- one Lambda function per handler module (``esm_medic.handlers.<name>.handler``), named ``<prefix>-<name>``, with
  the environment variables infra sets (table names, Powertools service / namespace, mode, ...); the handlers run
  in this process through :mod:`esm_medic_sandbox.inproc` (no Docker);
- the state machine from ``statemachine/remediate.asl.json`` with every ``${...}`` DefinitionSubstitution
  (function ARNs and tunables; the local tunables are small so a run takes seconds);
- the EventBridge rule ``<prefix>-status-error`` with the detection pattern
  (``esm_medic/detect/patterns/esm-status-error.json``) targeting the ``start`` function with the whole event
  (no Input / InputTransformer, as infra); ``start`` names the execution (ESM uuid + status fingerprint) and
  starts it, so a duplicate event starts nothing.

The returned :class:`Workflow` (:mod:`esm_medic_sandbox.runner_workflow`) fires ``ESM Status Change`` events onto
the bus (:meth:`Workflow.fire`), waits for the execution (:meth:`Workflow.wait`, with an optional callback per poll,
e.g. the demo's auto-approver) and returns its outcome with per-state timings from the execution history
(:class:`Run`, :mod:`esm_medic_sandbox.runner_history`). The ASL handling is :mod:`esm_medic_sandbox.runner_asl`;
every public name stays importable from here.

Sandbox-only deviation from infra, on request: ``retry_cap_seconds`` caps the ASL's Retry intervals so fault tests
do not sleep for minutes (moto sleeps for real); the definition is otherwise the file as it is.
"""

from __future__ import annotations

import contextlib
import io
import json
import zipfile
from collections.abc import Callable, Mapping
from typing import Any

from esm_medic.aws import Aws, error_code
from esm_medic_sandbox.runner_asl import (
    ASL_PATH,
    LOCAL_TUNABLES,
    ROOT,
    function_placeholder,
    load_definition,
    placeholders,
    prepare_definition,
)
from esm_medic_sandbox.runner_history import ENDED_BADLY, TERMINAL, Fired, Run, StepTiming, steps_from_history
from esm_medic_sandbox.runner_workflow import Workflow

__all__ = [
    "ASL_PATH",
    "ENDED_BADLY",
    "HANDLERS",
    "LOCAL_TUNABLES",
    "TERMINAL",
    "Fired",
    "Run",
    "StepTiming",
    "Workflow",
    "deploy",
    "function_env",
    "function_placeholder",
    "load_definition",
    "placeholders",
    "prepare_definition",
    "steps_from_history",
]

WORKFLOW_HANDLERS = ("start", "classify", "diagnose", "decide", "remediate", "verify", "rollback", "record")
PEOPLE_HANDLERS = ("notify", "ticket", "approval_request")
HANDLERS = WORKFLOW_HANDLERS + PEOPLE_HANDLERS
ROLE_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
            "Action": "sts:AssumeRole",
        }
    ],
}
ENDED_PATTERN_PATH = ROOT / "statemachine" / "execution-ended.pattern.json"

Handler = Callable[[Any, Any], Any]


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("README.txt", "esm-medic handlers run in-process in the sandbox (esm_medic_sandbox.inproc)\n")
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------- deploy
def function_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment infra sets on every function (names from :mod:`esm_medic.tables`), plus ``extra``."""
    from esm_medic.tables import TABLES

    env = {spec.env: spec.name for spec in TABLES}
    env.update(
        {
            "POWERTOOLS_SERVICE_NAME": "esm-medic",
            "POWERTOOLS_METRICS_NAMESPACE": "esm-medic",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "ESM_MEDIC_EVENT_BUS": "default",
            "ESM_MEDIC_KILL_SWITCH_PARAM": "/esm-medic/kill-switch",
            # the local verification window is seconds long; the engine's grace period must fit inside it
            "ESM_MEDIC_VERIFY_GRACE_SECONDS": "0",
            # a suspected failure's hold (minutes in AWS) is capped so local runs stay fast
            "ESM_MEDIC_MAX_HOLD_SECONDS": "1",
        }
    )
    env.update(dict(extra or {}))
    return env


def deploy(
    aws: Aws,
    *,
    prefix: str = "esm-medic",
    tunables: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    handlers: Mapping[str, Handler | str] | None = None,
    retry_cap_seconds: int | None = 1,
    definition_text: str | None = None,
    simulate: bool = True,
) -> Workflow:
    """Deploy the workflow into the active sandbox (see module docstring); returns a :class:`Workflow`.

    ``handlers`` replaces handler modules by name (tests register a failing one); ``env`` adds / overrides
    function environment variables (e.g. ``ESM_MEDIC_DEFAULT_MODE``); ``tunables`` overrides
    :data:`LOCAL_TUNABLES`. ``simulate`` installs the ESM status simulator (the ESM's status follows the account).
    """
    from esm_medic.detect.events import load_pattern
    from esm_medic.tables import create_tables
    from esm_medic_sandbox import inproc

    if simulate:
        from esm_medic_sandbox import simulator

        simulator.install()
    create_tables(aws)
    account = aws.account_id()
    role_arn = _role(aws, f"{prefix}-role")
    fenv = function_env(env)
    arns: dict[str, str] = {}
    overrides = dict(handlers or {})
    for name in HANDLERS:
        fname = f"{prefix}-{name}"
        arns[name] = _function(aws, fname, role_arn, f"esm_medic.handlers.{name}.handler", fenv)
        inproc.register_handler(fname, overrides.get(name) or f"esm_medic.handlers.{name}:handler")
    text = definition_text if definition_text is not None else load_definition()
    subs: dict[str, Any] = {**LOCAL_TUNABLES, **dict(tunables or {})}
    for name, arn in arns.items():
        subs[function_placeholder(name)] = arn
    subs = {k: v for k, v in subs.items() if k in placeholders(text)}
    definition = prepare_definition(text, subs, retry_cap_seconds=retry_cap_seconds)
    sm_name = f"{prefix}-remediate"
    sm_arn = f"arn:aws:states:{aws.region}:{account}:stateMachine:{sm_name}"
    with contextlib.suppress(Exception):  # a machine of an earlier deploy in this sandbox
        aws.call("stepfunctions", "delete_state_machine", stateMachineArn=sm_arn)
    sm_arn = aws.call(
        "stepfunctions",
        "create_state_machine",
        name=sm_name,
        definition=json.dumps(definition),
        roleArn=role_arn,
        type="STANDARD",
    )["stateMachineArn"]
    start_env = {**fenv, "ESM_MEDIC_STATE_MACHINE_ARN": sm_arn}
    aws.call(
        "lambda", "update_function_configuration", FunctionName=arns["start"], Environment={"Variables": start_env}
    )
    rule = f"{prefix}-status-error"
    aws.call(
        "events",
        "put_rule",
        Name=rule,
        EventPattern=json.dumps(load_pattern("esm-status-error")),
        State="ENABLED",
        Description="esm-medic: esm-status-error.json -> start",
    )
    aws.call("events", "put_targets", Rule=rule, Targets=[{"Id": "start", "Arn": arns["start"]}])
    try:
        aws.call(
            "lambda",
            "add_permission",
            FunctionName=arns["start"],
            StatementId=f"{rule}-invoke",
            Action="lambda:InvokeFunction",
            Principal="events.amazonaws.com",
            SourceArn=f"arn:aws:events:{aws.region}:{account}:rule/{rule}",
        )
    except Exception as exc:
        if error_code(exc) != "ResourceConflictException":
            raise
    ended_rule = f"{prefix}-execution-ended"
    pattern = json.loads(ENDED_PATTERN_PATH.read_text(encoding="utf-8"))
    pattern.setdefault("detail", {})["stateMachineArn"] = [sm_arn]
    aws.call(
        "events",
        "put_rule",
        Name=ended_rule,
        EventPattern=json.dumps(pattern),
        State="ENABLED",
        Description="esm-medic: execution-ended.pattern.json -> record",
    )
    aws.call("events", "put_targets", Rule=ended_rule, Targets=[{"Id": "record", "Arn": arns["record"]}])
    return Workflow(
        aws=aws,
        prefix=prefix,
        state_machine_arn=sm_arn,
        function_arns=arns,
        rule_name=rule,
        substitutions=subs,
        definition=definition,
        env=fenv,
    )


def _role(aws: Aws, name: str) -> str:
    try:
        return str(aws.call("iam", "get_role", RoleName=name)["Role"]["Arn"])
    except Exception:
        return str(
            aws.call("iam", "create_role", RoleName=name, AssumeRolePolicyDocument=json.dumps(ROLE_TRUST))["Role"][
                "Arn"
            ]
        )


def _function(aws: Aws, name: str, role_arn: str, handler: str, env: Mapping[str, str]) -> str:
    try:
        cfg = aws.call(
            "lambda",
            "update_function_configuration",
            FunctionName=name,
            Handler=handler,
            Environment={"Variables": dict(env)},
        )
        return str(cfg["FunctionArn"])
    except Exception as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise
    cfg = aws.call(
        "lambda",
        "create_function",
        FunctionName=name,
        Runtime="python3.12",
        Role=role_arn,
        Handler=handler,
        Code={"ZipFile": _zip()},
        Timeout=300,
        MemorySize=512,
        Environment={"Variables": dict(env)},
    )
    return str(cfg["FunctionArn"])
