"""The local IAM policy evaluator behind the sandbox's SimulatePrincipalPolicy / SimulateCustomPolicy."""

from __future__ import annotations

import json

import pytest
from esm_medic_sandbox import iam_sim
from esm_medic_sandbox.iam_sim import ALLOWED, EXPLICIT_DENY, IMPLICIT_DENY, decide, parse_policy, simulate
from hypothesis import given
from hypothesis import strategies as st

CLUSTER = "arn:aws:kafka:us-east-1:123456789012:cluster/orders/abcd-1234"
TOPIC = "arn:aws:kafka:us-east-1:123456789012:topic/orders/abcd-1234/orders"
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:AmazonMSK_orders-AbCdEf"


def pol(*statements: dict, pid: str = "p", ptype: str = "role") -> iam_sim.Policy:
    return parse_policy({"Version": "2012-10-17", "Statement": list(statements)}, pid, ptype)


def allow(action, resource="*", **extra) -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action, resource="*", **extra) -> dict:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


# ---------------------------------------------------------------------------------------------- wildcards
@pytest.mark.parametrize(
    ("pattern", "value", "ignore_case", "expected"),
    [
        ("*", "anything:at/all", False, True),
        ("kafka-cluster:*", "kafka-cluster:Connect", True, True),
        ("kafka-cluster:*", "kafka:DescribeCluster", True, False),
        ("kafka-cluster:Describe*", "kafka-cluster:DescribeTopic", True, True),
        ("kafka-cluster:Describe*", "kafka-cluster:ReadData", True, False),
        ("KAFKA-CLUSTER:connect", "kafka-cluster:Connect", True, True),
        ("KAFKA-CLUSTER:connect", "kafka-cluster:Connect", False, False),
        ("ec2:*NetworkInterface?", "ec2:DescribeNetworkInterfaces", True, True),
        ("ec2:*NetworkInterface?", "ec2:CreateNetworkInterface", True, False),
        ("s3:Get?bject", "s3:GetObject", True, True),
        ("s3:Get?bject", "s3:GetObjject", True, False),
        # * spans ':' and '/' in resources, as IAM does
        ("arn:aws:kafka:*:123456789012:topic/*", TOPIC, False, True),
        ("arn:aws:kafka:us-east-1:*", TOPIC, False, True),
        ("arn:aws:secretsmanager:*:*:secret:AmazonMSK_*", SECRET, False, True),
        ("arn:aws:secretsmanager:*:*:secret:amazonmsk_*", SECRET, False, False),
        # regex metacharacters in patterns are literal
        ("arn:aws:s3:::bucket.name/(x)+", "arn:aws:s3:::bucket.name/(x)+", False, True),
        ("arn:aws:s3:::bucket.name", "arn:aws:s3:::bucketXname", False, False),
        ("", "", False, True),
        ("", "x", False, False),
    ],
)
def test_wildcard_match(pattern: str, value: str, ignore_case: bool, expected: bool) -> None:
    assert iam_sim.wildcard_match(pattern, value, ignore_case=ignore_case) is expected


@given(st.text(alphabet="abc:/-", max_size=20))
def test_star_matches_everything_and_literal_matches_itself(value: str) -> None:
    assert iam_sim.wildcard_match("*", value)
    assert iam_sim.wildcard_match(value, value)
    assert iam_sim.wildcard_match(value + "*", value + "tail")


# ---------------------------------------------------------------------------------------------- decisions
def test_allow_matching_action_and_resource() -> None:
    d = decide([pol(allow("kafka-cluster:Connect", CLUSTER))], "kafka-cluster:Connect", CLUSTER)
    assert d.decision == ALLOWED
    assert len(d.matched) == 1


def test_no_statement_means_implicit_deny() -> None:
    assert decide([pol(allow("s3:GetObject"))], "kafka-cluster:Connect", CLUSTER).decision == IMPLICIT_DENY
    assert decide([], "kafka-cluster:Connect").decision == IMPLICIT_DENY


def test_resource_mismatch_is_implicit_deny() -> None:
    p = pol(allow("kafka-cluster:Connect", "arn:aws:kafka:us-east-1:123456789012:cluster/other/*"))
    assert decide([p], "kafka-cluster:Connect", CLUSTER).decision == IMPLICIT_DENY


def test_explicit_deny_wins_over_allow_in_any_policy() -> None:
    a = pol(allow("kafka-cluster:*"), pid="grant")
    d = pol(deny("kafka-cluster:Connect", CLUSTER), pid="guard", ptype="user-managed")
    result = decide([a, d], "kafka-cluster:Connect", CLUSTER)
    assert result.decision == EXPLICIT_DENY
    assert [s.source_policy_id for s in result.matched] == ["guard"]
    # other actions stay allowed
    assert decide([a, d], "kafka-cluster:ReadData", TOPIC).decision == ALLOWED


def test_not_action_applies_to_every_other_action() -> None:
    p = pol({"Effect": "Allow", "NotAction": ["iam:*", "organizations:*"], "Resource": "*"})
    assert decide([p], "kafka:DescribeClusterV2").decision == ALLOWED
    assert decide([p], "iam:PassRole").decision == IMPLICIT_DENY
    assert decide([p], "IAM:passrole").decision == IMPLICIT_DENY  # action names are case-insensitive


def test_deny_with_not_action() -> None:
    p1 = pol(allow("*"))
    p2 = pol({"Effect": "Deny", "NotAction": "sts:*", "Resource": "*"})
    assert decide([p1, p2], "ec2:CreateNetworkInterface").decision == EXPLICIT_DENY
    assert decide([p1, p2], "sts:AssumeRole").decision == ALLOWED


def test_not_resource() -> None:
    p = pol({"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "NotResource": "arn:aws:*:*:*:secret:prod*"})
    assert decide([p], "secretsmanager:GetSecretValue", SECRET).decision == ALLOWED
    prod = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod-db"
    assert decide([p], "secretsmanager:GetSecretValue", prod).decision == IMPLICIT_DENY


def test_deny_not_resource_guards_everything_else() -> None:
    p1 = pol(allow("secretsmanager:*"))
    p2 = pol({"Effect": "Deny", "Action": "secretsmanager:*", "NotResource": SECRET})
    assert decide([p1, p2], "secretsmanager:GetSecretValue", SECRET).decision == ALLOWED
    other = SECRET.replace("orders", "payments")
    assert decide([p1, p2], "secretsmanager:GetSecretValue", other).decision == EXPLICIT_DENY


def test_resource_is_case_sensitive() -> None:
    p = pol(allow("secretsmanager:GetSecretValue", SECRET))
    assert decide([p], "secretsmanager:GetSecretValue", SECRET.lower()).decision == IMPLICIT_DENY


def test_condition_statements_never_match_and_are_reported() -> None:
    cond = {"StringEquals": {"aws:SourceVpce": "vpce-1"}, "Bool": {"aws:SecureTransport": "true"}}
    p = pol(allow("kafka-cluster:Connect", "*", Condition=cond))
    d = decide([p], "kafka-cluster:Connect", CLUSTER)
    assert d.decision == IMPLICIT_DENY
    assert d.missing_context == ["aws:SourceVpce", "aws:SecureTransport"]
    # a conditional deny does not deny either (AWS's simulator without context keys)
    p2 = pol(
        allow("kafka-cluster:Connect"),
        deny("kafka-cluster:Connect", Condition={"Bool": {"aws:ViaAWSService": "false"}}),
    )
    d2 = decide([p2], "kafka-cluster:Connect", CLUSTER)
    assert d2.decision == ALLOWED
    assert d2.missing_context == ["aws:ViaAWSService"]


def test_single_statement_object_and_string_fields() -> None:
    p = parse_policy(json.dumps({"Version": "2012-10-17", "Statement": allow("sts:AssumeRole")}), "x", "role")
    assert len(p.statements) == 1
    assert decide([p], "sts:AssumeRole").decision == ALLOWED


def test_permissions_boundary_limits_allows() -> None:
    identity = [pol(allow("*"))]
    boundary = [pol(allow(["kafka-cluster:*", "kafka:*"]), pid="boundary", ptype="none")]
    ok = decide(identity, "kafka-cluster:Connect", CLUSTER, boundary)
    assert (ok.decision, ok.boundary_allowed) == (ALLOWED, True)
    blocked = decide(identity, "secretsmanager:GetSecretValue", SECRET, boundary)
    assert (blocked.decision, blocked.boundary_allowed) == (IMPLICIT_DENY, False)
    # the boundary alone grants nothing
    assert decide([], "kafka-cluster:Connect", CLUSTER, boundary).decision == IMPLICIT_DENY
    # a deny in the boundary is an explicit deny
    b2 = [pol(allow("*"), deny("kafka-cluster:Connect"))]
    assert decide(identity, "kafka-cluster:Connect", CLUSTER, b2).decision == EXPLICIT_DENY


# ---------------------------------------------------------------------------------------------- response shape
def test_simulate_without_resources_gives_one_result_per_action() -> None:
    results = simulate([pol(allow("kafka:Describe*"))], ["kafka:DescribeClusterV2", "kafka:GetBootstrapBrokers"])
    assert [(r["EvalActionName"], r["EvalResourceName"], r["EvalDecision"]) for r in results] == [
        ("kafka:DescribeClusterV2", "*", ALLOWED),
        ("kafka:GetBootstrapBrokers", "*", IMPLICIT_DENY),
    ]
    assert "ResourceSpecificResults" not in results[0]
    assert results[0]["MatchedStatements"][0]["SourcePolicyId"] == "p"
    assert results[0]["MatchedStatements"][0]["SourcePolicyType"] == "role"
    assert results[1]["MatchedStatements"] == []


def test_simulate_with_resources_gives_action_x_resource_with_resource_detail() -> None:
    p = pol(allow("secretsmanager:GetSecretValue", SECRET))
    other = SECRET.replace("orders", "other")
    results = simulate([p], ["secretsmanager:GetSecretValue", "kms:Decrypt"], [SECRET, other])
    assert [(r["EvalActionName"], r["EvalResourceName"], r["EvalDecision"]) for r in results] == [
        ("secretsmanager:GetSecretValue", SECRET, ALLOWED),
        ("secretsmanager:GetSecretValue", other, IMPLICIT_DENY),
        ("kms:Decrypt", SECRET, IMPLICIT_DENY),
        ("kms:Decrypt", other, IMPLICIT_DENY),
    ]
    detail = results[0]["ResourceSpecificResults"]
    assert detail == [
        {
            "EvalResourceName": SECRET,
            "EvalResourceDecision": ALLOWED,
            "MatchedStatements": results[0]["MatchedStatements"],
            "MissingContextValues": [],
            "EvalDecisionDetails": {},
        }
    ]


def test_boundary_detail_in_results() -> None:
    results = simulate([pol(allow("*"))], ["s3:GetObject"], None, [pol(allow("kafka:*"))])
    assert results[0]["PermissionsBoundaryDecisionDetail"] == {"AllowedByPermissionsBoundary": False}
    assert results[0]["EvalDecision"] == IMPLICIT_DENY


def test_statement_positions_point_at_the_statement() -> None:
    text = (
        '{\n  "Version": "2012-10-17",\n  "Statement": [\n'
        '    {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},\n'
        '    {"Effect": "Deny", "Action": "s3:DeleteBucket", "Resource": "*"}\n  ]\n}'
    )
    p = parse_policy(text, "doc", "user")
    first, second = p.statements
    assert (first.start.line, first.start.column) == (4, 5)
    assert (first.end.line, first.end.column) == (4, 59)
    assert (second.start.line, second.start.column) == (5, 5)
    lines = text.split("\n")
    assert lines[second.start.line - 1][second.start.column - 1] == "{"
    assert lines[second.end.line - 1][second.end.column - 2] == "}"
    ms = second.matched_statement()
    assert ms["StartPosition"] == {"Line": 5, "Column": 5}
    assert ms["SourcePolicyType"] == "user"


def test_simulate_documents_names_policy_inputs() -> None:
    docs = [
        json.dumps({"Version": "2012-10-17", "Statement": [allow("sts:*")]}),
        {"Version": "2012-10-17", "Statement": [deny("sts:AssumeRole")]},
    ]
    results = iam_sim.simulate_documents(docs, ["sts:AssumeRole", "sts:GetCallerIdentity"])
    assert results[0]["EvalDecision"] == EXPLICIT_DENY
    assert results[0]["MatchedStatements"][0]["SourcePolicyId"] == "PolicyInputList.2"
    assert results[1]["EvalDecision"] == ALLOWED
    assert results[1]["MatchedStatements"][0]["SourcePolicyId"] == "PolicyInputList.1"


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "document",
    [
        "not json",
        "[]",
        json.dumps({"Version": "2012-10-17"}),
        json.dumps({"Statement": "x"}),
        json.dumps({"Statement": [1]}),
        json.dumps({"Statement": [{"Effect": "Maybe", "Action": "s3:*", "Resource": "*"}]}),
        json.dumps({"Statement": [{"Effect": "Allow", "Resource": "*"}]}),
        json.dumps({"Statement": [{"Effect": "Allow", "Action": "a:b", "NotAction": "c:d", "Resource": "*"}]}),
        json.dumps({"Statement": [{"Effect": "Allow", "Action": [1, 2], "Resource": "*"}]}),
    ],
)
def test_malformed_documents_raise_a_clear_error(document: str) -> None:
    with pytest.raises(iam_sim.PolicyDocumentError):
        parse_policy(document, "bad")


def test_statement_without_resource_matches_nothing() -> None:
    p = pol({"Effect": "Allow", "Action": "s3:*"})
    assert decide([p], "s3:GetObject").decision == IMPLICIT_DENY
