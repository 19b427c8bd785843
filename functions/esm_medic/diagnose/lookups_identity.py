"""Reads about who the ESM acts as and what it decrypts: the execution role, its policies and simulations, the
secrets and their KMS keys (a mixin of :class:`~esm_medic.diagnose.lookups.Lookups`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from esm_medic.diagnose import secretshape
from esm_medic.diagnose.readcore import Fetched, ReadCore, RolePolicies, _strip


class IdentityReads(ReadCore):
    # ------------------------------------------------------------------ iam
    def role(self, role_name: str) -> Fetched[dict[str, Any]]:
        def fetch() -> Fetched[dict[str, Any]]:
            return self._read(
                "iam", "get_role", lambda: dict(self._call("iam", "get_role", RoleName=role_name).get("Role") or {})
            )

        return self._memo("role", (role_name,), fetch)

    def simulate(
        self, role_arn: str, actions: Sequence[str], resources: Sequence[str]
    ) -> Fetched[list[dict[str, Any]]]:
        """iam:SimulatePrincipalPolicy for every (action, resource) pair; memoised per (role, actions, resources)."""
        acts = tuple(sorted(set(actions)))
        res = tuple(sorted(set(resources)))

        def fetch() -> Fetched[list[dict[str, Any]]]:
            return self._read(
                "iam",
                "simulate_principal_policy",
                lambda: self._pages(
                    "iam",
                    "simulate_principal_policy",
                    "EvaluationResults",
                    token_in="Marker",
                    token_out="Marker",
                    PolicySourceArn=role_arn,
                    ActionNames=list(acts),
                    ResourceArns=list(res),
                    MaxItems=1000,
                ),
            )

        return self._memo("simulate", (role_arn, acts, res), fetch)

    def _policy_document(self, policy_arn: str) -> Fetched[Any]:
        def fetch() -> Fetched[Any]:
            def read() -> Any:
                pol = self._call("iam", "get_policy", PolicyArn=policy_arn).get("Policy") or {}
                ver = self._call(
                    "iam",
                    "get_policy_version",
                    PolicyArn=policy_arn,
                    VersionId=str(pol.get("DefaultVersionId") or "v1"),
                )
                return (ver.get("PolicyVersion") or {}).get("Document")

            try:
                return Fetched(read())
            except Exception as exc:
                return Fetched.failed(exc, "iam:GetPolicyVersion")

        return self._memo("policy", (policy_arn,), fetch)

    def role_policies(self, role_name: str) -> Fetched[RolePolicies]:
        """The role's inline and attached policy documents and its boundary (for the local evaluator)."""

        def fetch() -> Fetched[RolePolicies]:
            role = self.role(role_name)
            if not role.ok:
                return role.cast()
            docs: list[tuple[str, str, Any]] = []
            try:
                names = self._pages(
                    "iam",
                    "list_role_policies",
                    "PolicyNames",
                    token_in="Marker",
                    token_out="Marker",
                    RoleName=role_name,
                )
            except Exception as exc:
                return Fetched.failed(exc, "iam:ListRolePolicies")
            for name in names:
                try:
                    doc = self._call("iam", "get_role_policy", RoleName=role_name, PolicyName=name).get(
                        "PolicyDocument"
                    )
                except Exception as exc:
                    return Fetched.failed(exc, "iam:GetRolePolicy")
                docs.append((str(name), "role", doc))
            try:
                attached = self._pages(
                    "iam",
                    "list_attached_role_policies",
                    "AttachedPolicies",
                    token_in="Marker",
                    token_out="Marker",
                    RoleName=role_name,
                )
            except Exception as exc:
                return Fetched.failed(exc, "iam:ListAttachedRolePolicies")
            for att in attached:
                arn = str(att.get("PolicyArn") or "")
                got = self._policy_document(arn)
                if not got.ok:
                    return got.cast()
                ptype = "aws-managed" if ":iam::aws:policy/" in arn else "user-managed"
                docs.append((str(att.get("PolicyName") or arn), ptype, got.value))
            boundary: tuple[str, Any] | None = None
            b_arn = str(((role.value or {}).get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn") or "")
            if b_arn:
                got = self._policy_document(b_arn)
                if not got.ok:
                    return got.cast()
                boundary = (b_arn, got.value)
            return Fetched(RolePolicies(tuple(docs), boundary))

        return self._memo("role-policies", (role_name,), fetch)

    # ------------------------------------------------------------------ secrets / kms
    def secret_meta(self, secret_arn: str) -> Fetched[dict[str, Any]]:
        def fetch() -> Fetched[dict[str, Any]]:
            return self._read(
                "secretsmanager",
                "describe_secret",
                lambda: _strip(self._call("secretsmanager", "describe_secret", SecretId=secret_arn)),
            )

        return self._memo("secret", (secret_arn,), fetch)

    def secret_shape(self, secret_arn: str, sac_type: str) -> Fetched[secretshape.SecretShape]:
        """GetSecretValue, analysed at once; only the shape is kept (never the value)."""

        def fetch() -> Fetched[secretshape.SecretShape]:
            def read() -> secretshape.SecretShape:
                response = self._call("secretsmanager", "get_secret_value", SecretId=secret_arn)
                try:
                    return secretshape.analyse(response, sac_type)
                finally:
                    response.clear()

            return self._read("secretsmanager", "get_secret_value", read)

        return self._memo("secret-shape", (secret_arn, sac_type), fetch)

    def kms_key(self, key_id: str) -> Fetched[dict[str, Any]]:
        def fetch() -> Fetched[dict[str, Any]]:
            return self._read(
                "kms",
                "describe_key",
                lambda: dict(self._call("kms", "describe_key", KeyId=key_id).get("KeyMetadata") or {}),
            )

        return self._memo("kms", (key_id,), fetch)


__all__ = ["IdentityReads"]
