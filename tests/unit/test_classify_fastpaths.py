"""The classifier's fast paths give exactly what the plain definitions give: ``normalize`` against the
regex-and-split definition, ``extract_ascii`` against ``extract_params``, a search started from a pattern's literal
hint against the full search, and the whole classification against the frozen earlier classifier on spacing,
quoting and prefix edge cases (unicode whitespace, very long texts, empty texts)."""

from __future__ import annotations

import re
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import classify_reference
from esm_medic.catalogue import get_catalogue
from esm_medic.catalogue.extract import TRIGGERS, extract_ascii, extract_params
from esm_medic.catalogue.matcher import literal_hint
from esm_medic.classify import MAX_TEXT, Classifier, normalize

CAT = get_catalogue()
NEW = Classifier(CAT)
OLD = classify_reference.Classifier(CAT)
EXAMPLES = [ex for e in CAT for ex in e.examples]

_PREFIX = re.compile(r"^(?:\s*problem\s*:\s*)+", re.IGNORECASE)
ALL_CHARS = "".join(chr(c) for c in range(sys.maxunicode + 1))
UNICODE_SPACES = "".join(c for c in ALL_CHARS if c.isspace())


def by_definition(text: str) -> str:
    t = " ".join(text[:MAX_TEXT].split()).strip("\"'“”").strip()
    if t[:7].lower() == "problem":
        t = _PREFIX.sub("", t, count=1).strip()
    return t


def same(text: str) -> None:
    assert NEW._classify_text_uncached(text).to_dict() == OLD._classify_text_uncached(text).to_dict()


def test_the_character_facts_the_fast_paths_rely_on():
    # the prefix loop: a character matches a letter of "problem" (or ":") case-insensitively exactly when it
    # lower-cases to it, and only "P" lower-cases to "p"
    for letter in "problem:":
        assert re.findall(re.escape(letter), ALL_CHARS, re.IGNORECASE) == [c for c in ALL_CHARS if c.lower() == letter]
    assert [c for c in ALL_CHARS if c.lower() == "p"] == ["P", "p"]
    # \s is str.isspace, and every whitespace character but the space is unprintable
    assert re.findall(r"\s", ALL_CHARS) == list(UNICODE_SPACES)
    assert [c for c in UNICODE_SPACES if c.isprintable()] == [" "]
    # an ASCII text's whitespace, besides the space, is what the classifier's scan looks for
    assert {c for c in UNICODE_SPACES if c.isascii()} == {" ", "\t", "\n", "\x0b", "\x0c", "\r"} | {
        chr(c) for c in range(0x1C, 0x20)
    }
    # the port trigger: on ASCII text \d is [0-9]
    assert re.findall(r"\d", ALL_CHARS[:128]) == list("0123456789")


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "\u3000\u2028",
        '""',
        "“”",
        "PROBLEM:",
        "problem : : x",
        "PROBLEM PROBLEM: x",
        "PROBLEM:PROBLEM:  problem:\tConnection error.",
        ' \t"PROBLEM: Connection error."\n',
        "problems: Connection error.",
        "PROBLEM:\u00a0Connection\u2003error.",
        "PROBLEM:\u0085Lambda internal error.",
        "\u017fasl authentication failed",
        "Lambda internal error." + " " * 5000,
        "x" * (MAX_TEXT - 3) + "  Lambda internal error.",
        "Lambda internal error. " + "y" * (2 * MAX_TEXT),
        "'OK'",
        "ok\x1c",
    ],
)
def test_normalisation_edge_cases_match_the_definition(text):
    assert normalize(text) == by_definition(text)
    same(text)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.sampled_from(["PROBLEM", "problem", "Problem", ":", '"', "'", "“", "”", "ok", "Connection error."])
        | st.sampled_from(list(UNICODE_SPACES))
        | st.sampled_from(EXAMPLES),
        max_size=12,
    )
)
def test_property_spacing_quotes_and_prefixes_normalise_as_defined(parts):
    text = "".join(parts)
    assert normalize(text) == by_definition(text)
    same(text)


HOSTS = ["b-1.orders.abc123.c2.kafka.us-east-1.amazonaws.com", "10.0.1.25", "broker", "a.b", "1.2.3", "x-.yz"]


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.sampled_from(HOSTS)
        | st.sampled_from([":", "::", ":9098", ":123456", ":1", ".", " ", "-", "/", "topics: [a, b]", "Topic [x]"])
        | st.sampled_from(["arn:aws:kms:us-east-1:123456789012:key/1", "arn:aws:sts::123456789012:assumed-role/r"])
        | st.text(alphabet="abc.-:0123456789 [],", max_size=8),
        max_size=10,
    )
)
def test_property_ascii_extraction_equals_the_general_one(parts):
    text = "".join(parts)
    lowered = text.lower()
    flags = [any(w in lowered for w in TRIGGERS[k]) for k in ("arn", "port", "topics")]
    assert extract_ascii(text, lowered, *flags) == extract_params(text)
    same(text)


def test_extraction_with_every_guard_on_finds_the_same():
    text = "User: arn:aws:sts::123456789012:assumed-role/r/x on b-1.kafka.example.com:9096 and 10.0.0.1:9092"
    assert extract_ascii(text, text.lower(), 1, 1, 1) == extract_params(text)
    assert extract_params(text)["host"] == "b-1.kafka.example.com"


PATTERNS = [p for e in CAT for p in e.compiled]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(EXAMPLES),
    st.text(alphabet=st.characters(max_codepoint=127), max_size=40),
    st.text(alphabet=st.characters(max_codepoint=127), max_size=40),
)
def test_property_searching_from_the_literal_hint_finds_the_same_match(text, before, after):
    """Every pattern with a hint, on an ASCII text: the search from the hint gives the full search's match."""
    for variant in (before + text + after, before + text.upper() + text + after):
        lowered = variant.lower()
        for pattern in PATTERNS:
            hint = literal_hint(pattern.pattern)
            if hint is None:
                continue
            lit, lead = hint
            start = lowered.find(lit)
            full = pattern.search(variant)
            if start < 0:
                assert full is None
                continue
            hinted = pattern.search(variant, max(start - lead, 0))
            assert (hinted and (hinted.span(), hinted.groupdict())) == (full and (full.span(), full.groupdict()))


def test_host_characters_are_those_of_the_host_pattern():
    from esm_medic.catalogue import extract

    host = re.compile(r"[A-Za-z0-9.-]")
    assert sorted(extract._HOST_CHARS) == [c for c in ALL_CHARS[:128] if host.fullmatch(c)]
