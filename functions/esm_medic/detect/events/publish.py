"""Put ``ESM Status Change`` details on the bus: PutEvents, 10 entries per call, bounded retry of failed entries."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from esm_medic.aws import error_code
from esm_medic.detect.events.base import DETAIL_TYPE, PUT_EVENTS_MAX, SOURCE

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws


def put_entry(detail: Mapping[str, Any], bus: str) -> dict[str, Any]:
    """A PutEvents entry for one detail."""
    return {
        "Source": SOURCE,
        "DetailType": DETAIL_TYPE,
        "Detail": json.dumps(detail, separators=(",", ":"), sort_keys=True),
        "EventBusName": bus,
    }


@dataclass
class PutResult:
    sent: list[int] = field(default_factory=list)  # indexes (into the input) delivered
    failed: list[tuple[int, str]] = field(default_factory=list)  # (index, "code: message") not delivered
    calls: int = 0


class EventPublisher:
    """PutEvents in batches of 10; entries that come back failed are retried (bounded, with backoff)."""

    def __init__(
        self,
        aws: Aws,
        bus: str = "default",
        *,
        max_attempts: int = 3,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.aws = aws
        self.bus = bus
        self.max_attempts = max(1, max_attempts)
        self._sleep = sleep

    def put(self, details: Sequence[Mapping[str, Any]]) -> PutResult:
        result = PutResult()
        for start in range(0, len(details), PUT_EVENTS_MAX):
            todo = list(range(start, min(start + PUT_EVENTS_MAX, len(details))))
            last_error: dict[int, str] = {}
            for attempt in range(self.max_attempts):
                if attempt:
                    self._sleep(min(0.2 * 2 ** (attempt - 1), 2.0))
                entries = [put_entry(details[i], self.bus) for i in todo]
                result.calls += 1
                try:
                    resp = self.aws.call("events", "put_events", Entries=entries)
                except Exception as exc:  # throttled past the adapter's retries, endpoint down, ...
                    reason = f"{error_code(exc) or type(exc).__name__}: {exc}"[:300]
                    last_error = dict.fromkeys(todo, reason)
                    continue
                retry: list[int] = []
                for i, out in zip(todo, resp.get("Entries") or [], strict=False):
                    if out.get("EventId") and not out.get("ErrorCode"):
                        result.sent.append(i)
                    else:
                        retry.append(i)
                        last_error[i] = f"{out.get('ErrorCode', '?')}: {out.get('ErrorMessage', '')}"[:300]
                answered = len(resp.get("Entries") or [])
                for i in todo[answered:]:  # fewer results than entries: treat the rest as failed
                    retry.append(i)
                    last_error[i] = "no result for entry"
                todo = retry
                if not todo:
                    break
            result.failed.extend((i, last_error.get(i, "unknown")) for i in todo)
        return result
