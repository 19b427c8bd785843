"""Owner routing from esm-medic:* tags: ESM, then function, then cluster, then the account default."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from esm_medic.notify.providers.base import project_for
from esm_medic.notify.routing import (
    TAG_APPROVERS,
    TAG_OWNER,
    TAG_SLACK_CHANNEL,
    TAG_TICKET_PROJECT,
    clear_cache,
    route_for,
)

UUID = "7e57a11e-0000-4000-8000-000000000001"
FN = "arn:aws:lambda:eu-west-1:123456789012:function:orders"
ESM = f"arn:aws:lambda:eu-west-1:123456789012:event-source-mapping:{UUID}"
CLUSTER = "arn:aws:kafka:eu-west-1:123456789012:cluster/orders/abc-1"


class TagAws:
    def __init__(self, tags: dict[str, dict[str, str] | Exception]) -> None:
        self.tags = tags
        self.calls: list[str] = []

    def call(self, service: str, op: str, **kw: Any) -> dict[str, Any]:
        arn = kw.get("Resource") or kw.get("ResourceArn")
        self.calls.append(f"{service}:{op}:{arn}")
        value = self.tags.get(str(arn), {})
        if isinstance(value, Exception):
            raise value
        return {"Tags": value}


@pytest.fixture(autouse=True)
def _fresh() -> None:
    clear_cache()


def context() -> dict[str, Any]:
    return {"uuid": UUID, "diagnosis": {"esm": {"UUID": UUID, "FunctionArn": FN, "EventSourceArn": CLUSTER}}}


def test_routing_nearest_tag_wins_per_field_then_account_default() -> None:
    aws = TagAws(
        {
            ESM: {TAG_SLACK_CHANNEL: "C-ESM"},
            FN: {TAG_SLACK_CHANNEL: "C-FN", TAG_OWNER: "team-orders", "unrelated": "x"},
            CLUSTER: {TAG_TICKET_PROJECT: "jira=KAFKA;servicenow=Kafka Platform", TAG_OWNER: "platform"},
        }
    )
    route = route_for(aws, context(), env={"ESM_MEDIC_APPROVERS": "alice@example.com, bob@example.com"})  # type: ignore[arg-type]
    assert route.slack_channel == "C-ESM" and route.owner == "team-orders"
    assert route.ticket_project == "jira=KAFKA;servicenow=Kafka Platform"
    assert route.approvers == ("alice@example.com", "bob@example.com")
    assert route.source == {
        "slack_channel": "esm",
        "owner": "function",
        "ticket_project": "cluster",
        "approvers": "account",
    }
    assert aws.calls == [f"lambda:list_tags:{ESM}", f"lambda:list_tags:{FN}", f"kafka:list_tags_for_resource:{CLUSTER}"]


def test_routing_skips_a_level_it_cannot_read_and_caches_tags() -> None:
    denied = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "ListTags")
    aws = TagAws({ESM: denied, FN: {TAG_APPROVERS: "carol@example.com"}})
    route = route_for(aws, context(), env={"ESM_MEDIC_SLACK_CHANNEL": "C-DEFAULT"})  # type: ignore[arg-type]
    assert route.approvers == ("carol@example.com",) and route.slack_channel == "C-DEFAULT"
    assert route.source["slack_channel"] == "account"
    before = len(aws.calls)
    route_for(aws, context(), env={})  # type: ignore[arg-type]
    assert len(aws.calls) == before  # tags cached


def test_routing_without_aws_uses_account_defaults_only() -> None:
    route = route_for(None, context(), env={"ESM_MEDIC_DEFAULT_OWNER": "ops", "ESM_MEDIC_TICKET_PROJECT": "OPS"})
    assert route.owner == "ops" and route.ticket_project == "OPS" and route.slack_channel == ""


def test_ticket_project_per_provider_jira_servicenow_github_pagerduty() -> None:
    value = "jira=KAFKA; servicenow=Kafka Platform; github=acme/kafka"
    assert project_for(value, "jira") == "KAFKA"
    assert project_for(value, "servicenow") == "Kafka Platform"
    assert project_for(value, "github") == "acme/kafka"
    assert project_for(value, "pagerduty") == ""
    assert project_for("OPS", "jira") == "OPS" and project_for("OPS", "github") == ""
