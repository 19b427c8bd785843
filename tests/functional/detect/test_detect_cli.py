"""``esm-medic sweep`` against the in-process sandbox."""

from __future__ import annotations

import json
from typing import Any

import pytest

from esm_medic.cli.main import main

AUTHZ = "PROBLEM: Cluster failed to authorize Lambda."


def test_sweep_once_json_and_text(detect: Any, capsys: pytest.CaptureFixture[str]) -> None:
    (u,) = detect.add_msk()
    detect.set(u, AUTHZ)
    assert main(["sweep", "--once", "--json", "--hold", "0", "--create-tables"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["complete"] and data["emitted"] == 1 and data["transitions"][0]["uuid"] == u
    detect.set(u, "OK")
    assert main(["sweep", "--once", "--hold", "0"]) == 0
    out = capsys.readouterr().out
    assert u in out and "RECOVERED" in out and "sweep: 1 Kafka ESMs of 1" in out


def test_sweep_usage_and_missing_table(
    detect: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["sweep", "--once", "--hold", "-1"]) == 2
    assert "--hold" in capsys.readouterr().err
    detect.add_msk()
    monkeypatch.setenv("ESM_MEDIC_STATE_TABLE", "nope")
    assert main(["sweep", "--once"]) == 1
    assert "--create-tables" in capsys.readouterr().err
