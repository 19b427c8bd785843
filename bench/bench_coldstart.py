"""Cold-start import cost of every Lambda handler module (issue 6: "import time of each handler stays small").

For each ``esm_medic/handlers/<name>.py`` (not ``_common``): ``python -X importtime -c "import
esm_medic.handlers.<name>"`` in a fresh subprocess, best of 3; the figure is the cumulative import time of the
handler module itself (what Lambda's init phase pays before the first event), in ms. Also reported per handler:
the heaviest modules it pulls in (cumulative ms) and whether boto3 / the X-Ray SDK are imported at module level
(the tracer must stay lazy; boto3 is only needed once a call is made). ``baseline_ms`` is the interpreter's own
start-up imports (``-c pass``), for scale.

Handlers import their logic inside the handler function, so module import stays small; the first event then pays
the rest. ``first_call_ms`` is that honest total: the handler plus the logic modules its first call imports
(:data:`FIRST_CALL`), measured the same way (sum of every import's own time, minus the baseline). Neither figure
includes creating boto3 clients (~0.2 s each, on the first AWS call).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

HANDLERS = Path(__file__).resolve().parents[1] / "functions" / "esm_medic" / "handlers"
RUNS = 3
#: logic modules a handler's first call imports (lazily, inside the handler function)
FIRST_CALL: dict[str, tuple[str, ...]] = {
    "start": ("esm_medic.workflow", "esm_medic.detect.events", "esm_medic.aws", "boto3"),
    "classify": ("esm_medic.workflow", "esm_medic.classify", "esm_medic.detect.events"),
    "diagnose": ("esm_medic.workflow", "esm_medic.diagnose", "boto3"),
    "decide": ("esm_medic.workflow", "esm_medic.remediate.engine", "esm_medic.policy", "boto3"),
    "remediate": (
        "esm_medic.workflow",
        "esm_medic.remediate.engine",
        "aws_lambda_powertools.utilities.idempotency",
        "boto3",
    ),
    "verify": ("esm_medic.workflow", "esm_medic.remediate.engine", "esm_medic.classify", "boto3"),
    "rollback": ("esm_medic.workflow", "esm_medic.remediate.engine", "aws_lambda_powertools.utilities.idempotency"),
    "record": (
        "esm_medic.workflow",
        "esm_medic.remediate.audit",
        "esm_medic.notify",
        "aws_lambda_powertools.utilities.idempotency",
        "boto3",
    ),
}
_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)\s*$")


def handler_modules() -> list[str]:
    return sorted(p.stem for p in HANDLERS.glob("*.py") if not p.stem.startswith("_"))


def _importtime(code: str) -> list[tuple[int, int, int, str]]:
    """(self µs, cumulative µs, depth, module) for every import line of one fresh interpreter."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "POWERTOOLS_TRACE_DISABLED": "true"}
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{code!r} failed: {proc.stderr.strip().splitlines()[-1:]}")
    rows = []
    for line in proc.stderr.splitlines():
        m = _LINE.match(line)
        if m:
            rows.append((int(m.group(1)), int(m.group(2)), len(m.group(3)) // 2, m.group(4)))
    return rows


def _total_ms(code: str) -> float:
    """Sum of every import's own time in one fresh interpreter, best of RUNS (ms)."""
    return min(sum(s for s, _, _, _ in _importtime(code)) for _ in range(RUNS)) / 1000


def measure(name: str, baseline: float = 0.0) -> dict[str, Any]:
    module = f"esm_medic.handlers.{name}"
    best: list[tuple[int, int, int, str]] | None = None
    best_total = None
    for _ in range(RUNS):
        rows = _importtime(f"import {module}")
        total = next((cum for _, cum, _, mod in reversed(rows) if mod == module), None)
        if total is None:
            raise RuntimeError(f"{module} does not appear in the import trace")
        if best_total is None or total < best_total:
            best, best_total = rows, total
    assert best is not None and best_total is not None
    loaded = {mod for _, _, _, mod in best}
    top = sorted(
        ((cum, mod) for _, cum, depth, mod in best if depth <= 1 and mod != module and not mod.startswith("encodings")),
        reverse=True,
    )[:5]
    extra = FIRST_CALL.get(name, ())
    first_call = _total_ms("; ".join(f"import {m}" for m in (module, *extra))) - baseline if extra else None
    return {
        "ms": round(best_total / 1000, 1),
        "first_call_ms": round(first_call, 1) if first_call is not None else None,
        "heaviest": {mod: round(cum / 1000, 1) for cum, mod in top},
        "imports_boto3": "boto3" in loaded,
        "imports_xray": any(m.startswith("aws_xray_sdk") for m in loaded),
        "modules_loaded": len(loaded),
    }


def main() -> dict[str, Any]:
    names = handler_modules()
    baseline = _total_ms("pass")
    per = {name: measure(name, baseline) for name in names}
    totals = [v["ms"] for v in per.values()]
    result = {
        "handlers": names,
        "per_handler": per,
        "max_ms": max(totals),
        "median_ms": sorted(totals)[len(totals) // 2],
        "baseline_ms": round(baseline, 1),
        "lazy_tracer": not any(v["imports_xray"] for v in per.values()),
        "no_boto3_at_import": [n for n, v in per.items() if not v["imports_boto3"]],
        "max_first_call_ms": max(v["first_call_ms"] or 0 for v in per.values()),
    }
    worst = max(per, key=lambda n: per[n]["ms"])
    print(
        f"coldstart: {len(names)} handlers, import median {result['median_ms']} ms, max {result['max_ms']} ms "
        f"({worst}); interpreter baseline {result['baseline_ms']} ms; X-Ray SDK at import: "
        f"{'none' if result['lazy_tracer'] else [n for n, v in per.items() if v['imports_xray']]}"
    )
    for name in names:
        v = per[name]
        heavy = ", ".join(f"{m} {ms}" for m, ms in list(v["heaviest"].items())[:3])
        first = f"{v['first_call_ms']:7.1f}" if v["first_call_ms"] is not None else "      -"
        boto = "yes" if v["imports_boto3"] else "no "
        print(f"  {name:<18} {v['ms']:6.1f} ms  first call {first} ms  boto3={boto}  {heavy}")
    return result


if __name__ == "__main__":
    main()
