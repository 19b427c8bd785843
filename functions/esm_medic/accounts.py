"""Acting in member accounts from one central install, through the member stack's roles.

A member account holds ``esm-medic-diagnosis`` (read-only) and ``esm-medic-remediation`` (the remediation
registry's actions), trusting only the central account's ``role/EsmMedic*`` principals presenting the agreed
``sts:ExternalId`` (``infra/member_stack.py``). :func:`member_aws` assumes one of them through the central adapter
(session name ``esm-medic-<purpose>``) and returns a :class:`MemberAws`:

- the ESM's own resources (Lambda, EC2, MSK, Secrets Manager, KMS, IAM, STS, Route 53, logs ...) are reached with
  the member credentials, so every read and every change happens in the member account;
- esm-medic's own state (``HOME_SERVICES``: the DynamoDB tables, SSM parameters such as the mode and the kill
  switch, notifications, events, Step Functions) stays with the central adapter, so the audit log, budgets, locks
  and the kill switch are one set for every account.

Credentials renew themselves shortly before they expire (botocore's refreshable credentials, under its own lock);
adapters are cached per central adapter, role and external id (thread-safe), so one AssumeRole serves a member
for the credentials' lifetime. A refused AssumeRole becomes :class:`AccountAccessError` naming the account and role.

Settings (environment of the central functions and of the CLI):

=================================  ==========================================================================
ESM_MEDIC_MEMBER_ACCOUNTS          member account ids this install may act in (comma or space separated);
                                   empty: any account asked for explicitly
ESM_MEDIC_EXTERNAL_ID_PARAM        name of the SSM SecureString holding the external id (read with decryption
                                   through the central adapter)
ESM_MEDIC_EXTERNAL_ID              the external id itself (development; the parameter is preferred)
ESM_MEDIC_ORGANIZATION_ID          the organization (``o-...``) the install serves: any of its accounts may be
                                   acted in (the member roles and the AssumeRole grant pin aws:ResourceOrgID),
                                   and the sweeper discovers them (:mod:`esm_medic.discovery`)
ESM_MEDIC_MEMBER_OUS               the sweeper: discover only the accounts of these OUs (``ou-...``) and their
                                   child OUs instead of the whole organization
=================================  ==========================================================================

Trust is enforced by AWS (the member role's trust policy); esm-medic always presents the external id and refuses
to assume a member role without one.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from esm_medic.aws import Aws, error_code, error_message, is_access_denied, is_not_found, refreshing_session

if TYPE_CHECKING:  # pragma: no cover
    from botocore.client import BaseClient

DIAGNOSIS_ROLE = "esm-medic-diagnosis"
REMEDIATION_ROLE = "esm-medic-remediation"
ROLES = {"diagnosis": DIAGNOSIS_ROLE, "remediation": REMEDIATION_ROLE}
#: services that hold esm-medic's own state: always the central account
HOME_SERVICES = frozenset({"dynamodb", "ssm", "sns", "sqs", "events", "stepfunctions"})
SESSION_SECONDS = 3600  # the member roles' MaxSessionDuration

_ACCOUNT = re.compile(r"\d{12}")
_ORGANIZATION = re.compile(r"o-[a-z0-9]{10,32}")
_OU = re.compile(r"ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}")
_ROLE_ARN = re.compile(r"arn:(aws[\w-]*):iam::(\d{12}):role/[\w+=,.@/-]{1,512}")
_NOT_A_ROLE = ("NoSuchEntity", "InvalidIdentityToken", "InvalidParameterValue", "ValidationError")


class AccountConfigError(ValueError):
    """The member account, role or external id is malformed or not configured."""


class AccountAccessError(RuntimeError):
    """A member role could not be assumed (trust or external id mismatch, unknown role, no permission)."""

    def __init__(self, message: str, *, account: str, role_arn: str, code: str = "") -> None:
        super().__init__(message)
        self.account = account
        self.role_arn = role_arn
        self.code = code


@dataclass(frozen=True)
class MemberSettings:
    accounts: tuple[str, ...] = ()
    external_id: str | None = None
    external_id_param: str | None = None
    organization: str | None = None
    ous: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MemberSettings:
        e = os.environ if env is None else env
        accounts = tuple(a for a in re.split(r"[\s,]+", e.get("ESM_MEDIC_MEMBER_ACCOUNTS", "")) if a)
        bad = [a for a in accounts if not _ACCOUNT.fullmatch(a)]
        if bad:
            raise AccountConfigError(f"ESM_MEDIC_MEMBER_ACCOUNTS: not 12-digit account ids: {', '.join(bad)}")
        organization = (e.get("ESM_MEDIC_ORGANIZATION_ID") or "").strip() or None
        if organization and not _ORGANIZATION.fullmatch(organization):
            raise AccountConfigError(f"ESM_MEDIC_ORGANIZATION_ID: not an organization id (o-...): {organization}")
        ous = tuple(o for o in re.split(r"[\s,]+", e.get("ESM_MEDIC_MEMBER_OUS", "")) if o)
        bad = [o for o in ous if not _OU.fullmatch(o)]
        if bad:
            raise AccountConfigError(f"ESM_MEDIC_MEMBER_OUS: not organizational unit ids (ou-...): {', '.join(bad)}")
        if ous and not organization:
            raise AccountConfigError("ESM_MEDIC_MEMBER_OUS needs ESM_MEDIC_ORGANIZATION_ID (the OUs' organization)")
        return cls(
            accounts=accounts,
            organization=organization,
            ous=ous,
            external_id=e.get("ESM_MEDIC_EXTERNAL_ID") or None,
            external_id_param=e.get("ESM_MEDIC_EXTERNAL_ID_PARAM") or None,
        )


def role_arn_for(account_or_arn: str, purpose: str = "diagnosis", partition: str = "aws") -> tuple[str, str]:
    """(account id, role ARN) for an account id (the member stack's role for ``purpose``) or a role ARN."""
    value = account_or_arn.strip()
    m = _ROLE_ARN.fullmatch(value)
    if m:
        return m.group(2), value
    if _ACCOUNT.fullmatch(value):
        if purpose not in ROLES:
            raise AccountConfigError(f"unknown purpose {purpose!r}: expected {' or '.join(ROLES)}")
        return value, f"arn:{partition}:iam::{value}:role/{ROLES[purpose]}"
    raise AccountConfigError(f"{account_or_arn!r} is neither a 12-digit account id nor an IAM role ARN")


def account_of_arn(arn: str) -> str | None:
    parts = str(arn or "").split(":")
    return parts[4] if len(parts) > 5 and parts[0] == "arn" and _ACCOUNT.fullmatch(parts[4]) else None


def account_of_event(event: Mapping[str, Any]) -> str | None:
    """The account an ESM event is about: the ESM's function ARN in the detail (``ESM Status Change`` events are put
    on the central bus, whose envelope names the central account), else the envelope ``account`` (events forwarded
    from a member account's bus, CloudTrail)."""
    detail = event.get("detail")
    if isinstance(detail, Mapping):
        for key in ("function_arn", "FunctionArn", "esm_arn", "EventSourceMappingArn"):
            found = account_of_arn(str(detail.get(key) or ""))
            if found:
                return found
    value = str(event.get("account") or "")
    return value if _ACCOUNT.fullmatch(value) else None


def account_of_payload(payload: Any, depth: int = 0) -> str | None:
    """The account of the ESM a workflow payload is about: ``account`` at the top, in the classification (the
    classify task puts it there, so every later task receives it), the diagnosed function's ARN, or the triggering
    event (``state`` / ``input`` wrappers are looked into). None: no account named (the install's own)."""
    if not isinstance(payload, Mapping) or depth > 2:
        return None
    value = str(payload.get("account") or "")
    if _ACCOUNT.fullmatch(value):
        return value
    for key in ("classification", "diagnosis"):
        part = payload.get(key)
        if isinstance(part, Mapping):
            value = str(part.get("account") or "")
            if _ACCOUNT.fullmatch(value):
                return value
            found = account_of_arn(str(part.get("function_arn") or ""))
            if found:
                return found
    for key in ("state", "input"):
        found = account_of_payload(payload.get(key), depth + 1)
        if found:
            return found
    raw = payload.get("event")
    return account_of_event(raw) if isinstance(raw, Mapping) else None


def external_id(central: Aws, settings: MemberSettings) -> str:
    """The external id: the SecureString named by the settings (decrypted via the central adapter), else the value."""
    if settings.external_id_param:
        try:
            resp = central.call("ssm", "get_parameter", Name=settings.external_id_param, WithDecryption=True)
        except Exception as exc:
            raise AccountConfigError(
                f"cannot read the external id parameter {settings.external_id_param}: "
                f"{error_code(exc) or type(exc).__name__}: {error_message(exc)}"
            ) from exc
        value = str(resp["Parameter"]["Value"]).strip()
        if value:
            return value
        raise AccountConfigError(f"the external id parameter {settings.external_id_param} is empty")
    if settings.external_id:
        return settings.external_id
    raise AccountConfigError(
        "no external id: set ESM_MEDIC_EXTERNAL_ID_PARAM (an SSM SecureString) or pass --external-id; "
        "esm-medic never assumes a member role without one"
    )


class MemberAws(Aws):
    """An adapter in a member account: resource services with the assumed role, ``HOME_SERVICES`` central."""

    def __init__(self, *, central: Aws, session: Any, account: str, role_arn: str, purpose: str) -> None:
        super().__init__(
            region=central.region,
            endpoint_url=central.endpoint_url,
            max_attempts=central.max_attempts,
            session=session,
        )
        self.central = central
        self.member_account = account
        self.role_arn = role_arn
        self.purpose = purpose

    def client(self, service: str) -> BaseClient:
        if service in HOME_SERVICES:
            return self.central.client(service)
        return super().client(service)

    def account_id(self) -> str:
        return self.member_account


def _access_error(exc: BaseException, account: str, role_arn: str) -> AccountAccessError:
    code = error_code(exc)
    where = f"role {role_arn} in account {account}"
    if is_access_denied(exc):
        message = (
            f"esm-medic may not assume {where} (access denied): the role's trust policy must allow this install's "
            "role/EsmMedic* principals with the same sts:ExternalId (member stack parameters CentralAccount and "
            "ExternalId), and the caller needs sts:AssumeRole on it"
        )
    elif is_not_found(exc) or code in _NOT_A_ROLE:
        message = f"cannot assume {where}: no such role (is the EsmMedicMember stack deployed there?)"
    elif code:
        message = f"cannot assume {where}: {code}: {error_message(exc)}"
    else:
        message = f"cannot assume {where}: {type(exc).__name__}: {exc}"
    return AccountAccessError(message, account=account, role_arn=role_arn, code=code)


def _fetcher(central: Aws, account: str, role_arn: str, purpose: str, xid: Any) -> Any:
    def fetch() -> dict[str, str]:
        try:
            ext = xid() if callable(xid) else xid
            resp = central.call(
                "sts",
                "assume_role",
                RoleArn=role_arn,
                RoleSessionName=f"esm-medic-{purpose}",
                ExternalId=ext,
                DurationSeconds=SESSION_SECONDS,
            )
        except AccountConfigError:
            raise
        except Exception as exc:
            raise _access_error(exc, account, role_arn) from exc
        assumed = str((resp.get("AssumedRoleUser") or {}).get("Arn") or "")
        if assumed and assumed.split(":")[4:5] != [account]:
            raise AccountAccessError(
                f"assuming {role_arn} returned credentials of {assumed}, not of account {account}",
                account=account,
                role_arn=role_arn,
            )
        c = resp["Credentials"]
        expiry = c["Expiration"]
        return {
            "access_key": c["AccessKeyId"],
            "secret_key": c["SecretAccessKey"],
            "token": c["SessionToken"],
            "expiry_time": expiry.isoformat() if hasattr(expiry, "isoformat") else str(expiry),
        }

    return fetch


_LOCK = threading.Lock()
_CACHE_ATTR = "_esm_medic_members"  # per central adapter, so the cache lives and dies with it


def _cache(central: Aws) -> dict[tuple[str, str, str], MemberAws]:
    cache: dict[tuple[str, str, str], MemberAws] = central.__dict__.setdefault(_CACHE_ATTR, {})
    return cache


def member_aws(
    central: Aws,
    account_or_arn: str,
    *,
    purpose: str = "diagnosis",
    external_id_value: str | None = None,
    settings: MemberSettings | None = None,
    deferred: bool = False,
) -> MemberAws:
    """The adapter for a member account (an account id: the member stack's role for ``purpose``; or a role ARN).

    ``external_id_value`` overrides the settings. Not ``deferred``: AssumeRole happens now and a refusal raises
    :class:`AccountAccessError`; ``deferred``: on the first request (the error then comes from that request).
    Raises :class:`AccountConfigError` for a malformed account, an account outside ``ESM_MEDIC_MEMBER_ACCOUNTS``
    (unless an organization is configured: then AWS checks the account's organization) or no external id.
    """
    if purpose not in ROLES:
        raise AccountConfigError(f"unknown purpose {purpose!r}: expected {' or '.join(ROLES)}")
    cfg = settings if settings is not None else MemberSettings.from_env()
    account, role_arn = role_arn_for(account_or_arn, purpose)
    if cfg.accounts and account not in cfg.accounts and not cfg.organization:
        raise AccountConfigError(
            f"account {account} is not a member account of this install (ESM_MEDIC_MEMBER_ACCOUNTS)"
        )
    key = (role_arn, purpose, external_id_value or cfg.external_id_param or cfg.external_id or "")
    with _LOCK:
        cached = _cache(central).get(key)
    if cached is not None:
        return cached
    xid: Any
    if external_id_value:
        xid = external_id_value
    elif deferred:
        resolved: list[str] = []

        def lazy_external_id() -> str:
            if not resolved:
                resolved.append(external_id(central, cfg))
            return resolved[0]

        xid = lazy_external_id
    else:
        xid = external_id(central, cfg)
    fetch = _fetcher(central, account, role_arn, purpose, xid)
    session = refreshing_session(fetch, central.region, deferred=deferred)
    adapter = MemberAws(central=central, session=session, account=account, role_arn=role_arn, purpose=purpose)
    with _LOCK:
        return _cache(central).setdefault(key, adapter)


def clear_cache(central: Aws) -> None:
    """Forget the member adapters of ``central`` (the next :func:`member_aws` assumes the role again)."""
    with _LOCK:
        _cache(central).clear()


def home_account(central: Aws) -> str:
    """The central install's own account (one STS call per central adapter)."""
    with _LOCK:
        known = central.__dict__.get("_esm_medic_home")
    if known:
        return str(known)
    account = central.account_id()
    with _LOCK:
        central.__dict__["_esm_medic_home"] = account
    return account


def aws_for(central: Aws, account: str | None, purpose: str = "diagnosis", **kwargs: Any) -> Aws:
    """The adapter for an ESM in ``account``: ``central`` itself for its own account (or no account), else
    :func:`member_aws` (keyword arguments pass through). For the workflow's steps."""
    if not account or account == home_account(central):
        return central
    return member_aws(central, account, purpose=purpose, **kwargs)
