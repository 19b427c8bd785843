"""Lambda event source mapping (ESM) patches for the sandbox: Kafka ESMs, ESM status control, pagination.

moto gaps and what we do:

1. ``CreateEventSourceMapping`` accepts only SQS, DynamoDB Streams and Kinesis sources: an MSK cluster ARN fails
   with ``ResourceNotFoundException: Invalid EventSourceArn`` and ``SelfManagedEventSource`` with ``Missing
   EventSourceArn``. We add a Kafka branch: an ``EventSourceArn`` of an MSK cluster that exists in moto's Kafka
   backend (same account and region), or ``SelfManagedEventSource={"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS":
   [...]}}``. The request is validated like AWS does for Kafka (exactly one topic, ``StartingPosition`` required,
   ``BatchSize`` 1..10,000, known ``SourceAccessConfigurations`` types, ``host:port`` bootstrap servers, no
   duplicate mapping for the same source + function + topic) and every field is stored and returned verbatim,
   including ``LoggingConfig`` and ``StartingPositionTimestamp`` that moto drops.
   (The request rules are in :mod:`esm_medic_sandbox.lambda_kafka_rules`.)
2. ESM status is hard-coded by moto (``State`` Enabled/Disabled only, ``StateTransitionReason`` "User
   initiated", no ``LastProcessingResult``). Every ESM says ``USER_INITIATED`` as AWS does; Kafka ESMs get the
   documented healthy defaults
   (``StateTransitionReason="USER_INITIATED"``, ``LastProcessingResult="No records processed"``) and every ESM
   goes through this precedence, each time it is rendered (``get_configuration``: the responses of
   Create / Get / List / Update / Delete, and CloudFormation):

       explicit override (set_esm_status)  >  status provider (set_status_provider)  >  moto's value

   The provider is called with a copy of the ESM item as moto renders it (after the Kafka defaults, before any
   override; the same dict ``esm._esm_medic_raw_configuration()`` returns) and returns a dict with any of
   ``State``, ``StateTransitionReason``, ``LastProcessingResult`` (or None). It must be quick and must not call
   the Lambda API back; ``patches.find_esm(uuid).enabled`` is the user's Enabled flag. While the user has the
   ESM disabled (``Enabled=False``), a provider ``State`` of Enabled / Enabling / Creating is ignored, so the
   provider can never undo a user's disable. Any user ``UpdateEventSourceMapping`` clears an explicit
   ``State`` override (the other overridden fields stay), so ``Enabled=False`` always shows ``Disabled``.
3. ``ListEventSourceMappings`` ignores ``MaxItems`` / ``Marker``; we page like AWS (100 per page by default,
   ``MaxItems`` 1..10,000, ``NextMarker``). Its ``FunctionName`` filter compared the raw string given at create;
   we match by function name whether a name, a partial ARN or an ARN was used (and the qualifier when given).
4. ``UpdateEventSourceMapping`` / ``DeleteEventSourceMapping`` of an unknown UUID answered a bare 404 with no
   error code; they now raise ``ResourceNotFoundException`` like AWS.
5. CloudFormation ``AWS::Lambda::EventSourceMapping`` (Kafka ones included, through 1.) could not be deleted
   without an ``EventSourceArn`` (KeyError for self-managed Kafka); deletion now goes by the physical id (UUID).
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from esm_medic_sandbox.lambda_kafka_rules import (
    invalid,
    validate_access,
    validate_batch_size,
    validate_kafka_create,
    validate_poller,
)
from esm_medic_sandbox.lambda_kafka_rules import lambda_error as _error

log = logging.getLogger(__name__)

ESM_STATES = ("Creating", "Enabling", "Enabled", "Disabling", "Disabled", "Updating", "Deleting")
STATUS_FIELDS = ("State", "StateTransitionReason", "LastProcessingResult")
KAFKA_DEFAULT_REASON = "USER_INITIATED"
KAFKA_DEFAULT_RESULT = "No records processed"
LIST_DEFAULT_PAGE = 100
LIST_MAX_PAGE = 10000
#: extra create/update fields moto drops, kept verbatim on the ESM object
_EXTRA_FIELDS = ("LoggingConfig", "StartingPositionTimestamp")
StatusProvider = Callable[[dict[str, Any]], "Mapping[str, Any] | None"]

_LOCK = threading.RLock()
_OVERRIDES: dict[str, dict[str, Any]] = {}
_PROVIDER: StatusProvider | None = None
_APPLIED = False


# ---------------------------------------------------------------------------------------------- status API
def set_esm_status(
    uuid: str,
    *,
    state: str | None = None,
    reason: str | None = None,
    last_processing_result: str | None = None,
) -> None:
    """Override any of State / StateTransitionReason / LastProcessingResult of ESM ``uuid`` (None = leave as is).

    Overrides win over the status provider and over moto. They persist until :func:`clear_esm_status`, the ESM is
    deleted, or (for ``State`` only) the user updates the ESM.
    """
    if state is not None and state not in ESM_STATES:
        raise ValueError(f"invalid ESM State {state!r}; expected one of {', '.join(ESM_STATES)}")
    fields = {"State": state, "StateTransitionReason": reason, "LastProcessingResult": last_processing_result}
    with _LOCK:
        current = _OVERRIDES.setdefault(str(uuid), {})
        current.update({k: v for k, v in fields.items() if v is not None})


def clear_esm_status(uuid: str) -> None:
    """Drop every explicit override of ESM ``uuid`` (the provider / moto values show again)."""
    with _LOCK:
        _OVERRIDES.pop(str(uuid), None)


def get_esm_status_override(uuid: str) -> dict[str, Any]:
    """The explicit overrides currently set for ``uuid`` (a copy; {} when none)."""
    with _LOCK:
        return dict(_OVERRIDES.get(str(uuid), {}))


def set_status_provider(fn: StatusProvider | None) -> StatusProvider | None:
    """Install (or, with None, remove) the status provider; returns the previous one."""
    global _PROVIDER
    with _LOCK:
        previous, _PROVIDER = _PROVIDER, fn
    return previous


def get_status_provider() -> StatusProvider | None:
    with _LOCK:
        return _PROVIDER


def reset_status() -> None:
    """Forget every override and the provider (the sandbox does this when it starts and ends)."""
    global _PROVIDER
    with _LOCK:
        _OVERRIDES.clear()
        _PROVIDER = None


def _apply_status(esm: Any, item: dict[str, Any]) -> dict[str, Any]:
    uuid = str(item.get("UUID", ""))
    with _LOCK:
        override = dict(_OVERRIDES.get(uuid, {}))
        provider = _PROVIDER
    if provider is not None:
        try:
            provided = provider(dict(item))
        except Exception:  # a broken provider must not break the Lambda API
            log.exception("ESM status provider failed for %s", uuid)
            provided = None
        if isinstance(provided, Mapping):
            user_disabled = not getattr(esm, "enabled", True)
            for key in STATUS_FIELDS:
                value = provided.get(key)
                if value is None:
                    continue
                if key == "State" and user_disabled and value in ("Enabled", "Enabling", "Creating"):
                    continue
                item[key] = value
    item.update(override)
    return item


# ---------------------------------------------------------------------------------------------- helpers
def is_kafka_arn(arn: Any) -> bool:
    return isinstance(arn, str) and arn.startswith("arn:") and arn.split(":")[2:3] == ["kafka"]


def is_kafka_esm(esm: Any) -> bool:
    arn = getattr(esm, "_event_source_arn", None)
    return arn is None or is_kafka_arn(arn)


def _function_key(name_or_arn: str) -> tuple[str, str | None]:
    """(function name, qualifier or None) from a name, 'name:qual', a partial ARN or an ARN."""
    parts = name_or_arn.split(":")
    if "function" in parts:
        i = parts.index("function")
        name = parts[i + 1] if len(parts) > i + 1 else ""
        qual = parts[i + 2] if len(parts) > i + 2 else None
        return name, qual
    if len(parts) == 2:
        return parts[0], parts[1]
    return name_or_arn, None


def _source_key(esm: Any) -> tuple[Any, ...]:
    arn = getattr(esm, "_event_source_arn", None)
    if arn:
        source: Any = arn
    else:
        servers = ((esm.self_managed_event_source or {}).get("Endpoints") or {}).get("KAFKA_BOOTSTRAP_SERVERS") or []
        source = tuple(sorted(s.strip() for s in servers))
    return source, esm.function_arn, tuple(esm.topics or ())


def _create_kafka_esm(backend: Any, spec: dict[str, Any]) -> Any:
    from moto.awslambda.models import EventSourceMapping

    if not spec.get("FunctionName"):
        raise invalid("Missing FunctionName")
    validate_kafka_create(backend, spec)
    func = backend._lambdas.get_function_by_name_or_arn_with_qualifier(spec["FunctionName"])
    spec = dict(spec)
    spec.setdefault("EventSourceArn", None)
    spec.update({"RegionName": backend.region_name, "AccountId": backend.account_id})
    spec["FunctionArn"] = func.function_arn
    esm: Any = EventSourceMapping(spec)  # type: ignore[abstract]
    esm._esm_medic_extra = {k: spec[k] for k in _EXTRA_FIELDS if spec.get(k) is not None}
    key = _source_key(esm)
    with _LOCK:
        for other in backend._event_source_mappings.values():
            if is_kafka_esm(other) and _source_key(other) == key:
                source = key[0] if isinstance(key[0], str) else ",".join(key[0])
                raise _error(
                    "ResourceConflictException",
                    f'An event source mapping with event source ("{source}"), function ("{esm.function_arn}"), '
                    f'topics ("{",".join(key[2])}") already exists. Please update or delete the existing mapping '
                    f"with UUID {other.uuid}",
                    409,
                )
        backend._event_source_mappings[esm.uuid] = esm
    return esm


# ---------------------------------------------------------------------------------------------- patches
def _patch_model() -> None:
    from moto.awslambda.models import EventSourceMapping

    orig_service = EventSourceMapping._get_service_source_from_arn
    orig_arn_prop: Any = EventSourceMapping.__dict__["event_source_arn"]  # the property objects themselves
    orig_batch_prop: Any = EventSourceMapping.__dict__["batch_size"]
    orig_get_configuration = EventSourceMapping.get_configuration

    def _get_service_source_from_arn(self: Any, event_source_arn: str | None = None) -> str:
        arn = event_source_arn or getattr(self, "_event_source_arn", None)
        if arn is None or is_kafka_arn(arn):
            return "kafka"
        return str(orig_service(self, arn))

    def _set_arn(self: Any, arn: str | None) -> None:
        if arn is None or is_kafka_arn(arn):
            self._event_source_arn = arn
            return
        orig_arn_prop.fset(self, arn)

    def _set_batch(self: Any, value: int | None) -> None:
        if self._get_service_source_from_arn() == "kafka":
            validate_batch_size(value)
            self._batch_size = 100 if value is None else int(value)
            return
        orig_batch_prop.fset(self, value)

    def raw_configuration(self: Any) -> dict[str, Any]:
        """moto's item plus the Kafka defaults / extra fields, before the provider and the overrides."""
        item: dict[str, Any] = orig_get_configuration(self)
        if item.get("StateTransitionReason") == "User initiated":  # AWS writes the code, for every source
            item["StateTransitionReason"] = KAFKA_DEFAULT_REASON
        if is_kafka_esm(self):
            item.setdefault("StateTransitionReason", KAFKA_DEFAULT_REASON)
            item.setdefault("LastProcessingResult", KAFKA_DEFAULT_RESULT)
            item.update(getattr(self, "_esm_medic_extra", None) or {})
        return item

    def get_configuration(self: Any) -> dict[str, Any]:
        return _apply_status(self, raw_configuration(self))

    def delete_from_cloudformation_json(
        cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
    ) -> None:
        from moto.awslambda.utils import get_backend

        backend = get_backend(account_id, region_name)
        if backend.get_event_source_mapping(resource_name) is not None:  # the physical id is the UUID
            backend.delete_event_source_mapping(resource_name)

    EventSourceMapping.delete_from_cloudformation_json = classmethod(delete_from_cloudformation_json)  # type: ignore[method-assign,assignment]
    EventSourceMapping._get_service_source_from_arn = _get_service_source_from_arn  # type: ignore[method-assign]
    EventSourceMapping.event_source_arn = property(orig_arn_prop.fget, _set_arn)  # type: ignore[method-assign,assignment]
    EventSourceMapping.batch_size = property(orig_batch_prop.fget, _set_batch)  # type: ignore[method-assign,assignment]
    EventSourceMapping.get_configuration = get_configuration  # type: ignore[method-assign]
    EventSourceMapping._esm_medic_raw_configuration = raw_configuration  # type: ignore[attr-defined]


def _patch_backend() -> None:
    from moto.awslambda.models import LambdaBackend

    orig_create = LambdaBackend.create_event_source_mapping
    orig_update = LambdaBackend.update_event_source_mapping
    orig_delete = LambdaBackend.delete_event_source_mapping

    def create_event_source_mapping(self: Any, spec: dict[str, Any]) -> Any:
        if is_kafka_arn(spec.get("EventSourceArn")) or (
            spec.get("SelfManagedEventSource") and not spec.get("EventSourceArn")
        ):
            return _create_kafka_esm(self, spec)
        return orig_create(self, spec)

    def update_event_source_mapping(self: Any, uuid: str, spec: dict[str, Any]) -> Any:
        esm = self.get_event_source_mapping(uuid)
        if esm is None:
            raise _error("ResourceNotFoundException", f"The resource you requested does not exist. (UUID {uuid})", 404)
        if is_kafka_esm(esm):
            validate_batch_size(spec.get("BatchSize"))
            validate_access(spec.get("SourceAccessConfigurations"))
            validate_poller(spec.get("ProvisionedPollerConfig"))
        result = orig_update(self, uuid, spec)
        if is_kafka_esm(esm):
            if "AmazonManagedKafkaEventSourceConfig" in spec:
                esm.kafka_config = spec["AmazonManagedKafkaEventSourceConfig"]
            if "SelfManagedKafkaEventSourceConfig" in spec:
                esm.self_managed_kafka_event_source_config = spec["SelfManagedKafkaEventSourceConfig"]
            extra = getattr(esm, "_esm_medic_extra", None)
            if extra is None:
                extra = esm._esm_medic_extra = {}
            for key in _EXTRA_FIELDS:
                if key in spec:
                    extra[key] = spec[key]
        with _LOCK:  # a user update ends any explicit State override
            over = _OVERRIDES.get(str(uuid))
            if over is not None:
                over.pop("State", None)
        return result

    def delete_event_source_mapping(self: Any, uuid: str) -> Any:
        esm = orig_delete(self, uuid)
        if esm is None:
            raise _error("ResourceNotFoundException", f"The resource you requested does not exist. (UUID {uuid})", 404)
        clear_esm_status(uuid)
        return esm

    def list_event_source_mappings(self: Any, event_source_arn: str | None, function_name: str | None) -> list[Any]:
        esms = list(self._event_source_mappings.values())
        if event_source_arn:
            esms = [e for e in esms if getattr(e, "_event_source_arn", None) == event_source_arn]
        if function_name:
            want_name, want_qual = _function_key(function_name)
            kept = []
            for e in esms:
                name, qual = _function_key(e.function_arn)
                if name == want_name and (want_qual is None or want_qual == qual):
                    kept.append(e)
            esms = kept
        return esms

    LambdaBackend.create_event_source_mapping = create_event_source_mapping  # type: ignore[method-assign]
    LambdaBackend.update_event_source_mapping = update_event_source_mapping  # type: ignore[method-assign]
    LambdaBackend.delete_event_source_mapping = delete_event_source_mapping  # type: ignore[method-assign]
    LambdaBackend.list_event_source_mappings = list_event_source_mappings  # type: ignore[method-assign]


def _encode_marker(offset: int) -> str:
    return base64.urlsafe_b64encode(f"esm-medic:{offset}".encode()).decode()


def _decode_marker(marker: str) -> int:
    try:
        text = base64.urlsafe_b64decode(marker.encode()).decode()
        prefix, _, num = text.partition(":")
        if prefix != "esm-medic" or not num.isdigit():
            raise ValueError(marker)
        return int(num)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid(f"Invalid Marker {marker!r}.") from exc


def _patch_responses() -> None:
    import json

    from moto.awslambda.responses import LambdaResponse

    def list_event_source_mappings(self: Any) -> str:
        event_source_arn = self.querystring.get("EventSourceArn", [None])[0]
        function_name = self.querystring.get("FunctionName", [None])[0]
        marker = self.querystring.get("Marker", [None])[0]
        max_items_raw = self.querystring.get("MaxItems", [None])[0]
        limit = LIST_DEFAULT_PAGE
        if max_items_raw is not None:
            try:
                limit = int(max_items_raw)
            except ValueError as exc:
                raise invalid(f"Invalid MaxItems {max_items_raw!r}.") from exc
            if not 1 <= limit <= LIST_MAX_PAGE:
                raise invalid(f"MaxItems {limit} is out of range 1..{LIST_MAX_PAGE}.")
        start = _decode_marker(marker) if marker else 0
        esms = list(self.backend.list_event_source_mappings(event_source_arn, function_name))
        page = esms[start : start + limit]
        result: dict[str, Any] = {"EventSourceMappings": [esm.get_configuration() for esm in page]}
        if start + limit < len(esms):
            result["NextMarker"] = _encode_marker(start + limit)
        return json.dumps(result)

    LambdaResponse.list_event_source_mappings = list_event_source_mappings  # type: ignore[method-assign]


def find_esm(uuid: str) -> Any | None:
    """The moto EventSourceMapping with this UUID in any account / region / Lambda backend, or None."""
    from moto.awslambda.models import lambda_backends
    from moto.awslambda_simple.models import lambda_simple_backends

    for backends in (lambda_simple_backends, lambda_backends):
        for account_id in list(backends.keys()):
            for region in list(backends[account_id].keys()):
                esm = backends[account_id][region]._event_source_mappings.get(uuid)
                if esm is not None:
                    return esm
    return None


def apply() -> None:
    global _APPLIED
    with _LOCK:
        if _APPLIED:
            return
        _patch_model()
        _patch_backend()
        _patch_responses()
        _APPLIED = True
