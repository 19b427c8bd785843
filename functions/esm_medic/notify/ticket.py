"""Tickets: one open ticket per ESM and root-cause fingerprint, delivered to every configured provider.

This module drives the ledger's open / comment / resolve / relapse transitions; the ledger's keys and conditional
writes live in ticket_ledger.py (its public names stay importable from here), the rendering in ticket_render.py.

The fingerprint is the ESM uuid plus the root cause (the diagnosis' root-cause id, else the catalogue entry, else
the normalised status text of a catalogue gap), so ten concurrent incidents with one cause make one ticket. The
ledger (STATE ``pk = TICKET#<uuid>``, ``sk = FP#<fingerprint>``) records the ticket, its generation, its incidents
and each provider's ref:

- no record: a conditional put claims it and the ticket opens at every provider (through the outbox);
- an open record: a new incident adds a comment (once per incident); a retry of the same incident adds nothing;
- a resolved record (the ESM recovered, :func:`resolve_tickets` with the before/after proof): a relapse opens the
  next generation, whose body links the previous ticket.

When no provider accepts the ticket, it falls back to the file sink, and the deliveries stay in the outbox.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from esm_medic.notify import outbox
from esm_medic.notify.announce import announce_ticket as _announce
from esm_medic.notify.message import function_name_of
from esm_medic.notify.providers import ProviderError, ProviderSettings, TicketDoc, make_provider
from esm_medic.notify.providers.file import FileProvider
from esm_medic.notify.redact import redact, redact_text
from esm_medic.notify.sinks import NotifySettings
from esm_medic.notify.ticket_ledger import (
    OPEN,
    RESOLVED,
    _add_incident,
    _claim_new,
    _ledger,
    _set_location,
    fingerprint,
    root_cause_of,
    ticket_id_for,
)
from esm_medic.notify.ticket_render import GAP, NO_INCIDENT, _dict, _esm_view, render_ticket
from esm_medic.notify.ticket_render import runbook_params as runbook_params
from esm_medic.tables import STATE

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws

logger = Logger(service="esm-medic", child=True)

BODY_MAX_IN_STATE = 300_000  # DynamoDB items are at most 400 KB
RESOLVED_KEEP_DAYS = 90  # a relapse within this window links the resolved ticket
INCIDENTS_KEPT = 50
DELIVERY_BUDGET = 20.0  # seconds of provider calls per handler invocation (the ticket Lambda has 60)


# ------------------------------------------------------------------------------------------------ delivery
def _deliver_all(
    aws: Aws | None,
    ps: ProviderSettings,
    doc: TicketDoc,
    *,
    op: str,
    generation: int,
    text: str = "",
    key: str = "",
    durable: bool,
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Deliver one op to every configured provider, through the outbox when it is available. Every item is
    enqueued before the first call, and calls stop once :data:`DELIVERY_BUDGET` seconds are spent (the rest stays
    queued for the next drain), so a slow provider never costs the others their durable record."""
    results: dict[str, dict[str, Any]] = {}
    errors: list[dict[str, Any]] = []
    names = ps.names()
    if not (durable and aws is not None):
        for name in names:
            results[name] = _deliver_direct(aws, ps, name, doc, op, text)
    else:
        items = {}
        for name in names:
            item = outbox.enqueue(aws, op=op, provider=name, doc=doc, generation=generation, text=text, key=key)
            if item is None:
                results[name] = {"status": "already-queued"}
            else:
                items[name] = item
        deadline = time.monotonic() + DELIVERY_BUDGET
        for name, item in items.items():
            if time.monotonic() > deadline:
                results[name] = {"item_id": item["item_id"], "status": "queued"}
                continue
            results[name] = outbox.deliver(aws, item, ps)
    for name, res in results.items():
        if res.get("error"):
            errors.append({"sink": name, **res["error"]})
    return results, errors


def _deliver_direct(
    aws: Aws | None, ps: ProviderSettings, name: str, doc: TicketDoc, op: str, text: str
) -> dict[str, Any]:
    """Without the STATE table there is no outbox: try once, report the failure (the file fallback keeps it)."""
    try:
        provider = make_provider(aws, name, ps)
        if op == "open":
            opened = provider.find_open(doc) if name == "file" else None
            opened = opened or provider.open(doc)
            return {"status": outbox.DELIVERED, "ref": opened.ref, "url": opened.url}
        found = provider.find_open(doc)
        if found is None:
            raise ProviderError(name, f"no open ticket to {op}", retryable=False)
        (provider.comment if op == "comment" else provider.resolve)(found.ref, doc, text)
        return {"status": outbox.DELIVERED, "ref": found.ref}
    except ProviderError as exc:
        return {"status": "failed", "error": exc.to_dict()}


def _delivered(results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    return [n for n, r in results.items() if r.get("status") == outbox.DELIVERED]


# ------------------------------------------------------------------------------------------------ open
def open_ticket(
    aws: Aws | None,
    *,
    uuid: str,
    reason: str,
    classification: Mapping[str, Any] | None,
    diagnosis: Mapping[str, Any] | None = None,
    plan: Mapping[str, Any] | None = None,
    outcome: str = "ticketed",
    incident_id: str | None = None,
    settings: Any = None,
    project: str = "",
    account: str | None = None,
) -> dict[str, Any]:
    """Open the ticket for this ESM and root cause, or comment on the open one. Never raises on a delivery or
    store failure (they are in ``errors`` and in the outbox).

    Returns ``{"ticket_id", "fingerprint", "location", "title", "body", "duplicate", "relapse_of", "catalogue_gap",
    "providers": {name: result}, "delivered", "sent", "errors", "fallback"}``.
    """
    s = NotifySettings.coerce(settings)
    ps = ProviderSettings.coerce(settings)
    cls, diag, pl = _dict(classification), _dict(diagnosis), _dict(plan)
    if account is None and aws is not None:  # not decided by the caller: the ESM's account when not the install's
        from esm_medic.notify.routing import foreign_account

        account = foreign_account(aws, {"classification": cls, "diagnosis": diag})
    incident = str(incident_id or pl.get("incident_id") or diag.get("incident_id") or cls.get("incident_id") or "")
    fp = fingerprint(uuid, cls, diag)
    region = _region(aws)
    function = function_name_of(
        {"uuid": uuid, "diagnosis": diag, "classification": cls, "function": cls.get("function")}
    )
    function = function or str(_esm_view(diag).get("function_name") or "")
    errors: list[dict[str, Any]] = []
    durable = aws is not None
    existing: dict[str, Any] | None = None
    if aws is not None:
        try:
            existing = _ledger(aws, uuid, fp)
        except Exception as exc:
            durable = False
            errors.append({"sink": "state", "error": f"cannot record the ticket: {_code(exc)}"})
    generation = 1
    previous = None
    if existing is not None and existing.get("status") == RESOLVED:
        previous, generation = existing, int(existing.get("generation") or 1) + 1
    ticket_id = ticket_id_for(uuid, fp, generation)
    title, body, gap = render_ticket(
        ticket_id=ticket_id,
        uuid=uuid,
        incident_id=incident,
        reason=reason,
        classification=cls,
        diagnosis=diag,
        plan=pl,
        outcome=outcome,
        function=function,
        region=region,
        account=account or "",
    )
    if previous is not None:
        body = _relapse_note(previous) + body
    doc = TicketDoc(
        fingerprint=fp,
        ticket_id=ticket_id,
        uuid=uuid,
        title=title,
        body=body,
        severity="warning" if gap else "error",
        function=function,
        entry=str(cls.get("entry") or GAP),
        project=project,
    )
    now = datetime.now(UTC).isoformat(timespec="seconds")
    if durable and aws is not None and (existing is None or previous is not None):
        record = {
            "pk": f"TICKET#{uuid}",
            "sk": f"FP#{fp}",
            "kind": "ticket",
            "status": OPEN,
            "ticket_id": ticket_id,
            "fingerprint": fp,
            "generation": generation,
            "uuid": uuid,
            "root_cause": redact_text(root_cause_of(cls, diag))[:500],
            "entry": str(cls.get("entry") or GAP),
            "title": title,
            "body": body[:BODY_MAX_IN_STATE],
            "created_at": now,
            "outcome": outcome or "ticketed",
            "incidents": [incident or NO_INCIDENT],
            "repeats": 0,
            "refs": {},
            "urls": {},
            "project": project,
            "previous": [*(previous or {}).get("previous", []), _summary(previous)] if previous else [],
        }
        if not _claim_new(aws, record, previous):
            existing, previous = _ledger(aws, uuid, fp), None  # a concurrent incident opened it first
    if durable and aws is not None and existing is not None and previous is None:
        return _repeat(aws, ps, existing, doc, incident, reason, cls, errors)
    if not durable:
        path = FileProvider(ps.resolved_ticket_dir()).path(doc)
        if path.exists() and "file" in ps.names():
            return _result(existing_doc(doc, path.read_text(encoding="utf-8")), str(path), gap, True, {}, errors)
    results, errs = _deliver_all(aws, ps, doc, op="open", generation=generation, durable=durable)
    errors += errs
    delivered = _delivered(results)
    location = str((results.get("file") or {}).get("ref") or "")
    fallback = False
    if not delivered:
        fallback = True
        try:
            location = FileProvider(ps.resolved_ticket_dir()).open(doc).ref
        except ProviderError as exc:
            errors.append({"sink": "file", **exc.to_dict()})
            location = f"dynamodb://{STATE.name}/TICKET#{uuid}/FP#{fp}" if durable else ""
    if not location:
        location = next((str(r.get("url") or r.get("ref")) for r in results.values() if r.get("ref")), "")
    if durable and aws is not None:
        _set_location(aws, uuid, fp, location)
    sent, notify_errors = _announce(aws, s, doc, location, incident, cls, diag, pl, reason, account=account or "")
    errors += notify_errors
    out = _result(doc, location, gap, False, results, errors)
    out.update(sent=sent, fallback=fallback, relapse_of=(previous or {}).get("ticket_id"))
    logger.info("ticket opened", extra={"ticket_id": ticket_id, "fingerprint": fp, "delivered": delivered})
    return out


def existing_doc(doc: TicketDoc, body: str) -> TicketDoc:
    return TicketDoc(**{**doc.__dict__, "body": body})


def _repeat(
    aws: Aws,
    ps: ProviderSettings,
    rec: dict[str, Any],
    doc: TicketDoc,
    incident: str,
    reason: str,
    cls: Mapping[str, Any],
    errors: list[dict[str, Any]],
) -> dict[str, Any]:
    """The ticket is open: comment once per new incident, nothing for a retry of a known one."""
    doc = TicketDoc(
        **{**doc.__dict__, "ticket_id": str(rec["ticket_id"]), "title": str(rec["title"]), "body": str(rec["body"])}
    )
    results: dict[str, dict[str, Any]] = {}
    if incident and _add_incident(aws, doc.uuid, doc.fingerprint, incident):
        text = (
            f"esm-medic saw this again in incident {incident} at {datetime.now(UTC).isoformat(timespec='seconds')}: "
            f"{redact_text(reason.strip())}"
        )
        if cls.get("text"):
            text += f"\n\nStatus text: {redact_text(str(cls['text'])[:1000])}"
        results, errs = _deliver_all(
            aws,
            ps,
            doc,
            op="comment",
            generation=int(rec.get("generation") or 1),
            text=text,
            key=incident,
            durable=True,
        )
        errors += errs
    gap = str(rec.get("entry") or "") == GAP
    out = _result(doc, str(rec.get("location") or ""), gap, True, results, errors)
    out["incidents"] = list(rec.get("incidents") or []) + ([incident] if results else [])
    return out


def _result(
    doc: TicketDoc,
    location: str,
    gap: bool,
    duplicate: bool,
    results: Mapping[str, Any],
    errors: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "ticket_id": doc.ticket_id,
        "fingerprint": doc.fingerprint,
        "location": location,
        "title": doc.title,
        "body": doc.body,
        "duplicate": duplicate,
        "catalogue_gap": gap,
        "providers": dict(results),
        "delivered": _delivered(results),
        "pending": [r["item_id"] for r in results.values() if r.get("item_id") and r.get("status") != "delivered"],
        "sent": [],
        "errors": errors,
        "fallback": False,
        "relapse_of": None,
    }


def _summary(rec: Mapping[str, Any] | None) -> dict[str, Any]:
    r = rec or {}
    keys = ("ticket_id", "generation", "created_at", "resolved_at", "refs", "urls", "location")
    return {k: r.get(k) for k in keys}


def _relapse_note(previous: Mapping[str, Any]) -> str:
    links = [f"{p}: {u or (previous.get('refs') or {}).get(p)}" for p, u in (previous.get("urls") or {}).items()]
    refs = ", ".join(links) or str(previous.get("location") or "")
    return (
        f"> **Relapse.** The same root cause was resolved in ticket `{previous.get('ticket_id')}` "
        f"({previous.get('resolved_at') or 'earlier'}); previous ticket: {refs}\n\n"
    )


# ------------------------------------------------------------------------------------------------ resolve
def resolve_tickets(
    aws: Aws | None,
    *,
    uuid: str,
    before: Any = None,
    after: Any = None,
    incident_id: str | None = None,
    settings: Any = None,
) -> dict[str, Any]:
    """The ESM recovered: resolve each of its open tickets with the proof (status before and after)."""
    from esm_medic.aws import from_attribute_values, to_attribute_values

    out: dict[str, Any] = {"resolved": [], "providers": {}, "errors": []}
    if aws is None or not uuid:
        return out
    ps = ProviderSettings.coerce(settings)
    try:
        items = aws.paginate(
            "dynamodb",
            "query",
            "Items",
            TableName=STATE.name,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :fp)",
            FilterExpression="#s = :open",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=to_attribute_values({":pk": f"TICKET#{uuid}", ":fp": "FP#", ":open": OPEN}),
        )
        records = [from_attribute_values(i) for i in items]
    except Exception as exc:
        out["errors"].append({"sink": "state", "error": f"cannot read the tickets: {_code(exc)}"})
        return out
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    proof = (
        f"esm-medic verified the recovery at {stamp}"
        + (f" (incident {incident_id})" if incident_id else "")
        + f".\n\nBefore: {_evidence(before)}\nAfter: {_evidence(after)}"
    )
    for rec in records:
        ok = aws.conditional(
            "dynamodb",
            "update_item",
            TableName=STATE.name,
            Key=outbox.ledger_key(uuid, str(rec["fingerprint"])),
            UpdateExpression="SET #s = :r, resolved_at = :t, expires_at = :e",
            ConditionExpression="#s = :open AND generation = :g",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=to_attribute_values(
                {
                    ":r": RESOLVED,
                    ":t": stamp,
                    ":e": int(time.time()) + RESOLVED_KEEP_DAYS * 86400,
                    ":open": OPEN,
                    ":g": int(rec.get("generation") or 1),
                }
            ),
        )
        if not ok:
            continue  # resolved (or relapsed) concurrently
        doc = TicketDoc(
            fingerprint=str(rec["fingerprint"]),
            ticket_id=str(rec["ticket_id"]),
            uuid=uuid,
            title=str(rec.get("title") or ""),
            body="",
            project=str(rec.get("project") or ""),
        )
        results, errs = _deliver_all(
            aws, ps, doc, op="resolve", generation=int(rec.get("generation") or 1), text=proof, durable=True
        )
        out["resolved"].append(doc.ticket_id)
        out["providers"][doc.ticket_id] = results
        out["errors"] += errs
    return out


def _evidence(value: Any) -> str:
    if isinstance(value, Mapping):
        clean = redact({k: v for k, v in value.items() if v not in (None, "")})
        return ", ".join(f"{k}={v}" for k, v in clean.items()) or "—"
    return redact_text(str(value)) if value not in (None, "") else "—"


# ------------------------------------------------------------------------------------------------ helpers
def _region(aws: Aws | None) -> str:
    try:
        return aws.region if aws is not None else ""
    except Exception:
        return ""


def _code(exc: BaseException) -> str:
    from esm_medic.aws import error_code

    return error_code(exc) or f"{type(exc).__name__}: {exc}"
