"""The watch (rule 2 / rule 4), the CloudTrail denial path (rule 3) and the three Lambda handlers, in the sandbox."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from esm_medic_sandbox.inproc import LambdaContext

from esm_medic.detect import watch
from esm_medic.detect.events import parse_access_denial, parse_status_change, report_access_denial
from esm_medic.detect.sweeper import SweepSettings
from esm_medic.handlers import cloudtrail_error as h_ct
from esm_medic.handlers import sweeper as h_sweep
from esm_medic.handlers import watch as h_watch
from esm_medic.handlers._common import logger as handler_logger
from esm_medic.handlers._common import reset_aws

AUTHZ = "PROBLEM: Cluster failed to authorize Lambda."
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
FAST = SweepSettings(hold_seconds=0, gc_every_seconds=0)


@pytest.fixture
def handlers(detect: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("ESM_MEDIC_SWEEP_HOLD_SECONDS", "0")
    monkeypatch.setenv("ESM_MEDIC_SWEEP_PASS_SECONDS", "0")  # one pass per invocation (passes: test_detect_passes)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "esm-medic")
    reset_aws()  # the handlers build their own adapter inside this sandbox
    yield detect
    reset_aws()


def ctx(timeout: float = 60.0) -> LambdaContext:
    return LambdaContext("esm-medic-test", timeout_seconds=timeout)


# ------------------------------------------------------------------ watch
def test_watch_follows_an_esm_until_it_settles(detect: Any) -> None:
    (u,) = detect.add_msk()
    detect.set(u, state="Creating", result="")
    r = watch.check(detect.aws, u, now=NOW, settings=FAST)
    assert not r.settled and r.state == "Creating" and not r.emitted
    detect.set(u, state="Enabled", result="")
    assert not watch.check(detect.aws, u, now=NOW, settings=FAST).settled  # no poll reported yet
    detect.set(u, state="Enabled", result=AUTHZ)
    r = watch.check(detect.aws, u, now=NOW, settings=FAST)
    assert r.settled and r.error and r.classification["step"] == "authz"
    assert len(r.emitted) == 1 and r.emitted[0]["trigger"] == "watch"
    # the sweeper already knows: it does not emit the same transition again
    from esm_medic.detect.sweeper import sweep

    assert sweep(detect.aws, now=NOW, settings=FAST).emitted == 0
    assert len(detect.events()) == 1


def test_watch_of_a_missing_esm_is_settled(detect: Any) -> None:
    r = watch.check(detect.aws, "6f1c2b7e-3d4a-4e5f-8a9b-0c1d2e3f4a5b", now=NOW, settings=FAST)
    assert r.settled and not r.found and not r.error


def test_watch_handler_inputs(handlers: Any, load_event: Any) -> None:
    (u,) = handlers.add_msk()
    handlers.set(u, AUTHZ)
    out = h_watch.handler({"uuid": u, "record": False}, ctx())
    assert out["ok"] and out["settled"] and out["error"] and out["classification"]["step"] == "authz"
    assert out["emitted"] == []  # record false: look only

    created = load_event("cloudtrail/create-esm-msk.json")
    created["detail"]["responseElements"]["uUID"] = u
    out = h_watch.handler(created, ctx())
    assert out["ok"] and out["uuid"] == u and out["settled"] and len(out["emitted"]) == 1
    assert out["incident_id"]

    alarm = load_event("cloudwatch/alarm-esm-polling-errors.json")
    alarm["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"]["EventSourceMappingUUID"] = u
    out = h_watch.handler(alarm, ctx())
    assert out["ok"] and out["uuid"] == u and out["emitted"] == []  # already reported

    sqs = h_watch.handler(load_event("cloudtrail/create-esm-sqs.json"), ctx())
    assert sqs["ok"] and sqs["ignored"] and "not a Kafka ESM" in sqs["reason"]


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ("not an object", "must be an object"),
        ({"uuid": "../../etc"}, "must be an ESM UUID"),
        ({"uuid": "6f1c2b7e-3d4a-4e5f-8a9b-0c1d2e3f4a5b", "record": "yes"}, "'record'"),
        ({"hello": 1}, "expected"),
        ({"detail-type": "AWS API Call via CloudTrail", "detail": {"eventSource": "x"}}, "invalid CloudTrail record"),
    ],
)
def test_watch_handler_rejects_malformed_input(handlers: Any, event: Any, reason: str) -> None:
    out = h_watch.handler(event, ctx())
    assert out["ok"] is False and out["settled"] is True and reason in out["error"]


# ------------------------------------------------------------------ CloudTrail denials
def _denial_for(detect: Any, load_event: Any, name: str) -> dict[str, Any]:
    event = copy.deepcopy(load_event(name))
    text = json.dumps(event)
    text = text.replace("arn:aws:iam::123456789012:role/service-role/orders-consumer-role", detect.stack.role_arn)
    text = text.replace("assumed-role/orders-consumer-role/", f"assumed-role/{detect.stack.role_name}/")
    return dict(json.loads(text))


def test_denial_reaches_the_esms_of_the_role_once(detect: Any, load_event: Any) -> None:
    a, b = detect.add_msk(2)
    event = _denial_for(detect, load_event, "cloudtrail/secretsmanager-getsecretvalue-accessdenied.json")
    denial = parse_access_denial(event)
    reports = report_access_denial(detect.aws, denial, now=NOW)
    assert sorted(r.uuid for r in reports) == sorted([a, b])
    assert all(r.emitted and not r.duplicate and r.step == "secret" for r in reports)
    delivered = detect.error_rule_events()
    assert len(delivered) == 2
    change = parse_status_change(delivered[0])
    assert change.trigger == "cloudtrail" and change.entry == "secret-access-denied"
    assert change.evidence["error_code"] == "AccessDenied"
    again = report_access_denial(detect.aws, denial, now=NOW)
    assert all(r.duplicate and not r.emitted for r in again)
    assert detect.events() == [] or all(e["detail"]["trigger"] == "cloudtrail" for e in detect.events())
    assert detect.error_rule_events() == []


def test_denial_for_a_role_without_kafka_esms(detect: Any, load_event: Any) -> None:
    detect.add_msk()
    text = json.dumps(load_event("cloudtrail/ec2-createnetworkinterface-unauthorized.json"))
    event = json.loads(text.replace("orders-consumer-role", "unrelated-role"))
    assert report_access_denial(detect.aws, parse_access_denial(event), now=NOW) == []


def test_cloudtrail_handler(handlers: Any, load_event: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    (u,) = handlers.add_msk()
    event = _denial_for(handlers, load_event, "cloudtrail/sts-assumerole-accessdenied.json")
    out = h_ct.handler(event, ctx())
    assert out["ok"] and out["classification"] == {"entry": "execution-role-assume-failed", "step": "role"}
    assert [e["uuid"] for e in out["esms"]] == [u] and out["emitted"] == 1
    assert len(handlers.error_rule_events()) == 1
    # return-only mode: the caller starts the workflow itself
    monkeypatch.setenv("ESM_MEDIC_CLOUDTRAIL_EMIT", "false")
    kms = _denial_for(handlers, load_event, "cloudtrail/kms-decrypt-accessdenied.json")
    out = h_ct.handler(kms, ctx())
    assert out["ok"] and out["emitted"] == 0 and len(out["events"]) == 1
    assert parse_status_change(out["events"][0]).step == "secret"
    assert handlers.error_rule_events() == []


@pytest.mark.parametrize(
    ("fixture", "ok", "text"),
    [
        ("cloudtrail/secretsmanager-getsecretvalue-ok.json", True, "no errorCode"),
        ("cloudtrail/secretsmanager-getsecretvalue-accessdenied-iam-user.json", True, "not an assumed role"),
        ("malformed/denial-without-user-identity.json", False, "userIdentity"),
        ("malformed/assumerole-without-role.json", False, "roleArn"),
    ],
)
def test_cloudtrail_handler_rejects_with_a_reason(
    handlers: Any, load_event: Any, fixture: str, ok: bool, text: str
) -> None:
    out = h_ct.handler(load_event(fixture), ctx())
    assert out["ok"] is ok
    assert text in (out.get("reason") or out.get("error") or "")


# ------------------------------------------------------------------ sweeper handler
def _emf(text: str) -> dict[str, tuple[float, dict[str, str]]]:
    """Metric name -> (value, dimensions) from the EMF lines single_metric printed."""
    import json

    out: dict[str, tuple[float, dict[str, str]]] = {}
    for line in text.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        doc = json.loads(line)
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            dims = {d: doc[d] for group in directive["Dimensions"] for d in group}
            for m in directive["Metrics"]:
                value = doc[m["Name"]]
                out[m["Name"]] = (value[0] if isinstance(value, list) else value, dims)
    return out


def test_sweeper_handler(handlers: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from esm_medic.handlers import _common

    (u,) = handlers.add_msk()
    handlers.set(u, AUTHZ)
    scheduled = {
        "version": "0",
        "id": "sched-1",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-11-26T10:00:00Z",
        "region": "us-east-1",
        "detail": {},
    }
    out = h_sweep.handler(scheduled, ctx())
    assert out["ok"] and out["emitted"] == 1 and out["complete"] and out["transitions"] == 1
    recorded = _emf(capsys.readouterr().out)
    assert recorded["TransitionsEmitted"][0] == 1 and recorded["SweepFailed"][0] == 0  # EMF, one metric per record
    # the sweeper's counters carry the service dimension only (what the alarms read), none inherited from others
    assert recorded["TransitionsEmitted"][1] == {"service": "esm-medic"}
    assert _common.metrics.namespace == "esm-medic"
    assert handler_logger.get_correlation_id() == "sched-1"  # the scheduled event's id correlates the logs
    out = h_sweep.handler(scheduled, ctx())
    assert out["ok"] and out["emitted"] == 0


def test_sweeper_handler_errors_are_results(handlers: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    out = h_sweep.handler(["not", "an", "object"], ctx())
    assert out == {"ok": False, "error": "sweeper input must be an object (a scheduled event), got list"}
    monkeypatch.setenv("ESM_MEDIC_SWEEP_HOLD_SECONDS", "-5")
    out = h_sweep.handler({}, ctx())
    assert not out["ok"] and "ESM_MEDIC_SWEEP_HOLD_SECONDS" in out["error"]
    monkeypatch.setenv("ESM_MEDIC_SWEEP_HOLD_SECONDS", "0")
    monkeypatch.setenv("ESM_MEDIC_STATE_TABLE", "no-such-table")
    out = h_sweep.handler({}, ctx())
    handlers.add_msk()
    out = h_sweep.handler({}, ctx())
    assert not out["ok"] and "ResourceNotFoundException" in out["error"]


def test_sweeper_handler_stops_before_the_lambda_timeout(handlers: Any) -> None:
    handlers.add_msk(101)
    out = h_sweep.handler({}, ctx(timeout=5.0))  # less than the 10 s safety margin
    assert out["ok"] and not out["complete"] and out["kafka"] == 100
