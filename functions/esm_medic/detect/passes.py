"""Several sweeps inside one scheduled invocation, while the fleet is small enough for it to be cheap.

The schedule runs once a minute (``interval_seconds``). Within that minute the sweeper may sweep again every
``pass_seconds`` (default 15 s: up to 4 passes) as long as the extra passes' ListEventSourceMappings calls stay
within ``pass_budget_calls`` per invocation (default 20). One pass costs ceil(N / 100) list calls for N ESMs in the
region, so the default gives 4 passes up to 600 ESMs, 3 up to 1,000, 2 up to 2,000 and a single pass beyond; an
unchanged pass makes no write (the digest vouches for every ESM), so the extra cost is those list calls and one
digest Query per pass. ``bench/bench_latency.py`` measures the effect on detection time and on API calls.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from esm_medic.detect.settings import SweepSettings
from esm_medic.detect.sweeper import SweepResult, sweep

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws


def planned_passes(listed: int, settings: SweepSettings) -> int:
    """How many passes an invocation makes for a fleet of ``listed`` ESMs (at least 1)."""
    if settings.pass_seconds <= 0 or settings.pass_seconds >= settings.interval_seconds:
        return 1
    by_time = max(1, settings.interval_seconds // settings.pass_seconds)
    pages = max(1, math.ceil(listed / max(1, settings.page_size)))
    by_budget = 1 + settings.pass_budget_calls // pages
    return max(1, min(by_time, by_budget))


@dataclass
class PassesResult:
    passes: list[SweepResult] = field(default_factory=list)
    planned: int = 1

    @property
    def last(self) -> SweepResult:
        return self.passes[-1]

    def summary(self) -> dict[str, Any]:
        """The last pass's summary with the totals of every pass."""
        out = self.last.summary()
        for key in ("emitted", "recovered", "suppressed_flaps", "conflicts", "failed_events", "writes"):
            out[key] = sum(int(getattr(p, key)) for p in self.passes)
        calls: dict[str, int] = {}
        for p in self.passes:
            for k, v in p.calls.items():
                calls[k] = calls.get(k, 0) + v
        out["calls"] = calls
        out["transitions"] = sum(len(p.transitions) for p in self.passes)
        out["passes"] = len(self.passes)
        out["planned_passes"] = self.planned
        return out


def sweep_passes(
    aws: Aws,
    *,
    settings: SweepSettings,
    deadline: float | None = None,
    force_gc: bool = False,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> PassesResult:
    """Sweep, then sweep again every ``pass_seconds`` while :func:`planned_passes` allows and the deadline is far."""
    started = monotonic()
    first = sweep(aws, now=now(), settings=settings, deadline=deadline, force_gc=force_gc)
    out = PassesResult(passes=[first], planned=planned_passes(first.listed, settings) if first.complete else 1)
    no_gc = replace(settings, gc_every_seconds=10**9)  # the garbage collection ran (or not) in the first pass
    for i in range(1, out.planned):
        wait = started + i * settings.pass_seconds - monotonic()
        budget_left = None if deadline is None else deadline - monotonic() - max(wait, 0)
        if budget_left is not None and budget_left < max(5.0, first.duration_s * 2):
            break
        if wait > 0:
            sleep(wait)
        t = now()
        r = sweep(aws, now=t, settings=no_gc, deadline=deadline)
        out.passes.append(r)
        if not r.complete:
            break
    return out


def schedule_offsets(passes: int, settings: SweepSettings) -> list[timedelta]:
    """When, within an invocation, each pass starts (for the latency benchmark)."""
    return [timedelta(seconds=i * settings.pass_seconds) for i in range(passes)]


__all__ = ["PassesResult", "planned_passes", "schedule_offsets", "sweep_passes"]
