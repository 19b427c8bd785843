"""FROZEN copy of the classifier as it was before the single-pass matcher (commit 04a533a), kept only as the
reference the new matcher must agree with (tests/unit/test_classify_equivalence.py) and as a bench baseline.
Do not edit or import from the product.

Original docstring: Turn any ESM status text into "which catalogue entry, which set-up step failed, how sure".

Accepts raw text, a GetEventSourceMapping / ListEventSourceMappings item, an ESM system-log record, a CloudTrail
record, or an EventBridge event carrying any of those (including esm-medic's own ``ESM Status Change`` events).
Never raises on bad input: unknown or malformed input classifies to step ``unknown`` with the raw text kept.

Patterns are compiled once; each is guarded by the literal text it requires, so a text is searched only with
the few patterns that can match it. Named groups in patterns become extracted parameters (topic, group, ...).
No boto3 here.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from esm_medic.catalogue import Catalogue, Entry, get_catalogue

MAX_TEXT = 4096  # characters of one text that are matched (the rest is kept, not searched)

_PREFIX = re.compile(r"^(?:\s*problem\s*:\s*)+", re.IGNORECASE)

# Generic parameter extractors, run on the raw text only when a cheap substring test says they may match.
_ARN = re.compile(r"arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:\d{12}:[A-Za-z0-9_+=,.@:/-]+")
_HOSTPORT = re.compile(r"\b((?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}|\d{1,3}(?:\.\d{1,3}){3}):(\d{2,5})\b")
_TOPICS = re.compile(r"topics?:?\s*\[([^\]]+)\]", re.IGNORECASE)
_COLON_DIGIT = re.compile(r":\d")  # cheap guard: most texts have a colon ("PROBLEM:", "Exception:") but no port

STATUS_FIELDS = ("LastProcessingResult", "StateTransitionReason")

# Ranking of a classification when several fields carry text: a specific error beats a generic code, which beats
# an unrecognised text, which beats a healthy value, which beats nothing.
_RANK_ERROR, _RANK_GENERIC, _RANK_UNKNOWN, _RANK_HEALTHY, _RANK_EMPTY = 4, 3, 2, 1, 0


@dataclass(slots=True)
class Classification:
    """One classification. Treat as immutable: results are memoised and shared (``dataclasses.replace`` to vary)."""

    entry: str | None
    step: str
    kind: str  # error | healthy | unknown | empty
    confidence: float
    text: str
    field: str = "text"
    title: str = ""
    normalized: str = ""
    span: tuple[int, int] | None = None
    matched: str = ""
    params: Mapping[str, str] = dataclasses.field(default_factory=dict)
    auto_fixable: bool = False
    fixable: bool = False
    transient: bool = False
    runbook: str | None = None
    catalogue_version: str = ""
    uuid: str = ""
    also: tuple[Mapping[str, Any], ...] = ()  # the other fields' classifications (entry, step, field, text)

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
    t = " ".join(text[:MAX_TEXT].split()).strip("\"'“”").strip()
    if t[:7].lower() == "problem":
        t = _PREFIX.sub("", t, count=1).strip()
    return t


def required_literals(pattern: str) -> tuple[str, ...]:
    """Lower-cased literals of which every match of ``pattern`` contains at least one; () when unknown.

    The longest run of top-level literal characters is required; a top-level alternation requires one of its
    branches' literals (when every branch has one). The test is exact: a text containing none of them cannot match.
    """
    import re._parser as sre_parse  # stdlib; used once per pattern at start-up

    def longest(items: object) -> str:
        best = cur = ""
        for op, av in items:  # type: ignore[attr-defined]
            if op is sre_parse.LITERAL:
                cur += chr(av)
            else:
                best, cur = max(best, cur, key=len), ""
        return max(best, cur, key=len).lower()

    def branch_literals(av: object) -> tuple[str, ...]:
        branches = [longest(b) for b in av[1]]  # type: ignore[index]
        return tuple(branches) if all(branches) else ()

    try:
        parsed = sre_parse.parse(pattern)
    except re.error:
        return ()
    whole = longest(parsed)
    if whole:
        return (whole,)
    for op, av in parsed:  # a mandatory top-level group holding an alternation: one of its literals is required
        if op is sre_parse.BRANCH:
            return branch_literals(av)
        if op is sre_parse.SUBPATTERN:
            inner = list(av[3])
            if len(inner) == 1 and inner[0][0] is sre_parse.BRANCH:
                found = branch_literals(inner[0][1])
                if found:
                    return found
    return ()
    whole = longest(parsed)
    if whole:
        return (whole,)
    items = list(parsed)
    if len(items) == 1 and items[0][0] is sre_parse.BRANCH:
        branches = [longest(b) for b in items[0][1][1]]
        if all(branches):
            return tuple(branches)
    return ()


class Classifier:
    """Compiled matcher over one catalogue.

    Each pattern carries the literal text it requires; a text is searched only with the patterns whose literal it
    contains (one lower-cased substring test each), in catalogue order, first match wins. Results for repeated texts
    are memoised.
    """

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self._patterns: list[tuple[Entry, re.Pattern[str], tuple[str, ...]]] = [
            (entry, compiled, required_literals(source))
            for entry in catalogue.entries
            for compiled, source in zip(entry.compiled, entry.patterns, strict=True)
        ]
        self._flags = {e.id: (e.auto_fixable, e.fixable) for e in catalogue.entries}
        self._cached = lru_cache(maxsize=8192)(self._classify_text_uncached)

    # ------------------------------------------------------------------ text
    def classify_text(self, text: str, field: str = "text") -> Classification:
        c = self._cached(text)
        if field != c.field:
            c = _replace(c, field=field)
        return c

    def _match(self, norm: str) -> tuple[Entry, re.Match[str]] | None:
        lowered = norm.lower()
        for entry, pattern, literals in self._patterns:
            if literals:
                for lit in literals:
                    if lit in lowered:
                        break
                else:
                    continue
            m = pattern.search(norm)
            if m is not None:
                return entry, m
        return None

    def _classify_text_uncached(self, text: str) -> Classification:
        version = self.catalogue.version
        if not text or not text.strip():
            return Classification(None, "unknown", "empty", 0.0, text, catalogue_version=version)
        norm = normalize(text)
        hit = self._match(norm)
        if hit is None:
            return Classification(
                None,
                "unknown",
                "unknown",
                0.0,
                text,
                title="Not in the catalogue",
                normalized=norm,
                params=extract_params(norm),
                catalogue_version=version,
            )
        entry, m = hit
        params = extract_params(norm)
        params.update({k: v for k, v in m.groupdict().items() if v})
        if entry.generic:
            params["_generic"] = "1"
        return Classification(
            entry=entry.id,
            step=entry.step,
            kind=entry.kind,
            confidence=entry.confidence,
            text=text,
            title=entry.title,
            normalized=norm,
            span=m.span(),
            matched=m.group(0),
            params=params,
            auto_fixable=self._flags[entry.id][0],
            fixable=self._flags[entry.id][1],
            transient=entry.transient,
            runbook=entry.runbook,
            catalogue_version=version,
        )

    # ------------------------------------------------------------------ structured input
    def classify(self, obj: Any) -> Classification:
        """Classify text, bytes, JSON text, an ESM item, a log/CloudTrail record or an EventBridge event."""
        try:
            return self._classify_any(obj)
        except Exception as exc:  # never let odd input escape as an exception
            return Classification(
                None,
                "unknown",
                "unknown",
                0.0,
                _short(obj),
                title=f"Unclassifiable input ({type(exc).__name__})",
                catalogue_version=self.catalogue.version,
            )

    def _classify_any(self, obj: Any, depth: int = 0) -> Classification:
        if isinstance(obj, bytes | bytearray):
            obj = bytes(obj).decode("utf-8", errors="replace")
        if isinstance(obj, str):
            stripped = obj.strip()
            if depth == 0 and stripped[:1] in ("{", "["):
                try:
                    return self._classify_any(json.loads(stripped), depth + 1)
                except ValueError:
                    pass
            return self.classify_text(obj)
        if isinstance(obj, Mapping) and depth < 4:
            return self._classify_mapping(obj, depth)
        if isinstance(obj, list | tuple) and obj and depth < 4:
            results = [self._classify_any(o, depth + 1) for o in obj[:50]]
            return max(results, key=lambda c: c.rank)
        return Classification(None, "unknown", "empty", 0.0, _short(obj), catalogue_version=self.catalogue.version)

    def _classify_mapping(self, obj: Mapping[str, Any], depth: int) -> Classification:
        uuid = str(obj.get("UUID") or obj.get("uuid") or "")
        detail = obj.get("detail")
        if isinstance(detail, Mapping):  # EventBridge envelope
            return self._classify_detail(detail, depth)
        candidates: list[Classification] = []
        for fname in STATUS_FIELDS:
            value = obj.get(fname)
            if isinstance(value, str) and value.strip():
                candidates.append(self.classify_text(value, fname))
        error = obj.get("error")
        if isinstance(error, Mapping):  # ESM system log record
            msg = " ".join(str(error.get(k) or "") for k in ("errorCode", "errorMessage")).strip()
            if msg:
                candidates.append(self.classify_text(msg, "log"))
        if "errorCode" in obj or "errorMessage" in obj:  # CloudTrail record
            msg = " ".join(str(obj.get(k) or "") for k in ("errorCode", "errorMessage")).strip()
            if msg:
                candidates.append(self.classify_text(msg, "cloudtrail"))
        for key in ("text", "message", "reason"):
            value = obj.get(key)
            if isinstance(value, str) and value.strip():
                candidates.append(self.classify_text(value, key))
        if not candidates:
            for key in ("new", "status", "responseElements", "esm"):
                inner = obj.get(key)
                if isinstance(inner, Mapping):
                    c = self._classify_mapping(inner, depth + 1)
                    return _replace(c, uuid=uuid or c.uuid)
            return Classification(
                None, "unknown", "empty", 0.0, "", uuid=uuid, catalogue_version=self.catalogue.version
            )
        return _pick(candidates, uuid)

    def _classify_detail(self, detail: Mapping[str, Any], depth: int) -> Classification:
        uuid = str(detail.get("uuid") or detail.get("UUID") or "")
        if "errorCode" in detail or "errorMessage" in detail:
            c = self._classify_mapping({k: detail.get(k) for k in ("errorCode", "errorMessage")}, depth + 1)
        elif isinstance(detail.get("new"), Mapping):  # esm-medic "ESM Status Change"
            c = self._classify_mapping(detail["new"], depth + 1)
        elif isinstance(detail.get("responseElements"), Mapping):
            c = self._classify_mapping(detail["responseElements"], depth + 1)
            uuid = uuid or str(detail["responseElements"].get("uUID") or detail["responseElements"].get("UUID") or "")
        else:
            c = self._classify_mapping(detail, depth + 1)
        return _replace(c, uuid=uuid or c.uuid)

    def classify_many(self, items: Iterable[Any]) -> Iterator[Classification]:
        for item in items:
            yield self.classify(item)


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


def extract_params(text: str) -> dict[str, str]:
    """Pull broker host/port, ARNs and topic names out of free text (empty dict when there are none)."""
    params: dict[str, str] = {}
    if "arn:" in text:
        for arn in _ARN.findall(text):
            service = arn.split(":")[2]
            key = {
                "secretsmanager": "secret_arn",
                "kms": "kms_key_arn",
                "kafka": "cluster_arn",
                "iam": "role_arn",
                "sts": "principal_arn",
                "ec2": "resource_arn",
            }.get(service, f"{service}_arn")
            params.setdefault(key, arn.rstrip(".,;"))
    if ":" in text and _COLON_DIGIT.search(text):
        m = _HOSTPORT.search(text)
        if m:
            params["host"], params["port"] = m.group(1), m.group(2)
    if "[" in text:
        t = _TOPICS.search(text)
        if t:
            params["topic"] = t.group(1).split(",")[0].strip()
    return params


@lru_cache(maxsize=1)
def default_classifier() -> Classifier:
    return Classifier(get_catalogue())


def classify(obj: Any) -> Classification:
    """Classify with the packaged catalogue. See ``Classifier.classify``."""
    return default_classifier().classify(obj)


__all__ = [
    "Classification",
    "Classifier",
    "classify",
    "default_classifier",
    "extract_params",
    "get_catalogue",
    "normalize",
]
