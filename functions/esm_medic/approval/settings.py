"""Approval settings and identities: who may approve, and which spellings and channels are one person.

An identity is what a channel proved: an e-mail bound into a signed link, ``slack:<user id>`` from Slack's signed
payload, an IAM principal ARN from a function URL's ``AWS_IAM`` auth, or an OIDC claim. :meth:`ApprovalSettings.person`
makes it canonical (Unicode NFKC, whitespace trimmed and collapsed, case-folded) and maps aliases to one person, so
``alice@example.com``, `` Alice@Example.COM `` and ``slack:U222`` count once when the mapping says they are alice.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from esm_medic.config import coerce_settings

TIER_TAG = "esm-medic:tier"
PROD_TIERS = frozenset({"prod", "production"})
IDENTITY_MAX = 200


def canonical(identity: Any) -> str:
    """The comparable form of an identity: NFKC, trimmed, inner whitespace collapsed, case-folded ("" if none)."""
    if not isinstance(identity, str):
        return ""
    text = unicodedata.normalize("NFKC", identity)
    return " ".join(text.split()).casefold()[:IDENTITY_MAX]


def _truthy(value: str | None, default: bool = False) -> bool:
    if value is None or not value.strip():
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


def parse_identities(text: str | None) -> dict[str, str]:
    """``"alice@example.com=slack:U222|arn:aws:iam::1:user/alice, bob@example.com=slack:U333"`` ->
    ``{alias: person}`` (both canonical). The left side is the person; each right-side alias maps to it."""
    out: dict[str, str] = {}
    for pair in _csv(text):
        person, _, aliases = pair.partition("=")
        who = canonical(person)
        if not who:
            continue
        for alias in aliases.split("|"):
            a = canonical(alias)
            if a and a != who:
                out[a] = who
    return out


def parse_slack_users(text: str | None) -> dict[str, str]:
    """The older ``ESM_MEDIC_SLACK_USERS="U111=alice@example.com"`` form, as ``{"slack:u111": "alice@example.com"}``."""
    out: dict[str, str] = {}
    for pair in _csv(text):
        uid, _, name = pair.partition("=")
        if canonical(uid) and canonical(name):
            out[canonical(f"slack:{uid}")] = canonical(name)
    return out


@dataclass(frozen=True)
class ApprovalSettings:
    base_url: str = ""  # ESM_MEDIC_APPROVAL_BASE_URL: where approval_http is reachable
    approvers: tuple[str, ...] = ()  # ESM_MEDIC_APPROVERS; empty = anyone a channel authenticated
    identities: Mapping[str, str] = field(default_factory=dict)  # ESM_MEDIC_APPROVER_IDENTITIES (+ SLACK_USERS)
    link_key_ref: str = ""  # ESM_MEDIC_APPROVAL_KEY_NAME: SSM SecureString / secret holding the link HMAC key
    link_key: str = ""  # ESM_MEDIC_APPROVAL_KEY: the key itself (local use and tests only)
    link_topic_arn: str = ""  # ESM_MEDIC_APPROVAL_LINK_TOPIC_ARN: SNS topic, one message per approver
    slack_signing_secret_ref: str = ""  # ESM_MEDIC_SLACK_SIGNING_SECRET_NAME
    slack_signing_secret: str = ""  # ESM_MEDIC_SLACK_SIGNING_SECRET (local use and tests only)
    prod_two_approvers: bool = True  # ESM_MEDIC_PROD_TWO_APPROVERS
    exclude_requester: bool = True  # ESM_MEDIC_APPROVAL_EXCLUDE_REQUESTER: the requester cannot approve

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ApprovalSettings:
        e = os.environ if env is None else env
        identities = parse_slack_users(e.get("ESM_MEDIC_SLACK_USERS"))
        identities.update(parse_identities(e.get("ESM_MEDIC_APPROVER_IDENTITIES")))
        return cls(
            base_url=(e.get("ESM_MEDIC_APPROVAL_BASE_URL") or "").strip().rstrip("/"),
            approvers=_csv(e.get("ESM_MEDIC_APPROVERS")),
            identities=identities,
            link_key_ref=(e.get("ESM_MEDIC_APPROVAL_KEY_NAME") or "").strip(),
            link_key=e.get("ESM_MEDIC_APPROVAL_KEY") or "",
            link_topic_arn=(e.get("ESM_MEDIC_APPROVAL_LINK_TOPIC_ARN") or "").strip(),
            slack_signing_secret_ref=(e.get("ESM_MEDIC_SLACK_SIGNING_SECRET_NAME") or "").strip(),
            slack_signing_secret=e.get("ESM_MEDIC_SLACK_SIGNING_SECRET") or "",
            prod_two_approvers=_truthy(e.get("ESM_MEDIC_PROD_TWO_APPROVERS"), True),
            exclude_requester=_truthy(e.get("ESM_MEDIC_APPROVAL_EXCLUDE_REQUESTER"), True),
        )

    @classmethod
    def coerce(cls, obj: Any) -> ApprovalSettings:
        return coerce_settings(cls, obj, _normalise)

    def person(self, identity: Any) -> str:
        """The one canonical person behind an identity ("" when there is none)."""
        c = canonical(identity)
        return self.identities.get(c, c)

    def allowed_people(self) -> tuple[str, ...]:
        """The allow-list as distinct people, in configuration order."""
        seen: dict[str, None] = {}
        for a in self.approvers:
            p = self.person(a)
            if p:
                seen.setdefault(p, None)
        return tuple(seen)

    def is_allowed(self, identity: Any) -> bool:
        """True when the allow-list is empty (any proven identity) or names the identity's person."""
        who = self.person(identity)
        if not who:
            return False
        return not self.approvers or who in self.allowed_people()


def _normalise(values: dict[str, Any]) -> None:
    if isinstance(values.get("approvers"), str):
        values["approvers"] = _csv(values["approvers"])
    elif "approvers" in values:
        values["approvers"] = tuple(values["approvers"])
    if isinstance(values.get("identities"), str):
        values["identities"] = parse_identities(values["identities"])
    elif isinstance(values.get("identities"), Mapping):
        values["identities"] = {canonical(k): canonical(v) for k, v in values["identities"].items()}
