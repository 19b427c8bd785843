"""The durable outbox: every ticket delivery (open, comment, resolve per provider) is a STATE-table item first.

Item: ``pk = OUTBOX#<id>``, ``sk = OUTBOX``; the id is derived from (fingerprint, generation, op, provider, key),
so enqueueing the same delivery twice is a no-op. A delivery is claimed with a conditional lease (two workers never
deliver one item), then marked ``delivered`` (TTL 30 days) or left ``pending`` with ``next_at`` pushed back
(exponential backoff, or the provider's Retry-After when longer) and the provider's answer in ``last_error``. A
final failure (a 4xx other than 408/409/425/429, or missing configuration) is ``failed``: it waits for an operator
(``esm-medic outbox list`` / ``redeliver``). Undelivered items never expire.

An ``open`` delivery never creates a second ticket: it first looks at the ledger (the provider's ref recorded by an
earlier attempt) and, on a retry, asks the provider for an open ticket with the fingerprint.
"""

from __future__ import annotations

import time
import uuid as uuidlib
from collections.abc import Iterable
from dataclasses import asdict
from datetime import UTC, datetime
from hashlib import sha256
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from esm_medic.notify.providers import ProviderError, ProviderSettings, TicketDoc, make_provider
from esm_medic.tables import STATE

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws

logger = Logger(service="esm-medic", child=True)

PREFIX = "OUTBOX#"
SK = "OUTBOX"
OPS = ("open", "comment", "resolve", "notify")  # notify: a Slack / SNS message a sink could not deliver
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
BACKOFF_BASE = 30.0
BACKOFF_MAX = 3600.0
LEASE_SECONDS = 120
DELIVERED_TTL = 30 * 86400
ERRORS_KEPT = 5


def ledger_key(uuid: str, fingerprint: str) -> dict[str, Any]:
    from esm_medic.aws import to_attribute_values

    return to_attribute_values({"pk": f"TICKET#{uuid}", "sk": f"FP#{fingerprint}"})


def _now() -> float:
    return time.time()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def backoff(attempts: int, retry_after: float | None = None) -> float:
    base = min(BACKOFF_BASE * 2 ** max(0, attempts - 1), BACKOFF_MAX)
    return max(base, retry_after or 0.0)


def item_id(doc: TicketDoc, generation: int, op: str, provider: str, key: str = "") -> str:
    raw = f"{doc.uuid}|{doc.fingerprint}|{generation}|{op}|{provider}|{key}"
    return sha256(raw.encode()).hexdigest()[:24]


def enqueue(
    aws: Aws,
    *,
    op: str,
    provider: str,
    doc: TicketDoc,
    generation: int,
    text: str = "",
    key: str = "",
    ref: str = "",
) -> dict[str, Any] | None:
    """Put one delivery in the outbox; None when the same delivery was enqueued before (nothing to do)."""

    if op not in OPS:
        raise ValueError(f"unknown outbox op {op!r}")
    iid = item_id(doc, generation, op, provider, key)
    now = _now()
    item = {
        "pk": PREFIX + iid,
        "sk": SK,
        "kind": "outbox",
        "item_id": iid,
        "op": op,
        "provider": provider,
        "doc": asdict(doc),
        "generation": generation,
        "text": text,
        "ref": ref,
    }
    return _put_new(aws, item, now)


def _put_new(aws: Aws, item: dict[str, Any], now: float) -> dict[str, Any] | None:
    """Store a new pending delivery (due now); None when an item with its id is already kept."""
    from esm_medic.aws import to_attribute_values

    item = {**item, "status": PENDING, "attempts": 0, "next_at": int(now), "created_at": _iso(now)}
    item.update(created_ts=now, errors=[])
    put = aws.conditional(
        "dynamodb",
        "put_item",
        TableName=STATE.name,
        Item=to_attribute_values(item),
        ConditionExpression="attribute_not_exists(pk)",
    )
    return item if put else None


def enqueue_message(aws: Aws, sink: str, message: dict[str, Any]) -> dict[str, Any] | None:
    """Keep a notification a sink could not deliver (``message`` is ``Message.to_dict()``); None if kept before."""

    raw = f"{message.get('uuid')}|{message.get('kind')}|{message.get('incident_id')}|{sink}|{message.get('title')}"
    iid = sha256(f"{raw}|{message.get('summary')}".encode()).hexdigest()[:24]
    now = _now()
    label = f"{message.get('kind')}:{str(message.get('uuid') or '-')[:8]}"
    item = {
        "pk": PREFIX + iid,
        "sk": SK,
        "kind": "outbox",
        "item_id": iid,
        "op": "notify",
        "provider": sink,
        "doc": {"ticket_id": label, "uuid": message.get("uuid") or ""},
        "message": message,
        "generation": 1,
    }
    return _put_new(aws, item, now)


def _send_message(aws: Aws, item: dict[str, Any]) -> tuple[str, str]:
    from esm_medic.notify.message import Message
    from esm_medic.notify.sinks import NotifySettings, SinkError, build_sinks

    name = str(item["provider"])
    settings = NotifySettings.coerce({**NotifySettings.from_env().__dict__, "sinks": [name]})
    sinks, errors = build_sinks(aws, settings)
    if errors or not sinks:
        raise ProviderError(name, errors[0]["error"] if errors else "sink not configured", retryable=False)
    try:
        receipt = sinks[0].send(Message.from_dict(item["message"]))
    except SinkError as exc:
        raise ProviderError(name, str(exc), retryable=True) from None
    return str(receipt or "sent"), ""


def get(aws: Aws, iid: str) -> dict[str, Any] | None:
    from esm_medic.aws import from_attribute_values, to_attribute_values

    resp = aws.call(
        "dynamodb",
        "get_item",
        TableName=STATE.name,
        Key=to_attribute_values({"pk": PREFIX + iid, "sk": SK}),
        ConsistentRead=True,
    )
    return from_attribute_values(resp["Item"]) if resp.get("Item") else None


def undelivered(aws: Aws, *, include_delivered: bool = False) -> list[dict[str, Any]]:
    """Every outbox item not yet delivered (oldest first); with ``include_delivered``, every item."""
    from esm_medic.aws import from_attribute_values, to_attribute_values

    kwargs: dict[str, Any] = {
        "TableName": STATE.name,
        "FilterExpression": "begins_with(pk, :p)" + ("" if include_delivered else " AND #s <> :d"),
        "ExpressionAttributeValues": to_attribute_values(
            {":p": PREFIX, **({} if include_delivered else {":d": DELIVERED})}
        ),
    }
    if not include_delivered:
        kwargs["ExpressionAttributeNames"] = {"#s": "status"}
    items = [from_attribute_values(i) for i in aws.paginate("dynamodb", "scan", "Items", **kwargs)]
    return sorted(items, key=lambda i: (i.get("created_ts") or 0, i.get("item_id", "")))


def _claim(aws: Aws, iid: str, now: float) -> str | None:
    from esm_medic.aws import to_attribute_values

    token = uuidlib.uuid4().hex
    ok = aws.conditional(
        "dynamodb",
        "update_item",
        TableName=STATE.name,
        Key=to_attribute_values({"pk": PREFIX + iid, "sk": SK}),
        UpdateExpression="SET lease = :t, lease_until = :u, attempts = attempts + :one",
        ConditionExpression="attribute_exists(pk) AND #s <> :d "
        "AND (attribute_not_exists(lease_until) OR lease_until < :n)",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues=to_attribute_values(
            {":t": token, ":u": int(now) + LEASE_SECONDS, ":one": 1, ":d": DELIVERED, ":n": int(now)}
        ),
    )
    return token if ok else None


def _finish(aws: Aws, iid: str, token: str, values: dict[str, Any]) -> None:
    from esm_medic.aws import to_attribute_values

    names = {f"#{k}": k for k in values}
    sets = ", ".join(f"#{k} = :{k}" for k in values)
    aws.call(
        "dynamodb",
        "update_item",
        TableName=STATE.name,
        Key=to_attribute_values({"pk": PREFIX + iid, "sk": SK}),
        UpdateExpression=f"SET {sets} REMOVE lease, lease_until",
        ConditionExpression="lease = :token",
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=to_attribute_values({":token": token, **{f":{k}": v for k, v in values.items()}}),
    )


def _ledger_ref(aws: Aws, doc: TicketDoc, provider: str, generation: int) -> str:
    from esm_medic.aws import from_attribute_values

    resp = aws.call(
        "dynamodb", "get_item", TableName=STATE.name, Key=ledger_key(doc.uuid, doc.fingerprint), ConsistentRead=True
    )
    rec = from_attribute_values(resp.get("Item") or {})
    if int(rec.get("generation") or 0) != generation:
        return ""
    return str((rec.get("refs") or {}).get(provider) or "")


def _ledger_set_ref(aws: Aws, doc: TicketDoc, provider: str, generation: int, ref: str, url: str) -> None:
    from esm_medic.aws import to_attribute_values

    aws.conditional(
        "dynamodb",
        "update_item",
        TableName=STATE.name,
        Key=ledger_key(doc.uuid, doc.fingerprint),
        UpdateExpression="SET refs.#p = :r, urls.#p = :u",
        ConditionExpression="generation = :g",
        ExpressionAttributeNames={"#p": provider},
        ExpressionAttributeValues=to_attribute_values({":r": ref, ":u": url, ":g": generation}),
    )


def _perform(aws: Aws, item: dict[str, Any], settings: ProviderSettings) -> tuple[str, str]:
    if item["op"] == "notify":
        return _send_message(aws, item)
    doc = TicketDoc(**item["doc"])
    name, op, gen = str(item["provider"]), str(item["op"]), int(item.get("generation") or 1)
    provider = make_provider(aws, name, settings)
    known = str(item.get("ref") or "") or _ledger_ref(aws, doc, name, gen)
    if op == "open":
        if known:
            return known, ""
        found = provider.find_open(doc) if int(item.get("attempts") or 0) > 1 else None
        opened = found or provider.open(doc)
        _ledger_set_ref(aws, doc, name, gen, opened.ref, opened.url)
        return opened.ref, opened.url
    if not known:
        found = provider.find_open(doc)
        known = found.ref if found else ""
    if not known:
        raise ProviderError(name, f"no open ticket to {op} yet (its open delivery is still pending)", retryable=True)
    if op == "comment":
        provider.comment(known, doc, str(item.get("text") or ""))
    else:
        provider.resolve(known, doc, str(item.get("text") or ""))
    return known, ""


def deliver(aws: Aws, item: dict[str, Any], settings: Any = None) -> dict[str, Any]:
    """Try one delivery now. Returns ``{"item_id", "provider", "op", "status", "ref"?, "error"?}``."""
    s = ProviderSettings.coerce(settings)
    iid = str(item["item_id"])
    now = _now()
    out: dict[str, Any] = {"item_id": iid, "provider": item["provider"], "op": item["op"]}
    token = _claim(aws, iid, now)
    if token is None:
        out["status"] = "skipped"  # delivered already, or another worker holds the lease
        return out
    attempts = int(item.get("attempts") or 0) + 1
    try:
        ref, url = _perform(aws, {**item, "attempts": attempts}, s)
    except Exception as exc:
        err = (
            exc
            if isinstance(exc, ProviderError)
            else ProviderError(str(item["provider"]), f"{type(exc).__name__}: {exc}")
        )
        record = {**err.to_dict(), "at": _iso(now), "attempt": attempts}
        status = PENDING if err.retryable else FAILED
        errors = [*(item.get("errors") or [])[-(ERRORS_KEPT - 1) :], record]
        _finish(
            aws,
            iid,
            token,
            {
                "status": status,
                "last_error": record,
                "errors": errors,
                "next_at": int(now + backoff(attempts, err.retry_after)),
            },
        )
        logger.warning(
            "ticket delivery failed",
            extra={
                "item_id": iid,
                "provider": err.provider,
                "op": item["op"],
                "status": err.status,
                "answer": err.answer,
            },
        )
        return {**out, "status": status, "error": record}
    _finish(
        aws,
        iid,
        token,
        {
            "status": DELIVERED,
            "ref": ref,
            "url": url,
            "delivered_at": _iso(_now()),
            "expires_at": int(now) + DELIVERED_TTL,
        },
    )
    return {**out, "status": DELIVERED, "ref": ref, "url": url}


def drain(
    aws: Aws, settings: Any = None, *, limit: int = 25, force: bool = False, ids: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """Deliver due items (or the ``ids`` given, or every undelivered item when ``force``), oldest first."""
    wanted = set(ids)
    now = _now()
    results = []
    for item in undelivered(aws):
        if wanted and item["item_id"] not in wanted:
            continue
        if not (wanted or force) and (int(item.get("next_at") or 0) > now or item.get("status") == FAILED):
            continue
        results.append(deliver(aws, item, settings))
        if len(results) >= limit:
            break
    return results
