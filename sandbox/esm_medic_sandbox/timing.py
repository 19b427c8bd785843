"""The sandbox's sense of time: one knob for how long AWS-like transitions last.

AWS is not instant: an ESM passes through ``Creating`` / ``Enabling`` / ``Disabling`` / ``Updating``, an interface
endpoint is ``pending`` before ``available`` and ``deleting`` before ``deleted`` (its network interfaces linger a
little longer, so its security group cannot be deleted yet), a Route 53 change is ``PENDING`` before ``INSYNC`` and an
MSK cluster is ``CREATING`` before ``ACTIVE``. The sandbox patches keep those windows, each :func:`delay` seconds long,
so the product's wait, retry and restart paths really run.

The knob, strongest first:

1. :func:`set_delay` / :func:`delays` in this process (tests that want zero, or a specific value, ask for it);
2. the environment variable ``ESM_MEDIC_SANDBOX_DELAY_SECONDS`` (``0`` switches the windows off);
3. :data:`DEFAULT_DELAY_SECONDS`.

A window is decided when the change is made (``Window.start()``) and read lazily on every describe, so a sandbox
in another process (``sandbox serve``) behaves the same and nothing runs in the background.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

log = logging.getLogger(__name__)

ENV_VAR = "ESM_MEDIC_SANDBOX_DELAY_SECONDS"
DEFAULT_DELAY_SECONDS = 1.0
MAX_DELAY_SECONDS = 300.0
#: network interfaces of a deleted endpoint outlive it by this fraction of the delay (DependencyViolation window)
ENI_LINGER_FACTOR = 0.5

_LOCK = threading.Lock()
_OVERRIDE: float | None = None
_WARNED: set[str] = set()


def _clamp(value: float) -> float:
    return max(0.0, min(float(value), MAX_DELAY_SECONDS))


def delay() -> float:
    """Seconds each AWS-like transition lasts in the sandbox (0 = instant)."""
    with _LOCK:
        if _OVERRIDE is not None:
            return _OVERRIDE
    raw = os.environ.get(ENV_VAR, "").strip()
    if not raw:
        return DEFAULT_DELAY_SECONDS
    try:
        return _clamp(float(raw))
    except ValueError:
        if raw not in _WARNED:
            _WARNED.add(raw)
            log.warning("%s=%r is not a number of seconds; using %s", ENV_VAR, raw, DEFAULT_DELAY_SECONDS)
        return DEFAULT_DELAY_SECONDS


def set_delay(seconds: float | None) -> float | None:
    """Set the delay for this process (None: back to the environment / default). Returns the previous setting."""
    global _OVERRIDE
    with _LOCK:
        previous = _OVERRIDE
        _OVERRIDE = None if seconds is None else _clamp(seconds)
    return previous


@contextmanager
def delays(seconds: float | None) -> Iterator[float]:
    """``with delays(0):`` instant transitions inside the block; restored afterwards."""
    previous = set_delay(seconds)
    try:
        yield delay()
    finally:
        set_delay(previous)


def now() -> float:
    return time.monotonic()


@dataclass
class Window:
    """A transitional state and the moment it ends."""

    state: str
    until: float
    final: str = ""

    @classmethod
    def start(cls, state: str, final: str = "", *, factor: float = 1.0) -> Window | None:
        """A window of ``delay() * factor`` seconds, or None when the delay is zero."""
        seconds = delay() * factor
        if seconds <= 0:
            return None
        return cls(state, now() + seconds, final)

    @property
    def active(self) -> bool:
        return now() < self.until

    @property
    def remaining(self) -> float:
        return max(0.0, self.until - now())


def active(window: Window | None) -> Window | None:
    """The window while it lasts, else None."""
    return window if window is not None and window.active else None


# ---------------------------------------------------------------------------------------------- deadlines
_DEADLINES: list[float] = []


def register_deadline(until: float) -> None:
    """Note that the account changes by itself at ``until`` (a window ends): :func:`due` reports it once."""
    import heapq

    with _LOCK:
        heapq.heappush(_DEADLINES, until)


def due() -> bool:
    """True (once) when a registered window has ended since the last call: cached account reads are stale."""
    import heapq

    passed = False
    current = now()
    with _LOCK:
        while _DEADLINES and _DEADLINES[0] <= current:
            heapq.heappop(_DEADLINES)
            passed = True
    return passed


def forget_deadlines() -> None:
    with _LOCK:
        _DEADLINES.clear()
