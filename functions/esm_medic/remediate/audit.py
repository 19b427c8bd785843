"""The append-only audit log of remediation actions (DynamoDB table ``audit``, see :mod:`esm_medic.tables`).

Each status change of an action is a new item, written with ``attribute_not_exists`` so nothing is ever
overwritten: key ``pk = ESM#<uuid>``, ``sk = <iso timestamp>#<action id>``; the ``by_action`` GSI on ``action_id``
returns every row of one action (rollback reads its ``applied`` row from there). Structured fields (params,
decision, before, after, created, plan, details) are stored as JSON strings so floats and nesting survive as-is.
"""

from __future__ import annotations

import json
import uuid as uuidlib
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from esm_medic.aws import from_item, is_conditional_check_failed, to_item, to_value
from esm_medic.remediate.base import TERMINAL_AFTER_START, ActionRecord
from esm_medic.tables import describe_error

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws

JSON_FIELDS = ("params", "decision", "before", "after", "created", "plan", "details")
# account: the ESM's account (a member account when acting through its role)
TEXT_FIELDS = (
    *("action_id", "uuid", "incident_id", "actor", "action", "status", "fingerprint", "reason", "error", "at"),
    "account",
)
MAX_ITEM_BYTES = 350_000  # DynamoDB's limit is 400 KB; keep a margin


def new_action_id() -> str:
    return f"act-{uuidlib.uuid4().hex}"


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="microseconds").replace("+00:00", "Z")


class AuditError(RuntimeError):
    """The audit table cannot be read or written (missing table, access denied): no change is made without it."""


class AuditLog:
    def __init__(self, aws: Aws, table: str) -> None:
        self.aws = aws
        self.table = table

    # ------------------------------------------------------------------ write
    def append(self, record: ActionRecord) -> ActionRecord:
        """Write ``record`` as a new item (never overwrites); sets ``at`` / ``epoch``. Returns the record."""
        t = _now()
        for _ in range(8):
            record.at = _iso(t)
            record.epoch = t.timestamp()
            item = self._to_item(record)
            try:
                self.aws.call(
                    "dynamodb",
                    "put_item",
                    TableName=self.table,
                    Item=item,
                    ConditionExpression="attribute_not_exists(pk) AND attribute_not_exists(sk)",
                )
                return record
            except Exception as exc:
                if is_conditional_check_failed(exc):
                    t = t + timedelta(microseconds=1)  # same microsecond as another row of this action
                    continue
                raise AuditError(f"cannot write to the audit log: {describe_error(exc, self.table)}") from exc
        raise AuditError("could not find a free audit key after 8 attempts")

    def _to_item(self, record: ActionRecord) -> dict[str, Any]:
        d = record.to_dict()
        values: dict[str, Any] = {
            "pk": f"ESM#{record.uuid or '-'}",
            "sk": f"{record.at}#{record.action_id}",
            "epoch": float(record.epoch),
        }
        for f in TEXT_FIELDS:
            values[f] = str(d.get(f) or "") or "-"  # DynamoDB keys (the GSI's action_id) cannot be empty
        for f in JSON_FIELDS:
            values[f] = json.dumps(d.get(f) or {}, default=str, sort_keys=True)
        size = sum(len(v) for v in values.values() if isinstance(v, str))
        if size > MAX_ITEM_BYTES:
            values["plan"] = json.dumps({"truncated": True, "reason": "plan too large for one audit item"})
        return to_item(values)

    @staticmethod
    def _from_item(item: dict[str, Any]) -> ActionRecord:
        values = from_item(item)
        d: dict[str, Any] = {}
        for f in TEXT_FIELDS:
            v = str(values.get(f) or "")
            d[f] = "" if v == "-" else v
        for f in JSON_FIELDS:
            raw = values.get(f)
            try:
                d[f] = json.loads(raw) if raw else {}
            except (TypeError, ValueError):
                d[f] = {"unparsed": raw}
        try:
            d["epoch"] = float(values.get("epoch") or 0)
        except (TypeError, ValueError):
            d["epoch"] = 0.0
        return ActionRecord.from_dict(d)

    # ------------------------------------------------------------------ read
    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        try:
            return self.aws.call("dynamodb", operation, **params)
        except Exception as exc:
            raise AuditError(f"cannot read the audit log: {describe_error(exc, self.table)}") from exc

    def history(self, uuid: str | None = None, limit: int = 50) -> list[ActionRecord]:
        """Newest first. With a uuid: that ESM's rows (query); without: any rows (scan, up to ``limit``)."""
        out: list[ActionRecord] = []
        kwargs: dict[str, Any]
        if uuid:
            kwargs = {
                "TableName": self.table,
                "KeyConditionExpression": "pk = :pk",
                "ExpressionAttributeValues": {":pk": to_value(f"ESM#{uuid}")},
                "ScanIndexForward": False,
                "Limit": max(1, min(limit, 1000)),
            }
            op = "query"
        else:
            kwargs = {"TableName": self.table, "Limit": max(1, min(limit, 1000))}
            op = "scan"
        while True:
            page = self._call(op, **kwargs)
            out.extend(self._from_item(i) for i in page.get("Items") or [])
            key = page.get("LastEvaluatedKey")
            if not key or len(out) >= limit:
                break
            kwargs["ExclusiveStartKey"] = key
        out.sort(key=lambda r: (r.at, r.action_id), reverse=True)
        return out[:limit]

    def by_action(self, action_id: str) -> list[ActionRecord]:
        """Every row of one action, oldest first (GSI ``by_action``)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": "by_action",
            "KeyConditionExpression": "action_id = :a",
            "ExpressionAttributeValues": {":a": to_value(action_id)},
        }
        rows = self._query(kwargs)
        rows.sort(key=lambda r: (r.at, STATUS_RANK.get(r.status, 0)))
        return rows

    def rows_for(self, uuid: str) -> list[ActionRecord]:
        """All rows of one ESM, oldest first."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": to_value(f"ESM#{uuid}")},
        }
        rows = self._query(kwargs)
        rows.sort(key=lambda r: r.at)
        return rows

    def _query(self, kwargs: dict[str, Any]) -> list[ActionRecord]:
        """Every row a Query returns, page after page."""
        rows: list[ActionRecord] = []
        while True:
            page = self._call("query", **kwargs)
            rows.extend(self._from_item(i) for i in page.get("Items") or [])
            key = page.get("LastEvaluatedKey")
            if not key:
                return rows
            kwargs["ExclusiveStartKey"] = key

    def in_flight(self, uuid: str, action: str | None = None, fingerprint: str | None = None) -> list[ActionRecord]:
        """'started' rows with no later applied / failed / rolled-back row for the same action id: changes that
        were interrupted half-way (newest first)."""
        return in_flight(self.rows_for(uuid), action, fingerprint)


STATUS_RANK = {s: i for i, s in enumerate(("planned", "shadow", "started", "applied", "restarted", "verified"))}


def in_flight(
    rows: Iterable[ActionRecord], action: str | None = None, fingerprint: str | None = None
) -> list[ActionRecord]:
    by_id: dict[str, list[ActionRecord]] = {}
    for r in rows:
        by_id.setdefault(r.action_id, []).append(r)
    out = []
    for recs in by_id.values():
        started = [r for r in recs if r.status == "started"]
        if not started:
            continue
        if any(r.status in TERMINAL_AFTER_START for r in recs):
            continue
        first = started[0]
        if action and first.action != action:
            continue
        if fingerprint and first.fingerprint != fingerprint:
            continue
        out.append(first)
    out.sort(key=lambda r: r.at, reverse=True)
    return out


def summarize(rows: Iterable[ActionRecord]) -> list[dict[str, Any]]:
    """One line per action id (latest status first seen), newest first: for ``esm-medic history``."""
    by_id: dict[str, list[ActionRecord]] = {}
    for r in rows:
        by_id.setdefault(r.action_id, []).append(r)
    out: list[dict[str, Any]] = []
    for aid, recs in by_id.items():
        recs.sort(key=lambda r: r.at)
        last = recs[-1]
        out.append(
            {
                "action_id": aid,
                "uuid": last.uuid,
                "action": last.action,
                "incident_id": last.incident_id,
                "status": last.status,
                "statuses": [r.status for r in recs],
                "actor": recs[0].actor,
                "first_at": recs[0].at,
                "last_at": last.at,
                "created": next((r.created for r in reversed(recs) if r.created), {}),
                "error": next((r.error for r in reversed(recs) if r.error), ""),
            }
        )
    out.sort(key=lambda d: str(d["last_at"]), reverse=True)
    return out
