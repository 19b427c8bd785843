"""The fast detectors of a central install act on events from member accounts.

The member stack (deployed in the member account) forwards the AWS-sourced detection rules to the central bus; a
forwarded event keeps its envelope ``account`` (the member). Here the event is handed to the central detector as the
central rule would deliver it (PutEvents from a test cannot set the envelope account): the watch, the CloudTrail
denial and the system-log handlers read the member's ESM through its diagnosis role, their ``ESM Status Change``
events name the member account, and the central workflow diagnoses and fixes the ESM there. Events of an account
that is neither the install's nor a member are ignored; a member whose role is refused is reported, not raised.

The world (two accounts, the member stack, the central workflow running as ``role/EsmMedicFunctions``) is the one
of ``test_multi_account.py``.
"""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from test_multi_account import (  # the same world: two accounts, the member stack, the central install
    EXTERNAL_ID,
    EXTERNAL_ID_PARAM,
    MEMBER,
    _execution_of,
    _self_rule_ports,
    as_functions,
    central,
    world,
)

__all__ = ["as_functions", "central", "world"]  # fixtures used by name

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "events" / "cloudtrail"
FIXTURE_ACCOUNT = "123456789012"
UNLISTED = "999988887777"


class _Ctx:
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    log_stream_name = "s"

    def __init__(self, name: str) -> None:
        self.function_name = f"EsmMedic-{name}"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:{FIXTURE_ACCOUNT}:function:EsmMedic-{name}"
        self.aws_request_id = f"{name}-1"
        self.log_group_name = f"/aws/lambda/EsmMedic-{name}"

    def get_remaining_time_in_millis(self) -> int:
        return 120_000


def _fixture(name: str, account: str) -> dict[str, Any]:
    """A CloudTrail fixture as the member's forwarding rule delivers it: every account id the member's."""
    text = (FIXTURES / name).read_text(encoding="utf-8").replace(FIXTURE_ACCOUNT, account)
    event: dict[str, Any] = json.loads(text)
    return event


def _api_change(admin: Any, uuid: str, account: str = MEMBER) -> dict[str, Any]:
    item = admin.call("lambda", "get_event_source_mapping", UUID=uuid)
    event = _fixture("update-esm-msk.json", account)
    for part in (event["detail"]["requestParameters"], event["detail"]["responseElements"]):
        part["uUID"] = uuid
    resp = event["detail"]["responseElements"]
    resp["eventSourceArn"] = item["EventSourceArn"]
    resp["functionArn"] = item["FunctionArn"]
    resp["eventSourceMappingArn"] = item.get("EventSourceMappingArn") or resp["eventSourceMappingArn"]
    return event


def _denial(role_arn: str, account: str = MEMBER) -> dict[str, Any]:
    event = _fixture("secretsmanager-getsecretvalue-accessdenied.json", account)
    ident = event["detail"]["userIdentity"]
    name = role_arn.rsplit("/", 1)[-1]
    ident["arn"] = f"arn:aws:sts::{account}:assumed-role/{name}/awslambda_642_20261126101502123"
    ident["sessionContext"]["sessionIssuer"]["arn"] = role_arn
    ident["sessionContext"]["sessionIssuer"]["userName"] = name
    return event


def _log_payload(uuid: str, owner: str, message: str) -> dict[str, Any]:
    body = {
        "messageType": "DATA_MESSAGE",
        "owner": owner,
        "logGroup": "/aws/lambda/orders-consumer",
        "logStream": f"2026/12/03/{uuid}",
        "subscriptionFilters": ["esm-medic-esm-logs"],
        "logEvents": [
            {
                "id": "1",
                "timestamp": 1_764_756_000_000,
                "message": json.dumps(
                    {"eventType": "ESM_PROCESSING_EVENT", "logLevel": "WARN", "errorMessage": message}
                ),
            }
        ],
    }
    return {"awslogs": {"data": base64.b64encode(gzip.compress(json.dumps(body).encode())).decode()}}


def _input_of(workflow: Any, arn: str) -> dict[str, Any]:
    """The execution's input: the triggering event as the workflow keeps it (its account is what the steps act in)."""
    from esm_medic.accounts import account_of_payload

    desc = workflow.aws.call("stepfunctions", "describe_execution", executionArn=arn)
    data: dict[str, Any] = json.loads(desc["input"])
    assert account_of_payload(data) == MEMBER
    detail: dict[str, Any] = data["event"]["detail"]
    return detail


def test_the_member_stack_forwards_the_detection_rules_to_the_central_bus(world: dict[str, Any]) -> None:
    admin, central_aws = world["admin"], world["central"]
    rules = {r["Name"]: r for r in admin.call("events", "list_rules")["Rules"]}
    forwards = [n for n in rules if "Forward" in n]
    assert len(forwards) == 3, sorted(rules)
    bus = f"arn:aws:events:{central_aws.region}:{central_aws.account_id()}:event-bus/default"
    for name in forwards:
        (target,) = admin.call("events", "list_targets_by_rule", Rule=name)["Targets"]
        assert target["Arn"] == bus and ":role/" in target["RoleArn"]
        assert json.loads(rules[name]["EventPattern"])["source"][0].startswith("aws.")


def test_a_member_api_change_leads_to_the_member_esm_being_fixed(
    world: dict[str, Any], as_functions: dict[str, Any]
) -> None:
    from esm_medic_sandbox import scenarios

    from esm_medic.handlers import watch

    admin, workflow = world["admin"], as_functions["workflow"]
    r = scenarios.build(admin, "missing-sg-self-rule", prefix="ev")
    sg = r.security_group_ids[0]
    assert 9098 not in _self_rule_ports(admin, sg)

    out = watch.handler(_api_change(admin, r.uuid), _Ctx("watch"))
    assert out["ok"] and out["account"] == MEMBER and out["settled"] and out["error"], out
    assert out["emitted"] and out["incident_id"]
    arn = _execution_of(workflow, r.uuid)
    detail = _input_of(workflow, arn)
    assert detail["account"] == MEMBER and detail["trigger"] == "watch" and detail["uuid"] == r.uuid
    run = workflow.wait(arn, timeout=120)
    assert run.outcome == "recovered", run.to_dict()
    assert 9098 in _self_rule_ports(admin, sg)  # fixed in the member account
    rows = [row for row in workflow.audit(r.uuid) if row["action"] not in ("workflow", "")]
    assert rows and {row["account"] for row in rows} == {MEMBER}

    # a direct check (a Step Functions loop) names the account; a malformed one is refused
    look = watch.handler({"uuid": r.uuid, "account": MEMBER, "record": False}, _Ctx("watch"))
    assert look["ok"] and look["found"] and look["account"] == MEMBER and not look["error"], look
    assert not watch.handler({"uuid": r.uuid, "account": "12"}, _Ctx("watch"))["ok"]
    assert not watch.handler({"uuid": r.uuid}, _Ctx("watch"))["found"]  # not in the install's own account

    # the same event from an account that is neither the install's nor a member: ignored, nothing read or put
    executions = len(workflow.executions())
    ignored = watch.handler(_api_change(admin, r.uuid, account=UNLISTED), _Ctx("watch"))
    assert ignored["ok"] and ignored["ignored"] and ignored["account"] == UNLISTED and ignored["settled"]
    assert UNLISTED in ignored["reason"]
    assert len(workflow.executions()) == executions


def test_a_member_access_denial_names_the_member_esms(
    world: dict[str, Any], as_functions: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from esm_medic_sandbox import scenarios

    from esm_medic.detect.events import clear_role_cache, parse_status_change
    from esm_medic.handlers import cloudtrail_error

    admin = world["admin"]
    r = scenarios.build(admin, "missing-sg-self-rule", prefix="ct")
    function = admin.call("lambda", "get_event_source_mapping", UUID=r.uuid)["FunctionArn"]
    role = admin.call("lambda", "get_function_configuration", FunctionName=function)["Role"]
    monkeypatch.setenv("ESM_MEDIC_CLOUDTRAIL_EMIT", "false")  # return the events instead of starting a workflow
    clear_role_cache()

    out = cloudtrail_error.handler(_denial(role), _Ctx("cloudtrail_error"))
    assert out["ok"] and out["account"] == MEMBER, out
    assert r.uuid in {e["uuid"] for e in out["esms"]}  # listed in the member account
    (event,) = [e for e in out["events"] if e["uuid"] == r.uuid]
    parsed = parse_status_change({"source": "esm-medic", "detail-type": "ESM Status Change", "detail": event})
    assert parsed is not None and event["account"] == MEMBER and event["trigger"] == "cloudtrail"
    assert event["classification"]["entry"] == "secret-access-denied"

    ignored = cloudtrail_error.handler(_denial(role.replace(MEMBER, UNLISTED), UNLISTED), _Ctx("cloudtrail_error"))
    assert ignored["ok"] and ignored["ignored"] and ignored["account"] == UNLISTED


def _kinesis(*payloads: dict[str, Any]) -> dict[str, Any]:
    """A Kinesis batch as the central destination's stream delivers the members' subscription payloads."""
    return {
        "Records": [
            {
                "eventSource": "aws:kinesis",
                "kinesis": {"data": p["awslogs"]["data"], "sequenceNumber": f"4959{i:04d}"} if p else {},
            }
            for i, p in enumerate(payloads)
        ]
    }


def test_a_member_system_log_record_is_read_in_the_member(world: dict[str, Any], as_functions: dict[str, Any]) -> None:
    from esm_medic_sandbox import scenarios

    from esm_medic.handlers import esm_logs

    admin, workflow = world["admin"], as_functions["workflow"]
    r = scenarios.build(admin, "missing-sg-self-rule", prefix="lg")
    item = admin.call("lambda", "get_event_source_mapping", UUID=r.uuid)
    message = str(item.get("LastProcessingResult") or "PROBLEM: Connection error.")

    # through the stream: the member's payload, an unlisted account's and a broken record
    batch = _kinesis(_log_payload(r.uuid, MEMBER, message), _log_payload(r.uuid, UNLISTED, message), {})
    out = esm_logs.handler(batch, _Ctx("esm_logs"))
    assert out["batchItemFailures"] == [] and out["emitted"] == 1, out
    member, unlisted, broken = out["payloads"]
    assert member["ok"] and member["account"] == MEMBER and member["emitted"] == 1
    assert unlisted["ok"] and unlisted["ignored"] and unlisted["account"] == UNLISTED and unlisted["records"] == 1
    assert not broken["ok"] and "kinesis.data" in broken["error"]
    arn = _execution_of(workflow, r.uuid)
    assert _input_of(workflow, arn)["account"] == MEMBER
    run = workflow.wait(arn, timeout=120)
    assert run.outcome == "recovered", run.to_dict()


def test_a_failed_stream_record_is_reported_for_retry(
    world: dict[str, Any], as_functions: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from esm_medic.detect import esm_logs as path
    from esm_medic.handlers import esm_logs

    calls: list[int] = []

    def throttled(aws: Any, records: Any, **kwargs: Any) -> Any:
        calls.append(len(records))
        raise RuntimeError("ThrottlingException past the adapter's retries")

    monkeypatch.setattr(path, "handle_records", throttled)
    uuid = "0f0e0d0c-0b0a-4909-8807-060504030201"
    message = "PROBLEM: Connection error."
    out = esm_logs.handler(_kinesis(*[_log_payload(uuid, MEMBER, message)] * 3), _Ctx("esm_logs"))
    assert not out["ok"] and out["batchItemFailures"] == [{"itemIdentifier": "49590000"}]
    assert calls == [1]  # stopped at the first failure: Lambda retries from there


def test_a_refused_member_is_reported_not_raised(world: dict[str, Any], as_functions: dict[str, Any]) -> None:
    from esm_medic_sandbox import scenarios

    from esm_medic.handlers import cloudtrail_error, esm_logs, watch

    admin, root, workflow = world["admin"], world["root"], as_functions["workflow"]
    r = scenarios.build(admin, "missing-sg-self-rule", prefix="rj")
    function = admin.call("lambda", "get_event_source_mapping", UUID=r.uuid)["FunctionArn"]
    role = admin.call("lambda", "get_function_configuration", FunctionName=function)["Role"]
    executions = len(workflow.executions())
    root.call("ssm", "put_parameter", Name=EXTERNAL_ID_PARAM, Value="not-the-agreed-id", Overwrite=True)
    try:
        outs = [
            watch.handler(_api_change(admin, r.uuid), _Ctx("watch")),
            cloudtrail_error.handler(_denial(role), _Ctx("cloudtrail_error")),
            esm_logs.handler(_log_payload(r.uuid, MEMBER, "PROBLEM: Connection error."), _Ctx("esm_logs")),
            esm_logs.handler(_kinesis(_log_payload(r.uuid, MEMBER, "PROBLEM: Connection error.")), _Ctx("esm_logs")),
        ]
    finally:
        root.call("ssm", "put_parameter", Name=EXTERNAL_ID_PARAM, Value=EXTERNAL_ID, Overwrite=True)
    outs[3] = outs[3]["payloads"][0] | {"stream": outs[3]}
    assert outs[3]["stream"]["batchItemFailures"] == []  # a refused member is not retried: it would block the shard
    for out in outs:
        assert not out["ok"] and out["account"] == MEMBER and out["error_code"] == "AccessDenied", out
        assert "esm-medic-diagnosis" in out["failure"] and "Traceback" not in out["failure"]
    assert outs[0]["settled"]  # a watch loop stops
    assert len(workflow.executions()) == executions
