"""Slack as an app (``slack_sdk`` WebClient): one message per incident that follows it.

The first notification of an incident posts with ``chat.postMessage``; later ones ``chat.update`` the same message
(its stage: diagnosed, suspected, waiting for approval, verified, ticketed, failed) and add a thread reply with the
details. The message's channel and ``ts`` live in STATE (``pk = SLACK#<uuid>``, ``sk = INCIDENT#<key>``); a
conditional put makes sure only one worker posts the first message.

Configuration: ``ESM_MEDIC_SLACK_BOT_TOKEN_SECRET`` (a Secrets Manager JSON ``{"bot_token": "xoxb-..."}``, read
through Powertools Parameters and cached), ``ESM_MEDIC_SLACK_CHANNEL`` (default channel; the
``esm-medic:slack-channel`` tag overrides it per ESM). The incoming-webhook mode (``ESM_MEDIC_SLACK_WEBHOOK_URL``)
stays for teams without an app.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from esm_medic.notify.message import Message, _cut, slack_escape
from esm_medic.notify.providers.base import ProviderError, read_credentials
from esm_medic.notify.slack_blocks import STAGE_OF_KIND, fallback_text, render_slack
from esm_medic.tables import STATE

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws

logger = Logger(service="esm-medic", child=True)

RECORD_TTL = 30 * 86400
THREAD_TEXT_MAX = 3500


@dataclass(frozen=True)
class SlackAppSettings:
    token_secret: str = ""
    channel: str = ""
    api_url: str = "https://slack.com/api/"
    timeout: int = 3  # Slack answers fast; a slow Slack must not hold the workflow

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SlackAppSettings:
        e = os.environ if env is None else env
        return cls(
            token_secret=(e.get("ESM_MEDIC_SLACK_BOT_TOKEN_SECRET") or "").strip(),
            channel=(e.get("ESM_MEDIC_SLACK_CHANNEL") or "").strip(),
            api_url=(e.get("ESM_MEDIC_SLACK_API_URL") or "https://slack.com/api/").strip(),
        )

    @property
    def enabled(self) -> bool:
        return bool(self.token_secret)


_clients: dict[tuple[str, str], Any] = {}
_clients_lock = threading.Lock()


def client(aws: Aws | None, s: SlackAppSettings) -> Any:
    from slack_sdk import WebClient

    token = read_credentials(aws, "slack", s.token_secret, ("bot_token",))["bot_token"]
    key = (token, s.api_url)
    with _clients_lock:
        c = _clients.get(key)
        if c is None:
            c = _clients[key] = WebClient(token=token, base_url=s.api_url, timeout=s.timeout)
        return c


def _key(uuid: str, incident: str) -> dict[str, Any]:
    from esm_medic.aws import to_attribute_values

    return to_attribute_values({"pk": f"SLACK#{uuid}", "sk": f"INCIDENT#{incident}"})


def _record(aws: Aws, uuid: str, incident: str) -> dict[str, Any]:
    from esm_medic.aws import from_attribute_values

    resp = aws.call("dynamodb", "get_item", TableName=STATE.name, Key=_key(uuid, incident), ConsistentRead=True)
    return from_attribute_values(resp.get("Item") or {})


def _slack_error(exc: Exception) -> ProviderError:
    from slack_sdk.errors import SlackApiError

    if isinstance(exc, SlackApiError):
        resp = exc.response
        status = int(getattr(resp, "status_code", 0) or 0)
        headers = getattr(resp, "headers", {}) or {}
        retry = headers.get("Retry-After") or headers.get("retry-after")
        answer = str((resp.data or {}).get("error") if isinstance(resp.data, dict) else resp.data)[:300]
        return ProviderError(
            "slack",
            f"Slack API answered {answer or status}",
            status=status or None,
            answer=answer,
            retry_after=float(retry[0] if isinstance(retry, list) else retry) if retry else None,
            retryable=status == 429 or status >= 500 or answer in ("ratelimited", "internal_error"),
        )
    if isinstance(exc, ProviderError):
        return exc
    return ProviderError("slack", f"request failed: {type(exc).__name__}", retryable=True)


def publish(
    aws: Aws, msg: Message, *, incident: str, channel: str, settings: SlackAppSettings, stage: str = ""
) -> dict[str, Any]:
    """Post the incident's message (first time) or update it and reply in its thread. Never raises."""
    from esm_medic.aws import to_attribute_values

    stage = stage or STAGE_OF_KIND.get(msg.kind, msg.kind)
    incident = incident or msg.incident_id or "-"
    try:
        web = client(aws, settings)
        payload = render_slack(msg, stage=stage)
        rec = _record(aws, msg.uuid, incident)
        if not rec.get("ts"):
            if not channel:
                raise ProviderError("slack", "no channel: set ESM_MEDIC_SLACK_CHANNEL or tag esm-medic:slack-channel")
            claimed = rec == {} and aws.conditional(
                "dynamodb",
                "put_item",
                TableName=STATE.name,
                Item=to_attribute_values(
                    {**_plain_key(msg.uuid, incident), "status": "posting", "expires_at": int(time.time()) + RECORD_TTL}
                ),
                ConditionExpression="attribute_not_exists(pk)",
            )
            if claimed or rec.get("status") == "failed":
                try:
                    resp = web.chat_postMessage(channel=channel, text=payload["text"], blocks=payload["blocks"])
                except Exception:
                    _mark_failed(aws, msg.uuid, incident)  # the next notification posts again
                    raise
                values = {":c": str(resp["channel"]), ":t": str(resp["ts"]), ":s": stage}
                aws.call(
                    "dynamodb",
                    "update_item",
                    TableName=STATE.name,
                    Key=_key(msg.uuid, incident),
                    UpdateExpression="SET channel = :c, ts = :t, stage = :s, #st = :ok",
                    ExpressionAttributeNames={"#st": "status"},
                    ExpressionAttributeValues=to_attribute_values({**values, ":ok": "posted"}),
                )
                return {"action": "posted", "channel": values[":c"], "ts": values[":t"], "stage": stage}
            rec = _wait_for_ts(aws, msg.uuid, incident)
            if not rec.get("ts"):
                raise ProviderError("slack", "another worker is posting this incident's first message")
        web.chat_update(channel=rec["channel"], ts=rec["ts"], text=payload["text"], blocks=payload["blocks"])
        reply = _cut(f"*{slack_escape(stage)}*: {fallback_text(msg)}", THREAD_TEXT_MAX)
        if msg.details:
            reply = _cut(f"{reply}\n\n{slack_escape(msg.details)}", THREAD_TEXT_MAX)
        web.chat_postMessage(channel=rec["channel"], thread_ts=rec["ts"], text=reply)
        aws.call(
            "dynamodb",
            "update_item",
            TableName=STATE.name,
            Key=_key(msg.uuid, incident),
            UpdateExpression="SET stage = :s, updated_at = :u",
            ExpressionAttributeValues=to_attribute_values(
                {":s": stage, ":u": datetime.now(UTC).isoformat(timespec="seconds")}
            ),
        )
        return {"action": "updated", "channel": rec["channel"], "ts": rec["ts"], "stage": stage}
    except Exception as exc:
        err = _slack_error(exc)
        logger.warning("Slack app delivery failed", extra={"status": err.status, "answer": err.answer})
        return {"action": "failed", "error": err.to_dict()}


def _plain_key(uuid: str, incident: str) -> dict[str, str]:
    return {"pk": f"SLACK#{uuid}", "sk": f"INCIDENT#{incident}"}


def _wait_for_ts(aws: Aws, uuid: str, incident: str, timeout: float = 2.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    rec = _record(aws, uuid, incident)
    while not rec.get("ts") and time.monotonic() < deadline:
        time.sleep(0.1)
        rec = _record(aws, uuid, incident)
    return rec


def _mark_failed(aws: Aws, uuid: str, incident: str) -> None:
    from esm_medic.aws import to_attribute_values

    aws.call(
        "dynamodb",
        "update_item",
        TableName=STATE.name,
        Key=_key(uuid, incident),
        UpdateExpression="SET #st = :f",
        ExpressionAttributeNames={"#st": "status"},
        ExpressionAttributeValues=to_attribute_values({":f": "failed"}),
    )
