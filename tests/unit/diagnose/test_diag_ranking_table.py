"""Ranking as a table: for each case the ESM's observed text, the findings (check, status, strength, step, causes,
fix) and the expected order of hypotheses, the root cause's fix and the plan's fixes (no AWS)."""

from __future__ import annotations

from typing import Any

import pytest

from esm_medic.classify import classify
from esm_medic.diagnose.rank import assess
from esm_medic.models import CheckStatus, Finding

BROKERS = "PROBLEM: Connection error. Please check your event source connection configuration."
VPC = "PROBLEM: Connection error. Your VPC must be able to connect to Lambda and STS."
UNRESOLVABLE = "PROBLEM: Cannot resolve the provided Kafka broker endpoint."
AUTHZ = "PROBLEM: Cluster failed to authorize Lambda."
SG_IN = {"group_id": "sg-1", "ports": [9096], "directions": ["ingress"], "vpc_id": "vpc-1"}
SG_OUT = {**SG_IN, "directions": ["egress"]}
DNS = {"vpc_id": "vpc-1", "attributes": ["enableDnsSupport"]}
EP = {"vpc_id": "vpc-1", "subnet_ids": ["subnet-1"], "services": ["sts", "lambda"], "source_group_ids": ["sg-1"]}
GRANT = {"role_name": "r", "statements": [{"actions": ["kafka-cluster:ReadData"], "resources": ["arn:aws:kafka:t"]}]}
DNS_CAUSES = ("typo", "private-zone", "wrong-bootstrap-servers")


def f(check: str, step: str, causes: tuple[str, ...], *, strength="proof", status="fail", fix=None, params=None):
    ev: dict[str, Any] = {"causes": list(causes)} if causes else {}
    return Finding(check, CheckStatus(status), f"{check} {status}", step, ev, fix, dict(params or {}), None, strength)


CASES = [
    pytest.param(
        BROKERS,
        [
            f("broker-dns", "dns", DNS_CAUSES, strength="heuristic", fix="ticket", params={"reason": "nx"}),
            f("sg-self-inbound", "network", ("no-sg-self-rule", "network-path"), fix="add-sg-self-rule", params=SG_IN),
        ],
        ["no-sg-self-rule", "network-path"],
        "add-sg-self-rule",
        ["add-sg-self-rule"],
        id="connection-error+nxdomain-from-outside(heuristic, contradicted)+no-self-rule(proof)",
    ),
    pytest.param(
        UNRESOLVABLE,
        [
            f("vpc-dns", "dns", ("vpc-dns-disabled",), fix="enable-vpc-dns", params=DNS),
            f("broker-dns", "dns", DNS_CAUSES, strength="heuristic", fix="ticket", params={"reason": "nx"}),
        ],
        ["vpc-dns-disabled", "typo", "private-zone", "wrong-bootstrap-servers"],
        "enable-vpc-dns",
        ["enable-vpc-dns"],
        id="cannot-resolve+vpc-dns-off(proof, masks broker-dns)+nxdomain(heuristic)",
    ),
    pytest.param(
        VPC,
        [
            f("sg-egress-https", "sts", ("no-egress-443",), fix="ticket", params={"reason": "egress"}),
            f(
                "sg-self-outbound",
                "network",
                ("no-sg-self-rule", "network-path"),
                fix="add-sg-self-rule",
                params=SG_OUT,
            ),
        ],
        ["no-egress-443", "no-sg-self-rule", "network-path"],
        "ticket",
        ["add-sg-self-rule", "ticket"],
        id="vpc-services+egress-revoked: 443 (ticket) and self rule out (fix) in one plan",
    ),
    pytest.param(
        BROKERS,
        [
            f("service-path", "sts", ("no-nat-or-endpoints",), fix="create-vpc-endpoints", params=EP),
            f("sg-self-inbound", "network", ("no-sg-self-rule",), fix="add-sg-self-rule", params=SG_IN),
        ],
        ["no-nat-or-endpoints", "no-sg-self-rule"],
        "create-vpc-endpoints",
        ["add-sg-self-rule", "create-vpc-endpoints"],
        id="connection-error+no-nat(proof, earlier step: kept, status may be stale)+no-self-rule",
    ),
    pytest.param(
        AUTHZ,
        [
            f("role-trust", "role", ("role-deleted",), fix="ticket", params={"reason": "role gone"}),
            f("role-permissions", "authz", ("iam-missing-kafka-cluster",), fix="grant-iam-permissions", params=GRANT),
        ],
        ["role-deleted", "iam-missing-kafka-cluster"],
        "ticket",
        ["ticket"],
        id="authz+role-deleted(masks permission checks): no grant on a missing role",
    ),
    pytest.param(
        VPC,
        [
            f("vpc-endpoints", "sts", ("endpoint-sg-blocks-443",), fix="ticket", params={"reason": "ep sg"}),
            f("vpc-dns", "sts", ("vpc-dns-disabled",), fix="enable-vpc-dns", params=DNS),
        ],
        ["vpc-dns-disabled", "endpoint-sg-blocks-443"],
        "enable-vpc-dns",
        ["enable-vpc-dns"],
        id="vpc-services: a tie at step sts broken by masking, not by catalogue order",
    ),
]


@pytest.mark.parametrize(("text", "findings", "order", "root_fix", "plan_fixes"), CASES)
def test_ranking_table(text, findings, order, root_fix, plan_fixes):
    root, hyps, plan = assess(classify(text), findings, source_kind="self-managed")
    assert [h.id for h in hyps] == order
    assert root.id == order[0] and root.fix == root_fix
    assert [p.fix for p in plan] == plan_fixes
    scores = {h.id: h.score for h in hyps}
    assert all(0 < s <= 1 for s in scores.values())


def test_contradicted_heuristic_is_demoted_to_a_note():
    findings = [
        f("broker-dns", "dns", DNS_CAUSES, strength="heuristic", fix="ticket", params={"reason": "nx"}),
        f("sg-self-inbound", "network", ("no-sg-self-rule",), fix="add-sg-self-rule", params=SG_IN),
    ]
    root, _, _ = assess(classify(BROKERS), findings)
    dns = next(x for x in findings if x.check == "broker-dns")
    assert dns.status == CheckStatus.WARN and "contradicted" in dns.evidence
    assert any("broker-dns" in n and "contradicted" in n for n in root.notes)


def test_contradicted_proof_is_kept_and_reported():
    root, _, _ = assess(classify(BROKERS), list(CASES[3].values[1]))
    assert any("may be stale" in n for n in root.notes)


def test_masked_hypothesis_is_rechecked_after_its_masker():
    _, hyps, plan = assess(classify(UNRESOLVABLE), list(CASES[1].values[1]))
    assert next(h for h in hyps if h.id == "typo").masked_by == ["vpc-dns"]
    assert plan[0].fix == "enable-vpc-dns" and "typo" in plan[0].after


def test_passing_checks_with_an_old_error_give_one_verdict_and_no_fix():
    checks = [("sg-self-inbound", "network"), ("sg-self-outbound", "network"), ("nacl", "network")]
    findings = [f(c, s, (), status="pass") for c, s in checks]
    findings += [f("broker-dns", "dns", (), status="pass"), f("cluster-state", "network", (), status="skip")]
    root, hyps, plan = assess(classify(BROKERS), findings, source_kind="self-managed")
    assert (root.id, root.fix, hyps, plan) == ("status-stale", "", [], [])
    assert "looks fixed" in root.summary and "has not reported since" in root.summary
    assert root.confidence >= 0.5


def test_self_managed_texts_do_not_speak_of_msk():
    findings = [f("sg-egress-https", "sts", ("no-egress-443",), fix="ticket", params={"reason": "x"})]
    root, _, _ = assess(classify(VPC), findings, source_kind="self-managed")
    assert "cluster security group" not in root.summary and "MSK" not in root.summary
    msk, _, _ = assess(classify(VPC), findings, source_kind="msk")
    assert "cluster" in msk.summary.lower()
