"""Helpers over tests/events: the fixture files and their expectations (tests/events/expectations.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"


def expectations() -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = json.loads((EVENTS_DIR / "expectations.json").read_text(encoding="utf-8"))[
        "fixtures"
    ]
    return data


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))
    return data


def fixture_files() -> set[str]:
    return {str(p.relative_to(EVENTS_DIR)) for p in EVENTS_DIR.rglob("*.json")} - {"expectations.json"}
