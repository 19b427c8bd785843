"""Sinks and notify(): bounded Slack retries, failures never raise, fallback to the file sink, settings."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import requests

from esm_medic.notify import notify
from esm_medic.notify import sinks as sinks_mod
from esm_medic.notify.message import build_message
from esm_medic.notify.sinks import NotifySettings, SinkError, StdoutSink, post_json

HOOK = "https://hooks.slack.com/services/T000/B000/SECRETPART"


class FakeResponse:
    def __init__(self, status: int, text: str = "", headers: dict[str, str] | None = None) -> None:
        self.status_code = status
        self.text = text
        self.headers = headers or {}


class FakeSession:
    """Stands in for requests.Session: answers from a script, records every call."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.calls: list[dict[str, Any]] = []

    def post(self, url: str, json: Any = None, timeout: Any = None) -> FakeResponse:
        self.calls.append({"url": url, "json": json, "timeout": timeout})
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, BaseException):
            raise step
        return step


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(sinks_mod.time, "sleep", slept.append)
    return slept


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> Any:
    def install(*script: Any) -> FakeSession:
        fake = FakeSession(*script)
        monkeypatch.setattr(sinks_mod, "http_session", lambda: fake)
        return fake

    return install


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in (
        "ESM_MEDIC_SLACK_WEBHOOK_URL",
        "ESM_MEDIC_SNS_TOPIC_ARN",
        "ESM_MEDIC_NOTIFY_SINKS",
        "ESM_MEDIC_NOTIFY_STDOUT",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ESM_MEDIC_TICKET_DIR", str(tmp_path / "tickets"))


CTX = {"uuid": "u-1", "classification": {"entry": "topic-not-found", "step": "topic"}, "function": "fn"}


def test_post_json_succeeds_first_time(session: Any, no_sleep: list[float]) -> None:
    fake = session(FakeResponse(200, "ok"))
    post_json(HOOK, {"text": "hi"}, timeout=2, retries=2)
    assert len(fake.calls) == 1 and fake.calls[0]["json"] == {"text": "hi"}
    assert fake.calls[0]["timeout"] == (3.05, 2)
    assert no_sleep == []


def test_post_json_retries_5xx_a_bounded_number_of_times(session: Any, no_sleep: list[float]) -> None:
    fake = session(FakeResponse(500, "internal_error"))
    with pytest.raises(SinkError) as info:
        post_json(HOOK, {"text": "hi"}, timeout=2, retries=2)
    assert len(fake.calls) == 3
    assert no_sleep == [0.25, 0.5]
    assert "HTTP 500" in str(info.value)
    assert "SECRETPART" not in str(info.value)


def test_post_json_recovers_after_a_transient_error(session: Any, no_sleep: list[float]) -> None:
    fake = session(requests.ConnectTimeout("boom"), FakeResponse(200, "ok"))
    post_json(HOOK, {"text": "hi"}, timeout=2, retries=2)
    assert len(fake.calls) == 2


def test_post_json_honours_retry_after_capped(session: Any, no_sleep: list[float]) -> None:
    session(FakeResponse(429, "rate_limited", {"Retry-After": "30"}), FakeResponse(200, "ok"))
    post_json(HOOK, {"text": "hi"}, timeout=2, retries=1)
    assert no_sleep == [2.0]


def test_post_json_does_not_retry_4xx(session: Any, no_sleep: list[float]) -> None:
    fake = session(FakeResponse(404, "no_service"))
    with pytest.raises(SinkError, match="HTTP 404"):
        post_json(HOOK, {"text": "hi"}, timeout=2, retries=3)
    assert len(fake.calls) == 1


def test_post_json_refuses_plain_http(session: Any) -> None:
    fake = session(FakeResponse(200))
    with pytest.raises(SinkError, match="not an https URL"):
        post_json("http://hooks.example.com/x", {}, timeout=1, retries=0)
    assert fake.calls == []


def test_settings_from_env_and_automatic_sinks(monkeypatch: pytest.MonkeyPatch) -> None:
    assert NotifySettings.from_env({}).sink_names() == ("stdout",)
    s = NotifySettings.from_env({"ESM_MEDIC_SLACK_WEBHOOK_URL": HOOK, "ESM_MEDIC_SNS_TOPIC_ARN": "arn:aws:sns:x"})
    assert s.sink_names() == ("slack", "sns")
    s = NotifySettings.from_env({"ESM_MEDIC_SNS_TOPIC_ARN": "arn:aws:sns:x", "ESM_MEDIC_NOTIFY_STDOUT": "true"})
    assert s.sink_names() == ("sns", "stdout")
    assert NotifySettings.from_env({"ESM_MEDIC_NOTIFY_SINKS": "file, stdout"}).sink_names() == ("file", "stdout")
    with pytest.raises(ValueError, match="unknown notification sink"):
        NotifySettings.from_env({"ESM_MEDIC_NOTIFY_SINKS": "pager"}).sink_names()
    coerced = NotifySettings.coerce({"slack_webhook": HOOK, "sinks": ["slack"], "unrelated": 1})
    assert coerced.slack_webhook == HOOK and coerced.sinks == ("slack",)


def test_notify_slack_500_is_recorded_and_never_raises(session: Any, no_sleep: list[float]) -> None:
    fake = session(FakeResponse(500, "oops"))
    result = notify(None, "recovered", CTX, settings={"slack_webhook": HOOK, "sinks": ["slack"], "slack_retries": 1})
    assert result["sent"] == []
    assert result["errors"] == [{"sink": "slack", "error": "Slack answered HTTP 500: oops"}]
    assert "fallback" not in result  # a lost "recovered" message is not worth a file
    assert len(fake.calls) == 2
    payload = fake.calls[0]["json"]
    assert payload["blocks"][0]["type"] == "header" and "u-1" in json.dumps(payload)


@pytest.mark.parametrize("kind", ["failed", "ticketed", "pending-approval"])
def test_when_every_sink_fails_important_kinds_fall_back_to_files(
    kind: str, session: Any, no_sleep: list[float], tmp_path: Path
) -> None:
    session(requests.ConnectionError("down"))
    result = notify(None, kind, CTX, settings={"slack_webhook": HOOK, "sns_topic_arn": "arn:aws:sns:us-east-1:1:t"})
    assert {e["sink"] for e in result["errors"]} == {"slack", "sns"}
    assert result["sent"] == ["file"] and result["fallback"] is True
    written = Path(result["location"])
    assert written.is_file() and written.parent == tmp_path / "tickets" / "notifications"
    assert "u-1" in written.read_text()


def test_one_working_sink_means_no_fallback(session: Any, no_sleep: list[float]) -> None:
    session(FakeResponse(500))
    result = notify(
        None, "failed", CTX, settings={"slack_webhook": HOOK, "sinks": ["slack", "stdout"], "slack_retries": 0}
    )
    assert result["sent"] == ["stdout"] and "fallback" not in result


class DeniedAws:
    """An Aws stand-in whose SNS publish is denied (what a role without sns:Publish gets)."""

    region = "us-east-1"

    def call(self, service: str, operation: str, **kw: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": "AuthorizationError", "Message": "not authorized"}}, operation)


def test_sns_access_denied_is_recorded_with_a_hint(no_sleep: list[float]) -> None:
    result = notify(
        DeniedAws(), "failed", CTX, settings={"sns_topic_arn": "arn:aws:sns:us-east-1:1:t", "sinks": ["sns"]}
    )  # type: ignore[arg-type]
    assert result["errors"][0]["sink"] == "sns"
    assert "AuthorizationError" in result["errors"][0]["error"] and "sns:Publish" in result["errors"][0]["error"]
    assert result["sent"] == ["file"] and result["fallback"] is True


def test_missing_configuration_for_an_explicit_sink_is_an_error_not_a_crash() -> None:
    result = notify(None, "notify", CTX, settings={"sinks": ["slack", "sns"], "slack_webhook": "", "sns_topic_arn": ""})
    assert [e["sink"] for e in result["errors"]] == ["slack", "sns"]
    assert result["sent"] == []


def test_a_sink_bug_is_contained(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(self: Any, msg: Any) -> str:
        raise KeyError("bug")

    monkeypatch.setattr(StdoutSink, "send", explode)
    result = notify(None, "failed", CTX, settings={"sinks": ["stdout"]})
    assert result["errors"][0]["sink"] == "stdout" and "KeyError" in result["errors"][0]["error"]
    assert result["sent"] == ["file"]


def test_stdout_sink_writes_the_text() -> None:
    buf = io.StringIO()
    StdoutSink(buf).send(build_message("notify", CTX))
    assert "u-1" in buf.getvalue()


def test_unwritable_ticket_dir_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    result = notify(None, "failed", CTX, settings={"sinks": ["file"], "ticket_dir": str(blocker)})
    assert result["sent"] == [] and result["errors"][0]["sink"] == "file"
