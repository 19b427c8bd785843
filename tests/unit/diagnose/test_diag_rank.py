"""esm_medic.diagnose.rank: root cause + fix from the classification and the findings (no AWS)."""

from __future__ import annotations

import pytest

from esm_medic.classify import classify
from esm_medic.diagnose.rank import merge_params, rank, valid_params
from esm_medic.models import CheckStatus, Finding

BROKERS = "PROBLEM: Connection error. Please check your event source connection configuration."
VPC = "PROBLEM: Connection error. Your VPC must be able to connect to Lambda and STS."
AUTHZ = "PROBLEM: Cluster failed to authorize Lambda."
SG_PARAMS = {"group_id": "sg-1", "ports": [9098], "directions": ["ingress"], "vpc_id": "vpc-1"}
EP_PARAMS = {"vpc_id": "vpc-1", "subnet_ids": ["subnet-1"], "services": ["sts", "lambda"], "source_group_ids": ["sg-1"]}


def f(check, status="fail", step="network", causes=(), fix=None, params=None, summary="s") -> Finding:
    ev = {"causes": list(causes)} if causes else {}
    return Finding(check, CheckStatus(status), summary, step, ev, fix, dict(params or {}))


def test_self_rule_missing():
    rc = rank(
        classify(BROKERS), [f("sg-self-inbound", causes=["no-sg-self-rule"], fix="add-sg-self-rule", params=SG_PARAMS)]
    )
    assert (rc.id, rc.fix, rc.step) == ("no-sg-self-rule", "add-sg-self-rule", "network")
    assert rc.fix_params == SG_PARAMS and rc.evidence == ["sg-self-inbound"]


def test_first_named_cause_wins_over_catalogue_order():
    findings = [
        f(
            "sg-self-inbound",
            causes=["wrong-port-for-auth", "no-sg-self-rule"],
            fix="add-sg-self-rule",
            params=SG_PARAMS,
        )
    ]
    assert rank(classify(BROKERS), findings).id == "wrong-port-for-auth"


def test_inbound_and_outbound_params_merge():
    out = {**SG_PARAMS, "directions": ["egress"]}
    rc = rank(
        classify(BROKERS),
        [
            f("sg-self-inbound", causes=["no-sg-self-rule"], fix="add-sg-self-rule", params=SG_PARAMS),
            f("sg-self-outbound", causes=["no-sg-self-rule"], fix="add-sg-self-rule", params=out),
        ],
    )
    assert rc.fix_params["directions"] == ["ingress", "egress"]


def test_earlier_failing_step_is_reported_with_both_in_notes():
    findings = [
        f("service-path", step="sts", causes=["no-nat-or-endpoints"], fix="create-vpc-endpoints", params=EP_PARAMS),
        f("sg-self-inbound", causes=["no-sg-self-rule"], fix="add-sg-self-rule", params=SG_PARAMS),
    ]
    rc = rank(classify(BROKERS), findings)
    assert (rc.id, rc.step, rc.fix) == ("no-nat-or-endpoints", "sts", "create-vpc-endpoints")
    assert any("network" in n and "sts" in n for n in rc.notes)


def test_fix_without_valid_params_becomes_ticket():
    rc = rank(
        classify(VPC),
        [
            f(
                "service-path",
                step="sts",
                causes=["no-nat-or-endpoints"],
                fix="create-vpc-endpoints",
                params={**EP_PARAMS, "services": []},
            )
        ],
    )
    assert rc.id == "no-nat-or-endpoints" and rc.fix == "ticket" and rc.fix_params["reason"]


def test_catalogue_fix_only_for_its_root_cause():
    # endpoint-sg-blocks-443 has no automatic fix in the catalogue: ticket, even if a finding offers one
    rc = rank(
        classify(VPC),
        [
            f(
                "vpc-endpoints",
                step="sts",
                causes=["endpoint-sg-blocks-443"],
                fix="create-vpc-endpoints",
                params=EP_PARAMS,
            )
        ],
    )
    assert (rc.id, rc.fix) == ("endpoint-sg-blocks-443", "ticket")


def test_healthy_has_no_fix_and_lists_latent_problems():
    rc = rank(classify("OK"), [f("sg-self-inbound", causes=["no-sg-self-rule"])])
    assert (rc.id, rc.fix, rc.step) == ("healthy", "", "none")
    assert rc.notes and rc.notes[0].startswith("latent: sg-self-inbound")


def test_unknown_text_without_failures_is_unknown_ticket():
    rc = rank(classify("PROBLEM: something new"), [f("sg-self-inbound", status="pass")])
    assert (rc.id, rc.fix) == ("unknown", "ticket")


def test_unknown_text_uses_first_failing_check():
    findings = [
        f("sg-self-inbound", causes=["no-sg-self-rule"], fix="add-sg-self-rule", params=SG_PARAMS),
        f(
            "role-permissions",
            step="authz",
            causes=["iam-missing-kafka-cluster"],
            fix="grant-iam-permissions",
            params={"role_name": "r", "statements": [{"actions": ["kafka-cluster:ReadData"], "resources": ["arn:t"]}]},
        ),
    ]
    rc = rank(classify("PROBLEM: something new"), findings)
    assert (rc.id, rc.fix, rc.step) == ("no-sg-self-rule", "add-sg-self-rule", "network")


@pytest.mark.parametrize(("mode", "expected"), [("iam", "scp-or-boundary"), ("sasl-scram-512", "kafka-acls")])
def test_nothing_failed_picks_a_plausible_unconfirmed_cause(mode, expected):
    rc = rank(classify(AUTHZ), [f("role-permissions", status="pass", step="authz")], auth_mode=mode)
    assert (rc.id, rc.fix) == (expected, "ticket")
    assert rc.confidence < 0.5


def test_undecided_check_keeps_its_root_cause_plausible():
    rc = rank(classify(AUTHZ), [f("role-permissions", status="unknown", step="authz")], auth_mode="iam")
    assert (rc.id, rc.fix) == ("iam-missing-kafka-cluster", "ticket")


def test_valid_params_contract():
    assert valid_params("add-sg-self-rule", SG_PARAMS)
    assert not valid_params("add-sg-self-rule", {**SG_PARAMS, "group_id": "0.0.0.0/0"})
    assert valid_params("create-vpc-endpoints", EP_PARAMS)
    assert not valid_params("create-vpc-endpoints", {**EP_PARAMS, "services": ["s3"]})
    assert valid_params("enable-vpc-dns", {"vpc_id": "vpc-1", "attributes": ["enableDnsHostnames"]})
    grant = {"role_name": "r", "statements": [{"actions": ["kafka-cluster:Connect"], "resources": ["*"]}]}
    assert not valid_params("grant-iam-permissions", grant)  # never "*" for kafka-cluster
    grant["statements"] = [{"actions": ["ec2:CreateNetworkInterface"], "resources": ["*"]}]
    assert valid_params("grant-iam-permissions", grant)


def test_merge_grant_statements_regroups_by_resources():
    a = Finding(
        "role-permissions",
        CheckStatus.FAIL,
        "",
        "authz",
        {},
        "grant-iam-permissions",
        {"role_name": "r", "statements": [{"actions": ["kms:Decrypt"], "resources": ["arn:k"]}]},
    )
    b = Finding(
        "kms-key",
        CheckStatus.FAIL,
        "",
        "secret",
        {},
        "grant-iam-permissions",
        {
            "role_name": "r",
            "statements": [
                {"actions": ["kms:Decrypt"], "resources": ["arn:k"]},
                {"actions": ["secretsmanager:GetSecretValue"], "resources": ["arn:k"]},
            ],
        },
    )
    merged = merge_params("grant-iam-permissions", [a, b])
    assert merged["statements"] == [
        {"actions": ["kms:Decrypt", "secretsmanager:GetSecretValue"], "resources": ["arn:k"]}
    ]
