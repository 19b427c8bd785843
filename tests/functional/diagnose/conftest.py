"""Fixtures for the diagnosis tests: a sandbox with the ESM simulator, a resolver over the sandbox DNS, helpers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest


@pytest.fixture(scope="module")
def sim_aws() -> Iterator[Any]:
    """One sandbox per test module, with the simulator deriving every ESM's status from the account."""
    from esm_medic_sandbox import simulator
    from esm_medic_sandbox.env import sandbox

    with sandbox() as aws:
        simulator.install()
        yield aws


@pytest.fixture
def fresh_aws() -> Iterator[Any]:
    """A sandbox of its own (for tests that need to know every ESM in the account)."""
    from esm_medic_sandbox import simulator
    from esm_medic_sandbox.env import sandbox

    with sandbox() as aws:
        simulator.install()
        yield aws


@pytest.fixture(scope="module")
def build(sim_aws: Any) -> Callable[[str], Any]:
    """build(name) -> ScenarioResult, memoised per module (scenarios are isolated by their random token)."""
    from esm_medic_sandbox import scenarios

    cache: dict[str, Any] = {}

    def make(name: str) -> Any:
        if name not in cache:
            cache[name] = scenarios.build(sim_aws, name, prefix="diag-")
        return cache[name]

    return make
