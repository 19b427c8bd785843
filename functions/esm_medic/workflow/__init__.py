"""The remediation workflow's logic: what each Step Functions task does, as plain functions over the adapter.

The state machine (``statemachine/remediate.asl.json``) calls one thin handler per step
(``esm_medic.handlers.<step>``); each handler validates its event and calls one function of one module here:

=============  ============================================================================================
start          :func:`start.start_workflow` - EventBridge target: normalise the event (:mod:`.event`), derive the
               execution name from the ESM uuid + status fingerprint, ``StartExecution``; a duplicate event
               meets ``ExecutionAlreadyExists`` and is reported as a duplicate (nothing else happens).
classify       :func:`classify.classify_step` - validate / normalise the execution input, classify the status text.
diagnose       :func:`diagnose.diagnose_step` - :func:`esm_medic.diagnose.diagnose`, made small for the state.
decide         :func:`decide.decide_step` - claim the incident (:mod:`.claim`: one per ESM and root cause, later
               executions join it), the fix the diagnosis names, its plan, the policy decision -> route.
remediate      :func:`remediate.remediate_step` - apply the plan (once per incident + plan fingerprint), restart.
verify         :func:`verify.verify_step` - re-read the ESM, restart polling if needed, recovered / retry / give up.
rollback       :func:`rollback.rollback_step` - undo what THIS execution applied when the ESM is no better.
record         :func:`record.record_outcome` - the outcome (STATE record + audit entry, with timings); on the
               failure path it opens the ticket itself when none was opened.
=============  ============================================================================================

Notifications and tickets are the ``notify`` / ``ticket`` handlers' (``esm_medic.notify``); the workflow passes
them the root-cause fingerprint. :mod:`.common` holds outcomes, routes, limits, naming, the errors the state
machine routes by name and the payload accessors; :mod:`.payloads` the typed step payloads.

Routes (``decision.route``): ``auto`` (apply now), ``approve`` (wait for a human), ``ticket`` (a human fixes it),
``notify`` (tell, change nothing; also shadow mode), ``skip`` (mode off, ESM gone), ``join`` (another execution
owns this ESM and cause). Outcomes: :data:`common.OUTCOMES`.

Names are re-exported here lazily (PEP 562): a handler that needs one step does not import the others' logic
(the diagnosis and the engine cost hundreds of ms at import, measured by ``bench/bench_coldstart.py``).
Everything reaches AWS through :class:`esm_medic.aws.Aws`; nothing here imports handlers, the CLI or the sandbox.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.workflow.claim import (
        claim_incident,
        claim_ttl,
        finish_claim,
        finish_claims_of,
        root_cause_fingerprint,
        started_epoch,
    )
    from esm_medic.workflow.classify import (
        CLASSIFICATION_KEYS,
        MAX_HOLD_SECONDS,
        TRANSIENT_HOLD_SECONDS,
        classify_status,
        classify_step,
        compact_classification,
        hold_for,
        recheck_step,
    )
    from esm_medic.workflow.common import (
        _UUID_RE,
        ACTION_ID_IN_ERROR,
        ACTOR,
        CLAIM_COOLDOWN_SECONDS,
        CLAIM_MARGIN_SECONDS,
        DUPLICATE_SKEW_SECONDS,
        EXECUTION_NAME_MAX,
        FINAL_OUTCOMES,
        INCIDENT_ID_RE,
        INTERMEDIATE_OUTCOMES,
        MAX_DIAGNOSIS_BYTES,
        MAX_TEXT,
        OUTCOME_SK_PREFIX,
        OUTCOME_TTL_DAYS,
        OUTCOMES,
        POLICY_ROUTE,
        ROUTES,
        STATUS_FIELDS,
        TRANSITIONAL_STATES,
        InputRejected,
        LockConflict,
        NotApplied,
        RemediationFailed,
        StepFailed,
        TableMissing,
        dig,
        execution_name,
        obj,
        safe_incident_id,
        sanitize_execution_name,
        status_fingerprint,
        status_of,
    )
    from esm_medic.workflow.decide import (
        decide_step,
        fix_request,
    )
    from esm_medic.workflow.diagnose import (
        compact_diagnosis,
        diagnose_step,
        esm_status_from,
    )
    from esm_medic.workflow.event import (
        compact_event,
        normalise_event,
    )
    from esm_medic.workflow.payloads import (
        RouteDecision,
        WorkflowInput,
    )
    from esm_medic.workflow.record import (
        ENDED_BADLY,
        EXECUTION_ENDED,
        STEP_KEYS,
        execution_ended,
        failure_summary,
        final_outcome_exists,
        open_failure_ticket,
        outcome_record,
        outcomes,
        record_outcome,
        timings,
        write_outcome,
    )
    from esm_medic.workflow.remediate import (
        remediate_step,
    )
    from esm_medic.workflow.rollback import (
        failed_actions,
        is_better,
        left_behind,
        rollback_step,
    )
    from esm_medic.workflow.start import (
        execution_arn,
        start_workflow,
    )
    from esm_medic.workflow.verify import (
        verify_step,
    )

#: public name -> the module of this package that defines it
_EXPORTS: dict[str, str] = {
    "started_epoch": "claim",
    "finish_claims_of": "claim",
    "INTERMEDIATE_OUTCOMES": "common",
    "MAX_HOLD_SECONDS": "classify",
    "TRANSIENT_HOLD_SECONDS": "classify",
    "hold_for": "classify",
    "recheck_step": "classify",
    "OUTCOMES": "common",
    "FINAL_OUTCOMES": "common",
    "ROUTES": "common",
    "CLAIM_MARGIN_SECONDS": "common",
    "CLAIM_COOLDOWN_SECONDS": "common",
    "POLICY_ROUTE": "common",
    "EXECUTION_NAME_MAX": "common",
    "STATUS_FIELDS": "common",
    "MAX_TEXT": "common",
    "MAX_DIAGNOSIS_BYTES": "common",
    "OUTCOME_TTL_DAYS": "common",
    "OUTCOME_SK_PREFIX": "common",
    "ACTOR": "common",
    "INCIDENT_ID_RE": "common",
    "_UUID_RE": "common",
    "TRANSITIONAL_STATES": "common",
    "DUPLICATE_SKEW_SECONDS": "common",
    "InputRejected": "common",
    "status_of": "common",
    "status_fingerprint": "common",
    "sanitize_execution_name": "common",
    "execution_name": "common",
    "safe_incident_id": "common",
    "StepFailed": "common",
    "NotApplied": "common",
    "RemediationFailed": "common",
    "TableMissing": "common",
    "LockConflict": "common",
    "ACTION_ID_IN_ERROR": "common",
    "obj": "common",
    "dig": "common",
    "WorkflowInput": "payloads",
    "RouteDecision": "payloads",
    "compact_event": "event",
    "normalise_event": "event",
    "start_workflow": "start",
    "execution_arn": "start",
    "CLASSIFICATION_KEYS": "classify",
    "compact_classification": "classify",
    "classify_status": "classify",
    "classify_step": "classify",
    "esm_status_from": "diagnose",
    "compact_diagnosis": "diagnose",
    "diagnose_step": "diagnose",
    "root_cause_fingerprint": "claim",
    "claim_ttl": "claim",
    "claim_incident": "claim",
    "finish_claim": "claim",
    "fix_request": "decide",
    "decide_step": "decide",
    "remediate_step": "remediate",
    "verify_step": "verify",
    "is_better": "rollback",
    "failed_actions": "rollback",
    "left_behind": "rollback",
    "rollback_step": "rollback",
    "STEP_KEYS": "record",
    "failure_summary": "record",
    "timings": "record",
    "outcome_record": "record",
    "open_failure_ticket": "record",
    "record_outcome": "record",
    "write_outcome": "record",
    "outcomes": "record",
    "EXECUTION_ENDED": "record",
    "ENDED_BADLY": "record",
    "final_outcome_exists": "record",
    "execution_ended": "record",
}
__all__ = [
    "ACTION_ID_IN_ERROR",
    "ACTOR",
    "CLAIM_COOLDOWN_SECONDS",
    "CLAIM_MARGIN_SECONDS",
    "CLASSIFICATION_KEYS",
    "DUPLICATE_SKEW_SECONDS",
    "ENDED_BADLY",
    "EXECUTION_ENDED",
    "EXECUTION_NAME_MAX",
    "FINAL_OUTCOMES",
    "INCIDENT_ID_RE",
    "INTERMEDIATE_OUTCOMES",
    "MAX_DIAGNOSIS_BYTES",
    "MAX_HOLD_SECONDS",
    "MAX_TEXT",
    "OUTCOMES",
    "OUTCOME_SK_PREFIX",
    "OUTCOME_TTL_DAYS",
    "POLICY_ROUTE",
    "ROUTES",
    "STATUS_FIELDS",
    "STEP_KEYS",
    "TRANSIENT_HOLD_SECONDS",
    "TRANSITIONAL_STATES",
    "_UUID_RE",
    "InputRejected",
    "LockConflict",
    "NotApplied",
    "RemediationFailed",
    "RouteDecision",
    "StepFailed",
    "TableMissing",
    "WorkflowInput",
    "claim_incident",
    "claim_ttl",
    "classify_status",
    "classify_step",
    "compact_classification",
    "compact_diagnosis",
    "compact_event",
    "decide_step",
    "diagnose_step",
    "dig",
    "esm_status_from",
    "execution_arn",
    "execution_ended",
    "execution_name",
    "failed_actions",
    "failure_summary",
    "final_outcome_exists",
    "finish_claim",
    "finish_claims_of",
    "fix_request",
    "hold_for",
    "is_better",
    "left_behind",
    "normalise_event",
    "obj",
    "open_failure_ticket",
    "outcome_record",
    "outcomes",
    "recheck_step",
    "record_outcome",
    "remediate_step",
    "rollback_step",
    "root_cause_fingerprint",
    "safe_incident_id",
    "sanitize_execution_name",
    "start_workflow",
    "started_epoch",
    "status_fingerprint",
    "status_of",
    "timings",
    "verify_step",
    "write_outcome",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'esm_medic.workflow' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"esm_medic.workflow.{module}"), name)
    globals()[name] = value
    return value
