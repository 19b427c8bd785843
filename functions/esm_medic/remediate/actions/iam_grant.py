"""``grant-iam-permissions``: add only the missing, narrowly scoped actions to the function's execution role.

One inline policy named ``esm-medic-<incident id>`` holds exactly the requested statements, minus what an existing
inline policy of the role already allows (literal match, ``*`` / ``?`` wildcards honoured; attached managed policies
are not read: the diagnosis' policy simulation covers them). Rollback deletes that inline policy, or puts back the
document it replaced when the name already existed.

Refused by validation (never automatic, a human gets a ticket):

- actions outside the allow-list of what an ESM execution role needs (Kafka data plane, MSK describe, ENI actions,
  logs, secret read, KMS decrypt, on-failure destinations, schema registry); so nothing touching ``iam:``,
  ``sts:`` (trust / credentials) or Kafka ACLs is ever granted here;
- wildcards in action names;
- ``*`` resources (or ARNs wildcarding region / account) for ``kafka-cluster:``, ``secretsmanager:``, ``kms:``,
  ``sqs:``, ``sns:`` and ``s3:`` actions, or ARNs of another service than the action's.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
from typing import Any, ClassVar

from esm_medic.remediate.base import (
    Action,
    ActionFailed,
    ActionRecord,
    ApplyResult,
    InvalidParams,
    Plan,
    PlannedCall,
    RollbackResult,
    VerifyResult,
    params_schema,
)
from esm_medic.remediate.registry import register

#: what an ESM execution role may be granted by esm-medic, per IAM service prefix
ALLOWED_ACTIONS: dict[str, frozenset[str]] = {
    "kafka-cluster": frozenset(
        {"Connect", "DescribeGroup", "AlterGroup", "DescribeTopic", "ReadData", "DescribeClusterDynamicConfiguration"}
    ),
    "kafka": frozenset(
        {"DescribeCluster", "DescribeClusterV2", "GetBootstrapBrokers", "ListScramSecrets", "DescribeVpcConnection"}
    ),
    "ec2": frozenset(
        {
            "CreateNetworkInterface",
            "DescribeNetworkInterfaces",
            "DeleteNetworkInterface",
            "DescribeVpcs",
            "DescribeSubnets",
            "DescribeSecurityGroups",
        }
    ),
    "logs": frozenset({"CreateLogGroup", "CreateLogStream", "PutLogEvents"}),
    "secretsmanager": frozenset({"GetSecretValue"}),
    "kms": frozenset({"Decrypt"}),
    "sqs": frozenset({"SendMessage"}),
    "sns": frozenset({"Publish"}),
    "s3": frozenset({"PutObject"}),
    "glue": frozenset({"GetRegistry", "GetSchemaVersion"}),
}
#: prefixes whose resources must be specific ARNs (never "*")
SCOPED_PREFIXES = frozenset({"kafka-cluster", "secretsmanager", "kms", "sqs", "sns", "s3"})
#: ARN service part each scoped prefix must name
ARN_SERVICE = {"kafka-cluster": "kafka", "secretsmanager": "secretsmanager", "kms": "kms", "sqs": "sqs", "sns": "sns"}
MAX_POLICY_CHARS = 10_240  # IAM's limit on all inline policies of a role together (non-whitespace)


def _check_resource(prefix: str, action: str, resource: str) -> None:
    if prefix not in SCOPED_PREFIXES:
        return
    if resource.strip() in ("*", "") or not resource.startswith("arn:"):
        raise InvalidParams(f"{action} must be scoped to specific ARNs, not {resource!r}")
    parts = resource.split(":", 5)
    if len(parts) < 6:
        raise InvalidParams(f"{resource!r} is not an ARN")
    _, _partition, service, region, account, rest = parts
    want = ARN_SERVICE.get(prefix)
    if want and service != want:
        raise InvalidParams(f"{action} needs an arn:…:{want}:… resource, not {resource!r}")
    if prefix == "s3":
        if service != "s3" or rest.strip("*/") == "" or rest.startswith("*"):
            raise InvalidParams(f"{action} needs a specific bucket ARN, not {resource!r}")
        return
    if "*" in region or "*" in account or not account:
        raise InvalidParams(f"{resource!r} must name its region and account (no wildcards there)")
    if rest.strip("*/") == "" or rest.split("/", 1)[0] in ("*", ""):
        raise InvalidParams(f"{resource!r} must name a specific resource")


def policy_document(statements: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": f"EsmMedic{i}",
                "Effect": "Allow",
                "Action": sorted(st["actions"]),
                "Resource": sorted(st["resources"]),
            }
            for i, st in enumerate(statements)
        ],
    }


def _as_list(v: Any) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    return [str(x) for x in v]


def _allows(doc: Any, action: str, resource: str) -> bool:
    """Does an (inline) policy document literally allow action on resource (no Condition, no Deny handling)?"""
    if isinstance(doc, str):
        try:
            doc = json.loads(doc)
        except ValueError:
            return False
    if not isinstance(doc, dict):
        return False
    stmts = doc.get("Statement") or []
    if isinstance(stmts, dict):
        stmts = [stmts]
    for st in stmts:
        if not isinstance(st, dict) or st.get("Effect") != "Allow" or st.get("Condition") or "NotAction" in st:
            continue
        if "NotResource" in st:
            continue
        if not any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in _as_list(st.get("Action"))):
            continue
        if any(fnmatch.fnmatchcase(resource, r) for r in _as_list(st.get("Resource"))):
            return True
    return False


def json_diff(before: Any, after: Any, name: str) -> list[str]:
    a = json.dumps(before, indent=2, sort_keys=True).splitlines() if before is not None else []
    b = json.dumps(after, indent=2, sort_keys=True).splitlines() if after is not None else []
    return list(difflib.unified_diff(a, b, fromfile=f"{name} (before)", tofile=f"{name} (after)", lineterm=""))


@register("grant-iam-permissions")
class GrantIamPermissions(Action):
    title = "Inline policy with the missing execution-role permissions"
    schema: ClassVar[dict[str, Any]] = params_schema(
        ["role_name", "statements"],
        {
            "role_name": {"type": "string", "pattern": r"^[\w+=,.@-]{1,64}$"},
            "statements": {
                "type": "array",
                "minItems": 1,
                "maxItems": 10,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["actions", "resources"],
                    "properties": {
                        "actions": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": 20,
                            "uniqueItems": True,
                            "items": {"type": "string", "pattern": "^[a-z0-9-]+:[A-Za-z0-9]+$"},
                        },
                        "resources": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": 20,
                            "uniqueItems": True,
                            "items": {"type": "string", "minLength": 1, "maxLength": 2048},
                        },
                    },
                },
            },
        },
    )
    permissions = (
        "iam:GetRole",
        "iam:ListRolePolicies",
        "iam:GetRolePolicy",
        "iam:PutRolePolicy",
        "iam:DeleteRolePolicy",
    )
    default_safety = "approve"
    creates_resources: ClassVar[dict[str, str]] = {
        "iam-inline-policy": "named esm-medic-<incident id> (inline policies cannot be tagged)"
    }
    restart_polling = True
    step = "authz"

    @classmethod
    def check_rules(cls, params: dict[str, Any]) -> None:
        for st in params["statements"]:
            for action in st["actions"]:
                prefix, _, name = action.partition(":")
                allowed = ALLOWED_ACTIONS.get(prefix)
                if allowed is None or name not in allowed:
                    raise InvalidParams(
                        f"{action} is not an execution-role permission esm-medic grants; a human must decide (ticket)"
                    )
                for resource in st["resources"]:
                    _check_resource(prefix, action, resource)

    @property
    def role_name(self) -> str:
        return str(self.params["role_name"])

    @property
    def policy_name(self) -> str:
        return f"esm-medic-{self.ctx.incident_id}"

    def _get_policy(self, name: str) -> dict[str, Any] | None:
        try:
            doc = self.read("iam", "get_role_policy", RoleName=self.role_name, PolicyName=name)["PolicyDocument"]
        except ActionFailed as exc:
            if exc.aws_code in ("NoSuchEntity", "NoSuchEntityException"):
                return None
            raise
        if isinstance(doc, str):
            from urllib.parse import unquote

            doc = json.loads(unquote(doc))
        return dict(doc)

    # ------------------------------------------------------------------ plan
    def plan(self) -> Plan:
        plan = self.new_plan(f"Grant the missing permissions to role {self.role_name}")
        try:
            self.read("iam", "get_role", RoleName=self.role_name)
        except ActionFailed as exc:
            if exc.aws_code in ("NoSuchEntity", "NoSuchEntityException"):
                plan.refused = f"role {self.role_name} does not exist"
                return self.finish_plan(plan)
            raise
        names = self.read_all("iam", "list_role_policies", "PolicyNames", RoleName=self.role_name)
        current = self._get_policy(self.policy_name) if self.policy_name in names else None
        others = {n: self._get_policy(n) for n in names if n != self.policy_name}
        wanted: list[dict[str, Any]] = []
        for st in self.params["statements"]:
            actions = [
                a
                for a in st["actions"]
                if not all(any(_allows(d, a, r) for d in others.values()) for r in st["resources"])
            ]
            resources = [
                r for r in st["resources"] if not all(any(_allows(d, a, r) for d in others.values()) for a in actions)
            ]
            if actions and resources:
                wanted.append({"actions": actions, "resources": resources})
            for a in st["actions"]:
                if a not in actions:
                    plan.diff.append(f"  {a}: already allowed by another inline policy of {self.role_name}")
        plan.before = {"role_name": self.role_name, "policy_name": self.policy_name, "document": current}
        doc = policy_document(wanted) if wanted else None
        if doc is None:  # everything is already allowed by other inline policies
            plan.state = {"document": None}
            return self.finish_plan(plan)
        if current is not None and _same(current, doc):  # an earlier attempt of this incident put it there
            plan.adopted["inline_policy_names"] = [self.policy_name]
            plan.diff.append(f"  inline policy {self.policy_name} already has these statements")
            plan.state = {"document": current}
            return self.finish_plan(plan)
        size = len(json.dumps(doc, separators=(",", ":")))
        if size > MAX_POLICY_CHARS:
            plan.refused = f"the policy would be {size} characters; IAM allows {MAX_POLICY_CHARS} per role"
            return self.finish_plan(plan)
        plan.state = {"document": doc}
        plan.calls.append(
            PlannedCall(
                "iam",
                "put_role_policy",
                {"RoleName": self.role_name, "PolicyName": self.policy_name, "PolicyDocument": doc},
                note="IAM has no DryRun",
            )
        )
        plan.diff.extend(json_diff(current, doc, f"{self.role_name}/{self.policy_name}"))
        return self.finish_plan(plan)

    # ------------------------------------------------------------------ apply / verify / rollback
    def apply(self, plan: Plan) -> ApplyResult:
        doc = plan.state.get("document")
        for kind, ids in plan.adopted.items():
            for i in ids:
                self.add_created(kind, i)
        if not plan.mutating_calls or not doc:
            after = dict(plan.before, document=doc) if self.created else dict(plan.before)
            return self.applied(plan, changed=False, after=after)
        self.write(
            "iam",
            "put_role_policy",
            RoleName=self.role_name,
            PolicyName=self.policy_name,
            PolicyDocument=json.dumps(doc),
        )
        self.add_created("inline_policy_names", self.policy_name)
        after = {"role_name": self.role_name, "policy_name": self.policy_name, "document": doc}
        return self.applied(plan, changed=True, after=after)

    def verify(self, record: ActionRecord) -> VerifyResult:
        expected = (record.after or {}).get("document")
        name = (record.after or {}).get("policy_name") or self.policy_name
        current = self._get_policy(str(name))
        if expected is None:
            return VerifyResult(ok=True, details={"note": "nothing was written"})
        ok = current is not None and _same(current, expected)
        problems = [] if ok else [f"inline policy {name} on {self.role_name} is missing or changed"]
        return VerifyResult(ok=ok, details={"policy_name": name, "present": current is not None}, problems=problems)

    def rollback(self, record: ActionRecord) -> RollbackResult:
        names = list(record.created.get("inline_policy_names", []))
        before_doc = (record.before or {}).get("document")
        removed: dict[str, list[str]] = {}
        restored: dict[str, Any] = {}
        notes: list[str] = []
        for name in names:
            if before_doc is not None and name == (record.before or {}).get("policy_name"):
                current = self._get_policy(name)
                if current is not None and _same(current, before_doc):
                    notes.append(f"{name} already holds its previous document")
                    continue
                self.write(
                    "iam",
                    "put_role_policy",
                    RoleName=self.role_name,
                    PolicyName=name,
                    PolicyDocument=json.dumps(before_doc),
                )
                restored[name] = before_doc
                continue
            try:
                self.write("iam", "delete_role_policy", RoleName=self.role_name, PolicyName=name)
            except ActionFailed as exc:
                if exc.aws_code in ("NoSuchEntity", "NoSuchEntityException"):
                    notes.append(f"{name} is already gone")
                    continue
                raise
            removed.setdefault("inline_policy_names", []).append(name)
        return RollbackResult(changed=bool(removed or restored), removed=removed, restored=restored, notes=notes)


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
