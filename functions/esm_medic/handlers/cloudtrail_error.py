"""Lambda handler for rule 3: a call refused to an ESM execution role, seen in CloudTrail.

Input: an EventBridge ``AWS API Call via CloudTrail`` event matched by ``esm-role-access-denied.json`` (Secrets
Manager GetSecretValue / KMS Decrypt / EC2 ENI calls / MSK describe calls refused to an assumed role, or an
AssumeRole refused to lambda.amazonaws.com).

It classifies the denial into a catalogue entry and step (secret, network, dns, role), finds the Kafka ESMs whose
function runs with that role, and for each one (at most once per ESM and entry per
``ESM_MEDIC_CLOUDTRAIL_DEDUPE_SECONDS``, default 900) puts an ``ESM Status Change`` event with trigger
``cloudtrail``: the error rule then starts the workflow, the same single entry point the sweeper uses. Set
``ESM_MEDIC_CLOUDTRAIL_EMIT=false`` to only return the list (the caller then starts the workflow itself).

The ESMs are looked up in the account the denial happened in (the envelope ``account``: a member's rule forwards
its CloudTrail events to the central bus unchanged; else the role's account), through the member's diagnosis role
(:mod:`esm_medic.detect.event_account`); the de-duplication markers and the events stay central, and each event
names the ESM's ``account``. An account that is neither this install's nor a configured member is ignored
(``UnlistedAccountEvents``); a member whose role cannot be assumed gives ``{"ok": false, "account", "failure"}``
and ``AccountsFailed``.

Output: ``{"ok": true, "role_arn", "classification": {"entry", "step"}, "esms": [{uuid, classification,
incident_id, emitted, duplicate}], "emitted": n}``; malformed input -> ``{"ok": false, "error": reason}``; input
that is not for us (not a denial, an IAM user, ...) -> ``{"ok": true, "ignored": true, "reason": ...}``.
"""

from __future__ import annotations

import os
from typing import Any

from esm_medic.handlers._common import count, get_aws, lambda_entry, logger


def _settings() -> tuple[bool, int, str]:
    from esm_medic.detect.sweeper import env_bool, env_int

    emit = env_bool(os.environ, "ESM_MEDIC_CLOUDTRAIL_EMIT", True)
    dedupe = env_int(os.environ, "ESM_MEDIC_CLOUDTRAIL_DEDUPE_SECONDS", 900, 1)
    bus = (os.environ.get("ESM_MEDIC_EVENT_BUS") or "").strip() or "default"
    return emit, dedupe, bus


@lambda_entry("cloudtrail_error")
def handler(event: Any, context: Any) -> dict[str, Any]:
    from esm_medic.detect.events import EventRejected, IgnoredEvent, parse_access_denial

    cid = event.get("id") if isinstance(event, dict) else None
    logger.set_correlation_id(str(cid or getattr(context, "aws_request_id", "") or "cloudtrail-error"))
    try:
        denial = parse_access_denial(event)
    except IgnoredEvent as exc:
        logger.info("ignored input", extra={"reason": exc.reason})
        count("IgnoredInput", 1)
        return {"ok": True, "ignored": True, "reason": exc.reason}
    except EventRejected as exc:
        logger.error("rejected input", extra={"reason": exc.reason})
        count("MalformedInput", 1)
        return {"ok": False, "error": exc.reason}

    from datetime import UTC, datetime

    from esm_medic.accounts import account_of_event
    from esm_medic.aws import error_code
    from esm_medic.detect.events import report_access_denial
    from esm_medic.handlers._event_account import account_adapter, not_acted

    try:
        emit, dedupe, bus = _settings()
    except ValueError as exc:
        logger.error("invalid configuration", extra={"reason": str(exc)})
        return {"ok": False, "error": f"invalid configuration: {exc}"}
    base = {
        "role_arn": denial.role_arn,
        "classification": {"entry": denial.entry, "step": denial.step},
        "denied_call": f"{denial.event_source.split('.', 1)[0]}:{denial.event_name}",
        "error_code": denial.error_code,
        "lambda_session": denial.lambda_session,
    }
    where = account_adapter(get_aws(), account_of_event(event) or denial.account or None, "cloudtrail_error")
    if where.aws is None:
        return not_acted(where, **base)
    base["account"] = where.account
    try:
        reports = report_access_denial(
            where.aws, denial, now=datetime.now(UTC), bus=bus, dedupe_seconds=dedupe, emit=emit
        )
    except Exception as exc:
        code = error_code(exc) or type(exc).__name__
        logger.exception("could not report the denial", extra={"error_code": code, **base})
        return {"ok": False, "error": f"{code}: {exc}"[:1000], **base}
    emitted = sum(1 for r in reports if r.emitted)
    logger.info("access denial", extra={**base, "esms": [r.uuid for r in reports], "emitted": emitted})
    count("AccessDenials", 1)
    count("TransitionsEmitted", emitted)
    out: dict[str, Any] = {"ok": True, **base, "esms": [r.to_dict() for r in reports], "emitted": emitted}
    if not emit:
        out["events"] = [dict(r.detail) for r in reports if r.detail is not None]
    return out
