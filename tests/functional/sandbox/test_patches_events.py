"""EventBridge -> Lambda and -> Step Functions delivery in the patched moto (Input, InputPath, InputTransformer)."""

from __future__ import annotations

import json
import time

import pytest
from esm_medic_sandbox import inproc, patch_events
from esm_medic_sandbox.env import LAMBDA_TRUST_POLICY, _zip_source

PATTERN = {"source": ["esm-medic.test"], "detail-type": ["ESM check"]}
DETAIL = {"uuid": "u-1", "groupId": "sg-123", "ports": [9098], "nested": {"reason": 'quote " inside'}}


def _function(aws, name: str) -> str:
    role = aws.call(
        "iam", "create_role", RoleName=f"{name}-role", AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST_POLICY)
    )
    return aws.call(
        "lambda",
        "create_function",
        FunctionName=name,
        Runtime="python3.12",
        Role=role["Role"]["Arn"],
        Handler="index.handler",
        Code={"ZipFile": _zip_source("def handler(e, c):\n    return e\n")},
    )["FunctionArn"]


def _rule(aws, name: str = "esm-check", state: str = "ENABLED") -> None:
    aws.call("events", "put_rule", Name=name, EventPattern=json.dumps(PATTERN), State=state)


def _put(aws, detail: dict = DETAIL, source: str = "esm-medic.test") -> None:
    out = aws.call(
        "events",
        "put_events",
        Entries=[{"Source": source, "DetailType": "ESM check", "Detail": json.dumps(detail), "Resources": ["arn:x"]}],
    )
    assert out["FailedEntryCount"] == 0


@pytest.fixture
def received(sandbox_aws):
    calls: list[dict] = []
    inproc.register_handler("sink", lambda event, context: calls.append(event) or {"ok": True})
    _function(sandbox_aws, "sink")
    return calls


def test_lambda_target_receives_the_whole_event(sandbox_aws, received) -> None:
    _rule(sandbox_aws)
    arn = sandbox_aws.call("lambda", "get_function", FunctionName="sink")["Configuration"]["FunctionArn"]
    sandbox_aws.call("events", "put_targets", Rule="esm-check", Targets=[{"Id": "1", "Arn": arn}])
    _put(sandbox_aws)
    assert len(received) == 1
    event = received[0]
    assert event["detail"] == DETAIL
    assert (event["source"], event["detail-type"], event["resources"]) == ("esm-medic.test", "ESM check", ["arn:x"])
    assert event["account"] == "123456789012" and event["region"] == "us-east-1"
    assert isinstance(event["time"], str) and event["time"].endswith("Z")  # ISO-8601 like AWS
    assert "ingestion-time" not in event
    _put(sandbox_aws, source="someone.else")  # not matching: not delivered
    assert len(received) == 1


def test_lambda_target_input_forms(sandbox_aws, received) -> None:
    _rule(sandbox_aws)
    arn = sandbox_aws.call("lambda", "get_function", FunctionName="sink")["Configuration"]["FunctionArn"]
    targets = [
        {"Id": "const", "Arn": arn, "Input": json.dumps({"fixed": True})},
        {"Id": "path", "Arn": arn, "InputPath": "$.detail.nested"},
        {
            "Id": "json",
            "Arn": arn,
            "InputTransformer": {
                "InputPathsMap": {
                    "sg": "$.detail.groupId",
                    "ports": "$.detail.ports",
                    "why": "$.detail.nested.reason",
                    "nothing": "$.detail.missing",
                },
                "InputTemplate": '{"sg": <sg>, "quoted": "<sg>", "ports": <ports>, "why": <why>, '
                '"text": "rule <aws.events.rule-name> saw <sg>", "missing": <nothing>}',
            },
        },
        {
            "Id": "text",
            "Arn": arn,
            "InputTransformer": {"InputPathsMap": {"sg": "$.detail.groupId"}, "InputTemplate": "group <sg> changed"},
        },
    ]
    sandbox_aws.call("events", "put_targets", Rule="esm-check", Targets=targets)
    _put(sandbox_aws)
    assert received == [
        {"fixed": True},
        {"reason": 'quote " inside'},
        {
            "sg": "sg-123",
            "quoted": "sg-123",
            "ports": [9098],
            "why": 'quote " inside',
            "text": "rule esm-check saw sg-123",
            "missing": None,
        },
        "group sg-123 changed",
    ]


def test_step_functions_target_starts_named_executions_with_transformed_input(sandbox_aws) -> None:
    role = sandbox_aws.call(
        "iam", "create_role", RoleName="sfn", AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST_POLICY)
    )
    sm = sandbox_aws.call(
        "stepfunctions",
        "create_state_machine",
        name="remediate",
        roleArn=role["Role"]["Arn"],
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}),
    )["stateMachineArn"]
    _rule(sandbox_aws)
    sandbox_aws.call(
        "events",
        "put_targets",
        Rule="esm-check",
        Targets=[
            {
                "Id": "sfn",
                "Arn": sm,
                "RoleArn": role["Role"]["Arn"],
                "InputTransformer": {"InputPathsMap": {"u": "$.detail.uuid"}, "InputTemplate": '{"uuid": <u>}'},
            }
        ],
    )
    _put(sandbox_aws)
    _put(sandbox_aws, {**DETAIL, "uuid": "u-2"})
    executions = _wait_all(sandbox_aws, sm, 2)
    assert len({e["name"] for e in executions}) == 2  # unique names (no "None" collision)
    outputs = sorted(json.loads(_describe(sandbox_aws, e["executionArn"])["output"])["uuid"] for e in executions)
    assert outputs == ["u-1", "u-2"]
    assert [d["kind"] for d in patch_events.DELIVERIES] == ["states", "states"]


def _describe(aws, arn: str) -> dict:
    return aws.call("stepfunctions", "describe_execution", executionArn=arn)


def _wait_all(aws, sm: str, count: int, timeout: float = 10.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        execs = aws.call("stepfunctions", "list_executions", stateMachineArn=sm)["executions"]
        if len(execs) == count and all(e["status"] != "RUNNING" for e in execs):
            assert {e["status"] for e in execs} == {"SUCCEEDED"}
            return execs
        time.sleep(0.05)
    raise AssertionError(f"executions did not finish: {execs}")


def test_disabled_rule_delivers_nothing(sandbox_aws, received) -> None:
    _rule(sandbox_aws, state="DISABLED")
    arn = sandbox_aws.call("lambda", "get_function", FunctionName="sink")["Configuration"]["FunctionArn"]
    sandbox_aws.call("events", "put_targets", Rule="esm-check", Targets=[{"Id": "1", "Arn": arn}])
    _put(sandbox_aws)
    assert received == []
    sandbox_aws.call("events", "enable_rule", Name="esm-check")
    _put(sandbox_aws)
    assert len(received) == 1


def test_failed_delivery_is_recorded_not_raised_and_other_targets_still_get_it(sandbox_aws) -> None:
    _rule(sandbox_aws)
    q = sandbox_aws.call("sqs", "create_queue", QueueName="audit")["QueueUrl"]
    q_arn = sandbox_aws.call("sqs", "get_queue_attributes", QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    ghost = "arn:aws:lambda:us-east-1:123456789012:function:ghost"
    sandbox_aws.call(
        "events", "put_targets", Rule="esm-check", Targets=[{"Id": "q", "Arn": q_arn}, {"Id": "g", "Arn": ghost}]
    )
    _put(sandbox_aws)
    assert [e["arn"] for e in patch_events.DELIVERY_ERRORS] == [ghost]
    msgs = sandbox_aws.call("sqs", "receive_message", QueueUrl=q)["Messages"]
    assert json.loads(msgs[0]["Body"])["detail"] == DETAIL


def test_unregistered_function_target_gets_a_clear_error_not_a_crash(sandbox_aws) -> None:
    _function(sandbox_aws, "unwired")
    _rule(sandbox_aws)
    arn = sandbox_aws.call("lambda", "get_function", FunctionName="unwired")["Configuration"]["FunctionArn"]
    sandbox_aws.call("events", "put_targets", Rule="esm-check", Targets=[{"Id": "1", "Arn": arn}])
    _put(sandbox_aws)
    assert patch_events.DELIVERIES[-1]["functionError"] == "Unhandled"
    assert inproc.INVOCATIONS[-1] == {
        "function": "unwired",
        "request_id": inproc.INVOCATIONS[-1]["request_id"],
        "error_type": "Runtime.HandlerNotFound",
    }


def test_test_event_pattern_answers(sandbox_aws) -> None:
    event = {
        "id": "1",
        "source": "esm-medic.test",
        "detail-type": "ESM check",
        "account": "123456789012",
        "time": "2026-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {"groupId": "sg-1"},
    }
    events = sandbox_aws.client("events")
    assert events.test_event_pattern(EventPattern=json.dumps(PATTERN), Event=json.dumps(event))["Result"] is True
    other = json.dumps({"source": ["other"]})
    assert events.test_event_pattern(EventPattern=other, Event=json.dumps(event))["Result"] is False


@pytest.mark.parametrize(
    ("template", "values", "expected"),
    [
        ('{"a": <x>}', {"x": "s"}, '{"a": "s"}'),
        ('{"a": "<x>"}', {"x": "s"}, '{"a": "s"}'),
        ('{"a": "pre <x> post"}', {"x": 'q"q'}, '{"a": "pre q\\"q post"}'),
        ('{"a": <x>}', {"x": {"k": [1]}}, '{"a": {"k": [1]}}'),
        ('{"a": "<x>"}', {"x": {"k": 1}}, '{"a": "{\\"k\\": 1}"}'),
        ('{"a": "\\"<x>\\""}', {"x": "s"}, '{"a": "\\"s\\""}'),
        ("plain <x> and <y>", {"x": "s", "y": 3}, "plain s and 3"),
        ('{"a": <unknown>}', {"x": "s"}, '{"a": <unknown>}'),
        ('[<x>, "<x>"]', {"x": None}, '[null, ""]'),
    ],
)
def test_render_template(template: str, values: dict, expected: str) -> None:
    assert patch_events.render_template(template, values) == expected


def test_patterns_match_fields_inside_arrays_of_objects(sandbox_aws, received) -> None:
    pattern = {
        "source": ["aws.ec2"],
        "detail": {"requestParameters": {"ipPermissions": {"items": {"groups": {"items": {"groupId": ["sg-1"]}}}}}},
    }
    sandbox_aws.call("events", "put_rule", Name="sg-change", EventPattern=json.dumps(pattern))
    arn = sandbox_aws.call("lambda", "get_function", FunctionName="sink")["Configuration"]["FunctionArn"]
    sandbox_aws.call("events", "put_targets", Rule="sg-change", Targets=[{"Id": "1", "Arn": arn}])

    def perms(*group_ids: str) -> dict:
        return {
            "requestParameters": {
                "ipPermissions": {
                    "items": [{"ipProtocol": "tcp", "groups": {"items": [{"groupId": g}]}} for g in group_ids]
                }
            }
        }

    _put(sandbox_aws, perms("sg-2", "sg-1"), source="aws.ec2")
    _put(sandbox_aws, perms("sg-2", "sg-3"), source="aws.ec2")
    assert len(received) == 1
    event = {"source": "aws.ec2", "detail": perms("sg-9", "sg-1")}
    events = sandbox_aws.client("events")
    assert (
        events.test_event_pattern(
            EventPattern=json.dumps(pattern),
            Event=json.dumps(
                {
                    "id": "1",
                    "detail-type": "x",
                    "account": "123456789012",
                    "time": "2026-01-01T00:00:00Z",
                    "region": "us-east-1",
                    "resources": [],
                    **event,
                }
            ),
        )["Result"]
        is True
    )


def test_flatten_event() -> None:
    flat = patch_events.flatten_event(
        {"a": {"b": 1}, "l": [{"c": 1}, {"c": 2, "d": {"e": "x"}}], "s": [1, 2], "empty": {}, "n": None}
    )
    assert flat == {"a.b": 1, "l.c": [1, 2], "l.d.e": ["x"], "s": [1, 2], "empty": {}, "n": None}
