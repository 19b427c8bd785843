"""The thin handlers and their shared setup: schemas, validation before any AWS call, error names Step Functions
retries on, correlation ids, the start handler's clean answers."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest

from esm_medic.handlers import WORKFLOW_HANDLERS, _common

SCHEMAS = Path(_common.SCHEMA_DIR)
UUID = "61950a11-223c-41cc-a76f-8cc3540a00b8"


class Ctx:
    function_name = "esm-medic-test"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:esm-medic-test"
    memory_limit_in_mb = 256
    aws_request_id = "req-1"
    log_group_name = "/aws/lambda/esm-medic-test"
    log_stream_name = "s"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def client_error(code: str) -> Exception:
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": "m"}}, "Op")


# ---------------------------------------------------------------------------------------------- schemas
def test_every_workflow_handler_has_a_valid_schema() -> None:
    import jsonschema

    for name in WORKFLOW_HANDLERS:
        schema = json.loads((SCHEMAS / f"{name}.json").read_text(encoding="utf-8"))
        jsonschema.Draft7Validator.check_schema(schema)
        module = importlib.import_module(f"esm_medic.handlers.{name}")
        assert callable(module.handler)


@pytest.mark.parametrize(
    ("name", "event"),
    [
        ("classify", {}),
        ("classify", {"input": "x"}),
        ("diagnose", {"uuid": "nope", "incident_id": "inc-1", "classification": {}}),
        (
            "diagnose",
            {"uuid": UUID, "incident_id": "bad id!", "classification": {"entry": None, "step": "x", "kind": "x"}},
        ),
        ("decide", {"uuid": UUID, "incident_id": "inc-1", "classification": {"entry": None, "step": "s", "kind": "k"}}),
        ("remediate", {"uuid": UUID, "incident_id": "inc-1", "plan": {"action": "x"}}),
        ("verify", {"uuid": UUID, "incident_id": "inc-1", "previous": {}, "max_attempts": 0}),
        ("rollback", {"uuid": UUID, "incident_id": "inc-1", "mode": "sometimes"}),
        ("record", {"state": {}, "final": "yes", "execution": "x", "at": "t"}),
        ("record", {"state": {}, "final": True, "execution": "x" * 81, "at": "t"}),
    ],
)
def test_bad_input_is_rejected_before_any_aws_call(name: str, event: dict[str, Any], monkeypatch: Any) -> None:
    def no_aws() -> Any:
        raise AssertionError("the handler reached AWS with invalid input")

    # imported first: a handler module imported while _common.get_aws is patched would keep the fake for good
    module = importlib.import_module(f"esm_medic.handlers.{name}")
    monkeypatch.setattr(_common, "get_aws", no_aws)
    monkeypatch.setattr(module, "get_aws", no_aws, raising=False)
    with pytest.raises(_common.InvalidInput):
        module.handler(event, Ctx())


# ---------------------------------------------------------------------------------------------- error mapping
def test_translate_error_names_what_step_functions_retries() -> None:
    from esm_medic.remediate.base import ActionFailed
    from esm_medic.workflow import RemediationFailed, StepFailed

    assert isinstance(_common.translate_error(client_error("Throttling")), _common.Throttled)
    assert isinstance(_common.translate_error(client_error("RequestLimitExceeded")), _common.Throttled)
    assert isinstance(_common.translate_error(ActionFailed("x", throttled=True)), _common.Throttled)
    assert isinstance(_common.translate_error(RemediationFailed("x", throttled=True)), _common.Throttled)
    assert isinstance(_common.translate_error(StepFailed("x", throttled=True)), _common.Throttled)
    assert isinstance(_common.translate_error(client_error("ServiceUnavailable")), _common.Transient)
    from botocore.exceptions import EndpointConnectionError

    assert isinstance(_common.translate_error(EndpointConnectionError(endpoint_url="x")), _common.Transient)
    plain = ValueError("x")
    assert _common.translate_error(plain) is plain
    assert _common.translate_error(client_error("AccessDenied")).__class__.__name__ == "ClientError"
    denied = RemediationFailed("x")
    assert _common.translate_error(denied) is denied


def test_lambda_entry_maps_errors_and_keeps_the_class_name() -> None:
    @_common.lambda_entry("t")
    def throttled(event: Any, context: Any) -> Any:
        raise client_error("ThrottlingException")

    with pytest.raises(_common.Throttled) as exc:
        throttled({"uuid": UUID}, Ctx())
    assert type(exc.value).__name__ == "Throttled"  # the Step Functions error name
    assert isinstance(exc.value.__cause__, Exception)

    @_common.lambda_entry("t")
    def fine(event: Any, context: Any) -> Any:
        _common.count("tested")
        return {"ok": True, "elapsed_ms": None}

    out = fine({"uuid": UUID}, Ctx())
    assert out["ok"] is True and isinstance(out["elapsed_ms"], float)


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"uuid": UUID}, UUID),
        ({"input": {"uuid": UUID}}, UUID),
        ({"state": {"uuid": UUID}}, UUID),
        ({"detail": {"uuid": UUID}}, UUID),
        ({"nothing": 1}, None),
        ("text", None),
    ],
)
def test_correlation_id_is_the_esm_uuid(event: Any, expected: str | None) -> None:
    assert _common.correlation_id(event) == expected


def test_tracer_is_lazy(monkeypatch: Any) -> None:
    monkeypatch.delenv("_X_AMZN_TRACE_ID", raising=False)
    assert _common.get_tracer() is None
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-x")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "f")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    assert _common.get_tracer() is None


def test_get_aws_reads_the_retry_budget(monkeypatch: Any) -> None:
    _common.reset_aws()
    monkeypatch.setenv("ESM_MEDIC_AWS_MAX_ATTEMPTS", "2")
    assert _common.get_aws().max_attempts == 2
    assert _common.get_aws() is _common.get_aws()
    monkeypatch.setenv("ESM_MEDIC_AWS_MAX_ATTEMPTS", "junk")
    assert _common.get_aws().max_attempts == 8
    _common.reset_aws()


# ---------------------------------------------------------------------------------------------- start
def test_start_answers_malformed_and_recovered_events_without_raising(monkeypatch: Any) -> None:
    from esm_medic.handlers import start

    monkeypatch.setenv("ESM_MEDIC_STATE_MACHINE_ARN", "arn:aws:states:us-east-1:123456789012:stateMachine:m")
    monkeypatch.setattr(start, "get_aws", lambda: object())
    out = start.handler({"source": "esm-medic", "detail-type": "ESM Status Change", "detail": {"x": 1}}, Ctx())
    assert out["rejected"] is True and out["started"] is False and "detail" in out["reason"]
    monkeypatch.delenv("ESM_MEDIC_STATE_MACHINE_ARN")
    with pytest.raises(RuntimeError, match="ESM_MEDIC_STATE_MACHINE_ARN"):
        start.handler({"source": "esm-medic"}, Ctx())
