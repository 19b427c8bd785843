"""First-match-in-catalogue-order matching of one text against every catalogue pattern, in a single pass.

Every pattern requires some literal text (``required_literals``: the longest top-level literal run, or one literal
per branch of a top-level alternation). One Aho-Corasick automaton (pyahocorasick) over all those literals finds,
in one pass over the lower-cased text, which patterns can possibly match; only those are searched, in catalogue
order, and the first that matches wins. A pattern with no required literal is always searched. The result is
exactly that of searching every pattern in order (tests/unit/test_classify_equivalence.py checks it against the
frozen earlier algorithm); ``bench/bench_classify.py`` measures it against the alternatives (a per-pattern literal
guard, one combined regex, Hyperscan).
No boto3 here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import ahocorasick


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
        parsed = sre_parse.parse(pattern)
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


def _pure_literal(pattern: str) -> str | None:
    """The lower-cased text of a pattern that is one plain literal (no metacharacters), else None."""
    import re._parser as sre_parse

    try:
        parsed = list(sre_parse.parse(pattern))
    except re.error:
        return None
    if parsed and all(op is sre_parse.LITERAL for op, _ in parsed):
        return "".join(chr(av) for _, av in parsed).lower()
    return None


_MIN_CLAUSE_LITERAL = 5


class Matcher:
    """Patterns in priority order -> index and match of the first pattern that matches a text.

    One Aho-Corasick pass over the lower-cased text collects every literal present. A pattern is a candidate when
    its required literal (``required_literals``) is present; on an ASCII text every other clause of
    ``required_clauses`` must also hold. Candidates are searched in order; a pattern that is one plain literal is
    located by ``str.find`` on an ASCII text instead.
    """

    def __init__(self, patterns: Sequence[re.Pattern[str]]) -> None:
        self.patterns = tuple(patterns)
        self.literals = tuple(required_literals(p.pattern) for p in self.patterns)
        self._always = 0  # bit mask of the patterns with no required literal
        lit_ids: dict[str, int] = {}

        def lit_bit(lit: str) -> int:
            return 1 << lit_ids.setdefault(lit, len(lit_ids))

        primary: dict[str, int] = {}
        clauses: list[tuple[int, ...]] = []
        for i, (p, lits) in enumerate(zip(self.patterns, self.literals, strict=True)):
            if not lits:
                self._always |= 1 << i
            for lit in lits:
                primary[lit] = primary.get(lit, 0) | (1 << i)
                lit_bit(lit)
            masks = []
            for clause in required_clauses(p.pattern):
                if min(len(lit) for lit in clause) < _MIN_CLAUSE_LITERAL:
                    continue  # too common to narrow anything, and every hit costs a step of the scan
                m = 0
                for lit in clause:
                    m |= lit_bit(lit)
                masks.append(m)
            clauses.append(tuple(masks))
        self._clauses = tuple(clauses)
        self._literal = tuple(_pure_literal(p.pattern) if not p.groupindex else None for p in self.patterns)
        self._automaton = ahocorasick.Automaton()
        # one int per literal: the patterns it is the required literal of (low bits), and the literal itself
        # (the bits above ``self._shift``), so a hit costs a single ``|=``
        self._shift = len(self.patterns)
        self._pattern_bits = (1 << self._shift) - 1
        for lit, bit_index in lit_ids.items():
            self._automaton.add_word(lit, primary.get(lit, 0) | (1 << (bit_index + self._shift)))
        if lit_ids:
            self._automaton.make_automaton()
        self._has_words = bool(lit_ids)

    def candidates(self, lowered: str) -> int:
        """Bit mask of the patterns that may match ``lowered`` (its required literal occurs in it)."""
        mask = self._always
        if self._has_words:
            for _end, bits in self._automaton.iter(lowered):
                mask |= bits
        return mask & self._pattern_bits

    def first(self, text: str, lowered: str | None = None) -> tuple[int, re.Match[str] | _Literal] | None:
        """The first pattern (in order) that matches ``text``, with its match; None when none does."""
        if lowered is None:
            lowered = text.lower()
        hits = self._always
        if self._has_words:
            for _end, bits in self._automaton.iter(lowered):
                hits |= bits
        mask = hits & self._pattern_bits
        found = hits >> self._shift
        ascii_text = text.isascii()
        patterns, clauses, literal = self.patterns, self._clauses, self._literal
        while mask:
            low = mask & -mask
            i = low.bit_length() - 1
            mask ^= low
            if ascii_text:
                for c in clauses[i]:
                    if not c & found:
                        break
                else:
                    lit = literal[i]
                    if lit is not None:
                        start = lowered.find(lit)
                        if start >= 0:
                            return i, _Literal(text, start, start + len(lit))
                        continue
                    m = patterns[i].search(text)
                    if m is not None:
                        return i, m
                continue
            m = patterns[i].search(text)
            if m is not None:
                return i, m
        return None


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
