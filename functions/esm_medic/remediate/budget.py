"""Blast-radius budgets and the small counters of the STATE table.

- :class:`Budget`: at most N changes per security group / VPC / account per window (``Settings.budget_per_*``,
  ``budget_window_seconds``; a member account's own ``<account prefix>/<id>/budget`` replaces the account limit).
  One counter item per (scope, window): ``pk = BUDGET#<kind>#<id>``, ``sk = <window start>``.
  :meth:`Budget.consume` increments every scope of a change in one ``TransactWriteItems`` whose conditions say
  ``count < limit``: concurrent runs can never exceed a budget, and a change counts on all its scopes or none.
- :class:`Counter`: failed verifications per ESM (``VERIFY#<uuid>``) and sightings of a transient error
  (``SIGHT#<uuid>#<entry>``), with a TTL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from esm_medic.aws import error_code, from_item, to_item
from esm_medic.remediate.base import BudgetExceeded

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws
    from esm_medic.config import Settings

SCOPE_KINDS = ("sg", "vpc", "account")


@dataclass
class ScopeUsage:
    kind: str
    id: str
    used: int
    limit: int

    @property
    def ok(self) -> bool:
        return self.used < self.limit

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        return d

    def describe(self) -> str:
        return f"{self.kind} {self.id}: {self.used}/{self.limit} changes this window"


class Budget:
    def __init__(self, aws: Aws, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.aws = aws
        self.settings = settings
        self.clock = clock

    def limits(self) -> dict[str, int]:
        s = self.settings
        return {"sg": int(s.budget_per_sg), "vpc": int(s.budget_per_vpc), "account": int(s.budget_per_account)}

    def limit(self, kind: str, sid: str, limits: dict[str, int] | None = None) -> int:
        """The limit of one scope: the global one, except a member account's own ``<prefix>/<id>/budget`` (changes
        per window for that account; read when acting in it). An unreadable or invalid override counts as 0."""
        base = (limits or self.limits())[kind]
        member = getattr(self.aws, "member_account", None)
        if kind != "account" or sid != member or not self.settings.account_parameter_prefix:
            return base
        name = self.settings.account_parameter(sid, "budget")
        try:
            raw = str(self.aws.parameters().get(name, max_age=60)).strip()
        except Exception as exc:
            return base if error_code(exc) == "ParameterNotFound" else 0
        return int(raw) if raw.isdigit() else 0

    def window(self) -> tuple[str, int]:
        """(window label, epoch second the window ends)."""
        w = int(self.settings.budget_window_seconds)
        start = int(self.clock()) // w * w
        label = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return label, start + w

    @staticmethod
    def normalize(scopes: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for kind, sid in scopes:
            if kind in SCOPE_KINDS and sid and (kind, sid) not in out:
                out.append((kind, sid))
        return out

    def _key(self, kind: str, sid: str, label: str) -> dict[str, Any]:
        return to_item({"pk": f"BUDGET#{kind}#{sid}", "sk": label})

    def usage(self, scopes: Iterable[tuple[str, str]]) -> list[ScopeUsage]:
        label, _ = self.window()
        limits = self.limits()
        out = []
        for kind, sid in self.normalize(scopes):
            item = self.aws.call(
                "dynamodb", "get_item", TableName=self.settings.state_table, Key=self._key(kind, sid, label)
            ).get("Item")
            used = int(from_item(item).get("count") or 0)
            out.append(ScopeUsage(kind, sid, used, self.limit(kind, sid, limits)))
        return out

    def check(self, scopes: Iterable[tuple[str, str]]) -> tuple[bool, str]:
        exhausted = [u for u in self.usage(scopes) if not u.ok]
        if exhausted:
            return False, "blast-radius budget exhausted: " + "; ".join(u.describe() for u in exhausted)
        return True, ""

    def consume(self, scopes: Iterable[tuple[str, str]]) -> list[ScopeUsage]:
        """Count one change on every scope, atomically; raise BudgetExceeded when any scope is at its limit."""
        scopes = self.normalize(scopes)
        if not scopes:
            return []
        label, end = self.window()
        limits = self.limits()
        items = []
        for kind, sid in scopes:
            items.append(
                {
                    "Update": {
                        "TableName": self.settings.state_table,
                        "Key": self._key(kind, sid, label),
                        "UpdateExpression": "ADD #c :one SET expires_at = :exp",
                        "ConditionExpression": "attribute_not_exists(#c) OR #c < :limit",
                        "ExpressionAttributeNames": {"#c": "count"},
                        "ExpressionAttributeValues": to_item(
                            {
                                ":one": 1,
                                ":limit": self.limit(kind, sid, limits),
                                ":exp": end + int(self.settings.budget_window_seconds),
                            }
                        ),
                    }
                }
            )
        try:
            self.aws.call("dynamodb", "transact_write_items", TransactItems=items)
        except Exception as exc:
            if error_code(exc) == "TransactionCanceledException":
                _, detail = self.check(scopes)
                raise BudgetExceeded(detail or "blast-radius budget exhausted (concurrent run)") from None
            raise
        return self.usage(scopes)

    def release(self, scopes: Iterable[tuple[str, str]]) -> None:
        """Give back one change on every scope (an attempt that changed nothing), never below zero."""
        label, _ = self.window()
        for kind, sid in self.normalize(scopes):
            self.aws.conditional(
                "dynamodb",
                "update_item",
                TableName=self.settings.state_table,
                Key=self._key(kind, sid, label),
                UpdateExpression="ADD #c :minus",
                ConditionExpression="#c > :zero",
                ExpressionAttributeNames={"#c": "count"},
                ExpressionAttributeValues=to_item({":minus": -1, ":zero": 0}),
            )


class Counter:
    """A TTL'd integer in the STATE table."""

    def __init__(self, aws: Aws, settings: Settings, pk: str, ttl_seconds: int, clock: Callable[[], float] = time.time):
        self.aws = aws
        self.table = settings.state_table
        self.key = to_item({"pk": pk, "sk": "count"})
        self.ttl = int(ttl_seconds)
        self.clock = clock

    def get(self) -> int:
        item = self.aws.call("dynamodb", "get_item", TableName=self.table, Key=self.key, ConsistentRead=True).get(
            "Item"
        )
        if not item:
            return 0
        values = from_item(item)
        if int(values.get("expires_at") or 0) < int(self.clock()):
            return 0  # expired but not yet swept by TTL
        return int(values.get("count") or 0)

    def increment(self) -> int:
        now = int(self.clock())
        if self.get() == 0:
            self.reset()
        resp = self.aws.call(
            "dynamodb",
            "update_item",
            TableName=self.table,
            Key=self.key,
            UpdateExpression="ADD #c :one SET expires_at = :exp",
            ExpressionAttributeNames={"#c": "count"},
            ExpressionAttributeValues=to_item({":one": 1, ":exp": now + self.ttl}),
            ReturnValues="UPDATED_NEW",
        )
        return int(from_item(resp.get("Attributes")).get("count") or 1)

    def reset(self) -> None:
        self.aws.call("dynamodb", "delete_item", TableName=self.table, Key=self.key)


def failed_verifications(aws: Aws, settings: Settings, uuid: str) -> Counter:
    return Counter(aws, settings, f"VERIFY#{uuid}", int(settings.verify_window_hours) * 3600)


def sightings(aws: Aws, settings: Settings, uuid: str, entry: str) -> Counter:
    return Counter(aws, settings, f"SIGHT#{uuid}#{entry}", 24 * 3600)
