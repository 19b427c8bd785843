"""The ``diagnose`` step: the read-only diagnosis, made small for the state."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from esm_medic.diagnose import DiagnoseError, EsmNotFound, NotKafkaEsm, diagnose
from esm_medic.workflow.common import MAX_DIAGNOSIS_BYTES, StepFailed, obj, status_of
from esm_medic.workflow.payloads import DiagnosisResult

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws


def _json_size(obj: Any) -> int:
    return len(json.dumps(obj, default=str, separators=(",", ":")))


def esm_status_from(esm: Mapping[str, Any]) -> dict[str, str]:
    """The status fields of an ESM item (API keys) or of the diagnosis' ESM summary (snake_case keys)."""
    return status_of(
        {
            "State": esm.get("State") or esm.get("state"),
            "StateTransitionReason": esm.get("StateTransitionReason") or esm.get("state_transition_reason"),
            "LastProcessingResult": esm.get("LastProcessingResult") or esm.get("last_processing_result"),
        }
    )


def compact_diagnosis(d: Mapping[str, Any]) -> DiagnosisResult:
    """The diagnosis as the state carries it: no duplicate classification, findings kept, evidence clipped when
    the whole would be large; ``esm_status`` (the status when diagnosed) and ``function_arn`` always present."""
    esm = obj(d, "esm")
    out = DiagnosisResult(
        healthy=bool(d.get("healthy")),
        state=str(d.get("state") or ""),
        step=str(d.get("step") or "unknown"),
        root_cause=dict(d.get("root_cause") or {}),
        findings=[dict(f) for f in d.get("findings") or [] if isinstance(f, Mapping)],
        network=d.get("network"),
        esm_status=esm_status_from(esm),
        function_arn=str(esm.get("function") or esm.get("FunctionArn") or ""),
        esm=esm,
        api_calls=int(d.get("api_calls") or 0),
        hypotheses=[dict(h) for h in d.get("hypotheses") or [] if isinstance(h, Mapping)],
        plan=[dict(p) for p in d.get("plan") or [] if isinstance(p, Mapping)],
    )
    if _json_size(out.to_dict()) > MAX_DIAGNOSIS_BYTES:
        for f in out.findings:
            f["evidence"] = {"clipped": True}
    if _json_size(out.to_dict()) > MAX_DIAGNOSIS_BYTES:
        out.findings = [f for f in out.findings if f.get("status") in ("fail", "unknown")][:50]
    return out


def _gone(uuid: str, state: str, summary: str) -> DiagnosisResult:
    return compact_diagnosis(
        {
            "healthy": False,
            "state": state,
            "step": "unknown",
            "root_cause": {
                "id": "esm-deleted" if state == "Deleted" else "not-kafka",
                "summary": summary,
                "step": "unknown",
                "fix": "ticket",
                "fix_params": {},
                "confidence": 1.0,
                "evidence": [],
            },
            "esm": {"uuid": uuid, "state": state},
        }
    )


def diagnose_step(aws: Aws, uuid: str) -> DiagnosisResult:
    """Diagnose task: read-only diagnosis. An ESM that no longer exists gives ``state: "Deleted"`` and one that is
    not a Kafka ESM ``state: "NotKafka"`` (the decision then skips); a read throttled past the adapter's retries
    raises :class:`StepFailed` with ``throttled``."""

    started = time.perf_counter()
    try:
        out = compact_diagnosis(diagnose(aws, uuid).to_dict())
    except EsmNotFound as exc:
        out = _gone(uuid, "Deleted", f"the event source mapping no longer exists ({exc})")
    except NotKafkaEsm as exc:
        out = _gone(uuid, "NotKafka", str(exc))
    except DiagnoseError as exc:
        raise StepFailed(f"diagnosis could not start: {exc}", throttled="throttl" in str(exc).lower()) from exc
    out.elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    return out
