"""The notification model and its renderers (plain text / Markdown, Slack Block Kit, SNS subject).

A :class:`Message` is built once from the workflow context (:func:`build_message`) and rendered per sink. No AWS
and no network here. Everything shown passes through :func:`redact_text` / :func:`redact` first: status texts and
ESM configs never leak secret values (passwords, PEM keys, tokens) into Slack, SNS, tickets or logs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from esm_medic.notify.pages import render_approval_page as render_approval_page
from esm_medic.notify.pages import render_result_page as render_result_page
from esm_medic.notify.redact import REDACTED as REDACTED
from esm_medic.notify.redact import is_secret_key as is_secret_key
from esm_medic.notify.redact import redact, redact_text

#: Notification kinds (the workflow names them).
KINDS: tuple[str, ...] = (
    "recovered",
    "pending-approval",
    "ticketed",
    "failed",
    "notify",
    "shadow",
    "suspected",
    "transient",
)

_KIND_LABEL = {
    "recovered": "Recovered",
    "pending-approval": "Approval needed",
    "ticketed": "Ticket opened",
    "failed": "Remediation failed",
    "notify": "Problem detected",
    "shadow": "Shadow plan (no change made)",
    "suspected": "Suspected failure (holding before acting)",
    "transient": "Transient failure (recovered by itself)",
}
_KIND_EMOJI = {
    "recovered": ":white_check_mark:",
    "pending-approval": ":raised_hand:",
    "ticketed": ":ticket:",
    "failed": ":x:",
    "notify": ":warning:",
    "shadow": ":crystal_ball:",
    "suspected": ":hourglass_flowing_sand:",
    "transient": ":leaves:",
}
_KIND_SEVERITY = {
    "recovered": "info",
    "pending-approval": "warning",
    "ticketed": "warning",
    "failed": "error",
    "notify": "warning",
    "shadow": "info",
    "suspected": "info",
    "transient": "info",
}

# Slack Block Kit limits (https://api.slack.com/reference/block-kit/blocks)
SLACK_HEADER_MAX = 150
SLACK_SECTION_MAX = 3000
SLACK_FALLBACK_MAX = 3000
SLACK_MAX_BLOCKS = 50
SNS_SUBJECT_MAX = 99


# ------------------------------------------------------------------------------------------------ model
@dataclass
class ApprovalInfo:
    approval_id: str
    approve_url: str = ""
    reject_url: str = ""
    expires_at: str = ""
    required_approvals: int = 1


@dataclass
class Message:
    """One notification, independent of where it goes."""

    kind: str
    title: str
    summary: str
    uuid: str = ""
    function: str = ""
    step: str = ""
    entry: str = ""
    root_cause: str = ""
    fix: str = ""
    incident_id: str = ""
    account: str = ""  # the ESM's account when it is not the install's own (a central install acting in a member)
    facts: list[tuple[str, str]] = field(default_factory=list)  # extra (label, value) lines: region, mode, ...
    before: dict[str, Any] | None = None  # evidence before the fix (recovered)
    after: dict[str, Any] | None = None  # evidence after the fix (recovered)
    links: list[tuple[str, str]] = field(default_factory=list)  # (label, url)
    approval: ApprovalInfo | None = None
    details: str = ""  # extra Markdown (plan, error text, ticket summary)

    @property
    def severity(self) -> str:
        return _KIND_SEVERITY.get(self.kind, "info")

    @property
    def label(self) -> str:
        return _KIND_LABEL.get(self.kind, self.kind)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["severity"] = self.severity
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Message:
        """The inverse of :meth:`to_dict` (the outbox keeps undelivered messages as dicts)."""
        d = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        d["facts"] = [tuple(f) for f in d.get("facts") or []]
        d["links"] = [tuple(link) for link in d.get("links") or []]
        if isinstance(d.get("approval"), Mapping):
            d["approval"] = ApprovalInfo(**d["approval"])
        return cls(**d)


# ------------------------------------------------------------------------------------------------ context access
def _get(obj: Any, *path: str) -> Any:
    cur = obj
    for key in path:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(key)
    return cur


def _m(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _first(*values: Any) -> str:
    for v in values:
        if v not in (None, "", [], {}):
            return str(v)
    return ""


def function_name_of(context: Mapping[str, Any]) -> str:
    """The function name from whatever the context carries (name, ARN, ESM item, diagnosis)."""
    raw = _first(
        context.get("function"),
        context.get("function_name"),
        context.get("FunctionName"),
        _get(context, "esm", "FunctionArn"),
        _get(context, "esm", "function_arn"),
        _get(context, "esm", "function"),
        _get(context, "diagnosis", "esm", "FunctionArn"),
        _get(context, "diagnosis", "esm", "function_arn"),
        _get(context, "diagnosis", "esm", "function"),
        _get(context, "diagnosis", "function_arn"),
        context.get("function_arn"),
        context.get("FunctionArn"),
    )
    if raw.startswith("arn:"):
        parts = raw.split(":")
        return parts[6] if len(parts) > 6 else raw
    return raw


def _evidence(value: Any) -> dict[str, Any] | None:
    if isinstance(value, Mapping) and value:
        keep = {k: v for k, v in value.items() if v not in (None, "")}
        return redact(keep) if keep else None
    if isinstance(value, str) and value:
        return {"status": redact_text(value)}
    return None


def _links(context: Mapping[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    raw = context.get("links")
    if isinstance(raw, Mapping):
        out += [(str(k), str(v)) for k, v in raw.items() if isinstance(v, str) and v.startswith(("http", "file"))]
    elif isinstance(raw, Sequence) and not isinstance(raw, str):
        for item in raw:
            if isinstance(item, Mapping) and item.get("url"):
                out.append((str(item.get("label") or item["url"]), str(item["url"])))
            elif isinstance(item, str):
                out.append((item, item))
    ticket = context.get("ticket")
    if isinstance(ticket, Mapping) and ticket.get("location"):
        out.append((f"Ticket {ticket.get('ticket_id', '')}".strip(), str(ticket["location"])))
    return out


def build_message(kind: str, context: Mapping[str, Any]) -> Message:
    """Build the message for ``kind`` from a workflow context. Lenient: every key is optional.

    Keys read: uuid, incident_id, function / function_name / esm.FunctionArn, classification {entry, title, step,
    text}, diagnosis {root_cause {id, summary, fix}, step}, plan {fix/action, summary, params}, verify / evidence
    {before, after}, approval {approval_id, approve_url, reject_url, expires_at}, ticket {ticket_id, location},
    error / reason, mode, region, account, links, title, summary.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}; expected one of {', '.join(KINDS)}")
    ctx: Mapping[str, Any] = context if isinstance(context, Mapping) else {}
    cls = _m(ctx.get("classification"))
    diag = _m(ctx.get("diagnosis"))
    plan = _m(ctx.get("plan"))
    rc = _m(diag.get("root_cause"))
    uuid = _first(ctx.get("uuid"), ctx.get("UUID"), diag.get("uuid"), cls.get("uuid"))
    function = function_name_of(ctx)
    entry = _first(cls.get("entry"), ctx.get("entry"))
    entry_title = _first(cls.get("title"), ctx.get("entry_title"))
    step = _first(diag.get("step"), cls.get("step"), ctx.get("step"))
    root_cause = _first(
        f"{rc.get('id')}: {rc.get('summary')}" if rc.get("id") and rc.get("summary") else None,
        rc.get("id"),
        ctx.get("root_cause") if isinstance(ctx.get("root_cause"), str) else None,
    )
    fix = _first(plan.get("fix"), plan.get("action"), rc.get("fix"), ctx.get("fix"))
    fix_summary = _first(plan.get("summary"), plan.get("description"))
    if fix and fix_summary:
        fix = f"{fix}: {fix_summary}"
    account = account_named(ctx)
    who = f"{function or 'unknown function'} ESM {uuid or '?'}" + (f" (account {account})" if account else "")
    what = entry_title or entry or (step and f"step {step}") or "unrecognised problem"
    title = _first(ctx.get("title"), f"[esm-medic] {_KIND_LABEL[kind]}: {who} — {what}")
    summary = _first(ctx.get("summary"), _default_summary(kind, ctx, what))
    facts: list[tuple[str, str]] = []
    for label, key in (("Mode", "mode"), ("Region", "region"), ("Reason", "reason")):
        val = ctx.get(key)
        if isinstance(val, (str, int)) and str(val):
            facts.append((label, redact_text(str(val))))
    approvers = ctx.get("approvers")
    if kind == "pending-approval" and isinstance(approvers, Sequence) and not isinstance(approvers, str) and approvers:
        facts.append(("Approvers", redact_text(", ".join(str(a) for a in list(approvers)[:20]))))
    requested_by = ctx.get("requested_by")
    if isinstance(requested_by, str) and requested_by.strip() and requested_by != "-":
        facts.append(("Requested by", redact_text(requested_by.strip()[:200])))
    if cls.get("confidence") is not None:
        facts.append(("Confidence", f"{float(cls['confidence']):.2f}"))
    text = cls.get("text")
    if isinstance(text, str) and text:
        facts.append(("Status text", redact_text(text[:500])))
    verify = _m(ctx.get("verify"))
    evidence = _m(ctx.get("evidence"))
    before = _evidence(_first_obj(evidence.get("before"), verify.get("before"), ctx.get("before")))
    after = _evidence(_first_obj(evidence.get("after"), verify.get("after"), ctx.get("after")))
    approval = None
    appr = ctx.get("approval")
    if isinstance(appr, Mapping) and appr.get("approval_id"):
        approval = ApprovalInfo(
            approval_id=str(appr["approval_id"]),
            approve_url=str(appr.get("approve_url") or ""),
            reject_url=str(appr.get("reject_url") or ""),
            expires_at=str(appr.get("expires_at") or ""),
            required_approvals=int(appr.get("required_approvals") or 1),
        )
    details = _details(kind, ctx, plan)
    return Message(
        kind=kind,
        title=redact_text(title),
        summary=redact_text(summary),
        uuid=uuid,
        function=function,
        step=step,
        entry=entry,
        root_cause=redact_text(root_cause),
        fix=redact_text(fix),
        incident_id=_first(ctx.get("incident_id"), plan.get("incident_id")),
        account=account,
        facts=facts,
        before=before if kind == "recovered" or before else None,
        after=after,
        links=_links(ctx),
        approval=approval,
        details=details,
    )


def account_named(ctx: Mapping[str, Any]) -> str:
    """The ``account`` the context names (a 12-digit id; callers set it only when it is not the install's own)."""
    value = str(ctx.get("account") or "").strip()
    return value if re.fullmatch(r"\d{12}", value) else ""


def _first_obj(*values: Any) -> Any:
    for v in values:
        if v not in (None, "", {}, []):
            return v
    return None


def _default_summary(kind: str, ctx: Mapping[str, Any], what: str) -> str:
    error = _first(ctx.get("error"), _get(ctx, "error", "Cause"), ctx.get("cause"))
    if isinstance(ctx.get("error"), Mapping):
        error = _first(_get(ctx, "error", "Cause"), _get(ctx, "error", "Error"), _get(ctx, "error", "message"))
    if kind == "recovered":
        return f"The ESM is healthy again after the fix ({what})."
    if kind == "pending-approval":
        return f"A fix for '{what}' is ready and waits for a human decision."
    if kind == "ticketed":
        return f"'{what}' needs a human: a ticket with the runbook was opened."
    if kind == "failed":
        return f"Remediation failed: {error}" if error else "Remediation failed; see the details."
    if kind == "shadow":
        return f"Shadow mode: this is what esm-medic would do for '{what}'. Nothing was changed."
    if kind == "suspected":
        hold = ctx.get("hold_seconds")
        wait = f"{hold} s" if isinstance(hold, int) and not isinstance(hold, bool) and hold > 0 else "a while"
        return f"esm-medic saw '{what}' and waits {wait} to see whether it persists before acting. Nothing changed yet."
    if kind == "transient":
        return f"'{what}' cleared by itself during the hold: esm-medic changed nothing."
    return f"esm-medic found '{what}' (notify mode: no change made)."


def _details(kind: str, ctx: Mapping[str, Any], plan: Mapping[str, Any]) -> str:
    parts: list[str] = []
    if plan and kind in ("pending-approval", "shadow", "notify", "failed"):
        diff = plan.get("diff")
        if isinstance(diff, Sequence) and not isinstance(diff, str) and diff:
            changed = "\n".join(redact_text(str(line)) for line in list(diff)[:60])
            parts.append("Changes (one diff for the whole plan):\n```\n" + changed + "\n```")
        params = plan.get("params") or plan.get("fix_params")
        if isinstance(params, Mapping) and params:
            parts.append("Plan parameters:\n```\n" + json.dumps(redact(params), indent=1, sort_keys=True) + "\n```")
        calls = plan.get("calls") or plan.get("steps")
        if isinstance(calls, Sequence) and not isinstance(calls, str) and calls:
            lines = [f"- {redact_text(_call_line(c))}" for c in list(calls)[:20]]
            parts.append("Planned calls:\n" + "\n".join(lines))
        cost = plan.get("cost") or plan.get("monthly_cost")
        if cost:
            parts.append(f"Estimated cost: {redact_text(str(cost))}")
    error = ctx.get("error")
    if kind == "failed" and isinstance(error, Mapping):
        parts.append("Error:\n```\n" + redact_text(json.dumps(error, indent=1, default=str))[:1500] + "\n```")
    extra = ctx.get("details")
    if isinstance(extra, str) and extra:
        parts.append(redact_text(extra))
    return "\n\n".join(parts)


def _call_line(call: Any) -> str:
    if isinstance(call, Mapping):
        op = _first(call.get("operation"), call.get("op"), call.get("action"), call.get("name"))
        svc = _first(call.get("service"))
        return f"{svc + ':' if svc else ''}{op}" + (f" — {call['summary']}" if call.get("summary") else "")
    return str(call)


# ------------------------------------------------------------------------------------------------ renderers
def _evidence_line(ev: Mapping[str, Any] | None) -> str:
    if not ev:
        return "—"
    return ", ".join(f"{k}={v}" for k, v in ev.items())


def render_text(msg: Message) -> str:
    """Plain text that also reads as Markdown (SNS e-mail, stdout, files)."""
    lines = [f"# {msg.title}", "", msg.summary, ""]
    rows = [
        ("Kind", msg.label),
        ("ESM", msg.uuid),
        ("Account", msg.account),
        ("Function", msg.function),
        ("Incident", msg.incident_id),
        ("Catalogue entry", msg.entry),
        ("Failed step", msg.step),
        ("Root cause", msg.root_cause),
        ("Fix", msg.fix),
        *msg.facts,
    ]
    lines += [f"- **{k}:** {v}" for k, v in rows if v]
    if msg.kind == "recovered" or msg.before or msg.after:
        lines += ["", "## Evidence", f"- Before: {_evidence_line(msg.before)}", f"- After: {_evidence_line(msg.after)}"]
    if msg.approval:
        a = msg.approval
        lines += ["", "## Decision", f"Approval id: {a.approval_id}"]
        if a.expires_at:
            lines.append(f"Expires: {a.expires_at}")
        if a.required_approvals > 1:
            lines.append(f"Approvals required: {a.required_approvals} different people")
        if a.approve_url:
            lines.append(f"Approve (opens a confirmation page): {a.approve_url}")
        if a.reject_url:
            lines.append(f"Reject (opens a confirmation page): {a.reject_url}")
        lines.append("Opening a link changes nothing: only the confirmation button on that page decides.")
    if msg.details:
        lines += ["", msg.details]
    if msg.links:
        lines += ["", "## Links", *(f"- {label}: {url}" for label, url in msg.links)]
    return "\n".join(lines).strip() + "\n"


render_markdown = render_text


def slack_escape(text: str) -> str:
    """Escape the three characters Slack mrkdwn treats specially."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _md_to_mrkdwn(text: str) -> str:
    """Minimal Markdown -> Slack mrkdwn: escape, ``**b**`` -> ``*b*``, headings -> bold lines."""
    out = []
    for line in slack_escape(text).splitlines():
        if line.startswith("#"):
            line = "*" + line.lstrip("#").strip() + "*"
        out.append(re.sub(r"\*\*(.+?)\*\*", r"*\1*", line))
    return "\n".join(out)


_ASCII_SUBST = {
    "\u2014": "-",
    "\u2013": "-",
    "\u2026": "...",
    "\u2019": "'",
    "\u2018": "'",
    "\u201c": '"',
    "\u201d": '"',
}


def render_subject(msg: Message) -> str:
    """An SNS subject: ASCII, one line, under 100 characters, starting with a letter, digit or punctuation."""
    text = msg.title
    for k, v in _ASCII_SUBST.items():
        text = text.replace(k, v)
    text = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in " ".join(text.split()))
    text = text.strip() or "esm-medic notification"
    return text if len(text) <= SNS_SUBJECT_MAX else text[: SNS_SUBJECT_MAX - 3] + "..."


def render_slack(msg: Message) -> dict[str, Any]:
    """A Slack message payload (Block Kit built with slack_sdk's models; see :mod:`esm_medic.notify.slack_blocks`)."""
    from esm_medic.notify.slack_blocks import render_slack as _render  # slack_blocks imports this module

    return _render(msg)


APPROVE_ACTION_ID = "esm_medic_approve"
REJECT_ACTION_ID = "esm_medic_reject"
