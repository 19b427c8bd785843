"""Time-shaped behaviour for Lambda event source mappings and Route 53 changes (see :mod:`.timing` for the knob).

moto gaps and what we do:

1. An ESM's ``State`` flips at once (``Enabled`` at create, ``Disabled`` / ``Enabled`` at update). AWS passes through
   a transitional state first. Each change now opens a window of :func:`timing.delay` seconds:

   ======================================  ==========================  ===========================
   call                                     State during the window     after it
   ======================================  ==========================  ===========================
   CreateEventSourceMapping                 ``Creating``                Enabled / Disabled
   UpdateEventSourceMapping(Enabled=True)   ``Enabling`` (if it was      Enabled
   on a disabled ESM                        disabled)
   UpdateEventSourceMapping(Enabled=False)  ``Disabling``               Disabled
   any other UpdateEventSourceMapping       ``Updating``                the state it had
   ======================================  ==========================  ===========================

   While a window is open, ``UpdateEventSourceMapping`` fails with ``ResourceInUseException`` (the API reference's
   example of that error: updating a mapping that is still ``Creating``). ``DeleteEventSourceMapping`` always
   answers ``State: Deleting``. An explicit ``set_esm_status(state=...)`` still wins over the window.
2. Route 53 answers every change (``ChangeResourceRecordSets``, ``CreateHostedZone``, ``DeleteHostedZone``,
   ``AssociateVPCWithHostedZone``, ``DisassociateVPCFromHostedZone``) with the same fixed change id and ``INSYNC``.
   Each change now gets its own id and is ``PENDING`` for the window, then ``INSYNC`` (``GetChange``); an unknown id
   raises ``NoSuchChange`` as AWS does.

With the delay at 0 every window is skipped and moto's instant behaviour is unchanged.
"""

from __future__ import annotations

import threading
import uuid as _uuid
from typing import Any

from esm_medic_sandbox import timing

_APPLIED = False
_LOCK = threading.Lock()
_WINDOW_ATTR = "_esm_medic_window"
_CHANGES: dict[str, timing.Window | None] = {}
_R53_CHANGE_CALLS = (
    "change_resource_record_sets",
    "create_hosted_zone",
    "delete_hosted_zone",
    "associate_vpc_with_hosted_zone",
    "disassociate_vpc_from_hosted_zone",
)


# ---------------------------------------------------------------------------------------------- ESM windows
def esm_window(esm: Any) -> timing.Window | None:
    """The open transitional window of a moto ESM object, or None."""
    return timing.active(getattr(esm, _WINDOW_ATTR, None))


def _open(esm: Any, state: str) -> None:
    window = timing.Window.start(state)
    setattr(esm, _WINDOW_ATTR, window)
    if window is not None:
        timing.register_deadline(window.until)


def _in_use(uuid: str, state: str) -> Exception:
    from esm_medic_sandbox.patch_lambda import _error

    return _error(
        "ResourceInUseException",
        f"Cannot update the event source mapping {uuid} while it is {state}: wait until the change is complete and "
        "try again.",
        400,
    )


def _patch_lambda() -> None:
    from moto.awslambda.models import EventSourceMapping, LambdaBackend

    from esm_medic_sandbox.patch_lambda import get_esm_status_override

    orig_get_configuration = EventSourceMapping.get_configuration
    orig_create = LambdaBackend.create_event_source_mapping
    orig_update = LambdaBackend.update_event_source_mapping
    orig_delete = LambdaBackend.delete_event_source_mapping

    def get_configuration(self: Any) -> dict[str, Any]:
        item: dict[str, Any] = orig_get_configuration(self)
        if getattr(self, "_esm_medic_deleting", False):
            item["State"] = "Deleting"
            return item
        window = esm_window(self)
        if window is not None and "State" not in get_esm_status_override(str(item.get("UUID", ""))):
            item["State"] = window.state
        return item

    def create_event_source_mapping(self: Any, spec: dict[str, Any]) -> Any:
        esm = orig_create(self, spec)
        _open(esm, "Creating")
        return esm

    def update_event_source_mapping(self: Any, uuid: str, spec: dict[str, Any]) -> Any:
        esm = self.get_event_source_mapping(uuid)
        window = esm_window(esm) if esm is not None else None
        if window is not None:
            raise _in_use(uuid, window.state)
        was_enabled = bool(getattr(esm, "enabled", True))
        result = orig_update(self, uuid, spec)
        if esm is not None:
            now_enabled = bool(getattr(esm, "enabled", True))
            if was_enabled and not now_enabled:
                _open(esm, "Disabling")
            elif now_enabled and not was_enabled:
                _open(esm, "Enabling")
            else:
                _open(esm, "Updating")
        return result

    def delete_event_source_mapping(self: Any, uuid: str) -> Any:
        esm: Any = orig_delete(self, uuid)
        if esm is not None:
            esm._esm_medic_deleting = True
        return esm

    EventSourceMapping.get_configuration = get_configuration  # type: ignore[method-assign]
    LambdaBackend.create_event_source_mapping = create_event_source_mapping  # type: ignore[method-assign]
    LambdaBackend.update_event_source_mapping = update_event_source_mapping  # type: ignore[method-assign]
    LambdaBackend.delete_event_source_mapping = delete_event_source_mapping  # type: ignore[method-assign]


# ---------------------------------------------------------------------------------------------- Route 53
def change_status(change_id: str) -> str | None:
    """PENDING / INSYNC for a change this sandbox made, None for an unknown id."""
    key = change_id.rsplit("/", 1)[-1]
    with _LOCK:
        if key not in _CHANGES:
            return None
        window = _CHANGES[key]
    return "PENDING" if timing.active(window) is not None else "INSYNC"


def _new_change() -> dict[str, Any]:
    key = "C" + _uuid.uuid4().hex[:13].upper()
    window = timing.Window.start("PENDING", "INSYNC")
    with _LOCK:
        _CHANGES[key] = window
    return {"Id": f"/change/{key}", "Status": "PENDING" if window is not None else "INSYNC"}


def _patch_route53() -> None:
    from moto.core.responses import ActionResult
    from moto.route53.exceptions import Route53ClientError
    from moto.route53.responses import Route53

    class NoSuchChange(Route53ClientError):
        def __init__(self, change_id: str) -> None:
            super().__init__("NoSuchChange", f"A change with the specified change ID does not exist: {change_id}")

    def with_change(original: Any) -> Any:
        def call(self: Any) -> Any:
            result = original(self)
            body = getattr(result, "result", None)
            if isinstance(result, ActionResult) and isinstance(body, dict) and isinstance(body.get("ChangeInfo"), dict):
                body["ChangeInfo"].update(_new_change())
            return result

        return call

    for name in _R53_CHANGE_CALLS:
        setattr(Route53, name, with_change(getattr(Route53, name)))

    def get_change(self: Any) -> Any:
        from moto.core.utils import utcnow

        change_id = str(self._get_param("Id") or "")
        status = change_status(change_id)
        if status is None:
            raise NoSuchChange(change_id)
        key = change_id.rsplit("/", 1)[-1]
        return ActionResult({"ChangeInfo": {"Id": f"/change/{key}", "Status": status, "SubmittedAt": utcnow()}})

    Route53.get_change = get_change  # type: ignore[method-assign]


def reset() -> None:
    with _LOCK:
        _CHANGES.clear()


def apply() -> None:
    """Apply after :mod:`.patch_lambda` (it wraps the Kafka-aware ESM calls)."""
    global _APPLIED
    with _LOCK:
        if _APPLIED:
            return
        _patch_lambda()
        _patch_route53()
        _APPLIED = True
