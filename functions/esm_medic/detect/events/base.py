"""What every detection event kind shares: names, limits, the rejection errors, the EventBridge envelope, the
rule patterns and small accessors for loosely shaped records."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SOURCE = "esm-medic"
DETAIL_TYPE = "ESM Status Change"
DETAIL_VERSION = 1
CLOUDTRAIL_DETAIL_TYPE = "AWS API Call via CloudTrail"
ALARM_DETAIL_TYPE = "CloudWatch Alarm State Change"
TRIGGERS = ("sweep", "watch", "cloudtrail", "esm-log")
PHASES = ("suspected", "confirmed")
PUT_EVENTS_MAX = 10  # PutEvents entries per call (API limit)
MAX_TEXT = 4096

PATTERNS_DIR = Path(__file__).resolve().parent.parent / "patterns"
#: rule name -> pattern file (one EventBridge pattern per rule; deployed by infra)
PATTERN_FILES = {
    "esm-status-error": "esm-status-error.json",
    "esm-api-change": "esm-api-change.json",
    "esm-role-access-denied": "esm-role-access-denied.json",
    "esm-metric-alarm": "esm-metric-alarm.json",
}

UUID_RE = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
UUID_IN_TEXT = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class EventRejected(ValueError):
    """An input event esm-medic will not act on; ``reason`` says why in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MalformedEvent(EventRejected):
    """The event does not have the shape it must have."""


class IgnoredEvent(EventRejected):
    """The event is well formed but not one esm-medic acts on (another source kind, a failed call, ...)."""


def as_object(event: Any) -> Mapping[str, Any]:
    """``event`` as a mapping (JSON text is decoded); raises MalformedEvent otherwise."""
    if isinstance(event, str | bytes | bytearray):
        try:
            event = json.loads(event)
        except ValueError as exc:
            raise MalformedEvent(f"not JSON: {exc}") from None
    if not isinstance(event, Mapping):
        raise MalformedEvent(f"event must be an object, got {type(event).__name__}")
    return event


def is_envelope(event: Mapping[str, Any]) -> bool:
    """True when ``event`` looks like an EventBridge event rather than a bare detail."""
    return "detail" in event or "detail-type" in event or "source" in event


def envelope(event: Mapping[str, Any]) -> tuple[str, str, Any]:
    """(source, detail-type, detail) of an EventBridge event, read through Powertools' ``EventBridgeEvent``; a
    missing field reads as "" (detail: None) so the caller can say which one is wrong."""
    # imported here: the data_classes package costs ~38 ms at import, and only the event paths need it
    from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent

    eb = EventBridgeEvent(dict(event))
    try:
        source = eb.source
    except KeyError:
        source = ""
    try:
        detail_type = eb.detail_type
    except KeyError:
        detail_type = ""
    try:
        detail = eb.detail
    except KeyError:
        detail = None
    return str(source or ""), str(detail_type or ""), detail


def load_pattern(name: str) -> dict[str, Any]:
    """The EventBridge pattern of rule ``name`` (a key of PATTERN_FILES, with or without ``.json``)."""
    key = name.removesuffix(".json")
    if key not in PATTERN_FILES:
        raise KeyError(f"no pattern {name!r}; known: {', '.join(PATTERN_FILES)}")
    data: dict[str, Any] = json.loads((PATTERNS_DIR / PATTERN_FILES[key]).read_text(encoding="utf-8"))
    return data


def get_path(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def mapping(obj: Any) -> Mapping[str, Any]:
    return obj if isinstance(obj, Mapping) else {}


def first(obj: Mapping[str, Any] | None, *keys: str) -> str:
    """The first non-empty string among ``keys`` of ``obj`` ("" when none)."""
    if not isinstance(obj, Mapping):
        return ""
    for k in keys:
        v = obj.get(k)
        if isinstance(v, str) and v:
            return v
    return ""
