"""The registry, each action's schema and rules, declared permissions, settings, and the audit bookkeeping."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from esm_medic.config import ConfigError, Settings
from esm_medic.remediate import registry
from esm_medic.remediate.audit import in_flight, summarize
from esm_medic.remediate.base import ActionRecord, InvalidParams, fingerprint, iam_action, stricter
from esm_medic.remediate.registry import ENGINE_PERMISSIONS

SG = "sg-0123456789abcdef0"
VPC = "vpc-0123456789abcdef0"
SUBNET = "subnet-0123456789abcdef0"
CLUSTER = "arn:aws:kafka:us-east-1:123456789012:cluster/orders/0b1c2d3e-1111-2222-3333-444455556666-1"


def test_registry() -> None:
    actions = registry.all_actions()
    assert list(actions) == [
        "add-sg-self-rule",
        "create-vpc-endpoints",
        "enable-esm-system-logs",
        "enable-vpc-dns",
        "grant-iam-permissions",
    ]
    safety = {name: cls.default_safety for name, cls in actions.items()}
    assert safety == {
        "add-sg-self-rule": "auto",
        "create-vpc-endpoints": "approve",
        "enable-esm-system-logs": "approve",
        "enable-vpc-dns": "approve",
        "grant-iam-permissions": "approve",
    }
    for cls in actions.values():
        d = cls.describe()
        assert d["schema"]["type"] == "object" and d["schema"]["additionalProperties"] is False
        assert set(cls.implied_permissions) <= set(cls.permissions)
    perms = registry.all_permissions()
    assert perms == sorted(perms) and set(ENGINE_PERMISSIONS) <= set(perms)
    assert not any(p.endswith(":*") or p == "*" for p in perms)
    with pytest.raises(Exception, match="no remediation action"):
        registry.get("delete-everything")


def test_every_permission_is_a_real_aws_operation() -> None:
    session = boto3.Session(region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    clients: dict[str, Any] = {}
    for perm in registry.all_permissions():
        prefix, op = perm.split(":")
        client = clients.setdefault(prefix, session.client(prefix))
        assert op in client.meta.service_model.operation_names, perm


def test_iam_action_names_match_botocore_for_every_operation_used() -> None:
    """iam_action() derives 'svc:Op' from boto3's snake_case method; irregular names (ListHostedZonesByVPC) are in a
    table. Checked for every operation esm-medic's remediation calls."""
    session = boto3.Session(region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    for perm in registry.all_permissions():
        service, api = perm.split(":")
        mapping = session.client(service).meta.method_to_api_mapping
        (method,) = [m for m, a in mapping.items() if a == api]
        assert iam_action(service, method) == perm


@pytest.mark.parametrize(
    ("action", "params"),
    [
        ("add-sg-self-rule", {"group_id": SG, "ports": [9098], "directions": ["ingress"], "vpc_id": VPC}),
        ("add-sg-self-rule", {"group_id": SG, "ports": [9096, 9196]}),
        (
            "create-vpc-endpoints",
            {"vpc_id": VPC, "subnet_ids": [SUBNET], "services": ["sts", "lambda"], "source_group_ids": [SG]},
        ),
        ("enable-vpc-dns", {"vpc_id": VPC, "attributes": ["enableDnsHostnames"]}),
        (
            "grant-iam-permissions",
            {
                "role_name": "orders-consumer-role",
                "statements": [
                    {"actions": ["kafka-cluster:Connect"], "resources": [CLUSTER]},
                    {"actions": ["ec2:CreateNetworkInterface", "ec2:DescribeVpcs"], "resources": ["*"]},
                    {
                        "actions": ["secretsmanager:GetSecretValue"],
                        "resources": ["arn:aws:secretsmanager:us-east-1:123456789012:secret:AmazonMSK_x-AbCdEf"],
                    },
                    {
                        "actions": ["kafka-cluster:ReadData"],
                        "resources": [CLUSTER.replace("cluster/", "topic/") + "/*"],
                    },
                ],
            },
        ),
    ],
)
def test_valid_params(action: str, params: dict[str, Any]) -> None:
    out = registry.get(action).validate(params)
    for key, value in params.items():
        assert out[key] == value
    if action == "add-sg-self-rule" and "directions" not in params:
        assert out["directions"] == ["ingress", "egress"]


GRANT = "grant-iam-permissions"


@pytest.mark.parametrize(
    ("action", "params", "why"),
    [
        ("add-sg-self-rule", {"group_id": SG}, "ports"),
        ("add-sg-self-rule", {"group_id": "0.0.0.0/0", "ports": [9098]}, "group_id"),
        ("add-sg-self-rule", {"group_id": SG, "ports": [0]}, "ports"),
        ("add-sg-self-rule", {"group_id": SG, "ports": [9098], "cidr": "10.0.0.0/8"}, "cidr"),
        ("add-sg-self-rule", {"group_id": SG, "ports": [9098], "directions": ["sideways"]}, "directions"),
        (
            "create-vpc-endpoints",
            {"vpc_id": VPC, "subnet_ids": [SUBNET], "services": ["s3"], "source_group_ids": [SG]},
            "services",
        ),
        (
            "create-vpc-endpoints",
            {"vpc_id": VPC, "subnet_ids": [], "services": ["sts"], "source_group_ids": [SG]},
            "subnet_ids",
        ),
        ("enable-vpc-dns", {"vpc_id": VPC, "attributes": ["enableNetworkAddressUsageMetrics"]}, "attributes"),
        (GRANT, {"role_name": "r", "statements": [{"actions": ["iam:PassRole"], "resources": ["*"]}]}, "iam:PassRole"),
        (GRANT, {"role_name": "r", "statements": [{"actions": ["sts:AssumeRole"], "resources": ["*"]}]}, "sts"),
        (
            GRANT,
            {"role_name": "r", "statements": [{"actions": ["kafka-cluster:*"], "resources": [CLUSTER]}]},
            "actions",
        ),
        (GRANT, {"role_name": "r", "statements": [{"actions": ["kafka-cluster:Connect"], "resources": ["*"]}]}, "*"),
        (GRANT, {"role_name": "r", "statements": [{"actions": ["kms:Decrypt"], "resources": ["*"]}]}, "*"),
        (
            GRANT,
            {"role_name": "r", "statements": [{"actions": ["secretsmanager:GetSecretValue"], "resources": ["*"]}]},
            "*",
        ),
        (
            GRANT,
            {
                "role_name": "r",
                "statements": [{"actions": ["kafka-cluster:Connect"], "resources": ["arn:aws:kafka:*:*:cluster/*"]}],
            },
            "wildcards",
        ),
        (
            GRANT,
            {
                "role_name": "r",
                "statements": [
                    {"actions": ["kms:Decrypt"], "resources": ["arn:aws:secretsmanager:us-east-1:1:secret:x"]}
                ],
            },
            "arn:",
        ),
        (
            GRANT,
            {
                "role_name": "r",
                "statements": [
                    {
                        "actions": ["secretsmanager:PutSecretValue"],
                        "resources": ["arn:aws:secretsmanager:us-east-1:1:secret:x"],
                    }
                ],
            },
            "PutSecretValue",
        ),
        (GRANT, {"role_name": "r", "statements": []}, "statements"),
    ],
)
def test_invalid_params(action: str, params: dict[str, Any], why: str) -> None:
    with pytest.raises(InvalidParams, match=None) as info:
        registry.get(action).validate(params)
    assert why in info.value.message


def test_fingerprint_ignores_list_order_and_stricter() -> None:
    a = fingerprint("x", {"ports": [9098, 9096], "directions": ["egress", "ingress"]})
    assert a == fingerprint("x", {"directions": ["ingress", "egress"], "ports": [9096, 9098]})
    assert a != fingerprint("x", {"ports": [9098]}) and a != fingerprint("y", {"ports": [9098, 9096]})
    assert stricter("auto", None) == "auto" and stricter("auto", "approve") == "approve"
    assert stricter("approve", "manual") == "manual" and stricter("auto", "weird") == "manual"


def test_settings_from_env() -> None:
    s = Settings.from_env(
        {
            "ESM_MEDIC_DEFAULT_MODE": "AUTO",
            "ESM_MEDIC_SHADOW": "yes",
            "ESM_MEDIC_BUDGET_PER_SG": "1",
            "ESM_MEDIC_ENDPOINT_HOURLY_USD": "0.011",
            "ESM_MEDIC_AUDIT_TABLE": "a",
            "ESM_MEDIC_STATE_TABLE": "s",
        }
    )
    assert (s.default_mode, s.shadow, s.budget_per_sg, s.endpoint_hourly_usd) == ("auto", True, 1, 0.011)
    assert (s.audit_table, s.state_table) == ("a", "s")
    d = Settings.from_env({})
    assert (d.default_mode, d.shadow, d.max_failed_verifications, d.hours_per_month) == ("approve", False, 3, 730)
    assert (d.audit_table, d.state_table) == ("esm-medic-audit", "esm-medic-state")
    for env in (
        {"ESM_MEDIC_DEFAULT_MODE": "yolo"},
        {"ESM_MEDIC_SHADOW": "maybe"},
        {"ESM_MEDIC_BUDGET_PER_VPC": "x"},
        {"ESM_MEDIC_BUDGET_PER_SG": "-1"},
        {"ESM_MEDIC_KILL_SWITCH_PARAM": " "},
    ):
        with pytest.raises(ConfigError, match=r"ESM_MEDIC|must"):
            Settings.from_env(env)


def _row(aid: str, status: str, at: str, action: str = "add-sg-self-rule", fp: str = "f1") -> ActionRecord:
    return ActionRecord(
        aid,
        "u1",
        "inc",
        "t",
        action,
        status,
        fingerprint=fp,
        at=at,
        created={"ingress_rule_ids": ["sgr-1"]} if status == "applied" else {},
    )


def test_in_flight_and_summary() -> None:
    rows = [
        _row("a1", "started", "2026-01-01T00:00:01Z"),
        _row("a1", "applied", "2026-01-01T00:00:02Z"),
        _row("a2", "started", "2026-01-01T00:00:03Z"),
        _row("a3", "started", "2026-01-01T00:00:04Z", fp="f2"),
        _row("a4", "shadow", "2026-01-01T00:00:05Z"),
        _row("a5", "started", "2026-01-01T00:00:06Z"),
        _row("a5", "failed", "2026-01-01T00:00:07Z"),
    ]
    assert [r.action_id for r in in_flight(rows)] == ["a3", "a2"]
    assert [r.action_id for r in in_flight(rows, "add-sg-self-rule", "f1")] == ["a2"]
    assert in_flight(rows, "enable-vpc-dns") == []
    summary = {s["action_id"]: s for s in summarize(rows)}
    assert summary["a1"]["statuses"] == ["started", "applied"] and summary["a1"]["created"]
    assert summary["a5"]["status"] == "failed"
    assert next(s["action_id"] for s in summarize(rows)) == "a5"
