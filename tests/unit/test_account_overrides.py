"""Per member account overrides: mode and kill switch from ``<prefix>/<account>/...`` on top of the global ones."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from esm_medic import policy
from esm_medic.config import ConfigError, Settings

MEMBER = "222233334444"


class _Params:
    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values
        self.read: list[str] = []

    def get(self, name: str, **_: Any) -> str:
        self.read.append(name)
        value = self.values.get(name)
        if value is None:
            raise ClientError({"Error": {"Code": "ParameterNotFound", "Message": name}}, "GetParameter")
        if isinstance(value, Exception):
            raise value
        return str(value)


class _Aws:
    def __init__(self, values: dict[str, Any], member: str | None = MEMBER) -> None:
        self.params = _Params(values)
        if member:
            self.member_account = member

    def parameters(self) -> _Params:
        return self.params

    def call(self, service: str, operation: str, **_: Any) -> dict[str, Any]:
        assert (service, operation) == ("lambda", "list_tags")
        return {"Tags": {}}


ESM = {"EventSourceMappingArn": "arn:aws:lambda:us-east-1:222233334444:event-source-mapping:u", "FunctionArn": ""}


def test_the_member_mode_parameter_sits_between_tags_and_the_global_default() -> None:
    s = Settings(default_mode="auto", default_mode_parameter="/esm-medic/default-mode")
    aws = _Aws({f"/esm-medic/accounts/{MEMBER}/mode": "notify", "/esm-medic/default-mode": "auto"})
    res = policy.resolve_mode(aws, ESM, s)  # type: ignore[arg-type]
    assert (res.mode, res.source) == ("notify", "member-account-parameter")
    # the install's own account (no member adapter) never reads a member parameter
    own = _Aws({f"/esm-medic/accounts/{MEMBER}/mode": "notify"}, member=None)
    assert policy.resolve_mode(own, ESM, s).mode == "auto"  # type: ignore[arg-type]
    assert not any("/accounts/" in n for n in own.params.read)
    # no member parameter: the global ones apply
    plain = _Aws({"/esm-medic/default-mode": "approve"})
    assert policy.resolve_mode(plain, ESM, s).mode == "approve"  # type: ignore[arg-type]


def test_an_invalid_member_mode_is_notify_with_a_reason() -> None:
    aws = _Aws({f"/esm-medic/accounts/{MEMBER}/mode": "yolo"})
    res = policy.resolve_mode(aws, ESM, Settings(default_mode="auto"))  # type: ignore[arg-type]
    assert res.mode == "notify" and any("yolo" in n for n in res.notes)


def test_either_kill_switch_stops_changes_in_a_member_account() -> None:
    s = Settings()
    assert policy.kill_switch(_Aws({}), s) == (False, "")  # type: ignore[arg-type]
    member_on = _Aws({f"/esm-medic/accounts/{MEMBER}/kill-switch": "on"})
    engaged, detail = policy.kill_switch(member_on, s)  # type: ignore[arg-type]
    assert engaged and MEMBER in detail
    assert policy.kill_switch(_Aws({"/esm-medic/kill-switch": "true"}), s)[0]  # type: ignore[arg-type]
    denied = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "GetParameter")
    unreadable = _Aws({f"/esm-medic/accounts/{MEMBER}/kill-switch": denied})
    engaged, detail = policy.kill_switch(unreadable, s)  # type: ignore[arg-type]
    assert engaged and "fail safe" in detail
    other = _Aws({f"/esm-medic/accounts/{MEMBER}/kill-switch": "on"}, member=None)
    assert policy.kill_switch(other, s) == (False, "")  # type: ignore[arg-type]


def test_the_prefix_is_validated_and_can_be_turned_off() -> None:
    with pytest.raises(ConfigError, match="prefix"):
        Settings.from_env({"ESM_MEDIC_ACCOUNT_PARAM_PREFIX": "esm-medic/accounts/"})
    assert (
        Settings.from_env({"ESM_MEDIC_ACCOUNT_PARAM_PREFIX": "/x/accounts"}).account_parameter_prefix == "/x/accounts"
    )
    off = Settings(account_parameter_prefix="")
    aws = _Aws({f"/esm-medic/accounts/{MEMBER}/mode": "notify"})
    assert policy.resolve_mode(aws, ESM, off.with_overrides(default_mode="auto")).mode == "auto"  # type: ignore[arg-type]
    assert Settings().account_parameter(MEMBER, "mode") == f"/esm-medic/accounts/{MEMBER}/mode"


def test_a_member_account_budget_overrides_the_account_limit() -> None:
    from esm_medic.remediate.budget import Budget

    s = Settings(budget_per_account=10)
    aws = _Aws({f"/esm-medic/accounts/{MEMBER}/budget": "3"})
    assert Budget(aws, s).limit("account", MEMBER) == 3  # type: ignore[arg-type]
    assert Budget(aws, s).limit("account", "999988887777") == 10  # type: ignore[arg-type]
    assert Budget(aws, s).limit("sg", "sg-1") == s.budget_per_sg  # type: ignore[arg-type]
    assert Budget(_Aws({}), s).limit("account", MEMBER) == 10  # type: ignore[arg-type]
    assert Budget(_Aws({f"/esm-medic/accounts/{MEMBER}/budget": "lots"}), s).limit("account", MEMBER) == 0  # type: ignore[arg-type]
    assert Budget(_Aws({}, member=None), s).limit("account", MEMBER) == 10  # type: ignore[arg-type]
