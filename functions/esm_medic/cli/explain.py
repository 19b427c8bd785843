"""``esm-medic explain`` (one text, human or JSON) and ``esm-medic classify`` (many texts / JSON docs -> JSON lines)."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

from esm_medic.cli.common import add_json_option, fail, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain",
        help="explain an ESM error text: failed set-up step, causes, checks, fixes, runbook",
        description="Explain a StateTransitionReason / LastProcessingResult text, an ESM JSON item or an "
        "EventBridge event. Use - to read it from standard input.",
    )
    p.add_argument("text", nargs="+", help="the text (several words are joined), or - for stdin")
    p.add_argument("--lang", default="en", help="runbook language (en, ko)")
    p.add_argument("--full", action="store_true", help="print the whole runbook, not an excerpt")
    add_json_option(p)
    p.set_defaults(func=run_explain)

    c = sub.add_parser(
        "classify",
        help="classify many texts / JSON documents, one JSON line each",
        description="Read lines of text or JSON documents (ESM items, events, arrays of them) from files or stdin "
        "and write one JSON classification per input.",
    )
    c.add_argument("files", nargs="*", help="input files (default: stdin; - also means stdin)")
    c.set_defaults(func=run_classify)


# ---------------------------------------------------------------------------------------------- explain
def _read_input(words: list[str]) -> str:
    if words == ["-"]:
        return sys.stdin.read()
    return " ".join(words)


def explanation(obj: Any, lang: str = "en", full: bool = False) -> dict[str, Any]:
    """Everything ``explain`` shows, as a JSON-able dict (also used by tickets)."""
    from esm_medic.catalogue import get_catalogue
    from esm_medic.classify import classify

    c = classify(obj)
    out = c.to_dict()
    entry = get_catalogue().get(c.entry) if c.entry else None
    if entry is not None:
        out["entry_detail"] = entry.to_dict()
    out["runbook_text"] = _runbook_text(c.entry, lang, full)
    return out


def _runbook_text(entry_id: str | None, lang: str, full: bool) -> str | None:
    if not entry_id:
        return None
    try:
        from esm_medic import runbooks
    except ImportError:  # pragma: no cover - runbooks ship with the package
        return None
    try:
        rb = runbooks.load(entry_id, lang=lang)
    except Exception:
        return None
    return rb.text if full else rb.excerpt()


def run_explain(args: argparse.Namespace) -> int:
    raw = _read_input(args.text)
    if not raw.strip():
        return fail("nothing to explain (empty input)", 2)
    data = explanation(raw, lang=args.lang, full=args.full)
    if args.json:
        print_json(data)
    else:
        sys.stdout.write(render(data))
    return 0


def _chain(step: str) -> str:
    from esm_medic.steps import SETUP_ORDER

    if step not in {s.value for s in SETUP_ORDER}:
        return " > ".join(s.value for s in SETUP_ORDER) + f"   ({step}: outside the set-up chain)"
    parts = []
    failed_seen = False
    for s in SETUP_ORDER:
        if s.value == step:
            parts.append(f"[{s.value.upper()} FAILED]")
            failed_seen = True
        elif failed_seen:
            parts.append(f"({s.value})")
        else:
            parts.append(f"{s.value} ok")
    return " > ".join(parts)


def render(data: dict[str, Any]) -> str:
    from esm_medic.steps import STEP_TITLES, Step

    w = textwrap.TextWrapper(width=100, subsequent_indent="      ")
    lines = []
    text = data.get("text") or ""
    lines.append(f"Input ({data.get('field')}): {text[:300]}{'...' if len(text) > 300 else ''}")
    step = data["step"]
    title = STEP_TITLES.get(Step(step), step) if step in Step._value2member_map_ else step
    if data["kind"] == "healthy":
        lines.append(f"Verdict: healthy ({data['entry']}: {data['title']}). Nothing to fix.")
        return "\n".join(lines) + "\n"
    if data["entry"] is None:
        lines.append("Verdict: not in the catalogue (step: unknown). esm-medic would open a ticket with this text")
        lines.append("         so the catalogue can learn it. Run `esm-medic diagnose <uuid>` for the account's view.")
        return "\n".join(lines) + "\n"
    detail = data.get("entry_detail") or {}
    lines.append(f"Entry:   {data['entry']}: {data['title']}")
    lines.append(
        f"         confidence {data['confidence']:.2f}, source status: {detail.get('status', '?')}"
        + (", may clear by itself (transient)" if data.get("transient") else "")
    )
    lines.append(f"Step:    {step}: {title}")
    lines.append(f"Chain:   {_chain(step)}")
    params = data.get("params") or {}
    if params:
        lines.append("Found:   " + ", ".join(f"{k}={v}" for k, v in params.items()))
    causes = detail.get("root_causes") or []
    if causes:
        lines.append("Probable causes, most likely first:")
        for i, rc in enumerate(causes, 1):
            lines.append(w.fill(f"  {i}. {rc['summary']}"))
    checks = detail.get("checks") or []
    if checks:
        lines.append("Checks that tell them apart: " + ", ".join(checks))
    fixes = detail.get("fixes") or []
    if fixes:
        lines.append("Fixes:")
        for f in fixes:
            lines.append(w.fill(f"  [{f['safety']:<7}] {f['action']}: {f['summary']}"))
    lines.append(f"Auto-fixable without approval: {'yes' if data['auto_fixable'] else 'no'}")
    lines.append(f"Runbook: runbooks/{data['runbook']}")
    rb = data.get("runbook_text")
    if rb:
        lines.append("")
        lines.extend("  " + ln for ln in rb.rstrip().splitlines())
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- classify
def iter_documents(text: str) -> Iterator[Any]:
    """Split a stream into JSON documents and plain-text lines. A line that starts like JSON but does not parse
    is classified as text (never an error)."""
    decoder = json.JSONDecoder()
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t\r\n":
            i += 1
        if i >= n:
            return
        if text[i] in "{[":
            try:
                obj, end = decoder.raw_decode(text, i)
            except ValueError:
                pass
            else:
                if isinstance(obj, list) and all(isinstance(o, dict) for o in obj) and obj:
                    yield from obj
                else:
                    yield obj
                i = end
                continue
        j = text.find("\n", i)
        j = n if j < 0 else j
        line = text[i:j].strip()
        if line:
            yield line
        i = j + 1


def run_classify(args: argparse.Namespace) -> int:
    from esm_medic.classify import classify

    sources = args.files or ["-"]
    count = 0
    for src in sources:
        if src == "-":
            data = sys.stdin.read()
        else:
            try:
                with open(src, encoding="utf-8", errors="replace") as fh:
                    data = fh.read()
            except OSError as exc:
                return fail(f"cannot read {src}: {exc.strerror}", 2)
        for doc in iter_documents(data):
            sys.stdout.write(json.dumps(classify(doc).to_dict(), ensure_ascii=False) + "\n")
            count += 1
    return 0
