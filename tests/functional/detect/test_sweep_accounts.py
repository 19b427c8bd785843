"""The central sweeper over member accounts (esm_medic.detect.sweeper_accounts) in the sandbox: a member swept
through its diagnosis role, the shared digest, an unreachable member that stops nothing and forgets nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from esm_medic_sandbox.multi_account import assumed

from esm_medic.accounts import MemberSettings
from esm_medic.aws import Aws
from esm_medic.detect.settings import SweepSettings
from esm_medic.detect.snapshot import SnapshotStore
from esm_medic.detect.sweeper_accounts import rotation, sweep_accounts

MEMBER = "444455556666"
XID = "sweep-external-id"
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
FAST = SweepSettings(hold_seconds=0, gc_every_seconds=0, interval_seconds=60, confirm_with_get=False)


@pytest.fixture(scope="module")
def world() -> Iterator[dict[str, Any]]:
    from esm_medic_sandbox.env import create_msk_stack, sandbox
    from esm_medic_sandbox.multi_account import admin_of, create_central_role, create_member_role
    from esm_medic_sandbox.timing import delays

    from esm_medic.tables import create_tables

    with sandbox() as root, delays(0):
        home = root.account_id()
        sweeper_arn = create_central_role(root, "EsmMedicSweeper")
        central = assumed(root, sweeper_arn)
        create_tables(central)
        admin = admin_of(central, MEMBER)
        create_member_role(admin, home, XID)
        own_stack = create_msk_stack(root, name="own")
        member_stack = create_msk_stack(admin, name="member")
        own = [own_stack.create_esm(root, Topics=["own-1"])["UUID"]]
        member = [member_stack.create_esm(admin, Topics=[f"m-{i}"])["UUID"] for i in range(3)]
        yield {
            "root": root,
            "central": central,
            "sweeper_arn": sweeper_arn,
            "admin": admin,
            "own": own,
            "member": member,
        }


def _fresh_central(world: dict[str, Any]) -> Aws:
    return assumed(world["root"], world["sweeper_arn"])  # a new container: nothing cached


def test_members_are_swept_through_their_role_with_one_digest_read(world: dict[str, Any]) -> None:
    from esm_medic_sandbox.patches import set_esm_status

    central = _fresh_central(world)
    cfg = MemberSettings(accounts=(MEMBER,), external_id=XID)
    first = sweep_accounts(central, cfg, settings=FAST, now=T0)
    assert not first.failed and first.combined.complete
    assert {a.account for a in first.accounts} == {MEMBER, central.account_id()}
    calls = first.combined.calls
    assert calls.get("sts:AssumeRole") == 1 and calls.get("dynamodb:Query") == 1
    digest = SnapshotStore(central).digest_read()
    assert set(world["member"]) | set(world["own"]) <= set(digest)

    set_esm_status(world["member"][0], last_processing_result="PROBLEM: Cluster failed to authorize Lambda.")
    second = sweep_accounts(central, cfg, settings=FAST, now=T0 + timedelta(minutes=1))
    assert second.combined.calls.get("sts:AssumeRole", 0) == 0  # the member's credentials are reused
    (detail,) = second.combined.transitions
    assert detail["uuid"] == world["member"][0] and detail["account"] == MEMBER
    set_esm_status(world["member"][0], last_processing_result="OK")


def test_an_unreachable_member_stops_nothing_and_forgets_nothing(world: dict[str, Any]) -> None:
    central = _fresh_central(world)
    wrong = MemberSettings(accounts=(MEMBER,), external_id="not-the-agreed-id")
    out = sweep_accounts(central, wrong, settings=FAST, now=T0 + timedelta(minutes=5), force_gc=True)
    (failed,) = out.failed
    assert failed.account == MEMBER and failed.code == "AccessDenied" and MEMBER in failed.error
    own = next(a for a in out.accounts if a.account == central.account_id())
    assert own.result is not None and own.result.complete
    assert not out.combined.gc_ran and not out.combined.complete
    assert set(world["member"]) <= set(SnapshotStore(central).digest_read())  # not forgotten
    assert out.summary()["accounts_failed"] == 1


def test_garbage_collection_needs_every_account_listed(world: dict[str, Any]) -> None:
    central = _fresh_central(world)
    gone = world["member"][-1]
    world["admin"].call("lambda", "delete_event_source_mapping", UUID=gone)
    cfg = MemberSettings(accounts=(MEMBER,), external_id=XID)
    out = sweep_accounts(central, cfg, settings=FAST, now=T0 + timedelta(minutes=6), force_gc=True)
    assert out.combined.gc_ran and out.combined.deleted == [gone]
    digest = SnapshotStore(central).digest_read()
    assert gone not in digest and set(world["member"][:-1]) | set(world["own"]) <= set(digest)


def test_the_order_rotates_every_minute() -> None:
    accounts = ["a", "b", "c"]
    orders = {tuple(rotation(accounts, T0 + timedelta(minutes=m))) for m in range(3)}
    assert len(orders) == 3 and all(sorted(o) == accounts for o in orders)
    assert rotation([], T0) == []
