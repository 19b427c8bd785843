"""Runtime settings of esm-medic's remediation side, read from environment variables.

Every value has a documented default; infra sets the variables on each Lambda, the CLI inherits them from the shell.

=====================================  ============================  ==============================================
Variable                               Default                       Meaning
=====================================  ============================  ==============================================
ESM_MEDIC_DEFAULT_MODE                 ``approve``                   Account-wide mode when neither the ESM nor its
                                                                     function carries an ``esm-medic:mode`` tag:
                                                                     ``off`` | ``notify`` | ``approve`` | ``auto``.
ESM_MEDIC_SHADOW                       ``false``                     Shadow mode: plan and audit, never change.
ESM_MEDIC_KILL_SWITCH_PARAM            ``/esm-medic/kill-switch``    SSM parameter; value on/true/yes/1 stops every
                                                                     change (decisions become notify / ticket).
ESM_MEDIC_ACCOUNT_PARAM_PREFIX         ``/esm-medic/accounts``       Per member account overrides (central install):
                                                                     ``<prefix>/<id>/mode`` (a mode, below the
                                                                     tags, above the account-wide default) and
                                                                     ``<prefix>/<id>/kill-switch`` (on top of the
                                                                     global one), ``<prefix>/<id>/budget`` (the
                                                                     account budget for it).
ESM_MEDIC_BUDGET_PER_SG                ``2``                         Changes per security group per window.
ESM_MEDIC_BUDGET_PER_VPC               ``4``                         Changes per VPC per window.
ESM_MEDIC_BUDGET_PER_ACCOUNT           ``10``                        Changes per account per window.
ESM_MEDIC_BUDGET_WINDOW_SECONDS        ``3600``                      Length of a budget window (fixed buckets).
ESM_MEDIC_MAX_FAILED_VERIFICATIONS     ``3``                         After this many failed verifications of one
                                                                     ESM it falls back to ticket-only.
ESM_MEDIC_VERIFY_WINDOW_HOURS          ``24``                        How long failed verifications are remembered.
ESM_MEDIC_VERIFY_GRACE_SECONDS         ``300``                       An ESM still showing its old error this soon
                                                                     after the fix is "pending", not a failure
                                                                     (a real ESM needs a while to retry).
ESM_MEDIC_LOCK_TTL_SECONDS             ``900``                       Lifetime of a per-ESM lock (crash safety).
ESM_MEDIC_ENDPOINT_HOURLY_USD          ``0.01``                      Interface endpoint price per endpoint per AZ
                                                                     per hour (us-east-1 list price; data
                                                                     processing is extra and not estimated).
ESM_MEDIC_HOURS_PER_MONTH              ``730``                       Hours used for the monthly estimate.
ESM_MEDIC_RESTART_TIMEOUT_SECONDS      ``120``                       Max wait for an ESM to reach Disabled.
ESM_MEDIC_ENDPOINT_DELETE_TIMEOUT      ``300``                       Max wait for endpoints to go before their SG
                                                                     is deleted on rollback.
ESM_MEDIC_POLL_SECONDS                 ``5``                         Poll interval of those waits.
ESM_MEDIC_ACTOR                        ``esm-medic``                 Default actor written to the audit records.
=====================================  ============================  ==============================================

Table names come from :mod:`esm_medic.tables` (``ESM_MEDIC_AUDIT_TABLE`` / ``ESM_MEDIC_STATE_TABLE``).
No boto3 here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Protocol, TypeVar

from esm_medic.tables import AUDIT, STATE

MODES = ("off", "notify", "approve", "auto")
TRUE_WORDS = frozenset({"1", "true", "yes", "on", "y", "t"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", "n", "f", ""})


class ConfigError(ValueError):
    """An environment variable holds a value esm-medic cannot use."""


def _audit_table() -> str:
    return AUDIT.name


def _state_table() -> str:
    return STATE.name


@dataclass(frozen=True)
class Settings:
    default_mode: str = "approve"
    shadow: bool = False
    kill_switch_parameter: str = "/esm-medic/kill-switch"
    # account-wide default mode kept in SSM (changeable without a redeploy); "" = use default_mode only
    default_mode_parameter: str = ""
    # per member account: <prefix>/<account id>/mode and <prefix>/<account id>/kill-switch ("" = none)
    account_parameter_prefix: str = "/esm-medic/accounts"
    budget_per_sg: int = 2
    budget_per_vpc: int = 4
    budget_per_account: int = 10
    budget_window_seconds: int = 3600
    max_failed_verifications: int = 3
    verify_window_hours: int = 24
    verify_grace_seconds: int = 300
    lock_ttl_seconds: int = 900
    endpoint_hourly_usd: float = 0.01
    hours_per_month: int = 730
    restart_timeout_seconds: float = 120.0
    endpoint_delete_timeout_seconds: float = 300.0
    poll_seconds: float = 5.0
    actor: str = "esm-medic"
    audit_table: str = field(default_factory=_audit_table)
    state_table: str = field(default_factory=_state_table)

    def __post_init__(self) -> None:
        if self.default_mode not in MODES:
            raise ConfigError(f"default mode must be one of {', '.join(MODES)}, not {self.default_mode!r}")
        for name in (
            "budget_per_sg",
            "budget_per_vpc",
            "budget_per_account",
            "budget_window_seconds",
            "max_failed_verifications",
            "verify_window_hours",
            "verify_grace_seconds",
            "lock_ttl_seconds",
            "hours_per_month",
        ):
            if int(getattr(self, name)) < 0:
                raise ConfigError(f"{name} must be >= 0")
        if self.budget_window_seconds <= 0 or self.lock_ttl_seconds <= 0:
            raise ConfigError("budget window and lock TTL must be > 0")
        if self.endpoint_hourly_usd < 0 or self.poll_seconds < 0:
            raise ConfigError("prices and poll intervals must be >= 0")
        prefix = self.account_parameter_prefix
        if prefix and (not prefix.startswith("/") or prefix.endswith("/") or " " in prefix):
            raise ConfigError(f"account parameter prefix must look like /esm-medic/accounts, not {prefix!r}")

    def account_parameter(self, account: str, name: str) -> str:
        """The SSM parameter ``name`` (``mode`` / ``kill-switch``) of one member account ("" without a prefix)."""
        return f"{self.account_parameter_prefix}/{account}/{name}" if self.account_parameter_prefix else ""

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``env`` (default ``os.environ``). Raises ConfigError naming the bad variable."""
        e = os.environ if env is None else env
        kw: dict[str, Any] = {}
        for var, attr, kind in _ENV:
            raw = e.get(var)
            if raw is None:
                continue
            kw[attr] = _parse(var, raw, kind)
        kw.setdefault("audit_table", e.get(AUDIT.env) or AUDIT.default_name)
        kw.setdefault("state_table", e.get(STATE.env) or STATE.default_name)
        try:
            return cls(**kw)
        except ConfigError as exc:
            raise ConfigError(f"invalid esm-medic settings from the environment: {exc}") from None

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_ENV: tuple[tuple[str, str, str], ...] = (
    ("ESM_MEDIC_DEFAULT_MODE", "default_mode", "mode"),
    ("ESM_MEDIC_SHADOW", "shadow", "bool"),
    ("ESM_MEDIC_KILL_SWITCH_PARAM", "kill_switch_parameter", "str"),
    ("ESM_MEDIC_DEFAULT_MODE_PARAM", "default_mode_parameter", "str"),
    ("ESM_MEDIC_ACCOUNT_PARAM_PREFIX", "account_parameter_prefix", "str"),
    ("ESM_MEDIC_BUDGET_PER_SG", "budget_per_sg", "int"),
    ("ESM_MEDIC_BUDGET_PER_VPC", "budget_per_vpc", "int"),
    ("ESM_MEDIC_BUDGET_PER_ACCOUNT", "budget_per_account", "int"),
    ("ESM_MEDIC_BUDGET_WINDOW_SECONDS", "budget_window_seconds", "int"),
    ("ESM_MEDIC_MAX_FAILED_VERIFICATIONS", "max_failed_verifications", "int"),
    ("ESM_MEDIC_VERIFY_WINDOW_HOURS", "verify_window_hours", "int"),
    ("ESM_MEDIC_VERIFY_GRACE_SECONDS", "verify_grace_seconds", "int"),
    ("ESM_MEDIC_LOCK_TTL_SECONDS", "lock_ttl_seconds", "int"),
    ("ESM_MEDIC_ENDPOINT_HOURLY_USD", "endpoint_hourly_usd", "float"),
    ("ESM_MEDIC_HOURS_PER_MONTH", "hours_per_month", "int"),
    ("ESM_MEDIC_RESTART_TIMEOUT_SECONDS", "restart_timeout_seconds", "float"),
    ("ESM_MEDIC_ENDPOINT_DELETE_TIMEOUT", "endpoint_delete_timeout_seconds", "float"),
    ("ESM_MEDIC_POLL_SECONDS", "poll_seconds", "float"),
    ("ESM_MEDIC_ACTOR", "actor", "str"),
)


def _parse(var: str, raw: str, kind: str) -> Any:
    value = raw.strip()
    if kind == "str":
        if not value:
            raise ConfigError(f"{var} must not be empty")
        return value
    if kind == "mode":
        mode = value.lower()
        if mode not in MODES:
            raise ConfigError(f"{var}={raw!r}: expected one of {', '.join(MODES)}")
        return mode
    if kind == "bool":
        low = value.lower()
        if low in TRUE_WORDS:
            return True
        if low in FALSE_WORDS:
            return False
        raise ConfigError(f"{var}={raw!r}: expected true/false")
    try:
        return int(value) if kind == "int" else float(value)
    except ValueError:
        raise ConfigError(f"{var}={raw!r}: expected a number") from None


def is_true(value: object) -> bool:
    """Truthiness of a switch / tag value: on, true, yes, 1 (any case)."""
    return str(value).strip().lower() in TRUE_WORDS - {""}


class _FromEnv(Protocol):
    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Any: ...


S = TypeVar("S", bound=_FromEnv)


def coerce_settings[S: _FromEnv](
    cls: type[S], obj: Any, normalise: Callable[[dict[str, Any]], None] | None = None
) -> S:
    """A settings dataclass from ``obj``: None -> ``cls.from_env()``; an instance -> itself; a mapping or any object
    with matching attributes -> the environment's settings with those fields overlaid. ``normalise`` may fix up the
    overlaid values in place (e.g. turn a comma-separated string into a tuple)."""
    if obj is None:
        return cls.from_env()
    if isinstance(obj, cls):
        return obj
    base = cls.from_env()
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    if isinstance(obj, Mapping):
        values = {k: v for k, v in obj.items() if k in names}
    else:
        values = {n: getattr(obj, n) for n in names if getattr(obj, n, None) is not None}
    if normalise is not None:
        normalise(values)
    return cls(**{**{n: getattr(base, n) for n in names}, **values})
