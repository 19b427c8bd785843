"""``esm_medic.accounts`` without AWS: account / role ARN parsing, settings, the CLI options, error wording."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from esm_medic import accounts
from esm_medic.cli.main import main


def test_an_account_id_names_the_member_stack_role_for_the_purpose() -> None:
    assert accounts.role_arn_for("222233334444") == (
        "222233334444",
        "arn:aws:iam::222233334444:role/esm-medic-diagnosis",
    )
    assert accounts.role_arn_for("222233334444", "remediation")[1].endswith(":role/esm-medic-remediation")
    arn = "arn:aws-us-gov:iam::222233334444:role/team/custom-medic"
    assert accounts.role_arn_for(arn, "remediation") == ("222233334444", arn)


@pytest.mark.parametrize("bad", ["22223333444", "abc", "arn:aws:iam::222233334444:user/bob", ""])
def test_malformed_targets_are_refused(bad: str) -> None:
    with pytest.raises(accounts.AccountConfigError):
        accounts.role_arn_for(bad)


def test_settings_from_the_environment() -> None:
    s = accounts.MemberSettings.from_env(
        {"ESM_MEDIC_MEMBER_ACCOUNTS": "222233334444, 333344445555", "ESM_MEDIC_EXTERNAL_ID_PARAM": "/esm-medic/x"}
    )
    assert s.accounts == ("222233334444", "333344445555") and s.external_id_param == "/esm-medic/x"
    with pytest.raises(accounts.AccountConfigError, match="12-digit"):
        accounts.MemberSettings.from_env({"ESM_MEDIC_MEMBER_ACCOUNTS": "2222"})


def test_error_wording_names_account_and_role() -> None:
    arn = "arn:aws:iam::222233334444:role/esm-medic-diagnosis"
    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "AssumeRole")
    err = accounts._access_error(denied, "222233334444", arn)
    assert err.account == "222233334444" and err.role_arn == arn and err.code == "AccessDenied"
    assert "trust policy" in str(err) and "sts:ExternalId" in str(err) and arn in str(err)
    missing = ClientError({"Error": {"Code": "NoSuchEntity", "Message": "no"}}, "AssumeRole")
    assert "no such role" in str(accounts._access_error(missing, "222233334444", arn))


@pytest.mark.parametrize(
    "argv",
    [
        ["diagnose", "a4b792af-bd05-4736-98c3-8e0c4bc115b4", "--account", "12345"],
        ["scan", "--role-arn", "arn:aws:iam::222233334444:user/bob"],
        [
            "fix",
            "a4b792af-bd05-4736-98c3-8e0c4bc115b4",
            "--account",
            "222233334444",
            "--role-arn",
            "arn:aws:iam::222233334444:role/x",
        ],
    ],
)
def test_cli_rejects_bad_member_options(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_cli_refuses_an_account_outside_the_member_list(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("ESM_MEDIC_EXTERNAL_ID", "ESM_MEDIC_EXTERNAL_ID_PARAM", "ESM_MEDIC_MEMBER_ACCOUNTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ESM_MEDIC_MEMBER_ACCOUNTS", "333344445555")
    try:
        code = main(["scan", "--account", "222233334444", "--region", "us-east-1"])
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert "not a member account" in err and "Traceback" not in err


def test_the_account_of_a_workflow_payload() -> None:
    from esm_medic.accounts import account_of_payload

    fn = "arn:aws:lambda:us-east-1:222233334444:function:orders"
    assert account_of_payload({"account": "111122223333", "classification": {"account": "222233334444"}}) == (
        "111122223333"
    )
    assert account_of_payload({"classification": {"account": "222233334444"}}) == "222233334444"
    assert account_of_payload({"diagnosis": {"function_arn": fn}}) == "222233334444"
    assert account_of_payload({"input": {"event": {"account": "111122223333", "detail": {"function_arn": fn}}}}) == (
        "222233334444"
    )
    assert account_of_payload({"state": {"classification": {"step": "network"}, "event": {}}}) is None
    assert account_of_payload({"account": "not-an-account", "classification": None}) is None
    assert account_of_payload("garbage") is None


def test_workflow_steps_pick_the_role_of_their_purpose(monkeypatch: pytest.MonkeyPatch) -> None:
    from esm_medic import accounts
    from esm_medic.handlers import _common

    asked: list[tuple[str | None, str]] = []
    central = object()
    monkeypatch.setattr(_common, "get_aws", lambda attempts=None: central)
    monkeypatch.setattr(accounts, "aws_for", lambda c, account, purpose: asked.append((account, purpose)) or c)
    payload = {"classification": {"account": "222233334444"}}
    for step in ("classify", "diagnose", "decide", "remediate", "verify", "rollback"):
        assert _common.aws_for_step(payload, step) is central
    assert [p for _, p in asked] == ["diagnosis"] * 3 + ["remediation"] * 3
    asked.clear()
    assert _common.aws_for_step({"classification": {}}, "remediate") is central and not asked
