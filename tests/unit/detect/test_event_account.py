"""Which account a detection event is acted on in (esm_medic.detect.event_account.resolve): the install's own, a
configured member (through its diagnosis role), an organization's account, or none (ignored / failed)."""

from __future__ import annotations

from typing import Any

import pytest

from esm_medic import accounts
from esm_medic.detect.event_account import resolve

HOME = "111122223333"
MEMBER = "222233334444"
OTHER = "999988887777"


class FakeCentral:
    """Just enough of an adapter: its own account id (counted) and a cache slot."""

    region = "us-east-1"

    def __init__(self, account: str = HOME, fail: BaseException | None = None) -> None:
        self.account = account
        self.fail = fail
        self.identity_calls = 0

    def account_id(self) -> str:
        self.identity_calls += 1
        if self.fail is not None:
            raise self.fail
        return self.account


@pytest.fixture
def assumed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """member_aws replaced: records (account, purpose) and returns a marker adapter."""
    calls: list[tuple[str, str]] = []

    def fake(central: Any, account: str, *, purpose: str = "diagnosis", **kwargs: Any) -> Any:
        calls.append((account, purpose))
        return ("member-adapter", account)

    monkeypatch.setattr(accounts, "member_aws", fake)
    return calls


MEMBERS = accounts.MemberSettings(accounts=(MEMBER,), external_id="an-external-id")


def test_no_account_or_the_own_account_is_the_central_adapter(assumed: list[tuple[str, str]]) -> None:
    central = FakeCentral()
    for account in (None, "", HOME):
        found = resolve(central, account, settings=MEMBERS)  # type: ignore[arg-type]
        assert found.ok and found.aws is central and found.account is None
    assert not assumed and central.identity_calls == 1  # the own account is asked once per adapter


def test_a_listed_member_is_reached_through_its_diagnosis_role(assumed: list[tuple[str, str]]) -> None:
    central = FakeCentral()
    found = resolve(central, MEMBER, settings=MEMBERS)  # type: ignore[arg-type]
    assert found.ok and found.account == MEMBER and found.aws == ("member-adapter", MEMBER)
    assert assumed == [(MEMBER, "diagnosis")]
    assert central.identity_calls == 0  # a listed member needs no identity call


def test_an_unlisted_account_is_ignored_never_assumed(assumed: list[tuple[str, str]]) -> None:
    central = FakeCentral()
    found = resolve(central, OTHER, settings=MEMBERS)  # type: ignore[arg-type]
    assert not found.ok and OTHER in found.ignored and "ESM_MEDIC_MEMBER_ACCOUNTS" in found.ignored
    assert found.to_dict() == {"account": OTHER, "reason": found.ignored}
    # no member configured at all: only the install's own account is acted on
    alone = resolve(central, OTHER, settings=accounts.MemberSettings())  # type: ignore[arg-type]
    assert not alone.ok and "no member accounts" in alone.ignored
    assert not assumed


def test_an_organization_install_accepts_any_account_the_bus_admits(assumed: list[tuple[str, str]]) -> None:
    settings = accounts.MemberSettings(external_id="an-external-id", organization="o-abcdefghij")
    found = resolve(FakeCentral(), OTHER, settings=settings)  # type: ignore[arg-type]
    assert found.ok and found.account == OTHER and assumed == [(OTHER, "diagnosis")]
    env = {"ESM_MEDIC_ORGANIZATION_ID": "o-abcdefghij", "ESM_MEDIC_EXTERNAL_ID": "an-external-id"}
    assert resolve(FakeCentral(), MEMBER, env=env).ok  # type: ignore[arg-type]
    # listed members too: an account the sweeper discovered in the organization is still accepted
    listed = {**env, "ESM_MEDIC_MEMBER_ACCOUNTS": MEMBER}
    assert resolve(FakeCentral(), OTHER, env=listed).ok  # type: ignore[arg-type]
    assert assumed[-1] == (OTHER, "diagnosis")


def test_a_refused_member_is_a_failure_not_an_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(central: Any, account: str, **kwargs: Any) -> Any:
        raise accounts.AccountAccessError(
            f"esm-medic may not assume role esm-medic-diagnosis in account {account} (access denied)",
            account=account,
            role_arn=f"arn:aws:iam::{account}:role/esm-medic-diagnosis",
            code="AccessDenied",
        )

    monkeypatch.setattr(accounts, "member_aws", refused)
    found = resolve(FakeCentral(), MEMBER, settings=MEMBERS)  # type: ignore[arg-type]
    assert not found.ok and found.code == "AccessDenied" and "esm-medic-diagnosis" in found.failed
    assert found.to_dict()["error_code"] == "AccessDenied"

    def no_xid(central: Any, account: str, **kwargs: Any) -> Any:
        raise accounts.AccountConfigError("no external id")

    monkeypatch.setattr(accounts, "member_aws", no_xid)
    found = resolve(FakeCentral(), MEMBER, settings=MEMBERS)  # type: ignore[arg-type]
    assert not found.ok and found.code == "AccountConfigError"


def test_bad_configuration_or_an_unknown_own_account_fail_cleanly(assumed: list[tuple[str, str]]) -> None:
    bad = resolve(FakeCentral(), MEMBER, env={"ESM_MEDIC_MEMBER_ACCOUNTS": "12345"})  # type: ignore[arg-type]
    assert not bad.ok and bad.code == "AccountConfigError" and "12345" in bad.failed
    broken = FakeCentral(fail=RuntimeError("sts unreachable"))
    found = resolve(broken, OTHER, settings=MEMBERS)  # type: ignore[arg-type]
    assert not found.ok and "own account" in found.failed and found.code == "RuntimeError"
    assert not assumed
