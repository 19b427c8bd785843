"""EventBridge patches for the sandbox.

moto gaps and what we do:

1. A matching event for a rule with a Step Functions or a Lambda target raises ``NotImplementedError`` in
   ``Rule.send_to_targets`` (only SQS, Logs, archives, event buses and API destinations exist). We deliver:

   - ``arn:aws:states:...:stateMachine:...`` -> ``StartExecution`` on the Step Functions backend that executes
     when ``execute_state_machine`` is on (moto's parser backend), with a fresh UUID as the execution ``name``;
   - ``arn:aws:lambda:...:function:...`` -> a synchronous ``Invoke`` through moto's Lambda backend (so the
     in-process handlers of :mod:`esm_medic_sandbox.inproc` run). AWS invokes asynchronously; synchronous is
     deterministic for tests.

   The target input follows AWS: ``Input`` (constant JSON) > ``InputPath`` (JSONPath into the event) >
   ``InputTransformer`` > the whole event. The delivered event has its ``time`` as an ISO-8601 string, like AWS,
   and no moto-internal ``ingestion-time``. ``InputTransformer`` is context-aware like AWS: in a JSON template a
   placeholder outside quotes is replaced by the JSON value (strings quoted), inside quotes by the bare text; in a
   plain-text template by the bare text. Predefined placeholders ``<aws.events.rule-arn>``,
   ``<aws.events.rule-name>``, ``<aws.events.event.ingestion-time>``, ``<aws.events.event>`` and
   ``<aws.events.event.json>`` work. Missing paths give ``null`` (empty text inside quotes).

   Delivery failures never break ``PutEvents`` (as in AWS, where they only count as FailedInvocations): they are
   logged and kept in :data:`DELIVERY_ERRORS` (last 100) for tests to inspect. Other target types go to moto.
2. Rules in state ``DISABLED`` still delivered events; they no longer do.
3. ``TestEventPattern`` answered an empty body; it now answers ``{"Result": true|false}`` using moto's own
   matcher (the same one ``PutEvents`` uses).
4. A pattern on a field inside an *array of objects* (``{"items": {"groupId": ["sg-1"]}}`` against
   ``"items": [{"groupId": "sg-2"}, {"groupId": "sg-1"}]``) never matched; AWS flattens such arrays (the field
   matches if any element's value matches). We replace moto's event flattening with one that does the same,
   for PutEvents and TestEventPattern alike (CloudTrail events carry such arrays, e.g. ``ipPermissions.items``).
"""

from __future__ import annotations

import copy
import json
import logging
import re
import threading
import uuid
from collections import deque
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)

#: recent delivery failures: dicts with rule, target, error
DELIVERY_ERRORS: deque[dict[str, Any]] = deque(maxlen=100)
#: recent successful deliveries: dicts with rule, target, kind, and executionArn / status code
DELIVERIES: deque[dict[str, Any]] = deque(maxlen=100)

_APPLIED = False
_LOCK = threading.Lock()
_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.\-]+)>")


# ---------------------------------------------------------------------------------------------- matching
def flatten_event(node: Any, prefix: str = "", result: dict[str, Any] | None = None) -> dict[str, Any]:
    """``{"a": {"b": 1}, "l": [{"c": 1}, {"c": 2}]}`` -> ``{"a.b": 1, "l.c": [1, 2]}`` (AWS's flattening)."""
    if result is None:
        result = {}
    if isinstance(node, dict):
        for k, v in node.items():
            _flatten_value(v, f"{prefix}.{k}" if prefix else str(k), result)
    return result


def _flatten_value(value: Any, key: str, result: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten_value(v, f"{key}.{k}", result)
    elif isinstance(value, list) and any(isinstance(x, (dict, list)) for x in value):
        for element in value:
            sub: dict[str, Any] = {}
            _flatten_value(element, key, sub)
            for sub_key, sub_value in sub.items():
                merged = result.get(sub_key, [])
                merged = merged if isinstance(merged, list) else [merged]
                merged.extend(sub_value if isinstance(sub_value, list) else [sub_value])
                result[sub_key] = merged
    else:
        result[key] = value


# ---------------------------------------------------------------------------------------------- input
def delivered_event(event: dict[str, Any]) -> dict[str, Any]:
    """The event as AWS hands it to a target: ISO time, no moto-internal keys."""
    out = {k: v for k, v in event.items() if k not in ("ingestion-time",)}
    t = out.get("time")
    if isinstance(t, (int, float)):
        out["time"] = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    elif isinstance(t, datetime):
        out["time"] = t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return out


def _json_path(event: Any, path: str) -> Any:
    if path in ("$", ""):
        return event
    from jsonpath_ng.ext import parse

    matches = parse(path).find(event)
    if not matches:
        return None
    return matches[0].value


def render_template(template: str, values: dict[str, Any]) -> str:
    """Replace ``<name>`` placeholders the way EventBridge's InputTransformer does (see module docstring)."""
    json_mode = template.lstrip()[:1] in ("{", "[", '"')
    out: list[str] = []
    in_string = False
    i = 0
    while i < len(template):
        ch = template[i]
        if json_mode and in_string and ch == "\\" and i + 1 < len(template):
            out.append(template[i : i + 2])
            i += 2
            continue
        if json_mode and ch == '"':
            in_string = not in_string
            out.append(ch)
            i += 1
            continue
        if ch == "<":
            m = _PLACEHOLDER.match(template, i)
            if m and m.group(1) in values:
                value = values[m.group(1)]
                if json_mode and not in_string:
                    out.append(json.dumps(value))
                else:
                    text = "" if value is None else value if isinstance(value, str) else json.dumps(value)
                    out.append(json.dumps(text)[1:-1] if json_mode else text)
                i = m.end()
                continue
        out.append(ch)
        i += 1
    return "".join(out)


def target_input(rule: Any, target: dict[str, Any], event: dict[str, Any]) -> str:
    """The JSON text a target receives for ``event`` (already in delivered form)."""
    if target.get("Input") is not None:
        return str(target["Input"])
    if target.get("InputPath"):
        return json.dumps(_json_path(event, str(target["InputPath"])))
    transformer = target.get("InputTransformer")
    if transformer:
        values: dict[str, Any] = {
            name: _json_path(event, str(path)) for name, path in (transformer.get("InputPathsMap") or {}).items()
        }
        values.setdefault("aws.events.rule-arn", rule.arn)
        values.setdefault("aws.events.rule-name", rule.name)
        values.setdefault("aws.events.event.ingestion-time", event.get("time"))
        values.setdefault("aws.events.event", event)
        values.setdefault("aws.events.event.json", event)
        template = str(transformer.get("InputTemplate") or "")
        text = render_template(template, values)
        if template.lstrip()[:1] in ("{", "[", '"'):
            json.loads(text)  # invalid JSON is a delivery failure, as in AWS
            return text
        return json.dumps(text)
    return json.dumps(event)


# ---------------------------------------------------------------------------------------------- delivery
def _deliver_states(arn: str, payload: str) -> dict[str, Any]:
    from moto.stepfunctions.responses import get_backend

    parts = arn.split(":")
    region, account = parts[3], parts[4]
    execution = get_backend(account, region).start_execution(arn, name=str(uuid.uuid4()), execution_input=payload)
    return {"executionArn": execution.execution_arn}


def _deliver_lambda(arn: str, payload: str) -> dict[str, Any]:
    from moto.awslambda.utils import get_backend

    parts = arn.split(":")
    region, account = parts[3], parts[4]
    name = parts[6]
    qualifier = parts[7] if len(parts) > 7 else None
    response_headers: dict[str, Any] = {}
    get_backend(account, region).invoke(name, qualifier, payload, {"x-amz-invocation-type": "Event"}, response_headers)
    return {"functionError": response_headers.get("x-amz-function-error")}


def _our_kind(target: dict[str, Any]) -> str | None:
    parts = str(target.get("Arn", "")).split(":")
    if len(parts) > 5 and parts[2] == "states" and parts[5] == "stateMachine":
        return "states"
    if len(parts) > 6 and parts[2] == "lambda" and parts[5] == "function":
        return "lambda"
    return None


def deliver(rule: Any, target: dict[str, Any], original_event: dict[str, Any], transform_input: bool = True) -> None:
    kind = _our_kind(target)
    record: dict[str, Any] = {"rule": rule.name, "target": target.get("Id"), "arn": target.get("Arn"), "kind": kind}
    try:
        event = delivered_event(original_event)
        payload = target_input(rule, target, event) if transform_input else json.dumps(event)
        if kind == "states":
            record.update(_deliver_states(str(target["Arn"]), payload))
        else:
            record.update(_deliver_lambda(str(target["Arn"]), payload))
        DELIVERIES.append(record)
    except Exception as exc:  # AWS never fails PutEvents for a target failure
        log.warning("EventBridge delivery to %s failed: %s", target.get("Arn"), exc)
        DELIVERY_ERRORS.append({**record, "error": f"{type(exc).__name__}: {exc}"})


# ---------------------------------------------------------------------------------------------- apply
def apply() -> None:
    global _APPLIED
    with _LOCK:
        if _APPLIED:
            return
        from moto.events.models import EventPattern, Rule
        from moto.events.responses import EventsHandler

        orig_send = Rule.send_to_targets

        def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
            if str(getattr(self, "state", "ENABLED")).upper() == "DISABLED":
                return
            if not self.event_pattern.matches_event(original_event):
                return
            ours = [t for t in self.targets if _our_kind(t)]
            others = [t for t in self.targets if not _our_kind(t)]
            if others:
                proxy = copy.copy(self)
                proxy.targets = others
                orig_send(proxy, original_event, transform_input)
            for target in ours:
                deliver(self, target, original_event, transform_input)

        def test_event_pattern(self: Any) -> str:
            from moto.events.exceptions import InvalidEventPatternException

            try:
                event = json.loads(self._get_param("Event") or "")
            except json.JSONDecodeError as exc:
                raise InvalidEventPatternException(reason=f"Event is not valid JSON: {exc}") from exc
            pattern = EventPattern.load(self._get_param("EventPattern"))
            return json.dumps({"Result": bool(pattern.matches_event(event))})

        EventPattern._flatten_dict = staticmethod(flatten_event)  # type: ignore[method-assign]
        Rule.send_to_targets = send_to_targets  # type: ignore[method-assign]
        EventsHandler.test_event_pattern = test_event_pattern  # type: ignore[method-assign,assignment]
        _APPLIED = True
