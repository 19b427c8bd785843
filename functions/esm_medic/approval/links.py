"""Per-approver approval links.

A link is ``<base>/approvals/<id>?decision=approve&sig=<token>`` where the token is
``<base64url(person)>.<expiry epoch>.<hex HMAC-SHA256>``; the HMAC (server key) covers the approval id, the
approver's canonical identity, the hash of the stored plan and the expiry. Each allowed approver gets a link of their
own, so a link names who may use it and the page decides as that person only: nothing typed into the form counts.
A token that is malformed, non-ASCII, signed with another key, for another approval, person, plan or expiry, or
truncated, is refused as "not found".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from esm_medic.approval.settings import ApprovalSettings, canonical
from esm_medic.approval.store import valid_approval_id
from esm_medic.notify.sinks import resolve_secret

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws

TOKEN_MAX = 600
_TOKEN = re.compile(r"^([A-Za-z0-9_-]{1,400})\.([0-9]{1,12})\.([0-9a-f]{64})$")


@dataclass(frozen=True)
class LinkClaim:
    person: str
    expires: int
    mac: str


def link_key(aws: Aws | None, settings: ApprovalSettings) -> str:
    """The server key that signs approval links ("" when none is configured)."""
    if settings.link_key_ref:
        return resolve_secret(aws, settings.link_key_ref)
    return settings.link_key


def plan_hash(plan_json: str) -> str:
    return hashlib.sha256(plan_json.encode("utf-8", "surrogatepass")).hexdigest()


def _mac(key: str, approval_id: str, person: str, phash: str, expires: int) -> str:
    msg = f"esm-medic-approval:v2\n{approval_id}\n{person}\n{phash}\n{expires}".encode()
    return hmac.new(key.encode(), msg, hashlib.sha256).hexdigest()


def make_token(key: str, approval_id: str, person: str, phash: str, expires: int) -> str:
    who = canonical(person)
    b64 = base64.urlsafe_b64encode(who.encode()).decode().rstrip("=")
    return f"{b64}.{int(expires)}.{_mac(key, approval_id, who, phash, int(expires))}"


def parse_token(token: Any) -> LinkClaim | None:
    """The claim a token makes (not yet verified); None for anything malformed, oversized or non-ASCII."""
    if not isinstance(token, str) or len(token) > TOKEN_MAX or not token.isascii():
        return None
    m = _TOKEN.match(token)
    if not m:
        return None
    try:
        padded = m.group(1) + "=" * (-len(m.group(1)) % 4)
        person = base64.urlsafe_b64decode(padded).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not person or canonical(person) != person:
        return None
    return LinkClaim(person, int(m.group(2)), m.group(3))


def verify_token(key: str, approval_id: str, phash: str, token: Any) -> LinkClaim | None:
    """The verified claim of a link token for this approval and plan, else None (expiry is checked by the
    caller, after the signature, so an expired link is told apart from a forged one)."""
    if not key or not phash or not valid_approval_id(approval_id):
        return None
    claim = parse_token(token)
    if claim is None:
        return None
    expected = _mac(key, approval_id, claim.person, phash, claim.expires)
    return claim if hmac.compare_digest(expected, claim.mac) else None


def approver_urls(base_url: str, key: str, approval_id: str, person: str, phash: str, expires: int) -> dict[str, str]:
    """One approver's {approve_url, reject_url} (confirmation pages); empty strings without a base URL or key."""
    if not base_url or not key:
        return {"approve_url": "", "reject_url": ""}
    token = make_token(key, approval_id, person, phash, expires)
    page = f"{base_url.rstrip('/')}/approvals/{quote(approval_id)}"
    return {
        "approve_url": f"{page}?decision=approve&sig={token}",
        "reject_url": f"{page}?decision=reject&sig={token}",
    }
