"""Reads that fail: AccessDenied, throttling after the adapter's retries, operations the endpoint lacks.
Each makes the affected check ``unknown`` with the missing permission or the error code; nothing crashes.
The errors are injected as real AWS error responses below botocore (parsing and retries run as in AWS)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from diag_helpers import inject_error, sandbox_resolver

from esm_medic.aws import Aws
from esm_medic.diagnose import DiagnoseError, EsmNotFound, diagnose, scan


class _NoSleep:
    """botocore.endpoint's view of ``time`` without the retry back-off sleeps."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def sleep(_: float) -> None:
        return None


@pytest.fixture
def aws(sim_aws: Any, monkeypatch: pytest.MonkeyPatch) -> Aws:
    """A fresh adapter (its own clients, so injected errors stay in this test) inside the module's sandbox."""
    monkeypatch.setattr("botocore.endpoint.time", _NoSleep())
    return Aws(region="us-east-1", max_attempts=3)


def _finding(d, check):
    return next(f for f in d.findings if f.check == check)


def test_access_denied_on_security_groups(aws, build):
    inject_error(aws, "ec2", "describe_security_groups", "UnauthorizedOperation", status=403)
    d = diagnose(aws, build("missing-sg-self-rule").uuid, resolver=sandbox_resolver)
    for check in ("sg-self-inbound", "sg-self-outbound"):
        f = _finding(d, check)
        assert f.status == "unknown"
        assert f.missing_permission == "ec2:DescribeSecurityGroups"
        assert f.evidence["error_code"] == "UnauthorizedOperation"
    assert _finding(d, "cluster-state").status == "pass"  # the other checks go on
    assert d.root_cause.id == "no-sg-self-rule"  # plausible (its check could not decide) ...
    assert d.root_cause.fix == "ticket"  # ... but never fixed without evidence


def test_simulate_denied_falls_back_to_the_local_evaluator(aws, build):
    result = build("role-without-kafka-cluster")
    inject_error(aws, "iam", "simulate_principal_policy", "AccessDenied", status=403)
    d = diagnose(aws, result.uuid, resolver=sandbox_resolver)
    perms = _finding(d, "role-permissions")
    assert perms.status == "fail"
    assert perms.evidence["evaluated_by"] == "local"
    assert any("SimulatePrincipalPolicy" in n for n in perms.evidence["notes"])
    assert (d.root_cause.id, d.root_cause.fix) == ("iam-missing-kafka-cluster", "grant-iam-permissions")
    granted = {a for st in d.root_cause.fix_params["statements"] for a in st["actions"]}
    assert granted == set(result.expected["fix_params"]["actions"])


def test_simulate_not_implemented_falls_back_too(aws, build):
    inject_error(aws, "iam", "simulate_principal_policy", "NotImplemented", status=501)
    d = diagnose(aws, build("role-without-connect").uuid, resolver=sandbox_resolver)
    assert _finding(d, "role-permissions").evidence["evaluated_by"] == "local"
    assert (d.root_cause.id, d.root_cause.fix) == ("iam-missing-connect", "grant-iam-permissions")


def test_every_iam_read_denied_names_simulate_principal_policy(aws, build):
    for op in ("simulate_principal_policy", "get_role", "list_role_policies"):
        inject_error(aws, "iam", op, "AccessDenied", status=403)
    d = diagnose(aws, build("role-without-kafka-cluster").uuid, resolver=sandbox_resolver)
    perms = _finding(d, "role-permissions")
    assert perms.status == "unknown"
    assert perms.missing_permission == "iam:SimulatePrincipalPolicy"
    trust = _finding(d, "role-trust")
    assert (trust.status, trust.missing_permission) == ("unknown", "iam:GetRole")
    assert (d.root_cause.id, d.root_cause.fix) == ("iam-missing-kafka-cluster", "ticket")


def test_throttling_surfaces_as_unknown_after_the_retries(aws, build):
    attempts = inject_error(aws, "ec2", "describe_route_tables", "RequestLimitExceeded", status=503)
    d = diagnose(aws, build("no-nat-no-endpoints").uuid, resolver=sandbox_resolver)
    assert len(attempts) == 1 + aws.max_attempts  # botocore's max_attempts counts retries, then it gave up
    path = _finding(d, "service-path")
    assert path.status == "unknown"
    assert path.evidence["error_code"] == "RequestLimitExceeded"
    assert path.evidence["error"] == "throttled"
    assert path.missing_permission is None
    assert _finding(d, "sg-self-inbound").status == "pass"
    assert d.root_cause.fix == "ticket"


def test_secret_value_denied(aws, build):
    inject_error(aws, "secretsmanager", "get_secret_value", "AccessDeniedException", status=400)
    d = diagnose(aws, build("malformed-secret").uuid, resolver=sandbox_resolver)
    f = _finding(d, "secret-format")
    assert (f.status, f.missing_permission) == ("unknown", "secretsmanager:GetSecretValue")
    assert _finding(d, "secret-exists").status == "pass"


def test_cluster_describe_denied(aws, build):
    inject_error(aws, "kafka", "describe_cluster_v2", "AccessDeniedException", status=403)
    d = diagnose(aws, build("missing-sg-self-rule").uuid, resolver=sandbox_resolver)
    assert _finding(d, "cluster-state").missing_permission == "kafka:DescribeClusterV2"
    assert _finding(d, "sg-self-inbound").missing_permission == "kafka:DescribeClusterV2"


def test_esm_read_denied_or_missing_is_a_clear_error(aws, build):
    with pytest.raises(EsmNotFound):
        diagnose(aws, "00000000-0000-0000-0000-000000000000")
    inject_error(aws, "lambda", "get_event_source_mapping", "AccessDeniedException", status=403)
    with pytest.raises(DiagnoseError, match="lambda:GetEventSourceMapping"):
        diagnose(aws, build("healthy").uuid)


def test_scan_list_denied_is_a_clear_error(aws):
    inject_error(aws, "lambda", "list_event_source_mappings", "AccessDeniedException", status=403)
    with pytest.raises(DiagnoseError, match="lambda:ListEventSourceMappings"):
        scan(aws)
