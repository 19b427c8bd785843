"""The sweeper's pure decision logic: status assessment, transitions, hold time, flaps, incidents, outbox."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esm_medic.detect import sweeper as sw
from esm_medic.detect.decide import decide_from_log
from esm_medic.detect.snapshot import KIND_ERROR, KIND_OK, Snapshot, Status, iso
from esm_medic.esm import EsmConfig

UUID = "6f1c2b7e-3d4a-4e5f-8a9b-0c1d2e3f4a5b"
CLUSTER = "arn:aws:kafka:us-east-1:123456789012:cluster/orders/1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d-3"
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
OK = ("Enabled", "USER_INITIATED", "OK")
IDLE = ("Enabled", "USER_INITIATED", "No records processed")
AUTHZ = ("Enabled", "USER_INITIATED", "PROBLEM: Cluster failed to authorize Lambda.")
SASL = ("Enabled", "USER_INITIATED", "PROBLEM: SASL authentication failed.")
NEW_TEXT = ("Enabled", "USER_INITIATED", "PROBLEM: something nobody has seen before")
USER_DISABLED = ("Disabled", "USER_INITIATED", "OK")
SYS_DISABLED = ("Disabled", "EVENT_SOURCE_AUTHN_ERROR", "PROBLEM: SASL authentication failed.")
UPDATING = ("Updating", "USER_INITIATED", "OK")


def esm(status: tuple[str, str, str], uuid: str = UUID) -> EsmConfig:
    state, reason, result = status
    return EsmConfig.from_api(
        {
            "UUID": uuid,
            "EventSourceArn": CLUSTER,
            "FunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:orders-consumer",
            "State": state,
            "StateTransitionReason": reason,
            "LastProcessingResult": result,
        }
    )


def S(hold: int = 0, **kw: object) -> sw.SweepSettings:
    """Settings with the hold done by the detector (the mode without early emission)."""
    kw.setdefault("early_emit", False)
    return sw.SweepSettings(hold_seconds=hold, **kw)  # type: ignore[arg-type]


def E(hold: int = 120) -> sw.SweepSettings:
    """Settings with early emission: a new error goes out at once as "suspected"; the workflow holds."""
    return sw.SweepSettings(hold_seconds=hold, early_emit=True)


def apply(snap: Snapshot | None, d: sw.Decision) -> Snapshot | None:
    """What the store would hold after the decision's write (and, for an emitted event, its outbox cleared)."""
    if d.snapshot is None:
        return snap
    new = d.snapshot
    if new.outbox:
        new = new.evolve(version=new.version + 1, outbox="", outbox_at="")
    return new


# ------------------------------------------------------------------ assess
@pytest.mark.parametrize(
    ("status", "kind", "step"),
    [
        (OK, KIND_OK, "none"),
        (IDLE, KIND_OK, "none"),
        (AUTHZ, KIND_ERROR, "authz"),
        (NEW_TEXT, KIND_ERROR, "unknown"),  # not in the catalogue: an error (a ticket teaches the catalogue)
        (USER_DISABLED, KIND_OK, "none"),
        (SYS_DISABLED, KIND_ERROR, "auth"),
        (("Disabled", "", "OK"), KIND_ERROR, "unknown"),  # disabled, and not by a user
        (UPDATING, sw.TRANSITIONAL, "none"),
        (("Creating", "", ""), sw.TRANSITIONAL, "none"),
        (("Enabled", "USER_INITIATED", ""), KIND_OK, "none"),  # nothing reported yet is not an error
    ],
)
def test_assess(status: tuple[str, str, str], kind: str, step: str) -> None:
    a = sw.assess(Status.of(*status))
    assert (a.kind, a.step) == (kind, step)


def test_assess_folds_healthy_texts_and_whitespace() -> None:
    assert sw.assess(Status.of(*OK)).key == sw.assess(Status.of(*IDLE)).key
    spaced = Status.of("Enabled", " USER_INITIATED ", "PROBLEM:  Cluster failed\n to authorize Lambda.")
    assert sw.assess(spaced).key == sw.assess(Status.of(*AUTHZ)).key
    assert sw.assess(Status.of(*AUTHZ)).key != sw.assess(Status.of(*SASL)).key


# ------------------------------------------------------------------ decide
def test_first_sighting_healthy_is_recorded_without_event() -> None:
    d = sw.decide(None, esm(OK), now=T0, settings=S())
    assert d.action == sw.FIRST_SEEN and d.detail is None and d.first_sighting
    assert d.snapshot is not None and d.snapshot.version == 1 and d.snapshot.kind == KIND_OK
    assert d.expected_version == 0


def test_born_broken_is_a_transition_from_unknown() -> None:
    d = sw.decide(None, esm(AUTHZ), now=T0, settings=S())
    assert d.action == sw.PROMOTE and d.detail is not None
    assert d.detail["old"] is None and d.detail["recovered"] is False
    assert d.detail["classification"]["step"] == "authz"
    assert d.snapshot is not None and d.snapshot.incident_id == d.detail["incident_id"]
    assert json.loads(d.snapshot.outbox) == d.detail


def test_unchanged_writes_nothing() -> None:
    snap = apply(None, sw.decide(None, esm(OK), now=T0, settings=S()))
    for status in (OK, IDLE):  # a healthy text changing to another healthy text is not a change
        d = sw.decide(snap, esm(status), now=T0 + timedelta(minutes=1), settings=S())
        assert d.action == sw.UNCHANGED and d.snapshot is None and d.detail is None


def test_transition_emits_once_then_nothing() -> None:
    snap = apply(None, sw.decide(None, esm(OK), now=T0, settings=S()))
    d = sw.decide(snap, esm(AUTHZ), now=T0 + timedelta(minutes=1), settings=S())
    assert d.action == sw.PROMOTE and d.detail is not None
    assert d.detail["old"]["LastProcessingResult"] == "OK"
    assert d.detail["event_id"] == f"{UUID}:v{d.snapshot.version}"  # type: ignore[union-attr]
    snap = apply(snap, d)
    d2 = sw.decide(snap, esm(AUTHZ), now=T0 + timedelta(minutes=2), settings=S())
    assert d2.action == sw.UNCHANGED


def test_hold_time_then_emit_with_since_first_seen() -> None:
    snap = apply(None, sw.decide(None, esm(OK), now=T0, settings=S(120)))
    d = sw.decide(snap, esm(AUTHZ), now=T0 + timedelta(seconds=60), settings=S(120))
    assert d.action == sw.PENDING and d.detail is None
    snap = apply(snap, d)
    d = sw.decide(snap, esm(AUTHZ), now=T0 + timedelta(seconds=120), settings=S(120))
    assert d.action == sw.HOLD and d.snapshot is None  # held 60 s of 120: no write
    d = sw.decide(snap, esm(AUTHZ), now=T0 + timedelta(seconds=180), settings=S(120))
    assert d.action == sw.PROMOTE and d.detail is not None
    assert d.detail["since"] == iso(T0 + timedelta(seconds=60))


def test_flap_back_is_suppressed() -> None:
    snap = apply(None, sw.decide(None, esm(OK), now=T0, settings=S(120)))
    snap = apply(snap, sw.decide(snap, esm(AUTHZ), now=T0 + timedelta(seconds=60), settings=S(120)))
    d = sw.decide(snap, esm(IDLE), now=T0 + timedelta(seconds=120), settings=S(120))
    assert d.action == sw.DROP_PENDING and d.suppressed == 1 and d.detail is None
    snap = apply(snap, d)
    assert snap is not None and snap.pending is None


def test_flap_to_another_error_restarts_the_hold() -> None:
    snap = apply(None, sw.decide(None, esm(OK), now=T0, settings=S(120)))
    snap = apply(snap, sw.decide(snap, esm(AUTHZ), now=T0 + timedelta(seconds=60), settings=S(120)))
    d = sw.decide(snap, esm(SASL), now=T0 + timedelta(seconds=200), settings=S(120))
    assert d.action == sw.PENDING and d.suppressed == 1
    assert d.snapshot is not None and d.snapshot.pending_since == iso(T0 + timedelta(seconds=200))


def test_recovery_closes_the_incident_and_a_new_error_opens_another() -> None:
    snap = apply(None, sw.decide(None, esm(OK), now=T0, settings=S()))
    err = sw.decide(snap, esm(AUTHZ), now=T0 + timedelta(minutes=1), settings=S())
    snap = apply(snap, err)
    incident = err.detail["incident_id"]  # type: ignore[index]
    rec = sw.decide(snap, esm(OK), now=T0 + timedelta(minutes=5), settings=S())
    assert rec.action == sw.PROMOTE and rec.detail is not None
    assert rec.detail["recovered"] is True and rec.detail["incident_id"] == incident
    assert rec.detail["classification"]["step"] == "none"
    snap = apply(snap, rec)
    assert snap is not None and snap.incident_id == "" and snap.last_incident_id == incident
    again = sw.decide(snap, esm(SASL), now=T0 + timedelta(minutes=9), settings=S())
    assert again.detail is not None and again.detail["incident_id"] != incident


def test_error_to_other_error_keeps_the_incident() -> None:
    snap = apply(None, sw.decide(None, esm(AUTHZ), now=T0, settings=S()))
    d = sw.decide(snap, esm(SASL), now=T0 + timedelta(minutes=1), settings=S())
    assert d.action == sw.PROMOTE and d.detail is not None
    assert d.detail["incident_id"] == snap.incident_id  # type: ignore[union-attr]
    assert d.detail["recovered"] is False


def test_state_only_change_of_a_broken_esm_is_quiet() -> None:
    snap = apply(None, sw.decide(None, esm(AUTHZ), now=T0, settings=S()))
    disabled = ("Disabled", "USER_INITIATED", AUTHZ[2])
    d = sw.decide(snap, esm(disabled), now=T0 + timedelta(minutes=1), settings=S())
    assert d.action == sw.QUIET and d.detail is None and d.snapshot is not None
    assert d.snapshot.incident_id == snap.incident_id  # type: ignore[union-attr]


def test_user_disabling_a_healthy_esm_is_quiet() -> None:
    snap = apply(None, sw.decide(None, esm(OK), now=T0, settings=S()))
    d = sw.decide(snap, esm(USER_DISABLED), now=T0 + timedelta(minutes=1), settings=S())
    assert d.action == sw.QUIET and d.detail is None


def test_disabled_by_the_system_is_an_error() -> None:
    snap = apply(None, sw.decide(None, esm(OK), now=T0, settings=S()))
    d = sw.decide(snap, esm(SYS_DISABLED), now=T0 + timedelta(minutes=1), settings=S())
    assert d.action == sw.PROMOTE and d.detail is not None and d.detail["new"]["State"] == "Disabled"


def test_transitional_states_are_left_to_the_watch() -> None:
    snap = apply(None, sw.decide(None, esm(AUTHZ), now=T0, settings=S()))
    for state in ("Creating", "Enabling", "Updating", "Disabling", "Deleting"):
        d = sw.decide(snap, esm((state, "USER_INITIATED", "OK")), now=T0 + timedelta(minutes=1), settings=S())
        assert d.action == sw.TRANSITIONAL and d.snapshot is None
    assert sw.decide(None, esm(UPDATING), now=T0, settings=S()).action == sw.TRANSITIONAL


def test_outbox_is_left_to_its_writer_then_resent_after_the_grace_time() -> None:
    d = sw.decide(None, esm(AUTHZ), now=T0, settings=S())
    snap = d.snapshot  # written with its outbox, delivery not confirmed
    assert snap is not None and snap.outbox
    busy = sw.decide(snap, esm(AUTHZ), now=T0 + timedelta(seconds=30), settings=S())
    assert busy.action == sw.OUTBOX_BUSY and busy.snapshot is None
    late = sw.decide(snap, esm(AUTHZ), now=T0 + timedelta(seconds=301), settings=S())
    assert late.action == sw.RESEND and late.detail == d.detail
    assert late.snapshot is not None and late.snapshot.version == snap.version + 1


def test_gc_due_once_per_window() -> None:
    s = S(interval_seconds=60, gc_every_seconds=600)
    base = datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)
    due = [sw.gc_due(base + timedelta(minutes=m), s) for m in range(20)]
    assert due.count(True) == 2 and due[0] and due[10]
    assert sw.gc_due(base, S(gc_every_seconds=0))


def test_settings_from_env_and_errors() -> None:
    s = sw.SweepSettings.from_env(
        {"ESM_MEDIC_SWEEP_HOLD_SECONDS": "0", "ESM_MEDIC_EVENT_BUS": "esm-bus", "ESM_MEDIC_SWEEP_CONFIRM": "false"}
    )
    assert (s.hold_seconds, s.event_bus, s.confirm_with_get) == (0, "esm-bus", False)
    assert sw.SweepSettings.from_env({}).hold_seconds == 120
    with pytest.raises(ValueError, match="ESM_MEDIC_SWEEP_HOLD_SECONDS"):
        sw.SweepSettings.from_env({"ESM_MEDIC_SWEEP_HOLD_SECONDS": "soon"})
    with pytest.raises(ValueError, match="ESM_MEDIC_SWEEP_CONFIRM"):
        sw.SweepSettings.from_env({"ESM_MEDIC_SWEEP_CONFIRM": "maybe"})


# ------------------------------------------------------------------ property: any status history
STATUSES = [OK, IDLE, AUTHZ, SASL, NEW_TEXT, USER_DISABLED, SYS_DISABLED, UPDATING]


@settings(max_examples=150, deadline=None)
@given(
    history=st.lists(st.tuples(st.sampled_from(STATUSES), st.integers(min_value=1, max_value=200)), max_size=25),
    hold=st.sampled_from([0, 60, 120]),
)
def test_any_history_emits_consistent_events(history: list[tuple[tuple[str, str, str], int]], hold: int) -> None:
    """Whatever the ESM does: an event is emitted only when its error-ness or its error changed and the new status
    held; recoveries follow errors and carry their incident; statuses never emit twice in a row."""
    snap: Snapshot | None = None
    now = T0
    emitted: list[dict[str, object]] = []
    for status, gap in history:
        now += timedelta(seconds=gap)
        d = sw.decide(snap, esm(status), now=now, settings=S(hold))
        if d.detail is not None:
            emitted.append(dict(d.detail))
        snap = apply(snap, d)
    open_incident = None
    last_new = None
    for e in emitted:
        new = e["new"]
        assert new != last_new  # never the same status twice in a row
        last_new = new
        if e["recovered"]:
            assert open_incident is not None and e["incident_id"] == open_incident
            open_incident = None
        else:
            assert e["classification"]["step"] != "none"  # type: ignore[index]
            if open_incident is not None:
                assert e["incident_id"] == open_incident
            open_incident = e["incident_id"]
    if snap is not None and snap.kind == KIND_ERROR:
        assert snap.incident_id == open_incident


# ---------------------------------------------------------------------------------- early emission ("suspected")
def test_early_emit_sends_a_new_error_at_once_as_suspected_with_the_hold() -> None:
    snap = apply(None, sw.decide(None, esm(OK), now=T0, settings=E()))
    d = sw.decide(snap, esm(AUTHZ), now=T0 + timedelta(seconds=15), settings=E())
    assert d.action == sw.PROMOTE and d.detail is not None
    assert d.detail["phase"] == "suspected" and d.detail["holdSeconds"] == 120
    assert d.detail["recovered"] is False and d.detail["classification"]["step"] != "none"


def test_early_emit_a_recovery_inside_the_hold_is_emitted_and_counted_as_a_flap() -> None:
    snap = apply(None, sw.decide(None, esm(OK), now=T0, settings=E()))
    err = sw.decide(snap, esm(AUTHZ), now=T0 + timedelta(seconds=15), settings=E())
    snap = apply(snap, err)
    rec = sw.decide(snap, esm(OK), now=T0 + timedelta(seconds=45), settings=E())
    assert rec.action == sw.PROMOTE and rec.detail is not None
    assert rec.detail["recovered"] is True and rec.detail["phase"] == "confirmed" and "holdSeconds" not in rec.detail
    assert rec.detail["incident_id"] == err.detail["incident_id"]  # type: ignore[index]
    assert rec.suppressed == 1
    later = sw.decide(snap, esm(OK), now=T0 + timedelta(seconds=600), settings=E())
    assert later.detail is not None and later.detail["recovered"] is True and later.suppressed == 0


def test_early_emit_first_sighting_broken_is_suspected_and_hold_zero_is_confirmed() -> None:
    d = sw.decide(None, esm(AUTHZ), now=T0, settings=E())
    assert d.action == sw.PROMOTE and d.detail is not None and d.detail["phase"] == "suspected"
    z = sw.decide(None, esm(AUTHZ), now=T0, settings=E(0))
    assert z.detail is not None and z.detail["phase"] == "confirmed" and "holdSeconds" not in z.detail


def test_early_emit_is_the_default() -> None:
    assert sw.SweepSettings.from_env({}).early_emit is True
    assert sw.SweepSettings.from_env({"ESM_MEDIC_SWEEP_EARLY_EMIT": "false"}).early_emit is False


# ---------------------------------------------------------------------------------- the log path (pure)
def test_log_record_before_the_api_uses_the_record_text_and_marks_its_origin() -> None:
    snap = apply(None, sw.decide(None, esm(OK), now=T0, settings=E()))
    d = decide_from_log(
        snap, esm(OK), "Timeout expired while fetching topic metadata", now=T0, since=T0, settings=E(), evidence={}
    )
    assert d.action == sw.PROMOTE and d.detail is not None and d.detail["trigger"] == "esm-log"
    assert d.snapshot is not None and d.snapshot.status_origin == "esm-log"
    assert d.detail["new"]["LastProcessingResult"] == "Timeout expired while fetching topic metadata"


def test_log_record_after_the_sweep_saw_the_error_is_a_duplicate() -> None:
    snap = apply(None, sw.decide(None, esm(OK), now=T0, settings=E()))
    snap = apply(snap, sw.decide(snap, esm(AUTHZ), now=T0, settings=E()))
    d = decide_from_log(snap, esm(AUTHZ), "whatever", now=T0, since=T0, settings=E(), evidence={})
    assert d.action == sw.UNCHANGED and d.detail is None


def test_log_record_when_the_api_already_shows_the_error_uses_the_api_status() -> None:
    d = decide_from_log(None, esm(AUTHZ), "Not authorized", now=T0, since=T0, settings=E(), evidence={"x": 1})
    assert d.detail is not None and d.detail["new"]["LastProcessingResult"] == AUTHZ[2]
    assert d.snapshot is not None and d.snapshot.status_origin == "" and d.detail["evidence"] == {"x": 1}
