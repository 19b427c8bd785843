"""Reading what users pipe in: lines of text and JSON documents, in one linear pass.

A line that looks like the start of JSON (``{"``, ``{}``, ``[{``, ``[1``, a lone ``[`` ...) begins a document; its
extent is found by one scan of brackets outside strings, then it is parsed once. So every character is scanned a
bounded number of times, whatever the input (a stream of unclosed ``[`` lines is linear, not quadratic). A document
that never closes is reported once; after it, the rest is read line by line (a line that parses on its own is
still a document; the others belonged to the unclosed one and are counted, not reported again). Documents nested
deeper than ``MAX_JSON_DEPTH`` are reported, never parsed (no RecursionError). ``--text`` reads everything as text.

``{"EventSourceMappings": [...]}`` (``aws lambda list-event-source-mappings``, also its pages with ``NextMarker``
and concatenated pages) and JSON arrays yield their items.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

MAX_JSON_DEPTH = 64

# a string (on one line) or a bracket; anything else is skipped by finditer
_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|[\[\]{}]')
# how a JSON document (not "[ERROR] ..." or "{not json") starts
_JSON_START = re.compile(r'\s*(?:\{\s*(?:"|\}|$)|\[\s*(?:["{\[\]\-0-9]|true\b|false\b|null\b|$))')
_START_NO_CLOSE = (
    r'[ \t]*(?:\{[ \t]*(?:"|\}|\r?$)|\[[ \t]*(?:["{\[\]\-0-9]|true\b|false\b|null\b|\r?$))(?!.*[\]}][ \t\r]*$)'
)
# in line mode: every non-blank line except one that starts like JSON and cannot close on its own line
_LINE_WORTH_READING = re.compile(rf"(?m)^(?!{_START_NO_CLOSE}).*\S.*$")


@dataclass(frozen=True)
class Problem:
    """Input that could not be read as intended (reported, never raised)."""

    line: int
    code: str  # invalid-json | unclosed-json | too-deep
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "line": self.line}}


@dataclass
class ReadStats:
    documents: int = 0
    texts: int = 0
    problems: int = 0
    skipped_lines: int = 0  # lines after an unclosed document that did not parse on their own


def looks_like_json(line: str) -> bool:
    return _JSON_START.match(line) is not None


def _items(obj: Any) -> Iterator[Any]:
    """A document's items: the ESMs of a list-event-source-mappings page, the elements of an array of objects."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if isinstance(key, str) and key.lower() == "eventsourcemappings" and isinstance(value, list):
                yield from value
                return
        yield obj
    elif isinstance(obj, list) and obj and all(isinstance(o, dict) for o in obj):
        for o in obj:
            yield from _items(o)
    else:
        yield obj


def _extent(text: str, start: int) -> tuple[int | None, int]:
    """End of the document starting at ``start`` (None when it never closes) and the deepest nesting seen
    (the scan stops beyond MAX_JSON_DEPTH)."""
    depth = deepest = 0
    for m in _TOKEN.finditer(text, start):
        c = text[m.start()]
        if c == "[" or c == "{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_JSON_DEPTH:
                    return None, deepest
        elif c == "]" or c == "}":
            depth -= 1
            if depth <= 0:
                return m.end(), deepest
    return None, deepest


def iter_documents(text: str, *, as_text: bool = False, stats: ReadStats | None = None) -> Iterator[Any]:
    """Yield JSON documents' items, text lines (stripped, non-empty) and :class:`Problem` s, in input order."""
    stats = stats if stats is not None else ReadStats()
    n = len(text)
    pos = 0
    line_no = 1
    while pos < n:
        eol = text.find("\n", pos)
        eol = n if eol < 0 else eol
        line = text[pos:eol]
        stripped = line.strip()
        if not stripped:
            pos, line_no = eol + 1, line_no + 1
            continue
        if as_text or not looks_like_json(stripped):
            stats.texts += 1
            yield stripped
            pos, line_no = eol + 1, line_no + 1
            continue
        start = pos + (len(line) - len(line.lstrip()))
        end, deepest = _extent(text, start)
        if deepest > MAX_JSON_DEPTH:
            stats.problems += 1
            yield Problem(line_no, "too-deep", f"line {line_no}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
            yield from _line_mode(text, eol + 1, stats)
            return
        if end is None:
            stats.problems += 1
            yield Problem(
                line_no,
                "unclosed-json",
                f"line {line_no}: a JSON document starts here and never closes (truncated input?)",
            )
            yield from _line_mode(text, eol + 1, stats)
            return
        chunk = text[start:end]
        try:
            doc = json.loads(chunk)
        except ValueError as exc:
            stats.problems += 1
            yield Problem(
                line_no,
                "invalid-json",
                f"line {line_no + getattr(exc, 'lineno', 1) - 1}: invalid JSON ({getattr(exc, 'msg', str(exc))})",
            )
        else:
            stats.documents += 1
            yield from _items(doc)
        line_no += chunk.count("\n")
        pos = end
        # the rest of the document's last line: more documents (concatenated pages) or nothing
        rest_end = text.find("\n", pos)
        rest_end = n if rest_end < 0 else rest_end
        if not text[pos:rest_end].strip():
            pos, line_no = rest_end + 1, line_no + 1
        elif not looks_like_json(text[pos:rest_end].strip()):
            stats.texts += 1
            yield text[pos:rest_end].strip()
            pos, line_no = rest_end + 1, line_no + 1


def _line_mode(text: str, pos: int, stats: ReadStats) -> Iterator[Any]:
    """The rest of an input after a document that never closes: each line on its own. Lines that start like
    JSON and cannot close on their line are skipped by the regex engine (linear, and fast in C)."""
    lines = text.count("\n", pos) + (0 if text.endswith("\n") or pos >= len(text) else 1)
    read = 0
    for m in _LINE_WORTH_READING.finditer(text, pos):
        read += 1
        line = m.group().strip()
        if not looks_like_json(line):
            stats.texts += 1
            yield line
            continue
        try:
            doc = json.loads(line)
        except (ValueError, RecursionError):
            read -= 1
        else:
            stats.documents += 1
            yield from _items(doc)
    stats.skipped_lines += max(0, lines - read)


def read_one(text: str, *, as_text: bool = False) -> tuple[Any, list[Problem], int]:
    """What ``explain`` reads: the whole input as one text, or (when it starts like JSON) its documents: one
    document, or a list of the items of several (concatenated pages). Returns (input, problems, item count)."""
    stripped = text.strip()
    if as_text or not looks_like_json(stripped.split("\n", 1)[0]):
        return text, [], 1
    items: list[Any] = []
    problems: list[Problem] = []
    for item in iter_documents(stripped):
        if isinstance(item, Problem):
            problems.append(item)
        else:
            items.append(item)
    if problems:
        return None, problems, len(items)
    if len(items) == 1:
        return items[0], [], 1
    return items, [], len(items)
