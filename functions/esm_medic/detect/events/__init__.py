"""Events in and out of detection, one module per event kind.

- :mod:`.status`: the ``ESM Status Change`` event esm-medic puts on the bus (build / validate / parse);
- :mod:`.publish`: PutEvents with bounded retry of failed entries;
- :mod:`.cloudtrail`: CloudTrail records, ESM create/update (rule 2);
- :mod:`.denial`: calls refused to an ESM execution role (rule 3) and their report as status changes;
- :mod:`.alarm`: CloudWatch alarm state changes on ESM metrics (rule 4);
- :mod:`.esm_log`: ESM system-log records (``ESM_PROCESSING_EVENT`` / ``POLLER_STATUS_EVENT``) from a CloudWatch
  Logs subscription;
- :mod:`.base`: the names, errors, EventBridge envelope and rule patterns they share.

Every parser raises :class:`MalformedEvent` (bad shape) or :class:`IgnoredEvent` (well formed, not for us) with a
one-line reason; handlers log the reason and return a clean result. The access-denial names are loaded on first
use (they pull in the classifier and the catalogue, ~100 ms at import) so the workflow's parser stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from esm_medic.detect.events.alarm import AlarmSignal, parse_metric_alarm
from esm_medic.detect.events.base import (
    ALARM_DETAIL_TYPE,
    CLOUDTRAIL_DETAIL_TYPE,
    DETAIL_TYPE,
    DETAIL_VERSION,
    PATTERN_FILES,
    PATTERNS_DIR,
    PHASES,
    SOURCE,
    TRIGGERS,
    EventRejected,
    IgnoredEvent,
    MalformedEvent,
    load_pattern,
)
from esm_medic.detect.events.cloudtrail import EsmApiChange, cloudtrail_record, parse_api_change
from esm_medic.detect.events.publish import EventPublisher, PutResult, put_entry
from esm_medic.detect.events.status import (
    STATUS_CHANGE_SCHEMA,
    StatusChange,
    build_status_change,
    parse_status_change,
    validate_detail,
)

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.detect.events.denial import (
        DENIAL_CALLS,
        AccessDenial,
        DenialReport,
        clear_role_cache,
        esms_for_role,
        is_denial_code,
        parse_access_denial,
        report_access_denial,
    )

_LAZY = dict.fromkeys(
    (
        "DENIAL_CALLS",
        "AccessDenial",
        "DenialReport",
        "_role_key",
        "clear_role_cache",
        "esms_for_role",
        "is_denial_code",
        "parse_access_denial",
        "report_access_denial",
    ),
    "esm_medic.detect.events.denial",
)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "ALARM_DETAIL_TYPE",
    "CLOUDTRAIL_DETAIL_TYPE",
    "DENIAL_CALLS",
    "DETAIL_TYPE",
    "DETAIL_VERSION",
    "PATTERNS_DIR",
    "PATTERN_FILES",
    "PHASES",
    "SOURCE",
    "STATUS_CHANGE_SCHEMA",
    "TRIGGERS",
    "AccessDenial",
    "AlarmSignal",
    "DenialReport",
    "EsmApiChange",
    "EventPublisher",
    "EventRejected",
    "IgnoredEvent",
    "MalformedEvent",
    "PutResult",
    "StatusChange",
    "build_status_change",
    "clear_role_cache",
    "cloudtrail_record",
    "esms_for_role",
    "is_denial_code",
    "load_pattern",
    "parse_access_denial",
    "parse_api_change",
    "parse_metric_alarm",
    "parse_status_change",
    "put_entry",
    "report_access_denial",
    "validate_detail",
]
