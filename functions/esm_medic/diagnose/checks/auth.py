"""Checks of the ESM's identity and credentials: role-trust, role-permissions, secret-exists, secret-format, kms-key.

Secret values are never read into evidence: :mod:`esm_medic.diagnose.secretshape` reduces them to key names, PEM
labels, lengths and certificate dates the moment they arrive.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from esm_medic import iam_eval
from esm_medic.diagnose.checks import check, finding, skip, unknown
from esm_medic.diagnose.context import AWS_MANAGED_SECRET_KEY, Context, role_name
from esm_medic.diagnose.permissions import arn_parts, grant_statements
from esm_medic.esm import MSK
from esm_medic.models import CheckStatus, Finding
from esm_medic.steps import Step, step_index

_SCRAM_TYPES = ("SASL_SCRAM_512_AUTH", "SASL_SCRAM_256_AUTH")


# ---------------------------------------------------------------------------------------------- role
def trust_problem(document: Any) -> tuple[str, str]:
    """('', '') when the trust policy lets lambda.amazonaws.com assume the role unconditionally; else
    (status 'fail' | 'warn', why)."""
    if isinstance(document, str):
        try:
            document = json.loads(unquote(document))
        except ValueError:
            return "fail", "the trust policy is not valid JSON"
    if not isinstance(document, Mapping):
        return "fail", "the role has no trust policy"
    raw = document.get("Statement") or []
    statements = [raw] if isinstance(raw, Mapping) else list(raw)
    allowed = conditional = False
    for st in statements:
        if not isinstance(st, Mapping):
            continue
        principal = st.get("Principal") or {}
        services: list[str] = []
        if principal == "*":
            services = ["*"]
        elif isinstance(principal, Mapping):
            svc = principal.get("Service") or []
            services = [svc] if isinstance(svc, str) else [str(s) for s in svc]
        if not any(s in ("lambda.amazonaws.com", "*") for s in services):
            continue
        actions = st.get("Action") or []
        actions = [actions] if isinstance(actions, str) else list(actions)
        if not any(str(a).lower() in ("sts:assumerole", "sts:*", "*") for a in actions):
            continue
        cond = st.get("Condition")
        if st.get("Effect") == "Deny":
            if not cond:
                return "fail", "the trust policy denies lambda.amazonaws.com"
            conditional = True
            continue
        if cond:
            if "sourceidentity" in json.dumps(cond).lower():
                return "fail", "the trust policy requires a source identity, which Lambda does not set"
            conditional = True
            continue
        allowed = True
    if allowed:
        return ("warn", "a conditional Deny / Allow may also apply") if conditional else ("", "")
    if conditional:
        return "warn", "lambda.amazonaws.com may assume the role only under conditions"
    return "fail", "the trust policy does not allow lambda.amazonaws.com to call sts:AssumeRole"


@check("role-trust", Step.ROLE, "The execution role exists and trusts Lambda", per_esm=True)
def role_trust(ctx: Context) -> Finding:
    fn = ctx.function
    if not fn.ok:
        if fn.not_found:
            return finding(
                "role-trust",
                CheckStatus.FAIL,
                f"the function {ctx.esm.function_arn} does not exist",
                step=Step.INVOKE,
                evidence={"function": ctx.esm.function_arn},
                causes=["function-missing"],
                fix="ticket",
                fix_params={"reason": "the ESM's function was deleted"},
            )
        return unknown("role-trust", fn, "the function's configuration")
    role_arn = ctx.role_arn
    name = role_name(role_arn)
    role = ctx.lookups.role(name)
    evidence: dict[str, Any] = {"role_arn": role_arn}
    if role.not_found:
        return finding(
            "role-trust",
            CheckStatus.FAIL,
            f"the execution role {role_arn} does not exist",
            evidence=evidence,
            causes=["role-deleted"],
            fix="ticket",
            fix_params={"reason": "the execution role was deleted or recreated"},
        )
    if not role.ok or role.value is None:
        return unknown("role-trust", role, "the execution role", **evidence)
    status, why = trust_problem(role.value.get("AssumeRolePolicyDocument"))
    if status == "fail":
        return finding(
            "role-trust",
            CheckStatus.FAIL,
            why,
            evidence=evidence,
            causes=["trust-policy"],
            fix="ticket",
            fix_params={"reason": why},
        )
    if status == "warn":
        return finding("role-trust", CheckStatus.WARN, why, evidence=evidence)
    return finding("role-trust", CheckStatus.PASS, f"{name} exists and trusts lambda.amazonaws.com", evidence=evidence)


@check("role-permissions", Step.AUTHZ, "The execution role has the permissions the ESM needs", per_esm=True)
def role_permissions(ctx: Context) -> Finding:
    perms = ctx.permissions
    evidence: dict[str, Any] = {"role_arn": perms.role_arn, "evaluated_by": perms.source or None}
    if perms.notes:
        evidence["notes"] = perms.notes
    if perms.failure is not None:
        f = perms.failure
        if f.not_found and perms.role_arn:
            return finding(
                "role-permissions",
                CheckStatus.FAIL,
                f"the execution role {perms.role_arn} does not exist",
                step=Step.ROLE,
                evidence=evidence,
                causes=["role-deleted"],
                fix="ticket",
                fix_params={"reason": "the execution role was deleted"},
            )
        if f.permission.startswith("lambda:"):
            return unknown("role-permissions", f, "the function's configuration (its role)", **evidence)
        out = unknown("role-permissions", f, "what the role may do", **evidence)
        if f.error == "denied" or perms.notes:
            out.missing_permission = "iam:SimulatePrincipalPolicy"
        return out
    missing = perms.missing()
    undecided = perms.undecided()
    evidence["required"] = len(perms.verdicts)
    evidence["allowed"] = sum(1 for v in perms.verdicts if v.decision == iam_eval.ALLOWED)
    if missing:
        evidence["missing"] = [
            {
                "actions": list(v.requirement.actions),
                "resource": v.requirement.resource,
                "decision": v.decision,
                "purpose": v.requirement.purpose,
                **({"detail": v.detail} if v.detail else {}),
            }
            for v in missing
        ]
    if undecided:
        evidence["undecided"] = [
            {"action": v.requirement.action, "resource": v.requirement.resource, "detail": v.detail} for v in undecided
        ]
    if not missing:
        if undecided:
            return finding(
                "role-permissions",
                CheckStatus.WARN,
                f"{len(undecided)} permission(s) depend on policy conditions: "
                + ", ".join(sorted({v.requirement.action for v in undecided})),
                evidence=evidence,
            )
        return finding(
            "role-permissions",
            CheckStatus.PASS,
            f"the role may do all {len(perms.verdicts)} things the ESM needs",
            evidence=evidence,
        )
    causes: list[str] = []
    for v in missing:
        causes.extend(v.requirement.causes)
    explicit = [v for v in missing if v.decision == iam_eval.EXPLICIT_DENY]
    grantable = [v for v in missing if v.decision == iam_eval.IMPLICIT_DENY]
    if explicit:
        causes.insert(0, "scp-or-boundary")
    step = min((v.requirement.step for v in missing), key=step_index)
    actions = sorted({v.requirement.action for v in missing})
    summary = f"the role may not: {', '.join(actions)}"
    if explicit:
        summary += f" ({len(explicit)} explicitly denied: an SCP, boundary or Deny statement)"
    if grantable:
        fix = "grant-iam-permissions"
        params: dict[str, Any] = {
            "role_name": role_name(perms.role_arn),
            "statements": grant_statements(v.requirement for v in grantable),
        }
    else:
        fix, params = "ticket", {"reason": "explicit denies (SCP / permissions boundary / Deny) are left to people"}
    return finding(
        "role-permissions",
        CheckStatus.FAIL,
        summary,
        step=step,
        evidence=evidence,
        causes=causes,
        fix=fix,
        fix_params=params,
    )


# ---------------------------------------------------------------------------------------------- secrets
@check("secret-exists", Step.SECRET, "The secret exists, is not deleted, and fits the source", per_esm=True)
def secret_exists(ctx: Context) -> Finding:
    esm = ctx.esm
    if not esm.secrets:
        return skip("secret-exists", "the ESM uses no Secrets Manager secret")
    rows: list[dict[str, Any]] = []
    problems: list[tuple[str, str]] = []
    for info in ctx.secrets:
        row: dict[str, Any] = {"type": info.sac_type, "secret": info.uri}
        rows.append(row)
        meta = info.meta
        if meta.not_found:
            row["exists"] = False
            problems.append(("key-disabled", f"the secret {info.uri} does not exist"))
            continue
        if not meta.ok or meta.value is None:
            return unknown("secret-exists", meta, f"the secret {info.uri}", secrets=rows)
        m = meta.value
        row.update(
            {
                "exists": True,
                "name": m.get("Name"),
                "arn": m.get("ARN"),
                "kms_key": info.key_id or AWS_MANAGED_SECRET_KEY,
                "deleted": bool(m.get("DeletedDate")),
            }
        )
        if m.get("DeletedDate"):
            problems.append(("key-disabled", f"the secret {m.get('Name')} is scheduled for deletion"))
            continue
        region = arn_parts(str(m.get("ARN") or info.uri))[2]
        if region and ctx.region and region != ctx.region:
            problems.append(("authn", f"the secret is in {region}, the ESM in {ctx.region}"))
        if esm.source_kind == MSK and info.sac_type in _SCRAM_TYPES:
            name = str(m.get("Name") or "")
            if not name.startswith("AmazonMSK_"):
                problems.append(
                    ("scram-secret-not-associated", f"MSK SCRAM secret names must start with AmazonMSK_ ({name})")
                )
            if not info.key_id or info.key_id == AWS_MANAGED_SECRET_KEY:
                problems.append(
                    (
                        "scram-secret-not-associated",
                        "MSK SCRAM secrets must use a customer-managed KMS key, not aws/secretsmanager",
                    )
                )
            assoc = ctx.lookups.scram_secrets(esm.cluster_arn)
            if assoc.ok:
                arn = str(m.get("ARN") or info.uri)
                linked = any(a == arn or a.startswith(arn) or arn.startswith(a) for a in assoc.value or [])
                row["associated_with_cluster"] = linked
                if not linked:
                    problems.append(("scram-secret-not-associated", "the secret is not associated with the cluster"))
            else:
                row["associated_with_cluster"] = None
                row["association_check"] = assoc.describe()
    evidence = {"secrets": rows}
    if problems:
        return finding(
            "secret-exists",
            CheckStatus.FAIL,
            problems[0][1],
            evidence=evidence,
            causes=[c for c, _ in problems] + ["authn"],
            fix="ticket",
            fix_params={"reason": problems[0][1]},
        )
    return finding(
        "secret-exists", CheckStatus.PASS, f"{len(rows)} secret(s) exist and fit the source", evidence=evidence
    )


@check("secret-format", Step.SECRET, "The secret has the right shape (never printing values)", per_esm=True)
def secret_format(ctx: Context) -> Finding:
    esm = ctx.esm
    if not esm.secrets:
        return skip("secret-format", "the ESM uses no Secrets Manager secret")
    shapes: list[dict[str, Any]] = []
    problems: list[tuple[str, str]] = []
    for info in ctx.secrets:
        if info.meta.not_found:
            shapes.append({"type": info.sac_type, "secret": info.uri, "exists": False})
            continue
        got = ctx.lookups.secret_shape(info.uri, info.sac_type)
        if not got.ok or got.value is None:
            return unknown("secret-format", got, f"the value of {info.uri} (to check its shape)")
        shape = got.value
        shapes.append({"type": info.sac_type, "secret": info.uri, **shape.evidence})
        problems.extend(shape.problems)
        if esm.source_kind == MSK and info.sac_type in ("SASL_SCRAM_256_AUTH", "BASIC_AUTH"):
            problems.append(("wrong-mechanism", f"MSK supports only SASL/SCRAM-SHA-512, not {info.sac_type}"))
    evidence = {"secrets": shapes}
    if problems:
        return finding(
            "secret-format",
            CheckStatus.FAIL,
            "; ".join(dict.fromkeys(t for _, t in problems)),
            evidence=evidence,
            causes=[c for c, _ in problems] + ["authn"],
            fix="ticket",
            fix_params={"reason": problems[0][1]},
        )
    return finding("secret-format", CheckStatus.PASS, "the secret(s) have the expected shape", evidence=evidence)


@check("kms-key", Step.SECRET, "The secret's KMS key is enabled and the role may decrypt with it", per_esm=True)
def kms_key(ctx: Context) -> Finding:
    if not ctx.esm.secrets:
        return skip("kms-key", "the ESM uses no Secrets Manager secret")
    rows: list[dict[str, Any]] = []
    problems: list[tuple[str, str, dict[str, Any] | None]] = []
    pending_unknown = None
    for info in ctx.secrets:
        row: dict[str, Any] = {"secret": info.uri, "key": info.key_id or AWS_MANAGED_SECRET_KEY}
        rows.append(row)
        if not info.meta.ok:
            continue  # secret-exists reports it
        if info.key is None:
            row["managed_by"] = "AWS"
            continue
        key = info.key
        if key.not_found:
            problems.append(("key-disabled", f"the KMS key {info.key_id} does not exist", None))
            continue
        if not key.ok or key.value is None:
            return unknown("kms-key", key, f"the KMS key {info.key_id}", keys=rows)
        meta = key.value
        row.update({"arn": meta.get("Arn"), "state": meta.get("KeyState"), "managed_by": meta.get("KeyManager")})
        if meta.get("KeyState") not in ("Enabled", None):
            problems.append(("key-disabled", f"the KMS key {meta.get('Arn')} is {meta.get('KeyState')}", None))
            continue
        arn = info.customer_key_arn
        if not arn:
            continue
        perms = ctx.permissions
        if perms.failure is not None:
            pending_unknown = perms.failure
            continue
        verdicts = [
            v for v in perms.verdicts if v.requirement.action == "kms:Decrypt" and v.requirement.resource == arn
        ]
        row["role_may_decrypt"] = verdicts[0].decision if verdicts else None
        denied = [v for v in verdicts if v.decision in (iam_eval.IMPLICIT_DENY, iam_eval.EXPLICIT_DENY)]
        if denied:
            grant: dict[str, Any] = {
                "role_name": role_name(perms.role_arn),
                "statements": grant_statements(v.requirement for v in denied),
            }
            problems.append(("missing-kms-decrypt", f"the execution role may not kms:Decrypt with {arn}", grant))
    evidence = {"keys": rows}
    if problems:
        _, text, params = problems[0]
        return finding(
            "kms-key",
            CheckStatus.FAIL,
            text,
            evidence=evidence,
            causes=[c for c, _, _ in problems],
            fix="grant-iam-permissions" if params else "ticket",
            fix_params=params or {"reason": text},
        )
    if pending_unknown is not None:
        return unknown("kms-key", pending_unknown, "whether the role may kms:Decrypt", keys=rows)
    return finding("kms-key", CheckStatus.PASS, "the secret key(s) are usable", evidence=evidence)
