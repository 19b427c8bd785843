"""Lambda handler of the scheduled sweep (EventBridge schedule, every minute by default).

Input: the scheduled event (anything else is accepted too; only ``{"force_gc": true}`` changes behaviour).
Output: the sweep summary (counts, API calls, duration) with ``ok: true``, or ``ok: false`` and ``error`` when the
configuration is invalid or AWS refused the listing (the ``SweepFailed`` metric is then 1, for an alarm).
While the fleet is small, the invocation sweeps again every ``ESM_MEDIC_SWEEP_PASS_SECONDS`` (15 s) within the
minute, up to ``ESM_MEDIC_SWEEP_PASS_BUDGET`` extra list calls (see :mod:`esm_medic.detect.passes`).
With ``ESM_MEDIC_MEMBER_ACCOUNTS`` set it sweeps the install's own account and each member account through the
member's diagnosis role (:mod:`esm_medic.detect.sweeper_accounts`, one pass per account); a member that cannot be
assumed is logged, counted (``AccountsFailed``, ``AccountSweepFailed`` per account) and skipped. With
``ESM_MEDIC_ORGANIZATION_ID`` (and optionally ``ESM_MEDIC_MEMBER_OUS``) it also sweeps the accounts it discovers in
the organization; a discovered account without the member stack counts as ``AccountsNotEnrolled`` (not alarmed),
and an organization it may not list gives ``OrganizationDiscoveryFailed`` (the listed accounts are still swept).
The sweep stops 10 s (``SweepSettings.deadline_margin_seconds``) before the Lambda timeout; the next run resumes.
Heavy modules (boto3, the classifier) are imported on the first invocation, not at init.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from esm_medic.handlers._common import count, get_aws, lambda_entry, logger


def _remaining_seconds(context: Any) -> float | None:
    fn = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(fn):
        return None
    try:
        return float(fn()) / 1000.0
    except (TypeError, ValueError):
        return None


@lambda_entry("sweeper")
def handler(event: Any, context: Any) -> dict[str, Any]:
    event_id = event.get("id") if isinstance(event, dict) else None
    logger.set_correlation_id(str(event_id or getattr(context, "aws_request_id", "") or "sweep"))
    if event is not None and not isinstance(event, dict):
        reason = f"sweeper input must be an object (a scheduled event), got {type(event).__name__}"
        logger.error("rejected input", extra={"reason": reason})
        count("MalformedInput")
        return {"ok": False, "error": reason}
    event = event or {}

    from esm_medic.accounts import MemberSettings
    from esm_medic.aws import error_code
    from esm_medic.detect.passes import sweep_passes
    from esm_medic.detect.sweeper import SweepSettings

    try:
        settings = SweepSettings.from_env()
        members = MemberSettings.from_env()
    except ValueError as exc:
        logger.error("invalid configuration", extra={"reason": str(exc)})
        count("SweepFailed")
        return {"ok": False, "error": f"invalid configuration: {exc}"}
    remaining = _remaining_seconds(context)
    deadline = None if remaining is None else time.monotonic() + remaining - settings.deadline_margin_seconds
    multi = None
    try:
        if members.accounts or members.organization:
            from esm_medic.detect.sweeper_accounts import sweep_accounts

            multi = sweep_accounts(
                get_aws(), members, settings=settings, deadline=deadline, force_gc=bool(event.get("force_gc"))
            )
            passes = multi.passes()
        else:
            passes = sweep_passes(get_aws(), settings=settings, deadline=deadline, force_gc=bool(event.get("force_gc")))
    except Exception as exc:  # AWS refused or failed past retries: a clear error and a metric, not a crash
        code = error_code(exc) or type(exc).__name__
        logger.exception("sweep failed", extra={"error_code": code})
        count("SweepFailed")
        return {"ok": False, "error": f"{code}: {exc}"[:1000]}
    result = passes.last
    for detail in (d for p in passes.passes for d in p.transitions):
        logger.info(
            "ESM status change",
            extra={
                "uuid": detail["uuid"],
                "incident_id": detail["incident_id"],
                "step": detail["classification"]["step"],
                "entry": detail["classification"].get("entry"),
                "recovered": detail["recovered"],
            },
        )
    for text in (t for p in passes.passes for t in p.errors):
        logger.warning("sweep problem", extra={"reason": text})
    summary = passes.summary() if multi is None else multi.summary()
    if multi is not None:
        for failed in multi.failed:
            logger.error("member account not swept", extra={"account": failed.account, "reason": failed.error})
            count("AccountSweepFailed", account=failed.account, error=failed.code)
        count("AccountsSwept", len(multi.accounts) - len(multi.failed))
        count("AccountsFailed", len(multi.failed))  # alarmed: service dimension only
        count("AccountsNotEnrolled", len(multi.not_enrolled))  # dashboard only: the StackSet is on its way
        # logged once per discovery TTL (sweeper_accounts); the metric says it on every sweep
        count("OrganizationDiscoveryFailed", 1 if multi.discovery_error else 0)
    count("EsmsSwept", result.kafka)
    count("SweepPasses", len(passes.passes))
    count("TransitionsEmitted", summary["emitted"])
    count("Recoveries", summary["recovered"])
    count("FlapsSuppressed", summary["suppressed_flaps"])
    count("SweepConflicts", summary["conflicts"])
    count("EventsFailed", summary["failed_events"])
    count("EsmsForgotten", len(passes.passes[0].deleted))
    count("SweepIncomplete", 0 if result.complete else 1)
    count("SweepFailed", 0)
    count("SweepDuration", result.duration_s * 1000, unit=MetricUnit.Milliseconds)
    logger.info("sweep done", extra={k: v for k, v in summary.items() if k not in ("errors",)})
    return {"ok": True, **summary}
