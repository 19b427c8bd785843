"""The log path in the sandbox: ESM system-log records through the subscription handler, de-duplicated with the
sweeper's snapshots, poller status kept as evidence."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from esm_medic.detect.esm_logs import handle_records
from esm_medic.detect.events import parse_status_change
from esm_medic.detect.events.esm_log import decode_subscription, parse_record
from esm_medic.detect.snapshot import POLLER_STATUS_EVIDENCE, SnapshotStore
from esm_medic.detect.sweeper import SweepSettings, sweep

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
EARLY = SweepSettings(hold_seconds=120, gc_every_seconds=0)
TIMEOUT = "Timeout expired while fetching topic metadata"
AUTHZ = "PROBLEM: Cluster failed to authorize Lambda."


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def payload(uuid: str, *messages: dict[str, Any], when: datetime = T0) -> dict[str, Any]:
    body = {
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": "/aws/lambda/orders-consumer",
        "logStream": f"{when:%Y/%m/%d}/{uuid}",
        "subscriptionFilters": ["esm-medic-esm-logs"],
        "logEvents": [
            {"id": str(i), "timestamp": int(when.timestamp() * 1000), "message": json.dumps(m)}
            for i, m in enumerate(messages)
        ],
    }
    data = base64.b64encode(gzip.compress(json.dumps(body).encode())).decode()
    return {"awslogs": {"data": data}}


def processing(text: str = TIMEOUT) -> dict[str, Any]:
    return {"eventType": "ESM_PROCESSING_EVENT", "logLevel": "WARN", "errorMessage": text}


def poller() -> dict[str, Any]:
    return {
        "eventType": "POLLER_STATUS_EVENT",
        "logLevel": "INFO",
        "securityProtocol": "SASL_SSL",
        "saslMechanism": "AWS_MSK_IAM",
        "subnetIds": ["subnet-0a1b2c3d"],
        "securityGroupIds": ["sg-0a1b2c3d"],
        "pollerIps": ["10.0.1.17"],
    }


def test_decode_reads_the_stream_uuid_and_the_kinds() -> None:
    uuid = "6f1c2b7e-3d4a-4e5f-8a9b-0c1d2e3f4a5b"
    group, records = decode_subscription(payload(uuid, processing(), poller(), {"eventType": "OTHER"}))
    assert group == "/aws/lambda/orders-consumer"
    assert [(r.uuid, r.kind) for r in records] == [(uuid, "ESM_PROCESSING_EVENT"), (uuid, "POLLER_STATUS_EVENT")]
    assert records[0].message == TIMEOUT
    assert records[1].poller_status()["security_groups"] == ["sg-0a1b2c3d"]
    text = parse_record("g", f"2026/11/26/{uuid}", {"id": "1", "timestamp": 0, "message": "ESM_PROCESSING_EVENT x"})
    assert text is not None and text.uuid == uuid


def test_log_record_emits_once_and_the_sweep_adopts_the_api_error_quietly(detect: Any) -> None:
    (u,) = detect.add_msk()
    sweep(detect.aws, now=at(0), settings=EARLY)
    _group, records = decode_subscription(payload(u, processing(), when=at(5)))
    r = handle_records(detect.aws, records, now=at(6), settings=EARLY)
    assert r.emitted == 1 and r.duplicates == 0
    (ev,) = detect.events()
    change = parse_status_change(ev)
    assert change.trigger == "esm-log" and change.phase == "suspected" and change.hold_seconds == 120
    assert change.evidence["message"] == TIMEOUT and change.new["LastProcessingResult"] == TIMEOUT
    assert len(detect.error_rule_events()) == 1

    again = handle_records(detect.aws, records, now=at(8), settings=EARLY)  # the same record delivered twice
    assert again.emitted == 0 and again.duplicates == 1
    detect.set(u, "OK")  # the API still shows OK inside the hold: it lags the log, no false recovery
    assert sweep(detect.aws, now=at(15), settings=EARLY).emitted == 0
    detect.set(u, AUTHZ)  # the API catches up: same transition, adopted without a second event
    assert sweep(detect.aws, now=at(30), settings=EARLY).emitted == 0
    assert detect.events() == []
    snap = detect.snapshot(u)
    assert snap.status.result == AUTHZ and snap.status_origin == "" and snap.incident_id == change.incident_id
    detect.set(u, "OK")
    rec = sweep(detect.aws, now=at(60), settings=EARLY)
    assert rec.recovered == 1 and detect.events()[0]["detail"]["incident_id"] == change.incident_id


def test_sweep_first_then_the_log_record_is_a_duplicate(detect: Any) -> None:
    (u,) = detect.add_msk()
    sweep(detect.aws, now=at(0), settings=EARLY)
    detect.set(u, AUTHZ)
    assert sweep(detect.aws, now=at(15), settings=EARLY).emitted == 1
    _group, records = decode_subscription(payload(u, processing(), when=at(16)))
    r = handle_records(detect.aws, records, now=at(17), settings=EARLY)
    assert r.emitted == 0 and r.duplicates == 1
    assert len(detect.events()) == 1
    assert "lambda:GetEventSourceMapping" not in r.calls  # known from the snapshot: no API read


def test_poller_status_is_kept_as_evidence(detect: Any) -> None:
    (u,) = detect.add_msk()
    _group, records = decode_subscription(payload(u, poller(), when=at(3)))
    r = handle_records(detect.aws, records, now=at(4), settings=EARLY)
    assert r.evidence_saved == 1 and r.emitted == 0
    ev = SnapshotStore(detect.aws).get_evidence(u, POLLER_STATUS_EVIDENCE)
    assert ev is not None and ev["data"]["sasl_mechanism"] == "AWS_MSK_IAM"
    assert ev["data"]["subnets"] == ["subnet-0a1b2c3d"] and ev["observed_at"].startswith("2026-11-26T10:00:03")


def test_handler_decodes_and_rejects_bad_payloads(detect: Any, monkeypatch: Any) -> None:
    from esm_medic_sandbox.inproc import LambdaContext

    from esm_medic.handlers import esm_logs
    from esm_medic.handlers._common import reset_aws

    ctx = LambdaContext("esm-medic-esm-logs", timeout_seconds=60)

    (u,) = detect.add_msk()
    monkeypatch.setattr(esm_logs, "get_aws", lambda: detect.aws)
    reset_aws()
    out = esm_logs.handler(payload(u, processing()), ctx)
    assert out["ok"] and out["emitted"] == 1
    bad = esm_logs.handler({"awslogs": {"data": "not base64 gzip"}}, ctx)
    assert not bad["ok"] and "undecodable" in bad["error"]
    assert not esm_logs.handler({"hello": 1}, ctx)["ok"]


def test_sweeper_subscribes_the_log_groups_of_esms_with_system_logs(detect: Any) -> None:
    from esm_medic.detect import log_subscriptions

    log_subscriptions.forget()
    (logging_on,) = detect.add_msk(
        ProvisionedPollerConfig={"MinimumPollers": 1, "MaximumPollers": 2}, LoggingConfig={"SystemLogLevel": "WARN"}
    )
    detect.add_msk()  # on-demand: writes no system logs
    fn = detect.aws.call("lambda", "get_event_source_mapping", UUID=logging_on)["FunctionArn"]
    group = f"/aws/lambda/{fn.split(':')[-1]}"
    settings = SweepSettings(hold_seconds=0, gc_every_seconds=0, log_destination_arn=fn)
    first = sweep(detect.aws, now=at(0), settings=settings)
    assert first.log_subscriptions_created == 0 and not first.errors  # the group does not exist yet: later
    detect.aws.call("logs", "create_log_group", logGroupName=group)
    r = sweep(detect.aws, now=at(60), settings=settings)
    assert r.log_subscriptions_created == 1 and not r.errors
    filters = detect.aws.call("logs", "describe_subscription_filters", logGroupName=group)["subscriptionFilters"]
    assert [(f["filterName"], f["destinationArn"]) for f in filters] == [(log_subscriptions.FILTER_NAME, fn)]
    again = sweep(detect.aws, now=at(120), settings=settings)
    assert again.log_subscriptions_created == 0 and "logs:DescribeSubscriptionFilters" not in again.calls
    log_subscriptions.forget()  # a cold container checks once, finds the filter, puts nothing
    cold = sweep(detect.aws, now=at(180), settings=settings)
    assert cold.log_subscriptions_created == 0 and cold.calls.get("logs:DescribeSubscriptionFilters") == 1
