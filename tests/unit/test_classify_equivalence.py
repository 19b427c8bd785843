"""The single-pass matcher gives exactly the results of the earlier classifier (frozen in
bench/classify_reference.py) on every catalogue example and on a hypothesis corpus of texts."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import classify_reference
from esm_medic.catalogue import get_catalogue
from esm_medic.classify import Classifier

CAT = get_catalogue()
NEW = Classifier(CAT)
OLD = classify_reference.Classifier(CAT)
EXAMPLES = [ex for e in CAT for ex in e.examples]
# characters where Unicode case folding and str.lower() disagree, and look-alikes of pattern letters
TRICKY = "\u017f\u0131\ufb01\u00df\u212a\u0130 \t\n\u00a0\u2028\"'“”:[]()"


def same(text: str) -> None:
    assert NEW._classify_text_uncached(text).to_dict() == OLD._classify_text_uncached(text).to_dict()
    assert NEW.classify(text).to_dict() == OLD.classify(text).to_dict()


@pytest.mark.parametrize("text", EXAMPLES)
def test_examples_and_their_variants_classify_identically(text):
    for variant in (text, text.upper(), text.lower(), f"  PROBLEM: {text} (request 0a1b)", text.replace("s", "\u017f")):
        same(variant)


def _mutate(text: str, noise: str, how: int) -> str:
    if how == 0:
        return noise + text
    if how == 1:
        return text + noise
    if how == 2:
        cut = len(noise) % (len(text) + 1)
        return text[:cut] + noise + text[cut:]
    return noise


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(EXAMPLES),
    st.text(alphabet=st.characters() | st.sampled_from(TRICKY), max_size=60),
    st.integers(0, 3),
)
def test_property_noisy_texts_classify_identically(text, noise, how):
    same(_mutate(text, noise, how))


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_property_random_texts_classify_identically(text):
    same(text)


def test_memo_is_bounded_in_bytes():
    clf = Classifier(CAT)
    big = "PROBLEM: SASL authentication failed. "
    for i in range(300):
        clf.classify_text(big + str(i) + "x" * 4_000_000)
    assert clf.memo_bytes == 0  # huge texts are never held
    for i in range(40_000):
        clf.classify_text(f"PROBLEM: Lambda internal error. {i} " + "y" * 2000)
    from esm_medic.classify import MEMO_MAX_BYTES, MEMO_MAX_ENTRIES

    assert 0 < clf.memo_bytes <= MEMO_MAX_BYTES
    assert len(clf._memo) <= MEMO_MAX_ENTRIES
    assert clf.classify_text("PROBLEM: Lambda internal error. 39999 " + "y" * 2000).entry == "lambda-internal-error"
