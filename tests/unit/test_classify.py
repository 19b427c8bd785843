"""Classifier behaviour: every example goes to its own entry and to no other; healthy values are never errors;
structured inputs; parameters; and it never raises."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from esm_medic.catalogue import get_catalogue
from esm_medic.classify import Classifier, classify, extract_params, normalize

CAT = get_catalogue()
EXAMPLES = [(e.id, ex) for e in CAT for ex in e.examples]


@pytest.mark.parametrize("entry_id, text", EXAMPLES, ids=[f"{i}:{t[:30]}" for i, t in EXAMPLES])
def test_example_classifies_to_its_own_entry(entry_id, text):
    c = classify(text)
    assert c.entry == entry_id
    assert c.step == CAT[entry_id].step
    assert c.text == text


@pytest.mark.parametrize("entry_id, text", EXAMPLES, ids=[f"{i}:{t[:30]}" for i, t in EXAMPLES])
def test_example_matches_no_other_entry(entry_id, text):
    """Checked pattern by pattern, not through the combined regex, so overlaps cannot hide behind order."""
    norm = normalize(text)
    others = [e.id for e in CAT if e.id != entry_id and any(p.search(norm) for p in e.compiled)]
    assert others == []


@pytest.mark.parametrize(
    "text",
    ["OK", "No records processed", "USER_INITIATED", "User action", "User initiated", " ok ", "Enabled"],
)
def test_healthy_values_are_not_errors(text):
    c = classify(text)
    assert c.healthy and c.step == "none" and c.kind == "healthy"
    assert not c.auto_fixable


def test_normalisation_case_whitespace_prefix_and_trailing_detail():
    base = classify("PROBLEM: Cluster failed to authorize Lambda.")
    for variant in (
        "problem: cluster FAILED to   authorize\nlambda.",
        "  PROBLEM:PROBLEM: Cluster failed to authorize Lambda. Additional detail: request id 1234",
        '"PROBLEM: Cluster failed to authorize Lambda."',
        "Cluster failed to authorise Lambda",
    ):
        c = classify(variant)
        assert c.entry == base.entry == "cluster-authorization-failed", variant


def test_unknown_text_keeps_raw_and_never_raises():
    raw = "PROBLEM: The flux capacitor is misaligned on broker b-3."
    c = classify(raw)
    assert (c.entry, c.step, c.kind, c.confidence) == (None, "unknown", "unknown", 0.0)
    assert c.text == raw
    assert c.to_dict()["entry"] is None


def test_matched_span_points_into_normalised_text():
    c = classify("PROBLEM: SASL authentication failed.")
    assert c.span is not None
    start, end = c.span
    assert c.normalized[start:end].lower() == "sasl authentication failed"
    assert c.matched == c.normalized[start:end]


def test_esm_item_prefers_specific_error_over_code_and_reports_both():
    item = {
        "UUID": "6f2a0d3c-1111-4a5b-9c8d-0123456789ab",
        "State": "Disabled",
        "StateTransitionReason": "EVENT_SOURCE_AUTHN_ERROR",
        "LastProcessingResult": "PROBLEM: SASL authentication failed.",
    }
    c = classify(item)
    assert c.entry == "sasl-authentication-failed" and c.field == "LastProcessingResult"
    assert c.uuid == item["UUID"]
    assert c.also[0]["entry"] == "event-source-authn-error"


def test_code_alone_classifies_and_unknown_error_beats_healthy():
    assert classify({"StateTransitionReason": "EVENT_SOURCE_AUTHZ_ERROR", "LastProcessingResult": ""}).step == "authz"
    c = classify({"StateTransitionReason": "USER_INITIATED", "LastProcessingResult": "PROBLEM: brand new failure"})
    assert c.kind == "unknown"
    c = classify({"StateTransitionReason": "USER_INITIATED", "LastProcessingResult": "OK", "State": "Enabled"})
    assert c.healthy


def test_eventbridge_envelopes():
    status_change = {
        "source": "esm-medic",
        "detail-type": "ESM Status Change",
        "detail": {
            "uuid": "u-1",
            "old": {"LastProcessingResult": "OK"},
            "new": {
                "State": "Enabled",
                "LastProcessingResult": "PROBLEM: Connection error. Please check your "
                "event source connection configuration.",
            },
        },
    }
    c = classify(status_change)
    assert c.entry == "connection-broker-unreachable" and c.uuid == "u-1"
    cloudtrail = {
        "source": "aws.secretsmanager",
        "detail-type": "AWS API Call via CloudTrail",
        "detail": {
            "eventName": "GetSecretValue",
            "errorCode": "AccessDenied",
            "errorMessage": "User: arn:aws:sts::123456789012:assumed-role/fn-role/awslambda_1 is not authorized to "
            "perform: secretsmanager:GetSecretValue on resource: arn:aws:secretsmanager:us-east-1:123456789012:"
            "secret:AmazonMSK_x-AbCdEf",
        },
    }
    c = classify(cloudtrail)
    assert c.entry == "secret-access-denied" and c.step == "secret" and c.field == "cloudtrail"
    assert c.params["secret_arn"].startswith("arn:aws:secretsmanager:us-east-1:123456789012:secret:AmazonMSK_x")
    log = {
        "event_type": "ESM_PROCESSING_EVENT",
        "error": {
            "errorMessage": "Not authorized to access topics: [ord]",
            "errorCode": "org.apache.kafka.common.errors.TopicAuthorizationException",
        },
    }
    c = classify(log)
    assert c.entry == "topic-authorization-failed" and c.field == "log" and c.params["topic"] == "ord"


def test_json_text_and_bytes_inputs():
    doc = json.dumps({"LastProcessingResult": "PROBLEM: Lambda internal error."})
    assert classify(doc).entry == "lambda-internal-error"
    assert classify(doc.encode()).entry == "lambda-internal-error"
    assert classify("{not json but PROBLEM: Function call failed").entry == "function-call-failed"


@pytest.mark.parametrize(
    "obj",
    [
        None,
        42,
        3.5,
        [],
        {},
        {"detail": None},
        {"detail": {}},
        object(),
        b"\xff\xfe",
        {"LastProcessingResult": 17},
        [[[[[["deep"]]]]]],
        {"detail": {"new": "x"}},
    ],
)
def test_odd_inputs_never_raise(obj):
    c = classify(obj)
    assert c.step in ("unknown", "none") or c.entry


def test_parameter_extraction():
    p = extract_params("failed to reach b-1.orders.abc123.c2.kafka.us-east-1.amazonaws.com:9098 for topics: [a, b]")
    assert p["host"].startswith("b-1.orders") and p["port"] == "9098" and p["topic"] == "a"
    c = classify("Not authorized to access group: 6f2a0d3c-1111")
    assert c.params["group"] == "6f2a0d3c-1111"


def test_huge_input_is_bounded():
    c = classify("PROBLEM: SASL authentication failed. " + "x" * 1_000_000)
    assert c.entry == "sasl-authentication-failed"
    assert len(c.normalized) <= 4096


def test_classifier_agrees_with_naive_per_pattern_loop():
    """The compiled alternation and a plain loop over every pattern give the same entry for every example."""
    naive = [(e, [re.compile(p, re.I) for p in e.patterns]) for e in CAT]
    clf = Classifier(CAT)
    for _, text in EXAMPLES:
        norm = normalize(text)
        hits = [e.id for e, pats in naive if any(p.search(norm) for p in pats)]
        assert clf.classify_text(text).entry == hits[0]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=4),
    max_leaves=20,
)
known_texts = st.sampled_from([t for _, t in EXAMPLES])
error_texts = st.sampled_from([t for i, t in EXAMPLES if not CAT[i].healthy])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=200), json_values))
def test_property_random_input_never_raises(obj):
    c = classify(obj)
    assert c.kind in ("error", "healthy", "unknown", "empty")
    json.dumps(c.to_dict(), default=str)


@settings(max_examples=300, deadline=None)
@given(error_texts, st.sampled_from(["upper", "lower", "spaces", "prefix", "suffix", "json", "field"]))
def test_property_mutated_known_text_keeps_its_entry(text, how):
    """Error texts survive case, whitespace, prefix, trailing detail and wrapping. (Healthy values are anchored on
    purpose: "OK (something)" is not known to be healthy.)"""
    expected = classify(text).entry
    if how == "upper":
        mutated: object = text.upper()
    elif how == "lower":
        mutated = text.lower()
    elif how == "spaces":
        mutated = re.sub(" ", "  \t", text)
    elif how == "prefix":
        mutated = "PROBLEM: " + text
    elif how == "suffix":
        mutated = text + " (request 7f3e)"
    elif how == "json":
        mutated = json.dumps({"LastProcessingResult": text})
    else:
        mutated = {"detail": {"uuid": "x", "new": {"LastProcessingResult": text}}}
    assert classify(mutated).entry == expected


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=100), known_texts)
def test_property_text_inside_noise_never_raises(noise, text):
    c = classify(noise + text)
    assert c.kind in ("error", "healthy", "unknown", "empty")
