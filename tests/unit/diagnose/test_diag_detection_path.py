"""`scan` shows how fast each ESM's failures are seen: the log path needs provisioned mode and system logs on."""

from __future__ import annotations

import pytest

from esm_medic.diagnose.engine import detection_path
from esm_medic.esm import EsmConfig

CLUSTER = "arn:aws:kafka:us-east-1:123456789012:cluster/orders/8c1e2a44-1111-2222-3333-444455556666-3"


def _item(**extra: object) -> dict[str, object]:
    return {
        "UUID": "0b7e6a52-5555-4666-8777-888899990000",
        "EventSourceArn": CLUSTER,
        "FunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:orders",
        "State": "Enabled",
        "Topics": ["orders"],
        **extra,
    }


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, "sweep"),
        ({"LoggingConfig": {"SystemLogLevel": "WARN"}}, "sweep"),  # on-demand ESMs write no system logs
        ({"ProvisionedPollerConfig": {"MinimumPollers": 1}}, "sweep, logs available"),
        (
            {"ProvisionedPollerConfig": {"MinimumPollers": 1}, "LoggingConfig": {"SystemLogLevel": "WARN"}},
            "system-logs",
        ),
        (
            {"ProvisionedPollerConfig": {"MinimumPollers": 2}, "LoggingConfig": {"SystemLogLevel": "info"}},
            "system-logs",
        ),
    ],
)
def test_detection_path(extra: dict[str, object], expected: str) -> None:
    assert detection_path(EsmConfig.from_api(_item(**extra))) == expected
