"""Run every ``bench/bench_*.py`` module's ``main()`` and print a summary.

    python -m bench                 # all benchmarks
    python -m bench scan classify   # only bench_scan / bench_classify
    python -m bench --json          # the summary as JSON on stdout

Each module's ``main()`` returns a JSON-able dict of its figures (and prints its own one-line report). A module
that raises is reported as failed and makes the exit code 1; the others still run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def discover() -> list[str]:
    """Benchmark names (``bench_<name>.py`` -> ``<name>``), sorted."""
    return sorted(p.stem[len("bench_") :] for p in HERE.glob("bench_*.py"))


def run(names: list[str]) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        started = time.perf_counter()
        try:
            module = importlib.import_module(f"bench.bench_{name}")
            figures = module.main()
            results[name] = {"ok": True, "seconds": round(time.perf_counter() - started, 2), "result": figures}
        except Exception as exc:
            traceback.print_exc()
            results[name] = {
                "ok": False,
                "seconds": round(time.perf_counter() - started, 2),
                "error": f"{type(exc).__name__}: {exc}",
            }
    return results


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict | list):
        text = json.dumps(value, default=str)
        return text if len(text) <= 60 else text[:57] + "..."
    return str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {', '.join(discover())})")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    available = discover()
    unknown = [n for n in args.names if n not in available]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(available)}")
    results = run(args.names or available)
    if args.json:
        json.dump(results, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print("\n== benchmark summary ==")
        for name, r in results.items():
            status = "ok" if r["ok"] else "FAILED"
            print(f"{name:<16} {status:<7} {r['seconds']:>8.2f}s")
            if r["ok"] and isinstance(r.get("result"), dict):
                for key, value in r["result"].items():
                    print(f"    {key:<28} {_short(value)}")
            elif not r["ok"]:
                print(f"    {r['error']}")
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
