"""Several sweep passes in one invocation while the fleet is small (simulated clock, no real sleeping)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from esm_medic.detect.passes import planned_passes, sweep_passes
from esm_medic.detect.settings import SweepSettings

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
AUTHZ = "PROBLEM: Cluster failed to authorize Lambda."


def test_planned_passes_follow_the_time_and_the_list_call_budget() -> None:
    s = SweepSettings()
    assert [planned_passes(n, s) for n in (10, 600, 700, 1_000, 2_000, 2_001, 10_000)] == [4, 4, 3, 3, 2, 1, 1]
    assert planned_passes(10, SweepSettings(pass_seconds=0)) == 1
    assert planned_passes(10, SweepSettings(pass_seconds=60)) == 1


class Clock:
    """Simulated seconds on top of the real monotonic clock (the sweep checks its deadline on the real one)."""

    def __init__(self) -> None:
        self.t = 0.0
        self.base = time.monotonic()

    def now(self) -> datetime:
        return T0 + timedelta(seconds=self.t)

    def sleep(self, s: float) -> None:
        self.t += s

    def monotonic(self) -> float:
        return self.base + self.t


def test_a_change_between_passes_is_seen_by_the_next_pass(detect: Any) -> None:
    (u,) = detect.add_msk()
    clock = Clock()
    s = SweepSettings(hold_seconds=120, gc_every_seconds=0)
    first = sweep_passes(detect.aws, settings=s, now=clock.now, sleep=clock.sleep, monotonic=clock.monotonic)
    assert first.planned == 4 and len(first.passes) == 4 and clock.t == 45
    seen: list[float] = []

    def sleep(sec: float) -> None:
        clock.sleep(sec)
        if not seen:
            detect.set(u, AUTHZ)  # breaks while the invocation waits for its second pass
            seen.append(clock.t)

    out = sweep_passes(detect.aws, settings=s, now=clock.now, sleep=sleep, monotonic=clock.monotonic)
    assert out.summary()["emitted"] == 1 and out.summary()["passes"] == 4
    assert out.passes[1].emitted == 1
    assert out.summary()["calls"]["lambda:ListEventSourceMappings"] == 4


def test_the_deadline_stops_extra_passes(detect: Any) -> None:
    detect.add_msk()
    clock = Clock()
    s = SweepSettings(hold_seconds=0, gc_every_seconds=0)
    deadline = clock.base + 25.0  # room for the pass at 15 s, not for the one at 30 s
    out = sweep_passes(
        detect.aws, settings=s, deadline=deadline, now=clock.now, sleep=clock.sleep, monotonic=clock.monotonic
    )
    assert out.planned == 4 and len(out.passes) == 2
