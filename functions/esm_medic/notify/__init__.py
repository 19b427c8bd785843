"""Tell people what esm-medic did or wants to do: Slack, SNS, local files, stdout; and open tickets.

``notify(aws, kind, context)`` never raises because of a sink: failures are returned in ``errors``. For the kinds
where losing the message would lose work (ticketed, failed, pending-approval), a run where every sink failed
falls back to the local file sink.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from esm_medic.notify.message import KINDS, Message, build_message, render_slack, render_text
from esm_medic.notify.sinks import FileSink, NotifySettings, SinkError, build_sinks
from esm_medic.notify.ticket import open_ticket

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws

#: kinds whose message falls back to the local file sink when every configured sink failed
FALLBACK_KINDS = frozenset({"ticketed", "failed", "pending-approval"})


def send(aws: Aws | None, msg: Message, *, settings: Any = None) -> dict[str, Any]:
    """Send an already built message to every configured sink (see :func:`notify`)."""
    s = NotifySettings.coerce(settings)
    sent: list[str] = []
    errors: list[dict[str, str]] = []
    try:
        sinks, errors = build_sinks(aws, s)
    except ValueError as exc:  # a bad ESM_MEDIC_NOTIFY_SINKS value
        sinks, errors = [], [{"sink": "config", "error": str(exc)}]
    for sink in sinks:
        try:
            sink.send(msg)
            sent.append(sink.name)
        except SinkError as exc:
            errors.append({"sink": sink.name, "error": str(exc)})
        except Exception as exc:  # a sink bug must not break the workflow
            errors.append({"sink": sink.name, "error": f"{type(exc).__name__}: {exc}"})
    fallback = False
    location = ""
    if not sent and msg.kind in FALLBACK_KINDS:
        fallback = True
        try:
            location = FileSink(s.resolved_ticket_dir()).send(msg)
            sent.append("file")
        except SinkError as exc:
            errors.append({"sink": "file", "error": str(exc)})
    out: dict[str, Any] = {"kind": msg.kind, "title": msg.title, "sent": sent, "errors": errors}
    if fallback:
        out["fallback"] = True
        if location:
            out["location"] = location
    return out


def notify(aws: Aws | None, kind: str, context: Mapping[str, Any], *, settings: Any = None) -> dict[str, Any]:
    """Build the message for ``kind`` (one of :data:`KINDS`) from ``context`` and send it to every sink.

    Returns ``{"kind", "title", "sent": [sink names], "errors": [{"sink", "error"}]}`` (plus ``"fallback": true``
    and ``"location"`` when the local file sink caught a message every other sink dropped). Raises ValueError only
    for an unknown ``kind``.
    """
    return send(aws, build_message(kind, context), settings=settings)


__all__ = [
    "KINDS",
    "Message",
    "NotifySettings",
    "SinkError",
    "build_message",
    "notify",
    "open_ticket",
    "render_slack",
    "render_text",
    "send",
]
