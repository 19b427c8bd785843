"""Jira Cloud (REST v3) with plain ``requests``: four endpoints, an Atlassian Document Format body.

open: ``POST /rest/api/3/issue`` (labels ``esm-medic`` and ``esm-medic-<fingerprint>``); comment: ``POST
/rest/api/3/issue/<key>/comment``; resolve: a comment with the proof, then the transition named
``ESM_MEDIC_JIRA_DONE_TRANSITION`` (default: the first into the ``done`` status category); find_open: ``POST
/rest/api/3/search/jql`` on the fingerprint label. Credentials: a Secrets Manager JSON ``{"email", "api_token"}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from esm_medic.notify.providers.base import Http, Opened, ProviderError, TicketDoc, project_for

ADF_TEXT_MAX = 30_000  # Jira rejects descriptions over 32 767 characters


def adf(markdown: str) -> dict[str, Any]:
    """Markdown as an Atlassian Document Format document: headings, code blocks and paragraphs."""
    content: list[dict[str, Any]] = []
    text = markdown[:ADF_TEXT_MAX]
    para: list[str] = []

    def flush() -> None:
        if para:
            content.append({"type": "paragraph", "content": [{"type": "text", "text": "\n".join(para)}]})
            para.clear()

    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = re.match(r"^\s*(```|~~~)(\w*)", line)
        if fence:
            flush()
            code: list[str] = []
            i += 1
            while i < len(lines) and not lines[i].lstrip().startswith(fence.group(1)):
                code.append(lines[i])
                i += 1
            node: dict[str, Any] = {"type": "codeBlock", "content": [{"type": "text", "text": "\n".join(code) or " "}]}
            if fence.group(2):
                node["attrs"] = {"language": fence.group(2)}
            content.append(node)
        elif heading := re.match(r"^(#{1,6})\s+(.*)$", line):
            flush()
            content.append(
                {
                    "type": "heading",
                    "attrs": {"level": len(heading.group(1))},
                    "content": [{"type": "text", "text": heading.group(2) or " "}],
                }
            )
        elif not line.strip():
            flush()
        else:
            para.append(line)
        i += 1
    flush()
    return {"type": "doc", "version": 1, "content": content or [{"type": "paragraph", "content": []}]}


@dataclass
class JiraProvider:
    base_url: str
    project: str
    auth: tuple[str, str]
    issue_type: str = "Task"
    done_transition: str = ""
    http: Http = field(default_factory=lambda: Http("jira"))
    name: str = "jira"

    def _url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        return self.http.request(method, self._url(path), auth=self.auth, headers={"Accept": "application/json"}, **kw)

    def open(self, doc: TicketDoc) -> Opened:
        fields = {
            "project": {"key": project_for(doc.project, self.name) or self.project},
            "summary": " ".join(doc.title.split())[:254],
            "issuetype": {"name": self.issue_type},
            "labels": ["esm-medic", doc.label, *doc.labels],
            "description": adf(doc.body),
        }
        key = str(self._call("POST", "/rest/api/3/issue", json={"fields": fields}).json().get("key") or "")
        if not key:
            raise ProviderError(self.name, "created an issue but the answer has no key", retryable=False)
        return Opened(key, self._url(f"/browse/{key}"))

    def comment(self, ref: str, doc: TicketDoc, text: str) -> None:
        self._call("POST", f"/rest/api/3/issue/{ref}/comment", json={"body": adf(text)})

    def resolve(self, ref: str, doc: TicketDoc, text: str) -> None:
        self.comment(ref, doc, text)
        transitions = self._call("GET", f"/rest/api/3/issue/{ref}/transitions").json().get("transitions") or []
        wanted = self.done_transition.strip().lower()
        chosen = None
        for t in transitions:
            to = t.get("to") or {}
            if wanted and wanted in (str(t.get("name", "")).lower(), str(to.get("name", "")).lower()):
                chosen = t
                break
            if not wanted and (to.get("statusCategory") or {}).get("key") == "done":
                chosen = t
                break
        if chosen is None:
            names = ", ".join(str(t.get("name")) for t in transitions) or "none"
            raise ProviderError(self.name, f"no done transition on {ref} (available: {names})", retryable=False)
        self._call("POST", f"/rest/api/3/issue/{ref}/transitions", json={"transition": {"id": str(chosen["id"])}})

    def find_open(self, doc: TicketDoc) -> Opened | None:
        jql = f'labels = "{doc.label}" AND statusCategory != Done ORDER BY created DESC'
        body = {"jql": jql, "fields": ["key"], "maxResults": 1}
        issues = self._call("POST", "/rest/api/3/search/jql", json=body).json().get("issues") or []
        if not issues:
            return None
        key = str(issues[0].get("key"))
        return Opened(key, self._url(f"/browse/{key}"))
