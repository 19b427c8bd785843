"""DynamoDB tables esm-medic uses: one definition, read by the CDK app, the sandbox and the code.

- ``audit``: append-only record of every remediation action (who / what / why, before and after, created ids).
  Key: pk = ``ESM#<uuid>``, sk = ``<iso-timestamp>#<action-id>``; GSI ``by_action`` on ``action_id``.
- ``state``: small mutable records with optional TTL: per-ESM locks, blast-radius budget counters, failed
  verification counters, sweeper snapshots, pending approvals. Key: pk / sk strings, TTL attribute ``expires_at``.
- ``idempotency``: Powertools idempotency records (its default schema: ``id``, TTL ``expiration``).

Table names come from environment variables (set by infra on every Lambda), with defaults for local use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws


@dataclass(frozen=True)
class TableSpec:
    key: str  # logical name
    env: str  # environment variable holding the physical name
    default_name: str
    pk: str
    sk: str | None = None
    ttl: str | None = None
    gsis: tuple[tuple[str, str], ...] = field(default=())  # (index name, partition key attribute)

    @property
    def name(self) -> str:
        return os.environ.get(self.env) or self.default_name


AUDIT = TableSpec("audit", "ESM_MEDIC_AUDIT_TABLE", "esm-medic-audit", "pk", "sk", None, (("by_action", "action_id"),))
STATE = TableSpec("state", "ESM_MEDIC_STATE_TABLE", "esm-medic-state", "pk", "sk", "expires_at")
IDEMPOTENCY = TableSpec("idempotency", "ESM_MEDIC_IDEMPOTENCY_TABLE", "esm-medic-idempotency", "id", None, "expiration")
TABLES: tuple[TableSpec, ...] = (AUDIT, STATE, IDEMPOTENCY)


def spec_for(name: str) -> TableSpec | None:
    """The spec whose physical name is ``name`` (None for a table esm-medic does not define)."""
    return next((t for t in TABLES if t.name == name), None)


def describe_error(exc: BaseException, name: str) -> str:
    """A table error that names the table, and for a missing one says where its name comes from."""
    from esm_medic.aws import error_code, error_message, is_not_found

    spec = spec_for(name)
    if is_not_found(exc):
        where = f" (name from {spec.env}, default {spec.default_name})" if spec else ""
        return f"DynamoDB table {name!r} does not exist{where}: deploy the stack or create it"
    code = error_code(exc) or type(exc).__name__
    return f"DynamoDB table {name!r}: {code}: {error_message(exc)}"


def create_tables(aws: Aws) -> list[str]:
    """Create any missing table (on-demand billing). For the sandbox and tests; production tables come from infra."""
    ddb = aws.client("dynamodb")
    existing = set(aws.paginate("dynamodb", "list_tables", "TableNames"))
    created = []
    for spec in TABLES:
        if spec.name in existing:
            continue
        attrs = {spec.pk: "S"}
        keys: list[dict[str, Any]] = [{"AttributeName": spec.pk, "KeyType": "HASH"}]
        if spec.sk:
            attrs[spec.sk] = "S"
            keys.append({"AttributeName": spec.sk, "KeyType": "RANGE"})
        gsis = []
        for index, attr in spec.gsis:
            attrs[attr] = "S"
            gsis.append(
                {
                    "IndexName": index,
                    "KeySchema": [{"AttributeName": attr, "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "ALL"},
                }
            )
        kwargs: dict[str, Any] = {
            "TableName": spec.name,
            "AttributeDefinitions": [{"AttributeName": k, "AttributeType": v} for k, v in attrs.items()],
            "KeySchema": keys,
            "BillingMode": "PAY_PER_REQUEST",
        }
        if gsis:
            kwargs["GlobalSecondaryIndexes"] = gsis
        ddb.create_table(**kwargs)
        if spec.ttl:
            ddb.update_time_to_live(
                TableName=spec.name, TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl}
            )
        created.append(spec.name)
    return created
