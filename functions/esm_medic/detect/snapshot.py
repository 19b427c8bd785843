"""Per-ESM status snapshots in the STATE table, written only on change, with optimistic concurrency.

The item formats (keys, digest entries, :class:`Status`, :class:`Snapshot`) are in
:mod:`esm_medic.detect.snapshot_record` and stay importable from here; this module holds the store that writes the
snapshot, outbox and digest records in the same conditional transactions.

Records (all in :data:`esm_medic.tables.STATE`):

- ``pk=ESM#<uuid>, sk=SNAPSHOT``: the last settled status of one ESM (State, StateTransitionReason,
  LastProcessingResult), since when, its kind (error / ok), a pending status with the time it was first seen
  (flap suppression), the open incident id (or the last closed one), an outbox holding the event detail that a
  transition must deliver (written in the same conditional write as the transition, cleared once delivered), and a
  ``version`` number. Every write is conditional on the version read (``attribute_not_exists`` for a new record),
  so of two sweeps that saw the same transition exactly one writes it, and only the writer emits the event.
- ``pk=SNAPDIGEST, sk=<shard 000..255>``: the digest, a map ``d`` of uuid -> ``<version:010d>:<status hash>`` for
  every known ESM, spread over 256 shard items. One Query on this partition (about 60 bytes per ESM: 600 KB, ~128
  RCU for 10,000 ESMs) tells the sweeper which ESMs still have the status they had, so an unchanged sweep reads no
  snapshot at all (reading 10,000 snapshots would cost 5,000 RCU), and lists every known ESM for the garbage
  collection. The digest is only a hint to *skip* a read, so it is kept on the safe side: before a snapshot is
  written its entry is set to ``<new version>:!`` ("busy": read me), and only once the snapshot is quiet again (no
  pending status, no outbox) is the entry set to its version and status hash. Every entry write is conditional on
  the stored entry being smaller (zero-padded version first), so a late writer can never put back an older hash.
- ``pk=ESM#<uuid>, sk=EVIDENCE#<name>``: the latest evidence of one kind the ESM reported about itself, kept for
  the diagnosis; ``EVIDENCE#POLLER_STATUS`` holds the last ``POLLER_STATUS_EVENT`` system-log record
  (``observed_at``, ``data`` = {security_protocol, sasl_mechanism, subnets, security_groups, ips, log_stream}).
- ``pk=ESM#<uuid>, sk=SIGNAL#<key>``: short-lived de-duplication markers (TTL ``expires_at``) for signals that do
  not come from the sweep (CloudTrail access denials), so a burst of identical denials starts one workflow.

No classification here: this module stores and loads; the sweeper decides.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from esm_medic import tables
from esm_medic.aws import from_attribute_values, to_attribute_values
from esm_medic.detect.snapshot_record import (
    DIGEST_BUSY,
    DIGEST_PK,
    DIGEST_SHARDS,
    EVIDENCE_SK_PREFIX,
    KIND_ERROR,
    KIND_OK,
    KIND_UNKNOWN,
    ORIGIN_LOG,
    POLLER_STATUS_EVIDENCE,
    SIGNAL_SK_PREFIX,
    SNAPSHOT_SK,
    TRANSITIONAL_STATES,
    Snapshot,
    Status,
    digest_entry,
    digest_hash,
    iso,
    parse_iso,
    pk_for,
    shard_of,
    status_hash,
)

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws

DIGEST_CHUNK = 25  # map entries per UpdateItem (keeps the expression far below its 4 KB limit)
BATCH_GET_MAX = 100  # DynamoDB BatchGetItem limit
MAX_UNPROCESSED_ROUNDS = 6

__all__ = [
    "BATCH_GET_MAX",
    "DIGEST_BUSY",
    "DIGEST_CHUNK",
    "DIGEST_PK",
    "DIGEST_SHARDS",
    "EVIDENCE_SK_PREFIX",
    "KIND_ERROR",
    "KIND_OK",
    "KIND_UNKNOWN",
    "MAX_UNPROCESSED_ROUNDS",
    "ORIGIN_LOG",
    "POLLER_STATUS_EVIDENCE",
    "SIGNAL_SK_PREFIX",
    "SNAPSHOT_SK",
    "TRANSITIONAL_STATES",
    "Snapshot",
    "SnapshotStore",
    "Status",
    "digest_entry",
    "digest_hash",
    "iso",
    "parse_iso",
    "pk_for",
    "shard_of",
    "status_hash",
]


def _key(uuid: str) -> dict[str, Any]:
    return to_attribute_values({"pk": pk_for(uuid), "sk": SNAPSHOT_SK})


class SnapshotStore:
    """Reads and conditional writes of snapshot records through the adapter (thread-safe)."""

    def __init__(
        self, aws: Aws, table: str | None = None, *, shards: int = DIGEST_SHARDS, sleep: Any = time.sleep
    ) -> None:
        self.aws = aws
        self.table = table or tables.STATE.name
        self.shards = max(1, min(shards, 1000))
        self._sleep = sleep
        self._shards_known: set[str] = set()

    # ------------------------------------------------------------------ reads
    def batch_get(self, uuids: Iterable[str]) -> tuple[dict[str, Snapshot], set[str]]:
        """Load the snapshots of ``uuids`` (BatchGetItem, 100 keys per call, eventually consistent).

        Returns (found, unread): ``unread`` are keys DynamoDB still returned as unprocessed after bounded retries;
        the caller must skip them (a missing answer is not a first sighting).
        """
        wanted = list(dict.fromkeys(uuids))
        found: dict[str, Snapshot] = {}
        unread: set[str] = set()
        for i in range(0, len(wanted), BATCH_GET_MAX):
            chunk = wanted[i : i + BATCH_GET_MAX]
            keys = [_key(u) for u in chunk]
            request: dict[str, Any] = {self.table: {"Keys": keys}}
            for attempt in range(MAX_UNPROCESSED_ROUNDS):
                resp = self.aws.call("dynamodb", "batch_get_item", RequestItems=request)
                for item in (resp.get("Responses") or {}).get(self.table, []):
                    snap = Snapshot.from_item(item)
                    found[snap.uuid] = snap
                request = resp.get("UnprocessedKeys") or {}
                if not request.get(self.table, {}).get("Keys"):
                    break
                self._sleep(min(0.05 * 2**attempt, 1.0))
            else:
                for key in request.get(self.table, {}).get("Keys", []):
                    unread.add(str(from_attribute_values(key)["pk"]).removeprefix("ESM#"))
        return found, unread

    def get(self, uuid: str, *, consistent: bool = True) -> Snapshot | None:
        resp = self.aws.call(
            "dynamodb",
            "get_item",
            TableName=self.table,
            Key=_key(uuid),
            ConsistentRead=consistent,
        )
        item = resp.get("Item")
        return Snapshot.from_item(item) if item else None

    # ------------------------------------------------------------------ writes
    def put(self, snap: Snapshot, expected_version: int) -> bool:
        """Write ``snap`` if the stored version is still ``expected_version`` (0: the record must not exist).

        Returns False when another writer got there first (conditional check failed); True when written.
        """
        kwargs: dict[str, Any] = {"TableName": self.table, "Item": snap.to_item()}
        if expected_version <= 0:
            kwargs["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            kwargs["ConditionExpression"] = "#v = :v"
            kwargs["ExpressionAttributeNames"] = {"#v": "version"}
            kwargs["ExpressionAttributeValues"] = to_attribute_values({":v": expected_version})
        return self.aws.conditional("dynamodb", "put_item", **kwargs)

    def delete(self, uuid: str, *, created_before: str | None = None) -> bool:
        """Delete the snapshot of ``uuid``; with ``created_before``, only if it was created before that time
        (so a sweep never forgets an ESM first seen by someone else while it was listing). True when deleted or
        already gone."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "Key": _key(uuid),
        }
        if created_before:
            kwargs["ConditionExpression"] = (
                "attribute_not_exists(pk) OR attribute_not_exists(created_at) OR created_at < :t"
            )
            kwargs["ExpressionAttributeValues"] = to_attribute_values({":t": created_before})
        return self.aws.conditional("dynamodb", "delete_item", **kwargs)

    # ------------------------------------------------------------------ digest
    def digest_read(self) -> dict[str, str]:
        """Every digest entry (uuid -> entry): one Query on the digest partition (paginated past 1 MB)."""
        out: dict[str, str] = {}
        items = self.aws.paginate(
            "dynamodb",
            "query",
            "Items",
            TableName=self.table,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues=to_attribute_values({":p": DIGEST_PK}),
        )
        for item in items:
            record = from_attribute_values(item)
            self._shards_known.add(str(record["sk"]))
            entries = record.get("d")
            for uuid, entry in (entries if isinstance(entries, Mapping) else {}).items():
                if isinstance(entry, str):
                    out[uuid] = entry
        return out

    def digest_set(self, entries: Mapping[str, str]) -> int:
        """Set digest entries, each only if the stored one is smaller (absent, older version, or busy of the same
        version). Returns how many UpdateItem calls it took."""
        calls = 0
        for shard, chunk in self._by_shard(entries):
            self._ensure_shard(shard)
            names = {f"#k{i}": u for i, u in enumerate(chunk)}
            values = to_attribute_values({f":v{i}": entries[u] for i, u in enumerate(chunk)})
            sets = ", ".join(f"d.#k{i} = :v{i}" for i in range(len(chunk)))
            cond = " AND ".join(f"(attribute_not_exists(d.#k{i}) OR d.#k{i} < :v{i})" for i in range(len(chunk)))
            calls += 1
            if self._update(shard, f"SET {sets}", names, values, cond) or len(chunk) == 1:
                continue
            for i, u in enumerate(chunk):  # some entry was not older: apply the others one by one
                calls += 1
                self._update(
                    shard,
                    "SET d.#k = :v",
                    {"#k": u},
                    {":v": values[f":v{i}"]},
                    "attribute_not_exists(d.#k) OR d.#k < :v",
                )
        return calls

    def digest_remove(self, uuids: Iterable[str]) -> None:
        for shard, chunk in self._by_shard(dict.fromkeys(uuids, "")):
            names = {f"#k{i}": u for i, u in enumerate(chunk)}
            self._update(shard, "REMOVE " + ", ".join(f"d.#k{i}" for i in range(len(chunk))), names, None, None)

    def _by_shard(self, entries: Mapping[str, str]) -> list[tuple[str, list[str]]]:
        groups: dict[str, list[str]] = {}
        for uuid in entries:
            groups.setdefault(shard_of(uuid, self.shards), []).append(uuid)
        out: list[tuple[str, list[str]]] = []
        for shard in sorted(groups):
            uuids = groups[shard]
            out.extend((shard, uuids[i : i + DIGEST_CHUNK]) for i in range(0, len(uuids), DIGEST_CHUNK))
        return out

    def _ensure_shard(self, shard: str) -> None:
        if shard in self._shards_known:
            return
        self.aws.conditional(  # False = the shard exists already, which is all we need
            "dynamodb",
            "put_item",
            TableName=self.table,
            Item=to_attribute_values({"pk": DIGEST_PK, "sk": shard, "d": {}}),
            ConditionExpression="attribute_not_exists(pk)",
        )
        self._shards_known.add(shard)

    def _update(
        self,
        shard: str,
        expression: str,
        names: dict[str, str],
        values: dict[str, Any] | None,
        condition: str | None,
    ) -> bool:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "Key": to_attribute_values({"pk": DIGEST_PK, "sk": shard}),
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names,
        }
        if values:
            kwargs["ExpressionAttributeValues"] = values
        if condition:
            kwargs["ConditionExpression"] = condition
        return self.aws.conditional("dynamodb", "update_item", **kwargs)

    # ------------------------------------------------------------------ evidence the ESM reported about itself
    def put_evidence(self, uuid: str, name: str, data: Mapping[str, Any], *, observed_at: datetime) -> bool:
        """Keep ``data`` as ``EVIDENCE#<name>`` of ``uuid`` unless a newer observation is stored already."""
        return self.aws.conditional(
            "dynamodb",
            "put_item",
            TableName=self.table,
            Item=to_attribute_values(
                {"pk": pk_for(uuid), "sk": f"{EVIDENCE_SK_PREFIX}{name}", "observed_at": iso(observed_at), "data": data}
            ),
            ConditionExpression="attribute_not_exists(pk) OR observed_at <= :t",
            ExpressionAttributeValues=to_attribute_values({":t": iso(observed_at)}),
        )

    def get_evidence(self, uuid: str, name: str) -> dict[str, Any] | None:
        """``{"observed_at", "data"}`` of ``EVIDENCE#<name>``, None when none is stored."""
        resp = self.aws.call(
            "dynamodb",
            "get_item",
            TableName=self.table,
            Key=to_attribute_values({"pk": pk_for(uuid), "sk": f"{EVIDENCE_SK_PREFIX}{name}"}),
        )
        item = resp.get("Item")
        if not item:
            return None
        record = from_attribute_values(item)
        return {"observed_at": record.get("observed_at", ""), "data": record.get("data") or {}}

    # ------------------------------------------------------------------ de-duplication markers
    def claim_signal(self, uuid: str, key: str, *, now: datetime, ttl_seconds: int, data: str = "") -> bool:
        """Claim the marker ``SIGNAL#<key>`` of ``uuid`` for ``ttl_seconds``. True for the first claimer in the
        window; False while an unexpired marker exists (DynamoDB's TTL deletion is lazy, so expiry is checked)."""
        epoch = int(now.timestamp())
        record: dict[str, Any] = {
            "pk": pk_for(uuid),
            "sk": f"{SIGNAL_SK_PREFIX}{key}",
            "claimed_at": iso(now),
            "expires_at": epoch + max(1, ttl_seconds),
        }
        if data:
            record["data"] = data
        return self.aws.conditional(
            "dynamodb",
            "put_item",
            TableName=self.table,
            Item=to_attribute_values(record),
            ConditionExpression="attribute_not_exists(pk) OR expires_at <= :now",
            ExpressionAttributeValues=to_attribute_values({":now": epoch}),
        )

    def release_signal(self, uuid: str, key: str) -> None:
        """Drop a marker claimed by :meth:`claim_signal` (its signal could not be delivered: let the next one try)."""
        self.aws.call(
            "dynamodb",
            "delete_item",
            TableName=self.table,
            Key=to_attribute_values({"pk": pk_for(uuid), "sk": f"{SIGNAL_SK_PREFIX}{key}"}),
        )
