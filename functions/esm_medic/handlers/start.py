"""EventBridge target: start one remediation execution per (incident, ESM, status).

The rule ``esm-status-error`` (pattern ``detect/patterns/esm-status-error.json``) delivers the whole ``ESM Status
Change`` event here. The execution name is derived from the ESM uuid and a fingerprint of the incident and the
status, so a duplicate of the same event meets ``ExecutionAlreadyExists`` and is reported as a duplicate. A
malformed event returns ``{"started": false, "rejected": true, ...}`` (EventBridge would retry an exception
forever); throttling raises, so the asynchronous invoke is retried.

Environment: ``ESM_MEDIC_STATE_MACHINE_ARN`` (required).
"""

from __future__ import annotations

import os
from typing import Any

from esm_medic.handlers._common import count, get_aws, lambda_entry, logger


@lambda_entry("start", schema="start")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # imported on the first call: the workflow logic and Powertools' data classes (~100 ms each, measured)
    from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent

    from esm_medic.workflow import InputRejected, start_workflow

    if isinstance(event, dict) and {"detail-type", "source", "id"} <= event.keys():
        envelope = EventBridgeEvent(event)
        logger.append_keys(event_id=envelope.get_id, source=envelope.source, detail_type=envelope.detail_type)

    arn = os.environ.get("ESM_MEDIC_STATE_MACHINE_ARN", "")
    if not arn:
        raise RuntimeError("ESM_MEDIC_STATE_MACHINE_ARN is not set")
    try:
        result = start_workflow(get_aws(), arn, event)
    except InputRejected as exc:
        logger.warning("event rejected: %s", exc.reason)
        count("EventsRejected")
        return {"started": False, "duplicate": False, "ignored": False, "rejected": True, "reason": exc.reason}
    if result.get("started"):
        count("ExecutionsStarted")
        logger.info("started %s", result.get("execution_name"))
    elif result.get("duplicate"):
        count("DuplicateEvents")
        logger.info("duplicate event: %s already exists", result.get("execution_name"))
    else:
        count("EventsIgnored")
        logger.info("ignored: %s", result.get("reason"))
    return result
