"""How the simulator reads the account: boto3 clients wired straight into moto's in-process dispatcher.

No HTTP, the same backends in decorator mode and in ``sandbox serve`` mode, and the real API response shapes.
Reads are memoised per account-change generation (:mod:`esm_medic_sandbox.sim_state`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from esm_medic_sandbox import sim_state

#: SSM parameters under this prefix hold broker-side SCRAM / SASL-PLAIN passwords (name = prefix + username):
#: the sandbox's stand-in for the brokers' user database, readable by the simulator in any process.
SCRAM_SSM_PREFIX = "/esm-medic/sandbox/kafka-users/"

_READ_PREFIXES = (
    "Describe",
    "Get",
    "List",
    "Simulate",
    "Lookup",
    "Search",
    "BatchGet",
    "Head",
    "Test",
    "Validate",
    "Preview",
)
_WATCHED_SERVICES = frozenset(
    {"ec2", "iam", "kafka", "secretsmanager", "kms", "lambda", "awslambda", "sts", "route53", "ssm"}
)
_IGNORED_ACTIONS = frozenset(
    {
        # ESM changes are picked up through the ESM's own fingerprint, not as account changes
        "CreateEventSourceMapping",
        "UpdateEventSourceMapping",
        "DeleteEventSourceMapping",
        "Invoke",
        "InvokeAsync",
        "InvokeWithResponseStream",
        "Decrypt",
        "Encrypt",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "GenerateRandom",
        "AssumeRole",
        "GetCallerIdentity",
        "TagResource",
        "UntagResource",
    }
)


def _is_mutation(service: str, action: str) -> bool:
    if not action or service not in _WATCHED_SERVICES:
        return False
    base = action
    # lambda's rest-json operation names carry a version suffix (CreateEventSourceMapping20150331)
    m = re.match(r"^([A-Za-z]+?)(\d{8})?$", action)
    if m:
        base = m.group(1)
    if base in _IGNORED_ACTIONS:
        return False
    return not base.startswith(_READ_PREFIXES)


_SESSION: Any = None


class _Reader:
    """boto3 clients that talk to moto's in-process backends directly, plus a per-generation memo."""

    def __init__(self, account: str, region: str) -> None:
        self.account = account
        self.region = region
        self._clients: dict[str, Any] = {}
        self._memo: dict[tuple[Any, ...], Any] = {}
        self._memo_gen = -1

    def client(self, service: str) -> Any:
        client = self._clients.get(service)
        if client is not None:
            return client
        import boto3
        from botocore.config import Config
        from moto.core.botocore_stubber import BotocoreStubber

        global _SESSION
        if _SESSION is None:
            _SESSION = boto3.session.Session(
                aws_access_key_id="AKIAESMMEDICSIMULATOR", aws_secret_access_key="sandbox", region_name=self.region
            )
        client = _SESSION.client(
            service,
            region_name=self.region,
            config=Config(retries={"max_attempts": 1}, ignore_configured_endpoint_urls=True),
        )
        stubber = BotocoreStubber()
        stubber.enabled = True
        account = self.account

        def _send(request: Any, **kwargs: Any) -> Any:
            request.headers["x-moto-account-id"] = account
            return stubber("before-send", request)

        client.meta.events.register_first("before-send", _send)
        self._clients[service] = client
        return client

    def call(self, service: str, op: str, **kwargs: Any) -> dict[str, Any]:
        result: dict[str, Any] = getattr(self.client(service), op)(**kwargs)
        return result

    def memo(self, key: tuple[Any, ...], fn: Callable[[], Any]) -> Any:
        if self._memo_gen != sim_state.generation():
            self._memo.clear()
            self._memo_gen = sim_state.generation()
        if key in self._memo:
            return self._memo[key]
        value = fn()
        self._memo[key] = value
        return value

    # ------------------------------------------------------------------ lookups (None when missing)
    def function(self, function_arn: str) -> dict[str, Any] | None:
        def load() -> dict[str, Any] | None:
            try:
                return self.call("lambda", "get_function_configuration", FunctionName=function_arn)
            except Exception as exc:
                if _not_found(exc):
                    return None
                raise

        return self.memo(("function", function_arn), load)

    def role(self, role_name: str) -> dict[str, Any] | None:
        def load() -> dict[str, Any] | None:
            try:
                return self.call("iam", "get_role", RoleName=role_name)["Role"]
            except Exception as exc:
                if _not_found(exc):
                    return None
                raise

        return self.memo(("role", role_name), load)

    def cluster(self, cluster_arn: str) -> dict[str, Any] | None:
        def load() -> dict[str, Any] | None:
            try:
                return self.call("kafka", "describe_cluster_v2", ClusterArn=cluster_arn)["ClusterInfo"]
            except Exception as exc:
                if _not_found(exc) or isinstance(exc, KeyError):
                    return None
                raise

        return self.memo(("cluster", cluster_arn), load)

    def scram_secrets(self, cluster_arn: str) -> list[str] | None:
        """Secret ARNs associated with an MSK cluster; None when the sandbox does not implement the call."""

        def load() -> list[str] | None:
            try:
                return list(self.call("kafka", "list_scram_secrets", ClusterArn=cluster_arn).get("SecretArnList") or [])
            except Exception as exc:
                if _unsupported(exc) or _not_found(exc):
                    return None
                raise

        return self.memo(("scram", cluster_arn), load)

    def subnets(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for sid in ids:
            sub = self.memo(("subnet", sid), partial(self._one, "describe_subnets", "Subnets", SubnetIds=[sid]))
            if sub is not None:
                out[sid] = sub
        return out

    def security_groups(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for gid in ids:
            sg = self.memo(
                ("sg", gid), partial(self._one, "describe_security_groups", "SecurityGroups", GroupIds=[gid])
            )
            if sg is not None:
                out[gid] = sg
        return out

    def _one(self, op: str, key: str, **kwargs: Any) -> dict[str, Any] | None:
        try:
            items = self.call("ec2", op, **kwargs).get(key) or []
        except Exception as exc:
            if _not_found(exc):
                return None
            raise
        return items[0] if items else None

    def default_security_groups(self, subnet_ids: Iterable[str]) -> tuple[str, ...]:
        """The ``default`` security group of each VPC the subnets belong to."""
        vpcs = {str(s.get("VpcId")) for s in self.subnets(subnet_ids).values()}
        out: list[str] = []
        for vpc_id in sorted(vpcs):
            group = self.memo(
                ("default-sg", vpc_id),
                partial(
                    self._one,
                    "describe_security_groups",
                    "SecurityGroups",
                    Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "group-name", "Values": ["default"]}],
                ),
            )
            if group is not None:
                out.append(str(group["GroupId"]))
        return tuple(out)

    def vpc(self, vpc_id: str) -> dict[str, Any] | None:
        return self.memo(("vpc", vpc_id), lambda: self._one("describe_vpcs", "Vpcs", VpcIds=[vpc_id]))

    def vpc_dns(self, vpc_id: str) -> tuple[bool, bool]:
        def load() -> tuple[bool, bool]:
            sup = self.call("ec2", "describe_vpc_attribute", VpcId=vpc_id, Attribute="enableDnsSupport")
            host = self.call("ec2", "describe_vpc_attribute", VpcId=vpc_id, Attribute="enableDnsHostnames")
            return (
                bool(sup.get("EnableDnsSupport", {}).get("Value")),
                bool(host.get("EnableDnsHostnames", {}).get("Value")),
            )

        return self.memo(("vpc-dns", vpc_id), load)

    def route_table(self, subnet_id: str, vpc_id: str) -> dict[str, Any] | None:
        def load() -> dict[str, Any] | None:
            tables = self.call(
                "ec2", "describe_route_tables", Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}]
            ).get("RouteTables")
            if tables:
                return tables[0]
            return self._one(
                "describe_route_tables",
                "RouteTables",
                Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "association.main", "Values": ["true"]}],
            )

        return self.memo(("rtb", subnet_id), load)

    def nat_gateway(self, nat_id: str) -> dict[str, Any] | None:
        return self.memo(
            ("nat", nat_id), lambda: self._one("describe_nat_gateways", "NatGateways", NatGatewayIds=[nat_id])
        )

    def endpoints(self, vpc_id: str) -> list[dict[str, Any]]:
        return self.memo(
            ("vpce", vpc_id),
            lambda: list(
                self.call("ec2", "describe_vpc_endpoints", Filters=[{"Name": "vpc-id", "Values": [vpc_id]}]).get(
                    "VpcEndpoints"
                )
                or []
            ),
        )

    def nacl(self, subnet_id: str) -> dict[str, Any] | None:
        return self.memo(
            ("nacl", subnet_id),
            lambda: self._one(
                "describe_network_acls",
                "NetworkAcls",
                Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}],
            ),
        )

    def secret(self, secret_arn: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """(DescribeSecret, GetSecretValue) as the sandbox admin; (None, None) when the secret does not exist."""

        def load() -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
            try:
                meta = self.call("secretsmanager", "describe_secret", SecretId=secret_arn)
            except Exception as exc:
                if _not_found(exc):
                    return None, None
                raise
            if meta.get("DeletedDate"):
                return meta, None
            try:
                value = self.call("secretsmanager", "get_secret_value", SecretId=secret_arn)
            except Exception as exc:
                if _not_found(exc) or _error_code(exc) == "InvalidRequestException":
                    return meta, None
                raise
            return meta, value

        return self.memo(("secret", secret_arn), load)

    def kms_key(self, key_id: str) -> dict[str, Any] | None:
        def load() -> dict[str, Any] | None:
            try:
                return self.call("kms", "describe_key", KeyId=key_id)["KeyMetadata"]
            except Exception as exc:
                if _not_found(exc):
                    return None
                raise

        return self.memo(("kms", key_id), load)

    def zone_records(self, vpc_id: str) -> frozenset[str]:
        """Names with an A / AAAA / CNAME record in the Route 53 zones that answer in ``vpc_id`` (the private
        zones associated with it, plus public zones); ``vpc_id`` "" = public zones only."""

        def load() -> frozenset[str]:
            zone_ids: list[str] = []
            try:
                if vpc_id:
                    for z in (
                        self.call("route53", "list_hosted_zones_by_vpc", VPCId=vpc_id, VPCRegion=self.region).get(
                            "HostedZoneSummaries"
                        )
                        or []
                    ):
                        zone_ids.append(str(z["HostedZoneId"]))
                for z in self.call("route53", "list_hosted_zones").get("HostedZones") or []:
                    if not (z.get("Config") or {}).get("PrivateZone"):
                        zone_ids.append(str(z["Id"]))
            except Exception as exc:
                if _unsupported(exc):
                    return frozenset()
                raise
            names: set[str] = set()
            for zid in dict.fromkeys(zone_ids):
                rrs = self.call("route53", "list_resource_record_sets", HostedZoneId=zid.rsplit("/", 1)[-1])
                for rr in rrs.get("ResourceRecordSets") or []:
                    if rr.get("Type") in ("A", "AAAA", "CNAME"):
                        names.add(str(rr.get("Name", "")).lower().rstrip(".").replace("\\052", "*"))
            return frozenset(names)

        return self.memo(("zones", vpc_id), load)

    def kafka_user_password(self, username: str) -> str | None:
        """The broker-side password of ``username`` kept by the sandbox in SSM (``SCRAM_SSM_PREFIX``)."""

        def load() -> str | None:
            try:
                resp = self.call("ssm", "get_parameter", Name=f"{SCRAM_SSM_PREFIX}{username}", WithDecryption=True)
            except Exception as exc:
                if _not_found(exc) or _error_code(exc) == "ParameterNotFound" or _unsupported(exc):
                    return None
                raise
            return str(resp["Parameter"]["Value"])

        return self.memo(("kafka-user", username), load)

    def allowed(self, role_arn: str, actions: tuple[str, ...], resource: str) -> dict[str, bool]:
        """action -> allowed? for ``role_arn`` on ``resource``.

        Decided by the sandbox's IAM evaluator (:mod:`esm_medic_sandbox.iam_sim`, the engine behind its
        ``SimulatePrincipalPolicy``) over the role's identity policies and permissions boundary, which are read
        through the IAM API once per account change. Evaluating locally instead of calling SimulatePrincipalPolicy
        per ESM keeps a 1,000-ESM fleet cheap; the answers are the same.
        """

        def load() -> dict[str, bool]:
            from esm_medic_sandbox import iam_sim

            policies, boundary = self.role_policies(role_arn.rsplit("/", 1)[-1])
            return {a: iam_sim.decide(policies, a, resource, boundary).decision == iam_sim.ALLOWED for a in actions}

        return self.memo(("allowed", role_arn, actions, resource), load)

    def role_policies(self, role_name: str) -> tuple[list[Any], list[Any] | None]:
        """(identity policies, permissions boundary or None) of a role, parsed for :mod:`iam_sim`."""

        def load() -> tuple[list[Any], list[Any] | None]:
            from esm_medic_sandbox import iam_sim

            role = self.role(role_name) or {}
            policies: list[Any] = []
            names = self.call("iam", "list_role_policies", RoleName=role_name).get("PolicyNames") or []
            for pname in names:
                doc = self.call("iam", "get_role_policy", RoleName=role_name, PolicyName=pname)["PolicyDocument"]
                policies.append(iam_sim.parse_policy(doc, pname, "role"))
            attached = self.call("iam", "list_attached_role_policies", RoleName=role_name).get("AttachedPolicies")
            for att in attached or []:
                arn = str(att["PolicyArn"])
                kind = "aws-managed" if ":iam::aws:policy/" in arn else "user-managed"
                policies.append(iam_sim.parse_policy(self.policy_document(arn), str(att["PolicyName"]), kind))
            boundary = None
            boundary_arn = (role.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
            if boundary_arn:
                boundary = [iam_sim.parse_policy(self.policy_document(boundary_arn), "boundary", "none")]
            return policies, boundary

        return self.memo(("role-policies", role_name), load)

    def policy_document(self, policy_arn: str) -> Any:
        pol = self.call("iam", "get_policy", PolicyArn=policy_arn)["Policy"]
        ver = self.call("iam", "get_policy_version", PolicyArn=policy_arn, VersionId=pol["DefaultVersionId"])
        return ver["PolicyVersion"]["Document"]


_READERS: dict[tuple[str, str], _Reader] = {}


def _reader(account: str, region: str) -> _Reader:
    with sim_state.lock:
        r = _READERS.get((account, region))
        if r is None:
            r = _READERS[(account, region)] = _Reader(account, region)
        return r


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def _not_found(exc: BaseException) -> bool:
    code = _error_code(exc)
    return code.endswith(("NotFound", "NotFoundException", "NoSuchEntity", ".NotFound", "Malformed")) or code in (
        "ResourceNotFoundException",
        "NoSuchEntity",
        "InvalidVpcID.NotFound",
        "InvalidGroup.NotFound",
        "InvalidSubnetID.NotFound",
        "NotFoundException",
    )


def _unsupported(exc: BaseException) -> bool:
    if isinstance(exc, NotImplementedError):
        return True
    code = _error_code(exc)
    return code in ("NotImplemented", "InternalFailure", "500") or type(exc).__name__ == "ResponseParserError"
