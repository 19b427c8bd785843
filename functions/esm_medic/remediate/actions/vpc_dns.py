"""``enable-vpc-dns``: turn on the VPC's DNS resolution / DNS hostnames (needed for broker names and private DNS).

``ModifyVpcAttribute`` takes one attribute per call; support is turned on before hostnames (AWS refuses hostnames
without support). The values found before are recorded; rollback sets exactly those back (hostnames first).
No DryRun exists for this API and nothing is created (no tags).
"""

from __future__ import annotations

from typing import Any, ClassVar

from esm_medic.remediate.base import (
    Action,
    ActionFailed,
    ActionRecord,
    ApplyResult,
    Plan,
    PlannedCall,
    RollbackResult,
    VerifyResult,
    params_schema,
)
from esm_medic.remediate.registry import register
from esm_medic.remediate.scope import NetworkScope

ATTRIBUTES = ("enableDnsSupport", "enableDnsHostnames")  # the order they must be turned on in
_KEY = {"enableDnsSupport": "EnableDnsSupport", "enableDnsHostnames": "EnableDnsHostnames"}


def dns_attributes(action: Action, vpc_id: str) -> dict[str, bool] | None:
    """The VPC's DNS attributes as ``{attribute: on}`` (read through ``action``), or None when the VPC is gone."""
    out: dict[str, bool] = {}
    for attr in ATTRIBUTES:
        try:
            resp = action.read("ec2", "describe_vpc_attribute", VpcId=vpc_id, Attribute=attr)
        except ActionFailed as exc:
            if exc.aws_code.endswith("NotFound"):
                return None
            raise
        out[attr] = bool((resp.get(_KEY[attr]) or {}).get("Value"))
    return out


@register("enable-vpc-dns")
class EnableVpcDns(Action):
    title = "Turn on the VPC's DNS support / DNS hostnames"
    schema: ClassVar[dict[str, Any]] = params_schema(
        ["vpc_id", "attributes"],
        {
            "vpc_id": {"type": "string", "pattern": "^vpc-[0-9a-f]{8,17}$"},
            "attributes": {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"enum": list(ATTRIBUTES)}},
        },
    )
    permissions = ("ec2:DescribeVpcAttribute", "ec2:ModifyVpcAttribute")
    default_safety = "approve"
    creates_resources: ClassVar[dict[str, str]] = {}
    restart_polling = True
    step = "dns"
    network_bound = True

    def check_scope(self, scope: NetworkScope) -> list[str]:
        if scope.outside("vpc", [self.vpc_id]):
            return [f"{self.vpc_id} is not the ESM's VPC ({scope.vpc_id})"]
        return []

    @property
    def vpc_id(self) -> str:
        return str(self.params["vpc_id"])

    def _values(self) -> dict[str, bool] | None:
        return dns_attributes(self, self.vpc_id)

    def _set(self, attr: str, value: bool) -> None:
        self.write(
            "ec2",
            "modify_vpc_attribute",
            what=f"set {attr}={str(value).lower()} on {self.vpc_id}",
            VpcId=self.vpc_id,
            **{_KEY[attr]: {"Value": value}},
        )

    def plan(self) -> Plan:
        plan = self.new_plan(f"Turn on {', '.join(self.params['attributes'])} on {self.vpc_id}")
        if self.refuse_outside_scope(plan):
            return self.finish_plan(plan)
        values = self._values()
        if values is None:
            plan.refused = f"VPC {self.vpc_id} does not exist"
            return self.finish_plan(plan)
        plan.before = {"vpc_id": self.vpc_id, "attributes": values}
        plan.scopes = [("vpc", self.vpc_id)]
        requested = set(self.params["attributes"])
        if "enableDnsHostnames" in requested and not values["enableDnsSupport"] and "enableDnsSupport" not in requested:
            plan.refused = "enableDnsHostnames needs enableDnsSupport, which is off and was not requested"
            return self.finish_plan(plan)
        todo = [a for a in ATTRIBUTES if a in requested and not values[a]]
        for attr in ATTRIBUTES:
            if attr in requested and values[attr]:
                plan.diff.append(f"  {attr}: already true")
        for attr in todo:
            plan.calls.append(
                PlannedCall(
                    "ec2",
                    "modify_vpc_attribute",
                    {"VpcId": self.vpc_id, _KEY[attr]: {"Value": True}},
                    note="ModifyVpcAttribute has no DryRun",
                )
            )
            plan.diff.append(f"- {attr}: false")
            plan.diff.append(f"+ {attr}: true")
        plan.state = {"todo": todo}
        return self.finish_plan(plan)

    def apply(self, plan: Plan) -> ApplyResult:
        changed_attrs = []
        for attr in plan.state.get("todo", []):
            self._set(attr, True)
            changed_attrs.append(attr)
            self.add_created("changed_attributes", attr)
        after = self._values() or {}
        return self.applied(plan, changed=bool(changed_attrs), after={"vpc_id": self.vpc_id, "attributes": after})

    def verify(self, record: ActionRecord) -> VerifyResult:
        values = self._values() or {}
        off = [a for a in self.params["attributes"] if not values.get(a)]
        return VerifyResult(ok=not off, details={"attributes": values}, problems=[f"{a} is off" for a in off])

    def rollback(self, record: ActionRecord) -> RollbackResult:
        before = ((record.before or {}).get("attributes")) or {}
        values = self._values()
        if values is None:
            return RollbackResult(changed=False, notes=[f"VPC {self.vpc_id} no longer exists"])
        changed = set(record.created.get("changed_attributes") or [])
        if not changed:  # an interrupted attempt recorded nothing: undo what was requested and was off before
            changed = {a for a in self.params["attributes"] if before.get(a) is False}
        restored: dict[str, Any] = {}
        notes = []
        # undo in reverse order: hostnames before support; only what this action turned on
        for attr in reversed(ATTRIBUTES):
            if attr not in before or attr not in changed:
                continue
            if values.get(attr) == before[attr]:
                notes.append(f"{attr} is already {str(before[attr]).lower()}")
                continue
            self._set(attr, bool(before[attr]))
            restored[attr] = bool(before[attr])
        return RollbackResult(changed=bool(restored), restored={"attributes": restored}, notes=notes)
