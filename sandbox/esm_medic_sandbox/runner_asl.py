"""The remediation state machine's ASL as the local runner deploys it: the file infra reads, its ``${...}``
DefinitionSubstitutions, and (local runs only) Retry intervals capped so fault tests do not sleep for minutes."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ASL_PATH = ROOT / "statemachine" / "remediate.asl.json"

#: tunables for local runs (infra's defaults are minutes / hours)
LOCAL_TUNABLES: dict[str, int] = {
    "VerifyWaitSeconds": 1,
    "VerifyMaxWaitSeconds": 2,
    "VerifyMaxAttempts": 4,
    "ApprovalTimeoutSeconds": 60,
    "ApprovalHeartbeatSeconds": 55,
}


def function_placeholder(handler: str) -> str:
    """``approval_request`` -> ``ApprovalRequestFunctionArn`` (the ASL's substitution name; same rule as infra)."""
    return "".join(part.capitalize() for part in handler.split("_")) + "FunctionArn"


def load_definition() -> str:
    """The ASL file as infra reads it (the runner works from a clone of the repository)."""
    return ASL_PATH.read_text(encoding="utf-8")


def placeholders(text: str) -> set[str]:
    return set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", text))


def prepare_definition(
    text: str, substitutions: Mapping[str, Any], *, retry_cap_seconds: int | None = None
) -> dict[str, Any]:
    """Substitute ``${...}`` like CloudFormation (strings as they are, other values as JSON) and, for local runs,
    cap Retry intervals. Raises ValueError naming any placeholder without a value."""
    from esm_medic_sandbox.patch_sfn import substitute_definition

    missing = sorted(placeholders(text) - set(substitutions))
    if missing:
        raise ValueError(f"no DefinitionSubstitution for: {', '.join(missing)}")
    definition: dict[str, Any] = json.loads(substitute_definition(text, dict(substitutions)))
    if retry_cap_seconds is not None:
        cap = max(1, int(retry_cap_seconds))
        for state in _walk_states(definition):
            for retrier in state.get("Retry") or []:
                retrier["IntervalSeconds"] = min(int(retrier.get("IntervalSeconds", 1)), cap)
                if "MaxDelaySeconds" in retrier:
                    retrier["MaxDelaySeconds"] = min(int(retrier["MaxDelaySeconds"]), cap)
                retrier["BackoffRate"] = 1.0
    return definition


def _walk_states(definition: Mapping[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for state in (definition.get("States") or {}).values():
        out.append(state)
        for branch in state.get("Branches") or []:
            out.extend(_walk_states(branch))
        for key in ("Iterator", "ItemProcessor"):
            if isinstance(state.get(key), Mapping):
                out.extend(_walk_states(state[key]))
    return out
