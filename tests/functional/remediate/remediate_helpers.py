"""Helpers for the remediation functional tests: fault injection on an adapter's clients, account snapshots,
full parameters for each scenario, and the moto DryRun gap for VPC endpoints."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from botocore.awsrequest import AWSResponse

from esm_medic.aws import Aws


class SimulatedCrash(BaseException):
    """Stands for the process dying mid-apply (Lambda timeout, OOM): not an Exception, so nothing catches it."""


# ---------------------------------------------------------------------------------------------- moto DryRun gap
def patch_vpce_dry_run() -> None:
    """moto 5.2.5 ignores DryRun on CreateVpcEndpoint / DeleteVpcEndpoints and makes the change; AWS answers
    DryRunOperation. The sandbox's patch_ec2 now fixes this too; this idempotent copy keeps these tests honest
    (a plan must never create an endpoint) whatever the sandbox version."""
    from moto.ec2.responses.vpcs import VPCs

    if getattr(VPCs, "_esm_medic_dry_run", False):
        return
    for name in ("create_vpc_endpoint", "delete_vpc_endpoints", "modify_vpc_endpoint"):
        original = getattr(VPCs, name)

        def wrapper(self: Any, _original: Any = original) -> Any:
            self.error_on_dryrun()
            return _original(self)

        setattr(VPCs, name, wrapper)
    VPCs._esm_medic_dry_run = True  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------- fault injection
class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body

    def read(self, *_: Any) -> bytes:
        return self.body


def _error_response(client: Any, request: Any, code: str, message: str, status: int) -> AWSResponse:
    protocol = client.meta.service_model.protocol
    headers: dict[str, str] = {}
    if protocol == "ec2":
        body = (
            f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
            "<RequestID>injected</RequestID></Response>"
        )
    elif protocol in ("query", "rest-xml"):
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
            "<RequestId>injected</RequestId></ErrorResponse>"
        )
    elif protocol == "rest-json":
        headers["x-amzn-ErrorType"] = code
        body = json.dumps({"message": message, "Type": "User"})
    else:  # json
        body = json.dumps({"__type": code, "message": message})
    return AWSResponse(request.url, status, headers, _Raw(body.encode()))


def _op(client: Any, operation: str) -> str:
    return client.meta.method_to_api_mapping.get(operation, operation)


def is_dry_run(request: Any) -> bool:
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode()
    return b"DryRun=true" in body


@contextmanager
def inject(
    aws: Aws,
    service: str,
    operation: str,
    code: str,
    *,
    times: int | None = None,
    message: str = "injected by the test",
    status: int = 400,
    when: Callable[[Any], bool] | None = None,
) -> Iterator[dict[str, int]]:
    """Answer ``operation`` with the error ``code`` (first ``times`` matching requests; None = all). Injected at
    ``before-send`` so botocore's retry logic sees it like a real answer, and the attempt never reaches moto.
    Yields ``{"hits": n}``."""
    client = aws.client(service)
    op = _op(client, operation)
    state = {"hits": 0, "left": -1 if times is None else times}

    def hook(request: Any = None, **_: Any) -> AWSResponse | None:
        if when is not None and not when(request):
            return None
        if state["left"] == 0:
            return None
        if state["left"] > 0:
            state["left"] -= 1
        state["hits"] += 1
        response = _error_response(client, request, code, message, status)
        # botocore emits before-send to every handler and uses the first response: moto's stubber would still
        # execute the request. Point this attempt at a host moto does not serve, so nothing happens behind it.
        request.url = "https://injected.esm-medic.invalid/"
        return response

    event = f"before-send.{client.meta.service_model.service_id.hyphenize()}.{op}"
    client.meta.events.register_first(event, hook)
    try:
        yield state
    finally:
        client.meta.events.unregister(event, hook)


@contextmanager
def on_call(
    aws: Aws, service: str, operation: str, fn: Callable[[dict[str, Any]], None], *, skip_dry_run: bool = True
) -> Iterator[dict[str, int]]:
    """Run ``fn(params)`` just before each ``operation`` call (after parameter validation); fn may raise
    (e.g. SimulatedCrash) or change the world first (a concurrent change)."""
    client = aws.client(service)
    op = _op(client, operation)
    state = {"calls": 0}

    def hook(params: Any = None, **_: Any) -> None:
        if skip_dry_run and isinstance(params, dict) and params.get("DryRun"):
            return
        state["calls"] += 1
        fn(params or {})

    event = f"before-parameter-build.{client.meta.service_model.service_id.hyphenize()}.{op}"
    client.meta.events.register_first(event, hook)
    try:
        yield state
    finally:
        client.meta.events.unregister(event, hook)


# ---------------------------------------------------------------------------------------------- snapshots
def _norm_rule(r: dict[str, Any]) -> tuple[Any, ...]:
    return (
        r.get("SecurityGroupRuleId"),
        r.get("GroupId"),
        bool(r.get("IsEgress")),
        r.get("IpProtocol"),
        r.get("FromPort"),
        r.get("ToPort"),
        r.get("CidrIpv4"),
        r.get("CidrIpv6"),
        (r.get("ReferencedGroupInfo") or {}).get("GroupId"),
        r.get("PrefixListId"),
    )


def snapshot(aws: Aws, vpc_id: str, role_name: str = "") -> dict[str, Any]:
    """Everything the four actions can touch, as comparable plain data."""
    vpc = [{"Name": "vpc-id", "Values": [vpc_id]}]
    groups = sorted(
        (g["GroupId"], g["GroupName"])
        for g in aws.paginate("ec2", "describe_security_groups", "SecurityGroups", Filters=vpc)
    )
    rules = sorted(
        _norm_rule(r)
        for r in aws.paginate(
            "ec2",
            "describe_security_group_rules",
            "SecurityGroupRules",
            Filters=[{"Name": "group-id", "Values": [g for g, _ in groups]}],
        )
    )
    endpoints = sorted(
        (
            e["VpcEndpointId"],
            e["ServiceName"],
            bool(e.get("PrivateDnsEnabled")),
            tuple(sorted(e.get("SubnetIds") or [])),
        )
        for e in aws.paginate("ec2", "describe_vpc_endpoints", "VpcEndpoints", Filters=vpc)
        if e.get("State") not in ("deleted", "deleting")
    )
    dns = {
        a: aws.call("ec2", "describe_vpc_attribute", VpcId=vpc_id, Attribute=a)[a[0].upper() + a[1:]]["Value"]
        for a in ("enableDnsSupport", "enableDnsHostnames")
    }
    out: dict[str, Any] = {"groups": groups, "rules": rules, "endpoints": endpoints, "dns": dns}
    if role_name:
        names = sorted(aws.paginate("iam", "list_role_policies", "PolicyNames", RoleName=role_name))
        out["inline"] = {
            n: aws.call("iam", "get_role_policy", RoleName=role_name, PolicyName=n)["PolicyDocument"] for n in names
        }
        out["attached"] = sorted(
            p["PolicyArn"]
            for p in aws.paginate("iam", "list_attached_role_policies", "AttachedPolicies", RoleName=role_name)
        )
    return out


def diff_snapshots(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    return {k: {"before": a.get(k), "after": b.get(k)} for k in set(a) | set(b) if a.get(k) != b.get(k)}


# ---------------------------------------------------------------------------------------------- scenario params
def full_params(result: Any, action: str) -> dict[str, Any]:
    """The contract parameters of ``action`` for a built scenario (what a diagnosis would emit)."""
    res = result.resources
    sg = str(res.get("cluster_security_group_id") or result.security_group_ids[0])
    if action == "add-sg-self-rule":
        return {"group_id": sg, "ports": list(result.expected["fix_params"]["ports"]), "vpc_id": result.vpc_id}
    if action == "create-vpc-endpoints":
        return {
            "vpc_id": result.vpc_id,
            "subnet_ids": list(result.subnet_ids),
            "services": list(result.expected["fix_params"]["services"]),
            "source_group_ids": [sg],
        }
    if action == "enable-vpc-dns":
        return {"vpc_id": result.vpc_id, "attributes": ["enableDnsSupport", "enableDnsHostnames"]}
    if action == "grant-iam-permissions":
        arns = res["kafka_arns"]
        actions = list(result.expected["fix_params"]["actions"])
        by_kind = {
            "cluster": [
                a
                for a in actions
                if a in ("kafka-cluster:Connect", "kafka-cluster:DescribeClusterDynamicConfiguration")
            ],
            "topics": [a for a in actions if a in ("kafka-cluster:DescribeTopic", "kafka-cluster:ReadData")],
            "groups": [a for a in actions if a in ("kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup")],
        }
        return {
            "role_name": result.role_name,
            "statements": [{"actions": acts, "resources": [arns[k]]} for k, acts in by_kind.items() if acts],
        }
    raise ValueError(action)
