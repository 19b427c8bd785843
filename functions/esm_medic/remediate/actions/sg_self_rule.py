"""``add-sg-self-rule``: let the ESM's ENIs reach the brokers through their own security group.

The ESM's ENIs carry the cluster's security group(s); the brokers carry them too. A self-referencing rule on the
broker port of the auth mode in use (inbound, and outbound when the group's egress is restricted) is the smallest
change that opens that path. Never a CIDR: rules name the group itself (see :mod:`esm_medic.remediate.guard`).

A direction/port counts as already allowed when a rule of that direction covers the port (TCP range or all
protocols) and names the group itself or ``0.0.0.0/0``. Only the missing (direction, port) pairs are added, one
call each, each rule tagged and described with the incident id; rollback revokes exactly the recorded rule ids,
after checking each is still the self-referencing rule it was.
"""

from __future__ import annotations

from typing import Any, ClassVar

from esm_medic.aws import error_code, is_not_found
from esm_medic.esm import MSK_PORTS
from esm_medic.remediate import guard
from esm_medic.remediate.base import (
    INCIDENT_TAG,
    Action,
    ActionFailed,
    ActionRecord,
    ApplyResult,
    Plan,
    PlannedCall,
    RollbackResult,
    VerifyResult,
    failure_from,
    params_schema,
    tag_map,
    tags_for,
)
from esm_medic.remediate.registry import register
from esm_medic.remediate.scope import NetworkScope

DIRECTIONS = ("ingress", "egress")
KIND = {"ingress": "ingress_rule_ids", "egress": "egress_rule_ids"}
MSK_BROKER_PORTS = frozenset(p for pair in MSK_PORTS.values() for p in pair if p)
OPEN_WORLD = "0.0.0.0/0"


def rule_covers(rule: dict[str, Any], direction: str, port: int, group_id: str) -> bool:
    """Does this DescribeSecurityGroupRules item allow TCP ``port`` to/from the group itself (or everyone)?"""
    if bool(rule.get("IsEgress")) != (direction == "egress"):
        return False
    proto = str(rule.get("IpProtocol", ""))
    if proto == "-1":
        port_ok = True
    elif proto in ("tcp", "6"):
        lo, hi = rule.get("FromPort"), rule.get("ToPort")
        port_ok = isinstance(lo, int) and isinstance(hi, int) and lo <= port <= hi
    else:
        port_ok = False
    if not port_ok:
        return False
    ref = (rule.get("ReferencedGroupInfo") or {}).get("GroupId")
    return ref == group_id or rule.get("CidrIpv4") == OPEN_WORLD


def is_self_rule(rule: dict[str, Any], group_id: str) -> bool:
    ref = (rule.get("ReferencedGroupInfo") or {}).get("GroupId")
    return ref == group_id and not rule.get("CidrIpv4") and not rule.get("CidrIpv6") and not rule.get("PrefixListId")


def normalize_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """The fields that define a rule (for before/after snapshots and exact-restore comparisons)."""
    keys = ("SecurityGroupRuleId", "IsEgress", "IpProtocol", "FromPort", "ToPort", "CidrIpv4", "CidrIpv6")
    out = {k: rule[k] for k in keys if k in rule}
    ref = (rule.get("ReferencedGroupInfo") or {}).get("GroupId")
    if ref:
        out["ReferencedGroupId"] = ref
    if rule.get("PrefixListId"):
        out["PrefixListId"] = rule["PrefixListId"]
    if rule.get("Description"):
        out["Description"] = rule["Description"]
    return out


def _label(direction: str, port: int, group_id: str) -> str:
    way = "from" if direction == "ingress" else "to"
    return f"{direction} tcp/{port} {way} {group_id} (itself)"


@register("add-sg-self-rule")
class AddSgSelfRule(Action):
    title = "Self-referencing security-group rule on the broker port(s)"
    schema: ClassVar[dict[str, Any]] = params_schema(
        ["group_id", "ports"],
        {
            "group_id": {"type": "string", "pattern": "^sg-[0-9a-f]{8,17}$"},
            "ports": {
                "type": "array",
                "minItems": 1,
                "maxItems": 4,
                "uniqueItems": True,
                "items": {"type": "integer", "minimum": 1, "maximum": 65535},
            },
            "directions": {
                "type": "array",
                "minItems": 1,
                "uniqueItems": True,
                "items": {"enum": list(DIRECTIONS)},
                "default": list(DIRECTIONS),
            },
            "vpc_id": {"type": "string", "pattern": "^vpc-[0-9a-f]{8,17}$"},
        },
    )
    permissions = (
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeSecurityGroupRules",
        "ec2:AuthorizeSecurityGroupIngress",
        "ec2:AuthorizeSecurityGroupEgress",
        "ec2:RevokeSecurityGroupIngress",
        "ec2:RevokeSecurityGroupEgress",
        "ec2:CreateTags",
    )
    implied_permissions: ClassVar[dict[str, str]] = {
        "ec2:CreateTags": "tags on AuthorizeSecurityGroup* (TagSpecifications) are authorized as ec2:CreateTags"
    }
    default_safety = "auto"
    creates_resources: ClassVar[dict[str, str]] = {
        "security-group-rule": "tags esm-medic:managed=true and esm-medic:incident=<id>; description "
        "'esm-medic <id>'; ids recorded for rollback"
    }
    restart_polling = True
    step = "network"
    network_bound = True

    @property
    def group_id(self) -> str:
        return str(self.params["group_id"])

    @property
    def description(self) -> str:
        return f"esm-medic {self.ctx.incident_id}"

    def check_scope(self, scope: NetworkScope) -> list[str]:
        problems = []
        if scope.outside("sg", [self.group_id]):
            problems.append(
                f"{self.group_id} is not one of the ESM's security groups ({', '.join(scope.security_group_ids)})"
            )
        vpc = self.params.get("vpc_id")
        if vpc and scope.outside("vpc", [vpc]):
            problems.append(f"{vpc} is not the ESM's VPC ({scope.vpc_id})")
        bad = scope.bad_ports(self.params["ports"])
        if bad:
            origin = f"auth mode {scope.auth_mode}" if scope.source == "cluster" else "its bootstrap servers"
            problems.append(
                f"ports {bad} are not the ESM's broker ports ({', '.join(map(str, scope.ports)) or 'none'}, "
                f"from {origin})"
            )
        return problems

    # ------------------------------------------------------------------ reads
    def _group(self) -> dict[str, Any] | None:
        try:
            groups = self.read("ec2", "describe_security_groups", GroupIds=[self.group_id]).get("SecurityGroups")
        except ActionFailed as exc:
            if exc.aws_code.endswith("NotFound") or exc.aws_code == "InvalidGroupId.Malformed":
                return None
            raise
        return (groups or [None])[0]

    def _rules(self) -> list[dict[str, Any]]:
        return self.read_all(
            "ec2",
            "describe_security_group_rules",
            "SecurityGroupRules",
            Filters=[{"Name": "group-id", "Values": [self.group_id]}],
        )

    def _snapshot(self, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted((normalize_rule(r) for r in rules), key=lambda r: str(r.get("SecurityGroupRuleId")))

    def _permission(self, port: int) -> dict[str, Any]:
        return guard.build_permission(port, [self.group_id], self.description)

    # ------------------------------------------------------------------ plan
    def plan(self) -> Plan:
        plan = self.new_plan(f"Allow the broker port(s) {self.params['ports']} within {self.group_id}")
        if self.refuse_outside_scope(plan):
            return self.finish_plan(plan)
        group = self._group()
        if group is None:
            plan.refused = f"security group {self.group_id} does not exist"
            return self.finish_plan(plan)
        vpc_id = str(group.get("VpcId") or "")
        expected = self.ctx.scope.vpc_id if self.ctx.scope is not None else ""
        if vpc_id != expected:
            plan.refused = f"{self.group_id} is in {vpc_id or 'no VPC'}, not in the ESM's VPC {expected}"
            return self.finish_plan(plan)
        if self.params.get("vpc_id") and self.params["vpc_id"] != vpc_id:
            plan.refused = f"{self.group_id} is in {vpc_id}, not in {self.params['vpc_id']}"
            return self.finish_plan(plan)
        rules = self._rules()
        plan.before = {"group_id": self.group_id, "vpc_id": vpc_id, "rules": self._snapshot(rules)}
        plan.scopes = [("sg", self.group_id)] + ([("vpc", vpc_id)] if vpc_id else [])
        missing: list[list[Any]] = []
        for direction in self.params["directions"]:
            for port in self.params["ports"]:
                cover = next((r for r in rules if rule_covers(r, direction, port, self.group_id)), None)
                if cover is not None:
                    rid = str(cover.get("SecurityGroupRuleId"))
                    why = "itself" if is_self_rule(cover, self.group_id) else cover.get("CidrIpv4", "")
                    plan.diff.append(f"  {_label(direction, port, self.group_id)}: already allowed by {rid} ({why})")
                    if tag_map(cover.get("Tags")).get(INCIDENT_TAG) == self.ctx.incident_id:
                        plan.adopted.setdefault(KIND[direction], []).append(rid)
                    continue
                missing.append([direction, port])
                call = PlannedCall(
                    "ec2",
                    guard.AUTHORIZE_OPERATIONS[0] if direction == "ingress" else guard.AUTHORIZE_OPERATIONS[1],
                    {
                        "GroupId": self.group_id,
                        "IpPermissions": [self._permission(port)],
                        "TagSpecifications": [
                            {"ResourceType": "security-group-rule", "Tags": tags_for(self.ctx.incident_id)}
                        ],
                    },
                )
                self._probe(call, plan, direction)
                plan.calls.append(call)
                plan.diff.append(f'+ {_label(direction, port, self.group_id)}  "{self.description}"')
        plan.state = {"missing": missing, "vpc_id": vpc_id}
        return self.finish_plan(plan)

    def _probe(self, call: PlannedCall, plan: Plan, direction: str) -> None:
        """DryRun through the guard, so that even the probe is checked."""
        self.dry_run(
            call,
            plan,
            invoke=lambda: guard.authorize(
                self.aws,
                direction,
                self.group_id,
                call.params["IpPermissions"],
                tags=call.params["TagSpecifications"][0]["Tags"],
                dry_run=True,
                allowed_group_ids=[self.group_id],
            ),
        )

    # ------------------------------------------------------------------ apply
    def apply(self, plan: Plan) -> ApplyResult:
        for kind, ids in plan.adopted.items():
            for rid in ids:
                self.add_created(kind, rid)
        changed = False
        notes: list[str] = []
        for direction, port in plan.state.get("missing", []):
            try:
                resp = guard.authorize(
                    self.aws,
                    direction,
                    self.group_id,
                    [self._permission(int(port))],
                    tags=tags_for(self.ctx.incident_id),
                    allowed_group_ids=[self.group_id],
                )
            except Exception as exc:
                if getattr(exc, "response", None) is None:
                    raise
                if error_code(exc) == "InvalidPermission.Duplicate":
                    notes.append(f"{_label(direction, int(port), self.group_id)}: already present (duplicate)")
                    self._adopt_existing(direction, int(port))
                    continue
                raise failure_from(exc, "ec2", guard.AUTHORIZE_OPERATIONS[int(direction == "egress")]) from exc
            rules = resp.get("SecurityGroupRules") or []
            ids = [str(r["SecurityGroupRuleId"]) for r in rules if r.get("SecurityGroupRuleId")]
            if not ids:  # older responses carry no rule ids: find the rule we just made
                ids = self._find_ours(direction, int(port))
            for rid in ids:
                self.add_created(KIND[direction], rid)
            changed = True
        after = self._snapshot(self._rules())
        return self.applied(plan, changed=changed, after={"group_id": self.group_id, "rules": after}, notes=notes)

    def _find_ours(self, direction: str, port: int) -> list[str]:
        out = []
        for r in self._rules():
            if not (is_self_rule(r, self.group_id) and rule_covers(r, direction, port, self.group_id)):
                continue
            if tag_map(r.get("Tags")).get(INCIDENT_TAG) == self.ctx.incident_id:
                out.append(str(r["SecurityGroupRuleId"]))
        return out

    def _adopt_existing(self, direction: str, port: int) -> None:
        for rid in self._find_ours(direction, port):
            self.add_created(KIND[direction], rid)

    # ------------------------------------------------------------------ verify
    def verify(self, record: ActionRecord) -> VerifyResult:
        rules = self._rules()
        by_id = {str(r.get("SecurityGroupRuleId")): r for r in rules}
        missing, covered = [], []
        for direction in self.params["directions"]:
            for port in self.params["ports"]:
                label = _label(direction, port, self.group_id)
                if any(rule_covers(r, direction, port, self.group_id) for r in rules):
                    covered.append(label)
                else:
                    missing.append(label)
        created_ids = [rid for kind in KIND.values() for rid in record.created.get(kind, [])]
        gone = [rid for rid in created_ids if rid not in by_id]
        problems = [f"not allowed: {m}" for m in missing]
        if gone:
            problems.append(f"rules esm-medic created are gone: {', '.join(gone)}")
        return VerifyResult(
            ok=not missing,
            details={"covered": covered, "missing": missing, "created_present": [i for i in created_ids if i in by_id]},
            problems=problems,
        )

    # ------------------------------------------------------------------ rollback
    def rollback(self, record: ActionRecord) -> RollbackResult:
        rules = {str(r.get("SecurityGroupRuleId")): r for r in self._rules()}
        removed: dict[str, list[str]] = {}
        notes: list[str] = []
        for direction, kind in KIND.items():
            ids = []
            for rid in record.created.get(kind, []):
                rule = rules.get(rid)
                if rule is None:
                    notes.append(f"{rid} is already gone")
                    continue
                if not is_self_rule(rule, self.group_id) or bool(rule.get("IsEgress")) != (direction == "egress"):
                    notes.append(f"{rid} no longer is the self-referencing {direction} rule esm-medic made; left alone")
                    continue
                ids.append(rid)
            if not ids:
                continue
            op = "revoke_security_group_ingress" if direction == "ingress" else "revoke_security_group_egress"
            try:
                self.write("ec2", op, GroupId=self.group_id, SecurityGroupRuleIds=ids)
            except ActionFailed as exc:
                if exc.aws_code != "InvalidPermission.NotFound":
                    raise
                ids = self._revoke_one_by_one(op, ids, notes)
            removed[kind] = ids
        return RollbackResult(changed=any(removed.values()), removed=removed, notes=notes)

    def _revoke_one_by_one(self, op: str, ids: list[str], notes: list[str]) -> list[str]:
        done = []
        for rid in ids:
            try:
                self.aws.call("ec2", op, GroupId=self.group_id, SecurityGroupRuleIds=[rid])
                done.append(rid)
            except Exception as exc:
                if error_code(exc) == "InvalidPermission.NotFound" or is_not_found(exc):
                    notes.append(f"{rid} is already gone")
                    continue
                raise failure_from(exc, "ec2", op) from exc
        return done
