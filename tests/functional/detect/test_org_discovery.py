"""An organization install finds its members (esm_medic.discovery) in the sandbox (moto Organizations): the whole
organization or an OU tree, ACTIVE accounts only, never the install's own; the answer cached per container for the
TTL; a refusal (AccessDenied, not an organization) is one clear error while the listed accounts are still swept. The
central sweeper then sweeps a discovered member through its role, and counts a discovered account without the
member stack as not enrolled (not failed, retried only after the TTL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError
from esm_medic_sandbox.multi_account import assumed

from esm_medic import discovery
from esm_medic.accounts import MemberSettings
from esm_medic.aws import Aws
from esm_medic.detect.settings import SweepSettings
from esm_medic.detect.snapshot import SnapshotStore
from esm_medic.detect.sweeper_accounts import sweep_accounts

XID = "org-external-id"
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
FAST = SweepSettings(hold_seconds=0, gc_every_seconds=0, interval_seconds=60, confirm_with_get=False)


def _account(root: Aws, name: str, parent: str, source: str) -> str:
    status = root.call("organizations", "create_account", AccountName=name, Email=f"{name}@example.com")
    account = str(status["CreateAccountStatus"]["AccountId"])
    if parent != source:
        root.call("organizations", "move_account", AccountId=account, SourceParentId=source, DestinationParentId=parent)
    return account


@pytest.fixture(scope="module")
def world() -> Iterator[dict[str, Any]]:
    from esm_medic_sandbox.env import create_msk_stack, sandbox
    from esm_medic_sandbox.multi_account import admin_of, create_central_role, create_member_role
    from esm_medic_sandbox.timing import delays

    from esm_medic.tables import create_tables

    with sandbox() as root, delays(0):
        home = root.account_id()
        org = root.call("organizations", "create_organization", FeatureSet="ALL")["Organization"]["Id"]
        (org_root,) = [r["Id"] for r in root.call("organizations", "list_roots")["Roots"]]
        ou = root.call("organizations", "create_organizational_unit", ParentId=org_root, Name="kafka")
        team = ou["OrganizationalUnit"]["Id"]
        child = root.call("organizations", "create_organizational_unit", ParentId=team, Name="new")
        child_ou = child["OrganizationalUnit"]["Id"]
        enrolled = _account(root, "enrolled", team, org_root)
        waiting = _account(root, "waiting", child_ou, org_root)  # in a child OU, no member stack yet
        closed = _account(root, "closed", team, org_root)
        root.call("organizations", "close_account", AccountId=closed)
        outside = _account(root, "outside", org_root, org_root)  # in the organization, not in the OU

        sweeper_arn = create_central_role(root, "EsmMedicSweeper")
        central = assumed(root, sweeper_arn)
        create_tables(central)
        admin = admin_of(central, enrolled)
        create_member_role(admin, home, XID)
        stack = create_msk_stack(admin, name="discovered")
        esms = [stack.create_esm(admin, Topics=[f"d-{i}"])["UUID"] for i in range(2)]
        yield {
            "root": root,
            "home": home,
            "org": org,
            "team": team,
            "central": central,
            "sweeper_arn": sweeper_arn,
            "enrolled": enrolled,
            "waiting": waiting,
            "closed": closed,
            "outside": outside,
            "esms": esms,
        }


def _fresh(world: dict[str, Any]) -> Aws:
    return assumed(world["root"], world["sweeper_arn"])  # a new container: nothing cached


def _org_calls(aws: Aws) -> int:
    return sum(n for op, n in aws.calls.items() if op.startswith("organizations:"))


def test_the_organization_gives_its_active_accounts_but_the_installs_own(world: dict[str, Any]) -> None:
    central = _fresh(world)
    found = discovery.discover(central, MemberSettings(organization=world["org"]), world["home"])
    assert not found.error and found.fresh
    assert set(found.accounts) == {world["enrolled"], world["waiting"], world["outside"]}
    assert world["closed"] not in found.accounts and world["home"] not in found.accounts
    assert central.calls["organizations:ListAccounts"] == 1


def test_an_ou_gives_the_accounts_of_its_tree(world: dict[str, Any]) -> None:
    central = _fresh(world)
    settings = MemberSettings(organization=world["org"], ous=(world["team"],))
    found = discovery.discover(central, settings, world["home"])
    assert found.accounts == tuple(sorted([world["enrolled"], world["waiting"]]))  # the child OU's too, not closed
    assert central.calls["organizations:ListAccountsForParent"] == 2  # the OU and its child
    assert central.calls["organizations:ListOrganizationalUnitsForParent"] == 2


def test_the_answer_is_cached_for_the_ttl(world: dict[str, Any]) -> None:
    central, now = _fresh(world), [0.0]
    settings = MemberSettings(organization=world["org"])
    first = discovery.discover(central, settings, world["home"], ttl=900, clock=lambda: now[0])
    now[0] = 899.0
    again = discovery.discover(central, settings, world["home"], ttl=900, clock=lambda: now[0])
    assert again.accounts == first.accounts and not again.fresh and _org_calls(central) == 1
    now[0] = 900.0
    assert discovery.discover(central, settings, world["home"], ttl=900, clock=lambda: now[0]).fresh
    assert _org_calls(central) == 2


class _Refused:
    """An adapter Organizations refuses (not the management account / not an organization)."""

    def __init__(self, code: str) -> None:
        self.code, self.calls = code, 0

    def paginate(self, service: str, operation: str, result_key: str, **params: Any) -> Iterator[Any]:
        self.calls += 1
        raise ClientError({"Error": {"Code": self.code, "Message": "refused"}}, operation)


@pytest.mark.parametrize("code", ["AccessDeniedException", "AWSOrganizationsNotInUseException"])
def test_a_refusal_is_one_clear_error_cached_too(code: str) -> None:
    refused = _Refused(code)
    settings = MemberSettings(organization="o-abcdefghij", ous=("ou-ab12-abcdefgh",))
    found = discovery.discover(refused, settings, "111122223333")  # type: ignore[arg-type]
    assert found.accounts == () and found.code == code and found.fresh
    assert "ou-ab12-abcdefgh" in found.error and "management account or a delegated administrator" in found.error
    again = discovery.discover(refused, settings, "111122223333")  # type: ignore[arg-type]
    assert again.error == found.error and not again.fresh and refused.calls == 1


def test_a_discovered_member_is_swept_and_one_without_the_stack_is_not_enrolled(world: dict[str, Any]) -> None:
    central = _fresh(world)
    settings = MemberSettings(organization=world["org"], ous=(world["team"],), external_id=XID)
    out = sweep_accounts(central, settings, settings=FAST, now=T0, force_gc=True)
    assert not out.failed and out.not_enrolled == [world["waiting"]]
    assert {a.account for a in out.accounts} == {world["home"], world["enrolled"]}
    assert set(world["esms"]) <= set(SnapshotStore(central).digest_read())
    assert out.combined.complete and out.combined.gc_ran  # a not-enrolled account blocks nothing
    summary = out.summary()
    assert (summary["accounts_discovered"], summary["accounts_not_enrolled"], summary["accounts_failed"]) == (2, 1, 0)

    again = sweep_accounts(central, settings, settings=FAST, now=T0)
    assert again.not_enrolled == [world["waiting"]]
    assert again.combined.calls.get("sts:AssumeRole", 0) == 0  # not retried before the TTL, the member reused
    assert _org_calls(central) == 4  # listed once (2 parents x 2 calls), not per sweep


def test_a_listed_account_that_fails_stays_failed(world: dict[str, Any]) -> None:
    central = _fresh(world)
    settings = MemberSettings(accounts=(world["waiting"],), organization=world["org"], external_id=XID)
    out = sweep_accounts(central, settings, settings=FAST, now=T0)
    assert [a.account for a in out.failed] == [world["waiting"]] and world["waiting"] not in out.not_enrolled
    assert world["outside"] in out.not_enrolled  # discovered, no stack
    assert {a.account for a in out.accounts if a.result} == {world["home"], world["enrolled"]}


def test_an_organization_that_cannot_be_listed_still_sweeps_the_listed_accounts(world: dict[str, Any]) -> None:
    central = _fresh(world)
    refused = MemberSettings(accounts=(world["enrolled"],), organization="o-zzzzzzzzzz", external_id=XID)
    key = (refused.organization, refused.ous, world["home"])
    error = discovery.Discovery(error="cannot list the accounts of the organization: AccessDenied", code="AccessDenied")
    central.__dict__["_esm_medic_discovery"] = {"found": {key: (float("inf"), error)}, "not_enrolled": {}}
    out = sweep_accounts(central, refused, settings=FAST, now=T0)
    assert out.discovery_code == "AccessDenied" and out.summary()["discovery_error"]
    assert not out.failed and {a.account for a in out.accounts} == {world["home"], world["enrolled"]}


def test_the_sweeper_handler_sweeps_the_discovered_accounts(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from esm_medic_sandbox.inproc import LambdaContext

    from esm_medic.handlers import _common
    from esm_medic.handlers import sweeper as handler

    c = world["root"].call("sts", "assume_role", RoleArn=world["sweeper_arn"], RoleSessionName="fn")["Credentials"]
    env = {
        "AWS_ACCESS_KEY_ID": c["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": c["SecretAccessKey"],
        "AWS_SESSION_TOKEN": c["SessionToken"],
        "ESM_MEDIC_ORGANIZATION_ID": world["org"],
        "ESM_MEDIC_MEMBER_OUS": world["team"],
        "ESM_MEDIC_EXTERNAL_ID": XID,
        "ESM_MEDIC_SWEEP_HOLD_SECONDS": "0",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("ESM_MEDIC_MEMBER_ACCOUNTS", raising=False)
    counted: dict[str, float] = {}
    monkeypatch.setattr(handler, "count", lambda name, value=1, **_: counted.__setitem__(name, value))
    _common.reset_aws()
    try:
        out = handler.handler({"id": "sched-org"}, LambdaContext("esm-medic-sweeper", timeout_seconds=60))
    finally:
        _common.reset_aws()
    assert out["ok"], out
    assert set(out["accounts"]) == {world["home"], world["enrolled"]}
    assert (out["accounts_discovered"], out["accounts_not_enrolled"], out["accounts_failed"]) == (2, 1, 0)
    assert (counted["AccountsNotEnrolled"], counted["AccountsFailed"], counted["OrganizationDiscoveryFailed"]) == (
        1,
        0,
        0,
    )
