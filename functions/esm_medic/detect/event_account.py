"""Which account an incoming detection event is about, and the adapter to act there with.

A central install receives events from member accounts too: their EventBridge rules (the member stack) forward
CloudTrail ESM API calls, access denials and ESM alarms to the central bus, where the envelope ``account`` still
names the member; their ESM system logs arrive with the payload's ``owner``. The fast detectors (watch, CloudTrail
denial, system-log path) must read the ESM where it lives, through the member's ``esm-medic-diagnosis`` role, while
the snapshots, markers and the events they put stay central (:class:`esm_medic.accounts.MemberAws`).

:func:`resolve` decides, for an account id:

- none, or the install's own account: the central adapter;
- a configured member (``ESM_MEDIC_MEMBER_ACCOUNTS``), or, when the install serves an organization
  (``ESM_MEDIC_ORGANIZATION_ID``, with or without a list: the sweeper discovers its accounts, and the central bus
  policy admits only that organization's accounts besides the listed ones), any other account: the member adapter,
  assumed now so a refusal is known at once;
- anything else: ignored (never acted on); the caller logs it and counts ``UnlistedAccountEvents``.

A member whose role cannot be assumed, or a broken member configuration, comes back as ``failed`` with the reason
(the caller logs and counts ``AccountsFailed``, the metric the sweeper's alarm already reads); nothing raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.accounts import MemberSettings
    from esm_medic.aws import Aws


@dataclass(frozen=True)
class EventAccount:
    """The outcome of :func:`resolve`: ``aws`` set when the event may be acted on."""

    account: str | None  # the member account, None for the install's own
    aws: Aws | None = None
    ignored: str = ""  # why the event is not for this install
    failed: str = ""  # why the member could not be reached
    code: str = ""  # the error code of a failure (AccessDenied, AccountConfigError, ...)

    @property
    def ok(self) -> bool:
        return self.aws is not None

    def to_dict(self) -> dict[str, str | None]:
        out: dict[str, str | None] = {"account": self.account}
        if self.ignored:
            out["reason"] = self.ignored
        if self.failed:
            out["failure"] = self.failed
            out["error_code"] = self.code
        return out


def resolve(
    central: Aws,
    account: str | None,
    *,
    purpose: str = "diagnosis",
    settings: MemberSettings | None = None,
    env: Mapping[str, str] | None = None,
) -> EventAccount:
    """The adapter for an event about ``account`` (see the module docstring)."""
    from esm_medic.accounts import (
        AccountAccessError,
        AccountConfigError,
        MemberSettings,
        home_account,
        member_aws,
    )
    from esm_medic.aws import error_code

    if not account:
        return EventAccount(None, central)
    try:
        cfg = settings if settings is not None else MemberSettings.from_env(env)
    except AccountConfigError as exc:
        return EventAccount(account, failed=str(exc), code="AccountConfigError")
    # a configured member needs no identity call; anything else is compared with the install's own account
    if account not in cfg.accounts:
        try:
            home = home_account(central)
        except Exception as exc:  # STS refused / unreachable: say so, do not guess
            code = error_code(exc) or type(exc).__name__
            return EventAccount(account, failed=f"cannot tell the install's own account: {code}: {exc}", code=code)
        if account == home:
            return EventAccount(None, central)
        if not cfg.organization:
            where = "ESM_MEDIC_MEMBER_ACCOUNTS" if cfg.accounts else "no member accounts or organization configured"
            return EventAccount(account, ignored=f"account {account} is not a member account of this install ({where})")
    try:
        aws = member_aws(central, account, purpose=purpose, settings=cfg)
    except AccountAccessError as exc:
        return EventAccount(account, failed=str(exc), code=exc.code or "AccountAccessError")
    except AccountConfigError as exc:
        return EventAccount(account, failed=str(exc), code="AccountConfigError")
    return EventAccount(account, aws)


__all__ = ["EventAccount", "resolve"]
