"""``esm-medic explain`` (one text, human or JSON) and ``esm-medic classify`` (many texts / JSON docs -> JSON lines)."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from functools import lru_cache
from typing import Any

from esm_medic.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    add_json_option,
    fail,
    print_json,
    read_file,
    read_stdin,
    write,
)
from esm_medic.cli.readers import Problem, ReadStats, iter_documents, read_one

#: characters of the input shown back (human and JSON output); the length of the rest is stated
SHOW_TEXT = 2000
#: runbook excerpt size, cut at a paragraph
EXCERPT_CHARS = 2800


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
    p.add_argument(
        "--text", dest="as_text", action="store_true", help="explain the input as text even if it is malformed JSON"
    )
    add_json_option(p)
    p.set_defaults(func=run_explain)

    c = sub.add_parser(
        "classify",
        help="classify many texts / JSON documents, one JSON line each",
        description="Read lines of text or JSON documents (ESM items, events, arrays of them) from files or stdin "
        "and write one JSON classification per input.",
    )
    c.add_argument("files", nargs="*", help="input files (default: stdin; - also means stdin)")
    c.add_argument("--text", dest="as_text", action="store_true", help="read every line as text (no JSON parsing)")
    c.set_defaults(func=run_classify)


# ---------------------------------------------------------------------------------------------- explain
def _read_input(words: list[str]) -> str:
    if words == ["-"]:
        return read_stdin()
    return " ".join(words)


def explanation(obj: Any, lang: str = "en", full: bool = False) -> dict[str, Any]:
    """Everything ``explain`` shows, as a JSON-able dict (also used by tickets). Long input text is summarised."""
    from esm_medic.catalogue import get_catalogue
    from esm_medic.classify import classify

    c = classify(obj)
    out = summarise(c.to_dict())
    entry = get_catalogue().get(c.entry) if c.entry else None
    if entry is not None:
        detail = entry.to_dict()
        detail["fixes"] = _unique_fixes(detail.get("fixes") or [])
        out["entry_detail"] = detail
    out["runbook_text"] = _runbook_text(c.entry, lang, full)
    return out


def summarise(data: dict[str, Any]) -> dict[str, Any]:
    """Cut the echoed input to ``SHOW_TEXT`` characters, saying how long it was."""
    for key in ("text", "normalized"):
        value = data.get(key)
        if isinstance(value, str) and len(value) > SHOW_TEXT:
            data[key] = value[:SHOW_TEXT] + "…"
            data[f"{key}_chars"] = len(value)
    for other in data.get("also") or []:
        if isinstance(other.get("text"), str) and len(other["text"]) > SHOW_TEXT:
            other["text"] = other["text"][:SHOW_TEXT] + "…"
    return data


def _unique_fixes(fixes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per fix: entries list an action once per root cause it answers; keep the first."""
    seen: set[tuple[str, str]] = set()
    out = []
    for f in fixes:
        key = (f.get("action", ""), f.get("summary", ""))
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def paragraph_excerpt(text: str, max_chars: int = EXCERPT_CHARS) -> str:
    """``text`` cut at the last paragraph break (a blank line outside code fences) within ``max_chars``."""
    if len(text) <= max_chars:
        return text
    cut = 0
    fenced = False
    pos = 0
    for line in text.splitlines(keepends=True):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        pos += len(line)
        if pos > max_chars:
            break
        if not fenced and not line.strip():
            cut = pos
    if cut == 0:  # one giant paragraph: cut at a line outside a fence
        return text[: text.rfind("\n", 0, max_chars) + 1 or max_chars].rstrip() + "\n…"
    return text[:cut].rstrip() + "\n\n…"


@lru_cache(maxsize=256)
def _runbook_text(entry_id: str | None, lang: str, full: bool) -> str | None:
    if not entry_id:
        return None
    try:
        from esm_medic import runbooks
    except ImportError:  # pragma: no cover - runbooks ship with the package
        return None
    try:
        rb = runbooks.load(entry_id, lang=lang)
        return rb.text if full else paragraph_excerpt(rb.excerpt(max_chars=10**6))
    except Exception:
        return None


def run_explain(args: argparse.Namespace) -> int:
    raw = _read_input(args.text)
    if not raw.strip():
        return fail("nothing to explain (empty input)", EXIT_USAGE, "empty-input")
    obj, problems, count = read_one(raw, as_text=args.as_text)
    if problems:
        first = problems[0]
        return fail(
            f"the input is not valid JSON ({first.message}); pass --text to explain it as text",
            EXIT_USAGE,
            first.code,
        )
    if isinstance(obj, list) and not obj:
        return fail("the input holds no event source mappings (an empty list)", EXIT_USAGE, "empty-input")
    data = explanation(obj, lang=args.lang, full=args.full)
    if count > 1:
        data["items"] = count
    if args.json:
        print_json(data)
    else:
        write(render(data))
    return EXIT_OK


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
    text = " ".join(str(data.get("text") or "").split())
    total = data.get("text_chars") or len(text)
    shown = text if len(text) <= 300 else text[:300] + f"… ({total:,} characters)"
    lines.append(f"Input ({data.get('field')}): {shown}")
    if data.get("items"):
        lines.append(
            f"         {data['items']} items in the input; the worst is explained"
            + (f" (ESM {data['uuid']})" if data.get("uuid") else "")
        )
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
def classify_stream(data: str, *, as_text: bool = False, stats: ReadStats | None = None) -> list[str]:
    """JSON lines for one input: a classification per document item or text line, an ``{"error": ...}`` row per
    input that could not be read."""
    from esm_medic.classify import classify

    rows = []
    for doc in iter_documents(data, as_text=as_text, stats=stats):
        row = doc.to_dict() if isinstance(doc, Problem) else summarise(classify(doc).to_dict())
        rows.append(json.dumps(row, ensure_ascii=False))
    return rows


def run_classify(args: argparse.Namespace) -> int:
    sources = args.files or ["-"]
    stats = ReadStats()
    for src in sources:
        data = read_stdin() if src == "-" else read_file(src)
        before = stats.problems
        for row in classify_stream(data, as_text=args.as_text, stats=stats):
            write(row + "\n")
        if stats.problems > before:
            name = "standard input" if src == "-" else src
            print(
                f"esm-medic: {stats.problems - before} part(s) of {name} are not valid JSON (see the error rows); "
                "--text reads them as text",
                file=sys.stderr,
            )
    if stats.skipped_lines:
        print(f"esm-medic: {stats.skipped_lines} line(s) after an unclosed JSON document were skipped", file=sys.stderr)
    return EXIT_FAILURE if stats.problems else EXIT_OK


__all__ = ["CliError", "classify_stream", "explanation", "iter_documents", "paragraph_excerpt", "render"]
