"""Per-log-group subscriptions for the log path, where the account-level subscription filter policy is not used.

When ``ESM_MEDIC_ESM_LOGS_DESTINATION_ARN`` is set (infra ``-c EsmLogSubscription=log-group``), the sweeper makes
sure that every log group an ESM writes system logs to (a Kafka ESM in provisioned mode with ``LoggingConfig`` set:
its function's ``/aws/lambda/<name>`` group) carries the subscription filter ``esm-medic-esm-system-logs`` to the
esm_logs handler. Idempotent: a group already holding the filter is left alone, and groups known to hold it are
remembered per container, so a warm sweeper makes no call for them. A group that does not exist yet (no record
written so far) is retried by a later sweep; a group already at its limit of two subscription filters is reported.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from esm_medic.aws import error_code
from esm_medic.detect.events.esm_log import FILTER_PATTERN
from esm_medic.esm import EsmConfig

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws

FILTER_NAME = "esm-medic-esm-system-logs"
logger = Logger(service="esm-medic", child=True)
_KNOWN_LOCK = threading.Lock()
_KNOWN: set[tuple[str, str]] = set()  # (destination, log group) known to hold the filter


@dataclass
class SubscriptionResult:
    created: list[str] = field(default_factory=list)
    present: int = 0
    pending: list[str] = field(default_factory=list)  # the group does not exist yet
    failed: list[str] = field(default_factory=list)


def writes_system_logs(esm: EsmConfig) -> bool:
    level = (esm.raw.get("LoggingConfig") or {}).get("SystemLogLevel") if esm.raw else None
    return esm.is_kafka and esm.provisioned and bool(level)


def log_group_of(esm: EsmConfig) -> str:
    return f"/aws/lambda/{esm.function_arn.split(':')[-1]}" if esm.function_arn else ""


def forget() -> None:
    with _KNOWN_LOCK:
        _KNOWN.clear()


def ensure(aws: Aws, esms: Iterable[EsmConfig], destination_arn: str) -> SubscriptionResult:
    """Put the subscription filter on the log groups of ``esms`` that write system logs and lack it."""
    result = SubscriptionResult()
    groups = sorted({g for e in esms if writes_system_logs(e) and (g := log_group_of(e))})
    for group in groups:
        with _KNOWN_LOCK:
            if (destination_arn, group) in _KNOWN:
                result.present += 1
                continue
        try:
            have = aws.call("logs", "describe_subscription_filters", logGroupName=group, filterNamePrefix=FILTER_NAME)
            if not any(f.get("filterName") == FILTER_NAME for f in have.get("subscriptionFilters") or []):
                aws.call(
                    "logs",
                    "put_subscription_filter",
                    logGroupName=group,
                    filterName=FILTER_NAME,
                    filterPattern=FILTER_PATTERN,
                    destinationArn=destination_arn,
                )
                result.created.append(group)
            else:
                result.present += 1
        except Exception as exc:
            code = error_code(exc)
            if code == "ResourceNotFoundException":
                result.pending.append(group)
                continue
            result.failed.append(f"{group}: {code or type(exc).__name__}: {exc}"[:300])
            logger.warning("log subscription not set", extra={"log_group": group, "error_code": code})
            continue
        with _KNOWN_LOCK:
            _KNOWN.add((destination_arn, group))
    return result


__all__ = ["FILTER_NAME", "SubscriptionResult", "ensure", "forget", "log_group_of", "writes_system_logs"]
