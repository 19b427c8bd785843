"""Announce a new ticket on Slack (webhook) and SNS when configured; the SNS mail carries the whole ticket."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from esm_medic.notify.message import build_message
from esm_medic.notify.providers import TicketDoc
from esm_medic.notify.sinks import NotifySettings, SinkError, build_sinks

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws


def announce_ticket(
    aws: Aws | None,
    settings: NotifySettings,
    doc: TicketDoc,
    location: str,
    incident: str,
    cls: dict[str, Any],
    diag: dict[str, Any],
    plan: dict[str, Any],
    reason: str,
    *,
    account: str = "",
) -> tuple[list[str], list[dict[str, Any]]]:
    """Tell Slack / SNS (when configured) that a ticket was opened; the SNS mail carries the whole ticket."""
    names = [n for n in settings.sink_names() if n in ("slack", "sns")]
    if not names:
        return [], []
    chosen = NotifySettings.coerce({**settings.__dict__, "sinks": names})
    context = {
        "uuid": doc.uuid,
        "incident_id": incident,
        "classification": cls,
        "diagnosis": diag,
        "plan": plan,
        "reason": reason,
        "title": doc.title,
        "ticket": {"ticket_id": doc.ticket_id, "location": location},
        **({"account": account} if account else {}),
    }
    msg = build_message("ticketed", context)
    sinks, errors = build_sinks(aws, chosen)
    sent: list[str] = []
    for sink in sinks:
        msg.details = doc.body if sink.name == "sns" else ""
        try:
            sink.send(msg)
            sent.append(sink.name)
        except SinkError as exc:
            errors.append({"sink": sink.name, "error": str(exc)})
        except Exception as exc:  # a sink must never break ticketing
            errors.append({"sink": sink.name, "error": f"{type(exc).__name__}: {exc}"})
    return sent, [dict(e) for e in errors]
