"""HTML pages of the approval link: the confirmation page a GET shows (it changes nothing) and the result page."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from esm_medic.notify.redact import redact, redact_text

_PAGE_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#222}"
    "table{border-collapse:collapse}td{padding:.25rem .75rem .25rem 0;vertical-align:top}"
    "code,pre{background:#f4f4f4;padding:.1rem .3rem}pre{padding:.5rem;overflow:auto}"
    "button{font-size:1rem;padding:.5rem 1.25rem;margin-right:.75rem}"
    ".approve{background:#1a7f37;color:#fff}.reject{background:#cf222e;color:#fff}"
)


def _page(title: str, body_html: str) -> str:
    from html import escape

    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        '<meta name=robots content="noindex,nofollow">'
        f"<title>{escape(title)}</title><style>{_PAGE_STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1>{body_html}</body></html>"
    )


def render_approval_page(
    view: Mapping[str, Any], *, action: str, decision: str = "", sig: str = "", identity: str = ""
) -> str:
    """The confirmation page a GET shows: what will change, and a form whose POST (only) decides.

    ``action`` is the form's target path; ``identity`` is the approver the channel authenticated ("" -> the
    page asks for a name).
    """
    from html import escape

    rows = [
        ("ESM", view.get("uuid")),
        ("Account", view.get("account")),
        ("Function", view.get("function")),
        ("Incident", view.get("incident_id")),
        ("Fix", view.get("fix")),
        ("Plan", view.get("plan_summary")),
        ("Requested", view.get("created_at")),
        ("Requested by", view.get("requested_by")),
        ("Expires", view.get("expires_at")),
    ]
    required = int(view.get("required_approvals") or 1)
    if required > 1:
        have = ", ".join(view.get("approvers") or []) or "none yet"
        rows.append(("Approvals", f"{required} different people needed (so far: {have})"))
    table = "".join(
        f"<tr><td><b>{escape(k)}</b></td><td>{escape(str(v))}</td></tr>" for k, v in rows if v not in (None, "", "-")
    )
    plan = view.get("plan")
    plan_html = ""
    if isinstance(plan, Mapping) and plan:
        diff = plan.get("diff")
        if isinstance(diff, list) and diff:
            plan_html = (
                "<h3>Changes (one diff for the whole plan)</h3><pre>"
                + escape(redact_text("\n".join(str(line) for line in diff[:60])))
                + "</pre>"
            )
        plan_html += (
            "<details><summary>Full plan</summary><pre>"
            + escape(json.dumps(redact(plan), indent=2, sort_keys=True, default=str)[:20000])
            + "</pre></details>"
        )
    who = (
        f"<p>Deciding as <b>{escape(identity)}</b>.</p>"
        if identity
        else "<p><label>Your name or e-mail: <input name=approver required maxlength=200 autocomplete=email>"
        "</label></p>"
    )
    pre = {"approve": "Approve", "reject": "Reject"}.get(decision, "")
    hint = f"<p>You followed the <b>{pre}</b> link. Nothing has happened yet.</p>" if pre else ""
    form = (
        f'<form method=post action="{escape(action)}">'
        f'<input type=hidden name=sig value="{escape(sig)}">'
        f"{who}"
        "<p><label>Reason (optional):<br><textarea name=reason rows=3 cols=60 maxlength=2000></textarea></label></p>"
        "<button class=approve type=submit name=decision value=approve>Approve the fix</button>"
        "<button class=reject type=submit name=decision value=reject>Reject</button>"
        "</form>"
    )
    body = (
        f"{hint}<p>esm-medic asks for approval to change an AWS resource. Opening this page changed nothing; "
        "only one of the buttons below decides.</p>"
        f"<table>{table}</table>{plan_html}{form}"
    )
    return _page("esm-medic: approve a fix?", body)


def render_result_page(title: str, message: str) -> str:
    from html import escape

    return _page(title, f"<p>{escape(message)}</p>")
