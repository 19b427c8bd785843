"""Fixtures for the remediation tests, in the sandbox (moto + esm-medic patches + the ESM status simulator).

- ``world`` (module): one sandbox per test module; scenarios are built with unique prefixes so tests don't meet.
- ``env`` (function): per test, fresh audit / state tables and kill-switch parameter name, a fresh ``Aws`` adapter
  for the code under test (its own clients, hooks and call counter), fast settings (no sleeping), and a recorder
  that fails the test if any EC2 authorize call made through that adapter carried a CIDR or prefix list.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from remediate_helpers import patch_vpce_dry_run, snapshot

from esm_medic.aws import Aws
from esm_medic.config import Settings
from esm_medic.tables import create_tables

_SEQ = itertools.count()
FORBIDDEN = ("IpRanges", "Ipv6Ranges", "PrefixListIds")


@pytest.fixture(scope="module")
def world() -> Iterator[Aws]:
    from esm_medic_sandbox import simulator
    from esm_medic_sandbox.env import sandbox

    patch_vpce_dry_run()
    with sandbox() as aws:
        simulator.install()
        yield aws


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep botocore's retries (we test them) but not their sleeps."""
    from botocore.retries import standard

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0)


@dataclass
class Env:
    aws: Aws  # the adapter the code under test uses
    world: Aws  # builds scenarios, inspects the account, plays "another actor"
    settings: Settings
    n: int
    authorize_calls: list[dict[str, Any]] = field(default_factory=list)

    def build(self, name: str) -> Any:
        from esm_medic_sandbox import scenarios

        return scenarios.build(self.world, name, prefix=f"r{self.n}")

    def with_settings(self, **changes: Any) -> Settings:
        self.settings = replace(self.settings, **changes)
        return self.settings

    def snapshot(self, result: Any) -> dict[str, Any]:
        return snapshot(self.world, result.vpc_id, result.role_name)

    def esm(self, uuid: str) -> dict[str, Any]:
        return self.world.call("lambda", "get_event_source_mapping", UUID=uuid)

    def kill_switch(self, value: str) -> None:
        self.world.call(
            "ssm", "put_parameter", Name=self.settings.kill_switch_parameter, Value=value, Type="String", Overwrite=True
        )


@pytest.fixture
def env(world: Aws, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    n = next(_SEQ)
    monkeypatch.setenv("ESM_MEDIC_AUDIT_TABLE", f"esm-medic-audit-t{n}")
    monkeypatch.setenv("ESM_MEDIC_STATE_TABLE", f"esm-medic-state-t{n}")
    create_tables(world)
    settings = Settings(
        default_mode="auto",
        poll_seconds=0,
        budget_per_sg=5,
        budget_per_vpc=10,
        budget_per_account=1000,
        kill_switch_parameter=f"/esm-medic/t{n}/kill-switch",
        restart_timeout_seconds=5,
        verify_grace_seconds=0,
        endpoint_delete_timeout_seconds=5,
        audit_table=f"esm-medic-audit-t{n}",
        state_table=f"esm-medic-state-t{n}",
    )
    aws = Aws(region="us-east-1", max_attempts=3, session=world.session)  # shared model cache, own clients
    e = Env(aws=aws, world=world, settings=settings, n=n)

    def record(params: Any = None, **_: Any) -> None:
        if isinstance(params, dict):
            e.authorize_calls.append(params)

    ec2 = aws.client("ec2")
    ec2.meta.events.register("before-parameter-build.ec2.AuthorizeSecurityGroupIngress", record)
    ec2.meta.events.register("before-parameter-build.ec2.AuthorizeSecurityGroupEgress", record)
    yield e
    for call in e.authorize_calls:
        for perm in call.get("IpPermissions") or []:
            bad = [k for k in FORBIDDEN if k in perm]
            assert not bad, f"an authorize call carried {bad}: {call}"
