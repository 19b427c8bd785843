"""The snapshot item formats in the STATE table (see :mod:`esm_medic.detect.snapshot` for the records and how they
are written): keys, the digest entry format, and the :class:`Status` / :class:`Snapshot` values with their
DynamoDB encoding."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from esm_medic.aws import from_attribute_values, to_attribute_values

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.esm import EsmConfig

SNAPSHOT_SK = "SNAPSHOT"
DIGEST_PK = "SNAPDIGEST"
DIGEST_SHARDS = 256
DIGEST_BUSY = "!"
SIGNAL_SK_PREFIX = "SIGNAL#"
EVIDENCE_SK_PREFIX = "EVIDENCE#"
POLLER_STATUS_EVIDENCE = "POLLER_STATUS"

#: ESM states that are on their way somewhere: never reported as errors (the watch rule follows them)
TRANSITIONAL_STATES = frozenset({"Creating", "Enabling", "Updating", "Disabling", "Deleting"})

KIND_ERROR = "error"
KIND_OK = "ok"
KIND_UNKNOWN = "unknown"  # never seen settled (a first sighting that is still pending)
ORIGIN_LOG = "esm-log"


def pk_for(uuid: str) -> str:
    return f"ESM#{uuid}"


def iso(ts: datetime) -> str:
    """UTC ISO-8601 with milliseconds and a ``Z``."""
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _norm(text: str | None) -> str:
    return " ".join(str(text or "").split())


def shard_of(uuid: str, shards: int = DIGEST_SHARDS) -> str:
    return f"{int(hashlib.sha1(uuid.encode()).hexdigest()[:8], 16) % shards:03d}"


def status_hash(key: tuple[str, ...]) -> str:
    """A short stable hash of a status comparison key (the sweeper's folded (State, reason, result))."""
    return hashlib.sha1("\x1f".join(key).encode()).hexdigest()[:12]


def digest_entry(version: int, hash_: str | None) -> str:
    """``<version:010d>:<hash>``, or ``<version>:!`` (busy) when ``hash_`` is None. Zero-padded so that entries
    compare by version as strings, and a hash (hex) sorts after the busy marker of the same version."""
    return f"{version:010d}:{hash_ or DIGEST_BUSY}"


def digest_hash(entry: str | None) -> str | None:
    """The status hash of a digest entry, None when absent or busy."""
    if not entry or ":" not in entry:
        return None
    h = entry.split(":", 1)[1]
    return None if h == DIGEST_BUSY else h


@dataclass(frozen=True)
class Status:
    """The three status fields of an ESM, whitespace-normalised."""

    state: str = ""
    reason: str = ""
    result: str = ""

    @classmethod
    def of(cls, state: Any = "", reason: Any = "", result: Any = "") -> Status:
        return cls(_norm(state), _norm(reason), _norm(result))

    @classmethod
    def from_esm(cls, esm: EsmConfig) -> Status:
        return cls.of(esm.state, esm.state_transition_reason, esm.last_processing_result)

    @classmethod
    def from_api(cls, item: Mapping[str, Any]) -> Status:
        return cls.of(item.get("State"), item.get("StateTransitionReason"), item.get("LastProcessingResult"))

    @property
    def transitional(self) -> bool:
        return self.state in TRANSITIONAL_STATES

    def to_api(self) -> dict[str, str]:
        return {"State": self.state, "StateTransitionReason": self.reason, "LastProcessingResult": self.result}

    def to_record(self) -> dict[str, str]:
        return {"State": self.state, "Reason": self.reason, "Result": self.result}

    @classmethod
    def from_record(cls, value: Any) -> Status | None:
        if not isinstance(value, Mapping):
            return None
        return cls(*(str(value.get(k) or "") for k in ("State", "Reason", "Result")))


@dataclass(frozen=True)
class Snapshot:
    """One ESM's stored status. ``version == 0`` means "not stored yet"."""

    uuid: str
    version: int = 0
    status: Status | None = None  # None: never settled (unknown)
    kind: str = KIND_UNKNOWN
    since: str = ""
    pending: Status | None = None
    pending_since: str = ""
    incident_id: str = ""  # the open incident ("" when none)
    last_incident_id: str = ""  # the last closed incident
    entry: str | None = None
    step: str = ""
    function_arn: str = ""
    event_source: str = ""
    source_kind: str = ""
    created_at: str = ""
    updated_at: str = ""
    outbox: str = ""  # JSON event detail still to deliver ("" when none)
    outbox_at: str = ""
    status_origin: str = ""  # "" (the ESM API) or ORIGIN_LOG (an ESM system-log record, before the API showed it)

    @property
    def stored(self) -> bool:
        return self.version > 0

    def evolve(self, **changes: Any) -> Snapshot:
        return replace(self, **changes)

    def outbox_detail(self) -> dict[str, Any] | None:
        if not self.outbox:
            return None
        try:
            value = json.loads(self.outbox)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    # ------------------------------------------------------------------ DynamoDB encoding (boto3's serializer)
    def to_record(self) -> dict[str, Any]:
        """The plain record (strings, ints, maps); empty fields are left out."""
        record: dict[str, Any] = {
            "pk": pk_for(self.uuid),
            "sk": SNAPSHOT_SK,
            "uuid": self.uuid,
            "version": self.version,
            "kind": self.kind,
        }
        if self.status is not None:
            record["status"] = self.status.to_record()
        if self.pending is not None:
            record["pending"] = self.pending.to_record()
        for name in _TEXT_FIELDS:
            value = getattr(self, name)
            if value:
                record[name] = str(value)
        return record

    def to_item(self) -> dict[str, Any]:
        return to_attribute_values(self.to_record())

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Snapshot:
        record = from_attribute_values(item)

        def s(name: str) -> str:
            value = record.get(name)
            return value if isinstance(value, str) else ""

        try:
            version = int(record.get("version") or 0)
        except (TypeError, ValueError):
            version = 0
        return cls(
            uuid=s("uuid") or s("pk").removeprefix("ESM#"),
            version=version,
            status=Status.from_record(record.get("status")),
            kind=s("kind") or KIND_UNKNOWN,
            pending=Status.from_record(record.get("pending")),
            entry=s("entry") or None,
            **{name: s(name) for name in _TEXT_FIELDS if name != "entry"},
        )


_TEXT_FIELDS = (
    "since",
    "pending_since",
    "incident_id",
    "last_incident_id",
    "entry",
    "step",
    "function_arn",
    "event_source",
    "source_kind",
    "created_at",
    "updated_at",
    "outbox",
    "outbox_at",
    "status_origin",
)
