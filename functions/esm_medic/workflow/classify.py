"""The ``classify`` step: validate / normalise the execution input, classify the status text."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from esm_medic.classify import classify
from esm_medic.workflow.common import InputRejected, obj, status_of
from esm_medic.workflow.event import normalise_event

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


def classify_step(payload: Mapping[str, Any]) -> dict[str, Any]:
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
    return {
        "uuid": wi.uuid,
        "incident_id": wi.incident_id,
        "fingerprint": wi.fingerprint,
        "trigger": wi.trigger,
        "status": wi.status,
        "event": wi.event,
        "observed_at": wi.observed_at,
        "run": dict(run),
        "classification": classification,
    }
