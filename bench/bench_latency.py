"""Detection latency of the sweep path and the log path, in a simulated clock, and their cost per fleet size.

Latency: for ``CHANGES`` status changes at random instants, the product's own decision code
(:func:`esm_medic.detect.decide.decide` for each sweep pass, :func:`esm_medic.detect.decide.decide_from_log` for a
log record) runs at simulated times, and the bench records when the ``ESM Status Change`` is emitted and when the
first action can start. Timing assumptions (stated, not measured on AWS):

- a sweep invocation starts every ``interval`` (60 s) at a random phase; its passes start at the offsets
  :func:`esm_medic.detect.passes.planned_passes` allows for the fleet size (every 15 s while cheap); a pass sees an
  ESM ``SWEEP_RUN_S`` after its start (the time to list and decide, from bench_sweep's figures);
- the log path: the ESM writes its ``ESM_PROCESSING_EVENT`` 0-``POLLER_RECORD_S`` s after the change (the pollers'
  retry period), CloudWatch Logs delivers to the subscription ``DELIVERY_S`` later, the handler runs ``HANDLER_S``;
- the first action starts after the hold the event asks for (``holdSeconds``: the workflow waits, re-reads and
  acts) plus ``WORKFLOW_S`` for classify/diagnose/decide. "before" is the former design (hold inside the detector).

Cost per minute at 10 / 1,000 / 10,000 ESMs: sweep path API calls (list pages x passes + digest Query pages, no
write when nothing changes); log path: records and bytes (an INFO-level ESM is assumed to write one
POLLER_STATUS_EVENT of ``POLLER_RECORD_BYTES`` a minute; WARN writes only when failing), subscription invocations
(one per stream batch: about one per ESM per minute at INFO) and the STATE-table writes for the evidence.
"""

from __future__ import annotations

import json
import math
import random
import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

CHANGES = 1000
SEED = 15
SWEEP_RUN_S = 2.0
POLLER_RECORD_S = 5.0
DELIVERY_S = (1.0, 4.0)
HANDLER_S = 0.3
WORKFLOW_S = 8.0
POLLER_RECORD_BYTES = 520
PROCESSING_RECORD_BYTES = 380
FAILING_RATIO = 0.01
FLEETS = (10, 1_000, 10_000)
UUID = "6f1c2b7e-3d4a-4e5f-8a9b-0c1d2e3f4a5b"
CLUSTER = "arn:aws:kafka:us-east-1:123456789012:cluster/orders/1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d-3"
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
OK = "OK"
ERROR = "PROBLEM: Cluster failed to authorize Lambda."


def _esm(result: str) -> Any:
    from esm_medic.esm import EsmConfig

    return EsmConfig.from_api(
        {
            "UUID": UUID,
            "EventSourceArn": CLUSTER,
            "FunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:orders",
            "State": "Enabled",
            "StateTransitionReason": "USER_INITIATED",
            "LastProcessingResult": result,
        }
    )


def _apply(snap: Any, d: Any) -> Any:
    if d.snapshot is None:
        return snap
    return d.snapshot.evolve(outbox="", outbox_at="", version=d.snapshot.version + 1)


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))], 1)


def _sweep_latency(rng: random.Random, fleet: int, *, early: bool) -> tuple[list[float], list[float]]:
    from esm_medic.detect.decide import decide
    from esm_medic.detect.passes import planned_passes
    from esm_medic.detect.settings import SweepSettings

    s = SweepSettings(hold_seconds=120, early_emit=early, pass_seconds=15 if early else 0)  # before: one pass
    passes = planned_passes(fleet, s)
    to_event: list[float] = []
    to_action: list[float] = []
    for _ in range(CHANGES):
        phase = rng.uniform(0, s.interval_seconds)
        change = rng.uniform(0, 600.0)
        snap = _apply(None, decide(None, _esm(OK), now=T0, settings=s))
        # the pass times after the change, in order: invocations at phase + k*interval, passes inside each
        k = 0
        emitted = None
        while emitted is None and k < 1000:
            start = phase + k * s.interval_seconds
            for i in range(passes):
                seen = start + i * s.pass_seconds + SWEEP_RUN_S
                if seen < change:
                    continue
                d = decide(snap, _esm(ERROR), now=T0 + timedelta(seconds=seen), settings=s)
                snap = _apply(snap, d)
                if d.detail is not None:
                    emitted = (seen, int(d.detail.get("holdSeconds") or 0))
                    break
            k += 1
        assert emitted is not None
        to_event.append(emitted[0] - change)
        to_action.append(emitted[0] + emitted[1] + WORKFLOW_S - change)
    return to_event, to_action


def _log_latency(rng: random.Random) -> tuple[list[float], list[float]]:
    from esm_medic.detect.decide import decide, decide_from_log
    from esm_medic.detect.settings import SweepSettings

    s = SweepSettings(hold_seconds=120)
    to_event: list[float] = []
    to_action: list[float] = []
    for _ in range(CHANGES):
        change = rng.uniform(0, 600.0)
        snap = _apply(None, decide(None, _esm(OK), now=T0, settings=s))
        written = change + rng.uniform(0, POLLER_RECORD_S)
        handled = written + rng.uniform(*DELIVERY_S) + HANDLER_S
        d = decide_from_log(
            snap,
            _esm(OK),  # the API may still lag: the record's text stands in
            "Timeout expired while fetching topic metadata",
            now=T0 + timedelta(seconds=handled),
            since=T0 + timedelta(seconds=written),
            settings=s,
            evidence={"event_type": "ESM_PROCESSING_EVENT"},
        )
        assert d.detail is not None
        to_event.append(handled - change)
        to_action.append(handled + int(d.detail.get("holdSeconds") or 0) + WORKFLOW_S - change)
    return to_event, to_action


def _cost(fleet: int) -> dict[str, Any]:
    from esm_medic.detect.passes import planned_passes
    from esm_medic.detect.settings import SweepSettings

    s = SweepSettings()
    passes = planned_passes(fleet, s)
    pages = math.ceil(fleet / 100)
    digest_pages = max(1, math.ceil(fleet * 60 / 1_000_000))
    failing = max(0, round(fleet * FAILING_RATIO))
    info_bytes = fleet * POLLER_RECORD_BYTES + failing * PROCESSING_RECORD_BYTES
    return {
        "esms": fleet,
        "sweep_passes_per_min": passes,
        "sweep_api_calls_per_min": passes * (pages + digest_pages),
        "sweep_list_calls_per_min": passes * pages,
        "log_bytes_per_min_warn": failing * PROCESSING_RECORD_BYTES,
        "log_bytes_per_min_info": info_bytes,
        "log_invocations_per_min_info": fleet + failing,
        "log_api_calls_per_min_info": fleet + 2 * failing,  # evidence PutItem per ESM; GetItem (+Get) per failure
    }


def main() -> dict[str, Any]:
    rng = random.Random(SEED)
    result: dict[str, Any] = {"changes": CHANGES, "paths": {}}
    for name, fleet, early in (
        ("sweep_before_10", 10, False),
        ("sweep_10", 10, True),
        ("sweep_1000", 1000, True),
        ("sweep_10000", 10000, True),
    ):
        ev, act = _sweep_latency(rng, fleet, early=early)
        result["paths"][name] = {
            "event_p50": _pct(ev, 50),
            "event_p95": _pct(ev, 95),
            "action_p50": _pct(act, 50),
            "action_p95": _pct(act, 95),
        }
    ev, act = _log_latency(rng)
    result["paths"]["log"] = {
        "event_p50": _pct(ev, 50),
        "event_p95": _pct(ev, 95),
        "action_p50": _pct(act, 50),
        "action_p95": _pct(act, 95),
    }
    result["cost"] = [_cost(n) for n in FLEETS]
    paths = result["paths"]
    result["sweep_p95_within_interval_plus_run"] = paths["sweep_10000"]["event_p95"] <= 60 + SWEEP_RUN_S
    result["log_p95_within_10s"] = paths["log"]["event_p95"] <= 10
    result["mean_log_event_s"] = round(statistics.mean(ev), 1)
    lines = [
        f"{k}: event p50/p95 {v['event_p50']}/{v['event_p95']} s, action {v['action_p50']}/{v['action_p95']} s"
        for k, v in paths.items()
    ]
    print("latency (simulated clock, " + str(CHANGES) + " changes): " + "; ".join(lines))
    for c in result["cost"]:
        print("latency cost: " + json.dumps(c))
    return result


if __name__ == "__main__":  # pragma: no cover
    main()
