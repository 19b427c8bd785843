"""The detectors' account check (watch, CloudTrail denial, system logs): resolve the event's account to an adapter,
log and count what cannot be acted on. See :mod:`esm_medic.detect.event_account`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from esm_medic.handlers._common import count, logger

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws
    from esm_medic.detect.event_account import EventAccount


def account_adapter(central: Aws, account: str | None, source: str) -> EventAccount:
    """The resolved account for an event seen by ``source`` (a handler name), from the handler's own adapter. An
    account that is not this install's: logged and counted (``UnlistedAccountEvents``); a member that cannot be
    reached: logged and counted (``AccountsFailed``, alarmed)."""
    from esm_medic.detect.event_account import resolve

    found = resolve(central, account)
    if found.ignored:
        logger.warning("event from an unlisted account ignored", extra={"account": account, "source": source})
        count("UnlistedAccountEvents", 1)
    elif found.failed:
        logger.error(
            "member account not reachable",
            extra={"account": account, "source": source, "error_code": found.code, "reason": found.failed[:500]},
        )
        count("AccountsFailed", 1)
    elif found.account:
        logger.append_keys(account=found.account)
    return found


def not_acted(found: EventAccount, **extra: Any) -> dict[str, Any]:
    """The handler output for an event not acted on (ignored: ok; member unreachable: not ok)."""
    if found.ignored:
        return {"ok": True, "ignored": True, **found.to_dict(), **extra}
    return {"ok": False, "error": found.failed[:1000], **found.to_dict(), **extra}
