"""Slack v0 request signing: valid, wrong secret, stale or future timestamp, tampering, replay of old requests."""

from __future__ import annotations

import hashlib
import hmac
import time

from esm_medic.approval import (
    ApprovalSettings,
    link_signature,
    slack_approver,
    verify_link_signature,
    verify_slack_signature,
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


def test_slack_user_mapping_and_allow_list() -> None:
    s = ApprovalSettings(approvers=("alice@example.com", "slack:U999"), slack_users={"U111": "alice@example.com"})
    name, aliases = slack_approver(s, {"id": "U111", "username": "alice"})
    assert name == "alice@example.com" and s.is_allowed(name, *aliases)
    name, aliases = slack_approver(s, {"id": "U999"})
    assert name == "slack:U999" and s.is_allowed(name, *aliases)
    name, aliases = slack_approver(s, {"id": "U222", "username": "alice@example.com"})
    assert name == "slack:U222" and not s.is_allowed(name, *aliases)
    assert slack_approver(s, {}) == ("", ())
    assert ApprovalSettings().is_allowed("anyone")
    assert not ApprovalSettings().is_allowed("  ")


def test_link_signatures() -> None:
    aid = "apr-abcdefghijklmnopqrstuvwx"
    sig = link_signature("k1", aid)
    assert verify_link_signature("k1", aid, sig)
    assert not verify_link_signature("k2", aid, sig)
    assert not verify_link_signature("k1", "apr-bbcdefghijklmnopqrstuvwx", sig)
    assert not verify_link_signature("", aid, sig)
    assert not verify_link_signature("k1", "../etc/passwd", sig)
    assert not verify_link_signature("k1", aid, None)
