"""Verify task: one look at the ESM (restart polling if needed); recovered / keep polling / exhausted."""

from __future__ import annotations

from typing import Any

from esm_medic.handlers._common import aws_for_step, count, lambda_entry


@lambda_entry("verify", schema="verify")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # imported on the first call: esm_medic.workflow and its logic cost ~90-250 ms at import (bench_coldstart)
    from esm_medic.workflow import verify_step

    result = verify_step(aws_for_step(event, "verify"), event)
    step = str((event.get("diagnosis") or {}).get("step") or "unknown")
    if result["recovered"]:
        count("Verified", step=step)
    elif result["exhausted"]:
        count("VerifyFailed", step=step)
    else:
        count("VerifyPending", step=step)
    return result
