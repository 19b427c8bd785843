"""Ticket text: title, sections, findings table, runbook with real ids, catalogue gap, no secret values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from esm_medic.classify import classify
from esm_medic.notify.ticket import fingerprint, open_ticket, render_ticket, runbook_params, ticket_id_for

UUID = "6f1c2a3b-1111-4222-8333-444455556666"
CLUSTER = "arn:aws:kafka:eu-west-1:123456789012:cluster/orders/1a2b3c4d-5e6f-7a8b-9c0d-111122223333-2"
SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:AmazonMSK_orders-AbCdEf"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAsecretkeymaterial\n-----END RSA PRIVATE KEY-----"


def esm_item(**extra: Any) -> dict[str, Any]:
    item = {
        "UUID": UUID,
        "EventSourceArn": CLUSTER,
        "FunctionArn": "arn:aws:lambda:eu-west-1:123456789012:function:orders-consumer",
        "EventSourceMappingArn": f"arn:aws:lambda:eu-west-1:123456789012:event-source-mapping:{UUID}",
        "Topics": ["orders"],
        "SourceAccessConfigurations": [{"Type": "SASL_SCRAM_512_AUTH", "URI": SECRET_ARN}],
        "State": "Enabled",
    }
    item.update(extra)
    return item


def diagnosis(**extra: Any) -> dict[str, Any]:
    d = {
        "uuid": UUID,
        "step": "network",
        "root_cause": {
            "id": "no-sg-self-rule",
            "summary": "sg-0a1b2c3d has no self rule for 9096",
            "step": "network",
            "fix": "add-sg-self-rule",
            "fix_params": {"group_id": "sg-0a1b2c3d", "ports": [9096], "directions": ["ingress"], "vpc_id": "vpc-9z"},
            "confidence": 0.9,
        },
        "findings": [
            {
                "check": "sg-self-inbound",
                "status": "fail",
                "summary": "no inbound self rule | port 9096",
                "evidence": {},
            },
            {
                "check": "secret-format",
                "status": "pass",
                "summary": "secret has keys username, password",
                "evidence": {"SecretString": "hunter2"},
            },
            {
                "check": "nacl",
                "status": "unknown",
                "summary": "cannot read NACLs",
                "missing_permission": "ec2:DescribeNetworkAcls",
            },
        ],
        "network": {
            "source": "cluster",
            "vpc_id": "vpc-9z",
            "subnets": ["subnet-a", "subnet-b"],
            "security_groups": ["sg-0a1b2c3d"],
            "ports": [9096],
        },
        "esm": esm_item(),
    }
    d.update(extra)
    return d


CONNECTION = "PROBLEM: Connection error. Please check your event source connection configuration."


@pytest.fixture(autouse=True)
def ticket_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for var in ("ESM_MEDIC_SLACK_WEBHOOK_URL", "ESM_MEDIC_SNS_TOPIC_ARN", "ESM_MEDIC_NOTIFY_SINKS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ESM_MEDIC_TICKET_DIR", str(tmp_path / "t"))
    return tmp_path / "t"


def test_runbook_params_come_from_real_ids() -> None:
    cls = classify(CONNECTION).to_dict()
    p = runbook_params(UUID, cls, diagnosis(), None, "eu-west-1")
    assert p["esm-uuid"] == UUID
    assert p["cluster-arn"] == CLUSTER and p["cluster-name"] == "orders"
    assert p["sg-id"] == "sg-0a1b2c3d" and p["vpc-id"] == "vpc-9z"
    assert p["subnet-id"] == "subnet-a" and p["subnet-ids"] == "subnet-a subnet-b"
    assert p["region"] == "eu-west-1" and p["account-id"] == "123456789012"
    assert p["function-name"] == "orders-consumer"
    assert p["secret-arn"] == SECRET_ARN and p["topic"] == "orders"
    assert p["broker-port"] == "9096"
    assert "password" not in p


def test_ticket_body_sections_and_rendered_runbook() -> None:
    cls = classify(CONNECTION).to_dict()
    title, body, gap = render_ticket(
        ticket_id="esm-medic-x",
        uuid=UUID,
        incident_id="inc-7",
        reason="the NACL check could not run; a person must look",
        classification=cls,
        diagnosis=diagnosis(),
        plan={"fix": "add-sg-self-rule", "params": {"group_id": "sg-0a1b2c3d"}},
        outcome="approval rejected",
        function="orders-consumer",
        region="eu-west-1",
    )
    assert not gap
    assert title == f"[esm-medic] orders-consumer ESM {UUID} — The ESM cannot connect to the Kafka brokers"
    for heading in (
        "## What happened",
        "## Classification",
        "## Diagnosis",
        "## Root cause and fix",
        "## Plan",
        "## Decision and why it needs a human",
        "## Runbook",
    ):
        assert heading in body
    assert "| Check | Status | Summary |" in body
    assert "| `sg-self-inbound` | **FAIL** | no inbound self rule \\| port 9096 |" in body
    assert "missing permission: `ec2:DescribeNetworkAcls`" in body
    assert "`connection-broker-unreachable`" in body and "`network`" in body
    assert "- Fix: `add-sg-self-rule` (safety `auto`)" in body
    # the runbook is there, nested one level down, with the real ids filled in
    assert "## The ESM cannot connect to the Kafka brokers" in body
    assert "### How to fix" in body
    assert "--group-id sg-0a1b2c3d" in body
    assert f"--uuid {UUID}" in body
    assert f"--cluster-arn {CLUSTER}" in body
    assert "<sg-id>" not in body and "<esm-uuid>" not in body
    assert "hunter2" not in body
    assert "approval rejected" in body


def test_unknown_text_opens_a_catalogue_gap_ticket_with_a_redacted_config() -> None:
    text = f"PROBLEM: Something brand new happened. password=hunter2 {PEM}"
    cls = classify(text).to_dict()
    assert cls["entry"] is None
    esm = esm_item(
        StateTransitionReason=text,
        SelfManagedEventSource={"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["b:9096"]}},
        ClientSecret="s3cr3t-value",
    )
    title, body, gap = render_ticket(
        ticket_id="esm-medic-y",
        uuid=UUID,
        incident_id=None,
        reason="unrecognised status",
        classification=cls,
        diagnosis={"esm": esm},
        plan=None,
        outcome="ticketed",
        function="orders-consumer",
    )
    assert gap
    assert "catalogue gap" in title
    assert "## Catalogue gap" in body and "## Runbook" not in body
    assert "PROBLEM: Something brand new happened." in body
    assert SECRET_ARN in body  # ARNs name secrets; they are not secrets
    for leaked in ("hunter2", "secretkeymaterial", "s3cr3t-value"):
        assert leaked not in body


def test_ticket_ids_are_keyed_by_esm_and_root_cause_not_by_incident() -> None:
    cls = classify(CONNECTION).to_dict()
    fp = fingerprint(UUID, {**cls, "incident_id": "inc-1"}, diagnosis())
    assert fp == fingerprint(UUID, {**cls, "incident_id": "inc-2"}, diagnosis())  # 10 incidents, one ticket
    other_cause = diagnosis(root_cause={"id": "nacl-blocks-brokers"})
    assert fp != fingerprint(UUID, cls, other_cause)
    assert fp != fingerprint("another-esm", cls, diagnosis())
    a = ticket_id_for(UUID, fp)
    assert a == ticket_id_for(UUID, fp) and a.startswith("esm-medic-")
    assert ticket_id_for(UUID, fp, 2) == f"{a}-r2"  # a relapse after recovery is the next generation
    gap1 = fingerprint(UUID, {"text": "PROBLEM: weird 123"}, None)
    assert gap1 == fingerprint(UUID, {"text": "problem:  WEIRD 456"}, None)  # gaps group by normalised text


def test_without_aws_the_file_sink_is_the_dedup_record(ticket_dir: Path) -> None:
    cls = classify(CONNECTION).to_dict()
    first = open_ticket(
        None,
        uuid=UUID,
        reason="r",
        classification=cls,
        diagnosis=diagnosis(),
        plan=None,
        outcome="ticketed",
        incident_id="inc-1",
    )
    assert not first["duplicate"]
    path = Path(first["location"])
    assert path.parent == ticket_dir and path.read_text() == first["body"]
    again = open_ticket(
        None,
        uuid=UUID,
        reason="r",
        classification=cls,
        diagnosis=diagnosis(),
        plan=None,
        outcome="ticketed",
        incident_id="inc-1",
    )
    assert again["duplicate"] and again["ticket_id"] == first["ticket_id"]
    assert len(list(ticket_dir.glob("*.md"))) == 1


def test_missing_runbook_does_not_stop_the_ticket(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ESM_MEDIC_RUNBOOKS", str(tmp_path / "nowhere"))
    cls = classify(CONNECTION).to_dict()
    _, body, _ = render_ticket(
        ticket_id="t",
        uuid=UUID,
        incident_id=None,
        reason="r",
        classification=cls,
        diagnosis=None,
        plan=None,
        outcome="ticketed",
        function="",
    )
    assert "runbook for `connection-broker-unreachable` unavailable" in body
    assert "No diagnosis findings" in body and "No change was planned." in body


def test_the_diagnosis_engine_summary_shape_is_understood() -> None:
    """The workflow carries the engine's ESM summary (uuid, arn, function, secrets, cluster_arn, role_arn, ...)."""
    summary = {
        "uuid": UUID,
        "arn": f"arn:aws:lambda:eu-west-1:123456789012:event-source-mapping:{UUID}",
        "function": "arn:aws:lambda:eu-west-1:123456789012:function:orders-consumer",
        "source_kind": "msk",
        "topics": ["orders"],
        "consumer_group_id": UUID,
        "mode": "on-demand",
        "secrets": {"SASL_SCRAM_512_AUTH": SECRET_ARN},
        "on_failure_destination": None,
        "cluster_arn": CLUSTER,
        "role_arn": "arn:aws:iam::123456789012:role/orders-consumer-role",
    }
    diag = {**diagnosis(esm=summary), "function_arn": summary["function"]}
    diag["root_cause"] = {**diag["root_cause"], "fix_params": {}}
    p = runbook_params(UUID, classify(CONNECTION).to_dict(), diag, None)
    assert p["function-name"] == "orders-consumer" and p["secret-arn"] == SECRET_ARN
    assert p["region"] == "eu-west-1" and p["account-id"] == "123456789012"
    assert p["role-name"] == "orders-consumer-role" and p["role-arn"].endswith("role/orders-consumer-role")
    assert p["cluster-name"] == "orders" and p["group"] == UUID and p["sg-id"] == "sg-0a1b2c3d"
    result = open_ticket(
        None,
        uuid=UUID,
        reason="r",
        classification=classify(CONNECTION).to_dict(),
        diagnosis=diag,
        plan=None,
        outcome="ticketed",
    )
    assert result["title"].startswith("[esm-medic] orders-consumer ESM")
