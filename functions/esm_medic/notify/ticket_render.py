"""The ticket's text: what happened, the classification, the diagnosis findings, root cause and fix, the plan, the
decision and why it needs a human, and the entry's runbook with the real ids filled in. An unrecognised status
text renders a *catalogue gap* ticket instead (raw text + redacted ESM config). Never a secret value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from esm_medic.notify.redact import redact, redact_text

GAP = "catalogue-gap"
NO_INCIDENT = "-"

#: runbook placeholders that must never be filled in (a ticket never carries secret values)
NEVER_FILL = frozenset({"password"})


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _arn_part(arn: str, index: int) -> str:
    parts = arn.split(":")
    return parts[index] if arn.startswith("arn:") and len(parts) > index else ""


def _esm_view(diagnosis: Mapping[str, Any]) -> dict[str, Any]:
    """A flat view of the ESM whatever shape the diagnosis carries (API item or EsmConfig dict)."""
    from esm_medic.esm import EsmConfig

    raw = _dict(diagnosis.get("esm"))
    if not raw:
        return {}
    if "UUID" in raw or "EventSourceArn" in raw or "FunctionArn" in raw:
        cfg = EsmConfig.from_api(raw)
        return {
            "uuid": cfg.uuid,
            "function_arn": cfg.function_arn,
            "function_name": cfg.function_name,
            "cluster_arn": cfg.cluster_arn,
            "topics": list(cfg.topics),
            "consumer_group_id": cfg.consumer_group_id,
            "bootstrap_servers": list(cfg.bootstrap_servers),
            "secret_arn": cfg.auth_secret_arn,
            "destination_arn": cfg.on_failure_destination,
            "region": cfg.region,
            "account": cfg.account,
            "subnets": list(cfg.vpc_subnets),
            "security_groups": list(cfg.vpc_security_groups),
        }
    # the diagnosis engine's summary (uuid, arn, function, secrets, cluster_arn, role_arn, ...)
    view = dict(raw)
    fn = str(raw.get("function_arn") or raw.get("function") or "")
    view.setdefault("function_arn", fn)
    if fn and "function_name" not in view:
        view["function_name"] = _arn_part(fn, 6) or fn
    secrets = raw.get("secrets")
    if isinstance(secrets, Mapping) and secrets and "secret_arn" not in view:
        order = ("CLIENT_CERTIFICATE_TLS_AUTH", "SASL_SCRAM_512_AUTH", "SASL_SCRAM_256_AUTH", "BASIC_AUTH")
        view["secret_arn"] = next((secrets[t] for t in order if secrets.get(t)), next(iter(secrets.values())))
    if raw.get("on_failure_destination"):
        view.setdefault("destination_arn", raw["on_failure_destination"])
    for arn in (str(raw.get("arn") or ""), fn, str(raw.get("cluster_arn") or "")):
        if _arn_part(arn, 3) and not view.get("region"):
            view["region"] = _arn_part(arn, 3)
        if _arn_part(arn, 4) and not view.get("account"):
            view["account"] = _arn_part(arn, 4)
    return view


_NORM = re.compile(r"[^a-z0-9]+")


def _norm(key: str) -> str:
    s = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", str(key))
    return _NORM.sub("-", s.lower()).strip("-")


def _scan(obj: Any, wanted: set[str], out: dict[str, str], depth: int = 0) -> None:
    """Collect string values whose key (normalised: ``KeyArn`` / ``key_arn`` -> ``key-arn``) is a wanted name."""
    if depth > 8:
        return
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            nk = _norm(str(k))
            if nk in wanted and nk not in out and isinstance(v, (str, int)) and str(v):
                out[nk] = str(v)
            elif isinstance(v, (Mapping, list, tuple)):
                _scan(v, wanted, out, depth + 1)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _scan(v, wanted, out, depth + 1)


def runbook_params(
    uuid: str,
    classification: Mapping[str, Any],
    diagnosis: Mapping[str, Any] | None,
    plan: Mapping[str, Any] | None,
    region: str = "",
) -> dict[str, str]:
    """Values for the runbook placeholders, from the real ids the classification, diagnosis and plan carry."""
    from esm_medic.esm import split_host_port
    from esm_medic.runbooks import KNOWN_PLACEHOLDERS

    diag = _dict(diagnosis)
    pl = _dict(plan)
    esm = _esm_view(diag)
    network = _dict(diag.get("network"))
    rc = _dict(diag.get("root_cause"))
    fix_params = {**_dict(rc.get("fix_params")), **_dict(pl.get("params") or pl.get("fix_params"))}
    cls_params = _dict(classification.get("params"))
    p: dict[str, str] = {}

    def put(key: str, *values: Any) -> None:
        for v in values:
            if isinstance(v, (list, tuple)):
                v = v[0] if v else None
            if v not in (None, "") and key not in p:
                p[key] = str(v)
                return

    cluster_arn = str(esm.get("cluster_arn") or cls_params.get("cluster_arn") or "")
    put("esm-uuid", uuid)
    put("function-name", esm.get("function_name"), classification.get("function"), diag.get("function"))
    put("cluster-arn", cluster_arn)
    if cluster_arn:
        resource = _arn_part(cluster_arn, 5).split("/")
        put("cluster-name", resource[1] if len(resource) > 1 else None)
        put("cluster-uuid", resource[2] if len(resource) > 2 else None)
    put("region", region, esm.get("region"), _arn_part(cluster_arn, 3))
    put("account-id", esm.get("account"), _arn_part(cluster_arn, 4))
    put("sg-id", fix_params.get("group_id"), network.get("security_groups"), esm.get("security_groups"))
    put("vpc-id", fix_params.get("vpc_id"), network.get("vpc_id"))
    subnets = fix_params.get("subnet_ids") or network.get("subnets") or esm.get("subnets") or []
    if isinstance(subnets, (list, tuple)) and subnets:
        put("subnet-id", subnets[0])
        put("subnet-ids", " ".join(str(s) for s in subnets))
    put("role-name", fix_params.get("role_name"))
    role_arn = str(esm.get("role_arn") or cls_params.get("role_arn") or "")
    put("role-arn", role_arn)
    if role_arn and "role-name" not in p:
        put("role-name", role_arn.rsplit("/", 1)[-1])
    put("secret-arn", esm.get("secret_arn"), cls_params.get("secret_arn"))
    put("key-arn", cls_params.get("kms_key_arn"))
    put("topic", cls_params.get("topic"), esm.get("topics"))
    put("group", cls_params.get("group"), esm.get("consumer_group_id"))
    put("destination-arn", esm.get("destination_arn"))
    servers = esm.get("bootstrap_servers") or []
    host, port = str(cls_params.get("host") or ""), str(cls_params.get("port") or "")
    if not host and isinstance(servers, (list, tuple)) and servers:
        h, prt = split_host_port(str(servers[0]))
        host, port = h, str(prt or "")
    put("broker-host", host)
    put("bootstrap-host", host)
    put("broker-port", port, network.get("ports"), fix_params.get("ports"))
    # anything else a finding's evidence or the plan names exactly (key-arn, ca-arn, dhcp-options-id, ...)
    wanted = {k for k in KNOWN_PLACEHOLDERS if k not in p and k not in NEVER_FILL}
    found: dict[str, str] = {}
    _scan(
        [fix_params, pl, [f.get("evidence") for f in diag.get("findings") or [] if isinstance(f, Mapping)]],
        wanted,
        found,
    )
    for k, v in found.items():
        p.setdefault(k, v)
    put("start-time", (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    for k in NEVER_FILL:
        p.pop(k, None)
    return {k: redact_text(v) for k, v in p.items()}


# ------------------------------------------------------------------------------------------------ rendering
def _cell(text: Any) -> str:
    return redact_text(" ".join(str(text if text is not None else "").split())).replace("|", "\\|")


def _shift_headings(text: str) -> str:
    """Demote Markdown headings by one level (outside code fences) so a runbook nests under a ticket section."""
    out, fence = [], False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fence = not fence
        elif not fence and re.match(r"^#{1,5} ", line):
            line = "#" + line
        out.append(line)
    return "\n".join(out)


def _json_block(obj: Any) -> str:
    return "```json\n" + json.dumps(redact(obj), indent=2, sort_keys=True, default=str) + "\n```"


def render_ticket(
    *,
    ticket_id: str,
    uuid: str,
    incident_id: str | None,
    reason: str,
    classification: Mapping[str, Any],
    diagnosis: Mapping[str, Any] | None,
    plan: Mapping[str, Any] | None,
    outcome: str,
    function: str,
    region: str = "",
    account: str = "",
) -> tuple[str, str, bool]:
    """(title, Markdown body, is_catalogue_gap). ``account``: the ESM's account when it is not the install's own
    (named in the title and the table)."""
    from esm_medic.catalogue import get_catalogue
    from esm_medic.steps import STEP_TITLES, Step

    entry_id = classification.get("entry") or None
    entry = get_catalogue().get(str(entry_id)) if entry_id else None
    gap = entry is None
    entry_title = entry.title if entry else str(classification.get("title") or "catalogue gap: unrecognised status")
    if gap:
        entry_title = f"catalogue gap: {entry_title}" if not entry_title.startswith("catalogue gap") else entry_title
    where = f" (account {account})" if account else ""
    title = f"[esm-medic] {function or 'unknown-function'} ESM {uuid}{where} — {entry_title}"
    diag = _dict(diagnosis)
    pl = _dict(plan)
    rc = _dict(diag.get("root_cause"))
    step = str(diag.get("step") or classification.get("step") or "unknown")
    try:
        step_title = STEP_TITLES[Step(step)]
    except ValueError:
        step_title = step
    raw_text = str(classification.get("text") or "")
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")

    lines = [
        f"# {title}",
        "",
        "| | |",
        "|---|---|",
        f"| Ticket | `{ticket_id}` |",
        f"| ESM | `{_cell(uuid)}` |",
        *([f"| Account | `{_cell(account)}` |"] if account else []),
        f"| Function | `{_cell(function or '?')}` |",
        f"| Incident | `{_cell(incident_id or NO_INCIDENT)}` |",
        f"| Region | {_cell(region or '?')} |",
        f"| Opened | {now} |",
        f"| Outcome | {_cell(outcome or 'ticketed')} |",
        "",
        "## What happened",
        "",
        redact_text(reason.strip()) or "esm-medic could not repair this ESM by itself.",
        "",
    ]
    if raw_text:
        lines += [
            f"The ESM reported (`{_cell(classification.get('field') or 'status')}`):",
            "",
            "```text",
            redact_text(raw_text[:4000]),
            "```",
            "",
        ]
    lines += ["## Classification", ""]
    if gap:
        lines.append("- Catalogue entry: **none** (this text matches no catalogue entry: a catalogue gap)")
    else:
        lines.append(f"- Catalogue entry: `{entry_id}` ({_cell(entry_title)})")
    lines += [
        f"- Failed set-up step: `{step}` — {step_title}",
        f"- Confidence: {float(classification.get('confidence') or 0.0):.2f}",
    ]
    if classification.get("catalogue_version"):
        lines.append(f"- Catalogue version: {_cell(classification['catalogue_version'])}")
    lines += ["", "## Diagnosis", ""]
    findings = [f for f in diag.get("findings") or [] if isinstance(f, Mapping)]
    if findings:
        lines += ["| Check | Status | Summary |", "|---|---|---|"]
        for f in findings:
            status = str(f.get("status") or "")
            mark = {"fail": "**FAIL**", "pass": "pass", "warn": "warn", "unknown": "unknown", "skip": "skip"}
            summary = _cell(f.get("summary"))
            if f.get("missing_permission"):
                summary += f" (missing permission: `{_cell(f['missing_permission'])}`)"
            lines.append(f"| `{_cell(f.get('check'))}` | {mark.get(status, _cell(status))} | {summary} |")
    else:
        lines.append("No diagnosis findings (the diagnosis did not run or found nothing to check).")
    lines += ["", "## Root cause and fix", ""]
    fix_id = str(pl.get("fix") or pl.get("action") or rc.get("fix") or "")
    if rc.get("id"):
        conf = f" (confidence {float(rc.get('confidence') or 0.0):.2f})" if rc.get("confidence") is not None else ""
        lines.append(f"- Root cause: `{_cell(rc['id'])}` — {_cell(rc.get('summary'))}{conf}")
    else:
        lines.append("- Root cause: not determined")
    if entry is not None:
        cat_fix = entry.fix_for(str(rc.get("id") or "")) or next(
            (fx for fx in entry.fixes if fx.action == fix_id), None
        )
        if cat_fix is not None:
            lines.append(f"- Fix: `{cat_fix.action}` (safety `{cat_fix.safety}`) — {_cell(cat_fix.summary)}")
        elif fix_id:
            lines.append(f"- Fix: `{_cell(fix_id)}`")
    elif fix_id:
        lines.append(f"- Fix: `{_cell(fix_id)}`")
    fix_params = _dict(rc.get("fix_params"))
    if fix_params:
        lines += ["", "Fix parameters:", "", _json_block(fix_params)]
    lines += ["", "## Plan", ""]
    lines += [_json_block(pl)] if pl else ["No change was planned."]
    lines += [
        "",
        "## Decision and why it needs a human",
        "",
        f"- Outcome: **{_cell(outcome or 'ticketed')}**",
        f"- Why: {redact_text(reason.strip()) or 'no automatic fix applies'}",
        "",
    ]
    if gap:
        esm_cfg = diag.get("esm") or classification.get("esm") or {}
        lines += [
            "## Catalogue gap",
            "",
            "This status text is not in the error catalogue. Please add an entry (pattern, step, root causes, "
            "checks, fixes) to `catalogue/catalogue.json` and a runbook `runbooks/<entry-id>.md`, with the text "
            "below as an example.",
            "",
            "Raw text:",
            "",
            "```text",
            redact_text(raw_text[:4000]) or "(empty)",
            "```",
            "",
            "ESM configuration (redacted):",
            "",
            _json_block(esm_cfg) if esm_cfg else "(not available)",
            "",
        ]
    else:
        lines += ["## Runbook", ""]
        try:
            from esm_medic import runbooks

            book = runbooks.load(entry.runbook.removesuffix(".md") if entry else str(entry_id))
            params: dict[str, object] = dict(runbook_params(uuid, classification, diag, pl, region))
            lines += [_shift_headings(book.render(params)).strip(), ""]
        except Exception as exc:  # a missing runbook must not stop the ticket
            lines += [f"(runbook for `{entry_id}` unavailable: {type(exc).__name__}: {exc})", ""]
    return title, "\n".join(lines).rstrip() + "\n", gap
