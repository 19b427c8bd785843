"""Run Lambda functions in this Python process, without Docker.

moto gap: moto runs Lambda code only in Docker (not available here); with ``lambda.use_docker=False`` it runs
nothing and answers a canned payload. We replace ``moto.awslambda.models.LambdaFunction._invoke_lambda`` with a
dispatcher from function name to a Python handler, and make moto's Docker-less backend (``LambdaSimpleBackend``)
use the normal invoke path (its canned-results queue, ``/moto-api/static/lambda-simple/response``, still wins
when something is queued). That covers every way moto invokes a function: boto3 ``Invoke``, Step Functions Task
states, EventBridge targets (:mod:`.patch_events`), SQS / Kinesis / DynamoDB event source mappings and
CloudFormation custom resources; in decorator mode and in a ``ThreadedMotoServer`` started in this process.

Per call the dispatcher:

- finds the handler registered for the function name (:func:`register_handler`; a callable or a
  ``"module:function"`` / ``"module.function"`` string, imported on first use). When none is registered and the
  function's own ``Handler`` names an importable module under one of :data:`AUTO_IMPORT_PREFIXES`
  (``esm_medic.`` by default), that handler is used, as Lambda would;
- passes a fake :class:`LambdaContext` (function name / version / ARN, memory, request id, log group / stream,
  ``get_remaining_time_in_millis()`` counting down from the function's timeout);
- overlays the function's environment variables plus the standard ``AWS_LAMBDA_FUNCTION_*`` ones on
  ``os.environ`` for the duration of the call and restores them after. The overlay is reference-counted, so
  concurrent calls of the same function (Step Functions Map / Parallel) are safe; concurrent calls of different
  functions that set the same variable to different values see the last writer's value (documented limit: the
  environment is process-wide). No lock is held while a handler runs, so handlers may invoke other functions;
- turns an exception into AWS's error payload ``{"errorMessage", "errorType", "requestId", "stackTrace"}`` with
  ``FunctionError: Unhandled``; a result that is not JSON-serialisable gives ``Runtime.MarshalError``; an
  unregistered function gives ``Runtime.HandlerNotFound`` with a message saying how to register one.

The function timeout is not enforced (a thread cannot be killed); ``INVOCATIONS`` keeps the last 200 calls
(function, request id, error type) for tests.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

Handler = Callable[[Any, Any], Any]

#: module prefixes whose functions' own Handler setting is imported when no handler is registered
AUTO_IMPORT_PREFIXES: list[str] = ["esm_medic."]
#: recent invocations: {"function", "request_id", "error_type" (None when it succeeded)}
INVOCATIONS: deque[dict[str, Any]] = deque(maxlen=200)

_LOCK = threading.RLock()
_HANDLERS: dict[str, Handler | str] = {}
_RESOLVED: dict[str, Handler] = {}
_ENV_LOCK = threading.Lock()
_ENV_STATE: dict[str, list[Any]] = {}  # key -> [original value or None, refcount]
_APPLIED = False


class HandlerNotFound(LookupError):
    pass


# ---------------------------------------------------------------------------------------------- registry
def _key(function_name: str) -> str:
    """Function name from a name, a 'name:qualifier' or an ARN."""
    parts = function_name.split(":")
    if "function" in parts:
        return parts[parts.index("function") + 1]
    return parts[0]


def register_handler(function_name: str, handler: Handler | str) -> None:
    """Run ``handler(event, context)`` whenever moto invokes ``function_name`` (a name or an ARN)."""
    if not callable(handler) and not (isinstance(handler, str) and handler.strip()):
        raise TypeError("handler must be a callable or a 'module:function' string")
    with _LOCK:
        name = _key(function_name)
        _HANDLERS[name] = handler
        _RESOLVED.pop(name, None)


def unregister_handler(function_name: str) -> None:
    with _LOCK:
        _HANDLERS.pop(_key(function_name), None)
        _RESOLVED.pop(_key(function_name), None)


def clear_handlers() -> None:
    """Forget every registered handler."""
    with _LOCK:
        _HANDLERS.clear()
        _RESOLVED.clear()


def registered_handlers() -> dict[str, Handler | str]:
    with _LOCK:
        return dict(_HANDLERS)


def import_handler(spec: str) -> Handler:
    """``"pkg.mod:func"`` or ``"pkg.mod.func"`` -> the callable."""
    spec = spec.strip()
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
    else:
        module_name, _, attr = spec.rpartition(".")
    if not module_name or not attr:
        raise HandlerNotFound(f"bad handler spec {spec!r}: expected 'module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise HandlerNotFound(f"cannot import module {module_name!r} for handler {spec!r}: {exc}") from exc
    target: Any = module
    for part in attr.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise HandlerNotFound(f"module {module_name!r} has no attribute {attr!r}")
    if not callable(target):
        raise HandlerNotFound(f"handler {spec!r} is not callable")
    return target


def resolve_handler(function_name: str, configured_handler: str | None = None) -> Handler:
    name = _key(function_name)
    with _LOCK:
        if name in _RESOLVED:
            return _RESOLVED[name]
        registered = _HANDLERS.get(name)
    if registered is None:
        if configured_handler and any(configured_handler.startswith(p) for p in AUTO_IMPORT_PREFIXES):
            return import_handler(configured_handler)
        raise HandlerNotFound(
            f"esm-medic sandbox: no in-process handler registered for Lambda function {name!r}; call "
            f"esm_medic_sandbox.inproc.register_handler({name!r}, 'module:function') first"
        )
    fn = registered if callable(registered) else import_handler(registered)
    with _LOCK:
        if _HANDLERS.get(name) is registered:
            _RESOLVED[name] = fn
    return fn


# ---------------------------------------------------------------------------------------------- context
class LambdaContext:
    """The attributes and method of the Python runtime's context object that handlers use."""

    def __init__(
        self,
        function_name: str,
        function_version: str = "$LATEST",
        invoked_function_arn: str = "",
        memory_limit_in_mb: int = 128,
        timeout_seconds: float = 3.0,
        aws_request_id: str | None = None,
    ) -> None:
        self.function_name = function_name
        self.function_version = function_version
        self.invoked_function_arn = invoked_function_arn
        self.memory_limit_in_mb = int(memory_limit_in_mb)
        self.aws_request_id = aws_request_id or str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        day = datetime.now(UTC).strftime("%Y/%m/%d")
        self.log_stream_name = f"{day}/[{function_version}]{uuid.uuid4().hex}"
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._deadline = time.monotonic() + float(timeout_seconds)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))

    def __repr__(self) -> str:
        return f"LambdaContext(function_name={self.function_name!r}, aws_request_id={self.aws_request_id!r})"


# ---------------------------------------------------------------------------------------------- environment
def _push_env(values: dict[str, str]) -> None:
    with _ENV_LOCK:
        for k, v in values.items():
            state = _ENV_STATE.get(k)
            if state is None:
                state = _ENV_STATE[k] = [os.environ.get(k), 0]
            state[1] += 1
            os.environ[k] = v


def _pop_env(values: dict[str, str]) -> None:
    with _ENV_LOCK:
        for k in values:
            state = _ENV_STATE.get(k)
            if state is None:
                continue
            state[1] -= 1
            if state[1] <= 0:
                del _ENV_STATE[k]
                if state[0] is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = state[0]


def _function_env(fn: Any) -> dict[str, str]:
    env = {
        "AWS_LAMBDA_FUNCTION_NAME": str(fn.function_name),
        "AWS_LAMBDA_FUNCTION_VERSION": str(getattr(fn, "version", "$LATEST")),
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(getattr(fn, "memory_size", 128)),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fn.function_name}",
        "AWS_REGION": str(getattr(fn, "region", "") or os.environ.get("AWS_DEFAULT_REGION", "us-east-1")),
    }
    env.update({str(k): str(v) for k, v in (getattr(fn, "environment_vars", None) or {}).items()})
    return env


# ---------------------------------------------------------------------------------------------- dispatch
def _error_payload(exc: BaseException, request_id: str, error_type: str | None = None) -> str:
    stack = traceback.format_tb(exc.__traceback__) if exc.__traceback__ else []
    return json.dumps(
        {
            "errorMessage": str(exc),
            "errorType": error_type or type(exc).__name__,
            "requestId": request_id,
            "stackTrace": stack,
        }
    )


def invoke_in_process(fn: Any, event: Any) -> tuple[str, bool, str]:
    """Run the handler of moto LambdaFunction ``fn`` on ``event``: (payload JSON, errored, log text)."""
    if isinstance(event, (str, bytes)):
        with contextlib.suppress(json.JSONDecodeError):
            event = json.loads(event or "{}")
    if event is None:
        event = {}
    name = str(fn.function_name)
    ctx = LambdaContext(
        function_name=name,
        function_version=str(getattr(fn, "version", "$LATEST")),
        invoked_function_arn=str(getattr(fn, "function_arn", "")),
        memory_limit_in_mb=int(getattr(fn, "memory_size", 128) or 128),
        timeout_seconds=float(getattr(fn, "timeout", 3) or 3),
    )
    rid = ctx.aws_request_id
    started = time.monotonic()
    error_type: str | None = None
    try:
        handler = resolve_handler(name, getattr(fn, "handler", None))
    except HandlerNotFound as exc:
        error_type = "Runtime.HandlerNotFound"
        payload, errored = _error_payload(exc, rid, error_type), True
    else:
        env = _function_env(fn)
        _push_env(env)
        try:
            result = handler(event, ctx)
        except Exception as exc:
            error_type = type(exc).__name__
            payload, errored = _error_payload(exc, rid), True
        else:
            try:
                payload, errored = json.dumps(result), False
            except (TypeError, ValueError) as exc:
                error_type = "Runtime.MarshalError"
                wrapped = TypeError(f"Unable to marshal response: {exc}")
                payload, errored = _error_payload(wrapped, rid, error_type), True
        finally:
            _pop_env(env)
    INVOCATIONS.append({"function": name, "request_id": rid, "error_type": error_type})
    ms = (time.monotonic() - started) * 1000
    logs = f"START RequestId: {rid} Version: {ctx.function_version}\n"
    if error_type:
        logs += f"[ERROR] {error_type}\n"
    logs += f"END RequestId: {rid}\nREPORT RequestId: {rid}\tDuration: {ms:.2f} ms\n"
    return payload, errored, logs


def is_applied() -> bool:
    return _APPLIED


def apply() -> None:
    """Install the in-process dispatcher into moto (idempotent)."""
    global _APPLIED
    with _LOCK:
        if _APPLIED:
            return
        from moto.awslambda.models import LambdaBackend, LambdaFunction
        from moto.awslambda_simple.models import LambdaSimpleBackend

        def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
            return invoke_in_process(self, event)

        orig_invoke = LambdaFunction.invoke

        def invoke(self: Any, body: Any, request_headers: Any, response_headers: Any) -> Any:
            result = orig_invoke(self, body, request_headers, response_headers)
            if response_headers.get("x-amz-function-error") == "Handled":
                response_headers["x-amz-function-error"] = "Unhandled"  # uncaught exceptions, as in AWS
            return result

        def simple_invoke(
            self: Any, function_name: str, qualifier: str | None, body: Any, headers: Any, response_headers: Any
        ) -> Any:
            if self.lambda_simple_results_queue:
                return str.encode(self.lambda_simple_results_queue.pop(0))
            return LambdaBackend.invoke(self, function_name, qualifier, body, headers, response_headers)

        LambdaFunction._invoke_lambda = _invoke_lambda  # type: ignore[method-assign]
        LambdaFunction.invoke = invoke  # type: ignore[method-assign]
        LambdaSimpleBackend.invoke = simple_invoke  # type: ignore[method-assign]
        _APPLIED = True
