"""The log path end to end: a provisioned-mode ESM with system logs writes an ESM_PROCESSING_EVENT into moto's
CloudWatch Logs; the subscription payload goes through the esm_logs handler, which puts the ESM Status Change on
the bus; the rule starts the real workflow, which fixes the fault; a sweep afterwards emits nothing new."""

from __future__ import annotations

from typing import Any

import pytest


def test_a_system_log_record_reaches_the_workflow_and_a_fix(e2e: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from esm_medic_sandbox import inproc, syslogs

    from esm_medic.detect.sweeper import SweepSettings, sweep
    from esm_medic.handlers import esm_logs
    from esm_medic.handlers._common import reset_aws

    t = e2e("missing-sg-self-rule")
    wf = t.workflow
    t.aws.call(
        "lambda",
        "update_event_source_mapping",
        UUID=t.uuid,
        ProvisionedPollerConfig={"MinimumPollers": 1, "MaximumPollers": 2},
        LoggingConfig={"SystemLogLevel": "INFO"},
    )
    wrote = syslogs.processing_event(t.aws, t.uuid)
    syslogs.poller_status_event(t.aws, t.uuid)
    assert wrote["log_stream"].endswith(t.uuid) and wrote["log_group"].startswith("/aws/lambda/")

    monkeypatch.setenv("ESM_MEDIC_SWEEP_HOLD_SECONDS", "0")  # the workflow's own hold is the flow's concern
    reset_aws()
    ctx = inproc.LambdaContext("esm-logs", timeout_seconds=60)
    before = {e["executionArn"] for e in wf.executions()}
    out = esm_logs.handler(syslogs.subscription_payload(t.aws, t.uuid), ctx)
    assert out["ok"] and out["emitted"] == 1 and out["evidence_saved"] == 1, out
    started = [e for e in wf.executions() if e["executionArn"] not in before]
    assert started, "the esm-log event started no execution"
    run = wf.wait(started[-1]["executionArn"], on_poll=wf.auto_approver())
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert run.outcome == "recovered", run.to_dict()
    assert t.esm_status()["LastProcessingResult"] == "OK"

    again = esm_logs.handler(syslogs.subscription_payload(t.aws, t.uuid), ctx)
    assert again["emitted"] == 0  # the same records delivered again: no second event
    swept = sweep(t.aws, settings=SweepSettings(hold_seconds=0, gc_every_seconds=0))
    assert all(d["uuid"] != t.uuid or d["recovered"] for d in swept.transitions)


def test_no_records_without_provisioned_mode(e2e: Any) -> None:
    from esm_medic_sandbox import syslogs

    t = e2e("missing-sg-self-rule")
    with pytest.raises(syslogs.NoSystemLogs, match="provisioned mode"):
        syslogs.processing_event(t.aws, t.uuid)
