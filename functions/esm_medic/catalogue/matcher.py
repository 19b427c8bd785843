"""First-match-in-catalogue-order matching of one text against every catalogue pattern, in a single pass.

Every pattern requires some literal text (``required_literals``: the longest top-level literal run, or one literal
per branch of a top-level alternation). One Aho-Corasick automaton (pyahocorasick) over all those literals finds,
in one pass over the lower-cased text, which patterns can possibly match; only those are searched, in catalogue
order, and the first that matches wins. A pattern with no required literal is always searched. The ordered list
of candidates depends only on the set of literals found, so it is computed once per set and remembered; a
candidate's search starts where its longest literal first occurs, less what the pattern can hold before it
(``literal_hint``). The result is exactly that of searching every pattern in order
(tests/unit/test_classify_equivalence.py checks it against the frozen earlier algorithm,
tests/unit/test_classify_fastpaths.py the shortcuts); ``bench/bench_classify.py`` measures it against the
alternatives (a per-pattern literal guard, one combined regex, Hyperscan).
No boto3 here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import ahocorasick


@lru_cache(maxsize=1024)
def _parse(pattern: str) -> Any:
    """The parse tree of a pattern (``re._parser``, stdlib), read by the functions below; parsed once per pattern."""
    import re._parser as sre_parse

    return sre_parse.parse(pattern)


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
        parsed = _parse(pattern)
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


def required_clauses(pattern: str) -> tuple[frozenset[str], ...]:
    """Every clause is a set of lower-cased literals of which every match of ``pattern`` contains one (all clauses
    hold at once): each top-level literal run, and each mandatory top-level alternation whose branches all have a
    literal. Exact for ASCII texts only (Unicode case folding can match ``s`` with U+017F), so it is applied there."""
    import re._parser as sre_parse

    def runs(items: object) -> list[str]:
        out, cur = [], ""
        for op, av in items:  # type: ignore[attr-defined]
            if op is sre_parse.LITERAL:
                cur += chr(av)
            else:
                if cur:
                    out.append(cur.lower())
                cur = ""
        if cur:
            out.append(cur.lower())
        return out

    def longest(items: object) -> str:
        found = runs(items)
        return max(found, key=len) if found else ""

    def branch(av: object) -> frozenset[str] | None:
        lits = [longest(b) for b in av[1]]  # type: ignore[index]
        return frozenset(lits) if all(lits) else None

    try:
        parsed = _parse(pattern)
    except re.error:
        return ()
    clauses = [frozenset({r}) for r in runs(parsed)]
    for op, av in parsed:
        found = None
        if op is sre_parse.BRANCH:
            found = branch(av)
        elif op is sre_parse.SUBPATTERN:
            inner = list(av[3])
            if len(inner) == 1 and inner[0][0] is sre_parse.BRANCH:
                found = branch(inner[0][1])
        if found:
            clauses.append(found)
    return tuple(dict.fromkeys(clauses))


def literal_hint(pattern: str) -> tuple[str, int] | None:
    """(the longest top-level literal run, lower-cased; the most characters a match can have before it), or None
    when there is no such run or what comes before it is unbounded. A match cannot start more than that many
    characters before the first occurrence of the run, so (on an ASCII text, where lower-casing keeps positions)
    a search may start there, with the same result: ``re`` still sees the text before the start position for
    look-behinds and ``\\b``, and ``^`` could only have matched at 0."""
    import re._parser as sre_parse
    from re._constants import MAXREPEAT

    try:
        parsed = _parse(pattern)
    except re.error:
        return None
    items = list(parsed)
    runs: list[tuple[int, str]] = []
    start, cur = 0, ""
    for k, (op, av) in enumerate(items):
        if op is sre_parse.LITERAL:
            if not cur:
                start = k
            cur += chr(av)
        else:
            if cur:
                runs.append((start, cur))
            cur = ""
    if cur:
        runs.append((start, cur))
    if not runs:
        return None
    k, run = max(runs, key=lambda r: len(r[1]))
    lead = sre_parse.SubPattern(parsed.state, items[:k]).getwidth()[1] if k else 0
    return (run.lower(), lead) if lead < MAXREPEAT else None


def _pure_literal(pattern: str) -> str | None:
    """The lower-cased text of a pattern that is one plain literal (no metacharacters), else None."""
    import re._parser as sre_parse

    try:
        parsed = list(_parse(pattern))
    except re.error:
        return None
    if parsed and all(op is sre_parse.LITERAL for op, _ in parsed):
        return "".join(chr(av) for _, av in parsed).lower()
    return None


_MIN_CLAUSE_LITERAL = 5
_FREQUENCY = {c: i for i, c in enumerate(" etaoinsrhldcumfpgwybvkxjqz")}
_PLAN_CACHE_MAX = 4096  # distinct literal sets remembered (a real catalogue's texts give a few dozen)


class Matcher:
    """Patterns in priority order -> index and match of the first pattern that matches a text.

    ``scan`` runs one Aho-Corasick pass over the lower-cased text and returns the set of literals present, one bit
    each. A pattern is a candidate when its required literal (``required_literals``) is present; on an ASCII text
    every other clause of ``required_clauses`` must also hold. The ordered candidate list depends only on that set
    (and on whether the text is ASCII), so it is computed once per distinct set and remembered. Candidates are
    searched in order; a pattern that is one plain literal is located by ``str.find`` on an ASCII text instead.

    ``triggers`` names extra literals the caller wants to know about (``trigger_bits[name]`` is the bit mask of
    a trigger's literals in the set ``scan`` returns), so one pass also tells which parameter extractors can apply.
    """

    def __init__(
        self, patterns: Sequence[re.Pattern[str]], triggers: Mapping[str, Iterable[str]] | None = None
    ) -> None:
        self.patterns = tuple(patterns)
        self.literals = tuple(required_literals(p.pattern) for p in self.patterns)
        self._always = 0  # bit mask of the patterns with no required literal
        lit_ids: dict[str, int] = {}

        def lit_bit(lit: str) -> int:
            return 1 << lit_ids.setdefault(lit, len(lit_ids))

        primary: dict[int, int] = {}  # literal bit -> the patterns it is the required literal of
        clauses: list[tuple[int, ...]] = []
        for i, (p, lits) in enumerate(zip(self.patterns, self.literals, strict=True)):
            if not lits:
                self._always |= 1 << i
            for lit in lits:
                bit = lit_bit(lit)
                primary[bit] = primary.get(bit, 0) | (1 << i)
            masks = []
            for clause in required_clauses(p.pattern):
                if min(len(lit) for lit in clause) < _MIN_CLAUSE_LITERAL:
                    continue  # too common to narrow anything, and every hit costs a step of the scan
                m = 0
                for lit in clause:
                    m |= lit_bit(lit)
                masks.append(m)
            clauses.append(tuple(masks))
        self.trigger_bits: dict[str, int] = {}
        for name, words in (triggers or {}).items():
            m = 0
            for word in words:
                m |= lit_bit(word.lower())
            self.trigger_bits[name] = m
        self._primary = primary
        self._clauses = tuple(clauses)
        self._literal = tuple(_pure_literal(p.pattern) if not p.groupindex else None for p in self.patterns)
        self._hints = tuple(literal_hint(p.pattern) for p in self.patterns)
        self._automaton = ahocorasick.Automaton()
        # pyahocorasick looks a character up among a node's children in the order they were added: adding the
        # literals in the order of their characters' usual frequency in English text makes the common lookups short
        for lit in sorted(lit_ids, key=lambda w: [_FREQUENCY.get(c, len(_FREQUENCY)) for c in w]):
            self._automaton.add_word(lit, 1 << lit_ids[lit])
        if lit_ids:
            self._automaton.make_automaton()
        # (end index, literal bit) for each literal occurrence in a lower-cased text; ``scan`` ORs the bits
        self.iter: Callable[[str], Iterable[tuple[int, int]]] = self._automaton.iter if lit_ids else _no_hits
        # remembered candidate lists by literal set, one memo for ASCII texts and one for the others
        self._plans: tuple[dict[int, tuple[_Step, ...]], dict[int, tuple[_Step, ...]]] = ({}, {})

    def scan(self, lowered: str) -> int:
        """The literals present in ``lowered`` (a lower-cased text), one bit each, in one pass."""
        found = 0
        for _end, bit in self.iter(lowered):
            found |= bit
        return found

    def candidates(self, lowered: str) -> int:
        """Bit mask of the patterns that may match ``lowered`` (its required literal occurs in it)."""
        return self._candidate_mask(self.scan(lowered))

    def _candidate_mask(self, found: int) -> int:
        mask = self._always
        primary = self._primary
        while found:
            low = found & -found
            found ^= low
            mask |= primary.get(low, 0)
        return mask

    def plan(self, found: int, ascii_text: bool) -> tuple[_Step, ...]:
        """The candidates, in order, for a text whose literal set is ``found``: (pattern index, the literal to
        ``find`` when the pattern is one plain literal, the literal to start the search from and how far before
        it a match can start), the last three only for an ASCII text."""
        plans = self._plans[ascii_text]
        plan = plans.get(found)
        if plan is not None:
            return plan
        mask = self._candidate_mask(found)
        out: list[_Step] = []
        while mask:
            low = mask & -mask
            mask ^= low
            i = low.bit_length() - 1
            if not ascii_text:
                out.append((i, None, None, 0))
            elif all(c & found for c in self._clauses[i]):
                hint = self._hints[i]
                out.append((i, self._literal[i], *(hint or (None, 0))))
        plan = tuple(out)
        if len(plans) >= _PLAN_CACHE_MAX:
            plans.clear()
        plans[found] = plan
        return plan

    def first(
        self, text: str, lowered: str | None = None, found: int | None = None
    ) -> tuple[int, re.Match[str] | _Literal] | None:
        """The first pattern (in order) that matches ``text``, with its match; None when none does. ``lowered``
        (``text.lower()``) and ``found`` (``scan(lowered)``) are computed when not given."""
        if lowered is None:
            lowered = text.lower()
        if found is None:
            found = self.scan(lowered)
        hit = self.match(text, lowered, found, text.isascii())
        if hit is None:
            return None
        i, span, m = hit
        return i, m if m is not None else _Literal(text, *span)

    def match(
        self, text: str, lowered: str, found: int, ascii_text: bool
    ) -> tuple[int, tuple[int, int], re.Match[str] | None] | None:
        """``first`` with everything given, answering (pattern index, span, the ``re.Match`` or None when a plain
        literal was located by ``find``). ``found`` may hold more literals than ``lowered`` does (a scan of a
        longer text that contains it): extra candidates are searched and fail, so the answer is the same."""
        plan = self._plans[ascii_text].get(found)
        if plan is None:
            plan = self.plan(found, ascii_text)
        patterns = self.patterns
        for i, lit, hint, lead in plan:
            if lit is not None:
                start = lowered.find(lit)
                if start >= 0:
                    return i, (start, start + len(lit)), None
                continue
            if hint is not None:
                start = lowered.find(hint)
                if start < 0:  # (``found`` held more than this text)
                    continue
                m = patterns[i].search(text, start - lead if start > lead else 0)
            else:
                m = patterns[i].search(text)
            if m is not None:
                return i, m.span(), m
        return None


_Step = tuple[int, str | None, str | None, int]


def _no_hits(_text: str) -> tuple[()]:
    return ()


class _Literal:
    """A match of a plain-literal pattern, with the parts of ``re.Match`` the classifier reads."""

    __slots__ = ("_end", "_start", "_text")

    def __init__(self, text: str, start: int, end: int) -> None:
        self._text, self._start, self._end = text, start, end

    def span(self) -> tuple[int, int]:
        return self._start, self._end

    def group(self, _index: int = 0) -> str:
        return self._text[self._start : self._end]

    def groupdict(self) -> dict[str, str]:
        return {}
