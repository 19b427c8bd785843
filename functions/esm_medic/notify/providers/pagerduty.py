"""PagerDuty Events API v2 with plain ``requests``: ``trigger`` / ``acknowledge`` / ``resolve`` on one
``dedup_key`` (the fingerprint), so PagerDuty itself folds repeats into the same alert.

open: ``trigger``; comment (a repeat): ``trigger`` again with the same ``dedup_key`` (a new entry in the alert's
log, no new incident); resolve: ``resolve``; find_open: the Events API has no query, and a duplicate trigger is
harmless by construction, so it returns None. Credentials: a Secrets Manager JSON ``{"routing_key"}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from esm_medic.notify.providers.base import Http, Opened, ProviderError, TicketDoc

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
DETAILS_MAX = 8_000  # the whole event must stay under 512 KB; the ticket body lives in the other providers


@dataclass
class PagerDutyProvider:
    routing_key: str
    url: str = EVENTS_URL
    http: Http = field(default_factory=lambda: Http("pagerduty"))
    name: str = "pagerduty"

    def _event(self, action: str, doc: TicketDoc, text: str = "") -> dict[str, Any]:
        event: dict[str, Any] = {
            "routing_key": self.routing_key,
            "event_action": action,
            "dedup_key": doc.fingerprint,
        }
        if action == "trigger":
            event["client"] = "esm-medic"
            event["payload"] = {
                "summary": " ".join(doc.title.split())[:1024],
                "source": doc.uuid or "esm-medic",
                "severity": doc.severity if doc.severity in ("critical", "error", "warning", "info") else "error",
                "component": doc.function or None,
                "class": doc.entry or None,
                "custom_details": {"ticket_id": doc.ticket_id, "details": (text or doc.body)[:DETAILS_MAX]},
            }
        return event

    def _send(self, event: dict[str, Any]) -> str:
        data = self.http.request("POST", self.url, json=event).json()
        if data.get("status") not in (None, "success"):
            raise ProviderError(self.name, f"event refused: {data.get('message')}", retryable=False)
        return str(data.get("dedup_key") or event["dedup_key"])

    def open(self, doc: TicketDoc) -> Opened:
        return Opened(self._send(self._event("trigger", doc)))

    def comment(self, ref: str, doc: TicketDoc, text: str) -> None:
        self._send(self._event("trigger", doc, text))

    def acknowledge(self, ref: str, doc: TicketDoc) -> None:
        self._send(self._event("acknowledge", doc))

    def resolve(self, ref: str, doc: TicketDoc, text: str) -> None:
        self._send(self._event("resolve", doc))

    def find_open(self, doc: TicketDoc) -> Opened | None:
        return None
