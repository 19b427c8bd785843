"""The central sweeper over member accounts: one install sweeps its own account and every configured member.

Why one central sweeper, not a sweeper in each member account (``bench/bench_sweep.py`` measures it): a member
costs the central sweep one AssumeRole per credential lifetime (an hour; the adapter renews it itself) plus what
sweeping its ESMs costs anyway (ceil(N/100) ListEventSourceMappings). The digest, the snapshots, the outbox and the
events stay in the central account, read with ONE digest Query per invocation for all accounts. A per-account
sweeper would add a scheduled Lambda, its logs and its alarms to every account, a cross-account PutEvents path back
to the central bus, and a second copy of the state per account, for no fewer AWS calls.

One invocation:

1. the accounts are the install's own, ``ESM_MEDIC_MEMBER_ACCOUNTS`` and, for an organization install, the
   ACTIVE accounts of the organization or of ``ESM_MEDIC_MEMBER_OUS`` (:mod:`esm_medic.discovery`, listed once per
   15 minutes per container), in an order that rotates every minute (so a deadline never starves the same accounts);
2. each member is swept through its ``esm-medic-diagnosis`` role (:func:`esm_medic.accounts.member_aws`): the
   listing and the confirming Gets happen in the member, the state and the events stay central (events name the
   ESM's account through its function ARN and ``account``);
3. a listed member that cannot be assumed (trust, external id, no stack) is recorded with its error (failed,
   alarmed) and skipped; a DISCOVERED account whose role cannot be assumed is "not enrolled" (the StackSet has not
   reached it yet): counted apart, not alarmed, tried again after the discovery TTL; the others are swept as usual;
4. garbage collection (forgetting ESMs no longer listed) runs only when every listed or enrolled account was reached
   and listed completely, over the union of the listings: the digest is shared, so a partial picture would forget
   live ESMs. A not-enrolled account blocks nothing (its ESMs were never swept, or its stack was removed).

Accounts are swept one after the other (each sweep already spreads its writes over ``workers`` threads).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from esm_medic.aws import error_code
from esm_medic.detect.passes import PassesResult
from esm_medic.detect.settings import SweepSettings
from esm_medic.detect.snapshot import SnapshotStore, iso
from esm_medic.detect.sweeper import SweepResult, gc_due, sweep

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.accounts import MemberSettings
    from esm_medic.aws import Aws

logger = Logger(service="esm-medic", child=True)


@dataclass
class AccountSweep:
    account: str
    result: SweepResult | None = None
    error: str = ""  # why the account was not swept (AccessDenied on AssumeRole, ...)
    code: str = ""


@dataclass
class AccountsSweep:
    """What one invocation did in every account; :meth:`passes` gives the handler its usual view."""

    accounts: list[AccountSweep] = field(default_factory=list)
    combined: SweepResult = field(default_factory=SweepResult)
    discovered: tuple[str, ...] = ()  # the organization's accounts found by discovery (not listed)
    not_enrolled: list[str] = field(default_factory=list)  # discovered accounts whose role cannot be assumed
    discovery_error: str = ""  # why the organization could not be listed (the listed accounts were swept)
    discovery_code: str = ""

    @property
    def failed(self) -> list[AccountSweep]:
        return [a for a in self.accounts if a.result is None]

    def passes(self) -> PassesResult:
        return PassesResult(passes=[self.combined], planned=1)

    def summary(self) -> dict[str, Any]:
        out = self.passes().summary()
        out["accounts"] = {
            a.account: ({"kafka": a.result.kafka, "complete": a.result.complete} if a.result else {"error": a.error})
            for a in self.accounts
        }
        out["accounts_failed"] = len(self.failed)
        out["accounts_discovered"] = len(self.discovered)
        out["accounts_not_enrolled"] = len(self.not_enrolled)
        if self.discovery_error:
            out["discovery_error"] = self.discovery_error
        return out


def rotation(accounts: list[str], now: datetime) -> list[str]:
    """``accounts`` starting at a different one every minute (the own account keeps no privilege)."""
    if not accounts:
        return []
    k = int(now.timestamp() // 60) % len(accounts)
    return accounts[k:] + accounts[:k]


def _merge(into: SweepResult, r: SweepResult) -> None:
    for f in fields(SweepResult):
        a, b = getattr(into, f.name), getattr(r, f.name)
        if isinstance(a, bool) or f.name in ("started_at", "stopped_reason", "duration_s", "calls"):
            continue
        if isinstance(a, int):
            setattr(into, f.name, a + b)
        elif isinstance(a, list):
            a.extend(b)
    into.complete = into.complete and r.complete
    into.stopped_reason = into.stopped_reason or r.stopped_reason


def sweep_accounts(
    central: Aws,
    members: MemberSettings,
    *,
    settings: SweepSettings,
    deadline: float | None = None,
    force_gc: bool = False,
    now: datetime | None = None,
) -> AccountsSweep:
    """Sweep the install's own account and each member account (see the module docstring)."""
    from esm_medic.accounts import AccountAccessError, AccountConfigError, home_account, member_aws
    from esm_medic.discovery import discover, mark_not_enrolled, not_enrolled_until

    now = now or datetime.now(UTC)
    started = time.monotonic()
    central_before = Counter(central.calls)
    home = home_account(central)
    found = discover(central, members, home)
    if found.error and found.fresh:
        logger.warning("organization accounts not discovered", extra={"reason": found.error, "code": found.code})
    discovered = tuple(a for a in found.accounts if a not in members.accounts)
    out = AccountsSweep(
        combined=SweepResult(started_at=iso(now)),
        discovered=discovered,
        discovery_error=found.error,
        discovery_code=found.code,
    )
    waiting = [a for a in discovered if not_enrolled_until(central, a)]
    out.not_enrolled.extend(waiting)
    candidates = [*(a for a in members.accounts if a != home), *(a for a in discovered if a not in waiting)]
    order = rotation([home, *candidates], now)
    store = SnapshotStore(central, settings.table or None)
    digest = store.digest_read()
    listed: set[str] = set()
    member_calls: Counter[str] = Counter()  # a member adapter counts its own clients; state goes through central's
    for account in order:
        if deadline is not None and time.monotonic() >= deadline:
            out.combined.complete = False
            out.combined.stopped_reason = "deadline: stopped before the Lambda timeout; the next sweep resumes"
            out.accounts.append(AccountSweep(account, error="not reached before the deadline", code="Deadline"))
            continue
        try:
            aws = central if account == home else member_aws(central, account, purpose="diagnosis", settings=members)
            result = sweep(aws, now=now, settings=settings, deadline=deadline, digest=digest, listed=listed)
        except AccountAccessError as exc:
            if account in discovered:  # the StackSet has not reached it yet: not an outage
                mark_not_enrolled(central, account)
                out.not_enrolled.append(account)
                logger.info("discovered account not enrolled", extra={"account": account, "reason": str(exc)[:300]})
                continue
            code = exc.code or type(exc).__name__
            logger.warning("member account not swept", extra={"account": account, "reason": str(exc)[:500]})
            out.accounts.append(AccountSweep(account, error=str(exc)[:1000], code=code))
            out.combined.errors.append(f"account {account}: {str(exc)[:300]}")
            continue
        except AccountConfigError as exc:
            code = type(exc).__name__
            logger.warning("member account not swept", extra={"account": account, "reason": str(exc)[:500]})
            out.accounts.append(AccountSweep(account, error=str(exc)[:1000], code=code))
            out.combined.errors.append(f"account {account}: {str(exc)[:300]}")
            continue
        except Exception as exc:  # one member's refusal or outage never stops the others
            code = error_code(exc) or type(exc).__name__
            logger.warning("account sweep failed", extra={"account": account, "error_code": code})
            out.accounts.append(AccountSweep(account, error=f"{code}: {exc}"[:1000], code=code))
            out.combined.errors.append(f"account {account}: {code}: {str(exc)[:300]}")
            continue
        out.accounts.append(AccountSweep(account, result=result))
        if aws is not central:
            member_calls.update(result.calls)
        _merge(out.combined, result)
    everything = not out.failed and all(a.result is not None and a.result.complete for a in out.accounts)
    if everything and (force_gc or gc_due(now, settings)):
        _collect_garbage(store, digest, listed, out.combined)
    # central's clients saw the home sweep, every account's state and events, AssumeRole and the GC
    out.combined.calls = dict(Counter(central.calls) - central_before + member_calls)
    out.combined.complete = out.combined.complete and not out.failed
    out.combined.duration_s = round(time.monotonic() - started, 3)
    return out


def _collect_garbage(store: SnapshotStore, digest: dict[str, str], listed: set[str], result: SweepResult) -> None:
    """Forget the ESMs the shared digest knows that no account listed (snapshots created before this sweep)."""
    result.gc_ran = True
    gone = sorted(set(digest) - listed)
    forgotten = [u for u in gone if store.delete(u, created_before=result.started_at)]
    if forgotten:
        store.digest_remove(forgotten)
    result.deleted.extend(forgotten)


__all__ = ["AccountSweep", "AccountsSweep", "rotation", "sweep_accounts"]
