"""CloudTrail records are classified by every text field, wherever CloudTrail puts it (requestParameters,
responseElements, errorCode / errorMessage), in camelCase or PascalCase, bare or inside an EventBridge envelope,
and list-event-source-mappings pages by their items."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from esm_medic.catalogue import get_catalogue
from esm_medic.classify import classify

CAT = get_catalogue()
UUID = "14e0db71-5d35-4eb5-b481-8945cf9d10c2"
ERRORS = [(e.id, ex) for e in CAT if not e.healthy and not e.generic for ex in e.examples[:2]]


def _record(event: str, response: dict | None, request: dict | None = None, **top: str) -> dict:
    return {
        "eventVersion": "1.08",
        "eventSource": "lambda.amazonaws.com",
        "eventName": event,
        "awsRegion": "eu-west-1",
        "requestParameters": request or {"functionName": "orders", "uUID": UUID},
        "responseElements": response,
        **top,
    }


def test_update_esm_response_elements_in_camel_case():
    rec = _record(
        "UpdateEventSourceMapping20150331",
        {
            "uUID": UUID,
            "state": "Updating",
            "stateTransitionReason": "USER_INITIATED",
            "lastProcessingResult": "PROBLEM: Connection error. Please check your event source connection "
            "configuration.",
        },
    )
    for obj in (rec, {"detail-type": "AWS API Call via CloudTrail", "source": "aws.lambda", "detail": rec}):
        c = classify(obj)
        assert c.entry == "connection-broker-unreachable" and c.field == "LastProcessingResult"
        assert c.uuid == UUID
        c = classify(json.dumps(obj))
        assert c.entry == "connection-broker-unreachable"


def test_create_esm_state_transition_reason_and_error_fields():
    rec = _record("CreateEventSourceMapping20150331", {"UUID": UUID, "StateTransitionReason": "ESM_CONFIG_NOT_VALID"})
    assert classify(rec).entry == "esm-config-not-valid"
    failed = _record(
        "CreateEventSourceMapping20150331",
        None,
        errorCode="AccessDeniedException",
        errorMessage="User is not authorized to perform: kafka:DescribeClusterV2 on resource: arn:aws:kafka:eu-west-1:"
        "123456789012:cluster/orders/abc-1",
    )
    c = classify({"detail": failed})
    assert c.entry == "msk-describe-permission-denied" and c.field == "cloudtrail"


def test_list_event_source_mappings_page_is_read_by_its_items():
    page = {
        "EventSourceMappings": [
            {"UUID": "a", "LastProcessingResult": "OK"},
            {"UUID": "b", "LastProcessingResult": "PROBLEM: SASL authentication failed."},
        ],
        "NextMarker": "next",
    }
    c = classify(page)
    assert c.entry == "sasl-authentication-failed" and c.uuid == "b"
    assert classify({"EventSourceMappings": []}).kind == "empty"


def test_earlier_state_never_wins_over_the_current_one():
    event = {
        "detail": {
            "uuid": "u",
            "old": {"LastProcessingResult": "PROBLEM: Lambda internal error."},
            "new": {"LastProcessingResult": "OK"},
        }
    }
    assert classify(event).healthy


CASINGS = {
    "camel": lambda k: k[0].lower() + k[1:],
    "pascal": lambda k: k[0].upper() + k[1:],
    "snake": lambda k: "".join("_" + ch.lower() if ch.isupper() else ch for ch in k).lstrip("_"),
}
FIELDS = ["LastProcessingResult", "StateTransitionReason"]
WRAPPERS = ["responseElements", "requestParameters", "serviceEventDetails", "additionalEventData"]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(ERRORS),
    st.sampled_from(FIELDS),
    st.sampled_from(sorted(CASINGS)),
    st.lists(st.sampled_from(WRAPPERS), min_size=0, max_size=3),
    st.booleans(),
    st.booleans(),
    st.dictionaries(st.sampled_from(["eventName", "awsRegion", "userAgent", "sourceIPAddress"]), st.text(max_size=20)),
)
def test_property_status_text_found_at_any_nesting_and_casing(case, field, casing, path, envelope, as_json, noise):
    entry_id, text = case
    inner: dict = {CASINGS[casing](field): text, CASINGS[casing]("UUID") if casing != "snake" else "uuid": UUID}
    for key in reversed(path):
        inner = {CASINGS[casing](key): inner}
    record = {**noise, **inner}
    obj: object = {"detail-type": "AWS API Call via CloudTrail", "detail": record} if envelope else record
    c = classify(json.dumps(obj) if as_json else obj)
    assert c.entry == entry_id
    assert c.field == field


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(ERRORS), st.sampled_from(sorted(CASINGS)), st.booleans())
def test_property_error_code_and_message_in_any_casing(case, casing, envelope):
    entry_id, text = case
    record = {CASINGS[casing]("ErrorCode"): "SomeError", CASINGS[casing]("ErrorMessage"): text}
    obj = {"detail": record} if envelope else record
    c = classify(obj)
    assert c.entry == entry_id and c.field == "cloudtrail"
