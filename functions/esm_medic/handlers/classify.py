"""Classify task: validate / normalise the execution input and classify the ESM status text (catalogue).

With ``{"recheck": true, "input": <state>}`` (the ``Recheck`` state after a suspected failure's hold) it re-reads
the ESM through the adapter and classifies its status again (``persists`` or not)."""

from __future__ import annotations

from typing import Any

from esm_medic.handlers._common import InvalidInput, aws_for_step, count, lambda_entry, logger, payload_account


def _name_account(result: dict[str, Any], account: str | None) -> None:
    """The ESM's account rides in the classification, which every later task receives (None: the install's own)."""
    if account and isinstance(result.get("classification"), dict):
        result["classification"]["account"] = account
        result.setdefault("account", account)


@lambda_entry("classify", schema="classify")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # imported on the first call: esm_medic.workflow and its logic cost ~90-250 ms at import (bench_coldstart)
    from esm_medic.workflow import InputRejected, classify_step, recheck_step

    if event.get("recheck") is True:  # after a suspected failure's hold: read the ESM again, classify again
        rechecked = recheck_step(aws_for_step(event, "classify"), event["input"])
        count("HoldRechecks", step=str(rechecked.classification.get("step")), persists=str(rechecked.persists))
        out = rechecked.to_dict()
        _name_account(out, payload_account(event))
        return out
    try:
        result = classify_step(event)
    except InputRejected as exc:
        raise InvalidInput(f"classify: {exc.reason}") from None
    logger.set_correlation_id(result.uuid)
    c = result.classification
    count("Classified", step=str(c.get("step")), entry=str(c.get("entry") or "unknown"))
    out = result.to_dict()
    _name_account(out, payload_account(event))
    return out
