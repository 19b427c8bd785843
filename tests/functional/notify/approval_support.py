"""Helpers for the approval tests: per-approver link inboxes (an SNS topic with one filtered SQS subscription per
approver, as each person's e-mail subscription would be), signed Slack requests and function URL events."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from typing import Any
from urllib.parse import urlencode, urlparse

from esm_medic.notify.message import APPROVE_ACTION_ID

KEY = "link-key-for-tests"
SIGNING = "slack-signing-secret-for-tests"
BASE_URL = "https://approve.example.com"
_LINK = re.compile(r"https?://\S+/approvals/\S+")


class Inboxes:
    """An SNS topic for approval links and one SQS queue per person, subscribed with a filter on ``approver``."""

    def __init__(self, aws: Any, people: list[str], name: str = "approval-links") -> None:
        self.aws = aws
        self.topic_arn = aws.call("sns", "create_topic", Name=name)["TopicArn"]
        self.queues: dict[str, str] = {}
        for i, person in enumerate(people):
            url = aws.call("sqs", "create_queue", QueueName=f"{name}-inbox-{i}")["QueueUrl"]
            arn = aws.call("sqs", "get_queue_attributes", QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            aws.call(
                "sns",
                "subscribe",
                TopicArn=self.topic_arn,
                Protocol="sqs",
                Endpoint=arn,
                Attributes={"FilterPolicy": json.dumps({"approver": [person]})},
            )
            self.queues[person] = url

    def messages(self, person: str) -> list[str]:
        out = []
        for _ in range(3):
            resp = self.aws.call("sqs", "receive_message", QueueUrl=self.queues[person], MaxNumberOfMessages=10)
            for m in resp.get("Messages") or []:
                out.append(json.loads(m["Body"])["Message"])
                self.aws.call("sqs", "delete_message", QueueUrl=self.queues[person], ReceiptHandle=m["ReceiptHandle"])
            if out:
                break
        return out

    def links(self, person: str) -> dict[str, str]:
        """{"approve": url, "reject": url} from the one link message this person received."""
        found: dict[str, str] = {}
        for text in self.messages(person):
            for url in _LINK.findall(text):
                decision = "approve" if "decision=approve" in url else "reject"
                found[decision] = url
        return found


def split(url: str) -> tuple[str, dict[str, str]]:
    parsed = urlparse(url)
    return parsed.path, dict(p.split("=", 1) for p in parsed.query.split("&") if "=" in p)


def http(
    method: str,
    path: str,
    *,
    query: dict[str, str] | None = None,
    body: str | bytes = "",
    headers: dict[str, str] | None = None,
    b64: bool = False,
    iam_arn: str = "",
) -> dict[str, Any]:
    """A Lambda function URL event (payload 2.0); ``iam_arn`` as Lambda fills it for AWS_IAM auth."""
    ctx: dict[str, Any] = {
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
        "requestId": "r1",
        "routeKey": "$default",
        "stage": "$default",
        "domainName": "abc.lambda-url.us-east-1.on.aws",
        "accountId": "123456789012",
        "timeEpoch": int(time.time() * 1000),
    }
    if iam_arn:
        ctx["authorizer"] = {"iam": {"userArn": iam_arn, "callerId": "AIDA0000", "accountId": "123456789012"}}
    raw = body.encode() if isinstance(body, str) else body
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": urlencode(query or {}),
        "queryStringParameters": query or None,
        "headers": {k.lower(): v for k, v in (headers or {}).items()},
        "requestContext": ctx,
        "body": base64.b64encode(raw).decode() if b64 else raw.decode("utf-8", "surrogateescape"),
        "isBase64Encoded": b64,
    }


def form_post(path: str, **fields: str) -> dict[str, Any]:
    return http("POST", path, body=urlencode(fields), headers={"content-type": "application/x-www-form-urlencoded"})


def slack_body(aid: str, *, action: str = APPROVE_ACTION_ID, user: str = "U111", username: str = "alice") -> bytes:
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": username, "name": username},
        "actions": [{"action_id": action, "value": aid, "type": "button"}],
        "response_url": "https://hooks.slack.com/actions/T1/1/xyz",
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def slack_headers(body: bytes, *, secret: str = SIGNING, ts: int | None = None) -> dict[str, str]:
    stamp = str(ts if ts is not None else int(time.time()))
    sig = "v0=" + hmac.new(secret.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": sig,
        "Content-Type": "application/x-www-form-urlencoded",
    }


def slack_event(aid: str, *, secret: str = SIGNING, ts: int | None = None, **kw: Any) -> dict[str, Any]:
    body = slack_body(aid, **kw)
    return http("POST", "/slack/actions", body=body, headers=slack_headers(body, secret=secret, ts=ts), b64=True)
