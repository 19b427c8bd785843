"""A check that raises becomes an ``unknown`` finding that says why, logs with the ESM uuid and counts a metric."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

from esm_medic.diagnose import checks
from esm_medic.models import CheckStatus


def test_crashing_check_is_unknown_logged_and_counted(monkeypatch, caplog):
    def boom(ctx: Any) -> Any:
        raise KeyError("SecurityGroups")

    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    monkeypatch.delenv("POWERTOOLS_DEV", raising=False)
    spec = checks.REGISTRY["nacl"]
    monkeypatch.setitem(checks.REGISTRY, "nacl", checks.CheckSpec("nacl", spec.step, boom, False, spec.title))
    emitted: list[dict[str, Any]] = []
    real = checks.single_metric

    @contextlib.contextmanager
    def spy(**kw: Any) -> Iterator[Any]:
        with real(**kw) as metric:
            yield metric
            emitted.append({**kw, "dimensions": dict(metric.dimension_set)})

    monkeypatch.setattr(checks, "single_metric", spy)
    ctx = SimpleNamespace(esm=SimpleNamespace(uuid="uuid-123"))
    f = checks.run(ctx, "nacl")  # type: ignore[arg-type]
    assert f.status == CheckStatus.UNKNOWN and "KeyError" in f.summary and f.evidence["why"]
    rec = next(r for r in caplog.records if r.getMessage() == "diagnosis check crashed")
    assert rec.esm_uuid == "uuid-123" and rec.check == "nacl" and rec.exc_info is not None  # type: ignore[attr-defined]
    assert [(m["name"], m["value"], m["dimensions"]) for m in emitted] == [
        ("DiagnosisCheckErrors", 1, {"Check": "nacl"})
    ]
