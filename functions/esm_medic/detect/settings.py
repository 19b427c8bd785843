"""The sweep's knobs, read from the Lambda environment (``ESM_MEDIC_SWEEP_*``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def env_int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {raw!r}")
    return value


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, got {raw!r}")


@dataclass(frozen=True)
class SweepSettings:
    """Knobs of the sweep; :meth:`from_env` reads them from the Lambda environment."""

    hold_seconds: int = 120  # ESM_MEDIC_SWEEP_HOLD_SECONDS: a new status must hold this long before it is emitted
    interval_seconds: int = 60  # ESM_MEDIC_SWEEP_INTERVAL_SECONDS: the schedule (used to pace the GC)
    gc_every_seconds: int = 0  # ESM_MEDIC_SWEEP_GC_SECONDS: forget deleted ESMs this often (0: every full sweep)
    event_bus: str = "default"  # ESM_MEDIC_EVENT_BUS
    confirm_with_get: bool = True  # ESM_MEDIC_SWEEP_CONFIRM: one Get before emitting a transition
    workers: int = 8  # ESM_MEDIC_SWEEP_WORKERS: threads for the conditional writes and confirming Gets
    page_size: int = 100  # ListEventSourceMappings MaxItems (AWS returns at most 100 per page anyway)
    put_attempts: int = 3  # PutEvents attempts for entries that come back failed
    outbox_grace_seconds: int = 300  # an undelivered outbox older than this is re-sent by a later sweep
    deadline_margin_seconds: float = 10.0  # stop this long before the Lambda timeout
    table: str = ""  # STATE table name ("" = tables.STATE.name)
    early_emit: bool = True  # ESM_MEDIC_SWEEP_EARLY_EMIT: emit a new error at once as "suspected" (see decide)
    pass_seconds: int = 15  # ESM_MEDIC_SWEEP_PASS_SECONDS: re-sweep this often inside one invocation (0: once)
    pass_budget_calls: int = 20  # ESM_MEDIC_SWEEP_PASS_BUDGET: list calls an invocation may spend on extra passes
    log_destination_arn: str = ""  # ESM_MEDIC_ESM_LOGS_DESTINATION_ARN: subscribe ESM log groups to it (per group)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> SweepSettings:
        e = os.environ if env is None else env
        values: dict[str, Any] = {
            "hold_seconds": env_int(e, "ESM_MEDIC_SWEEP_HOLD_SECONDS", cls.hold_seconds),
            "interval_seconds": env_int(e, "ESM_MEDIC_SWEEP_INTERVAL_SECONDS", cls.interval_seconds, 1),
            "gc_every_seconds": env_int(e, "ESM_MEDIC_SWEEP_GC_SECONDS", cls.gc_every_seconds),
            "event_bus": (e.get("ESM_MEDIC_EVENT_BUS") or "").strip() or cls.event_bus,
            "confirm_with_get": env_bool(e, "ESM_MEDIC_SWEEP_CONFIRM", cls.confirm_with_get),
            "workers": env_int(e, "ESM_MEDIC_SWEEP_WORKERS", cls.workers, 1),
            "early_emit": env_bool(e, "ESM_MEDIC_SWEEP_EARLY_EMIT", cls.early_emit),
            "pass_seconds": env_int(e, "ESM_MEDIC_SWEEP_PASS_SECONDS", cls.pass_seconds),
            "pass_budget_calls": env_int(e, "ESM_MEDIC_SWEEP_PASS_BUDGET", cls.pass_budget_calls),
            "log_destination_arn": (e.get("ESM_MEDIC_ESM_LOGS_DESTINATION_ARN") or "").strip(),
        }
        values.update(overrides)
        return cls(**values)
