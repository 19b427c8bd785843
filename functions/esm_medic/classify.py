"""Turn any ESM status text into "which catalogue entry, which set-up step failed, how sure".

Accepts raw text, a GetEventSourceMapping / ListEventSourceMappings item, an ESM system-log record, a CloudTrail
record, or an EventBridge event carrying any of those (including esm-medic's own ``ESM Status Change`` events).
Never raises on bad input: unknown or malformed input classifies to step ``unknown`` with the raw text kept.

Patterns are compiled once; one Aho-Corasick pass over a text finds the few patterns that can match it
(``esm_medic.catalogue.matcher``), searched in catalogue order, first match wins. On an ASCII text the same pass
also tells whether normalising has more to do than trim the ends (odd spacing) and which parameter extractors
can find anything (``esm_medic.catalogue.extract``). Status fields are found at any
depth of a CloudTrail record (``requestParameters``, ``responseElements``, ``errorCode`` / ``errorMessage``), in
camelCase, PascalCase or snake_case, bare or in an EventBridge envelope; a ListEventSourceMappings page is read by
its items. Named groups in patterns become extracted parameters (topic, group, ...). The memo of repeated texts is
bounded in entries and bytes.
No boto3 here.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from esm_medic.catalogue import Catalogue, get_catalogue
from esm_medic.catalogue.extract import TRIGGERS, extract_ascii, extract_params
from esm_medic.catalogue.matcher import Matcher

MAX_TEXT = 4096  # characters of one text that are matched (the rest is kept, not searched)

STATUS_FIELDS = ("LastProcessingResult", "StateTransitionReason")

# Ranking of a classification when several fields carry text: a specific error beats a generic code, which beats
# an unrecognised text, which beats a healthy value, which beats nothing.
_RANK_ERROR, _RANK_GENERIC, _RANK_UNKNOWN, _RANK_HEALTHY, _RANK_EMPTY = 4, 3, 2, 1, 0


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a classification says apart from the text it read; every text that matches one catalogue pattern
    shares one ``Verdict`` (built once, when the classifier is)."""

    entry: str | None
    step: str
    kind: str  # error | healthy | unknown | empty
    confidence: float
    title: str = ""
    auto_fixable: bool = False
    fixable: bool = False
    transient: bool = False
    runbook: str | None = None


_EMPTY = Verdict(None, "unknown", "empty", 0.0)
_NOT_IN_CATALOGUE = Verdict(None, "unknown", "unknown", 0.0, "Not in the catalogue")
_UNCLASSIFIABLE = Verdict(None, "unknown", "unknown", 0.0, "Unclassifiable input")


@dataclass(slots=True)
class Classification:
    """One classification: the ``verdict`` (entry, step, kind, confidence, title, fix flags, runbook; read them as
    attributes) and what was read. Treat as immutable: results are memoised and shared (``dataclasses.replace``
    to vary)."""

    verdict: Verdict
    text: str
    field: str = "text"
    normalized: str = ""
    span: tuple[int, int] | None = None
    matched: str = ""
    params: Mapping[str, str] = dataclasses.field(default_factory=dict)
    catalogue_version: str = ""
    uuid: str = ""
    also: tuple[Mapping[str, Any], ...] = ()  # the other fields' classifications (entry, step, field, text)

    @property
    def entry(self) -> str | None:
        return self.verdict.entry

    @property
    def step(self) -> str:
        return self.verdict.step

    @property
    def kind(self) -> str:
        return self.verdict.kind

    @property
    def confidence(self) -> float:
        return self.verdict.confidence

    @property
    def title(self) -> str:
        return self.verdict.title

    @property
    def auto_fixable(self) -> bool:
        return self.verdict.auto_fixable

    @property
    def fixable(self) -> bool:
        return self.verdict.fixable

    @property
    def transient(self) -> bool:
        return self.verdict.transient

    @property
    def runbook(self) -> str | None:
        return self.verdict.runbook

    @property
    def healthy(self) -> bool:
        return self.kind == "healthy"

    @property
    def is_error(self) -> bool:
        return self.kind in ("error", "unknown")

    @property
    def rank(self) -> int:
        if self.kind == "error":
            return _RANK_GENERIC if self.params.get("_generic") else _RANK_ERROR
        return {"unknown": _RANK_UNKNOWN, "healthy": _RANK_HEALTHY}.get(self.kind, _RANK_EMPTY)

    def to_dict(self) -> dict[str, Any]:
        return {
            "entry": self.entry,
            "step": self.step,
            "kind": self.kind,
            "healthy": self.healthy,
            "title": self.title,
            "confidence": self.confidence,
            "auto_fixable": self.auto_fixable,
            "fixable": self.fixable,
            "transient": self.transient,
            "runbook": self.runbook,
            "field": self.field,
            "text": self.text,
            "matched": self.matched,
            "span": list(self.span) if self.span else None,
            "params": {k: v for k, v in self.params.items() if not k.startswith("_")},
            "uuid": self.uuid,
            "catalogue_version": self.catalogue_version,
            "also": [dict(a) for a in self.also],
        }


def normalize(text: str) -> str:
    """Fold whitespace, strip quotes and any leading ``PROBLEM:`` prefixes. Case is kept (matching ignores it)."""
    t = text[:MAX_TEXT]
    if t.isprintable() and "  " not in t:
        # every whitespace character but the space is unprintable, so the only whitespace here is single spaces:
        # folding (" ".join(t.split())) is then a strip
        return _trim(t)
    return _trim(" ".join(t.split()))


def _trim(t: str) -> str:
    """``normalize`` for a text whose only whitespace is single spaces: strip, unquote, drop ``PROBLEM:`` prefixes
    (``^(?:\\s*problem\\s*:\\s*)+`` case-insensitively, without a regex; tests/unit/test_classify_fastpaths.py)."""
    t = t.strip().strip("\"'“”").strip()
    while t[:1] in "pP" and t[:7].lower() == "problem":  # (no other character lower-cases to "p")
        rest = t[7:].lstrip()
        if rest[:1] != ":":
            break
        t = rest[1:].lstrip()
    return t


# Whitespace an ASCII text can hold besides single spaces; when the matcher's pass over the raw text sees none,
# normalising only trims the ends (``_trim``), so the literals it found are a superset of those of the normalised
# text: the candidates it gives are then still every pattern that can match.
_ASCII_SPACING = ("  ", "\t", "\n", "\x0b", "\x0c", "\r", "\x1c", "\x1d", "\x1e", "\x1f")


class Classifier:
    """Compiled matcher over one catalogue.

    One Aho-Corasick pass over the lower-cased text finds the patterns whose required literal occurs in it; only
    those are searched, in catalogue order, first match wins (``esm_medic.catalogue.matcher``). Everything a
    match of one pattern puts in its result is built once, here. Results for repeated
    texts are memoised in a memo bounded in entries and in bytes; texts longer than ``MEMO_MAX_TEXT`` are never
    held.
    """

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self._version = catalogue.version
        pairs = [(entry, p) for entry in catalogue.entries for p in entry.compiled]
        self._matcher = Matcher([p for _, p in pairs], {**TRIGGERS, "spacing": _ASCII_SPACING})
        bits = self._matcher.trigger_bits
        self._arn_bits, self._port_bits, self._topic_bits = bits["arn"], bits["port"], bits["topics"]
        self._spacing_bits = bits["spacing"]
        self._extract_bits = self._arn_bits | self._port_bits | self._topic_bits
        # what a match of pattern i puts in its Classification, computed once: the verdict, whether the entry is
        # generic, whether the pattern has named groups
        verdicts = {
            e.id: Verdict(
                e.id, e.step, e.kind, e.confidence, e.title, e.auto_fixable, e.fixable, e.transient, e.runbook
            )
            for e in catalogue.entries
        }
        self._results = tuple((verdicts[e.id], e.generic, bool(p.groupindex)) for e, p in pairs)
        self._memo: dict[str, Classification] = {}
        self._memo_bytes = 0
        self._memo_lock = threading.Lock()

    # ------------------------------------------------------------------ text
    def classify_text(self, text: str, field: str = "text") -> Classification:
        """Classify one status text; never raises (a non-string is classified by its ``str``)."""
        try:
            c = self._memo.get(text)
            if c is None:
                c = self._classify_text_uncached(text)
                if len(text) <= MEMO_MAX_TEXT:
                    self._remember(text, c)
        except Exception:
            return self.classify(text) if not isinstance(text, str) else self._failed(text)
        if field != c.field:
            c = _replace(c, field=field)
        return c

    def _remember(self, text: str, c: Classification) -> None:
        size = _ENTRY_OVERHEAD + 2 * (len(text) + len(c.normalized) + len(c.matched))
        with self._memo_lock:
            memo = self._memo
            while memo and (len(memo) >= MEMO_MAX_ENTRIES or self._memo_bytes + size > MEMO_MAX_BYTES):
                old_text, old = _pop_oldest(memo)
                self._memo_bytes -= _ENTRY_OVERHEAD + 2 * (len(old_text) + len(old.normalized) + len(old.matched))
            memo[text] = c
            self._memo_bytes += size

    @property
    def memo_bytes(self) -> int:
        """Approximate bytes held by the memo (bounded by ``MEMO_MAX_BYTES``)."""
        return self._memo_bytes

    def _failed(self, text: str) -> Classification:
        return Classification(_UNCLASSIFIABLE, _short(text), catalogue_version=self.catalogue.version)

    def _classify_text_uncached(self, text: str) -> Classification:
        matcher = self._matcher
        t = text[:MAX_TEXT]
        ascii_text = t.isascii()
        if ascii_text:
            # one pass over the raw text; unless it holds odd spacing, normalising only trims the ends
            found = 0
            for _end, bit in matcher.iter(t.lower()):  # matcher.scan, inline
                found |= bit
            if found & self._spacing_bits:
                norm = _trim(" ".join(t.split()))
                lowered = norm.lower()
                found = matcher.scan(lowered)
            else:
                norm = _trim(t)
                lowered = norm.lower()
        else:
            norm = normalize(text)
            lowered = norm.lower()
            found = matcher.scan(lowered)
            ascii_text = norm.isascii()
        if not norm and (not text or text.isspace()):
            return Classification(_EMPTY, text, catalogue_version=self.catalogue.version)
        hit = matcher.match(norm, lowered, found, ascii_text)
        if ascii_text:  # the scan saw every literal an extractor needs: those that cannot find anything are skipped
            if found & self._extract_bits:
                params = extract_ascii(
                    norm, lowered, found & self._arn_bits, found & self._port_bits, found & self._topic_bits
                )
            else:
                params = {}
        else:
            params = extract_params(norm)
        if hit is None:
            return Classification(_NOT_IN_CATALOGUE, text, "text", norm, None, "", params, self._version)
        index, span, m = hit
        verdict, generic, groups = self._results[index]
        if groups and m is not None:
            params.update({k: v for k, v in m.groupdict().items() if v})
        if generic:
            params["_generic"] = "1"
        return Classification(verdict, text, "text", norm, span, norm[span[0] : span[1]], params, self._version)

    # ------------------------------------------------------------------ structured input
    def classify(self, obj: Any) -> Classification:
        """Classify text, bytes, JSON text, an ESM item (or a ListEventSourceMappings page), a log or CloudTrail
        record, or an EventBridge event carrying any of those."""
        try:
            return self._classify_any(obj)
        except Exception as exc:  # never let odd input escape as an exception
            verdict = Verdict(None, "unknown", "unknown", 0.0, f"Unclassifiable input ({type(exc).__name__})")
            return Classification(verdict, _short(obj), catalogue_version=self.catalogue.version)

    def _classify_any(self, obj: Any, depth: int = 0) -> Classification:
        if isinstance(obj, bytes | bytearray):
            obj = bytes(obj).decode("utf-8", errors="replace")
        if isinstance(obj, str):
            stripped = obj.strip()
            if depth == 0 and stripped[:1] in ("{", "["):
                try:
                    return self._classify_any(json.loads(stripped), depth + 1)
                except (ValueError, RecursionError):
                    pass
            return self.classify_text(obj)
        if isinstance(obj, Mapping) and depth < 4:
            return self._classify_mapping(obj, depth)
        if isinstance(obj, list | tuple) and obj and depth < 4:
            results = [self._classify_any(o, depth + 1) for o in obj[:50]]
            return max(results, key=lambda c: c.rank)
        return Classification(_EMPTY, _short(obj), catalogue_version=self.catalogue.version)

    def _classify_mapping(self, obj: Mapping[str, Any], depth: int) -> Classification:
        keys = _keymap(obj)
        pages = keys.get("eventsourcemappings")
        if isinstance(pages, list):  # a ListEventSourceMappings page: its items, worst first
            return self._classify_any(pages, depth) if pages else self._empty("")
        detail = obj.get("detail")
        if isinstance(detail, Mapping):  # EventBridge envelope
            return self._classify_detail(detail, depth)
        uuid = _uuid_of(keys)
        new = obj.get("new")
        if isinstance(new, Mapping) and not _status_fields(keys):  # esm-medic "ESM Status Change" detail
            c = self._classify_mapping(new, depth + 1)
            return _replace(c, uuid=uuid or c.uuid)
        candidates: list[Classification] = []
        self._collect(obj, candidates, 0)
        if not candidates:
            return self._empty(uuid)
        return _pick(candidates, uuid or _nested_uuid(obj))

    def _collect(self, obj: Mapping[str, Any], out: list[Classification], level: int) -> None:
        """Candidates of one mapping: its status fields (any casing), an error code / message pair (a CloudTrail
        record, or an ESM system-log record's ``error``), its text fields; then those of nested records (e.g.
        CloudTrail's ``responseElements`` / ``requestParameters``), nearest first."""
        keys = _keymap(obj)
        for fname in STATUS_FIELDS:
            value = keys.get(fname.lower())
            if isinstance(value, str) and value.strip():
                out.append(self.classify_text(value, fname))
        error = keys.get("error")
        if isinstance(error, Mapping):  # ESM system log record
            msg = _code_and_message(_keymap(error))
            if msg:
                out.append(self.classify_text(msg, "log"))
        if "errorcode" in keys or "errormessage" in keys:  # CloudTrail record
            msg = _code_and_message(keys)
            if msg:
                out.append(self.classify_text(msg, "cloudtrail"))
        for key in ("text", "message", "reason"):
            value = keys.get(key)
            if isinstance(value, str) and value.strip():
                out.append(self.classify_text(value, key))
        if level >= _MAX_NESTING or len(out) >= _MAX_CANDIDATES:
            return
        for key, value in obj.items():
            if isinstance(key, str) and key.lower() in _NOT_CURRENT:
                continue
            for inner in value if isinstance(value, list) else (value,):
                if isinstance(inner, Mapping):
                    self._collect(inner, out, level + 1)
                    if len(out) >= _MAX_CANDIDATES:
                        return

    def _classify_detail(self, detail: Mapping[str, Any], depth: int) -> Classification:
        c = self._classify_mapping(detail, depth + 1)
        uuid = _uuid_of(_keymap(detail)) or _nested_uuid(detail)
        return _replace(c, uuid=uuid or c.uuid)

    def _empty(self, uuid: str) -> Classification:
        return Classification(_EMPTY, "", uuid=uuid, catalogue_version=self.catalogue.version)

    def classify_many(self, items: Iterable[Any]) -> Iterator[Classification]:
        for item in items:
            yield self.classify(item)


# Memo bounds: at most this many texts, this many (approximate) bytes, and no text longer than MEMO_MAX_TEXT.
MEMO_MAX_ENTRIES = 8192
MEMO_MAX_BYTES = 16 * 1024 * 1024
MEMO_MAX_TEXT = MAX_TEXT
_ENTRY_OVERHEAD = 600  # the Classification object, its params dict and the memo slot

_MAX_NESTING = 4  # levels below a record searched for nested status fields
_MAX_CANDIDATES = 32
_NOT_CURRENT = frozenset({"old", "previous", "before", "classification"})  # earlier states, or our own verdict


def _pop_oldest(memo: dict[str, Classification]) -> tuple[str, Classification]:
    key = next(iter(memo))
    return key, memo.pop(key)


def _keymap(obj: Mapping[Any, Any]) -> dict[str, Any]:
    """Keys folded (case, ``_`` and ``-`` ignored) so camelCase, PascalCase and snake_case read alike."""
    out: dict[str, Any] = {}
    for k, v in obj.items():
        if isinstance(k, str):
            out.setdefault(k.lower().replace("_", "").replace("-", ""), v)
    return out


def _status_fields(keys: Mapping[str, Any]) -> bool:
    return any(isinstance(keys.get(f.lower()), str) for f in STATUS_FIELDS)


def _uuid_of(keys: Mapping[str, Any]) -> str:
    value = keys.get("uuid")
    return value if isinstance(value, str) else ""


def _nested_uuid(obj: Mapping[str, Any]) -> str:
    """The ESM uuid where CloudTrail writes it (responseElements / requestParameters, ``uUID`` or ``UUID``)."""
    for key in ("responseelements", "requestparameters", "new", "esm"):
        inner = _keymap(obj).get(key)
        if isinstance(inner, Mapping):
            found = _uuid_of(_keymap(inner))
            if found:
                return found
    return ""


def _code_and_message(keys: Mapping[str, Any]) -> str:
    parts = [keys.get("errorcode"), keys.get("errormessage")]
    return " ".join(str(p) for p in parts if p not in (None, "")).strip()


def _pick(candidates: list[Classification], uuid: str) -> Classification:
    best = max(candidates, key=lambda c: c.rank)  # max keeps the first of equal rank: LastProcessingResult
    also = tuple(
        {"entry": c.entry, "step": c.step, "field": c.field, "text": c.text} for c in candidates if c is not best
    )
    return _replace(best, uuid=uuid, also=also)


def _replace(c: Classification, **changes: Any) -> Classification:
    return dataclasses.replace(c, **changes)


def _short(obj: Any) -> str:
    try:
        return repr(obj)[:200]
    except Exception:
        return "<unprintable>"


@lru_cache(maxsize=1)
def default_classifier() -> Classifier:
    return Classifier(get_catalogue())


def classify(obj: Any) -> Classification:
    """Classify with the packaged catalogue. See ``Classifier.classify``."""
    return default_classifier().classify(obj)


__all__ = [
    "Classification",
    "Classifier",
    "Verdict",
    "classify",
    "default_classifier",
    "extract_params",
    "get_catalogue",
    "normalize",
]
