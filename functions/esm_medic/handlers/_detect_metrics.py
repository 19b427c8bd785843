"""EMF metrics of the detection handlers, one ``single_metric`` each: its dimensions are its own (``handler``),
never inherited from metrics added earlier in the invocation. Names are PascalCase."""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from esm_medic.handlers._common import NAMESPACE


def emit(handler: str, name: str, value: float = 1, unit: MetricUnit = MetricUnit.Count) -> None:
    with single_metric(name=name, unit=unit, value=value, namespace=NAMESPACE) as metric:
        metric.add_dimension(name="handler", value=handler)
