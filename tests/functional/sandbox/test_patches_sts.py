"""The sandbox's STS evaluates a role's trust policy on AssumeRole (esm_medic_sandbox.patch_sts)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from esm_medic_sandbox.patch_sts import evaluate, principal_arn

CENTRAL = "123456789012"
MEMBER = "222233334444"


def _trust(principal: Any, condition: dict[str, Any] | None = None, effect: str = "Allow") -> dict[str, Any]:
    st: dict[str, Any] = {"Effect": effect, "Principal": principal, "Action": "sts:AssumeRole"}
    if condition:
        st["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [st]}


MEMBER_TRUST = _trust(
    {"AWS": f"arn:aws:iam::{CENTRAL}:root"},
    {
        "StringEquals": {"sts:ExternalId": "xid-0123456"},
        "ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{CENTRAL}:role/EsmMedic*"},
        "StringLikeIfExists": {"aws:PrincipalOrgID": "*"},
    },
)


def _ctx(xid: str | None, who: str) -> dict[str, Any]:
    return {"sts:ExternalId": xid, "aws:PrincipalArn": who, "aws:PrincipalAccount": CENTRAL, "aws:PrincipalOrgID": None}


@pytest.mark.parametrize(
    ("who", "xid", "allowed"),
    [
        (f"arn:aws:iam::{CENTRAL}:role/EsmMedicSweeper", "xid-0123456", True),
        (f"arn:aws:iam::{CENTRAL}:role/EsmMedicSweeper", "wrong", False),
        (f"arn:aws:iam::{CENTRAL}:role/EsmMedicSweeper", None, False),
        (f"arn:aws:iam::{CENTRAL}:role/SomethingElse", "xid-0123456", False),
        (f"arn:aws:iam::{CENTRAL}:root", "xid-0123456", False),
    ],
)
def test_the_member_trust_needs_the_central_role_and_the_external_id(who: str, xid: str | None, allowed: bool) -> None:
    assert evaluate(MEMBER_TRUST, who, CENTRAL, _ctx(xid, who)) is allowed


def test_principal_forms_deny_and_org_conditions() -> None:
    who = f"arn:aws:iam::{CENTRAL}:role/Ops"
    ctx = _ctx(None, who)
    assert evaluate(_trust({"AWS": CENTRAL}), who, CENTRAL, ctx)
    assert evaluate(_trust({"AWS": who}), who, CENTRAL, ctx)
    assert evaluate(_trust("*"), who, CENTRAL, ctx)
    assert not evaluate(_trust({"AWS": MEMBER}), who, CENTRAL, ctx)
    assert not evaluate(_trust({"Service": "lambda.amazonaws.com"}), who, CENTRAL, ctx)
    both = {"Statement": _trust({"AWS": CENTRAL})["Statement"] + _trust("*", effect="Deny")["Statement"]}
    assert not evaluate(both, who, CENTRAL, ctx)
    org = _trust({"AWS": CENTRAL}, {"StringEquals": {"aws:PrincipalOrgID": "o-abcdefghij"}})
    assert not evaluate(org, who, CENTRAL, ctx)
    assert evaluate(org, who, CENTRAL, {**ctx, "aws:PrincipalOrgID": "o-abcdefghij"})
    assert not evaluate(_trust({"AWS": CENTRAL}, {"NumericLessThan": {"aws:x": "1"}}), who, CENTRAL, ctx)


def test_principal_arn_of_a_session_is_its_role() -> None:
    assert (
        principal_arn(f"arn:aws:sts::{CENTRAL}:assumed-role/EsmMedicX/sess") == f"arn:aws:iam::{CENTRAL}:role/EsmMedicX"
    )
    assert principal_arn(f"arn:aws:sts::{CENTRAL}:user/moto") == f"arn:aws:iam::{CENTRAL}:root"


@pytest.fixture(scope="module")
def aws() -> Iterator[Any]:
    from esm_medic_sandbox.env import sandbox

    with sandbox() as a:
        yield a


def test_assume_role_through_the_api(aws: Any) -> None:
    acct = aws.account_id()
    trust = _trust({"AWS": f"arn:aws:iam::{acct}:root"}, {"StringEquals": {"sts:ExternalId": "xid-12345678"}})
    arn = aws.call("iam", "create_role", RoleName="TrustTest", AssumeRolePolicyDocument=json.dumps(trust))["Role"][
        "Arn"
    ]
    ok = aws.call("sts", "assume_role", RoleArn=arn, RoleSessionName="good", ExternalId="xid-12345678")
    assert ok["AssumedRoleUser"]["Arn"].endswith(":assumed-role/TrustTest/good")
    with pytest.raises(ClientError) as info:
        aws.call("sts", "assume_role", RoleArn=arn, RoleSessionName="bad", ExternalId="wrong-xid")
    assert info.value.response["Error"]["Code"] == "AccessDenied"
    assert "not authorized to perform: sts:AssumeRole" in info.value.response["Error"]["Message"]
    with pytest.raises(ClientError, match="AccessDenied"):
        aws.call("sts", "assume_role", RoleArn=f"arn:aws:iam::{MEMBER}:role/no-such-role", RoleSessionName="x1")
    # Organizations' administrator role in another account stands in for the account's owner
    admin = aws.call(
        "sts", "assume_role", RoleArn=f"arn:aws:iam::{MEMBER}:role/OrganizationAccountAccessRole", RoleSessionName="a1"
    )
    assert admin["AssumedRoleUser"]["Arn"].split(":")[4] == MEMBER
