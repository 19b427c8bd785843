"""esm_medic.iam_eval: the local identity-policy evaluator used when SimulatePrincipalPolicy is unavailable."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from esm_medic import iam_eval
from esm_medic.iam_eval import ALLOWED, EXPLICIT_DENY, IMPLICIT_DENY, UNDECIDED, evaluate, parse_policy

CLUSTER = "arn:aws:kafka:us-east-1:123456789012:cluster/orders/abc-1"
TOPIC = "arn:aws:kafka:us-east-1:123456789012:topic/orders/abc-1/payments"


def pol(*statements: dict, pid: str = "p") -> iam_eval.Policy:
    return parse_policy({"Version": "2012-10-17", "Statement": list(statements)}, pid)


def test_allow_exact_and_implicit_deny():
    p = pol({"Effect": "Allow", "Action": "kafka-cluster:Connect", "Resource": CLUSTER})
    assert evaluate([p], "kafka-cluster:Connect", CLUSTER).decision == ALLOWED
    assert evaluate([p], "kafka-cluster:ReadData", CLUSTER).decision == IMPLICIT_DENY
    assert evaluate([p], "kafka-cluster:Connect", TOPIC).decision == IMPLICIT_DENY


def test_actions_ignore_case_resources_do_not():
    p = pol({"Effect": "Allow", "Action": "KAFKA-CLUSTER:connect", "Resource": CLUSTER})
    assert evaluate([p], "kafka-cluster:Connect", CLUSTER).allowed
    assert not evaluate([p], "kafka-cluster:Connect", CLUSTER.upper()).allowed


def test_wildcards_star_and_question_mark():
    p = pol(
        {"Effect": "Allow", "Action": "kafka-cluster:Describe*", "Resource": "arn:aws:kafka:*:*:topic/orders/*"},
        {"Effect": "Allow", "Action": "ec2:Describe???s", "Resource": "*"},
    )
    assert evaluate([p], "kafka-cluster:DescribeTopic", TOPIC).allowed
    assert not evaluate([p], "kafka-cluster:ReadData", TOPIC).allowed
    assert evaluate([p], "ec2:DescribeVpcs", "*").allowed  # ??? = exactly three characters
    assert not evaluate([p], "ec2:DescribeSubnets", "*").allowed


def test_explicit_deny_wins():
    allow = pol({"Effect": "Allow", "Action": "*", "Resource": "*"}, pid="admin")
    deny = pol({"Effect": "Deny", "Action": "kafka-cluster:*", "Resource": "*"}, pid="guard")
    d = evaluate([allow, deny], "kafka-cluster:Connect", CLUSTER)
    assert d.decision == EXPLICIT_DENY
    assert d.matched == ("guard/0",)


def test_not_action_and_not_resource():
    p = pol(
        {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "kafka-cluster:ReadData", "NotResource": TOPIC},
    )
    assert evaluate([p], "kafka-cluster:ReadData", TOPIC).allowed
    assert evaluate([p], "kafka-cluster:ReadData", TOPIC + "-other").decision == EXPLICIT_DENY
    assert evaluate([p], "iam:PassRole", "*").decision == IMPLICIT_DENY


def test_conditions_cannot_be_decided():
    cond_allow = pol(
        {
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": "*",
            "Condition": {"StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}},
        }
    )
    d = evaluate([cond_allow], "kms:Decrypt", "arn:aws:kms:us-east-1:1:key/k")
    assert d.decision == UNDECIDED
    assert d.missing_context == ("kms:ViaService",)
    # an unconditional allow next to a conditional deny: still undecided
    both = pol(
        {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"},
        {"Effect": "Deny", "Action": "kms:*", "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
    )
    assert evaluate([both], "kms:Decrypt", "k").decision == UNDECIDED
    # an unconditional deny decides even next to a conditional allow
    deny = pol(
        {"Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*"},
        {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*", "Condition": {"Bool": {"a:b": "true"}}},
    )
    assert evaluate([deny], "kms:Decrypt", "k").decision == EXPLICIT_DENY


def test_policy_variables_are_undecided():
    p = pol({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/${aws:username}/*"})
    assert evaluate([p], "s3:GetObject", "arn:aws:s3:::b/alice/x").decision == UNDECIDED
    assert evaluate([p], "s3:GetObject", "arn:aws:s3:::other/x").decision == UNDECIDED


def test_permissions_boundary_limits_allows():
    identity = pol({"Effect": "Allow", "Action": "*", "Resource": "*"})
    boundary = [pol({"Effect": "Allow", "Action": ["kafka-cluster:*", "ec2:*"], "Resource": "*"}, pid="pb")]
    assert evaluate([identity], "kafka-cluster:Connect", CLUSTER, boundary=boundary).allowed
    d = evaluate([identity], "secretsmanager:GetSecretValue", "arn:s", boundary=boundary)
    assert d.decision == IMPLICIT_DENY and "boundary" in d.reason


def test_parse_accepts_text_url_encoded_and_single_statement():
    doc = {"Statement": {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}}
    for form in (
        doc,
        json.dumps(doc),
        "%7B%22Statement%22%3A%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A"
        "%22sts%3AAssumeRole%22%2C%22Resource%22%3A%22%2A%22%7D%7D",
    ):
        assert evaluate([parse_policy(form)], "sts:AssumeRole", "*").allowed


@pytest.mark.parametrize(
    "doc",
    [
        "not json",
        "[]",
        {"Version": "2012-10-17"},
        {"Statement": [{"Effect": "Maybe", "Action": "*", "Resource": "*"}]},
        {"Statement": [{"Effect": "Allow", "Resource": "*"}]},
        {"Statement": [{"Effect": "Allow", "Action": "*", "NotAction": "x", "Resource": "*"}]},
        {"Statement": [{"Effect": "Allow", "Action": 7, "Resource": "*"}]},
    ],
)
def test_malformed_policies_raise_policy_error(doc):
    with pytest.raises(iam_eval.PolicyError):
        parse_policy(doc)


_name = st.text(alphabet="abcdefghijklmnopqrstuvwxyz:/-", min_size=1, max_size=20)


@given(action=_name, resource=_name)
def test_star_allows_everything_and_deny_star_denies_everything(action, resource):
    allow = pol({"Effect": "Allow", "Action": "*", "Resource": "*"})
    deny = pol({"Effect": "Deny", "Action": "*", "Resource": "*"})
    assert evaluate([allow], action, resource).allowed
    assert evaluate([allow, deny], action, resource).decision == EXPLICIT_DENY
    assert evaluate([], action, resource).decision == IMPLICIT_DENY


@given(value=st.text(max_size=30))
def test_literal_patterns_match_only_themselves(value):
    safe = value.replace("*", "").replace("?", "")
    assert iam_eval.wildcard_match(safe, safe)
    assert not iam_eval.wildcard_match(safe, safe + "x")
