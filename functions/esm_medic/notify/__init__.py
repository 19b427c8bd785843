"""Tell people what esm-medic did or wants to do: Slack, SNS, local files, stdout; and open tickets.

``notify(aws, kind, context)`` never raises because of a sink: failures are returned in ``errors``. For the kinds
where losing the message would lose work (ticketed, failed, pending-approval), a run where every sink failed
falls back to the local file sink.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from esm_medic.notify.message import KINDS, Message, build_message, render_slack, render_text
from esm_medic.notify.sinks import FileSink, NotifySettings, SinkError, build_sinks

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws

logger = Logger(service="esm-medic", child=True)

#: loaded on first use: the ticket stack (providers, outbox) is not needed to import a handler
_LAZY = {"open_ticket", "resolve_tickets", "fingerprint"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from esm_medic.notify import ticket

        return getattr(ticket, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    failed: list[str] = []
    for sink in sinks:
        try:
            sink.send(msg)
            sent.append(sink.name)
        except SinkError as exc:
            errors.append({"sink": sink.name, "error": str(exc)})
            failed.append(sink.name)
        except Exception as exc:  # a sink bug must not break the workflow
            logger.exception("notification sink raised", extra={"sink": sink.name})
            errors.append({"sink": sink.name, "error": f"{type(exc).__name__}: {exc}"})
    for err in errors:
        logger.warning("notification not delivered", extra={"kind": msg.kind, "uuid": msg.uuid, **err})
    if aws is not None and failed:
        _keep(aws, msg, failed, errors)
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


def _keep(aws: Aws, msg: Message, failed: list[str], errors: list[dict[str, Any]]) -> None:
    """Put what a sink could not deliver in the outbox (the next drain or ``esm-medic outbox redeliver`` sends it)."""
    from esm_medic.notify import outbox

    for name in failed:
        try:
            item = outbox.enqueue_message(aws, name, msg.to_dict())
        except Exception as exc:  # no STATE table (a bare CLI run): the error entry and the file fallback remain
            logger.warning("cannot keep the notification in the outbox", extra={"sink": name, "error": repr(exc)})
            continue
        for err in errors:
            if err.get("sink") == name and item is not None:
                err["outbox"] = item["item_id"]


def notify(aws: Aws | None, kind: str, context: Mapping[str, Any], *, settings: Any = None) -> dict[str, Any]:
    """Build the message for ``kind`` (one of :data:`KINDS`) from ``context`` and send it to every sink.

    Returns ``{"kind", "title", "sent": [sink names], "errors": [{"sink", "error"}]}`` (plus ``"fallback": true``
    and ``"location"`` when the local file sink caught a message every other sink dropped). Raises ValueError only
    for an unknown ``kind``.
    """
    return send(aws, build_message(kind, context), settings=settings)


def _slack_app(aws: Aws | None, msg: Message, ctx: Mapping[str, Any], channel: str) -> dict[str, Any] | None:
    from esm_medic.notify.slack_app import SlackAppSettings, publish
    from esm_medic.notify.ticket import fingerprint

    app = SlackAppSettings.from_env()
    if not app.enabled or aws is None:
        return None
    cls = ctx.get("classification") if isinstance(ctx.get("classification"), Mapping) else {}
    diag = ctx.get("diagnosis") if isinstance(ctx.get("diagnosis"), Mapping) else {}
    incident = str(ctx.get("incident_id") or fingerprint(msg.uuid, cls or {}, diag or {}))
    return publish(aws, msg, incident=incident, channel=channel or app.channel, settings=app)


def notify_incident(aws: Aws | None, kind: str, context: Mapping[str, Any], *, settings: Any = None) -> dict[str, Any]:
    """The workflow's notification: the configured sinks, the Slack app message of the incident (posted once,
    then updated), the owner's route from tags, and, on recovery, the ESM's open tickets resolved with the proof.
    Due outbox deliveries are retried on the way out. Never raises because of a delivery."""
    from esm_medic.notify import outbox
    from esm_medic.notify.routing import route_for, with_account
    from esm_medic.notify.ticket import resolve_tickets

    context = with_account(aws, context)
    decision = context.get("decision")
    if kind == "notify" and isinstance(decision, Mapping) and decision.get("shadow") is True:
        kind = "shadow"  # mode shadow: the plan is shown as what would have been done, nothing changed
    route = route_for(aws, context)
    msg = build_message(kind, context)
    if route.owner:
        msg.facts.append(("Owner", route.owner))
    result = send(aws, msg, settings=settings)
    result["route"] = route.to_dict()
    slack = _slack_app(aws, msg, context, route.slack_channel)
    if slack is not None:
        result["slack"] = slack
        if slack.get("error"):
            result["errors"].append({"sink": "slack-app", **slack["error"]})
        else:
            result["sent"].append("slack-app")
    if kind == "recovered" and aws is not None:
        verify = context.get("verify") if isinstance(context.get("verify"), Mapping) else {}
        result["tickets"] = resolve_tickets(
            aws,
            uuid=msg.uuid,
            before=context.get("before") or (verify or {}).get("before"),
            after=context.get("after") or (verify or {}).get("after"),
            incident_id=msg.incident_id,
            settings=settings,
        )
    if aws is not None:
        try:
            result["outbox"] = outbox.drain(aws, settings, limit=10)
        except Exception as exc:  # the STATE table may be missing in a bare CLI run
            logger.warning("outbox drain skipped", extra={"error": f"{type(exc).__name__}: {exc}"})
    return result


#: stages of a held failure: shown on the incident's Slack app message only (a failure that may clear by itself
#: does not page anyone through the broadcast sinks)
HOLD_KINDS = frozenset({"suspected", "transient"})


def show_stage(aws: Aws | None, kind: str, state: Mapping[str, Any]) -> dict[str, Any] | None:
    """Move the incident's Slack app message to a held failure's stage (``suspected`` while the workflow waits,
    ``transient`` when it cleared by itself). ``state`` is the workflow state. None when the Slack app is not
    configured or ``kind`` is not a hold stage; never raises."""
    if kind not in HOLD_KINDS:
        return None
    from esm_medic.notify.routing import route_for, with_account

    try:
        outcome = state.get("outcome") if isinstance(state.get("outcome"), Mapping) else {}
        recheck = state.get("recheck") if isinstance(state.get("recheck"), Mapping) else {}
        ctx = with_account(
            aws,
            {
                "uuid": state.get("uuid"),
                "incident_id": state.get("incident_id"),
                "classification": state.get("classification") or {},
                "hold_seconds": state.get("hold_seconds"),
                "reason": (outcome or {}).get("reason") or (recheck or {}).get("reason") or "",
                "account": state.get("account"),
            },
        )
        route = route_for(aws, ctx)
        return _slack_app(aws, build_message(kind, ctx), ctx, route.slack_channel)
    except Exception as exc:  # showing a stage must never break the record step
        logger.warning("hold stage not shown", extra={"kind": kind, "error": f"{type(exc).__name__}: {exc}"})
        return {"action": "failed", "error": {"error": f"{type(exc).__name__}: {exc}"}}


def open_ticket_for_esm(aws: Aws | None, **kwargs: Any) -> dict[str, Any]:
    """:func:`open_ticket` routed by the ESM's tags (ticket project), and the incident's Slack app message moved
    to *ticketed* with the ticket's link."""
    from esm_medic.notify.routing import foreign_account, route_for
    from esm_medic.notify.ticket import open_ticket

    context: dict[str, Any] = {"uuid": kwargs.get("uuid"), "diagnosis": kwargs.get("diagnosis") or {}}
    route = route_for(aws, context)
    named = {**context, "account": kwargs.pop("account", None), "classification": kwargs.get("classification") or {}}
    account = foreign_account(aws, named)
    if account:
        context["account"] = account
    result = open_ticket(aws, project=route.ticket_project, account=account or "", **kwargs)
    result["route"] = route.to_dict()
    if not result["duplicate"]:
        ctx = {
            **context,
            "classification": kwargs.get("classification") or {},
            "incident_id": kwargs.get("incident_id"),
            "reason": kwargs.get("reason"),
            "title": result["title"],
            "ticket": {"ticket_id": result["ticket_id"], "location": result["location"]},
        }
        slack = _slack_app(aws, build_message("ticketed", ctx), ctx, route.slack_channel)
        if slack is not None:
            result["slack"] = slack
            if slack.get("error"):
                result["errors"].append({"sink": "slack-app", **slack["error"]})
    return result


__all__ = [
    "KINDS",
    "Message",
    "NotifySettings",
    "SinkError",
    "build_message",
    "notify",
    "notify_incident",
    "open_ticket",
    "open_ticket_for_esm",
    "render_slack",
    "render_text",
    "resolve_tickets",
    "send",
    "show_stage",
]
