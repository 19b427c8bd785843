"""The account-wide default mode in SSM: used when no tag decides, cautious when unreadable or invalid."""

from __future__ import annotations

import pytest
from moto import mock_aws

from esm_medic.aws import Aws
from esm_medic.config import Settings
from esm_medic.policy import account_default_mode, resolve_mode

PARAM = "/esm-medic/default-mode"


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    with mock_aws():
        yield Aws(region="us-east-1")


def test_parameter_sets_the_default_when_no_tag_decides(aws):
    aws.call("ssm", "put_parameter", Name=PARAM, Value="auto", Type="String")
    res = resolve_mode(aws, {}, Settings(default_mode="approve", default_mode_parameter=PARAM))
    assert (res.mode, res.source) == ("auto", "account-parameter")


def test_missing_parameter_falls_back_to_settings(aws):
    res = resolve_mode(aws, {}, Settings(default_mode="approve", default_mode_parameter=PARAM))
    assert (res.mode, res.source) == ("approve", "settings")


def test_invalid_value_is_treated_as_notify_with_a_reason(aws):
    aws.call("ssm", "put_parameter", Name=PARAM, Value="yolo", Type="String")
    mode, note = account_default_mode(aws, Settings(default_mode_parameter=PARAM))
    assert mode == "notify" and "yolo" in note


def test_cli_override_wins_over_the_parameter(aws):
    aws.call("ssm", "put_parameter", Name=PARAM, Value="auto", Type="String")
    res = resolve_mode(aws, {}, Settings(default_mode_parameter=PARAM), override="off")
    assert res.mode == "off"


def test_the_parameter_is_cached_by_powertools_but_the_kill_switch_is_always_fresh(aws):
    from esm_medic.policy import kill_switch

    aws.call("ssm", "put_parameter", Name=PARAM, Value="auto", Type="String")
    settings = Settings(default_mode_parameter=PARAM, kill_switch_parameter="/esm-medic/ks")
    aws.reset_counts()
    assert account_default_mode(aws, settings) == ("auto", "")
    assert account_default_mode(aws, settings) == ("auto", "")
    assert aws.calls["ssm:GetParameter"] == 1  # the second read came from the Parameters cache
    aws.call("ssm", "put_parameter", Name="/esm-medic/ks", Value="off", Type="String")
    assert kill_switch(aws, settings)[0] is False
    aws.call("ssm", "put_parameter", Name="/esm-medic/ks", Value="on", Type="String", Overwrite=True)
    assert kill_switch(aws, settings)[0] is True


def test_an_unreadable_parameter_is_named_with_its_aws_error(aws, monkeypatch):
    from botocore.exceptions import ClientError

    def denied(**_):
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "GetParameter")

    monkeypatch.setattr(aws.client("ssm"), "get_parameter", denied)
    mode, note = account_default_mode(aws, Settings(default_mode_parameter=PARAM))
    assert mode == "notify" and "AccessDeniedException" in note
