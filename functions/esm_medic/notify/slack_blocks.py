"""Slack Block Kit for a notification, built with ``slack_sdk``'s block models (validated by the SDK).

Used by both Slack modes: the incoming webhook (one payload per message) and the Slack app (``chat.postMessage``
once, then ``chat.update``). Approval requests carry Approve / Reject buttons whose ``value`` is the opaque approval
id (never the task token); the app's interactivity URL points at the approval_http handler's ``/slack/actions``.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from esm_medic.notify.message import (
    _KIND_EMOJI,
    APPROVE_ACTION_ID,
    REJECT_ACTION_ID,
    SLACK_FALLBACK_MAX,
    SLACK_HEADER_MAX,
    SLACK_MAX_BLOCKS,
    SLACK_SECTION_MAX,
    Message,
    _cut,
    _evidence_line,
    _md_to_mrkdwn,
    slack_escape,
)

#: where an incident stands, shown on the Slack app message as it moves. "suspected" is a detected failure held
#: before acting (it may clear by itself: "transient"); "shadow" is mode shadow's plan, of which nothing was applied.
STAGE_OF_KIND = {
    "notify": "diagnosed",
    "suspected": "suspected: holding before acting",
    "transient": "transient: recovered by itself, nothing changed",
    "shadow": "shadow: plan shown, nothing changed",
    "pending-approval": "waiting for approval",
    "recovered": "verified",
    "ticketed": "ticketed",
    "failed": "failed",
}


def _md(text: str, limit: int = SLACK_SECTION_MAX) -> MarkdownTextObject:
    return MarkdownTextObject(text=_cut(text, limit))


def build_blocks(msg: Message, *, stage: str = "") -> list[Block]:
    esc = slack_escape
    where = f" · account {msg.account}" if msg.account else ""
    header = _cut(f"{msg.label}: {msg.function or 'ESM'} {msg.uuid[:8]}{where}".strip(), SLACK_HEADER_MAX)
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=header, emoji=True)),
        SectionBlock(text=_md(f"{_KIND_EMOJI.get(msg.kind, '')} *{esc(msg.title)}*\n{esc(msg.summary)}")),
    ]
    if stage:
        blocks.append(ContextBlock(elements=[_md(f"Stage: *{esc(stage)}*")]))
    fields = [
        (k, v)
        for k, v in (
            ("ESM", msg.uuid),
            ("Account", msg.account),
            ("Function", msg.function),
            ("Entry", msg.entry),
            ("Step", msg.step),
            ("Incident", msg.incident_id),
        )
        if v
    ]
    if fields:
        blocks.append(SectionBlock(fields=[_md(f"*{k}*\n`{esc(v)}`", 2000) for k, v in fields[:10]]))
    cause = [
        f"*Root cause:* {esc(msg.root_cause)}" if msg.root_cause else "",
        f"*Fix:* {esc(msg.fix)}" if msg.fix else "",
    ]
    if msg.root_cause or msg.fix:
        blocks.append(SectionBlock(text=_md("\n".join(c for c in cause if c))))
    if msg.facts:
        blocks.append(SectionBlock(text=_md("\n".join(f"*{esc(k)}:* {esc(v)}" for k, v in msg.facts))))
    if msg.kind == "recovered" or msg.before or msg.after:
        text = f"*Before:* {esc(_evidence_line(msg.before))}\n*After:* {esc(_evidence_line(msg.after))}"
        blocks.append(SectionBlock(text=_md(text)))
    if msg.details:
        blocks.append(SectionBlock(text=_md(_md_to_mrkdwn(msg.details))))
    if msg.approval:
        blocks += _approval_blocks(msg)
    if msg.links:
        text = " · ".join(f"<{url}|{esc(label)}>" for label, url in msg.links[:10] if url.startswith("http"))
        if text:
            blocks.append(ContextBlock(elements=[_md(text)]))
    return blocks[:SLACK_MAX_BLOCKS]


def _approval_blocks(msg: Message) -> list[Block]:
    assert msg.approval is not None
    a, esc = msg.approval, slack_escape
    parts = [f"Approval `{esc(a.approval_id)}`"]
    if a.expires_at:
        parts.append(f"expires {esc(a.expires_at)}")
    if a.required_approvals > 1:
        parts.append(f"needs {a.required_approvals} different approvers")
    confirm = ConfirmObject(
        title="Apply this fix?",
        text=_md(esc(msg.fix or msg.title), 300),
        confirm="Approve",
        deny="Cancel",
    )
    return [
        ContextBlock(elements=[_md(" · ".join(parts))]),
        ActionsBlock(
            block_id=f"esm_medic_approval_{a.approval_id}"[:255],
            elements=[
                ButtonElement(
                    text="Approve", action_id=APPROVE_ACTION_ID, value=a.approval_id, style="primary", confirm=confirm
                ),
                ButtonElement(text="Reject", action_id=REJECT_ACTION_ID, value=a.approval_id, style="danger"),
            ],
        ),
    ]


def fallback_text(msg: Message) -> str:
    return slack_escape(_cut(f"{msg.title}: {msg.summary}", SLACK_FALLBACK_MAX))


def render_slack(msg: Message, *, stage: str = "") -> dict[str, Any]:
    """A Slack message payload: ``text`` (notification fallback) and Block Kit ``blocks`` as dicts."""
    return {"text": fallback_text(msg), "blocks": [b.to_dict() for b in build_blocks(msg, stage=stage)]}
