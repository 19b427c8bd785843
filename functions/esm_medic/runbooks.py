"""Runbooks: the one source of the human-facing text that tickets, notifications and the CLI show.

Every catalogue entry has a Markdown runbook named ``<entry-id>.md`` with the same six H2 sections in the same
order (:data:`REQUIRED_SECTIONS`). Translations live in ``<lang>/<entry-id>.md`` next to the English files and
use the translated headings of :data:`SECTION_TITLES` (Korean: :data:`SECTION_TITLES_KO`); the loader maps them
back, so :attr:`Runbook.sections` is always keyed by the English heading whatever the language.

Stdlib only (no boto3): the Lambda functions, the CLI and the tests all load runbooks the same way.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_LANG = "en"

#: The H2 headings every runbook has, in this order.
REQUIRED_SECTIONS: tuple[str, ...] = (
    "Symptom",
    "Where it shows",
    "Which step failed and why",
    "How to check",
    "How to fix",
    "What esm-medic does",
)

#: Korean runbooks use these headings (same order); the loader maps them to the English keys.
SECTION_TITLES_KO: dict[str, str] = {
    "Symptom": "증상",
    "Where it shows": "표시되는 곳",
    "Which step failed and why": "실패한 단계와 원인",
    "How to check": "확인 방법",
    "How to fix": "해결 방법",
    "What esm-medic does": "esm-medic의 조치",
}

#: Headings per language: English key -> heading as written in that language's files.
SECTION_TITLES: dict[str, dict[str, str]] = {
    DEFAULT_LANG: {name: name for name in REQUIRED_SECTIONS},
    "ko": SECTION_TITLES_KO,
}

#: The sections a ticket or notification shows (see :meth:`Runbook.excerpt`).
EXCERPT_SECTIONS: tuple[str, ...] = ("Symptom", "Which step failed and why", "How to fix")

#: Placeholder names the runbooks use, for callers of :meth:`Runbook.render` (tests keep the files to this list).
KNOWN_PLACEHOLDERS: frozenset[str] = frozenset(
    {
        "account-id",
        "bootstrap-host",
        "broker-host",
        "broker-port",
        "ca-arn",
        "cluster-arn",
        "cluster-name",
        "cluster-uuid",
        "destination-arn",
        "dhcp-options-id",
        "esm-uuid",
        "function-name",
        "group",
        "kafka-user",
        "key-arn",
        "password",
        "region",
        "role-arn",
        "role-name",
        "secret-arn",
        "secret-name",
        "sg-id",
        "start-time",
        "subnet-id",
        "subnet-ids",
        "topic",
        "vpc-id",
        "vpce-sg-id",
    }
)

ENV_VAR = "ESM_MEDIC_RUNBOOKS"
TRUNCATION_MARK = "…"

_ENTRY_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_LANG = re.compile(r"^[a-z]{2}(?:-[a-z]{2})?$")
_MARKER = re.compile(r"^<!--\s*entry:\s*([a-z0-9-]+)\s*-->\s*$", re.MULTILINE)
_PLACEHOLDER = re.compile(r"<([a-z][a-z0-9]*(?:[-_][a-z0-9]+)*)>")
_FENCE = re.compile(r"^\s*(```|~~~)")


class RunbookNotFound(LookupError):
    """No runbook file for the entry id (in the requested language nor in English)."""


def runbook_dir() -> Path:
    """Where the runbooks live: ``$ESM_MEDIC_RUNBOOKS``; else ``esm_medic/_runbooks`` inside the package (the
    Lambda asset copies them there); else ``<repo>/runbooks`` relative to this file."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return Path(env)
    packaged = Path(__file__).resolve().parent / "_runbooks"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "runbooks"


@dataclass(frozen=True)
class Runbook:
    """A parsed runbook. ``sections`` maps the English heading to the section body (treat it as read-only:
    loaded runbooks are cached and shared)."""

    entry_id: str
    title: str
    path: Path
    text: str
    sections: dict[str, str]
    lang: str = DEFAULT_LANG
    marker: str = ""  # the id in the <!-- entry: ... --> comment ("" if missing)
    headings: tuple[str, ...] = field(default=())  # the H2 headings in file order, as written

    def heading(self, name: str) -> str:
        """The heading as shown in this runbook's language for an English section name."""
        return SECTION_TITLES.get(self.lang, SECTION_TITLES[DEFAULT_LANG]).get(name, name)

    def section(self, name: str) -> str:
        """Body of a section by its English name ("" when absent)."""
        return self.sections.get(name, "")

    def placeholders(self) -> set[str]:
        """The ``<placeholder>`` names used in the text."""
        return {m.group(1) for m in _PLACEHOLDER.finditer(self.text)}

    def render(self, params: dict[str, object]) -> str:
        """The full text with ``<name>`` placeholders filled from ``params`` (keys like ``esm-uuid``; ``esm_uuid``
        works too). Placeholders whose names are not in ``params`` (or map to None) are left as they are."""
        return fill(self.text, params)

    def excerpt(self, max_chars: int = 2800, params: dict[str, object] | None = None) -> str:
        """Symptom + Which step failed and why + How to fix, with their headings, at most ``max_chars`` long.

        When trimmed, the cut is on a line boundary, an open code fence is closed and a final ``…`` line marks it.
        """
        parts = []
        for name in EXCERPT_SECTIONS:
            body = self.sections.get(name, "").strip()
            if body:
                parts.append(f"## {self.heading(name)}\n{body}")
        text = "\n\n".join(parts)
        if params:
            text = fill(text, params)
        return trim_lines(text, max_chars)

    def problems(self, entry_id: str | None = None) -> list[str]:
        """Format problems (empty list when the runbook follows the format): marker, headings, empty sections."""
        out: list[str] = []
        want = entry_id or self.entry_id
        if self.marker != want:
            out.append(f"entry marker is {self.marker!r}, expected {want!r}")
        expected = tuple(self.heading(n) for n in REQUIRED_SECTIONS)
        if self.headings != expected:
            out.append(f"H2 headings {list(self.headings)} differ from {list(expected)}")
        out.extend(f"section {name!r} is empty" for name in REQUIRED_SECTIONS if not self.section(name).strip())
        if not self.title:
            out.append("missing '# title' line")
        return out


def fill(text: str, params: dict[str, object]) -> str:
    """Replace ``<name>`` with ``params[name]`` (name normalised: ``_`` and ``-`` are the same); leave the rest."""
    values = {str(k).replace("_", "-"): v for k, v in params.items() if v is not None}

    def repl(m: re.Match[str]) -> str:
        key = m.group(1).replace("_", "-")
        return str(values[key]) if key in values else m.group(0)

    return _PLACEHOLDER.sub(repl, text)


def trim_lines(text: str, max_chars: int) -> str:
    """Cut ``text`` to at most ``max_chars`` on a line boundary, closing an open code fence and ending with ``…``."""
    if len(text) <= max_chars:
        return text
    budget = max_chars - len(TRUNCATION_MARK) - 1
    kept: list[str] = []
    used = 0
    for line in text.splitlines():
        # reserve room for a closing fence in case we are inside a code block
        if used + len(line) + 1 > budget - 4:
            break
        kept.append(line)
        used += len(line) + 1
    while kept and not kept[-1].strip():
        kept.pop()
    if sum(1 for line in kept if _FENCE.match(line)) % 2:
        kept.append("```")
    kept.append(TRUNCATION_MARK)
    out = "\n".join(kept)
    return out if len(out) <= max_chars else TRUNCATION_MARK[:max_chars]


def parse(text: str, *, entry_id: str, path: Path, lang: str = DEFAULT_LANG) -> Runbook:
    """Parse runbook Markdown: ``# title``, the entry marker and the H2 sections (``##`` inside code fences is
    not a heading). Lenient: a malformed file still parses; :meth:`Runbook.problems` says what is wrong."""
    titles = SECTION_TITLES.get(lang, SECTION_TITLES[DEFAULT_LANG])
    to_key = {shown: key for key, shown in titles.items()}
    to_key.update({key: key for key in REQUIRED_SECTIONS})  # English headings are accepted in any language
    title = ""
    headings: list[str] = []
    bodies: dict[str, list[str]] = {}
    current: str | None = None
    in_fence = False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and line.startswith("## "):
            shown = line[3:].strip()
            headings.append(shown)
            current = to_key.get(shown, shown)
            bodies.setdefault(current, [])
            continue
        elif not in_fence and not title and current is None and line.startswith("# "):
            title = line[2:].strip()
            continue
        if current is not None:
            bodies[current].append(line)
    sections = {key: "\n".join(lines).strip("\n") for key, lines in bodies.items()}
    m = _MARKER.search(text)
    return Runbook(
        entry_id=entry_id,
        title=title,
        path=path,
        text=text,
        sections=sections,
        lang=lang,
        marker=m.group(1) if m else "",
        headings=tuple(headings),
    )


def _normalise_lang(lang: str | None) -> str:
    lang = (lang or DEFAULT_LANG).strip().lower().replace("_", "-")
    return lang if _LANG.match(lang) else DEFAULT_LANG


def _path_for(directory: Path, entry_id: str, lang: str) -> Path:
    return directory / f"{entry_id}.md" if lang == DEFAULT_LANG else directory / lang / f"{entry_id}.md"


@functools.lru_cache(maxsize=256)
def _load_cached(entry_id: str, lang: str, directory: str, mtime_ns: int) -> Runbook:
    path = _path_for(Path(directory), entry_id, lang)
    return parse(path.read_text(encoding="utf-8"), entry_id=entry_id, path=path, lang=lang)


def load(entry_id: str, lang: str = DEFAULT_LANG, directory: Path | None = None) -> Runbook:
    """Load the runbook of a catalogue entry, in ``lang`` when that translation exists (``ko-KR`` also tries
    ``ko``), else in English.

    Raises :class:`RunbookNotFound` when the id is malformed or no file exists. Parsed runbooks are cached (the
    cache key includes the file's mtime, so an edited file is re-read).
    """
    if not isinstance(entry_id, str) or not _ENTRY_ID.match(entry_id):
        raise RunbookNotFound(f"not a catalogue entry id: {entry_id!r} (expected lower-case words joined by '-')")
    base = Path(directory) if directory is not None else runbook_dir()
    want = _normalise_lang(lang)
    tried: list[str] = []
    for candidate in dict.fromkeys((want, want.split("-")[0], DEFAULT_LANG)):  # "ko-kr" -> "ko" -> "en"
        path = _path_for(base, entry_id, candidate)
        tried.append(str(path))
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            continue
        return _load_cached(entry_id, candidate, str(base), mtime)
    raise RunbookNotFound(
        f"no runbook for entry {entry_id!r} (looked for {', '.join(tried)}; runbook directory {base}, "
        f"override with ${ENV_VAR})"
    )


def available(lang: str = DEFAULT_LANG, directory: Path | None = None) -> list[str]:
    """Entry ids that have a runbook file in ``lang`` (no fallback), sorted."""
    base = Path(directory) if directory is not None else runbook_dir()
    folder = base if _normalise_lang(lang) == DEFAULT_LANG else base / _normalise_lang(lang)
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.md") if _ENTRY_ID.match(p.stem))


def clear_cache() -> None:
    """Forget parsed runbooks (tests; long-lived processes after a deploy)."""
    _load_cached.cache_clear()
