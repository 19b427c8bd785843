"""One EMF metric with its own dimensions (Powertools ``single_metric``), for the notify / ticket / outbox handlers.

Unlike adding dimensions to the shared ``Metrics`` object, nothing leaks into later metrics. ``single_metric``
ignores ``POWERTOOLS_METRICS_DISABLED``, so this honours it here (the sandbox and the demo turn metrics off).
"""

from __future__ import annotations

import os

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from esm_medic.handlers._common import NAMESPACE


def metric(name: str, value: float, **dimensions: str) -> None:
    """Emit ``name`` (PascalCase) as a Count with ``dimensions`` (PascalCase names)."""
    if os.environ.get("POWERTOOLS_METRICS_DISABLED", "").strip().lower() in ("1", "true", "yes", "on"):
        return
    with single_metric(name=name, unit=MetricUnit.Count, value=value, namespace=NAMESPACE) as m:
        for dim, val in dimensions.items():
            m.add_dimension(name=dim, value=str(val)[:250])
