"""GitHub Issues (REST API) with plain ``requests``.

open: ``POST /repos/<repo>/issues`` with labels ``esm-medic`` and ``esm-medic-<fingerprint>``; comment: ``POST
.../issues/<n>/comments``; resolve: a comment with the proof, then ``PATCH`` ``state=closed``
(``state_reason=completed``); find_open: ``GET .../issues?labels=<fp label>&state=open``. Credentials: a Secrets
Manager JSON ``{"token"}`` (a fine-grained token with Issues read/write on the repository).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from esm_medic.notify.providers.base import Http, Opened, ProviderError, TicketDoc, project_for

BODY_MAX = 65_000  # GitHub's limit is 65 536 characters


@dataclass
class GitHubProvider:
    repo: str  # owner/name
    token: str
    api_url: str = "https://api.github.com"
    http: Http = field(default_factory=lambda: Http("github"))
    name: str = "github"

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        headers = {
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {self.token}",
            "X-GitHub-Api-Version": "2022-11-28",
        }
        return self.http.request(method, self.api_url.rstrip("/") + path, headers=headers, **kw)

    def _repo(self, doc: TicketDoc) -> str:
        return project_for(doc.project, self.name) or self.repo

    def open(self, doc: TicketDoc) -> Opened:
        payload = {"title": doc.title[:256], "body": doc.body[:BODY_MAX], "labels": ["esm-medic", doc.label]}
        data = self._call("POST", f"/repos/{self._repo(doc)}/issues", json=payload).json()
        if not data.get("number"):
            raise ProviderError(self.name, "created an issue but the answer has no number", retryable=False)
        return Opened(str(data["number"]), str(data.get("html_url") or ""))

    def comment(self, ref: str, doc: TicketDoc, text: str) -> None:
        self._call("POST", f"/repos/{self._repo(doc)}/issues/{ref}/comments", json={"body": text[:BODY_MAX]})

    def resolve(self, ref: str, doc: TicketDoc, text: str) -> None:
        self.comment(ref, doc, text)
        body = {"state": "closed", "state_reason": "completed"}
        self._call("PATCH", f"/repos/{self._repo(doc)}/issues/{ref}", json=body)

    def find_open(self, doc: TicketDoc) -> Opened | None:
        params = {"labels": doc.label, "state": "open", "per_page": "1"}
        items = self._call("GET", f"/repos/{self._repo(doc)}/issues", params=params).json() or []
        if not items:
            return None
        return Opened(str(items[0]["number"]), str(items[0].get("html_url") or ""))
