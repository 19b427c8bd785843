"""SimulatePrincipalPolicy / SimulateCustomPolicy in the patched moto, and lazily loaded AWS managed policies."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError
from esm_medic_sandbox.env import LAMBDA_TRUST_POLICY, MSK_EXECUTION_POLICY_ARN

SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:AmazonMSK_orders-AbCdEf"


def doc(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def decisions(response: dict) -> dict[tuple[str, str], str]:
    return {(r["EvalActionName"], r["EvalResourceName"]): r["EvalDecision"] for r in response["EvaluationResults"]}


@pytest.fixture
def iam(sandbox_aws):
    return sandbox_aws.client("iam")


@pytest.fixture
def role_arn(iam) -> str:
    return iam.create_role(RoleName="consumer", AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST_POLICY))["Role"]["Arn"]


def test_role_with_inline_customer_and_aws_managed_policies(iam, role_arn) -> None:
    iam.attach_role_policy(RoleName="consumer", PolicyArn=MSK_EXECUTION_POLICY_ARN)  # AWS managed, loaded lazily
    custom = iam.create_policy(
        PolicyName="read-secret",
        PolicyDocument=doc({"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": SECRET}),
    )["Policy"]["Arn"]
    iam.attach_role_policy(RoleName="consumer", PolicyArn=custom)
    iam.put_role_policy(
        RoleName="consumer",
        PolicyName="no-kms",
        PolicyDocument=doc({"Effect": "Deny", "Action": "kms:*", "Resource": "*"}),
    )
    out = iam.simulate_principal_policy(
        PolicySourceArn=role_arn,
        ActionNames=[
            "kafka:DescribeClusterV2",
            "ec2:CreateNetworkInterface",
            "secretsmanager:GetSecretValue",
            "kms:Decrypt",
            "kafka-cluster:Connect",
        ],
    )
    assert decisions(out) == {
        ("kafka:DescribeClusterV2", "*"): "allowed",
        ("ec2:CreateNetworkInterface", "*"): "allowed",
        ("secretsmanager:GetSecretValue", "*"): "implicitDeny",  # the grant is for one secret, not "*"
        ("kms:Decrypt", "*"): "explicitDeny",
        ("kafka-cluster:Connect", "*"): "implicitDeny",
    }
    by_action = {r["EvalActionName"]: r for r in out["EvaluationResults"]}
    msk = by_action["kafka:DescribeClusterV2"]["MatchedStatements"][0]
    assert (msk["SourcePolicyId"], msk["SourcePolicyType"]) == ("AWSLambdaMSKExecutionRole", "aws-managed")
    deny = by_action["kms:Decrypt"]["MatchedStatements"][0]
    assert (deny["SourcePolicyId"], deny["SourcePolicyType"]) == ("no-kms", "role")
    assert set(deny["StartPosition"]) == {"Line", "Column"}
    # per resource
    out = iam.simulate_principal_policy(
        PolicySourceArn=role_arn,
        ActionNames=["secretsmanager:GetSecretValue"],
        ResourceArns=[SECRET, SECRET.replace("orders", "other")],
    )
    results = out["EvaluationResults"]
    assert [(r["EvalResourceName"], r["EvalDecision"]) for r in results] == [
        (SECRET, "allowed"),
        (SECRET.replace("orders", "other"), "implicitDeny"),
    ]
    assert results[0]["MatchedStatements"][0]["SourcePolicyType"] == "user-managed"
    assert results[0]["ResourceSpecificResults"][0]["EvalResourceDecision"] == "allowed"
    assert out["IsTruncated"] is False


def test_user_with_group_policies_and_extra_input_policies(iam) -> None:
    user = iam.create_user(UserName="operator")["User"]["Arn"]
    iam.create_group(GroupName="ops")
    iam.add_user_to_group(GroupName="ops", UserName="operator")
    iam.put_group_policy(
        GroupName="ops",
        PolicyName="lambda-admin",
        PolicyDocument=doc({"Effect": "Allow", "Action": "lambda:*", "Resource": "*"}),
    )
    iam.put_user_policy(
        UserName="operator",
        PolicyName="no-delete",
        PolicyDocument=doc({"Effect": "Deny", "Action": "lambda:Delete*", "Resource": "*"}),
    )
    out = iam.simulate_principal_policy(
        PolicySourceArn=user,
        ActionNames=["lambda:UpdateEventSourceMapping", "lambda:DeleteEventSourceMapping", "ec2:DescribeVpcs"],
        PolicyInputList=[doc({"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"})],
    )
    assert decisions(out) == {
        ("lambda:UpdateEventSourceMapping", "*"): "allowed",
        ("lambda:DeleteEventSourceMapping", "*"): "explicitDeny",
        ("ec2:DescribeVpcs", "*"): "allowed",
    }
    by_action = {r["EvalActionName"]: r for r in out["EvaluationResults"]}
    assert by_action["lambda:UpdateEventSourceMapping"]["MatchedStatements"][0]["SourcePolicyType"] == "group"
    assert by_action["ec2:DescribeVpcs"]["MatchedStatements"][0]["SourcePolicyId"] == "PolicyInputList.1"


def test_conditions_do_not_grant_and_are_reported(iam, role_arn) -> None:
    iam.put_role_policy(
        RoleName="consumer",
        PolicyName="conditional",
        PolicyDocument=doc(
            {
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-123"}},
            }
        ),
    )
    r = iam.simulate_principal_policy(PolicySourceArn=role_arn, ActionNames=["secretsmanager:GetSecretValue"])
    result = r["EvaluationResults"][0]
    assert result["EvalDecision"] == "implicitDeny"
    assert result["MissingContextValues"] == ["aws:SourceVpce"]


def test_permissions_boundary_of_the_role(iam) -> None:
    boundary = iam.create_policy(
        PolicyName="boundary", PolicyDocument=doc({"Effect": "Allow", "Action": "kafka-cluster:*", "Resource": "*"})
    )["Policy"]["Arn"]
    arn = iam.create_role(
        RoleName="bounded", AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST_POLICY), PermissionsBoundary=boundary
    )["Role"]["Arn"]
    iam.put_role_policy(
        RoleName="bounded", PolicyName="all", PolicyDocument=doc({"Effect": "Allow", "Action": "*", "Resource": "*"})
    )
    out = iam.simulate_principal_policy(PolicySourceArn=arn, ActionNames=["kafka-cluster:Connect", "s3:GetObject"])
    assert decisions(out) == {("kafka-cluster:Connect", "*"): "allowed", ("s3:GetObject", "*"): "implicitDeny"}
    details = [r["PermissionsBoundaryDecisionDetail"]["AllowedByPermissionsBoundary"] for r in out["EvaluationResults"]]
    assert details == [True, False]


def test_simulate_custom_policy(iam) -> None:
    out = iam.simulate_custom_policy(
        PolicyInputList=[
            doc({"Effect": "Allow", "Action": ["kafka-cluster:Connect", "kafka-cluster:Describe*"], "Resource": "*"})
        ],
        ActionNames=["kafka-cluster:Connect", "kafka-cluster:DescribeGroup", "kafka-cluster:ReadData"],
    )
    assert [r["EvalDecision"] for r in out["EvaluationResults"]] == ["allowed", "allowed", "implicitDeny"]


def test_errors_are_aws_shaped(iam, role_arn) -> None:
    with pytest.raises(ClientError) as err:
        iam.simulate_principal_policy(
            PolicySourceArn="arn:aws:iam::123456789012:role/ghost", ActionNames=["s3:GetObject"]
        )
    assert err.value.response["Error"]["Code"] == "NoSuchEntity"
    with pytest.raises(ClientError) as err:
        iam.simulate_principal_policy(PolicySourceArn="arn:aws:s3:::my-bucket-name", ActionNames=["s3:GetObject"])
    assert err.value.response["Error"]["Code"] == "InvalidInput"
    with pytest.raises(ClientError) as err:
        iam.simulate_custom_policy(PolicyInputList=["{not json"], ActionNames=["s3:GetObject"])
    assert err.value.response["Error"]["Code"] == "MalformedPolicyDocument"


def test_aws_managed_policy_lookup_is_lazy_and_faithful(iam, role_arn) -> None:
    policy = iam.get_policy(PolicyArn=MSK_EXECUTION_POLICY_ARN)["Policy"]
    assert policy["PolicyName"] == "AWSLambdaMSKExecutionRole"
    version = iam.get_policy_version(PolicyArn=MSK_EXECUTION_POLICY_ARN, VersionId=policy["DefaultVersionId"])
    assert "kafka:GetBootstrapBrokers" in json.dumps(version["PolicyVersion"]["Document"])
    with pytest.raises(ClientError) as err:
        iam.attach_role_policy(RoleName="consumer", PolicyArn="arn:aws:iam::aws:policy/NoSuchPolicyEver")
    assert err.value.response["Error"]["Code"] == "NoSuchEntity"
