"""Slack v0 request signing (slack-sdk's verifier over the exact bytes): valid, wrong secret, stale or future
timestamp, tampering, replay of old requests; identities made canonical; per-approver link tokens."""

from __future__ import annotations

import hashlib
import hmac
import time

from esm_medic.approval import (
    ApprovalSettings,
    canonical,
    make_token,
    parse_token,
    slack_identity,
    verify_slack_signature,
    verify_token,
)

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BODY = b"payload=%7B%22type%22%3A%22block_actions%22%7D"


def sign(secret: str, ts: int, body: bytes) -> dict[str, str]:
    base = b"v0:" + str(ts).encode() + b":" + body
    sig = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": sig}


def test_valid_signature_passes() -> None:
    now = int(time.time())
    assert verify_slack_signature(SECRET, sign(SECRET, now, BODY), BODY, now=now) == (True, "")


def test_header_names_are_case_insensitive() -> None:
    now = 1_700_000_000
    headers = {k.lower(): v for k, v in sign(SECRET, now, BODY).items()}
    assert verify_slack_signature(SECRET, headers, BODY, now=now)[0]


def test_known_vector_from_slack_docs() -> None:
    # the example of https://api.slack.com/authentication/verifying-requests-from-slack
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&"
        b"channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&"
        b"response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
        b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    headers = {
        "X-Slack-Request-Timestamp": "1531420618",
        "X-Slack-Signature": "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
    }
    assert verify_slack_signature(SECRET, headers, body, now=1531420618 + 10) == (True, "")


def test_wrong_secret_fails() -> None:
    now = int(time.time())
    ok, why = verify_slack_signature(SECRET, sign("another-secret", now, BODY), BODY, now=now)
    assert not ok and why == "signature mismatch"


def test_tampered_body_fails() -> None:
    now = int(time.time())
    ok, _ = verify_slack_signature(SECRET, sign(SECRET, now, BODY), BODY + b"x", now=now)
    assert not ok


def test_stale_timestamp_fails_even_with_a_good_signature() -> None:
    now = int(time.time())
    old = now - 301
    ok, why = verify_slack_signature(SECRET, sign(SECRET, old, BODY), BODY, now=now)
    assert not ok and "stale" in why
    assert verify_slack_signature(SECRET, sign(SECRET, now - 299, BODY), BODY, now=now)[0]


def test_future_timestamp_fails() -> None:
    now = int(time.time())
    ok, why = verify_slack_signature(SECRET, sign(SECRET, now + 600, BODY), BODY, now=now)
    assert not ok and "stale" in why


def test_replay_of_a_captured_request_after_the_window_fails() -> None:
    t0 = 1_700_000_000
    captured = sign(SECRET, t0, BODY)
    assert verify_slack_signature(SECRET, captured, BODY, now=t0 + 1)[0]
    assert not verify_slack_signature(SECRET, captured, BODY, now=t0 + 301)[0]


def test_missing_or_malformed_headers_and_missing_secret_fail() -> None:
    now = int(time.time())
    assert not verify_slack_signature(SECRET, {}, BODY, now=now)[0]
    bad_ts = {"X-Slack-Request-Timestamp": "yesterday", "X-Slack-Signature": "v0=00"}
    assert verify_slack_signature(SECRET, bad_ts, BODY, now=now) == (False, "bad X-Slack-Request-Timestamp")
    assert not verify_slack_signature("", sign(SECRET, now, BODY), BODY, now=now)[0]


def test_slack_identity_is_the_signed_user_id_only() -> None:
    assert slack_identity({"id": "U111", "username": "alice@example.com"}) == "slack:U111"
    assert slack_identity({"username": "alice@example.com"}) == ""
    assert slack_identity({"id": "alice@example.com"}) == ""
    assert slack_identity({"id": "U1\u00e9"}) == "" and slack_identity("U111") == ""


def test_identities_are_canonical_people() -> None:
    s = ApprovalSettings.coerce(
        {
            "approvers": "alice@example.com, slack:U999",
            "identities": "Alice@Example.com=slack:U222|arn:aws:iam::1:user/a",
        }
    )
    for spelling in ("alice@example.com", "ALICE@example.com", " Alice@Example.COM ", "slack:U222", "SLACK:u222"):
        assert s.person(spelling) == "alice@example.com" and s.is_allowed(spelling)
    assert s.person("arn:aws:iam::1:user/A") == "alice@example.com"
    assert s.person("\uff41lice@example.com") == "alice@example.com"  # fullwidth a, NFKC
    assert s.is_allowed("slack:U999") and not s.is_allowed("slack:U333") and not s.is_allowed("  ")
    assert canonical(" a \t b ") == "a b" and canonical(None) == ""
    assert ApprovalSettings.coerce({"approvers": ""}).is_allowed("anyone")
    legacy = ApprovalSettings.from_env({"ESM_MEDIC_SLACK_USERS": "U111=alice@example.com"})
    assert legacy.person("slack:U111") == "alice@example.com"


def test_link_tokens_bind_id_person_plan_and_expiry() -> None:
    aid, other = "apr-abcdefghijklmnopqrstuvwx", "apr-bbcdefghijklmnopqrstuvwx"
    token = make_token("k1", aid, " Alice@Example.com ", "h1", 1_900_000_000)
    claim = verify_token("k1", aid, "h1", token)
    assert claim is not None and claim.person == "alice@example.com" and claim.expires == 1_900_000_000
    assert verify_token("k2", aid, "h1", token) is None  # foreign key
    assert verify_token("k1", other, "h1", token) is None  # another approval
    assert verify_token("k1", aid, "h2", token) is None  # another plan
    b64, exp, mac = token.split(".")
    assert verify_token("k1", aid, "h1", f"{b64}.{int(exp) + 1}.{mac}") is None  # extended expiry
    bob = make_token("k1", aid, "bob@example.com", "h1", 1_900_000_000).split(".")[0]
    assert verify_token("k1", aid, "h1", f"{bob}.{exp}.{mac}") is None  # another person
    assert verify_token("k1", aid, "h1", token[:-1]) is None  # truncated
    assert verify_token("", aid, "h1", token) is None
    assert verify_token("k1", "../etc/passwd", "h1", token) is None
    assert parse_token(None) is None and parse_token(token + "\u00e9") is None and parse_token("x" * 700) is None


def test_items_round_trip_through_the_type_serializer() -> None:
    from esm_medic.aws import from_attribute_values, to_attribute_values

    item = {"s": "x", "n": 3, "f": 1.5, "set": {"b", "a"}, "l": [1, "y"], "m": {"k": True}, "none": None}
    raw = to_attribute_values(item)
    assert raw["n"] == {"N": "3"} and raw["set"]["SS"] and raw["none"] == {"NULL": True}
    assert from_attribute_values(raw) == {**item, "set": ["a", "b"]}
