"""The versioned error catalogue: data in ``catalogue.json``, validated against ``schema.json``.

No boto3 here. ``load_catalogue()`` parses and validates once; ``get_catalogue()`` caches the default one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

CATALOGUE_DIR = Path(__file__).resolve().parent
CATALOGUE_PATH = CATALOGUE_DIR / "catalogue.json"
SCHEMA_PATH = CATALOGUE_DIR / "schema.json"


class CatalogueError(ValueError):
    """The catalogue file is malformed or inconsistent."""


@dataclass(frozen=True)
class Fix:
    action: str
    safety: str  # auto | approve | manual
    summary: str
    when: str = ""

    def to_dict(self) -> dict[str, str]:
        d = {"action": self.action, "safety": self.safety, "summary": self.summary}
        if self.when:
            d["when"] = self.when
        return d


@dataclass(frozen=True)
class RootCauseInfo:
    id: str
    summary: str
    checks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Entry:
    id: str
    title: str
    kind: str
    step: str
    fields: tuple[str, ...]
    patterns: tuple[str, ...]
    examples: tuple[str, ...]
    status: str
    sources: tuple[str, ...]
    applies_sources: tuple[str, ...]
    applies_auth: tuple[str, ...]
    applies_modes: tuple[str, ...]
    root_causes: tuple[RootCauseInfo, ...]
    checks: tuple[str, ...]
    fixes: tuple[Fix, ...]
    runbook: str
    generic: bool = False
    transient: bool = False
    confidence: float = 0.9
    compiled: tuple[re.Pattern[str], ...] = field(default=(), compare=False, repr=False)

    @property
    def healthy(self) -> bool:
        return self.kind == "healthy"

    @property
    def auto_fixable(self) -> bool:
        """True when at least one fix for this entry may run without a human (safety class ``auto``)."""
        return any(f.safety == "auto" and f.action != "ticket" for f in self.fixes)

    @property
    def fixable(self) -> bool:
        """True when some fix is an action esm-medic can apply (possibly after approval)."""
        return any(f.action != "ticket" for f in self.fixes)

    def fix_for(self, root_cause: str) -> Fix | None:
        for f in self.fixes:
            if f.when == root_cause:
                return f
        return None

    def applies_to(self, source_kind: str, auth: str | None = None) -> bool:
        if source_kind and source_kind not in self.applies_sources:
            return False
        return not (auth and "any" not in self.applies_auth and auth not in self.applies_auth)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "kind": self.kind,
            "step": self.step,
            "status": self.status,
            "generic": self.generic,
            "transient": self.transient,
            "applies_to": {
                "sources": list(self.applies_sources),
                "auth": list(self.applies_auth),
                "modes": list(self.applies_modes),
            },
            "root_causes": [{"id": r.id, "summary": r.summary, "checks": list(r.checks)} for r in self.root_causes],
            "checks": list(self.checks),
            "fixes": [f.to_dict() for f in self.fixes],
            "runbook": self.runbook,
            "sources": list(self.sources),
        }


@dataclass(frozen=True)
class Catalogue:
    version: str
    entries: tuple[Entry, ...]
    by_id: Mapping[str, Entry] = field(compare=False, repr=False, default_factory=dict)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, entry_id: str) -> Entry | None:
        return self.by_id.get(entry_id)

    def __getitem__(self, entry_id: str) -> Entry:
        try:
            return self.by_id[entry_id]
        except KeyError:
            raise KeyError(f"no catalogue entry {entry_id!r}") from None


def _validate(doc: Any) -> None:
    from esm_medic.validation import first_error

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    problem = first_error(schema, doc)
    if problem is not None:
        raise CatalogueError(f"catalogue does not match its schema at {problem}")


def _entry(raw: Mapping[str, Any]) -> Entry:
    compiled = []
    for pattern in raw["patterns"]:
        try:
            compiled.append(re.compile(pattern, re.IGNORECASE))
        except re.error as exc:
            raise CatalogueError(f"entry {raw['id']}: bad pattern {pattern!r}: {exc}") from exc
    applies = raw["applies_to"]
    return Entry(
        id=raw["id"],
        title=raw["title"],
        kind=raw["kind"],
        step=raw["step"],
        fields=tuple(raw["fields"]),
        patterns=tuple(raw["patterns"]),
        examples=tuple(raw["examples"]),
        status=raw["status"],
        sources=tuple(raw["sources"]),
        applies_sources=tuple(applies["sources"]),
        applies_auth=tuple(applies["auth"]),
        applies_modes=tuple(applies.get("modes") or ("on-demand", "provisioned")),
        root_causes=tuple(
            RootCauseInfo(r["id"], r["summary"], tuple(r.get("checks") or ())) for r in raw["root_causes"]
        ),
        checks=tuple(raw["checks"]),
        fixes=tuple(Fix(f["action"], f["safety"], f["summary"], f.get("when", "")) for f in raw["fixes"]),
        runbook=raw["runbook"],
        generic=bool(raw.get("generic", False)),
        transient=bool(raw.get("transient", False)),
        confidence=float(raw.get("confidence", 0.9)),
        compiled=tuple(compiled),
    )


def load_catalogue(path: Path | str | None = None, *, validate: bool = True) -> Catalogue:
    """Parse (and by default schema-validate) a catalogue file. Raises CatalogueError on any problem."""
    p = Path(path) if path else CATALOGUE_PATH
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CatalogueError(f"cannot read catalogue {p}: {exc}") from exc
    if validate:
        _validate(doc)
    entries = tuple(_entry(e) for e in doc["entries"])
    by_id: dict[str, Entry] = {}
    for entry in entries:
        if entry.id in by_id:
            raise CatalogueError(f"duplicate catalogue entry id {entry.id!r}")
        by_id[entry.id] = entry
        rc_ids = {r.id for r in entry.root_causes}
        for fix in entry.fixes:
            if fix.when and fix.when not in rc_ids:
                raise CatalogueError(f"entry {entry.id}: fix {fix.action} names unknown root cause {fix.when!r}")
    return Catalogue(version=str(doc["version"]), entries=entries, by_id=by_id)


@lru_cache(maxsize=1)
def get_catalogue() -> Catalogue:
    """The packaged catalogue, loaded and validated once per process."""
    return load_catalogue()
