"""Lambda handler ``esm_medic.handlers.approval_http.handler``: the approvers' HTTP endpoint (Lambda function URL
events, routed by Powertools' ``LambdaFunctionUrlResolver``).

Who decides is always something the request proved, never a form field:

- ``GET|HEAD /approvals/{id}?sig=<token>&decision=...``: the confirmation page of a per-approver link. It says
  whom the link belongs to ("Deciding as ...") and changes nothing, so mail scanners, unfurlers and prefetchers
  that open links cannot decide anything.
- ``POST /approvals/{id}`` (form or JSON: ``decision``, ``reason``, ``sig``): decides as the link's approver. When
  the function URL's auth type is ``AWS_IAM`` (``esm-medic approve ID``), the request is SigV4-signed and the
  approver is the principal ARN that Lambda puts in the request context; no link is needed then.
- ``POST /slack/actions``: Slack interactivity; slack-sdk verifies the signature over the exact raw body bytes,
  the exact signature is claimed once (replays fail), and the approver is the payload's ``user.id``.

Status codes: 200 page / decided, 400 bad input, 401 bad Slack signature, 403 approver not allowed (or the
requester), 404 unknown id or bad link (indistinguishable on purpose), 405 wrong method, 409 already decided,
410 expired, 502 the workflow could not be resumed, 503 the store or a key failed. AWS calls on this path get one
retry at most (Slack wants an answer within 3 s). Task tokens, link tokens and secrets are never logged.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from typing import Any

from esm_medic.aws import Aws
from esm_medic.handlers._common import lambda_entry, logger

# one retry at most for every AWS call on this path: Slack needs an answer within 3 s, a person is waiting on the page
RETRY_BUDGET = 1
_AWS_LOCK = threading.Lock()
_AWS: dict[str, Aws] = {}
_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def get_aws() -> Aws:
    """One adapter per container with this path's small retry budget."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    with _AWS_LOCK:
        if region not in _AWS:
            _AWS[region] = Aws(region=region, max_attempts=RETRY_BUDGET)
        return _AWS[region]


def route(event: Any, context: Any = None) -> dict[str, Any]:
    """Resolve one function URL event (a clear 400 for anything that is not one)."""
    if not isinstance(event, Mapping) or not isinstance(event.get("requestContext"), Mapping):
        body = json.dumps({"error": "not an HTTP event"})
        return {"statusCode": 400, "headers": {"Content-Type": "application/json", **_HEADERS}, "body": body}
    # imported on the first request, as every handler's logic: Powertools' event handler package alone costs
    # ~300 ms to import (bench coldstart), which module import (the init phase) does not pay
    from esm_medic.handlers._approval_routes import resolve

    return resolve(dict(event), context)


@lambda_entry("approval_http")
def handler(event: Any, context: Any) -> dict[str, Any]:
    try:
        return route(event, context)
    except Exception:
        logger.exception("approval endpoint failed")
        from esm_medic.notify.message import render_result_page

        page = render_result_page("Error", "Something went wrong; nothing was decided.")
        return {"statusCode": 500, "headers": {"Content-Type": "text/html; charset=utf-8", **_HEADERS}, "body": page}
