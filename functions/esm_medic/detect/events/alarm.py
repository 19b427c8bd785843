"""CloudWatch alarm state changes of esm-medic alarms on ESM metrics (rule 4: re-check the ESMs they name)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from esm_medic.detect.events.base import (
    ALARM_DETAIL_TYPE,
    UUID_IN_TEXT,
    UUID_RE,
    IgnoredEvent,
    MalformedEvent,
    envelope,
    get_path,
)


@dataclass(frozen=True)
class AlarmSignal:
    """An esm-medic alarm on ESM metrics went into ALARM (rule 4): re-check these ESMs."""

    uuids: tuple[str, ...]
    alarm_name: str
    metrics: tuple[str, ...]
    state: str
    reason: str
    time: str


def parse_metric_alarm(event: Any) -> AlarmSignal:
    """Parse a ``CloudWatch Alarm State Change`` event of an alarm on ESM metrics.

    The ESM UUID comes from the metric dimension ``EventSourceMappingUUID`` or, failing that, from the alarm name
    (infra names the alarms ``esm-medic-<uuid>-<metric>``)."""
    if not isinstance(event, Mapping):
        raise MalformedEvent(f"event must be an object, got {type(event).__name__}")
    source, detail_type, detail = envelope(event)
    if detail_type != ALARM_DETAIL_TYPE or source != "aws.cloudwatch":
        raise MalformedEvent(f"not a CloudWatch alarm state change (detail-type {detail_type or None!r})")
    if not isinstance(detail, Mapping):
        raise MalformedEvent("alarm event has no detail object")
    name = str(detail.get("alarmName") or "")
    state = str(get_path(detail, "state", "value") or "")
    if not name or not state:
        raise MalformedEvent("alarm event lacks detail.alarmName or detail.state.value")
    if state != "ALARM":
        raise IgnoredEvent(f"alarm {name} is {state}, not ALARM")
    uuids: list[str] = []
    metric_names: list[str] = []
    for m in get_path(detail, "configuration", "metrics") or []:
        metric = get_path(m, "metricStat", "metric")
        if not isinstance(metric, Mapping):
            continue
        if metric.get("name"):
            metric_names.append(str(metric["name"]))
        dims = metric.get("dimensions")
        if isinstance(dims, Mapping):
            u = str(dims.get("EventSourceMappingUUID") or dims.get("UUID") or "")
            if u and re.match(UUID_RE, u) and u not in uuids:
                uuids.append(u)
    if not uuids:
        found = UUID_IN_TEXT.search(name)
        if found:
            uuids.append(found.group(0))
    if not uuids:
        raise MalformedEvent(f"alarm {name} names no ESM (no EventSourceMappingUUID dimension, no UUID in its name)")
    return AlarmSignal(
        uuids=tuple(uuids),
        alarm_name=name,
        metrics=tuple(dict.fromkeys(metric_names)),
        state=state,
        reason=str(get_path(detail, "state", "reason") or "")[:512],
        time=str(event.get("time") or ""),
    )
