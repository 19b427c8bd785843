"""Every EventBridge pattern against every fixture, with moto's matcher (the one PutEvents uses)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from detect_fixtures import expectations, fixture_files, load
from moto.events.models import EventPattern

from esm_medic.detect.events import PATTERN_FILES, PATTERNS_DIR, load_pattern

EXPECT = expectations()


def _matcher(name: str) -> EventPattern:
    return EventPattern.load(json.dumps(load_pattern(name)))


def test_every_fixture_has_expectations_and_every_expectation_a_file() -> None:
    assert fixture_files() == set(EXPECT)


def test_pattern_files_are_the_four_rules() -> None:
    assert sorted(p.name for p in PATTERNS_DIR.glob("*.json")) == sorted(PATTERN_FILES.values())
    assert (PATTERNS_DIR / "README.md").is_file()
    with pytest.raises(KeyError):
        load_pattern("no-such-rule")


@pytest.mark.parametrize("fixture", sorted(EXPECT))
def test_pattern_matches_exactly_the_expected_rules(fixture: str) -> None:
    event: Any = load(fixture)
    matched = sorted(name for name in PATTERN_FILES if _matcher(name).matches_event(event))
    assert matched == sorted(EXPECT[fixture]["matches"]), fixture


@pytest.mark.parametrize("name", sorted(PATTERN_FILES))
def test_every_pattern_has_positive_and_negative_fixtures(name: str) -> None:
    positives = [f for f, e in EXPECT.items() if name in e["matches"] and not f.startswith("malformed/")]
    negatives = [f for f, e in EXPECT.items() if name not in e["matches"]]
    assert len(positives) >= 2, positives
    # a negative of the same source family: same source, not matched
    sources = {load(f)["source"] for f in positives}
    assert any(load(f)["source"] in sources for f in negatives), f"{name} has no same-source negative fixture"


def _paths(pattern: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    if isinstance(pattern, dict):
        for k, v in pattern.items():
            if k == "$or":
                for alt in v:
                    out += _paths(alt, prefix)
            else:
                out += _paths(v, (*prefix, k))
    else:
        out.append(prefix)
    return out


def _crosses_array_of_objects(event: Any, path: tuple[str, ...]) -> bool:
    node = event
    for key in path:
        if isinstance(node, list):
            return any(isinstance(x, dict) for x in node)
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return False


@pytest.mark.parametrize("name", sorted(PATTERN_FILES))
def test_patterns_never_reach_into_arrays_of_objects(name: str) -> None:
    """moto's matcher gets fields inside arrays of objects wrong (AWS gets them right): stay away from them, so what
    the tests prove is what AWS will do."""
    paths = _paths(load_pattern(name))
    for fixture in EXPECT:
        event = load(fixture)
        for path in paths:
            assert not _crosses_array_of_objects(event, path), (name, path, fixture)


_OPERATORS = {"prefix", "suffix", "anything-but", "exists", "numeric", "equals-ignore-case", "wildcard", "cidr"}


@pytest.mark.parametrize("name", sorted(PATTERN_FILES))
def test_pattern_syntax_is_what_aws_accepts(name: str) -> None:
    """moto's put_rule accepts invalid patterns that AWS rejects: check leaves are lists of literals or known
    operators, and $or holds a list of at least two objects."""

    def walk(node: Any) -> None:
        assert isinstance(node, dict) and node
        for k, v in node.items():
            if k == "$or":
                assert isinstance(v, list) and len(v) >= 2 and all(isinstance(x, dict) for x in v)
                for alt in v:
                    walk(alt)
            elif isinstance(v, dict):
                walk(v)
            else:
                assert isinstance(v, list) and v, (k, v)
                for item in v:
                    if isinstance(item, dict):
                        assert len(item) == 1 and set(item) <= _OPERATORS, item
                    else:
                        assert item is None or isinstance(item, str | int | float | bool)

    walk(load_pattern(name))
