"""The workflow steps that apply a whole plan (decide / remediate / verify / rollback), with the engine replaced by
recording fakes: which fixes are planned, approved, applied, verified and rolled back, in which order, and which
error each failure becomes. The real engine and ASL are exercised by tests/e2e/test_plan.py."""

from __future__ import annotations

from typing import Any

import pytest

from esm_medic.config import Settings
from esm_medic.models import CheckStatus, Diagnosis, Finding, Hypothesis, PlanItem, RootCause
from esm_medic.remediate import plan as plan_mod
from esm_medic.workflow import common
from esm_medic.workflow import decide as decide_mod
from esm_medic.workflow import remediate as remediate_mod
from esm_medic.workflow import rollback as rollback_mod
from esm_medic.workflow import verify as verify_mod

UUID = "61950a11-223c-41cc-a76f-8cc3540a00b8"
SELF_RULE = {"order": 1, "fix": "add-sg-self-rule", "fix_params": {"group_id": "sg-1", "port": 9098}}
ENDPOINTS = {"order": 2, "fix": "create-vpc-endpoints", "fix_params": {"vpc_id": "vpc-1", "services": ["sts"]}}
TRUST = {"order": 3, "fix": "ticket", "fix_params": {}, "ticket_only": True, "summary": "fix the trust policy"}


def item(base: dict[str, Any], hypothesis: str) -> dict[str, Any]:
    return {"hypotheses": [hypothesis], "safety": "auto", "summary": base["fix"], "ticket_only": False, **base}


PLAN = [item(SELF_RULE, "no-sg-self-rule"), item(ENDPOINTS, "no-nat-or-endpoints"), item(TRUST, "trust-policy")]
DIAGNOSIS = {
    "healthy": False,
    "state": "Enabled",
    "step": "network",
    "root_cause": {"id": "no-sg-self-rule", "fix": "add-sg-self-rule", "summary": "no self rule", "step": "network"},
    "findings": [],
    "esm_status": {"State": "Enabled", "LastProcessingResult": "PROBLEM: Connection error."},
    "hypotheses": [],
    "plan": PLAN,
}
CLASSIFICATION = {"entry": "connection-error", "step": "network", "kind": "error", "transient": False}


class FakeEngine:
    """plan_fix / apply_fix / rollback / verify_fix / restart_esm answers per action, with every call kept."""

    def __init__(self, outcomes: dict[str, str], statuses: dict[str, str] | None = None) -> None:
        self.outcomes = outcomes  # action -> decision outcome (auto / approve / ticket ...)
        self.statuses = statuses or {}  # action -> plan_fix status (default planned)
        self.calls: list[tuple[str, Any]] = []
        self.n = 0

    def plan_fix(self, aws: Any, request: Any, **kw: Any) -> dict[str, Any]:
        action = request["root_cause"]["fix"]
        self.calls.append(("plan", (action, bool(kw.get("record")))))
        status = self.statuses.get(action, "planned")
        out: dict[str, Any] = {
            "status": status,
            "decision": {"outcome": self.outcomes.get(action, "auto"), "mode": "auto", "reasons": [f"{action} ok"]},
            "plan": {
                "action": action,
                "params": request["root_cause"].get("fix_params") or {},
                "diff": [f"+ {action}"],
                "safety": "approve" if self.outcomes.get(action) == "approve" else "auto",
            },
        }
        if status == "failed":
            out["error"] = "Throttling: Rate exceeded"
        if kw.get("record"):
            self.n += 1
            out["action_id"] = f"act-{self.n:08x}"
        return out

    def rollback(self, aws: Any, action_id: str, **kw: Any) -> dict[str, Any]:
        self.calls.append(("rollback", action_id))
        return {"status": "rolled-back", "action_id": action_id, "removed": {"rules": [action_id]}, "restored": {}}

    def verify_fix(self, aws: Any, action_id: str, **kw: Any) -> dict[str, Any]:
        self.calls.append(("verify", action_id))
        return {"status": "verified", "resource_ok": True, "failed_verifications": 0}

    def restart_esm(self, aws: Any, uuid: str, **kw: Any) -> dict[str, Any]:
        self.calls.append(("restart", uuid))
        return {"restarted": True}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    engine = FakeEngine({})
    for name in ("plan_fix", "rollback", "verify_fix", "restart_esm"):
        monkeypatch.setattr(f"esm_medic.remediate.engine.{name}", getattr(engine, name))
    monkeypatch.setattr(
        decide_mod, "claim_incident", lambda *a, **k: {"key": k["key"], "won": True, "owner": k["execution"]}
    )
    monkeypatch.setattr(decide_mod, "_note_sighting", lambda *a, **k: None)
    return engine


def decide(**kw: Any) -> dict[str, Any]:
    return decide_mod.decide_step(
        None,  # type: ignore[arg-type]
        uuid=UUID,
        incident_id="inc-1",
        classification=CLASSIFICATION,
        diagnosis=kw.pop("diagnosis", DIAGNOSIS),
        settings=Settings.from_env(),
        execution="exec-1",
    )


# ------------------------------------------------------------------------------------------------- decide
def test_one_approve_item_makes_the_whole_plan_wait_for_one_approval(fake: FakeEngine) -> None:
    fake.outcomes = {"add-sg-self-rule": "auto", "create-vpc-endpoints": "approve"}
    d = decide()
    assert d["route"] == "approve"
    plan = d["plan"]
    assert [i["action"] for i in plan["items"]] == ["add-sg-self-rule", "create-vpc-endpoints"]
    assert plan["diff"] == [
        "[1. add-sg-self-rule] + add-sg-self-rule",
        "[2. create-vpc-endpoints] + create-vpc-endpoints",
    ]
    assert plan["fix"] == "add-sg-self-rule + create-vpc-endpoints"
    # one 'planned' audit row per item, their ids in the decision; the ticket-only part travels with the plan
    assert [c for c in fake.calls if c[0] == "plan" and c[1][1]] == [
        ("plan", ("add-sg-self-rule", True)),
        ("plan", ("create-vpc-endpoints", True)),
    ]
    assert plan["action_ids"] == ["act-00000001", "act-00000002"] and d["planned_action_id"] == "act-00000001"
    assert [t["summary"] for t in plan["tickets"]] == ["fix the trust policy"]
    assert "left for a ticket: fix the trust policy" in d["reason"]
    assert d["safety"] == "approve"  # the strictest of the items' classes


def test_an_all_automatic_plan_goes_auto_and_records_nothing(fake: FakeEngine) -> None:
    d = decide()
    assert d["route"] == "auto"
    assert d["plan"]["action_ids"] == [] and d["planned_action_id"] is None
    assert not any(c[1][1] for c in fake.calls if c[0] == "plan")
    a, _b = d["plan"]["items"]
    assert d["plan"]["fingerprint"] != a["fingerprint"] and len(d["plan"]["fingerprint"]) == 32


def test_a_declined_item_is_left_for_the_ticket_and_the_rest_is_applied(fake: FakeEngine) -> None:
    fake.outcomes = {"create-vpc-endpoints": "ticket"}
    d = decide()
    assert d["route"] == "auto"
    assert [i["action"] for i in d["plan"]["items"]] == ["add-sg-self-rule"]
    assert [x["action"] for x in d["plan"]["declined"]] == ["create-vpc-endpoints"]
    assert d["plan"]["action"] == "add-sg-self-rule" and d["plan"]["diff"] == ["+ add-sg-self-rule"]


def test_no_applicable_item_keeps_the_first_items_answer(fake: FakeEngine) -> None:
    fake.outcomes = {"add-sg-self-rule": "notify", "create-vpc-endpoints": "notify"}
    assert decide()["route"] == "notify"
    fake.outcomes = {"add-sg-self-rule": "ticket", "create-vpc-endpoints": "ticket"}
    assert decide()["route"] == "ticket"


def test_a_throttled_plan_is_retried_by_the_state_machine(fake: FakeEngine) -> None:
    fake.statuses = {"create-vpc-endpoints": "failed"}
    with pytest.raises(common.StepFailed) as err:
        decide()
    assert err.value.throttled


def test_a_diagnosis_without_a_plan_decides_on_its_root_cause(fake: FakeEngine) -> None:
    d = decide(diagnosis={**DIAGNOSIS, "plan": []})
    assert d["route"] == "auto" and d["fix"] == "add-sg-self-rule"
    assert "items" not in (d["plan"] or {})


# ------------------------------------------------------------------------------------------------- apply_plan
def diagnosis_obj(plan: list[PlanItem], *, failing: bool = True) -> Diagnosis:
    findings = [
        Finding(
            check="sg-self-rule", step="network", status=CheckStatus.FAIL if failing else CheckStatus.PASS, summary=""
        )
    ]
    return Diagnosis(
        uuid=UUID,
        state="Enabled",
        step="network",
        classification={"step": "network"},
        root_cause=RootCause(id="no-sg-self-rule", summary="", step="network", fix="add-sg-self-rule"),
        findings=findings,
        hypotheses=[
            Hypothesis(
                id="no-sg-self-rule",
                step="network",
                score=1,
                summary="",
                fix="add-sg-self-rule",
                evidence=["sg-self-rule"],
            ),
            Hypothesis(id="iam", step="authz", score=1, summary="", fix="grant-iam-permissions", evidence=["iam"]),
        ],
        plan=plan,
    )


def plan_item(order: int, fix: str, params: dict[str, Any], hypothesis: str) -> PlanItem:
    return PlanItem(order=order, fix=fix, fix_params=params, hypotheses=[hypothesis], safety="auto", summary=fix)


def test_an_approval_covers_only_the_items_it_was_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SG fix was approved; the IAM grant appears only after re-diagnosis: it is applied unapproved (so an
    approve-class fix answers needs-approval and goes to the ticket)."""
    sg = plan_item(1, "add-sg-self-rule", {"group_id": "sg-1"}, "no-sg-self-rule")
    iam = plan_item(1, "grant-iam-permissions", {"role_name": "r"}, "iam")
    calls: list[dict[str, Any]] = []

    def apply_fix(aws: Any, request: Any, **kw: Any) -> dict[str, Any]:
        fix = request["root_cause"]["fix"]
        calls.append(
            {"fix": fix, "approved": kw["approved"], "bound": kw.get("planned_action_id"), "lock": kw["lock_owner"]}
        )
        if fix == "grant-iam-permissions" and not kw["approved"]:
            return {"status": "needs-approval", "decision": {"reasons": ["approve class"]}}
        return {"status": "applied", "action_id": "act-aaaaaaaa", "after": {"ok": 1}}

    monkeypatch.setattr("esm_medic.remediate.engine.apply_fix", apply_fix)
    after = diagnosis_obj([iam], failing=False)
    out = plan_mod.apply_plan(
        None,  # type: ignore[arg-type]
        diagnosis_obj([sg]),
        rediagnose=lambda: after,
        approved=True,
        approver="alice",
        lock_owner="execution:e1",
        bindings={plan_mod.item_fingerprint(sg): {"planned_action_id": "act-planned1"}},
    )
    assert calls == [
        {"fix": "add-sg-self-rule", "approved": True, "bound": "act-planned1", "lock": "execution:e1"},
        {"fix": "grant-iam-permissions", "approved": False, "bound": None, "lock": "execution:e1"},
    ]
    assert [r["fix"] for r in out["applied"]] == ["add-sg-self-rule"]
    assert [r["not_applied"] for r in out["remaining"] if r["fix"] == "grant-iam-permissions"] == ["needs-approval"]
    assert out["status"] == "partial"


def test_a_held_lock_stops_the_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def apply_fix(aws: Any, request: Any, **kw: Any) -> dict[str, Any]:
        seen.append(request["root_cause"]["fix"])
        return {"status": "locked", "lock_holder": "execution:other"}

    monkeypatch.setattr("esm_medic.remediate.engine.apply_fix", apply_fix)
    two = [
        plan_item(1, "add-sg-self-rule", {"group_id": "sg-1"}, "a"),
        plan_item(2, "create-vpc-endpoints", {"vpc_id": "v"}, "b"),
    ]
    out = plan_mod.apply_plan(None, diagnosis_obj(two), rediagnose=lambda: diagnosis_obj(two))  # type: ignore[arg-type]
    assert seen == ["add-sg-self-rule"] and out["not_applied"][0]["lock_holder"] == "execution:other"


# ------------------------------------------------------------------------------------------------- remediate
def remediate(
    monkeypatch: pytest.MonkeyPatch, fake: FakeEngine, result: dict[str, Any], approved: bool = False
) -> dict[str, Any]:
    got: dict[str, Any] = {}

    def apply_plan(aws: Any, diagnosis: Any, **kw: Any) -> dict[str, Any]:
        got.update(kw, diagnosis=diagnosis)
        return {
            "status": "partial",
            "applied": [],
            "rolled_back": [],
            "not_applied": [],
            "noop": [],
            "remaining": [],
            "ticket_reason": "",
            **result,
        }

    monkeypatch.setattr(remediate_mod, "apply_plan", apply_plan)
    monkeypatch.setattr(
        remediate_mod,
        "_bindings",
        lambda aws, s, items: {i["fingerprint"]: {"planned_action_id": i["action_id"]} for i in items},
    )
    monkeypatch.setattr(remediate_mod, "_record_restart", lambda *a: got.setdefault("restart_row", a[2]))
    items = [{"action": "add-sg-self-rule", "fingerprint": "f1", "action_id": "act-00000001"}]
    payload = {
        "uuid": UUID,
        "incident_id": "inc-1",
        "execution": "exec-1",
        "plan": {"action": "add-sg-self-rule", "params": {}, "fingerprint": "x", "items": items},
        "diagnosis": DIAGNOSIS,
        "classification": CLASSIFICATION,
        "approval": {"approved": True, "approver": "alice"} if approved else None,
    }
    out = remediate_mod.remediate_step(None, payload, settings=Settings.from_env())  # type: ignore[arg-type]
    out["_got"] = got
    return out


def test_remediate_applies_the_plan_and_restarts_once(monkeypatch: pytest.MonkeyPatch, fake: FakeEngine) -> None:
    applied = [
        {"fix": "add-sg-self-rule", "action_id": "act-1", "hypotheses": ["a"], "created": {"rules": ["r1"]}},
        {"fix": "create-vpc-endpoints", "action_id": "act-2", "hypotheses": ["b"], "created": {"vpce": ["v"]}},
    ]
    remaining = [{"fix": "ticket", "hypotheses": ["trust-policy"], "ticket_only": True}]
    out = remediate(monkeypatch, fake, {"applied": applied, "remaining": remaining, "ticket_reason": "left: trust"})
    assert out["action_ids"] == ["act-1", "act-2"] and out["action_id"] == "act-2"
    assert [f["fix"] for f in out["fixes"]] == ["add-sg-self-rule", "create-vpc-endpoints"]
    assert out["remaining"] == remaining and out["ticket_reason"] == "left: trust" and out["plan_status"] == "partial"
    assert [c for c in fake.calls if c[0] == "restart"] == [("restart", UUID)]
    got = out["_got"]
    assert got["restart"] is False and got["lock_owner"] == "execution:exec-1" and got["bindings"] is None
    assert got["restart_row"] == "act-2"
    assert got["diagnosis"].uuid == UUID and [p.fix for p in got["diagnosis"].plan][:2] == [
        "add-sg-self-rule",
        "create-vpc-endpoints",
    ]


def test_an_approved_plan_is_bound_to_its_planned_rows(monkeypatch: pytest.MonkeyPatch, fake: FakeEngine) -> None:
    out = remediate(
        monkeypatch, fake, {"applied": [{"fix": "add-sg-self-rule", "action_id": "act-00000001"}]}, approved=True
    )
    assert out["_got"]["bindings"] == {"f1": {"planned_action_id": "act-00000001"}}
    assert out["_got"]["approved"] is True and out["_got"]["approver"] == "alice"


@pytest.mark.parametrize(
    ("not_applied", "rolled_back", "error"),
    [
        ([{"fix": "a", "status": "locked", "lock_holder": "execution:other"}], [], common.LockConflict),
        (
            [{"fix": "a", "status": "failed", "error": "boom", "action_id": "act-0000000a"}],
            [],
            common.RemediationFailed,
        ),
        ([], [{"fix": "a", "action_id": "act-0000000b", "rollback": "rolled-back"}], common.NotApplied),
        ([{"fix": "a", "status": "budget-exceeded", "reason": "budget"}], [], common.NotApplied),
    ],
)
def test_a_plan_that_applied_nothing_raises_the_named_error(
    monkeypatch: pytest.MonkeyPatch, fake: FakeEngine, not_applied: list, rolled_back: list, error: type
) -> None:
    with pytest.raises(error) as err:
        remediate(monkeypatch, fake, {"not_applied": not_applied, "rolled_back": rolled_back, "status": "unchanged"})
    if error is common.RemediationFailed:
        assert "[action act-0000000a]" in str(err.value)
    if error is common.LockConflict:
        assert "execution other" in str(err.value)
    assert not [c for c in fake.calls if c[0] == "restart"]


def test_a_diagnosis_without_its_plan_applies_the_decided_items(
    monkeypatch: pytest.MonkeyPatch, fake: FakeEngine
) -> None:
    monkeypatch.setattr(
        remediate_mod, "obj", lambda d, k: {**common.obj(d, k), "plan": []} if k == "diagnosis" else common.obj(d, k)
    )
    out = remediate(monkeypatch, fake, {"applied": [{"fix": "add-sg-self-rule", "action_id": "act-1"}]})
    assert [(p.fix, p.hypotheses) for p in out["_got"]["diagnosis"].plan] == [("add-sg-self-rule", [])]


def test_a_plan_already_in_place_restarts_and_verifies(monkeypatch: pytest.MonkeyPatch, fake: FakeEngine) -> None:
    monkeypatch.setattr(remediate_mod, "_earlier", lambda *a: [])
    out = remediate(monkeypatch, fake, {"noop": [{"fix": "add-sg-self-rule"}], "status": "unchanged"})
    assert out["noop"] is True and out["action_ids"] == [] and out["restarted"] is True


# ------------------------------------------------------------------------------------------------- verify / rollback
def test_applied_ids_reads_a_plan_record_and_a_one_fix_record() -> None:
    assert verify_mod.applied_ids({"action_ids": ["act-1", "act-2"], "action_id": "act-2"}) == ["act-1", "act-2"]
    assert verify_mod.applied_ids({"action_id": "act-9"}) == ["act-9"]
    assert verify_mod.applied_ids({"action_id": None, "noop": True}) == []


def test_a_recovery_is_recorded_on_every_fix_and_a_failure_once(fake: FakeEngine) -> None:
    s = Settings.from_env()
    v = verify_mod._final_verdict(None, s, UUID, ["act-1", "act-2"], {}, exhausted=False)  # type: ignore[arg-type]
    assert [c for c in fake.calls if c[0] == "verify"] == [("verify", "act-1"), ("verify", "act-2")]
    assert v["actions"] == {"act-1": "verified", "act-2": "verified"}
    fake.calls.clear()
    verify_mod._final_verdict(None, s, UUID, ["act-1", "act-2"], {}, exhausted=True)  # type: ignore[arg-type]
    assert [c for c in fake.calls if c[0] == "verify"] == [("verify", "act-2")]


def rollback(record: dict[str, Any], now_step: str = "network") -> dict[str, Any]:
    payload = {
        "uuid": UUID,
        "incident_id": "inc-1",
        "mode": "verify-failed",
        "action_record": record,
        "diagnosis": {"step": "network"},
        "verification": {"step": now_step},
    }
    return rollback_mod.rollback_step(None, payload, settings=Settings.from_env())  # type: ignore[arg-type]


RECORD = {
    "action_id": "act-2",
    "action_ids": ["act-1", "act-2"],
    "fixes": [{"fix": "add-sg-self-rule", "action_id": "act-1"}, {"fix": "create-vpc-endpoints", "action_id": "act-2"}],
    "remaining": [],
    "plan_status": "ok",
}


def test_a_failed_verification_rolls_back_every_fix_newest_first(fake: FakeEngine) -> None:
    out = rollback(RECORD)
    assert [c for c in fake.calls if c[0] == "rollback"] == [("rollback", "act-2"), ("rollback", "act-1")]
    assert out["rolled_back"] is True and out["removed"] == {"rules": ["act-2", "act-1"]}
    assert "All 2 changes were rolled back" in out["reason"] and out["kept"] == []


def test_fixes_that_moved_the_esm_stay_when_only_ticket_parts_remain(fake: FakeEngine) -> None:
    record = {**RECORD, "remaining": [{"fix": "ticket", "hypotheses": ["trust-policy"]}], "plan_status": "partial"}
    out = rollback({**record, "ticket_reason": "left for a person: trust-policy"})
    assert not [c for c in fake.calls if c[0] == "rollback"] and out["rolled_back"] is False
    assert [k["rollback"] for k in out["kept"]] == ["esm-medic rollback act-1", "esm-medic rollback act-2"]
    assert "esm-medic rollback act-2" in out["reason"] and "trust-policy" in out["reason"]


def test_fixes_are_kept_when_the_esm_now_gets_further(fake: FakeEngine) -> None:
    out = rollback(RECORD, now_step="authz")
    assert not [c for c in fake.calls if c[0] == "rollback"] and len(out["kept"]) == 2
    assert "gets further" in out["reason"]


def test_the_approval_request_shows_the_whole_plan_as_one_diff(fake: FakeEngine) -> None:
    from esm_medic.notify import build_message
    from esm_medic.notify.pages import render_approval_page

    fake.outcomes = {"create-vpc-endpoints": "approve"}
    plan = decide()["plan"]
    msg = build_message("pending-approval", {"uuid": UUID, "plan": plan})
    assert "[1. add-sg-self-rule] + add-sg-self-rule\n[2. create-vpc-endpoints] + create-vpc-endpoints" in msg.details
    page = render_approval_page({"uuid": UUID, "plan": plan, "fix": plan["fix"]}, action="/approvals/apr-1")
    assert "one diff for the whole plan" in page and "[2. create-vpc-endpoints] + create-vpc-endpoints" in page


def pending(d: Diagnosis, state: str) -> Diagnosis:
    d.findings[0].evidence = {"endpoints": {"sts": [{"endpoint_id": "vpce-1", "state": state}]}}
    return d


@pytest.mark.parametrize(
    ("states", "kept", "settling", "rediagnoses"),
    [
        (["pending", "pending", None], True, False, 3),  # became available on the third look: moved
        (["pending"] * 50, True, True, 4),  # still pending when the wait is over: kept, the verification judges it
        (["available"], False, False, 1),  # in place and still failing: changed nothing, rolled back
    ],
)
def test_a_fix_whose_resources_are_still_settling_is_waited_for_not_rolled_back(
    monkeypatch: pytest.MonkeyPatch, states: list[str | None], kept: bool, settling: bool, rediagnoses: int
) -> None:
    sg = plan_item(1, "create-vpc-endpoints", {"vpc_id": "vpc-1"}, "no-sg-self-rule")
    looks = iter(states)
    seen: list[int] = []
    undone: list[str] = []

    def rediagnose() -> Diagnosis:
        seen.append(1)
        state = next(looks)
        return diagnosis_obj([], failing=False) if state is None else pending(diagnosis_obj([]), state)

    monkeypatch.setattr(
        "esm_medic.remediate.engine.apply_fix", lambda *a, **k: {"status": "applied", "action_id": "act-1"}
    )
    monkeypatch.setattr(
        "esm_medic.remediate.engine.rollback", lambda aws, a, **k: undone.append(a) or {"status": "rolled-back"}
    )
    naps: list[float] = []
    out = plan_mod.apply_plan(
        None,  # type: ignore[arg-type]
        diagnosis_obj([sg]),
        rediagnose=rediagnose,
        settings=Settings.from_env(),
        sleep=naps.append,
        settle_seconds=3 * Settings.from_env().poll_seconds,
    )
    assert len(seen) == rediagnoses and len(naps) == rediagnoses - 1
    assert bool(out["applied"]) is kept and undone == ([] if kept else ["act-1"])
    assert bool(out["applied"] and out["applied"][0].get("settling")) is settling


def test_a_retried_remediation_finds_the_fixes_its_first_attempt_applied(monkeypatch: pytest.MonkeyPatch) -> None:
    """A task retried after a later fix failed finds the earlier fixes in place (noop): they come back from the
    incident's audit rows, so they are verified and rolled back with the rest; another incident's are not."""
    from esm_medic.remediate.records import ActionRecord

    def row(action_id: str, action: str, status: str, incident: str = "inc-1") -> ActionRecord:
        return ActionRecord(
            action_id=action_id, uuid=UUID, incident_id=incident, actor="x", action=action, status=status
        )

    rows = [
        row("act-old", "add-sg-self-rule", "applied", incident="inc-0"),
        row("act-1", "add-sg-self-rule", "applied"),
        row("act-2", "create-vpc-endpoints", "applied"),
        row("act-2", "create-vpc-endpoints", "rolled-back"),
    ]

    class Audit:
        def __init__(self, aws: Any, table: str) -> None:
            pass

        def rows_for(self, uuid: str) -> list[ActionRecord]:
            return rows

    monkeypatch.setattr(remediate_mod, "AuditLog", Audit)
    noop = [{"fix": "add-sg-self-rule", "hypotheses": ["a"]}, {"fix": "create-vpc-endpoints", "hypotheses": ["b"]}]
    found = remediate_mod._earlier(None, Settings.from_env(), UUID, "inc-1", noop)  # type: ignore[arg-type]
    assert [(f["fix"], f["action_id"], f["earlier"]) for f in found] == [("add-sg-self-rule", "act-1", True)]
    assert remediate_mod._earlier(None, Settings.from_env(), UUID, "inc-1", []) == []  # type: ignore[arg-type]


class EsmReads:
    """The adapter as verify_step uses it: the ESM item, and updates (re-enable)."""

    def __init__(self, state: str, result: str) -> None:
        self.item = {"UUID": UUID, "State": state, "LastProcessingResult": result, "StateTransitionReason": "User"}

    def call(self, service: str, operation: str, **kw: Any) -> dict[str, Any]:
        return dict(self.item)


@pytest.mark.parametrize(("state", "budget"), [("Enabled", 3), ("Enabling", 9)])
def test_a_stale_status_uses_the_normal_budget_and_a_settling_esm_at_most_three_times_it(
    fake: FakeEngine, state: str, budget: int
) -> None:
    """An ESM still showing its old error (the account looks fixed, the ESM has not reported since) is looked at
    ``max_attempts`` times, with one restart of polling; only Enabling / Updating looks are free, up to 3x."""
    old = "PROBLEM: Connection error. Please check your event source connection configuration."
    aws = EsmReads(state, old)
    prev: dict[str, Any] = {}
    record = {"action_ids": ["act-1", "act-2"], "action_id": "act-2"}
    for _ in range(1, 20):
        payload = {
            "uuid": UUID,
            "previous": prev,
            "diagnosis": {**DIAGNOSIS, "esm_status": {"State": "Enabled", "LastProcessingResult": old}},
            "action_record": record,
            "max_attempts": 3,
            "base_wait_seconds": 0,
            "max_wait_seconds": 0,
        }
        prev = verify_mod.verify_step(aws, payload, settings=Settings.from_env())  # type: ignore[arg-type]
        if prev["exhausted"]:
            break
    assert prev["attempts"] == budget and not prev["recovered"]
    assert [c for c in fake.calls if c[0] == "verify"] == [("verify", "act-2")]  # one verdict, on the newest fix
    assert len([c for c in fake.calls if c[0] == "restart"]) == (1 if state == "Enabled" else 0)


def test_no_fix_starts_after_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    started: list[str] = []
    monkeypatch.setattr(
        "esm_medic.remediate.engine.apply_fix",
        lambda aws, request, **k: started.append(request["root_cause"]["fix"]) or {"status": "applied"},
    )
    two = [plan_item(1, "add-sg-self-rule", {"group_id": "sg-1"}, "a"), plan_item(2, "create-vpc-endpoints", {}, "b")]
    out = plan_mod.apply_plan(
        None,  # type: ignore[arg-type]
        diagnosis_obj(two),
        rediagnose=lambda: diagnosis_obj(two),
        deadline=time.monotonic() - 1,
    )
    assert started == [] and [r["status"] for r in out["not_applied"]] == ["time-budget", "time-budget"]
    assert {r["fix"] for r in out["remaining"] if r.get("not_applied") == "time-budget"} == {
        "add-sg-self-rule",
        "create-vpc-endpoints",
    }
