"""The ticket ledger's keys and conditional writes (STATE ``pk = TICKET#<uuid>``, ``sk = FP#<fingerprint>``): the
root-cause fingerprint, the ticket id per generation, claiming a new or relapsed ticket, adding an incident, and
recording where the ticket went. :mod:`esm_medic.notify.ticket` drives the transitions."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from esm_medic.aws import error_code, from_attribute_values, to_attribute_values
from esm_medic.notify import outbox
from esm_medic.notify.ticket_render import GAP, _dict
from esm_medic.tables import STATE

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws

logger = Logger(service="esm-medic", child=True)

OPEN, RESOLVED = "open", "resolved"


# ------------------------------------------------------------------------------------------------ keys
def root_cause_of(classification: Mapping[str, Any], diagnosis: Mapping[str, Any] | None) -> str:
    rc = _dict(_dict(diagnosis).get("root_cause"))
    if rc.get("id"):
        return f"cause:{rc['id']}"
    if classification.get("entry"):
        return f"entry:{classification['entry']}"
    text = re.sub(r"\d+", "#", " ".join(str(classification.get("text") or "").lower().split()))
    return f"{GAP}:{hashlib.sha256(text.encode()).hexdigest()[:10]}"


def fingerprint(uuid: str, classification: Mapping[str, Any], diagnosis: Mapping[str, Any] | None) -> str:
    return hashlib.sha256(f"{uuid}|{root_cause_of(classification, diagnosis)}".encode()).hexdigest()[:16]


def ticket_id_for(uuid: str, fp: str, generation: int = 1) -> str:
    digest = hashlib.sha256(f"{uuid}|{fp}".encode()).hexdigest()[:12]
    return f"esm-medic-{digest}" + (f"-r{generation}" if generation > 1 else "")


# ------------------------------------------------------------------------------------------------ ledger
def _ledger(aws: Aws, uuid: str, fp: str) -> dict[str, Any] | None:
    resp = aws.call("dynamodb", "get_item", TableName=STATE.name, Key=outbox.ledger_key(uuid, fp), ConsistentRead=True)
    return from_attribute_values(resp["Item"]) if resp.get("Item") else None


def _claim_new(aws: Aws, record: dict[str, Any], previous: dict[str, Any] | None) -> bool:
    """Create the ledger record (or turn a resolved one into the next generation); False when someone was first."""
    condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
    if previous is not None:
        condition = {
            "ConditionExpression": "#s = :resolved AND generation = :g",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": to_attribute_values(
                {":resolved": RESOLVED, ":g": int(previous.get("generation") or 1)}
            ),
        }
    return aws.conditional("dynamodb", "put_item", TableName=STATE.name, Item=to_attribute_values(record), **condition)


def _add_incident(aws: Aws, uuid: str, fp: str, incident: str) -> bool:
    """Record one more incident on an open ticket; False when it was recorded before (a retry)."""
    return aws.conditional(
        "dynamodb",
        "update_item",
        TableName=STATE.name,
        Key=outbox.ledger_key(uuid, fp),
        UpdateExpression="SET incidents = list_append(incidents, :i), repeats = repeats + :one",
        ConditionExpression="#s = :open AND NOT contains(incidents, :id)",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues=to_attribute_values({":i": [incident], ":one": 1, ":open": OPEN, ":id": incident}),
    )


def _set_location(aws: Aws, uuid: str, fp: str, location: str) -> None:
    try:
        aws.call(
            "dynamodb",
            "update_item",
            TableName=STATE.name,
            Key=outbox.ledger_key(uuid, fp),
            UpdateExpression="SET #l = :l",
            ExpressionAttributeNames={"#l": "location"},
            ExpressionAttributeValues=to_attribute_values({":l": location}),
        )
    except Exception as exc:  # the ticket exists; only its pointer is missing
        logger.warning("cannot record the ticket location", extra={"error": error_code(exc) or type(exc).__name__})
