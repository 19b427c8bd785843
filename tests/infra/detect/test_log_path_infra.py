"""The log path in the synthesized template: the esm_logs function, the account-level subscription filter policy
(default) or the sweeper's per-log-group rights (``-c EsmLogSubscription=log-group``), and nothing with ``off``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest


def _resources(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r for r in template["Resources"].values() if r["Type"] == kind]


def test_default_template_holds_the_account_policy_and_the_handler(template: dict[str, Any]) -> None:
    from esm_medic.detect.events.esm_log import FILTER_PATTERN

    fns = [f for f in _resources(template, "AWS::Lambda::Function") if "esm_logs" in f["Properties"]["Handler"]]
    assert len(fns) == 1
    (policy,) = _resources(template, "AWS::Logs::AccountPolicy")
    props = policy["Properties"]
    assert props["PolicyType"] == "SUBSCRIPTION_FILTER_POLICY" and props["Scope"] == "ALL"
    doc = json.dumps(props["PolicyDocument"])
    assert "EsmLogsFunction" in doc and json.dumps(FILTER_PATTERN)[1:-1].replace('"', '\\\\"') in doc
    assert "LogGroupName NOT IN" in json.dumps(props["SelectionCriteria"])  # own log groups excluded
    perms = [p["Properties"] for p in _resources(template, "AWS::Lambda::Permission")]
    assert any(p["Principal"] == "logs.amazonaws.com" for p in perms)


def _synth(tmp_path: Path, mode: str) -> dict[str, Any]:
    from infra.app import build_app

    app = build_app(str(tmp_path), install_deps=False, nag=False, context={"EsmLogSubscription": mode})
    app.synth()
    return dict(json.loads((tmp_path / "EsmMedic.template.json").read_text()))


@pytest.mark.parametrize("mode", ["log-group", "off"])
def test_other_modes(tmp_path: Path, mode: str) -> None:
    t = _synth(tmp_path, mode)
    assert not _resources(t, "AWS::Logs::AccountPolicy")
    text = json.dumps(t)
    if mode == "log-group":
        assert "ESM_MEDIC_ESM_LOGS_DESTINATION_ARN" in text and "logs:PutSubscriptionFilter" in text
        assert ":log-group:/aws/lambda/*" in text
    else:
        assert "ESM_MEDIC_ESM_LOGS_DESTINATION_ARN" not in text and "logs.amazonaws.com" not in text
