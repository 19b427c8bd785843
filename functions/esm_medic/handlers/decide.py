"""Decide task: claim the incident (ESM + root-cause fingerprint; a later execution joins the owner), then the
diagnosis' fix, its read-only plan, and the policy decision (mode, kill switch, budget, safety class,
verification history) -> route auto | approve | ticket | notify | skip | join."""

from __future__ import annotations

from typing import Any

from esm_medic.handlers._common import aws_for_step, count, lambda_entry


@lambda_entry("decide", schema="decide")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # imported on the first call: esm_medic.workflow and its logic cost ~90-250 ms at import (bench_coldstart)
    from esm_medic.workflow import decide_step

    result = decide_step(
        aws_for_step(event, "decide"),
        uuid=event["uuid"],
        incident_id=event["incident_id"],
        classification=event["classification"],
        diagnosis=event["diagnosis"],
        execution=str(event.get("execution") or ""),
        run=event.get("run") or {},
    )
    count("Decided", step=str(event["diagnosis"].get("step")), route=str(result["route"]))
    codes = (result.get("checks") or {}).get("codes") or []
    if "kill-switch" in codes:
        count("KillSwitchOn")  # alarmed: service dimension only
    if "budget" in codes:
        count("BudgetExhausted")
    return result
