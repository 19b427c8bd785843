"""Shared fixtures for every test kind.

- ``aws_env`` (autouse): fake credentials, region us-east-1, no profile / endpoint override, default AMIs off,
  instant sandbox transitions (``ESM_MEDIC_SANDBOX_DELAY_SECONDS=0``; a test turns them on with
  ``esm_medic_sandbox.timing.delays(seconds)``), for every test; restored afterwards. Tests never reach a real
  AWS account.
- ``sandbox_aws``: an ``esm_medic.aws.Aws`` adapter inside ``esm_medic_sandbox.env.sandbox()`` (moto with
  Step Functions execution on, Docker-less Lambda, all esm-medic patches, in-process Lambda handlers).
- ``msk_stack``: a factory ``msk_stack(auth="iam", name="orders", public_access=False) -> MskStack`` building a
  healthy VPC + 3 subnets + self-referencing SG + ACTIVE MSK cluster + execution role + function inside the
  sandbox (see ``esm_medic_sandbox.env.create_msk_stack``); ``stack.create_esm(aws, **overrides)`` adds an ESM.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def aws_env() -> Iterator[dict[str, str | None]]:
    from esm_medic_sandbox.env import sandbox_env

    # sandbox transitions (ESM Creating, endpoint pending, ...) are instant unless a test asks for delays
    with sandbox_env(ESM_MEDIC_SANDBOX_DELAY_SECONDS="0") as values:
        yield values


@pytest.fixture
def sandbox_aws(aws_env: dict[str, str | None]) -> Iterator[Any]:
    from esm_medic_sandbox.env import sandbox

    with sandbox() as aws:
        yield aws


@pytest.fixture
def msk_stack(sandbox_aws: Any) -> Callable[..., Any]:
    from esm_medic_sandbox.env import create_msk_stack

    def make(**kwargs: Any) -> Any:
        return create_msk_stack(sandbox_aws, **kwargs)

    return make
