"""Slack interactivity: request signatures (slack-sdk's ``SignatureVerifier`` over the exact raw body bytes), a replay
guard keyed on the exact signature, and the approver's identity taken from Slack's signed payload only."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from esm_medic.approval.settings import ApprovalSettings
from esm_medic.aws import is_conditional_check_failed, to_attribute_values
from esm_medic.notify.sinks import resolve_secret
from esm_medic.tables import STATE

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws

SLACK_WINDOW_SECONDS = 300
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_SIGNATURE = re.compile(r"^v0=[0-9a-f]{64}$")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,30}$")


def slack_signing_secret(aws: Aws | None, settings: ApprovalSettings) -> str:
    if settings.slack_signing_secret_ref:
        return resolve_secret(aws, settings.slack_signing_secret_ref)
    return settings.slack_signing_secret


def verify_slack_signature(
    secret: str, headers: Mapping[str, Any], body: bytes, *, now: float | None = None
) -> tuple[bool, str]:
    """Slack v0 request signing checked by slack-sdk over the exact bytes received, within Slack's 5-minute window.

    The headers must be exactly ``X-Slack-Request-Timestamp: <digits>`` and ``X-Slack-Signature: v0=<64 hex>``
    (no padding, nothing appended), and the body must be UTF-8 as Slack sends it. Returns (ok, reason-if-not).
    """
    if not secret or not secret.strip():
        return False, "no Slack signing secret configured"
    h = {str(k).lower(): v for k, v in (headers or {}).items()}
    ts, sig = h.get("x-slack-request-timestamp"), h.get("x-slack-signature")
    if not isinstance(ts, str) or not isinstance(sig, str) or not ts or not sig:
        return False, "missing X-Slack-Signature / X-Slack-Request-Timestamp"
    if not _TIMESTAMP.match(ts):
        return False, "bad X-Slack-Request-Timestamp"
    if not _SIGNATURE.match(sig):
        return False, "signature mismatch"
    current = time.time() if now is None else now
    if abs(current - int(ts)) > SLACK_WINDOW_SECONDS:
        return False, "stale request timestamp (outside the 5-minute window)"
    raw = bytes(body or b"")
    try:
        raw.decode("utf-8")  # slack-sdk decodes the body; bytes Slack never sends fail here, not with a traceback
    except UnicodeDecodeError:
        return False, "signature mismatch"
    # imported here: the slack_sdk package import costs ~130 ms, paid only by the Slack route
    from slack_sdk.signature import Clock, SignatureVerifier

    class _At(Clock):
        def now(self) -> float:
            return current

    verifier = SignatureVerifier(secret, clock=_At())
    if not verifier.is_valid(body=raw, timestamp=ts, signature=sig):
        return False, "signature mismatch"
    return True, ""


def claim_slack_request(aws: Aws, signature: str, *, now: float | None = None) -> bool:
    """Remember a verified signature (exactly as received) for twice the window; False when it was seen already.

    A different body or timestamp makes a different signature, which fails verification, so a replay can only ever
    present this exact signature. Fails open (True) when the table cannot be written: decisions are one-time anyway.
    """
    current = int(time.time() if now is None else now)
    digest = hashlib.sha256(signature.encode("utf-8", "surrogatepass")).hexdigest()
    try:
        aws.call(
            "dynamodb",
            "put_item",
            TableName=STATE.name,
            Item=to_attribute_values(
                {"pk": f"SLACKREQ#{digest}", "sk": "SEEN", "expires_at": current + 2 * SLACK_WINDOW_SECONDS}
            ),
            ConditionExpression="attribute_not_exists(pk)",
        )
    except Exception as exc:
        return not is_conditional_check_failed(exc)
    return True


def slack_identity(user: Any) -> str:
    """``slack:<user id>`` from the signed payload's ``user.id`` ("" when absent or malformed). Display names and
    usernames in the payload are never used: only the id is Slack's."""
    if not isinstance(user, Mapping):
        return ""
    uid = user.get("id")
    if not isinstance(uid, str) or not _USER_ID.match(uid):
        return ""
    return f"slack:{uid}"
