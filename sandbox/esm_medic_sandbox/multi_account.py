"""Several accounts in the sandbox, set up the way a central install and its members are.

moto gives an assumed role's credentials the role's account, and :mod:`esm_medic_sandbox.patch_sts` evaluates the
role's trust policy, so a world built here refuses what AWS would refuse:

- :func:`create_central_role`: a role of the central account that its root may assume (``role/EsmMedic*``: the
  principals the member roles trust);
- :func:`admin_of`: a member account as its own administrator (``OrganizationAccountAccessRole``), to build in it;
- :func:`create_member_role`: the member stack's role (``esm-medic-diagnosis`` by default) trusting the central
  ``role/EsmMedic*`` principals that present the external id.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from esm_medic_sandbox.patch_sts import ORG_ADMIN_ROLE

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws

DIAGNOSIS_ROLE = "esm-medic-diagnosis"


def credentials(via: Aws, role_arn: str, session: str) -> dict[str, str]:
    """One AssumeRole through ``via``, in the shape :meth:`Aws.from_credentials` renews from."""
    c = via.call("sts", "assume_role", RoleArn=role_arn, RoleSessionName=session)["Credentials"]
    return {
        "access_key": c["AccessKeyId"],
        "secret_key": c["SecretAccessKey"],
        "token": c["SessionToken"],
        "expiry_time": c["Expiration"].isoformat(),
    }


def assumed(via: Aws, role_arn: str, session: str = "sandbox") -> Aws:
    """An adapter acting as ``role_arn`` (assumed through ``via``; renewed near expiry like a real container's)."""
    from esm_medic.aws import Aws

    return Aws.from_credentials(
        lambda: credentials(via, role_arn, session), region=via.region, max_attempts=via.max_attempts
    )


def create_central_role(root: Aws, name: str) -> str:
    """A role of ``root``'s account that the account may assume; returns its ARN."""
    account = root.account_id()
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": account}, "Action": "sts:AssumeRole"}],
    }
    root.call("iam", "create_role", RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
    return f"arn:aws:iam::{account}:role/{name}"


def admin_of(via: Aws, account: str, session: str = "sandbox-admin") -> Aws:
    """``account`` as its own administrator (as through Organizations' admin role): builds the member's world."""
    return assumed(via, f"arn:aws:iam::{account}:role/{ORG_ADMIN_ROLE}", session)


def member_trust(central_account: str, external_id: str) -> dict[str, Any]:
    """The member roles' trust policy: the central account's ``role/EsmMedic*`` principals with the external id."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{central_account}:root"},
                "Action": "sts:AssumeRole",
                "Condition": {
                    "StringEquals": {"sts:ExternalId": external_id},
                    "ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{central_account}:role/EsmMedic*"},
                },
            }
        ],
    }


def create_member_role(admin: Aws, central_account: str, external_id: str, name: str = DIAGNOSIS_ROLE) -> None:
    """The member stack's role ``name`` in ``admin``'s account, with its trust policy (no permission policy)."""
    admin.call(
        "iam",
        "create_role",
        RoleName=name,
        AssumeRolePolicyDocument=json.dumps(member_trust(central_account, external_id)),
    )
