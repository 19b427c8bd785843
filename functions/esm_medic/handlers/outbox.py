"""Lambda handler ``esm_medic.handlers.outbox.handler``: deliver the outbox items whose backoff has passed.

Meant for a schedule (e.g. every 5 minutes), so a ticket whose provider was down is delivered even when no new
incident runs the notify / ticket handlers. Input: ignored (``{"limit": n}`` optional, default 50). Output:
``{"results": [...], "delivered": n, "undelivered": n}``.
"""

from __future__ import annotations

from typing import Any

from esm_medic.handlers._common import count, get_aws, lambda_entry


@lambda_entry("outbox")
def handler(event: Any, context: Any) -> dict[str, Any]:
    from esm_medic.notify import outbox  # lazy: the delivery stack costs cold-start time

    limit = event.get("limit") if isinstance(event, dict) else None
    limit = limit if isinstance(limit, int) and 0 < limit <= 1000 else 50
    aws = get_aws()
    results = outbox.drain(aws, limit=limit)
    delivered = sum(1 for r in results if r["status"] == outbox.DELIVERED)
    left = len(outbox.undelivered(aws))
    count("OutboxDelivered", delivered)
    count("OutboxPending", left)  # alarmed (Maximum): service dimension only
    return {"results": results, "delivered": delivered, "undelivered": left}
