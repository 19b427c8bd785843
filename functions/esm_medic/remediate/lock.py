"""A per-ESM lock in the STATE table: one esm-medic run changes one ESM at a time.

``pk = LOCK#<uuid>``, ``sk = lock``; taken with a conditional put (free, or its ``expires_at`` has passed), released
with a conditional delete (only by its owner). ``expires_at`` is also the table's TTL attribute, and the expiry check
makes a lock left by a crashed run harmless after ``Settings.lock_ttl_seconds``.
"""

from __future__ import annotations

import time
import uuid as uuidlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from esm_medic.aws import is_conditional_check_failed
from esm_medic.remediate.base import LockBusy

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws


class EsmLock:
    def __init__(
        self,
        aws: Aws,
        uuid: str,
        *,
        table: str,
        ttl_seconds: int = 900,
        owner: str | None = None,
        purpose: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.aws = aws
        self.uuid = uuid
        self.table = table
        self.ttl = int(ttl_seconds)
        self.owner = owner or f"run-{uuidlib.uuid4().hex[:12]}"
        self.purpose = purpose
        self.clock = clock
        self.held = False

    @property
    def key(self) -> dict[str, Any]:
        return {"pk": {"S": f"LOCK#{self.uuid}"}, "sk": {"S": "lock"}}

    def acquire(self) -> bool:
        now = int(self.clock())
        try:
            self.aws.call(
                "dynamodb",
                "put_item",
                TableName=self.table,
                Item={
                    **self.key,
                    "owner": {"S": self.owner},
                    "purpose": {"S": self.purpose or "-"},
                    "acquired_at": {"N": str(now)},
                    "expires_at": {"N": str(now + self.ttl)},
                },
                ConditionExpression="attribute_not_exists(pk) OR expires_at < :now",
                ExpressionAttributeValues={":now": {"N": str(now)}},
            )
        except Exception as exc:
            if is_conditional_check_failed(exc):
                return False
            raise
        self.held = True
        return True

    def release(self) -> None:
        if not self.held:
            return
        try:
            self.aws.call(
                "dynamodb",
                "delete_item",
                TableName=self.table,
                Key=self.key,
                ConditionExpression="#o = :me",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":me": {"S": self.owner}},
            )
        except Exception as exc:
            if not is_conditional_check_failed(exc):  # expired and taken by another run: not ours
                raise
        finally:
            self.held = False

    def holder(self) -> dict[str, Any] | None:
        item = self.aws.call("dynamodb", "get_item", TableName=self.table, Key=self.key, ConsistentRead=True).get(
            "Item"
        )
        if not item:
            return None
        return {
            "owner": item.get("owner", {}).get("S"),
            "purpose": item.get("purpose", {}).get("S"),
            "expires_at": int(item.get("expires_at", {}).get("N", "0")),
        }

    def __enter__(self) -> EsmLock:
        if not self.acquire():
            h = self.holder() or {}
            raise LockBusy(
                f"another esm-medic run ({h.get('owner', '?')}: {h.get('purpose', '?')}) is working on ESM "
                f"{self.uuid}; its lock expires at {h.get('expires_at', '?')}",
                holder=h,
            )
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
