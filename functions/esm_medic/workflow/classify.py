"""The ``classify`` step: validate / normalise the execution input, classify the status text."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from esm_medic.aws import is_not_found
from esm_medic.classify import classify
from esm_medic.workflow.common import InputRejected, obj, status_of
from esm_medic.workflow.event import normalise_event
from esm_medic.workflow.payloads import ClassifyResult, RecheckResult

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws

#: a transient error (the catalogue marks it) is given at least this long to clear by itself
TRANSIENT_HOLD_SECONDS = 300
#: the longest hold a workflow waits (ESM_MEDIC_MAX_HOLD_SECONDS; the local runner sets seconds)
MAX_HOLD_SECONDS = 3600

CLASSIFICATION_KEYS = (
    "entry",
    "step",
    "kind",
    "healthy",
    "title",
    "confidence",
    "auto_fixable",
    "fixable",
    "transient",
    "runbook",
    "field",
    "text",
    "params",
    "catalogue_version",
)


def compact_classification(c: Any) -> dict[str, Any]:
    d = c.to_dict() if hasattr(c, "to_dict") else dict(c)
    out = {k: d.get(k) for k in CLASSIFICATION_KEYS}
    out["text"] = str(out.get("text") or "")[:1024]
    out["params"] = dict(out.get("params") or {})
    return out


def classify_status(status: Mapping[str, Any], uuid: str = "") -> dict[str, Any]:
    """Classify an ESM status dict (the same way as an ESM item)."""

    item = {"UUID": uuid, **status_of(status)}
    return compact_classification(classify(item))


def classify_step(payload: Mapping[str, Any]) -> ClassifyResult:
    """Classify task: ``{"input": <execution state>}`` -> the normalised input + ``run`` + ``classification``."""
    started = time.perf_counter()
    state = payload.get("input")
    if not isinstance(state, Mapping):
        raise InputRejected("classify: 'input' must be the execution state object")
    run = obj(state, "run")
    source = {k: v for k, v in state.items() if k != "run"}
    wi = normalise_event(source)
    classification = classify_status(wi.status, wi.uuid)
    classification["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 2)
    hold = hold_for(wi.hold_seconds, bool(classification.get("transient"))) if wi.phase == "suspected" else 0
    return ClassifyResult.of(wi, run=run, classification=classification, hold=hold)


def hold_for(hold_seconds: int, transient: bool) -> int:
    """How long a suspected failure is waited out: the detection's hold, a transient error's longer wait, capped
    by ``ESM_MEDIC_MAX_HOLD_SECONDS``."""
    try:
        cap = int(os.environ.get("ESM_MEDIC_MAX_HOLD_SECONDS") or MAX_HOLD_SECONDS)
    except ValueError:
        cap = MAX_HOLD_SECONDS
    wanted = max(hold_seconds, TRANSIENT_HOLD_SECONDS) if transient else hold_seconds
    return max(0, min(wanted, cap))


def recheck_step(aws: Aws, state: Mapping[str, Any]) -> RecheckResult:
    """After the hold: re-read the ESM and classify its status again. ``persists`` is False when the ESM is now
    Enabled with a healthy status (or gone); otherwise the fresh status and classification go on to the diagnosis.
    """
    started = time.perf_counter()
    uuid = str(state.get("uuid") or "")
    try:
        item = aws.call("lambda", "get_event_source_mapping", UUID=uuid)
    except Exception as exc:
        if not is_not_found(exc):
            raise
        return RecheckResult(
            persists=False,
            status=status_of(obj(state, "status")),
            classification=obj(state, "classification"),
            reason="The ESM no longer exists; nothing to do.",
            elapsed_ms=round((time.perf_counter() - started) * 1000, 1),
        )
    status = status_of(item)
    classification = classify_status(status, uuid)
    recovered = status["State"] == "Enabled" and bool(classification.get("healthy"))
    hold = int(state.get("hold_seconds") or 0)
    reason = (
        f"Transient: the ESM recovered by itself within the {hold} s hold (now {status['State']}, "
        f"{status['LastProcessingResult'] or 'no processing result'}); nothing was changed."
        if recovered
        else f"The failure persisted through the {hold} s hold: {status['LastProcessingResult'][:300]}"
    )
    return RecheckResult(
        persists=not recovered,
        status=status,
        classification=classification,
        reason=reason,
        elapsed_ms=round((time.perf_counter() - started) * 1000, 1),
    )
