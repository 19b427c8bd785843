"""Tracing is optional: without the X-Ray SDK the handlers run untraced instead of failing."""

from __future__ import annotations

import builtins

import pytest

from esm_medic.handlers import _common


def test_missing_xray_sdk_disables_tracing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "esm-medic-classify")
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-00000000-000000000000000000000000")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "")  # so that teardown restores it after the code sets it
    monkeypatch.setattr(_common, "_TRACER", None)
    real_import = builtins.__import__

    def no_tracer(name, *args, **kwargs):  # type: ignore[no-untyped-def]
        fromlist = args[2] if len(args) > 2 else kwargs.get("fromlist")
        if name == "aws_lambda_powertools" and fromlist and "Tracer" in fromlist:
            raise ImportError("No module named 'aws_xray_sdk'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tracer)
    assert _common.tracing_enabled()
    assert _common.get_tracer() is None
    assert not _common.tracing_enabled()  # and it stays off for the rest of the process
