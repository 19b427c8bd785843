"""A workflow deployed into the sandbox by :func:`esm_medic_sandbox.runner.deploy`: fire ``ESM Status Change``
events onto the bus, wait for the execution (with an optional callback per poll, e.g. the demo's auto-approver),
read outcomes and audit rows."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from esm_medic.aws import Aws, error_code
from esm_medic_sandbox.runner_history import ENDED_BADLY, TERMINAL, Fired, Run, steps_from_history


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
