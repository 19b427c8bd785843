"""Deployment settings, from CDK context (``-c Name=value`` or ``cdk.json``) or a JSON file named by the context
value ``ConfigFile``, validated before anything is synthesised: every problem is reported at once, in one error.

| key | meaning | default |
|---|---|---|
| DefaultMode | off, notify, approve or auto for ESMs without an ``esm-medic:mode`` tag | approve |
| SweepMinutes | the sweeper's schedule, 1-60 | 1 |
| SweepHoldSeconds | how long a status must hold before the workflow acts, 0-3600 | 120 |
| Budgets | changes allowed per hour: ``{"sg": n, "vpc": n, "account": n}`` | the engine's defaults |
| Tracing | X-Ray active tracing on the functions and the state machine | true |
| AlarmEmail | an address subscribed to the alarm topic | none |
| SlackChannel, TicketProviders | notification and ticket targets (passed to the functions) | none |
| CentralAccount | member stacks: the account whose esm-medic functions may assume the member roles | required there |
| ExternalId | member stacks: the sts:ExternalId the central install presents (8+ characters) | required there |
| OrganizationId | member stacks: callers must be in this organization (``o-...``); central: any member of it | none |
| MemberAccounts | central stack: the member accounts it may act in (12 digits each) | none |
| OrganizationalUnits | central: sweep the accounts of these OUs (``ou-...``, and child OUs), not the whole org | none |
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODES = ("off", "notify", "approve", "auto")
BUDGET_KEYS = ("sg", "vpc", "account")
PROVIDERS = ("jira", "servicenow", "github", "pagerduty", "sns", "file")


class SettingsError(ValueError):
    """One or more deployment settings are invalid; the message lists each."""


@dataclass(frozen=True)
class Settings:
    default_mode: str = "approve"
    sweep_minutes: int = 1
    sweep_hold_seconds: int = 120
    budgets: dict[str, int] = field(default_factory=dict)
    tracing: bool = True
    alarm_email: str | None = None
    slack_channel: str | None = None
    ticket_providers: tuple[str, ...] = ()
    central_account: str | None = None
    external_id: str | None = None
    organization_id: str | None = None
    member_accounts: tuple[str, ...] = ()
    organizational_units: tuple[str, ...] = ()


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    return {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}.get(text)


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value]
    text = str(value).strip()
    if text.startswith("["):
        try:
            return [str(v).strip() for v in json.loads(text)]
        except json.JSONDecodeError:
            return [text]
    return [v.strip() for v in text.split(",") if v.strip()]


def load(context: dict[str, Any], *, member: bool = False) -> Settings:
    """Settings from a context mapping (``ConfigFile`` merged under it); raises :class:`SettingsError`."""
    ctx = dict(context)
    errors: list[str] = []
    if ctx.get("ConfigFile"):
        path = Path(str(ctx["ConfigFile"]))
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(loaded, dict):
                raise ValueError("the file must hold one JSON object")
            ctx = {**loaded, **{k: v for k, v in ctx.items() if k != "ConfigFile"}}
        except (OSError, ValueError) as exc:
            errors.append(f"ConfigFile {path}: {exc}")

    mode = str(ctx.get("DefaultMode", "approve")).strip().lower()
    if mode not in MODES:
        errors.append(f"DefaultMode must be one of {', '.join(MODES)} (got {ctx.get('DefaultMode')!r})")
    sweep = _int(ctx.get("SweepMinutes", 1))
    if sweep is None or not 1 <= sweep <= 60:
        errors.append(f"SweepMinutes must be a whole number from 1 to 60 (got {ctx.get('SweepMinutes')!r})")
    hold = _int(ctx.get("SweepHoldSeconds", 120))
    if hold is None or not 0 <= hold <= 3600:
        errors.append(f"SweepHoldSeconds must be a whole number from 0 to 3600 (got {ctx.get('SweepHoldSeconds')!r})")
    budgets: dict[str, int] = {}
    raw_budgets = ctx.get("Budgets") or {}
    if isinstance(raw_budgets, str):
        try:
            raw_budgets = json.loads(raw_budgets)
        except json.JSONDecodeError:
            raw_budgets = None
    if not isinstance(raw_budgets, dict):
        errors.append('Budgets must be a JSON object like {"sg": 2, "vpc": 5, "account": 20}')
    else:
        for k, v in raw_budgets.items():
            n = _int(v)
            if k not in BUDGET_KEYS:
                errors.append(f"Budgets: unknown key {k!r} (known: {', '.join(BUDGET_KEYS)})")
            elif n is None or n < 0:
                errors.append(f"Budgets.{k} must be a whole number >= 0 (got {v!r})")
            else:
                budgets[k] = n
    tracing = _bool(ctx.get("Tracing", True))
    if tracing is None:
        errors.append(f"Tracing must be true or false (got {ctx.get('Tracing')!r})")
    email = ctx.get("AlarmEmail") or None
    if email is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", str(email)):
        errors.append(f"AlarmEmail is not an e-mail address: {email!r}")
    providers = tuple(p.lower() for p in _list(ctx.get("TicketProviders")))
    bad = [p for p in providers if p not in PROVIDERS]
    if bad:
        errors.append(f"TicketProviders: unknown {', '.join(bad)} (known: {', '.join(PROVIDERS)})")
    members = tuple(_list(ctx.get("MemberAccounts")))
    errors += [f"MemberAccounts: {a!r} is not a 12-digit account id" for a in members if not re.fullmatch(r"\d{12}", a)]
    central = ctx.get("CentralAccount") or None
    external_id = ctx.get("ExternalId") or None
    org = ctx.get("OrganizationId") or None
    if central is not None and not re.fullmatch(r"\d{12}", str(central)):
        errors.append(f"CentralAccount must be a 12-digit account id (got {central!r})")
    if org is not None and not re.fullmatch(r"o-[a-z0-9]{10,32}", str(org)):
        errors.append(f"OrganizationId must look like o-abcdefghij (got {org!r})")
    ous = tuple(_list(ctx.get("OrganizationalUnits")))
    errors += [
        f"OrganizationalUnits: {o!r} is not an organizational unit id (ou-xxxx-yyyyyyyy)"
        for o in ous
        if not re.fullmatch(r"ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}", o)
    ]
    if ous and org is None:
        errors.append("OrganizationalUnits needs OrganizationId (the organization the units belong to)")
    if external_id is not None and not re.fullmatch(r"[\w+=,.@:/-]{8,1224}", str(external_id)):
        errors.append("ExternalId must be 8-1224 characters of letters, digits and +=,.@:/-_")
    if member:
        if central is None:
            errors.append("CentralAccount is required for the member stack (-c CentralAccount=123456789012)")
        if external_id is None:
            errors.append("ExternalId is required for the member stack (-c ExternalId=...)")
    if errors:
        raise SettingsError("invalid esm-medic settings:\n- " + "\n- ".join(errors))
    return Settings(
        default_mode=mode,
        sweep_minutes=int(sweep or 1),
        sweep_hold_seconds=int(hold if hold is not None else 120),
        budgets=budgets,
        tracing=bool(tracing),
        alarm_email=str(email) if email else None,
        slack_channel=str(ctx["SlackChannel"]) if ctx.get("SlackChannel") else None,
        ticket_providers=providers,
        central_account=str(central) if central else None,
        external_id=str(external_id) if external_id else None,
        organization_id=str(org) if org else None,
        member_accounts=members,
        organizational_units=ous,
    )
