"""One incident per ESM and root cause (the claim), the after-error rollback's scope, metrics that keep their own
dimensions, and a missing idempotency table that is named."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from esm_medic import workflow as wf
from esm_medic.handlers import _common
from esm_medic.workflow import claim as claim_module

UUID = "61950a11-223c-41cc-a76f-8cc3540a00b8"
DIAGNOSIS = {"step": "network", "root_cause": {"id": "sg-no-self-rule", "fix": "add-sg-self-rule"}}


@pytest.fixture
def aws() -> Iterator[Any]:
    from esm_medic_sandbox.env import sandbox

    from esm_medic.tables import create_tables

    with sandbox() as a:
        create_tables(a)
        _common.reset_idempotency()
        yield a
    _common.reset_idempotency()


def claim(aws: Any, execution: str, incident: str = "inc-1") -> dict[str, Any]:
    from esm_medic.config import Settings

    key = wf.root_cause_fingerprint(UUID, DIAGNOSIS)
    return wf.claim_incident(
        aws, Settings.from_env(), uuid=UUID, incident_id=incident, execution=execution, key=key, ttl_seconds=600
    )


def test_the_root_cause_fingerprint_ignores_the_status_text_and_names_the_esm() -> None:
    a = wf.root_cause_fingerprint(UUID, DIAGNOSIS)
    assert a == wf.root_cause_fingerprint(UUID.upper(), {**DIAGNOSIS, "findings": [1]})
    assert a != wf.root_cause_fingerprint(UUID.replace("6", "7"), DIAGNOSIS)
    other = {**DIAGNOSIS, "root_cause": {"id": "no-nat", "fix": "create-vpc-endpoints"}}
    assert a != wf.root_cause_fingerprint(UUID, other)


def test_the_first_execution_owns_the_incident_and_the_others_join_it(aws: Any) -> None:
    from esm_medic.remediate.lock import IncidentClaim
    from esm_medic.tables import STATE

    first = claim(aws, "exec-a", "inc-1")
    assert first["won"] is True
    assert claim(aws, "exec-a", "inc-1")["won"] is True  # a retried decision keeps its claim
    second = claim(aws, "exec-b", "inc-2")
    assert second["won"] is False
    assert second["joined_execution"] == "exec-a" and second["joined_incident"] == "inc-1"
    holder = IncidentClaim(aws, UUID, first["key"], table=STATE.name).holder()
    assert holder is not None and holder.joiners == ["exec-b"]


def test_a_finished_claim_is_joined_unless_the_recovered_esm_fails_again(aws: Any, monkeypatch: Any) -> None:
    key = claim(aws, "exec-a")["key"]
    record = {"uuid": UUID, "execution": "exec-a", "outcome": "recovered", "root_cause_fingerprint": key}
    assert wf.finish_claim(aws, {**record, "claim_owner": "exec-b"}) is False  # only the owner finishes it
    assert wf.finish_claim(aws, {**record, "claim_owner": "exec-a"}) is True
    monkeypatch.setattr(claim_module, "_esm_ok_now", lambda aws, uuid: True)
    late = claim(aws, "exec-b")
    assert late["won"] is False and late["holder_state"] == "done" and late["holder_outcome"] == "recovered"
    monkeypatch.setattr(claim_module, "_esm_ok_now", lambda aws, uuid: False)
    assert claim(aws, "exec-c")["won"] is True  # the cause is back: a new owner


def test_the_claim_ttl_covers_the_approval_wait_and_the_verification_window() -> None:
    run = {"approval_timeout_seconds": 100, "verify_max_attempts": 3, "verify_max_wait_seconds": 10}
    assert wf.claim_ttl(run) == 100 + 30 + wf.CLAIM_MARGIN_SECONDS
    assert wf.claim_ttl({}) > 86400


def test_the_after_error_rollback_only_touches_the_action_its_error_names(aws: Any) -> None:
    err = wf.RemediationFailed("applying add-sg-self-rule failed: boom", action_id="act-" + "a" * 32)
    cause = json.dumps({"errorMessage": str(err), "errorType": "RemediationFailed"})
    assert wf.failed_actions({"Error": "RemediationFailed", "Cause": cause}) == ["act-" + "a" * 32]
    assert wf.failed_actions({"Error": "States.Timeout", "Cause": ""}) == []
    out = wf.rollback_step(
        aws,
        {"uuid": UUID, "incident_id": "inc-1", "mode": "after-error", "error": {"Cause": ""}, "diagnosis": DIAGNOSIS},
    )
    assert out["rolled_back"] is False and out["results"] == []


def test_metrics_with_dimensions_do_not_leak_onto_later_metrics(monkeypatch: Any, capsys: Any) -> None:
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.delenv("POWERTOOLS_DEV", raising=False)
    _common.metrics.clear_metrics()
    _common.count("Decided", step="network", route="auto")
    _common.count("ApprovalsRequested")
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    single = next(e for e in emitted if "Decided" in e)
    assert single["step"] == "network" and single["route"] == "auto"
    shared = _common.metrics.serialize_metric_set()
    assert "ApprovalsRequested" in shared and "step" not in shared and "route" not in shared
    _common.metrics.clear_metrics()


def test_a_missing_idempotency_table_is_named(aws: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("ESM_MEDIC_IDEMPOTENCY_TABLE", "no-such-table")
    _common.reset_idempotency()
    with pytest.raises(_common.PersistenceUnavailable, match=r"'no-such-table'.*does not exist"):
        _common.idempotent_call("remediate", lambda r: r, {"k": "v"}, key_jmespath="k")


def test_a_dead_owner_s_claims_are_finished_by_the_safety_net(aws: Any) -> None:
    from esm_medic.remediate.lock import IncidentClaim
    from esm_medic.tables import STATE

    key = claim(aws, "exec-dead")["key"]
    assert wf.finish_claims_of(aws, UUID, "exec-other", "failed-with-ticket") == []
    assert wf.finish_claims_of(aws, UUID, "exec-dead", "failed-with-ticket") == [key]
    holder = IncidentClaim(aws, UUID, key, table=STATE.name).holder()
    assert holder is not None and holder.state == "done" and holder.outcome == "failed-with-ticket"


def test_a_new_sighting_after_the_owner_finished_takes_over_a_straggler_joins(aws: Any, monkeypatch: Any) -> None:
    import time

    from esm_medic.config import Settings

    monkeypatch.setattr(claim_module, "_esm_ok_now", lambda aws, uuid: True)
    key = claim(aws, "exec-a")["key"]
    before = time.time() - 5
    assert wf.finish_claim(
        aws,
        {
            "uuid": UUID,
            "execution": "exec-a",
            "outcome": "notified",
            "root_cause_fingerprint": key,
            "claim_owner": "exec-a",
        },
    )

    def claim_at(execution: str, started: float) -> dict[str, Any]:
        return wf.claim_incident(
            aws,
            Settings.from_env(),
            uuid=UUID,
            incident_id="inc-2",
            execution=execution,
            key=key,
            ttl_seconds=600,
            started_at=started,
        )

    assert claim_at("exec-straggler", before)["won"] is False
    assert claim_at("exec-new", time.time() + 5)["won"] is True
    assert wf.started_epoch({"started_at": "2026-01-01T00:00:00Z"}) > 0 and wf.started_epoch({}) == 0
