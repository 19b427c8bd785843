"""Every sandbox scenario, diagnosed in-process: classification entry, step, root cause, fix and fix_params shape
as the scenario expects; JSON contract; read-only; no secret value in the output."""

from __future__ import annotations

import json
from typing import Any

import pytest
from diag_helpers import mutating_calls, sandbox_resolver
from esm_medic_sandbox.scenarios import SCENARIOS

from esm_medic.diagnose import diagnose
from esm_medic.diagnose.rank import valid_params

REQUIRED = {
    "missing-sg-self-rule",
    "wrong-port-self-rule",
    "no-nat-no-endpoints",
    "missing-secretsmanager-endpoint",
    "healthy",
    "provisioned-mode",
    "role-without-kafka-cluster",
    "malformed-secret",
    "vpc-dns-off",
    "self-managed-unresolvable-broker",
    "self-managed-missing-sg-rule",
}


def test_every_required_scenario_exists():
    assert set(SCENARIOS) >= REQUIRED


def _secret_values(aws: Any, arn: str) -> list[str]:
    if not arn:
        return []
    text = aws.call("secretsmanager", "get_secret_value", SecretId=arn)["SecretString"]
    try:
        doc = json.loads(text)
    except ValueError:
        return [text]
    return [v for v in doc.values() if isinstance(v, str) and len(v) >= 6] if isinstance(doc, dict) else [text]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_diagnosis(name, sim_aws, build):
    result = build(name)
    expected = result.expected
    sim_aws.reset_counts()
    d = diagnose(sim_aws, result.uuid, resolver=sandbox_resolver)
    rc = d.root_cause

    assert d.classification["entry"] == expected["entry"]
    assert d.step == expected["step"]
    assert rc.id == (expected["root_cause"] or "healthy")
    assert rc.fix == (expected["fix"] or "")
    if rc.fix:
        assert valid_params(rc.fix, rc.fix_params), rc.fix_params
    else:
        assert rc.fix_params == {}

    want = expected.get("fix_params") or {}
    if "ports" in want:
        assert rc.fix_params["ports"] == want["ports"]
        assert rc.fix_params["group_id"] in result.security_group_ids
        assert rc.fix_params["vpc_id"] == result.vpc_id
        assert "ingress" in rc.fix_params["directions"]
    if "services" in want:
        assert rc.fix_params["services"] == want["services"]
        assert rc.fix_params["vpc_id"] == result.vpc_id
        assert set(rc.fix_params["subnet_ids"]) <= set(result.subnet_ids)
        assert rc.fix_params["source_group_ids"] == result.security_group_ids
    if "actions" in want:
        granted = {a for st in rc.fix_params["statements"] for a in st["actions"]}
        assert granted == set(want["actions"])
        assert rc.fix_params["role_name"] == result.role_name
        for st in rc.fix_params["statements"]:
            assert "*" not in st["resources"]
    if rc.fix == "enable-vpc-dns":
        assert rc.fix_params["vpc_id"] == result.vpc_id

    # the JSON contract
    doc = json.loads(json.dumps(d.to_dict()))
    assert {"uuid", "state", "step", "root_cause", "findings"} <= set(doc)
    assert doc["uuid"] == result.uuid and doc["root_cause"]["fix"] == rc.fix
    for f in doc["findings"]:
        assert {"check", "status", "evidence"} <= set(f)
        assert f["status"] in ("pass", "fail", "warn", "unknown", "skip")
    assert rc.id == "healthy" or any(f["status"] == "fail" for f in doc["findings"]) or rc.fix == "ticket"

    # read-only, cheap, and no secret value anywhere in the output
    assert mutating_calls(dict(sim_aws.calls)) == []
    assert d.api_calls == sim_aws.total_calls
    assert 0 < d.api_calls <= 25
    text = json.dumps(doc)
    for value in _secret_values(sim_aws, result.secret_arn):
        assert value not in text


def test_provisioned_mode_skips_the_service_path(sim_aws, build):
    d = diagnose(sim_aws, build("provisioned-mode").uuid, resolver=sandbox_resolver)
    status = {f.check: str(f.status) for f in d.findings}
    assert status["service-path"] == "skip" and status["vpc-endpoints"] == "skip"
    assert d.network is not None and d.network.provisioned


def test_network_identity_is_the_clusters_not_the_functions(sim_aws, build):
    result = build("missing-sg-self-rule")
    d = diagnose(sim_aws, result.uuid, resolver=sandbox_resolver)
    assert d.network is not None
    assert d.network.source == "cluster"
    assert d.network.subnets == result.subnet_ids
    assert d.network.security_groups == result.security_group_ids
    assert (d.network.auth_mode, d.network.ports) == ("iam", [9098])
    inbound = next(f for f in d.findings if f.check == "sg-self-inbound")
    assert inbound.status == "fail" and inbound.fix == "add-sg-self-rule"
    assert inbound.evidence["missing_ports"] == [9098]


def test_self_managed_identity_comes_from_the_esm(sim_aws, build):
    result = build("self-managed-missing-sg-rule")
    d = diagnose(sim_aws, result.uuid, resolver=sandbox_resolver)
    assert d.network is not None and d.network.source == "esm"
    assert d.network.security_groups == result.security_group_ids
    dns = next(f for f in d.findings if f.check == "broker-dns")
    assert dns.status == "pass"  # answered by the VPC's private hosted zone
    assert all(b.get("private_zone") for b in dns.evidence["brokers"])


def test_unresolvable_broker_evidence(sim_aws, build):
    d = diagnose(sim_aws, build("self-managed-unresolvable-broker").uuid, resolver=sandbox_resolver)
    dns = next(f for f in d.findings if f.check == "broker-dns")
    assert dns.status == "fail"
    assert {b["error"] for b in dns.evidence["brokers"]} == {"nxdomain"}


def test_missing_secretsmanager_endpoint_evidence(sim_aws, build):
    result = build("missing-secretsmanager-endpoint")
    d = diagnose(sim_aws, result.uuid, resolver=sandbox_resolver)
    eps = next(f for f in d.findings if f.check == "vpc-endpoints")
    assert eps.status == "fail"
    assert eps.evidence["missing"] == ["secretsmanager"]
    assert all(e["admits_443_from_enis"] for svc in ("sts", "lambda") for e in eps.evidence["endpoints"][svc])
