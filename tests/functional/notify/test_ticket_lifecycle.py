"""Tickets end to end against moto (STATE table, Secrets Manager) and recorded provider HTTP (``responses``):
the outbox keeps every delivery while Jira, ServiceNow, GitHub and PagerDuty are all down and delivers each exactly
once later; one ticket per ESM and root cause; recovery resolves with proof; a relapse links the old ticket."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import responses
from test_notify_handlers import UUID, ticket_args

from esm_medic.cli.outbox import execute
from esm_medic.notify import outbox
from esm_medic.notify.providers.base import clear_credentials_cache
from esm_medic.notify.ticket import open_ticket, resolve_tickets

JIRA = "https://acme.atlassian.net"
SNOW = "https://acme.service-now.com"
GH = "https://api.github.com"
PD = "https://events.pagerduty.com/v2/enqueue"
OPEN_CALLS = {
    "jira": ("POST", f"{JIRA}/rest/api/3/issue"),
    "servicenow": ("POST", f"{SNOW}/api/now/table/incident"),
    "github": ("POST", f"{GH}/repos/acme/ops/issues"),
    "pagerduty": ("POST", PD),
}
TOKENS = {"jira": "jira-tok-XYZ", "servicenow": "snow-pw-XYZ", "github": "ghp_tokXYZ", "pagerduty": "R0UTEXYZ"}


@pytest.fixture
def providers(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Every HTTP provider configured, credentials in (moto) Secrets Manager."""
    secrets = {
        "jira": {"email": "bot@acme.test", "api_token": TOKENS["jira"]},
        "servicenow": {"username": "esm-medic", "password": TOKENS["servicenow"]},
        "github": {"token": TOKENS["github"]},
        "pagerduty": {"routing_key": TOKENS["pagerduty"]},
    }
    for name, value in secrets.items():
        aws.call("secretsmanager", "create_secret", Name=f"esm-medic/{name}", SecretString=json.dumps(value))
        monkeypatch.setenv(f"ESM_MEDIC_{name.upper()}_SECRET", f"esm-medic/{name}")
    monkeypatch.setenv("ESM_MEDIC_JIRA_URL", JIRA)
    monkeypatch.setenv("ESM_MEDIC_JIRA_PROJECT", "OPS")
    monkeypatch.setenv("ESM_MEDIC_SERVICENOW_URL", SNOW)
    monkeypatch.setenv("ESM_MEDIC_GITHUB_REPO", "acme/ops")
    monkeypatch.setenv("ESM_MEDIC_TICKET_PROVIDERS", "jira,servicenow,github,pagerduty")
    clear_credentials_cache()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps
    clear_credentials_cache()


def all_down(rsps: Any) -> None:
    for method, url in OPEN_CALLS.values():
        rsps.add(method, url, body="service unavailable", status=503)
    rsps.add("POST", f"{GH}/repos/acme/ops/issues/7/comments", body="down", status=503)


def all_up(rsps: Any) -> None:
    rsps.reset()
    rsps.add("POST", f"{JIRA}/rest/api/3/issue", json={"key": "OPS-1"}, status=201)
    rsps.add("POST", f"{JIRA}/rest/api/3/search/jql", json={"issues": []})
    rsps.add("POST", f"{JIRA}/rest/api/3/issue/OPS-1/comment", json={"id": "1"}, status=201)
    rsps.add("POST", f"{SNOW}/api/now/table/incident", json={"result": {"sys_id": "s1"}}, status=201)
    rsps.add("GET", f"{SNOW}/api/now/table/incident", json={"result": []})
    rsps.add("PATCH", f"{SNOW}/api/now/table/incident/s1", json={"result": {}})
    rsps.add("POST", f"{GH}/repos/acme/ops/issues", json={"number": 7, "html_url": "https://gh/7"}, status=201)
    rsps.add("GET", f"{GH}/repos/acme/ops/issues", json=[])
    rsps.add("POST", f"{GH}/repos/acme/ops/issues/7/comments", json={"id": 1}, status=201)
    rsps.add("POST", PD, json={"status": "success", "dedup_key": "x"}, status=202)


def creates(rsps: Any) -> dict[str, int]:
    counts = dict.fromkeys(OPEN_CALLS, 0)
    for call in rsps.calls:
        for name, (method, url) in OPEN_CALLS.items():
            if call.request.method == method and call.request.url == url:
                body = json.loads(call.request.body)
                repeat = "saw this again" in json.dumps(body)  # a PagerDuty comment is a trigger on the same dedup_key
                if name != "pagerduty" or not repeat:
                    counts[name] += 1
    return counts


def test_jira_servicenow_github_pagerduty_all_down_kept_then_delivered_exactly_once(
    aws: Any, notify_env: Path, providers: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    all_down(providers)
    first = open_ticket(aws, **ticket_args())
    assert first["delivered"] == [] and first["fallback"] is True
    assert Path(first["location"]).read_text() == first["body"]  # the file sink caught it
    by_provider = {e["sink"]: e for e in first["errors"]}
    assert set(by_provider) == set(OPEN_CALLS)
    assert all(e["status"] == 503 and e["answer"] == "service unavailable" for e in by_provider.values())
    pending = outbox.undelivered(aws)
    assert [i["provider"] for i in pending] == ["jira", "servicenow", "github", "pagerduty"]
    assert all(i["status"] == "pending" and i["last_error"]["status"] == 503 for i in pending)
    assert all(i["next_at"] >= int(i["created_ts"]) + 30 for i in pending)  # backoff
    repeat = open_ticket(aws, **ticket_args(incident_id="inc-2", reason="again"))  # still down: comments queue too
    assert repeat["duplicate"] and len(outbox.undelivered(aws)) == 8
    assert execute(aws, "list", []) == 1
    listed = capsys.readouterr().out
    assert "outbox: 8 undelivered" in listed and "503 service unavailable" in listed

    all_up(providers)
    assert execute(aws, "redeliver", []) == 0
    assert outbox.undelivered(aws) == []
    assert execute(aws, "redeliver", []) == 0  # nothing left: nothing sent twice
    assert outbox.drain(aws, force=True) == []
    assert creates(providers) == {"jira": 1, "servicenow": 1, "github": 1, "pagerduty": 1}
    comments = [c.request.url for c in providers.calls if c.request.url.endswith(("/comment", "/comments"))]
    assert comments == [f"{JIRA}/rest/api/3/issue/OPS-1/comment", f"{GH}/repos/acme/ops/issues/7/comments"]
    out = capsys.readouterr().out + capsys.readouterr().err
    assert not any(token in out for token in TOKENS.values())  # credentials never logged


def test_github_4xx_is_recorded_as_failed_and_waits_for_an_operator(
    aws: Any, notify_env: Path, providers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESM_MEDIC_TICKET_PROVIDERS", "github,file")
    providers.add("POST", f"{GH}/repos/acme/ops/issues", json={"message": "Bad credentials"}, status=401)
    result = open_ticket(aws, **ticket_args())
    assert result["delivered"] == ["file"] and not result["fallback"]
    (item,) = outbox.undelivered(aws)
    assert item["status"] == "failed" and item["last_error"]["status"] == 401
    assert "Bad credentials" in item["last_error"]["answer"]
    assert outbox.drain(aws) == []  # not retried automatically: a 401 needs a person
    providers.replace("POST", f"{GH}/repos/acme/ops/issues", json={"number": 9}, status=201)
    providers.add("GET", f"{GH}/repos/acme/ops/issues", json=[])
    assert execute(aws, "redeliver", [item["item_id"]]) == 0
    assert outbox.get(aws, item["item_id"])["status"] == "delivered"


def test_github_recovery_resolves_with_proof_and_a_relapse_links_the_old_issue(
    aws: Any, notify_env: Path, providers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESM_MEDIC_TICKET_PROVIDERS", "github")
    providers.add("POST", f"{GH}/repos/acme/ops/issues", json={"number": 7, "html_url": "https://gh/7"}, status=201)
    providers.add("POST", f"{GH}/repos/acme/ops/issues/7/comments", json={"id": 1}, status=201)
    providers.add("PATCH", f"{GH}/repos/acme/ops/issues/7", json={"number": 7}, status=200)
    first = open_ticket(aws, **ticket_args())
    assert first["delivered"] == ["github"] and first["location"] == "https://gh/7"
    done = resolve_tickets(
        aws,
        uuid=UUID,
        before={"LastProcessingResult": "PROBLEM: Connection error.", "password": "hunter2"},
        after={"LastProcessingResult": "OK", "State": "Enabled"},
        incident_id="inc-9",
    )
    assert done["resolved"] == [first["ticket_id"]] and done["errors"] == []
    proof = json.loads(providers.calls[1].request.body)["body"]
    assert (
        "Before: LastProcessingResult=PROBLEM: Connection error." in proof and "After: LastProcessingResult=OK" in proof
    )
    assert "hunter2" not in proof
    assert json.loads(providers.calls[2].request.body)["state"] == "closed"
    assert resolve_tickets(aws, uuid=UUID, after={"LastProcessingResult": "OK"})["resolved"] == []  # once

    providers.replace("POST", f"{GH}/repos/acme/ops/issues", json={"number": 8, "html_url": "https://gh/8"}, status=201)
    relapse = open_ticket(aws, **ticket_args(incident_id="inc-10"))
    assert relapse["duplicate"] is False and relapse["relapse_of"] == first["ticket_id"]
    assert relapse["ticket_id"] == first["ticket_id"] + "-r2"
    body = json.loads(providers.calls[3].request.body)["body"]
    assert "Relapse" in body and "https://gh/7" in body


def test_ten_concurrent_incidents_on_one_esm_make_one_ticket(aws: Any, notify_env: Path) -> None:
    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(lambda i: open_ticket(aws, **ticket_args(incident_id=f"inc-{i}")), range(10)))
    assert len({r["ticket_id"] for r in results}) == 1
    assert sum(1 for r in results if not r["duplicate"]) == 1
    # a comment that raced ahead of the open waits in the outbox; the next drain delivers it
    assert all(r["status"] == "pending" for r in outbox.undelivered(aws))
    outbox.drain(aws, force=True)
    assert outbox.undelivered(aws) == []
    (ticket,) = notify_env.glob("*.md")
    assert ticket.read_text().count("esm-medic saw this again in incident") == 9


def test_notify_handler_recovered_resolves_the_open_ticket_with_proof(aws: Any, notify_env: Path) -> None:
    from test_notify_handlers import Ctx

    from esm_medic.handlers import notify as notify_handler

    ticket = open_ticket(aws, **ticket_args())
    event = {
        "kind": "recovered",
        "context": {
            "uuid": UUID,
            "incident_id": "inc-1",
            "before": {"LastProcessingResult": "PROBLEM: Connection error."},
            "after": {"LastProcessingResult": "OK"},
        },
    }
    out = notify_handler.handler(event, Ctx())
    assert out["tickets"]["resolved"] == [ticket["ticket_id"]]
    text = Path(ticket["location"]).read_text()
    assert "## Resolved" in text and "After: LastProcessingResult=OK" in text
    assert notify_handler.handler(event, Ctx())["tickets"]["resolved"] == []  # resolved once


def test_scheduled_outbox_handler_delivers_github_once_the_backoff_passed(
    aws: Any, notify_env: Path, providers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_notify_handlers import Ctx

    from esm_medic.handlers import outbox as outbox_handler

    monkeypatch.setattr(outbox_handler, "get_aws", lambda: aws)
    monkeypatch.setenv("ESM_MEDIC_TICKET_PROVIDERS", "github")
    providers.add("POST", f"{GH}/repos/acme/ops/issues", body="down", status=502)
    open_ticket(aws, **ticket_args())
    assert outbox_handler.handler({}, Ctx()) == {"results": [], "delivered": 0, "undelivered": 1}  # backoff not over
    providers.replace("POST", f"{GH}/repos/acme/ops/issues", json={"number": 3, "html_url": "https://gh/3"}, status=201)
    providers.add("GET", f"{GH}/repos/acme/ops/issues", json=[])
    later = outbox._now() + 31
    monkeypatch.setattr(outbox, "_now", lambda: later)
    out = outbox_handler.handler({}, Ctx())
    assert out["delivered"] == 1 and out["undelivered"] == 0
    assert outbox_handler.handler({}, Ctx())["results"] == []


def test_slack_webhook_notification_kept_in_the_outbox_and_sent_once_later(
    aws: Any, notify_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from esm_medic.notify import notify
    from esm_medic.notify import sinks as sinks_mod

    hook = "https://hooks.slack.com/services/T1/B1/XYZ"
    monkeypatch.setenv("ESM_MEDIC_SLACK_WEBHOOK_URL", hook)
    monkeypatch.setenv("ESM_MEDIC_NOTIFY_SINKS", "slack")
    monkeypatch.setattr(sinks_mod.time, "sleep", lambda s: None)
    answers = [503, 503, 503, 200]
    posts: list[dict[str, Any]] = []

    class Session:
        def post(self, url: str, json: Any = None, timeout: Any = None) -> Any:
            posts.append(json)
            return type("R", (), {"status_code": answers.pop(0), "text": "x", "headers": {}})()

    monkeypatch.setattr(sinks_mod, "http_session", lambda: Session())
    result = notify(aws, "pending-approval", {"uuid": UUID, "incident_id": "inc-s"})
    assert result["sent"] == ["file"] and result["fallback"]  # the file sink caught it meanwhile
    (item,) = outbox.undelivered(aws)
    assert item["op"] == "notify" and item["provider"] == "slack" and result["errors"][0]["outbox"] == item["item_id"]
    assert [r["status"] for r in outbox.drain(aws, force=True)] == ["delivered"]
    assert outbox.drain(aws, force=True) == [] and len(posts) == 4  # 3 failed tries, then exactly one delivery
    assert "Approval needed" in posts[-1]["text"]


def test_jira_and_github_left_queued_when_the_delivery_budget_is_spent(
    aws: Any, notify_env: Path, providers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from esm_medic.notify import ticket as ticket_mod

    monkeypatch.setenv("ESM_MEDIC_TICKET_PROVIDERS", "jira,github")
    monkeypatch.setattr(ticket_mod, "DELIVERY_BUDGET", -1.0)
    result = open_ticket(aws, **ticket_args())
    assert [r["status"] for r in result["providers"].values()] == ["queued", "queued"]
    assert result["fallback"] and Path(result["location"]).is_file() and len(providers.calls) == 0
    assert [i["provider"] for i in outbox.undelivered(aws)] == ["jira", "github"]  # recorded before any call
