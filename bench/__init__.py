"""Benchmarks: one ``bench_<name>.py`` module per target, each with ``main() -> dict``; run by ``python -m bench``."""
