"""CloudFormation DefinitionSubstitutions into the executing Step Functions backend; unnamed executions; JSONata;
plus the small EC2 fix and patch idempotence."""

from __future__ import annotations

import json
import time

from esm_medic_sandbox import inproc, patches
from esm_medic_sandbox.env import LAMBDA_TRUST_POLICY
from esm_medic_sandbox.patch_sfn import substitute_definition

ASL = {
    "StartAt": "Check",
    "States": {
        "Check": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "${CheckFunctionArn}", "Payload": {"input.$": "$", "mode": "${Mode}"}},
            "ResultSelector": {"result.$": "$.Payload"},
            "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": "${Retries}"}],
            "End": True,
        }
    },
}


def _template(definition_key: str = "DefinitionString") -> dict:
    text = json.dumps(ASL).replace('"${Retries}"', "${Retries}")
    definition = text if definition_key == "DefinitionString" else json.loads(text.replace("${Retries}", "1"))
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            "Role": {
                "Type": "AWS::IAM::Role",
                "Properties": {"AssumeRolePolicyDocument": LAMBDA_TRUST_POLICY, "RoleName": "checker-role"},
            },
            "Check": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "FunctionName": "checker",
                    "Runtime": "python3.12",
                    "Handler": "index.handler",
                    "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                    "Code": {"ZipFile": "def handler(e, c):\n    return e\n"},
                },
            },
            "Machine": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "StateMachineName": "remediate",
                    "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
                    definition_key: definition,
                    "DefinitionSubstitutions": {
                        "CheckFunctionArn": {"Fn::GetAtt": ["Check", "Arn"]},
                        "Mode": "approve",
                        "Retries": 1,
                    },
                },
            },
        },
        "Outputs": {"MachineArn": {"Value": {"Ref": "Machine"}}},
    }


def _run(aws, sm_arn: str, payload: dict, name: str | None = "run-1") -> dict:
    kwargs = {"stateMachineArn": sm_arn, "input": json.dumps(payload)}
    if name:
        kwargs["name"] = name
    ex = aws.call("stepfunctions", "start_execution", **kwargs)["executionArn"]
    deadline = time.monotonic() + 10
    while (desc := aws.call("stepfunctions", "describe_execution", executionArn=ex))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "execution did not finish"
        time.sleep(0.05)
    return desc


def test_cloudformation_substitutes_and_creates_an_executing_machine(sandbox_aws) -> None:
    inproc.register_handler("checker", lambda event, context: {"checked": event})
    sandbox_aws.call("cloudformation", "create_stack", StackName="medic", TemplateBody=json.dumps(_template()))
    stack = sandbox_aws.call("cloudformation", "describe_stacks", StackName="medic")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    sm_arn = stack["Outputs"][0]["OutputValue"]
    machines = sandbox_aws.call("stepfunctions", "list_state_machines")["stateMachines"]
    assert [m["stateMachineArn"] for m in machines] == [sm_arn]  # visible to the Step Functions API
    definition = json.loads(
        sandbox_aws.call("stepfunctions", "describe_state_machine", stateMachineArn=sm_arn)["definition"]
    )
    params = definition["States"]["Check"]["Parameters"]
    assert params["FunctionName"] == "arn:aws:lambda:us-east-1:123456789012:function:checker"
    assert params["Payload"]["mode"] == "approve"
    assert definition["States"]["Check"]["Retry"][0]["MaxAttempts"] == 1
    desc = _run(sandbox_aws, sm_arn, {"uuid": "u-1"})
    assert desc["status"] == "SUCCEEDED", desc
    assert json.loads(desc["output"]) == {"result": {"checked": {"input": {"uuid": "u-1"}, "mode": "approve"}}}
    sandbox_aws.call("cloudformation", "delete_stack", StackName="medic")
    assert sandbox_aws.call("stepfunctions", "list_state_machines")["stateMachines"] == []


def test_cloudformation_definition_object_form(sandbox_aws) -> None:
    inproc.register_handler("checker", lambda event, context: "ok")
    sandbox_aws.call(
        "cloudformation", "create_stack", StackName="obj", TemplateBody=json.dumps(_template("Definition"))
    )
    sm_arn = sandbox_aws.call("stepfunctions", "list_state_machines")["stateMachines"][0]["stateMachineArn"]
    assert _run(sandbox_aws, sm_arn, {})["status"] == "SUCCEEDED"


def test_substitute_definition_rules() -> None:
    text = '{"a": "${A}", "n": ${N}, "b": ${B}, "keep": "${Unknown}"}'
    assert json.loads(substitute_definition(text, {"A": "x", "N": 3, "B": True})) == {
        "a": "x",
        "n": 3,
        "b": True,
        "keep": "${Unknown}",
    }
    assert substitute_definition(text, None) == text


def test_unnamed_executions_get_unique_names(sandbox_aws) -> None:
    role = sandbox_aws.call(
        "iam", "create_role", RoleName="r", AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST_POLICY)
    )
    sm = sandbox_aws.call(
        "stepfunctions",
        "create_state_machine",
        name="p",
        roleArn=role["Role"]["Arn"],
        definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
    )["stateMachineArn"]
    first = _run(sandbox_aws, sm, {"i": 1}, name=None)
    second = _run(sandbox_aws, sm, {"i": 2}, name=None)
    assert first["name"] != second["name"] and "None" not in (first["name"], second["name"])
    assert (first["status"], second["status"]) == ("SUCCEEDED", "SUCCEEDED")


def test_jsonata_states_run(sandbox_aws) -> None:
    role = sandbox_aws.call(
        "iam", "create_role", RoleName="r", AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST_POLICY)
    )
    definition = {
        "QueryLanguage": "JSONata",
        "StartAt": "Calc",
        "States": {
            "Calc": {
                "Type": "Pass",
                "Output": {"total": "{% $sum($states.input.ports) %}", "name": "{% $uppercase($states.input.n) %}"},
                "End": True,
            }
        },
    }
    sm = sandbox_aws.call(
        "stepfunctions",
        "create_state_machine",
        name="j",
        roleArn=role["Role"]["Arn"],
        definition=json.dumps(definition),
    )["stateMachineArn"]
    desc = _run(sandbox_aws, sm, {"ports": [9092, 6], "n": "msk"})
    assert desc["status"] == "SUCCEEDED", desc
    assert json.loads(desc["output"]) == {"total": 9098, "name": "MSK"}


def test_modify_vpc_endpoint_private_dns(sandbox_aws, msk_stack) -> None:
    stack = msk_stack()
    ec2 = sandbox_aws.client("ec2")
    vpce = ec2.create_vpc_endpoint(
        VpcId=stack.vpc_id,
        ServiceName="com.amazonaws.us-east-1.sts",
        VpcEndpointType="Interface",
        SubnetIds=stack.subnet_ids,
        SecurityGroupIds=[stack.security_group_id],
        PrivateDnsEnabled=True,
    )["VpcEndpoint"]["VpcEndpointId"]

    def private_dns() -> bool:
        return ec2.describe_vpc_endpoints(VpcEndpointIds=[vpce])["VpcEndpoints"][0]["PrivateDnsEnabled"]

    assert private_dns() is True
    ec2.modify_vpc_endpoint(VpcEndpointId=vpce, PrivateDnsEnabled=False)
    assert private_dns() is False
    ec2.modify_vpc_endpoint(VpcEndpointId=vpce, AddSecurityGroupIds=[stack.security_group_id])  # flag untouched
    assert private_dns() is False
    ec2.modify_vpc_endpoint(VpcEndpointId=vpce, PrivateDnsEnabled=True)
    assert private_dns() is True


def test_apply_is_idempotent() -> None:
    from moto.awslambda.models import EventSourceMapping, LambdaFunction

    patches.apply()
    inproc.apply()
    before = (EventSourceMapping.get_configuration, LambdaFunction._invoke_lambda, LambdaFunction.invoke)
    patches.apply()
    inproc.apply()
    assert (EventSourceMapping.get_configuration, LambdaFunction._invoke_lambda, LambdaFunction.invoke) == before
    assert patches.applied() == [
        "patch_lambda",
        "patch_timing",
        "patch_kafka",
        "patch_iam",
        "patch_events",
        "patch_sfn",
        "patch_ec2",
        "patch_control",
        "patch_regions",
        "patch_sts",
    ]
