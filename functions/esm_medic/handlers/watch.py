"""Lambda handler that re-checks one ESM until it settles (rule 2 and rule 4, or a Step Functions loop).

Input, any of:
- ``{"uuid": "<esm uuid>"}`` (optionally ``"record": false`` to only look, not update the snapshot / emit, and
  ``"account": "<12 digits>"`` for an ESM of a member account);
- an EventBridge ``AWS API Call via CloudTrail`` event of Create/UpdateEventSourceMapping20150331 (a Kafka ESM);
- an EventBridge ``CloudWatch Alarm State Change`` event of an esm-medic ESM alarm.

The ESM is read in the event's account (the envelope ``account``: a member's rule forwards its events to the
central bus unchanged), through the member's diagnosis role (:mod:`esm_medic.detect.event_account`); the snapshot
and the status events stay central, and the events name the ESM's ``account``. An account that is neither this
install's nor a configured member is ignored (``UnlistedAccountEvents``); a member whose role cannot be assumed
gives ``{"ok": false, "settled": true, "account", "failure"}`` and ``AccountsFailed``.

Output: ``{"ok": true, "uuid", "settled", "state", "status", "classification", "error", "emitted", "incident_id",
...}``; for an alarm naming several ESMs, ``{"ok": true, "settled": <all settled>, "results": [...]}``.
A malformed input returns ``{"ok": false, "error": <reason>, "settled": true}`` (so a loop stops), an input that is
not for us ``{"ok": true, "ignored": true, "reason": ..., "settled": true}``.
"""

from __future__ import annotations

from typing import Any

from esm_medic.handlers._common import count, get_aws, lambda_entry, logger


def _uuids(event: Any) -> tuple[list[str], bool]:
    """The ESM uuids an input asks about, and whether to record; raises EventRejected."""
    import re

    from esm_medic.accounts import account_of_event
    from esm_medic.detect.events import (
        ALARM_DETAIL_TYPE,
        CLOUDTRAIL_DETAIL_TYPE,
        MalformedEvent,
        parse_api_change,
        parse_metric_alarm,
    )

    if not isinstance(event, dict):
        raise MalformedEvent(f"watch input must be an object, got {type(event).__name__}")
    record = event.get("record", True)
    if not isinstance(record, bool):
        raise MalformedEvent("'record' must be true or false")
    kind = event.get("detail-type")
    if kind == CLOUDTRAIL_DETAIL_TYPE:
        return [parse_api_change(event).uuid], True
    if kind == ALARM_DETAIL_TYPE:
        return list(parse_metric_alarm(event).uuids), True
    if "uuid" in event or "UUID" in event:
        uuid = event.get("uuid") or event.get("UUID")
        if not isinstance(uuid, str) or not re.fullmatch(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}", uuid):
            raise MalformedEvent(f"'uuid' must be an ESM UUID, got {str(uuid)[:80]!r}")
        account = event.get("account")
        if account is not None and account_of_event({"account": account}) != account:
            raise MalformedEvent(f"'account' must be a 12-digit account id, got {str(account)[:40]!r}")
        return [uuid], record
    raise MalformedEvent("expected {'uuid': ...}, a CloudTrail ESM create/update event or an ESM alarm event")


@lambda_entry("watch")
def handler(event: Any, context: Any) -> dict[str, Any]:
    from esm_medic.detect.events import EventRejected, IgnoredEvent

    cid = (event.get("id") or event.get("uuid")) if isinstance(event, dict) else None
    logger.set_correlation_id(str(cid or getattr(context, "aws_request_id", "") or "watch"))
    try:
        uuids, record = _uuids(event)
    except IgnoredEvent as exc:
        logger.info("ignored input", extra={"reason": exc.reason})
        count("IgnoredInput", 1)
        return {"ok": True, "ignored": True, "reason": exc.reason, "settled": True}
    except EventRejected as exc:
        logger.error("rejected input", extra={"reason": exc.reason})
        count("MalformedInput", 1)
        return {"ok": False, "error": exc.reason, "settled": True}

    from esm_medic.accounts import account_of_event
    from esm_medic.aws import error_code
    from esm_medic.detect.sweeper import SweepSettings
    from esm_medic.detect.watch import check
    from esm_medic.handlers._event_account import account_adapter, not_acted

    try:
        settings = SweepSettings.from_env()
    except ValueError as exc:
        logger.error("invalid configuration", extra={"reason": str(exc)})
        return {"ok": False, "error": f"invalid configuration: {exc}", "settled": False}
    where = account_adapter(get_aws(), account_of_event(event), "watch")
    if where.aws is None:
        return not_acted(where, settled=True, uuids=uuids)
    aws = where.aws
    results = []
    for uuid in uuids:
        try:
            res = {**check(aws, uuid, settings=settings, record=record).to_dict(), "account": where.account}
        except Exception as exc:  # AWS refused / failed past retries: report, let the loop try again
            code = error_code(exc) or type(exc).__name__
            logger.exception("watch check failed", extra={"uuid": uuid, "error_code": code})
            res = {"uuid": uuid, "settled": False, "error": True, "failure": f"{code}: {exc}"[:500]}
            res["account"] = where.account
        logger.info(
            "watch", extra={k: res.get(k) for k in ("uuid", "account", "settled", "state", "error", "incident_id")}
        )
        count("WatchSettled", 1 if res.get("settled") else 0)
        count("TransitionsEmitted", len(res.get("emitted") or []))
        results.append(res)
    if len(results) == 1:
        return {"ok": "failure" not in results[0], **results[0]}
    return {
        "ok": all("failure" not in r for r in results),
        "settled": all(r.get("settled") for r in results),
        "results": results,
    }
