"""``enable-esm-system-logs``: set ``LoggingConfig.SystemLogLevel`` on a Kafka ESM in provisioned mode.

The ESM then writes system logs to its function's log group (``ESM_PROCESSING_EVENT`` at WARN, and with INFO the
``POLLER_STATUS_EVENT`` network view), which the log path of detection turns into events within seconds. AWS offers
these logs only for Kafka ESMs in provisioned mode, so the plan refuses any other ESM. One UpdateEventSourceMapping
call, no DryRun exists for it and nothing is created (no tags). The level found before is recorded; rollback sets it
back (or to the lowest level, WARN, when there was none: the API has no "off" and WARN is the least output), and only
when the current level is still the one this action set. Polling is not restarted: logging does not affect it.

:func:`offer` says whether to propose the action for an ESM (the diagnosis may call it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from esm_medic.remediate.base import (
    Action,
    ActionFailed,
    ActionRecord,
    ApplyResult,
    Plan,
    PlannedCall,
    RollbackResult,
    VerifyResult,
    params_schema,
)
from esm_medic.remediate.registry import register

LEVELS = ("WARN", "INFO", "DEBUG")  # least to most output


def is_provisioned(item: Mapping[str, Any]) -> bool:
    cfg = item.get("ProvisionedPollerConfig")
    return isinstance(cfg, Mapping) and bool(cfg.get("MinimumPollers") or cfg.get("MaximumPollers"))


def is_kafka(item: Mapping[str, Any]) -> bool:
    arn = str(item.get("EventSourceArn") or "")
    return ":kafka:" in arn or isinstance(item.get("SelfManagedEventSource"), Mapping)


def current_level(item: Mapping[str, Any]) -> str:
    cfg = item.get("LoggingConfig")
    return str(cfg.get("SystemLogLevel") or "") if isinstance(cfg, Mapping) else ""


def offer(item: Mapping[str, Any], level: str = "INFO") -> dict[str, Any] | None:
    """The fix to propose for an ESM (GetEventSourceMapping item): ``{"action", "params"}`` when it is a Kafka ESM in
    provisioned mode without system logs at ``level`` or more; None otherwise."""
    if not (is_kafka(item) and is_provisioned(item) and item.get("UUID")):
        return None
    have = current_level(item)
    if have and LEVELS.index(have) >= LEVELS.index(level):
        return None
    return {"action": "enable-esm-system-logs", "params": {"uuid": str(item["UUID"]), "level": level}}


@register("enable-esm-system-logs")
class EnableEsmSystemLogs(Action):
    title = "Turn on the ESM's system logs (fast detection, the pollers' own network view)"
    schema: ClassVar[dict[str, Any]] = params_schema(
        ["uuid"],
        {
            "uuid": {
                "type": "string",
                "pattern": "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
            },
            "level": {"enum": list(LEVELS), "default": "INFO"},
        },
    )
    permissions = ("lambda:GetEventSourceMapping", "lambda:UpdateEventSourceMapping")
    default_safety = "approve"
    creates_resources: ClassVar[dict[str, str]] = {}
    restart_polling = False
    step = "poll"

    @property
    def uuid(self) -> str:
        return str(self.params["uuid"])

    def _item(self) -> dict[str, Any] | None:
        try:
            return self.read("lambda", "get_event_source_mapping", UUID=self.uuid)
        except ActionFailed as exc:
            if exc.aws_code.endswith("NotFoundException") or exc.aws_code.endswith("NotFound"):
                return None
            raise

    def _set(self, level: str) -> None:
        self.write(
            "lambda",
            "update_event_source_mapping",
            what=f"set SystemLogLevel={level} on ESM {self.uuid}",
            UUID=self.uuid,
            LoggingConfig={"SystemLogLevel": level},
        )

    def plan(self) -> Plan:
        level = str(self.params["level"])
        plan = self.new_plan(f"Set SystemLogLevel={level} on ESM {self.uuid}")
        item = self._item()
        if item is None:
            plan.refused = f"ESM {self.uuid} does not exist"
            return self.finish_plan(plan)
        if not is_kafka(item):
            plan.refused = f"ESM {self.uuid} is not a Kafka ESM: system logs exist only for Kafka ESMs"
            return self.finish_plan(plan)
        if not is_provisioned(item):
            plan.refused = (
                f"ESM {self.uuid} is not in provisioned mode (no ProvisionedPollerConfig): system logs need it, and "
                "turning provisioned mode on changes cost and scaling, which is not this action's call"
            )
            return self.finish_plan(plan)
        have = current_level(item)
        plan.before = {"uuid": self.uuid, "level": have}
        plan.scopes = [("esm", self.uuid)]
        if have and LEVELS.index(have) >= LEVELS.index(level):
            plan.diff.append(f"  SystemLogLevel: already {have}")
            plan.state = {"todo": ""}
            return self.finish_plan(plan)
        plan.calls.append(
            PlannedCall(
                "lambda",
                "update_event_source_mapping",
                {"UUID": self.uuid, "LoggingConfig": {"SystemLogLevel": level}},
                note="UpdateEventSourceMapping has no DryRun",
            )
        )
        plan.diff.append(f"- SystemLogLevel: {have or '(not set)'}")
        plan.diff.append(f"+ SystemLogLevel: {level}")
        plan.state = {"todo": level}
        return self.finish_plan(plan)

    def apply(self, plan: Plan) -> ApplyResult:
        level = str(plan.state.get("todo") or "")
        if level:
            self._set(level)
            self.add_created("set_level", level)
        item = self._item() or {}
        return self.applied(plan, changed=bool(level), after={"uuid": self.uuid, "level": current_level(item)})

    def verify(self, record: ActionRecord) -> VerifyResult:
        item = self._item()
        if item is None:
            return VerifyResult(ok=False, details={}, problems=[f"ESM {self.uuid} no longer exists"])
        have, want = current_level(item), str(self.params["level"])
        ok = bool(have) and LEVELS.index(have) >= LEVELS.index(want)
        return VerifyResult(ok=ok, details={"level": have}, problems=[] if ok else [f"SystemLogLevel is {have!r}"])

    def rollback(self, record: ActionRecord) -> RollbackResult:
        item = self._item()
        if item is None:
            return RollbackResult(changed=False, notes=[f"ESM {self.uuid} no longer exists"])
        set_levels = record.created.get("set_level") or []
        if not set_levels:
            return RollbackResult(changed=False, notes=["this action changed nothing to undo"])
        have = current_level(item)
        if have != set_levels[-1]:
            return RollbackResult(changed=False, notes=[f"SystemLogLevel is now {have!r}, changed since: left as is"])
        before = str((record.before or {}).get("level") or "")
        target = before or LEVELS[0]
        if target == have:
            return RollbackResult(changed=False, notes=[f"SystemLogLevel is already {have}"])
        self._set(target)
        notes = [] if before else ["no level was set before; WARN (the least output) is the closest the API allows"]
        return RollbackResult(changed=True, restored={"level": target}, notes=notes)
