"""In-process Lambda execution: handlers, context, environment, errors, Step Functions Map concurrency."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import threading
import time

import pytest
from esm_medic_sandbox import inproc
from esm_medic_sandbox.env import LAMBDA_TRUST_POLICY, _zip_source


def _role(aws, name: str = "fn-role") -> str:
    try:
        return aws.call("iam", "get_role", RoleName=name)["Role"]["Arn"]
    except Exception:
        return aws.call("iam", "create_role", RoleName=name, AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST_POLICY))[
            "Role"
        ]["Arn"]


def _function(aws, name: str, handler: str = "index.handler", env: dict | None = None, **kw) -> str:
    return aws.call(
        "lambda",
        "create_function",
        FunctionName=name,
        Runtime="python3.12",
        Role=_role(aws),
        Handler=handler,
        Code={"ZipFile": _zip_source("def handler(e, c):\n    return e\n")},
        Environment={"Variables": env or {}},
        **kw,
    )["FunctionArn"]


def _invoke(aws, name: str, payload: object) -> tuple[object, str | None]:
    out = aws.call("lambda", "invoke", FunctionName=name, Payload=json.dumps(payload))
    return json.loads(out["Payload"].read() or b"null"), out.get("FunctionError")


def test_callable_handler_gets_event_context_and_env(sandbox_aws) -> None:
    seen: dict = {}

    def handler(event, context):
        seen.update(
            event=event,
            name=context.function_name,
            arn=context.invoked_function_arn,
            memory=context.memory_limit_in_mb,
            request_id=context.aws_request_id,
            remaining=context.get_remaining_time_in_millis(),
            log_group=context.log_group_name,
            env=os.environ.get("ESM_MEDIC_MODE"),
            fn_env=os.environ.get("AWS_LAMBDA_FUNCTION_NAME"),
        )
        return {"answer": event["n"] * 2}

    arn = _function(sandbox_aws, "doubler", env={"ESM_MEDIC_MODE": "approve"}, MemorySize=256, Timeout=60)
    inproc.register_handler("doubler", handler)
    assert os.environ.get("ESM_MEDIC_MODE") is None
    payload, error = _invoke(sandbox_aws, "doubler", {"n": 21})
    assert (payload, error) == ({"answer": 42}, None)
    assert seen["event"] == {"n": 21}
    assert (seen["name"], seen["arn"], seen["memory"], seen["log_group"]) == (
        "doubler",
        arn,
        256,
        "/aws/lambda/doubler",
    )
    assert 0 < seen["remaining"] <= 60_000
    assert len(seen["request_id"]) == 36
    assert (seen["env"], seen["fn_env"]) == ("approve", "doubler")
    assert os.environ.get("ESM_MEDIC_MODE") is None  # restored after the call
    # by ARN too
    assert _invoke(sandbox_aws, arn, {"n": 1}) == ({"answer": 2}, None)


def test_string_handler_and_auto_import(sandbox_aws, tmp_path, monkeypatch) -> None:
    pkg = tmp_path / "tmp_handlers"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "mod.py").write_text(
        textwrap.dedent(
            """
            import os
            def handler(event, context):
                return {"via": "module", "region": os.environ["AWS_REGION"], "event": event}
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    _function(sandbox_aws, "by-string")
    inproc.register_handler("by-string", "tmp_handlers.mod:handler")
    assert _invoke(sandbox_aws, "by-string", [1]) == ({"via": "module", "region": "us-east-1", "event": [1]}, None)
    # a function whose own Handler names an allowed module runs without registration
    monkeypatch.setattr(inproc, "AUTO_IMPORT_PREFIXES", ["tmp_handlers."])
    _function(sandbox_aws, "auto", handler="tmp_handlers.mod.handler")
    assert _invoke(sandbox_aws, "auto", {"x": 1})[0]["via"] == "module"
    sys.modules.pop("tmp_handlers.mod", None)
    sys.modules.pop("tmp_handlers", None)


def test_exceptions_become_aws_error_payloads(sandbox_aws) -> None:
    class TransientError(Exception):
        pass

    def boom(event, context):
        raise TransientError("broker unreachable")

    _function(sandbox_aws, "boom")
    inproc.register_handler("boom", boom)
    payload, error = _invoke(sandbox_aws, "boom", {})
    assert error == "Unhandled"
    assert payload["errorType"] == "TransientError"
    assert payload["errorMessage"] == "broker unreachable"
    assert any("boom" in line for line in payload["stackTrace"])
    assert payload["requestId"]


def test_unmarshallable_result_and_unregistered_function(sandbox_aws) -> None:
    _function(sandbox_aws, "bad-result")
    inproc.register_handler("bad-result", lambda e, c: {"when": object()})
    payload, error = _invoke(sandbox_aws, "bad-result", {})
    assert (error, payload["errorType"]) == ("Unhandled", "Runtime.MarshalError")
    _function(sandbox_aws, "nobody")
    payload, error = _invoke(sandbox_aws, "nobody", {})
    assert (error, payload["errorType"]) == ("Unhandled", "Runtime.HandlerNotFound")
    assert "register_handler('nobody'" in payload["errorMessage"]
    inproc.register_handler("bad-spec", "no_such_module_xyz:handler")
    _function(sandbox_aws, "bad-spec")
    payload, _ = _invoke(sandbox_aws, "bad-spec", {})
    assert payload["errorType"] == "Runtime.HandlerNotFound"
    assert "no_such_module_xyz" in payload["errorMessage"]
    with pytest.raises(TypeError):
        inproc.register_handler("x", 42)  # type: ignore[arg-type]


def test_handler_may_invoke_another_function(sandbox_aws) -> None:
    _function(sandbox_aws, "inner")
    _function(sandbox_aws, "outer")
    inproc.register_handler("inner", lambda e, c: {"inner": e})

    def outer(event, context):
        import boto3

        out = boto3.client("lambda", region_name="us-east-1").invoke(FunctionName="inner", Payload=b'{"v": 1}')
        return {"outer": json.loads(out["Payload"].read())}

    inproc.register_handler("outer", outer)
    assert _invoke(sandbox_aws, "outer", {}) == ({"outer": {"inner": {"v": 1}}}, None)


def test_step_functions_map_runs_handlers_concurrently_and_restores_env(sandbox_aws) -> None:
    active = {"now": 0, "max": 0}
    lock = threading.Lock()

    def work(event, context):
        with lock:
            active["now"] += 1
            active["max"] = max(active["max"], active["now"])
        time.sleep(0.1)
        value = os.environ["STAGE"]
        with lock:
            active["now"] -= 1
        return {"item": event["item"], "stage": value}

    arn = _function(sandbox_aws, "work", env={"STAGE": "map"})
    inproc.register_handler("work", work)
    definition = {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "MaxConcurrency": 3,
                "ItemSelector": {"item.$": "$$.Map.Item.Value"},
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "Call",
                    "States": {
                        "Call": {
                            "Type": "Task",
                            "Resource": "arn:aws:states:::lambda:invoke",
                            "Parameters": {"FunctionName": arn, "Payload.$": "$"},
                            "ResultSelector": {"r.$": "$.Payload"},
                            "OutputPath": "$.r",
                            "End": True,
                        }
                    },
                },
                "End": True,
            }
        },
    }
    sm = sandbox_aws.call(
        "stepfunctions",
        "create_state_machine",
        name="fanout",
        roleArn=_role(sandbox_aws),
        definition=json.dumps(definition),
    )["stateMachineArn"]
    ex = sandbox_aws.call(
        "stepfunctions",
        "start_execution",
        stateMachineArn=sm,
        name="run-1",
        input=json.dumps({"items": list(range(6))}),
    )["executionArn"]
    deadline = time.monotonic() + 15
    while (desc := sandbox_aws.call("stepfunctions", "describe_execution", executionArn=ex))["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert desc["status"] == "SUCCEEDED", desc
    assert json.loads(desc["output"]) == [{"item": i, "stage": "map"} for i in range(6)]
    assert os.environ.get("STAGE") is None
    assert active["max"] >= 2, active  # MaxConcurrency 3: calls overlapped


def test_clear_handlers(sandbox_aws) -> None:
    inproc.register_handler("a", lambda e, c: 1)
    inproc.register_handler("arn:aws:lambda:us-east-1:123456789012:function:b:live", lambda e, c: 2)
    assert set(inproc.registered_handlers()) == {"a", "b"}
    inproc.unregister_handler("a")
    assert set(inproc.registered_handlers()) == {"b"}
    inproc.clear_handlers()
    assert inproc.registered_handlers() == {}
