"""Ticket providers, chosen by configuration; several at once.

``ESM_MEDIC_TICKET_PROVIDERS`` lists them in order (``jira,servicenow,github,pagerduty,file``; default ``file``).
Each provider reads its own settings (see :class:`ProviderSettings`) and its credentials from one Secrets Manager
secret through Powertools Parameters (cached). A provider that cannot be built (no URL, no secret) fails with a
:class:`ProviderError` at delivery time, so the outbox records it like any other failure.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from esm_medic.notify.providers.base import Opened, ProviderError, TicketDoc, TicketProvider, read_credentials

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws

PROVIDER_NAMES = ("jira", "servicenow", "github", "pagerduty", "file")


@dataclass(frozen=True)
class ProviderSettings:
    providers: tuple[str, ...] = ("file",)
    ticket_dir: str = ""
    jira_url: str = ""  # https://<site>.atlassian.net
    jira_project: str = ""
    jira_issue_type: str = "Task"
    jira_done_transition: str = ""
    jira_secret: str = ""  # {"email", "api_token"}
    servicenow_url: str = ""  # https://<instance>.service-now.com
    servicenow_assignment_group: str = ""
    servicenow_close_code: str = "Solution provided"
    servicenow_secret: str = ""  # {"username", "password"}
    github_repo: str = ""  # owner/name
    github_api_url: str = "https://api.github.com"
    github_secret: str = ""  # {"token"}
    pagerduty_url: str = "https://events.pagerduty.com/v2/enqueue"
    pagerduty_secret: str = ""  # {"routing_key"}
    timeout: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ProviderSettings:
        e = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = e.get(f"ESM_MEDIC_{f.name.upper()}" if f.name != "timeout" else "ESM_MEDIC_TICKET_TIMEOUT")
            if f.name == "providers":
                raw = e.get("ESM_MEDIC_TICKET_PROVIDERS")
                if raw and raw.strip():
                    values["providers"] = tuple(p.strip().lower() for p in raw.split(",") if p.strip())
            elif raw is not None and raw.strip():
                values[f.name] = float(raw) if f.name == "timeout" else raw.strip()
        values.setdefault("ticket_dir", (e.get("ESM_MEDIC_TICKET_DIR") or "").strip())
        return cls(**values)

    @classmethod
    def coerce(cls, obj: Any) -> ProviderSettings:
        if isinstance(obj, cls):
            return obj
        base = cls.from_env()
        known = {f.name for f in fields(cls)}
        if obj is not None and not isinstance(obj, Mapping):
            obj = {k: getattr(obj, k) for k in known if getattr(obj, k, None)}  # e.g. NotifySettings.ticket_dir
        if isinstance(obj, Mapping):
            extra = {k: v for k, v in obj.items() if k in known}
            if "providers" in extra and extra["providers"] is not None:
                extra["providers"] = tuple(extra["providers"])
            return cls(**{**{f.name: getattr(base, f.name) for f in fields(cls)}, **extra})
        return base

    def names(self) -> tuple[str, ...]:
        unknown = [p for p in self.providers if p not in PROVIDER_NAMES]
        if unknown:
            raise ValueError(f"unknown ticket provider(s) {unknown}; known: {', '.join(PROVIDER_NAMES)}")
        return tuple(dict.fromkeys(self.providers)) or ("file",)

    def resolved_ticket_dir(self) -> Path:
        from esm_medic.notify.sinks import default_ticket_dir

        return Path(self.ticket_dir) if self.ticket_dir else default_ticket_dir()


def configured_provider_names(settings: Any = None) -> tuple[str, ...]:
    """The providers a ticket goes to with the current configuration (the demo prints them)."""
    return ProviderSettings.coerce(settings).names()


def make_provider(aws: Aws | None, name: str, s: ProviderSettings) -> TicketProvider:
    """Build provider ``name``; raises ProviderError (not retryable) when its configuration is incomplete."""
    from esm_medic.notify.providers.base import Http

    http = Http(name, timeout=s.timeout)
    if name == "file":
        from esm_medic.notify.providers.file import FileProvider

        return FileProvider(s.resolved_ticket_dir())
    if name == "jira":
        from esm_medic.notify.providers.jira import JiraProvider

        _need(name, jira_url=s.jira_url, jira_project=s.jira_project)
        cred = read_credentials(aws, name, s.jira_secret, ("email", "api_token"))
        return JiraProvider(
            s.jira_url,
            s.jira_project,
            (cred["email"], cred["api_token"]),
            issue_type=s.jira_issue_type,
            done_transition=s.jira_done_transition,
            http=http,
        )
    if name == "servicenow":
        from esm_medic.notify.providers.servicenow import ServiceNowProvider

        _need(name, servicenow_url=s.servicenow_url)
        cred = read_credentials(aws, name, s.servicenow_secret, ("username", "password"))
        return ServiceNowProvider(
            s.servicenow_url,
            (cred["username"], cred["password"]),
            assignment_group=s.servicenow_assignment_group,
            close_code=s.servicenow_close_code,
            http=http,
        )
    if name == "github":
        from esm_medic.notify.providers.github import GitHubProvider

        _need(name, github_repo=s.github_repo)
        cred = read_credentials(aws, name, s.github_secret, ("token",))
        return GitHubProvider(s.github_repo, cred["token"], api_url=s.github_api_url, http=http)
    if name == "pagerduty":
        from esm_medic.notify.providers.pagerduty import PagerDutyProvider

        cred = read_credentials(aws, name, s.pagerduty_secret, ("routing_key",))
        return PagerDutyProvider(cred["routing_key"], url=s.pagerduty_url, http=http)
    raise ProviderError(name, "unknown provider", retryable=False)


def _need(provider: str, **values: str) -> None:
    missing = [f"ESM_MEDIC_{k.upper()}" for k, v in values.items() if not v]
    if missing:
        raise ProviderError(provider, f"not configured: {', '.join(missing)} unset", retryable=False)


__all__ = [
    "PROVIDER_NAMES",
    "Opened",
    "ProviderError",
    "ProviderSettings",
    "TicketDoc",
    "TicketProvider",
    "configured_provider_names",
    "make_provider",
]
