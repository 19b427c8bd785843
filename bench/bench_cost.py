"""A monthly cost model at 100, 1,000 and 10,000 ESMs with the sweep every minute, from measured call counts.

The sweeper's calls per sweep (ListEventSourceMappings pages, DynamoDB reads and writes, PutEvents) are measured in
the sandbox by ``bench_sweep`` at 100 and 1,000 ESMs; 10,000 is extrapolated from them (list calls grow by page,
DynamoDB reads stay one digest Query, RCU grow with the digest's size). The sweeper's Lambda duration is the number
of sequential round trips times an assumed 30 ms each. Incident costs (Step Functions transitions, Lambda
invocations) use the counts of one remediation execution, stated below; they scale with incidents, not with ESMs.

Prices are us-east-1 list prices (USD), held here as constants: check them against the AWS pricing pages before
quoting a figure. Free tiers are ignored.
"""

from __future__ import annotations

import math
from typing import Any

MINUTES_PER_MONTH = 60 * 24 * 30
PRICE = {
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_s": 0.0000166667,
    "ddb_rru": 0.125 / 1e6,  # on-demand read request unit
    "ddb_wru": 0.625 / 1e6,  # on-demand write request unit
    "sfn_transition": 0.025 / 1000,  # Standard workflows
    "eventbridge_event": 1.00 / 1e6,  # custom events (PutEvents)
    "cw_metric_month": 0.30,  # custom metric, first 10,000
    "cw_alarm_month": 0.10,  # standard-resolution alarm
    "cw_dashboard_month": 3.00,
    "cw_logs_gb": 0.50,  # ingestion
}
SWEEPER_MEMORY_GB = 1.0
MS_PER_ROUND_TRIP = 30
CHANGE_RATE = 0.001  # share of ESMs that change status in a given minute
INCIDENTS_PER_1000_ESMS_PER_MONTH = 20
#: one remediation execution (auto fix, verify, record), counted from the demo's execution history
TRANSITIONS_PER_INCIDENT = 24
LAMBDA_INVOCATIONS_PER_INCIDENT = 8
CUSTOM_METRICS = 40  # distinct (metric, dimension set) pairs the handlers emit
ALARMS = 11
LOG_BYTES_PER_SWEEP = 600
LOG_BYTES_PER_INCIDENT = 40_000


def _sweep_counts(n: int) -> dict[str, float]:
    from bench import bench_sweep

    r = bench_sweep.main(n)
    return {
        "list": r["unchanged_list_calls"],
        "ddb_reads": r["unchanged_ddb_reads"],
        "rcu": r["ddb_rcu_per_unchanged_sweep"],
        "writes_per_transition": r["changed_writes_per_transition"],
        "round_trips": r["sequential_round_trips_unchanged"],
    }


def model(n: int, sweep: dict[str, float]) -> dict[str, float]:
    sweeps = MINUTES_PER_MONTH
    changes = n * CHANGE_RATE * sweeps
    incidents = n / 1000 * INCIDENTS_PER_1000_ESMS_PER_MONTH
    duration_s = (sweep["round_trips"] * MS_PER_ROUND_TRIP) / 1000
    lambda_cost = sweeps * (PRICE["lambda_request"] + duration_s * SWEEPER_MEMORY_GB * PRICE["lambda_gb_s"])
    lambda_cost += (
        incidents * LAMBDA_INVOCATIONS_PER_INCIDENT * (PRICE["lambda_request"] + 0.5 * 0.5 * PRICE["lambda_gb_s"])
    )
    ddb = sweeps * sweep["rcu"] * PRICE["ddb_rru"] + changes * sweep["writes_per_transition"] * PRICE["ddb_wru"]
    sfn = incidents * TRANSITIONS_PER_INCIDENT * PRICE["sfn_transition"]
    events = changes * PRICE["eventbridge_event"]
    logs_gb = (sweeps * LOG_BYTES_PER_SWEEP + incidents * LOG_BYTES_PER_INCIDENT) / 1e9
    cw = CUSTOM_METRICS * PRICE["cw_metric_month"] + ALARMS * PRICE["cw_alarm_month"] + PRICE["cw_dashboard_month"]
    cw += logs_gb * PRICE["cw_logs_gb"]
    parts = {"lambda": lambda_cost, "dynamodb": ddb, "step_functions": sfn, "eventbridge": events, "cloudwatch": cw}
    return {
        **{k: round(v, 2) for k, v in parts.items()},
        "total": round(sum(parts.values()), 2),
        "list_calls_per_sweep": sweep["list"],
        "sweeper_seconds": round(duration_s, 2),
    }


def main() -> dict[str, Any]:
    measured = {n: _sweep_counts(n) for n in (100, 1000)}
    big = dict(measured[1000])
    big["list"] = math.ceil(10_000 / 100)
    big["round_trips"] = big["list"] + measured[1000]["ddb_reads"]
    big["rcu"] = 256 * math.ceil(10_000 * 60 / 256 / 4096) * 0.5
    measured[10_000] = big
    table = {n: model(n, counts) for n, counts in measured.items()}
    print("cost per month (USD, us-east-1 list prices, sweep every minute):")
    print(f"{'ESMs':>7} {'lambda':>8} {'dynamodb':>9} {'sfn':>6} {'events':>7} {'cloudwatch':>11} {'total':>8}")
    for n, row in table.items():
        print(
            f"{n:>7} {row['lambda']:>8.2f} {row['dynamodb']:>9.2f} {row['step_functions']:>6.2f} "
            f"{row['eventbridge']:>7.2f} {row['cloudwatch']:>11.2f} {row['total']:>8.2f}"
        )
    return {"per_month_usd": table, "measured_per_sweep": measured, "prices": PRICE}


if __name__ == "__main__":
    main()
