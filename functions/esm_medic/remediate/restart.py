"""Restarting an ESM's polling after a fix: disable, wait (bounded) for Disabled, enable again."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from esm_medic.aws import Aws, error_code, error_message
from esm_medic.config import Settings
from esm_medic.remediate.prepare import (
    _get_esm,
    _settings,
)


def restart_esm(
    aws: Aws,
    uuid: str,
    *,
    settings: Settings | None = None,
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Disable the ESM, wait (bounded) until it is Disabled, enable it again. Leaves an ESM its owner disabled
    alone. Returns ``{"uuid", "restarted": bool, "initial_state", "final_state", "states": [...], "reason"}``."""
    settings = _settings(settings)
    wait = sleep or time.sleep
    out: dict[str, Any] = {"uuid": uuid, "restarted": False, "initial_state": "", "final_state": "", "states": []}
    item, note = _get_esm(aws, uuid)
    if item is None:
        out["reason"] = note
        return out
    state = str(item.get("State") or "")
    out["initial_state"] = out["final_state"] = state
    if state in ("Disabled", "Disabling"):
        out["reason"] = "the ESM is disabled by its owner; left disabled"
        return out
    if state in ("Creating", "Deleting"):
        out["reason"] = f"the ESM is {state}; not restarted"
        return out
    deadline = clock() + float(settings.restart_timeout_seconds)

    def update(enabled: bool) -> str:
        while True:
            try:
                aws.call("lambda", "update_event_source_mapping", UUID=uuid, Enabled=enabled)
                return ""
            except Exception as exc:
                if error_code(exc) == "ResourceInUseException" and clock() < deadline:
                    wait(settings.poll_seconds)
                    continue
                return f"{error_code(exc) or type(exc).__name__}: {error_message(exc)}"

    err = update(False)
    if err:
        out["reason"] = f"cannot disable: {err}"
        return out
    while True:
        current, _ = _get_esm(aws, uuid)
        state = str((current or {}).get("State") or "")
        out["states"].append(state)
        if state == "Disabled" or clock() >= deadline:
            break
        wait(settings.poll_seconds)
    timed_out = state != "Disabled"
    err = update(True)
    current, _ = _get_esm(aws, uuid)
    out["final_state"] = str((current or {}).get("State") or "")
    if err:
        out["reason"] = f"disabled but could not enable again: {err} (enable it by hand)"
        return out
    out["restarted"] = not timed_out
    out["reason"] = "did not reach Disabled in time; re-enabled" if timed_out else "disabled and enabled again"
    return out
