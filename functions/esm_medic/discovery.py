"""The member accounts an organization install finds by itself (``ESM_MEDIC_ORGANIZATION_ID`` /
``ESM_MEDIC_MEMBER_OUS``), for the central sweeper.

- With organizational units configured: the ACTIVE accounts of each OU and of its child OUs, walked with
  ListOrganizationalUnitsForParent + ListAccountsForParent (paginated);
- with only an organization id: every ACTIVE account of the organization (ListAccounts, paginated);
- the install's own account is never a member; suspended / closed / pending-closure accounts are skipped.

Organizations answers only the management account or a delegated administrator: AccessDenied,
AWSOrganizationsNotInUse (or any other refusal) become :attr:`Discovery.error` (one log line and a metric in the
handler) and the sweep goes on with the listed accounts.

The answer (or the refusal) is cached per central adapter, i.e. per container, for ``ttl`` seconds (15 minutes by
default), so a sweep every minute lists the organization four times an hour, not sixty. The same cache remembers the
discovered accounts whose ``esm-medic-diagnosis`` role could not be assumed (not enrolled: the StackSet has not
reached them yet) and when to try them again (:func:`not_enrolled_until` / :func:`mark_not_enrolled`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from esm_medic.aws import error_code, error_message

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.accounts import MemberSettings
    from esm_medic.aws import Aws

TTL_SECONDS = 900.0
_CACHE_ATTR = "_esm_medic_discovery"
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Discovery:
    accounts: tuple[str, ...] = ()
    error: str = ""  # why Organizations could not be listed (the listed accounts are still swept)
    code: str = ""
    fresh: bool = False  # listed by this call (False: from the container's cache)


def _state(central: Aws) -> dict[str, object]:
    state: dict[str, object] = central.__dict__.setdefault(_CACHE_ATTR, {"found": {}, "not_enrolled": {}})
    return state


def _active(account: dict[str, object]) -> bool:
    # "State" replaces "Status" in newer API versions; either says ACTIVE for a usable account
    return str(account.get("State") or account.get("Status") or "") == "ACTIVE"


def _ou_accounts(central: Aws, ous: tuple[str, ...]) -> list[str]:
    found: list[str] = []
    todo, seen = list(ous), set()
    while todo:
        parent = todo.pop(0)
        if parent in seen:
            continue
        seen.add(parent)
        found += [
            str(a["Id"])
            for a in central.paginate("organizations", "list_accounts_for_parent", "Accounts", ParentId=parent)
            if _active(a)
        ]
        todo += [
            str(o["Id"])
            for o in central.paginate(
                "organizations", "list_organizational_units_for_parent", "OrganizationalUnits", ParentId=parent
            )
        ]
    return found


def discover(
    central: Aws,
    settings: MemberSettings,
    home: str,
    *,
    ttl: float = TTL_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> Discovery:
    """The organization's (or OUs') ACTIVE accounts other than ``home``; empty without an organization configured."""
    if not settings.organization and not settings.ous:
        return Discovery()
    key = (settings.organization or "", settings.ous, home)
    found = _state(central)["found"]
    assert isinstance(found, dict)
    with _LOCK:
        cached = found.get(key)
    if cached is not None and clock() < cached[0]:
        result: Discovery = cached[1]
        return Discovery(result.accounts, result.error, result.code, fresh=False)
    try:
        if settings.ous:
            listed = _ou_accounts(central, settings.ous)
        else:
            every = central.paginate("organizations", "list_accounts", "Accounts")
            listed = [str(a["Id"]) for a in every if _active(a)]
        result = Discovery(tuple(sorted(set(listed) - {home})), fresh=True)
    except Exception as exc:  # refused or not an organization: the listed accounts are still swept
        code = error_code(exc) or type(exc).__name__
        where = f"the organizational units {', '.join(settings.ous)}" if settings.ous else "the organization"
        result = Discovery(
            error=(
                f"cannot list the accounts of {where}: {code}: {error_message(exc)[:300]} (Organizations answers only "
                "the management account or a delegated administrator; only the listed member accounts are swept)"
            ),
            code=code,
            fresh=True,
        )
    with _LOCK:
        found[key] = (clock() + ttl, result)
    return result


def not_enrolled_until(central: Aws, account: str, clock: Callable[[], float] = time.monotonic) -> bool:
    """True while ``account`` is remembered as not enrolled (its role was refused less than a TTL ago)."""
    waiting = _state(central)["not_enrolled"]
    assert isinstance(waiting, dict)
    with _LOCK:
        until = waiting.get(account)
    return until is not None and clock() < until


def mark_not_enrolled(
    central: Aws, account: str, *, ttl: float = TTL_SECONDS, clock: Callable[[], float] = time.monotonic
) -> None:
    waiting = _state(central)["not_enrolled"]
    assert isinstance(waiting, dict)
    with _LOCK:
        waiting[account] = clock() + ttl


def clear(central: Aws) -> None:
    """Forget what this container discovered (the next sweep lists the organization again)."""
    with _LOCK:
        central.__dict__.pop(_CACHE_ATTR, None)


__all__ = ["TTL_SECONDS", "Discovery", "clear", "discover", "mark_not_enrolled", "not_enrolled_until"]
