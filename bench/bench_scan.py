"""``esm-medic scan`` cost over a fleet: API calls per ESM, shared lookups and wall time.

Target (issue 4): <= 3 API calls per ESM on average over 1,000 ESMs on 10 MSK clusters, and far fewer shared
lookups than ESMs. The fleet comes from the sandbox (``esm_medic_sandbox.scenarios.build_fleet``): one VPC with a
NAT gateway, 10 clusters, 1,000 ESMs, about 20 % broken (whole clusters without their SG self rule, and ESMs whose
role lacks the kafka-cluster topic / group actions). The simulator gives every ESM the status a real one would
show; the scan must find the expected root cause for each. Wall time is in-process moto, so it measures
esm-medic's own work plus moto's, not network latency.
"""

from __future__ import annotations

import os
import socket
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

TARGET_CALLS_PER_ESM = 3.0


def _sandbox_resolver(host: str) -> Sequence[str]:
    from esm_medic_sandbox import simulator

    ip = simulator.dns_table().get(host.lower().rstrip("."))
    if ip:
        return [ip]
    raise socket.gaierror(socket.EAI_NONAME, "NXDOMAIN")


def main(clusters: int | None = None, esms: int | None = None, workers: int = 1) -> dict[str, Any]:
    from esm_medic_sandbox import scenarios, simulator
    from esm_medic_sandbox.env import sandbox

    from esm_medic.diagnose import Lookups, scan

    clusters = clusters or int(os.environ.get("BENCH_SCAN_CLUSTERS", "10"))
    esms = esms or int(os.environ.get("BENCH_SCAN_ESMS", "1000"))
    with sandbox() as aws:
        simulator.install()
        t0 = time.perf_counter()
        fleet = scenarios.build_fleet(aws, clusters=clusters, esms=esms)
        build_s = time.perf_counter() - t0
        aws.reset_counts()
        lookups = Lookups(aws, resolver=_sandbox_resolver)
        t1 = time.perf_counter()
        results = scan(aws, lookups=lookups, workers=workers)
        wall = time.perf_counter() - t1
        adapter_calls = aws.total_calls
        by_op = dict(aws.calls)
    stats = lookups.stats()
    n = len(results) or 1
    wrong = []
    for d in results:
        exp = fleet.expected.get(d.uuid)
        if exp is None:
            continue
        want_rc, want_fix = exp["root_cause"] or "healthy", exp["fix"] or ""
        if (d.step, d.root_cause.id, d.root_cause.fix) != (exp["step"], want_rc, want_fix):
            wrong.append(d.uuid)
    shared = stats["shared_lookups"]
    result = {
        "esms": len(results),
        "clusters": clusters,
        "broken": len(fleet.broken),
        "api_calls": adapter_calls,
        "api_calls_per_esm": round(adapter_calls / n, 3),
        "target_calls_per_esm": TARGET_CALLS_PER_ESM,
        "meets_target": adapter_calls / n <= TARGET_CALLS_PER_ESM,
        "shared_lookups": shared,
        "shared_lookups_per_esm": round(shared / n, 4),
        "per_esm_lookups": stats["fetches"].get("simulate", 0),
        "calls_by_operation": by_op,
        "wall_s": round(wall, 2),
        "ms_per_esm": round(wall * 1000 / n, 2),
        "fleet_build_s": round(build_s, 1),
        "root_causes": dict(Counter(d.root_cause.id for d in results)),
        "diagnosed_as_expected": len(results) - len(wrong),
        "unexpected": wrong[:5],
    }
    print(
        f"scan: {result['esms']} ESMs on {clusters} clusters: {adapter_calls} API calls "
        f"({result['api_calls_per_esm']}/ESM, target <= {TARGET_CALLS_PER_ESM}), {shared} shared lookups, "
        f"{result['wall_s']}s ({result['ms_per_esm']} ms/ESM); {result['diagnosed_as_expected']}/{result['esms']} "
        "as expected"
    )
    return result


if __name__ == "__main__":
    main()
