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

The returned :class:`Workflow` fires ``ESM Status Change`` events onto the bus (:meth:`Workflow.fire`), waits for
the execution (:meth:`Workflow.wait`, with an optional callback per poll, e.g. the demo's auto-approver) and
returns its outcome with per-state timings from the execution history (:class:`Run`).

Sandbox-only deviation from infra, on request: ``retry_cap_seconds`` caps the ASL's Retry intervals so fault tests
do not sleep for minutes (moto sleeps for real); the definition is otherwise the file as it is.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from esm_medic.aws import Aws, error_code

ROOT = Path(__file__).resolve().parents[2]
ASL_PATH = ROOT / "statemachine" / "remediate.asl.json"

WORKFLOW_HANDLERS = ("start", "classify", "diagnose", "decide", "remediate", "verify", "rollback", "record")
PEOPLE_HANDLERS = ("notify", "ticket", "approval_request")
HANDLERS = WORKFLOW_HANDLERS + PEOPLE_HANDLERS

#: tunables for local runs (infra's defaults are minutes / hours)
LOCAL_TUNABLES: dict[str, int] = {
    "VerifyWaitSeconds": 1,
    "VerifyMaxWaitSeconds": 2,
    "VerifyMaxAttempts": 4,
    "ApprovalTimeoutSeconds": 60,
    "ApprovalHeartbeatSeconds": 55,
}
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
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
ENDED_BADLY = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})
ENDED_PATTERN_PATH = ROOT / "statemachine" / "execution-ended.pattern.json"

Handler = Callable[[Any, Any], Any]


def function_placeholder(handler: str) -> str:
    """``approval_request`` -> ``ApprovalRequestFunctionArn`` (the ASL's substitution name; same rule as infra)."""
    return "".join(part.capitalize() for part in handler.split("_")) + "FunctionArn"


def load_definition() -> str:
    """The ASL file as infra reads it (the runner works from a clone of the repository)."""
    return ASL_PATH.read_text(encoding="utf-8")


def placeholders(text: str) -> set[str]:
    import re

    return set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", text))


def prepare_definition(
    text: str, substitutions: Mapping[str, Any], *, retry_cap_seconds: int | None = None
) -> dict[str, Any]:
    """Substitute ``${...}`` like CloudFormation (strings as they are, other values as JSON) and, for local runs,
    cap Retry intervals. Raises ValueError naming any placeholder without a value."""
    from esm_medic_sandbox.patch_sfn import substitute_definition

    missing = sorted(placeholders(text) - set(substitutions))
    if missing:
        raise ValueError(f"no DefinitionSubstitution for: {', '.join(missing)}")
    definition: dict[str, Any] = json.loads(substitute_definition(text, dict(substitutions)))
    if retry_cap_seconds is not None:
        cap = max(1, int(retry_cap_seconds))
        for state in _walk_states(definition):
            for retrier in state.get("Retry") or []:
                retrier["IntervalSeconds"] = min(int(retrier.get("IntervalSeconds", 1)), cap)
                if "MaxDelaySeconds" in retrier:
                    retrier["MaxDelaySeconds"] = min(int(retrier["MaxDelaySeconds"]), cap)
                retrier["BackoffRate"] = 1.0
    return definition


def _walk_states(definition: Mapping[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for state in (definition.get("States") or {}).values():
        out.append(state)
        for branch in state.get("Branches") or []:
            out.extend(_walk_states(branch))
        for key in ("Iterator", "ItemProcessor"):
            if isinstance(state.get(key), Mapping):
                out.extend(_walk_states(state[key]))
    return out


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("README.txt", "esm-medic handlers run in-process in the sandbox (esm_medic_sandbox.inproc)\n")
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------- results
@dataclass
class StepTiming:
    """One state of an execution, from its history."""

    name: str
    type: str
    entered: str
    ms: float | None
    retries: int = 0
    error: str | None = None
    output: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "entered": self.entered,
            "ms": self.ms,
            "retries": self.retries,
            "error": self.error,
        }


@dataclass
class Run:
    """A finished (or timed-out) execution: status, output, outcome record, per-state timings."""

    execution_arn: str
    execution_name: str
    status: str
    output: dict[str, Any] | None
    error: str | None
    cause: str | None
    seconds: float
    steps: list[StepTiming] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def outcome(self) -> str | None:
        out = self.output or {}
        raw = out.get("recorded")
        recorded: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        if recorded.get("outcome"):
            return str(recorded["outcome"])
        for step in reversed(self.steps):
            if step.name in ("Record", "RecordFailure") and isinstance(step.output, Mapping):
                rec = step.output.get("recorded")
                if isinstance(rec, Mapping) and rec.get("outcome"):
                    return str(rec["outcome"])
        return None

    def state_names(self) -> list[str]:
        return [s.name for s in self.steps]

    def step(self, name: str) -> StepTiming | None:
        return next((s for s in self.steps if s.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "execution_arn": self.execution_arn,
            "execution_name": self.execution_name,
            "status": self.status,
            "outcome": self.outcome,
            "error": self.error,
            "seconds": round(self.seconds, 3),
            "steps": [s.to_dict() for s in self.steps],
        }


@dataclass
class Fired:
    """What happened to one event put on the bus."""

    event: dict[str, Any]
    execution_name: str
    execution_arn: str
    exists: bool
    start_result: dict[str, Any] | None = None


def steps_from_history(events: list[dict[str, Any]]) -> list[StepTiming]:
    """Per-state timings (entered -> exited), retries (task attempts after the first) and the last task error."""
    steps: list[StepTiming] = []
    open_steps: dict[str, tuple[StepTiming, datetime]] = {}
    scheduled: dict[int, int] = {}
    current: StepTiming | None = None
    for ev in events:
        etype = str(ev.get("type") or "")
        ts = ev.get("timestamp")
        when = ts if isinstance(ts, datetime) else datetime.now(UTC)
        if etype.endswith("StateEntered"):
            d = ev.get("stateEnteredEventDetails") or {}
            st = StepTiming(
                name=str(d.get("name")), type=etype[: -len("StateEntered")], entered=when.isoformat(), ms=None
            )
            steps.append(st)
            open_steps[st.name] = (st, when)
            current = st
        elif etype.endswith("StateExited"):
            d = ev.get("stateExitedEventDetails") or {}
            name = str(d.get("name"))
            if name in open_steps:
                st, t0 = open_steps.pop(name)
                st.ms = round((when - t0).total_seconds() * 1000, 1)
                try:
                    st.output = json.loads(d.get("output") or "null")
                except ValueError:
                    st.output = None
        elif current is not None and etype == "TaskScheduled":
            scheduled[id(current)] = scheduled.get(id(current), 0) + 1
            current.retries = scheduled[id(current)] - 1
        elif current is not None and etype in ("TaskFailed", "TaskTimedOut", "LambdaFunctionFailed"):
            for key in ("taskFailedEventDetails", "taskTimedOutEventDetails", "lambdaFunctionFailedEventDetails"):
                details = ev.get(key)
                if details:
                    current.error = str(details.get("error") or "")
    return steps


# ---------------------------------------------------------------------------------------------- workflow
@dataclass
class Workflow:
    """A deployed sandbox workflow (see module docstring)."""

    aws: Aws
    prefix: str
    state_machine_arn: str
    function_arns: dict[str, str]
    rule_name: str
    substitutions: dict[str, Any]
    definition: dict[str, Any]
    env: dict[str, str]
    bus: str = "default"
    _ended: set[str] = field(default_factory=set)

    # -------------------------------------------------------------- events
    def status_change_event(
        self,
        uuid: str,
        *,
        trigger: str = "sweep",
        incident_id: str | None = None,
        status: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """An ``ESM Status Change`` event (as the sweeper emits it) for the ESM's current status."""
        from esm_medic.detect import events as ev
        from esm_medic.esm import EsmConfig
        from esm_medic.workflow import classify_status, status_of

        item = self.aws.call("lambda", "get_event_source_mapping", UUID=uuid)
        item.pop("ResponseMetadata", None)
        new = status_of(status or item)
        cfg = EsmConfig.from_api(item)
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        c = classify_status(new, uuid)
        detail = ev.build_status_change(
            event_id=f"evt-{uuid[:8]}-{int(time.time() * 1000)}",
            uuid=uuid,
            incident_id=incident_id or f"inc-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid[:8]}",
            function_arn=str(item.get("FunctionArn") or ""),
            event_source=cfg.cluster_arn or ",".join(cfg.bootstrap_servers),
            source_kind="msk" if cfg.cluster_arn else "self-managed",
            old=None,
            new=new,
            classification={"entry": c.get("entry"), "step": c.get("step"), "kind": c.get("kind")},
            recovered=False,
            observed_at=now,
            since=now,
            trigger=trigger,
        )
        return {
            "version": "0",
            "id": detail["event_id"],
            "source": ev.SOURCE,
            "detail-type": ev.DETAIL_TYPE,
            "account": self.state_machine_arn.split(":")[4],
            "region": self.aws.region,
            "time": now,
            "resources": [],
            "detail": detail,
        }

    def put_event(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Put one event on the bus (only Source / DetailType / Detail travel, as with PutEvents)."""
        resp = self.aws.call(
            "events",
            "put_events",
            Entries=[
                {
                    "Source": str(event["source"]),
                    "DetailType": str(event["detail-type"]),
                    "Detail": json.dumps(event["detail"], separators=(",", ":"), sort_keys=True),
                    "EventBusName": self.bus,
                }
            ],
        )
        if resp.get("FailedEntryCount"):
            raise RuntimeError(f"PutEvents failed: {resp.get('Entries')}")
        return resp

    def fire(self, event_or_uuid: Mapping[str, Any] | str, **kw: Any) -> Fired:
        """Put an ``ESM Status Change`` event on the bus (built from the ESM's status when given a uuid); the rule
        invokes ``start`` which starts (or, for a duplicate, does not start) the named execution."""
        from esm_medic.workflow import execution_arn, normalise_event
        from esm_medic_sandbox import inproc, patch_events

        event = self.status_change_event(event_or_uuid, **kw) if isinstance(event_or_uuid, str) else dict(event_or_uuid)
        name = normalise_event(event).execution_name
        arn = execution_arn(self.state_machine_arn, name)
        n_before = len(inproc.INVOCATIONS)
        errors_before = len(patch_events.DELIVERY_ERRORS)
        self.put_event(event)
        start_calls = [i for i in list(inproc.INVOCATIONS)[n_before:] if i["function"] == self.function_name("start")]
        new_errors = list(patch_events.DELIVERY_ERRORS)[errors_before:]
        if new_errors:
            raise RuntimeError(f"EventBridge could not deliver the event: {new_errors}")
        if not start_calls:
            raise RuntimeError("the event matched no rule (the start function was not invoked)")
        if start_calls[-1].get("error_type"):
            raise RuntimeError(f"the start function failed: {start_calls[-1]['error_type']}")
        return Fired(event=event, execution_name=name, execution_arn=arn, exists=self.execution_exists(arn))

    def start_direct(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Invoke the ``start`` function directly (as EventBridge does) and return its result."""
        resp = self.aws.call(
            "lambda", "invoke", FunctionName=self.function_name("start"), Payload=json.dumps(event).encode()
        )
        payload = json.loads(resp["Payload"].read() or b"null")
        if resp.get("FunctionError"):
            raise RuntimeError(f"start failed: {payload}")
        return dict(payload or {})

    # -------------------------------------------------------------- executions
    def function_name(self, handler: str) -> str:
        return f"{self.prefix}-{handler}"

    def execution_exists(self, arn: str) -> bool:
        try:
            self.aws.call("stepfunctions", "describe_execution", executionArn=arn)
        except Exception as exc:
            if error_code(exc) == "ExecutionDoesNotExist":
                return False
            raise
        return True

    def executions(self) -> list[dict[str, Any]]:
        return list(
            self.aws.paginate("stepfunctions", "list_executions", "executions", stateMachineArn=self.state_machine_arn)
        )

    def history(self, arn: str) -> list[dict[str, Any]]:
        return list(self.aws.paginate("stepfunctions", "get_execution_history", "events", executionArn=arn))

    def wait(
        self,
        arn: str,
        *,
        timeout: float = 90.0,
        poll: float = 0.1,
        on_poll: Callable[[Workflow, str], None] | None = None,
    ) -> Run:
        """Wait until the execution ends (or ``timeout``); ``on_poll(workflow, arn)`` runs on every poll."""
        t0 = time.monotonic()
        desc: dict[str, Any] = {}
        while True:
            desc = self.aws.call("stepfunctions", "describe_execution", executionArn=arn)
            if desc["status"] in TERMINAL or time.monotonic() - t0 > timeout:
                break
            if on_poll is not None:
                on_poll(self, arn)
            time.sleep(poll)
        if desc["status"] in ENDED_BADLY:
            self.emit_execution_ended(desc)
        events = self.history(arn)
        output = None
        if desc.get("output"):
            try:
                output = json.loads(desc["output"])
            except ValueError:
                output = None
        return Run(
            execution_arn=arn,
            execution_name=str(desc.get("name") or arn.rsplit(":", 1)[-1]),
            status=str(desc["status"]) if desc["status"] in TERMINAL else "TIMEOUT",
            output=output,
            error=desc.get("error"),
            cause=desc.get("cause"),
            seconds=time.monotonic() - t0,
            steps=steps_from_history(events),
            events=events,
        )

    def emit_execution_ended(self, desc: Mapping[str, Any]) -> None:
        """Put the ``Step Functions Execution Status Change`` event AWS emits for a failed / timed-out / aborted
        execution (moto emits none) on the bus, once per execution; the ``execution-ended`` rule delivers it to
        the ``record`` function, as in infra."""
        arn = str(desc["executionArn"])
        if arn in self._ended:
            return
        self._ended.add(arn)
        stop = desc.get("stopDate")
        detail = {
            "executionArn": arn,
            "stateMachineArn": self.state_machine_arn,
            "name": desc.get("name") or arn.rsplit(":", 1)[-1],
            "status": desc["status"],
            "startDate": int(desc["startDate"].timestamp() * 1000)
            if isinstance(desc.get("startDate"), datetime)
            else None,
            "stopDate": int(stop.timestamp() * 1000) if isinstance(stop, datetime) else None,
            "input": desc.get("input"),
            "output": desc.get("output"),
            "error": desc.get("error"),
            "cause": desc.get("cause"),
        }
        self.put_event(
            {"source": "aws.states", "detail-type": "Step Functions Execution Status Change", "detail": detail}
        )

    def run(self, event_or_uuid: Mapping[str, Any] | str, *, timeout: float = 90.0, **kw: Any) -> Run:
        """Fire an event and wait for its execution."""
        on_poll = kw.pop("on_poll", None)
        fired = self.fire(event_or_uuid, **kw)
        if not fired.exists:
            raise RuntimeError(f"no execution {fired.execution_name} was started")
        return self.wait(fired.execution_arn, timeout=timeout, on_poll=on_poll)

    # -------------------------------------------------------------- records
    def outcomes(self, uuid: str) -> list[dict[str, Any]]:
        from esm_medic.workflow import outcomes

        return outcomes(self.aws, uuid)

    def audit(self, uuid: str) -> list[dict[str, Any]]:
        """Audit rows of one ESM, oldest first."""
        from esm_medic.remediate.audit import AuditLog
        from esm_medic.tables import AUDIT

        return [r.to_dict() for r in AuditLog(self.aws, AUDIT.name).rows_for(uuid)]

    def auto_approver(
        self, approver: str = "demo-approver", log: Callable[[dict[str, Any]], None] | None = None
    ) -> Callable[..., None]:
        """An ``on_poll`` callback that approves every pending approval (the demo's visible auto-approver)."""
        from esm_medic.approval import decide_approval, pending_approvals

        last = [0.0]

        def approve(workflow: Workflow, arn: str) -> None:
            if time.monotonic() - last[0] < 0.2:  # a scan of the STATE table: not on every poll
                return
            last[0] = time.monotonic()
            for pending in pending_approvals(workflow.aws):
                approval_id = str(pending.get("approval_id") or "")
                if not approval_id:
                    continue
                result = decide_approval(
                    workflow.aws, approval_id=approval_id, decision="approve", approver=approver, reason="demo"
                )
                if log is not None:
                    log({"approval": pending, "result": result})

        return approve


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
