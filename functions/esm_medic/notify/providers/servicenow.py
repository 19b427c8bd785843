"""ServiceNow Table API (``incident``) with plain ``requests``.

open: ``POST /api/now/table/incident`` with ``correlation_id`` = the fingerprint and the routed assignment group;
comment: ``PATCH`` ``work_notes``; resolve: ``PATCH`` ``state`` 6 (Resolved) with ``close_code`` / ``close_notes``
(the proof); find_open: ``GET`` with ``sysparm_query=correlation_id=<fp>^active=true``. Credentials: a Secrets
Manager JSON ``{"username", "password"}`` (basic auth of an integration user).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from esm_medic.notify.providers.base import Http, Opened, ProviderError, TicketDoc, project_for

DESCRIPTION_MAX = 60_000
RESOLVED = "6"


@dataclass
class ServiceNowProvider:
    base_url: str
    auth: tuple[str, str]
    assignment_group: str = ""
    close_code: str = "Solution provided"
    http: Http = field(default_factory=lambda: Http("servicenow"))
    name: str = "servicenow"

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        url = self.base_url.rstrip("/") + path
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        return self.http.request(method, url, auth=self.auth, headers=headers, **kw)

    def _link(self, sys_id: str) -> str:
        return f"{self.base_url.rstrip('/')}/nav_to.do?uri=incident.do?sys_id={sys_id}"

    def open(self, doc: TicketDoc) -> Opened:
        record = {
            "short_description": " ".join(doc.title.split())[:160],
            "description": doc.body[:DESCRIPTION_MAX],
            "correlation_id": doc.fingerprint,
            "correlation_display": "esm-medic",
            "urgency": "2",
            "impact": "2",
        }
        group = project_for(doc.project, self.name) or self.assignment_group
        if group:
            record["assignment_group"] = group
        result = self._call("POST", "/api/now/table/incident", json=record).json().get("result") or {}
        sys_id = str(result.get("sys_id") or "")
        if not sys_id:
            raise ProviderError(self.name, "created an incident but the answer has no sys_id", retryable=False)
        return Opened(sys_id, self._link(sys_id))

    def comment(self, ref: str, doc: TicketDoc, text: str) -> None:
        self._call("PATCH", f"/api/now/table/incident/{ref}", json={"work_notes": text[:DESCRIPTION_MAX]})

    def resolve(self, ref: str, doc: TicketDoc, text: str) -> None:
        fields = {"state": RESOLVED, "close_code": self.close_code, "close_notes": text[:DESCRIPTION_MAX]}
        self._call("PATCH", f"/api/now/table/incident/{ref}", json=fields)

    def find_open(self, doc: TicketDoc) -> Opened | None:
        params = {
            "sysparm_query": f"correlation_id={doc.fingerprint}^active=true",
            "sysparm_fields": "sys_id,number",
            "sysparm_limit": "1",
        }
        rows = self._call("GET", "/api/now/table/incident", params=params).json().get("result") or []
        if not rows:
            return None
        return Opened(str(rows[0]["sys_id"]), self._link(str(rows[0]["sys_id"])))
