"""Two claims in the STATE table.

:class:`EsmLock` - one esm-medic run changes one ESM at a time. ``pk = LOCK#<uuid>``, ``sk = lock``; taken with a
conditional put (free, or its ``expires_at`` has passed), released with a conditional delete (only by its owner).
``expires_at`` is also the table's TTL attribute, and the expiry check makes a lock left by a crashed run harmless
after ``Settings.lock_ttl_seconds``.

:class:`IncidentClaim` - one workflow execution handles one (ESM, root cause) at a time. ``pk = CLAIM#<uuid>``,
``sk = <root-cause fingerprint>``; the first execution that reaches the decision owns the incident, every later one
joins it (its name is appended to ``joiners``) and ends quietly: one change, one approval request, one ticket. The
owner marks the claim ``done`` with its outcome and time when it records it; the done claim lingers for a cool-down
so late executions of the same storm (started before it finished) still join it.
"""

from __future__ import annotations

import time
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from esm_medic.aws import from_item, is_conditional_check_failed, to_value
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
        return {"pk": to_value(f"LOCK#{self.uuid}"), "sk": to_value("lock")}

    def acquire(self) -> bool:
        now = int(self.clock())
        try:
            self.aws.call(
                "dynamodb",
                "put_item",
                TableName=self.table,
                Item={
                    **self.key,
                    "owner": to_value(self.owner),
                    "purpose": to_value(self.purpose or "-"),
                    "acquired_at": to_value(int(now)),
                    "expires_at": to_value(int(now + self.ttl)),
                },
                ConditionExpression="attribute_not_exists(pk) OR expires_at < :now",
                ExpressionAttributeValues={":now": to_value(int(now))},
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
                ExpressionAttributeValues={":me": to_value(self.owner)},
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
        held = from_item(item)
        return {
            "owner": held.get("owner"),
            "purpose": held.get("purpose"),
            "expires_at": int(held.get("expires_at") or 0),
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


MAX_JOINERS = 100  # the claim item stays small; later joiners are still recorded in their own outcome


@dataclass
class ClaimHolder:
    """Who holds an incident claim (see :class:`IncidentClaim`)."""

    owner: str
    incident_id: str
    state: str  # "active" | "done"
    outcome: str = ""
    expires_at: int = 0
    joiners: list[str] = field(default_factory=list)
    finished_at: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "incident_id": self.incident_id,
            "state": self.state,
            "outcome": self.outcome,
            "expires_at": self.expires_at,
            "joiners": list(self.joiners),
            "finished_at": self.finished_at,
        }


class IncidentClaim:
    """One owner per (ESM, root-cause fingerprint); see the module docstring."""

    def __init__(self, aws: Aws, uuid: str, key: str, *, table: str, clock: Callable[[], float] = time.time) -> None:
        self.aws = aws
        self.uuid = uuid
        self.key = key
        self.table = table
        self.clock = clock

    @property
    def item_key(self) -> dict[str, Any]:
        return {"pk": to_value(f"CLAIM#{self.uuid}"), "sk": to_value(self.key)}

    def _put(self, owner: str, incident_id: str, ttl: int, condition: str, values: dict[str, Any]) -> bool:
        now = int(self.clock())
        return self.aws.conditional(
            "dynamodb",
            "put_item",
            TableName=self.table,
            Item={
                **self.item_key,
                "kind": to_value("incident-claim"),
                "owner": to_value(owner),
                "incident_id": to_value(incident_id),
                "claim_state": to_value("active"),
                "acquired_at": to_value(int(now)),
                "expires_at": to_value(int(now + max(1, int(ttl)))),
            },
            ConditionExpression=condition,
            ExpressionAttributeNames={"#o": "owner"},
            ExpressionAttributeValues={k: v for k, v in values.items() if k in condition},
        )

    def acquire(self, owner: str, incident_id: str, ttl_seconds: int) -> bool:
        """Own the claim when it is free, expired or already ours (a retried decision)."""
        return self._put(
            owner,
            incident_id,
            ttl_seconds,
            "attribute_not_exists(pk) OR expires_at < :now OR #o = :me",
            {":now": to_value(int(self.clock())), ":me": to_value(owner)},
        )

    def take_over(self, owner: str, incident_id: str, ttl_seconds: int, previous: str) -> bool:
        """Own a claim whose owner finished (``done``), only if nobody else took it over first."""
        return self._put(
            owner,
            incident_id,
            ttl_seconds,
            "#o = :prev AND claim_state = :done",
            {":prev": to_value(previous), ":done": to_value("done")},
        )

    def holder(self) -> ClaimHolder | None:
        item = self.aws.call("dynamodb", "get_item", TableName=self.table, Key=self.item_key, ConsistentRead=True).get(
            "Item"
        )
        if not item:
            return None
        claim = from_item(item)
        return ClaimHolder(
            owner=str(claim.get("owner") or ""),
            incident_id=str(claim.get("incident_id") or ""),
            state=str(claim.get("claim_state") or "active"),
            outcome=str(claim.get("outcome") or ""),
            expires_at=int(claim.get("expires_at") or 0),
            joiners=[str(v) for v in claim.get("joiners") or []],
            finished_at=int(claim.get("finished_at") or 0),
        )

    def join(self, joiner: str) -> bool:
        """Record ``joiner`` on the claim (at most :data:`MAX_JOINERS`, once each); False when not recorded."""
        return self.aws.conditional(
            "dynamodb",
            "update_item",
            TableName=self.table,
            Key=self.item_key,
            UpdateExpression="SET joiners = list_append(if_not_exists(joiners, :empty), :me)",
            ConditionExpression="attribute_exists(pk) AND (attribute_not_exists(joiners) OR size(joiners) < :max)",
            ExpressionAttributeValues={
                ":empty": to_value([]),
                ":me": to_value([joiner]),
                ":max": to_value(int(MAX_JOINERS)),
            },
        )

    def finish(self, owner: str, outcome: str, cooldown_seconds: int) -> bool:
        """The owner recorded ``outcome``: the claim becomes ``done`` and expires after the cool-down."""
        now = int(self.clock())
        return self.aws.conditional(
            "dynamodb",
            "update_item",
            TableName=self.table,
            Key=self.item_key,
            UpdateExpression="SET claim_state = :done, outcome = :out, expires_at = :exp, finished_at = :now",
            ConditionExpression="#o = :me",
            ExpressionAttributeNames={"#o": "owner"},
            ExpressionAttributeValues={
                ":done": to_value("done"),
                ":out": to_value(outcome),
                ":exp": to_value(int(now + max(0, int(cooldown_seconds)))),
                ":now": to_value(int(now)),
                ":me": to_value(owner),
            },
        )
