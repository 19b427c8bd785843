"""Diagnose task: read-only diagnosis of the ESM's real network / auth path, made small for the state."""

from __future__ import annotations

from typing import Any

from esm_medic.handlers._common import aws_for_step, count, lambda_entry


@lambda_entry("diagnose", schema="diagnose")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # imported on the first call: esm_medic.workflow and its logic cost ~90-250 ms at import (bench_coldstart)
    from esm_medic.workflow import diagnose_step

    result = diagnose_step(aws_for_step(event, "diagnose"), event["uuid"])
    count("Diagnosed", step=result.step)
    return result.to_dict()
