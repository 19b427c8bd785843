"""decide(): every input that can stop or slow a change, and the mode resolution order."""

from __future__ import annotations

from typing import Any

import pytest

from esm_medic.config import Settings
from esm_medic.policy import decide, kill_switch, resolve_mode


def _d(**kw: Any) -> Any:
    base: dict[str, Any] = {"action": "add-sg-self-rule", "mode": "auto", "safety": "auto"}
    base.update(kw)
    return decide(**base)


@pytest.mark.parametrize(
    ("kw", "outcome", "code"),
    [
        ({}, "auto", "auto"),
        ({"mode": "approve"}, "approve", "mode-approve"),
        ({"safety": "approve"}, "approve", "safety"),
        ({"requires_approval": True}, "approve", "plan-warning"),
        ({"mode": "notify"}, "notify", "mode-notify"),
        ({"mode": "off"}, "off", "mode-off"),
        ({"mode": "bogus"}, "notify", "invalid-mode"),
        ({"safety": "manual"}, "ticket", "manual"),
        ({"action": "ticket"}, "ticket", "manual"),
        ({"refused": "conflict"}, "ticket", "refused"),
        ({"kill_switch": True}, "ticket", "kill-switch"),
        ({"kill_switch": True, "mode": "notify"}, "notify", "kill-switch"),
        ({"kill_switch": True, "mode": "off"}, "off", "mode-off"),
        ({"shadow": True}, "shadow", "shadow"),
        ({"shadow": True, "mode": "approve"}, "shadow", "shadow"),
        ({"shadow": True, "kill_switch": True}, "ticket", "kill-switch"),
        ({"transient": True}, "notify", "transient-first-sighting"),
        ({"transient": True, "sightings": 1}, "auto", "auto"),
        ({"failed_verifications": 3}, "ticket", "verify-fallback"),
        ({"failed_verifications": 2}, "auto", "auto"),
        ({"failed_verifications": 9, "max_failed_verifications": 0}, "auto", "auto"),
        ({"missing_permissions": ["ec2:X"]}, "ticket", "missing-permission"),
        ({"budget_ok": False, "budget_detail": "sg-1 2/2"}, "ticket", "budget"),
        ({"budget_ok": False, "mode": "approve"}, "ticket", "budget"),
    ],
)
def test_decide(kw: dict[str, Any], outcome: str, code: str) -> None:
    d = _d(**kw)
    assert d.outcome == outcome
    assert d.codes[-1] == code
    assert d.reasons and len(d.reasons) == len(d.codes)
    assert d.may_change == (outcome in ("auto", "approve"))
    assert d.allows(True) == (outcome in ("auto", "approve")) and d.allows(False) == (outcome == "auto")


class FakeAws:
    def __init__(self, tags: dict[str, dict[str, str]], parameter: str | None = None, fail: str = "") -> None:
        self.tags = tags
        self.parameter = parameter
        self.fail = fail

    def call(self, service: str, op: str, **kw: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        if service == "lambda" and op == "list_tags":
            if self.fail == "tags":
                raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "ListTags")
            return {"Tags": self.tags.get(kw["Resource"], {})}
        if service == "ssm":
            if self.fail == "ssm":
                raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "GetParameter")
            if self.parameter is None:
                raise ClientError({"Error": {"Code": "ParameterNotFound", "Message": "no"}}, "GetParameter")
            return {"Parameter": {"Value": self.parameter}}
        raise AssertionError((service, op))

    def parameters(self) -> Any:
        """A real Powertools SSMProvider over a stand-in client that answers through ``call``."""
        from aws_lambda_powertools.utilities.parameters import SSMProvider

        fake = self

        class Client:
            def get_parameter(self, **kw: Any) -> dict[str, Any]:
                return fake.call("ssm", "get_parameter", **kw)

        return SSMProvider(boto3_client=Client())  # type: ignore[arg-type]


ESM = {"EventSourceMappingArn": "arn:esm", "FunctionArn": "arn:fn"}


@pytest.mark.parametrize(
    ("tags", "override", "mode", "source"),
    [
        ({}, None, "approve", "settings"),
        ({"arn:fn": {"esm-medic:mode": "auto"}}, None, "auto", "function-tag"),
        ({"arn:fn": {"esm-medic:mode": "auto"}, "arn:esm": {"esm-medic:mode": "OFF"}}, None, "off", "esm-tag"),
        ({"arn:esm": {"esm-medic:mode": "sometimes"}, "arn:fn": {"esm-medic:mode": "auto"}}, None, "notify", "esm-tag"),
        ({"arn:esm": {"esm-medic:mode": "off"}}, "auto", "auto", "cli"),
    ],
)
def test_resolve_mode(tags: dict[str, Any], override: str | None, mode: str, source: str) -> None:
    res = resolve_mode(FakeAws(tags), ESM, Settings(), override)  # type: ignore[arg-type]
    assert (res.mode, res.source) == (mode, source)


def test_shadow_from_tags_or_settings() -> None:
    assert resolve_mode(FakeAws({"arn:fn": {"esm-medic:shadow": "true"}}), ESM, Settings()).shadow  # type: ignore[arg-type]
    assert resolve_mode(FakeAws({}), ESM, Settings(shadow=True)).shadow_source == "settings"  # type: ignore[arg-type]
    assert not resolve_mode(FakeAws({"arn:esm": {"esm-medic:shadow": "no"}}), ESM, Settings()).shadow  # type: ignore[arg-type]


def test_unreadable_tags_fall_back_to_settings_with_a_note() -> None:
    res = resolve_mode(FakeAws({}, fail="tags"), ESM, Settings(default_mode="notify"))  # type: ignore[arg-type]
    assert res.mode == "notify" and res.notes


@pytest.mark.parametrize(
    ("parameter", "fail", "engaged"),
    [
        (None, "", False),
        ("off", "", False),
        ("false", "", False),
        ("on", "", True),
        ("True", "", True),
        (None, "ssm", True),
    ],
)
def test_kill_switch(parameter: str | None, fail: str, engaged: bool) -> None:
    assert kill_switch(FakeAws({}, parameter, fail), Settings())[0] is engaged  # type: ignore[arg-type]
