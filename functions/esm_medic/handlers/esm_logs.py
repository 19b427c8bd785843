"""Lambda handler of the log path: a CloudWatch Logs subscription on the ESM system-log streams.

Input: the subscription event ``{"awslogs": {"data": <base64 gzip JSON>}}`` (decoded with Powertools'
``CloudWatchLogsEvent``), or a Kinesis batch from the member accounts' destination (``{"Records": [{"kinesis":
{"data": <the same payload>, "sequenceNumber"}}]}``; output ``{"ok", "payloads": [...], "emitted",
"batchItemFailures"}``, see :func:`_kinesis`). ``ESM_PROCESSING_EVENT`` records become ``ESM Status Change``
events (trigger ``esm-log``, de-duplicated with the sweeper's snapshots); ``POLLER_STATUS_EVENT`` records are kept
as evidence for the diagnosis (see :mod:`esm_medic.detect.esm_logs`).

The ESMs are read in the account that owns the log group (the payload's ``owner``: a member account's logs arrive
through a cross-account CloudWatch Logs destination, see docs/deploy.md), through the member's diagnosis role
(:mod:`esm_medic.detect.event_account`); the snapshots, evidence and events stay central. Logs of an account that
is neither this install's nor a configured member are dropped (``UnlistedAccountEvents``); a member whose role
cannot be assumed gives ``{"ok": false, "account", "failure"}`` and ``AccountsFailed``.

Output: ``{"ok": true, "records", "processing", "poller_status", "emitted", "duplicates", ...}``; a payload that
cannot be decoded gives ``{"ok": false, "error": <reason>}`` and the ``MalformedInput`` metric (CloudWatch Logs does
not retry a Lambda destination's refusal, so raising would only lose the reason). AWS failures past the adapter's
retries are raised: the asynchronous invocation retries, then its failure destination keeps the batch.
"""

from __future__ import annotations

from typing import Any

from esm_medic.handlers._common import count, get_aws, lambda_entry, logger


def _metric(name: str, value: float) -> None:
    count(name, value)


def _one(event: Any, settings: Any) -> dict[str, Any]:
    """One subscription payload (``{"awslogs": {"data": ...}}``): decoded, acted on in its owner's account."""
    from esm_medic.detect.esm_logs import handle_records
    from esm_medic.detect.events import EventRejected
    from esm_medic.detect.events.esm_log import decode_batch
    from esm_medic.handlers._event_account import account_adapter, not_acted

    try:
        batch = decode_batch(event)
    except EventRejected as exc:
        logger.error("rejected input", extra={"reason": exc.reason})
        _metric("MalformedInput", 1)
        return {"ok": False, "error": exc.reason}
    log_group, records = batch.log_group, batch.records
    if not records:
        return {"ok": True, "log_group": log_group, "records": 0, "emitted": 0}
    where = account_adapter(get_aws(), batch.owner or None, "esm_logs")
    if where.aws is None:
        return not_acted(where, log_group=log_group, records=len(records))
    result = handle_records(where.aws, records, settings=settings)
    for text in result.errors:
        logger.warning("log path problem", extra={"reason": text})
    _metric("EsmLogRecords", result.records)
    _metric("TransitionsEmitted", result.emitted)
    _metric("EsmLogDuplicates", result.duplicates)
    _metric("PollerEvidenceSaved", result.evidence_saved)
    summary = result.summary()
    shown = {k: v for k, v in summary.items() if k != "errors"}
    logger.info("esm system logs", extra={"log_group": log_group, "account": where.account, **shown})
    return {"ok": True, "log_group": log_group, "account": where.account, **summary}


def _kinesis(records: list[Any], settings: Any) -> dict[str, Any]:
    """A Kinesis batch from the member accounts' destination: one subscription payload per record. An AWS failure
    reports that record (and stops: Lambda retries from the lowest reported sequence number); a malformed record or
    a member that cannot be reached is logged, counted and skipped (a retry would not help)."""
    from esm_medic.aws import error_code

    results: list[dict[str, Any]] = []
    failures: list[dict[str, str]] = []
    for rec in records:
        kinesis = rec.get("kinesis") if isinstance(rec, dict) else None
        data = kinesis.get("data") if isinstance(kinesis, dict) else None
        if not isinstance(kinesis, dict) or not isinstance(data, str):
            logger.error("rejected input", extra={"reason": "a Kinesis record without kinesis.data"})
            _metric("MalformedInput", 1)
            results.append({"ok": False, "error": "a Kinesis record without kinesis.data"})
            continue
        try:
            results.append(_one({"awslogs": {"data": data}}, settings))
        except Exception as exc:  # AWS refused / failed past retries: this record and the rest are retried
            code = error_code(exc) or type(exc).__name__
            logger.exception("system-log record not processed", extra={"error_code": code})
            failures.append({"itemIdentifier": str(kinesis.get("sequenceNumber") or "")})
            break
    return {
        "ok": not failures and all(r.get("ok") for r in results),
        "payloads": results,
        "emitted": sum(int(r.get("emitted") or 0) for r in results),
        "batchItemFailures": failures,
    }


@lambda_entry("esm_logs")
def handler(event: Any, context: Any) -> dict[str, Any]:
    from esm_medic.detect.settings import SweepSettings

    logger.set_correlation_id(str(getattr(context, "aws_request_id", "") or "esm-logs"))
    try:
        settings = SweepSettings.from_env()
    except ValueError as exc:
        logger.error("invalid configuration", extra={"reason": str(exc)})
        return {"ok": False, "error": f"invalid configuration: {exc}"}
    records = event.get("Records") if isinstance(event, dict) else None
    if isinstance(records, list):
        return _kinesis(records, settings)
    return _one(event, settings)
