"""Who may change what: mode resolution and the decision for one proposed fix.

Modes (tag ``esm-medic:mode`` on the ESM, else on its function, else a member account's own SSM parameter
``<Settings.account_parameter_prefix>/<account>/mode`` when acting in a member account, else the account-wide
parameter, else ``Settings.default_mode``):

- ``off``: esm-medic does nothing for this ESM (not even a notification);
- ``notify``: tell people, change nothing;
- ``approve``: plan, then wait for a human's approval before applying;
- ``auto``: apply fixes whose safety class is ``auto`` at once; others still need approval.

Shadow mode (``Settings.shadow`` or tag ``esm-medic:shadow=true`` on the ESM / function) plans and writes a
``shadow`` audit record, never changes anything. The kill switch (SSM parameter ``Settings.kill_switch_parameter``,
value on / true / yes / 1) stops every change; when it cannot be read, it counts as on (fail safe).

:func:`decide` is a pure function over those inputs; :func:`evaluate` gathers them from AWS. Outcomes:
``auto`` (apply now), ``approve`` (apply after a human says yes), ``ticket`` (a human does it; runbook attached),
``notify`` (tell, do nothing), ``off`` (stay silent), ``shadow`` (record the plan only).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from esm_medic.config import MODES, Settings, is_true

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws

#: how long a read of the account's default-mode parameter is reused (Powertools Parameters cache)
DEFAULT_MODE_MAX_AGE_SECONDS = 60
MODE_TAG = "esm-medic:mode"
SHADOW_TAG = "esm-medic:shadow"
OUTCOMES = ("auto", "approve", "ticket", "notify", "off", "shadow")


@dataclass
class ModeResolution:
    mode: str
    source: str  # cli | esm-tag | function-tag | settings
    shadow: bool = False
    shadow_source: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Decision:
    outcome: str
    mode: str
    mode_source: str = "settings"
    safety: str = "approve"
    shadow: bool = False
    kill_switch: bool = False
    reasons: list[str] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)  # machine-readable reason codes, in the same order

    @property
    def may_change(self) -> bool:
        """True when a change may happen (now for auto, after approval for approve)."""
        return self.outcome in ("auto", "approve")

    def allows(self, approved: bool) -> bool:
        return self.outcome == "auto" or (self.outcome == "approve" and approved)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["may_change"] = self.may_change
        return d


def decide(
    *,
    action: str,
    mode: str,
    safety: str = "approve",
    mode_source: str = "settings",
    kill_switch: bool = False,
    kill_switch_detail: str = "",
    shadow: bool = False,
    budget_ok: bool = True,
    budget_detail: str = "",
    failed_verifications: int = 0,
    max_failed_verifications: int = 3,
    transient: bool = False,
    sightings: int = 0,
    refused: str | None = None,
    missing_permissions: Iterable[str] = (),
    requires_approval: bool = False,
    notes: Iterable[str] = (),
) -> Decision:
    """Combine mode, safety, kill switch, shadow, budget, verification history and the transient flag.

    ``sightings`` is the number of *earlier* sightings of this (transient) error; ``max_failed_verifications`` <= 0
    disables the ticket-only fallback."""
    d = Decision(outcome="", mode=mode, mode_source=mode_source, safety=safety, shadow=shadow, kill_switch=kill_switch)
    d.reasons.extend(notes)
    d.codes.extend("note" for _ in d.reasons)

    def out(outcome: str, code: str, reason: str) -> Decision:
        d.outcome = outcome
        d.codes.append(code)
        d.reasons.append(reason)
        return d

    if mode not in MODES:
        return out("notify", "invalid-mode", f"unknown mode {mode!r}: treated as notify")
    if action == "ticket" or safety == "manual":
        return out("ticket", "manual", "this fix is never automatic: a human gets a ticket with the runbook")
    if refused:
        return out("ticket", "refused", f"the plan was refused: {refused}")
    if mode == "off":
        return out("off", "mode-off", f"mode is off ({mode_source})")
    if kill_switch:
        detail = f" ({kill_switch_detail})" if kill_switch_detail else ""
        return out(
            "notify" if mode == "notify" else "ticket",
            "kill-switch",
            f"the global kill switch is on{detail}: no changes",
        )
    if shadow:
        return out("shadow", "shadow", "shadow mode: the plan is recorded, nothing is changed")
    if mode == "notify":
        return out("notify", "mode-notify", f"mode is notify ({mode_source})")
    if transient and sightings < 1:
        return out("notify", "transient-first-sighting", "transient error seen for the first time: not fixed yet")
    if max_failed_verifications > 0 and failed_verifications >= max_failed_verifications:
        return out(
            "ticket",
            "verify-fallback",
            f"{failed_verifications} failed verifications (limit {max_failed_verifications}): ticket-only",
        )
    missing = sorted(set(missing_permissions))
    if missing:
        return out("ticket", "missing-permission", f"the remediation role lacks {', '.join(missing)}")
    if not budget_ok:
        return out("ticket", "budget", budget_detail or "blast-radius budget exhausted")
    if mode == "approve":
        return out("approve", "mode-approve", f"mode is approve ({mode_source})")
    if safety != "auto":
        return out("approve", "safety", f"{action} is safety class {safety}: a human approves")
    if requires_approval:
        return out("approve", "plan-warning", "the plan carries a warning that needs a human")
    return out("auto", "auto", f"mode auto ({mode_source}) and {action} is safety class auto")


# ---------------------------------------------------------------------------------------------- inputs from AWS
def _tags(aws: Aws, arn: str) -> tuple[dict[str, str], str]:
    if not arn:
        return {}, ""
    from esm_medic.aws import error_code

    try:
        resp = aws.call("lambda", "list_tags", Resource=arn)
    except Exception as exc:
        return {}, f"cannot read tags of {arn} ({error_code(exc) or type(exc).__name__})"
    return {str(k): str(v) for k, v in (resp.get("Tags") or {}).items()}, ""


def resolve_mode(
    aws: Aws, esm: Mapping[str, Any] | None, settings: Settings, override: str | None = None
) -> ModeResolution:
    """Mode from (CLI override,) ESM tags, function tags, then settings; shadow from settings or either tag.
    An unknown tag value counts as ``notify`` (the most cautious mode that still tells someone)."""
    esm = esm or {}
    notes: list[str] = []
    esm_tags, note = _tags(aws, str(esm.get("EventSourceMappingArn") or ""))
    if note:
        notes.append(note)
    fn_tags, note = _tags(aws, str(esm.get("FunctionArn") or ""))
    if note:
        notes.append(note)
    shadow, shadow_source = bool(settings.shadow), "settings" if settings.shadow else ""
    for tags, source in ((esm_tags, "esm-tag"), (fn_tags, "function-tag")):
        if not shadow and is_true(tags.get(SHADOW_TAG, "")):
            shadow, shadow_source = True, source
    if override:
        if override not in MODES:
            return ModeResolution("notify", "cli", shadow, shadow_source, [*notes, f"unknown --mode {override!r}"])
        return ModeResolution(override, "cli", shadow, shadow_source, notes)
    for tags, source in ((esm_tags, "esm-tag"), (fn_tags, "function-tag")):
        raw = tags.get(MODE_TAG)
        if raw is None:
            continue
        value = raw.strip().lower()
        if value in MODES:
            return ModeResolution(value, source, shadow, shadow_source, notes)
        notes.append(f"{source} {MODE_TAG}={raw!r} is not one of {', '.join(MODES)}: treated as notify")
        return ModeResolution("notify", source, shadow, shadow_source, notes)
    member = member_account(aws)
    if member and settings.account_parameter_prefix:
        value, note = parameter_mode(aws, settings.account_parameter(member, "mode"))
        if note:
            notes.append(note)
        if value:
            return ModeResolution(value, "member-account-parameter", shadow, shadow_source, notes)
    if settings.default_mode_parameter:
        value, note = account_default_mode(aws, settings)
        if note:
            notes.append(note)
        if value:
            return ModeResolution(value, "account-parameter", shadow, shadow_source, notes)
    return ModeResolution(settings.default_mode, "settings", shadow, shadow_source, notes)


def member_account(aws: Aws) -> str | None:
    """The member account an adapter acts in (:class:`esm_medic.accounts.MemberAws`), None for the install's own."""
    value = getattr(aws, "member_account", None)
    return str(value) if value else None


def account_default_mode(aws: Aws, settings: Settings) -> tuple[str, str]:
    """(mode, note) from the account's SSM parameter. Missing = no opinion (settings apply); unreadable or invalid =
    ``notify``, the cautious mode, with the reason."""
    return parameter_mode(aws, settings.default_mode_parameter)


def parameter_mode(aws: Aws, name: str) -> tuple[str, str]:
    """(mode, note) from the SSM parameter ``name`` (same rules as :func:`account_default_mode`)."""
    from esm_medic.aws import error_code

    try:
        raw = aws.parameters().get(name, max_age=DEFAULT_MODE_MAX_AGE_SECONDS)
    except Exception as exc:
        code = error_code(exc)
        if code == "ParameterNotFound":
            return "", ""
        return "notify", f"cannot read {name} ({code or type(exc).__name__}): treated as notify"
    value = str(raw).strip().lower()
    if value in MODES:
        return value, ""
    return "notify", f"{name}={raw!r} is not one of {', '.join(MODES)}: treated as notify"


def kill_switch(aws: Aws, settings: Settings) -> tuple[bool, str]:
    """(engaged, detail). Missing parameter = off; unreadable = on (fail safe). Always read fresh (never from
    the parameters cache): flipping the switch must stop the very next change. In a member account the account's
    own switch (``<prefix>/<id>/kill-switch``) counts too: either one stops the change."""
    engaged, detail = _switch(aws, settings.kill_switch_parameter)
    member = member_account(aws)
    if engaged or not member or not settings.account_parameter_prefix:
        return engaged, detail
    return _switch(aws, settings.account_parameter(member, "kill-switch"))


def _switch(aws: Aws, name: str) -> tuple[bool, str]:
    from esm_medic.aws import error_code

    try:
        value = aws.parameters().get(name, force_fetch=True)
    except Exception as exc:
        code = error_code(exc)
        if code == "ParameterNotFound":
            return False, ""
        return True, f"cannot read {name} ({code or type(exc).__name__}): fail safe"
    engaged = is_true(value)
    return engaged, f"{name}={value}" if engaged else ""


def evaluate(
    aws: Aws,
    *,
    action: str,
    safety: str,
    esm: Mapping[str, Any] | None,
    settings: Settings,
    uuid: str = "",
    scopes: Iterable[tuple[str, str]] = (),
    transient: bool = False,
    sightings: int = 0,
    refused: str | None = None,
    missing_permissions: Iterable[str] = (),
    requires_approval: bool = False,
    mode_override: str | None = None,
) -> Decision:
    """Read mode tags, kill switch, budget usage and failed verifications, then :func:`decide`."""
    from esm_medic.remediate.budget import Budget, failed_verifications

    res = resolve_mode(aws, esm, settings, mode_override)
    engaged, ks_detail = kill_switch(aws, settings)
    budget_ok, budget_detail = True, ""
    failures = 0
    notes = list(res.notes)
    if action != "ticket" and not engaged and res.mode not in ("off", "notify"):
        try:
            budget_ok, budget_detail = Budget(aws, settings).check(scopes)
            failures = failed_verifications(aws, settings, uuid).get() if uuid else 0
        except Exception as exc:  # state table unreachable: no change without the guard rails
            from esm_medic.tables import describe_error

            why = describe_error(exc, settings.state_table)
            budget_ok, budget_detail = False, f"cannot read budgets / counters ({why}): no change"
    return decide(
        action=action,
        mode=res.mode,
        safety=safety,
        mode_source=res.source,
        kill_switch=engaged,
        kill_switch_detail=ks_detail,
        shadow=res.shadow,
        budget_ok=budget_ok,
        budget_detail=budget_detail,
        failed_verifications=failures,
        max_failed_verifications=int(settings.max_failed_verifications),
        transient=transient,
        sightings=sightings,
        refused=refused,
        missing_permissions=missing_permissions,
        requires_approval=requires_approval,
        notes=notes,
    )
