"""Jira, ServiceNow, GitHub and PagerDuty providers against recorded HTTP (``responses``): success, 4xx, 5xx,
timeout and 429 with Retry-After, each asserting what was sent and what the failure records."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import responses

from esm_medic.notify.providers import ProviderError, TicketDoc
from esm_medic.notify.providers.base import Http
from esm_medic.notify.providers.github import GitHubProvider
from esm_medic.notify.providers.jira import JiraProvider, adf
from esm_medic.notify.providers.pagerduty import EVENTS_URL, PagerDutyProvider
from esm_medic.notify.providers.servicenow import ServiceNowProvider

JIRA = "https://acme.atlassian.net"
SNOW = "https://acme.service-now.com"
GH = "https://api.github.com"
BODY = "# Ticket\n\nThe ESM cannot reach its brokers.\n\n## Runbook\n\n```bash\naws ec2 describe-security-groups\n```\n"


def doc(**kw: Any) -> TicketDoc:
    base: dict[str, Any] = {
        "fingerprint": "0123456789abcdef",
        "ticket_id": "esm-medic-0123456789ab",
        "uuid": "11111111-2222-4333-8444-555555555555",
        "title": "[esm-medic] orders ESM 1111 — cannot reach brokers",
        "body": BODY,
        "function": "orders",
        "entry": "connection-broker-unreachable",
    }
    base.update(kw)
    return TicketDoc(**base)


@dataclass
class Case:
    name: str
    make: Callable[[Http], Any]
    method: str
    open_url: str
    ok_status: int
    ok_json: dict[str, Any] | list[Any]
    ref: str


CASES = [
    Case("jira", lambda h: JiraProvider(JIRA, "OPS", ("bot@acme", "tok"), http=h), "POST",
         f"{JIRA}/rest/api/3/issue", 201, {"id": "1", "key": "OPS-7"}, "OPS-7"),
    Case("servicenow", lambda h: ServiceNowProvider(SNOW, ("svc", "pw"), assignment_group="Kafka", http=h), "POST",
         f"{SNOW}/api/now/table/incident", 201, {"result": {"sys_id": "abc123", "number": "INC001"}}, "abc123"),
    Case("github", lambda h: GitHubProvider("acme/ops", "ghp_x", http=h), "POST",
         f"{GH}/repos/acme/ops/issues", 201, {"number": 42, "html_url": "https://github.com/acme/ops/issues/42"}, "42"),
    Case("pagerduty", lambda h: PagerDutyProvider("R0UTING", http=h), "POST",
         EVENTS_URL, 202, {"status": "success", "dedup_key": "0123456789abcdef"}, "0123456789abcdef"),
]  # fmt: skip
IDS = [c.name for c in CASES]


@pytest.fixture
def slept() -> list[float]:
    return []


def http(name: str, slept: list[float], attempts: int = 2) -> Http:
    return Http(name, timeout=1.0, attempts=attempts, max_wait=2.0, sleep=slept.append)


@pytest.mark.parametrize("case", CASES, ids=IDS)
@responses.activate
def test_jira_servicenow_github_pagerduty_open_success(case: Case, slept: list[float]) -> None:
    responses.add(case.method, case.open_url, json=case.ok_json, status=case.ok_status)
    opened = case.make(http(case.name, slept)).open(doc())
    assert opened.ref == case.ref
    sent = json.loads(responses.calls[0].request.body)
    assert "0123456789abcdef" in json.dumps(sent)  # the fingerprint travels: label, correlation_id or dedup_key
    assert slept == []


@pytest.mark.parametrize("case", CASES, ids=IDS)
@responses.activate
def test_jira_servicenow_github_pagerduty_4xx_is_final_and_keeps_the_answer(case: Case, slept: list[float]) -> None:
    responses.add(case.method, case.open_url, json={"errorMessages": ["project OPS does not exist"]}, status=400)
    with pytest.raises(ProviderError) as info:
        case.make(http(case.name, slept)).open(doc())
    err = info.value
    assert err.status == 400 and not err.retryable and "project OPS does not exist" in err.answer
    assert len(responses.calls) == 1 and slept == []  # a 4xx is not retried in the call
    assert err.to_dict()["provider"] == case.name


@pytest.mark.parametrize("case", CASES, ids=IDS)
@responses.activate
def test_jira_servicenow_github_pagerduty_5xx_retried_once_then_recorded(case: Case, slept: list[float]) -> None:
    responses.add(case.method, case.open_url, body="upstream down", status=503)
    with pytest.raises(ProviderError) as info:
        case.make(http(case.name, slept)).open(doc())
    assert info.value.status == 503 and info.value.retryable and info.value.answer == "upstream down"
    assert len(responses.calls) == 2 and slept == [0.5]


@pytest.mark.parametrize("case", CASES, ids=IDS)
@responses.activate
def test_jira_servicenow_github_pagerduty_5xx_then_success(case: Case, slept: list[float]) -> None:
    responses.add(case.method, case.open_url, body="oops", status=502)
    responses.add(case.method, case.open_url, json=case.ok_json, status=case.ok_status)
    assert case.make(http(case.name, slept)).open(doc()).ref == case.ref
    assert len(responses.calls) == 2


@pytest.mark.parametrize("case", CASES, ids=IDS)
@responses.activate
def test_jira_servicenow_github_pagerduty_timeout(case: Case, slept: list[float]) -> None:
    responses.add(case.method, case.open_url, body=requests.exceptions.ReadTimeout("slow"))
    with pytest.raises(ProviderError) as info:
        case.make(http(case.name, slept)).open(doc())
    assert "timed out" in str(info.value) and info.value.retryable and info.value.status is None
    assert len(responses.calls) == 1 and slept == []  # a second wait is the outbox's job, not the Lambda's


@pytest.mark.parametrize("case", CASES, ids=IDS)
@responses.activate
def test_jira_servicenow_github_pagerduty_429_short_retry_after_is_honoured(case: Case, slept: list[float]) -> None:
    responses.add(case.method, case.open_url, body="slow down", status=429, headers={"Retry-After": "1"})
    responses.add(case.method, case.open_url, json=case.ok_json, status=case.ok_status)
    assert case.make(http(case.name, slept)).open(doc()).ref == case.ref
    assert slept == [1.0]


@pytest.mark.parametrize("case", CASES, ids=IDS)
@responses.activate
def test_jira_servicenow_github_pagerduty_429_long_retry_after_left_to_the_outbox(
    case: Case, slept: list[float]
) -> None:
    responses.add(case.method, case.open_url, body="rate limited", status=429, headers={"Retry-After": "120"})
    with pytest.raises(ProviderError) as info:
        case.make(http(case.name, slept)).open(doc())
    assert info.value.status == 429 and info.value.retry_after == 120.0 and info.value.retryable
    assert slept == [] and len(responses.calls) == 1  # never sleeps 2 minutes inside a Lambda


@responses.activate
def test_jira_adf_body_comment_resolve_and_find_open(slept: list[float]) -> None:
    p = JiraProvider(JIRA, "OPS", ("bot@acme", "tok"), http=http("jira", slept))
    responses.add("POST", f"{JIRA}/rest/api/3/issue/OPS-7/comment", json={"id": "c1"}, status=201)
    transitions = [
        {"id": "11", "name": "In Progress", "to": {"name": "In Progress", "statusCategory": {"key": "indeterminate"}}},
        {"id": "31", "name": "Close", "to": {"name": "Done", "statusCategory": {"key": "done"}}},
    ]
    responses.add("GET", f"{JIRA}/rest/api/3/issue/OPS-7/transitions", json={"transitions": transitions})
    responses.add("POST", f"{JIRA}/rest/api/3/issue/OPS-7/transitions", status=204)
    responses.add("POST", f"{JIRA}/rest/api/3/search/jql", json={"issues": [{"key": "OPS-7"}]})
    p.resolve("OPS-7", doc(), "before: PROBLEM; after: OK")
    assert json.loads(responses.calls[2].request.body) == {"transition": {"id": "31"}}
    comment = json.loads(responses.calls[0].request.body)["body"]
    assert comment["type"] == "doc" and comment["version"] == 1
    found = p.find_open(doc())
    assert found is not None and found.ref == "OPS-7" and found.url == f"{JIRA}/browse/OPS-7"
    assert 'labels = "esm-medic-0123456789abcdef"' in json.loads(responses.calls[3].request.body)["jql"]
    assert responses.calls[0].request.headers["Authorization"].startswith("Basic ")


def test_jira_adf_keeps_headings_and_code_blocks() -> None:
    d = adf(BODY)
    kinds = [n["type"] for n in d["content"]]
    assert kinds == ["heading", "paragraph", "heading", "codeBlock"]
    assert d["content"][3]["attrs"] == {"language": "bash"}
    assert d["content"][3]["content"][0]["text"] == "aws ec2 describe-security-groups"


@responses.activate
def test_servicenow_work_notes_resolve_and_correlation_query(slept: list[float]) -> None:
    p = ServiceNowProvider(SNOW, ("svc", "pw"), http=http("servicenow", slept))
    responses.add("PATCH", f"{SNOW}/api/now/table/incident/abc123", json={"result": {}})
    responses.add("PATCH", f"{SNOW}/api/now/table/incident/abc123", json={"result": {}})
    responses.add("GET", f"{SNOW}/api/now/table/incident", json={"result": [{"sys_id": "abc123", "number": "I1"}]})
    p.comment("abc123", doc(), "seen again in incident inc-2")
    p.resolve("abc123", doc(), "after: OK")
    assert json.loads(responses.calls[0].request.body) == {"work_notes": "seen again in incident inc-2"}
    resolved = json.loads(responses.calls[1].request.body)
    assert resolved["state"] == "6" and resolved["close_notes"] == "after: OK" and resolved["close_code"]
    found = p.find_open(doc())
    assert found is not None and found.ref == "abc123"
    assert "correlation_id%3D0123456789abcdef%5Eactive%3Dtrue" in responses.calls[2].request.url


@responses.activate
def test_servicenow_open_uses_the_routed_assignment_group(slept: list[float]) -> None:
    p = ServiceNowProvider(SNOW, ("svc", "pw"), assignment_group="Default", http=http("servicenow", slept))
    responses.add("POST", f"{SNOW}/api/now/table/incident", json={"result": {"sys_id": "s1"}}, status=201)
    p.open(doc(project="Kafka Platform"))
    assert json.loads(responses.calls[0].request.body)["assignment_group"] == "Kafka Platform"


@responses.activate
def test_github_comment_close_and_find_open_by_label(slept: list[float]) -> None:
    p = GitHubProvider("acme/ops", "ghp_x", http=http("github", slept))
    responses.add("POST", f"{GH}/repos/acme/ops/issues/42/comments", json={"id": 1}, status=201)
    responses.add("PATCH", f"{GH}/repos/acme/ops/issues/42", json={"number": 42, "state": "closed"})
    responses.add("GET", f"{GH}/repos/acme/ops/issues", json=[])
    p.resolve("42", doc(), "recovered: after OK")
    assert json.loads(responses.calls[1].request.body) == {"state": "closed", "state_reason": "completed"}
    assert responses.calls[0].request.headers["Authorization"] == "Bearer ghp_x"
    assert p.find_open(doc()) is None
    assert "labels=esm-medic-0123456789abcdef" in responses.calls[2].request.url


@responses.activate
def test_pagerduty_trigger_acknowledge_resolve_share_one_dedup_key(slept: list[float]) -> None:
    p = PagerDutyProvider("R0UTING", http=http("pagerduty", slept))
    for _ in range(4):
        responses.add("POST", EVENTS_URL, json={"status": "success", "dedup_key": "0123456789abcdef"}, status=202)
    ref = p.open(doc()).ref
    p.comment(ref, doc(), "repeat in incident inc-2")
    p.acknowledge(ref, doc())
    p.resolve(ref, doc(), "recovered")
    events = [json.loads(c.request.body) for c in responses.calls]
    assert [e["event_action"] for e in events] == ["trigger", "trigger", "acknowledge", "resolve"]
    assert {e["dedup_key"] for e in events} == {"0123456789abcdef"}
    assert events[0]["payload"]["severity"] == "error" and events[0]["payload"]["source"] == doc().uuid
    assert events[1]["payload"]["custom_details"]["details"] == "repeat in incident inc-2"
    assert p.find_open(doc()) is None


def test_provider_answer_never_carries_a_secret() -> None:
    with responses.RequestsMock() as rsps:
        rsps.add("POST", EVENTS_URL, body='{"message": "bad", "routing_key": "x", "password": "hunter2"}', status=400)
        with pytest.raises(ProviderError) as info:
            PagerDutyProvider("R0UTING", http=Http("pagerduty", attempts=1)).open(doc())
    assert "hunter2" not in info.value.answer and "redacted" in info.value.answer
