"""The simulator's shared state: the account-change counter (*generation*) and the sandbox-only tables.

Every mutating AWS call on a service the simulator reads bumps the generation (hooks in
:mod:`esm_medic_sandbox.simulator`); so do edits of the sandbox DNS and SCRAM tables below. Memoised account reads
(:mod:`esm_medic_sandbox.sim_reader`) and per-ESM results are valid for one generation.
"""

from __future__ import annotations

import threading
from typing import Any

from esm_medic_sandbox import timing

lock = threading.RLock()
_lock = lock
_generation = 0


def _bump(*_: Any) -> None:
    global _generation
    with _lock:
        _generation += 1


def generation() -> int:
    """The current account-change counter (for tests and the demo). A sandbox transition window that ended since
    the last look (an endpoint turned available, a cluster ACTIVE) counts as a change."""
    if timing.due():
        _bump()
    return _generation


def invalidate() -> None:
    """Forget memoised account reads: call after editing moto backends directly (not through the API)."""
    _bump()


class _TrackedDict(dict[str, str]):
    """A dict whose edits count as account changes."""

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        _bump()

    def __delitem__(self, key: Any) -> None:
        super().__delitem__(key)
        _bump()

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        _bump()

    def pop(self, *args: Any) -> Any:
        value = super().pop(*args)
        _bump()
        return value

    def setdefault(self, key: Any, default: Any = None) -> Any:
        value = super().setdefault(key, default)
        _bump()
        return value

    def clear(self) -> None:
        super().clear()
        _bump()


_DNS: _TrackedDict = _TrackedDict()
_SCRAM: _TrackedDict = _TrackedDict()


def dns_table() -> dict[str, str]:
    """The sandbox DNS: broker host name (lower case) -> IP address. Self-managed broker names resolve only when
    they are here (or are IP literals); MSK broker names always resolve. Edits count as account changes."""
    return _DNS


def scram_users() -> dict[str, str]:
    """SCRAM / SASL-PLAIN credentials the brokers know: username -> password. Edits count as account changes."""
    return _SCRAM


def register_dns(host: str, ip: str = "10.0.0.10") -> None:
    _DNS[host.strip().lower()] = ip


def register_scram_user(username: str, password: str) -> None:
    _SCRAM[username] = password


def bump() -> None:
    """Count one account change."""
    _bump()


def clear_tables() -> None:
    """Empty the DNS and SCRAM tables (one account change)."""
    with _lock:
        dict.clear(_DNS)
        dict.clear(_SCRAM)
        _bump()
