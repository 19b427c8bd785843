"""The sandbox's fake "Lambda poller": what would a Kafka ESM report, given the real state of the account?

moto stores event source mappings but never runs them, so ``State`` / ``StateTransitionReason`` /
``LastProcessingResult`` would stay at their defaults whatever the account looks like. This module walks the set-up
chain a real Kafka ESM walks (role -> service path -> secret -> DNS -> network -> TLS -> auth -> authz) against the
sandbox account and answers with the status a real ESM would show. ``install()`` registers it as the status
provider of :mod:`esm_medic_sandbox.patches`, so every Create / Update / Get / List of an ESM returns a status that
follows the account: break a security group and the ESM reports a connection error; repair it and the ESM
recovers.

How the account is read: through boto3 clients wired straight into moto's request dispatcher in this process
(:class:`_Reader`): no HTTP, the same backends in decorator mode and in ``sandbox serve`` mode, and the real API
response shapes. Reads are memoised per *generation*: a counter bumped by every mutating AWS call on the services
that matter (ec2, iam, kafka, secretsmanager, kms, lambda functions), by edits of the sandbox DNS / SCRAM tables,
by :func:`invalidate` and by a moto reset. Per-ESM results are cached by (generation, fingerprint of the ESM's own
fields), so a ``ListEventSourceMappings`` over 1,000 unchanged ESMs costs nothing, and 1,000 ESMs on 10 clusters
share the cluster / security-group / route work.

Sandbox-only simplifications (all deliberate):

- IAM decisions use the sandbox's own evaluator (:mod:`esm_medic_sandbox.iam_sim`, the engine behind its
  ``SimulatePrincipalPolicy``) over the role's identity policies and permissions boundary: conditions, SCPs and
  resource policies are not modelled.
- Kafka ACLs (SCRAM / mTLS authorization) have no AWS API and are assumed to allow the ESM.
- Self-managed broker names resolve when they are IP literals, in :func:`dns_table`, or have an A / AAAA / CNAME
  record in a Route 53 zone that answers in the ESM's VPC (private zones associated with it, public zones); MSK
  broker names always resolve.
- The brokers' SCRAM / SASL-PLAIN users are :func:`scram_users` plus SSM parameters under
  :data:`SCRAM_SSM_PREFIX`; for MSK, a secret associated with the cluster (``kafka:ListScramSecrets``) also logs in.
  Route 53 and SSM keep that state in the account, so scenarios built from another process (``sandbox serve``)
  are judged the same way.
- The status is a pure function of (ESM configuration, account state): once the account is repaired the ESM shows
  ``OK`` on the next read, even if a real ESM would wait for its next retry or a disable/enable.

Errors inside the simulator never break a moto call: the provider logs and answers with the last known status.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

from esm_medic.esm import (
    IAM,
    MSK,
    MTLS,
    PLAINTEXT,
    SASL_PLAIN,
    SASL_SCRAM_256,
    SASL_SCRAM_512,
    TLS,
    EsmConfig,
    auth_mode,
    broker_ports,
    msk_client_authentication,
    msk_cluster_network,
)

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------- messages
#: The texts a real Kafka ESM shows, keyed by the failure the simulator found.
MESSAGES: dict[str, str] = {
    "role": (
        "PROBLEM: Lambda failed to assume your function execution role. Please check if the role trust Lambda "
        "service principal, and make sure it does not require setting source identity to be assumed."
    ),
    "vpc-services": (
        "PROBLEM: Connection error. Your VPC must be able to connect to Lambda and STS, as well as Secrets Manager "
        "if authentication is required. You can provide access by configuring PrivateLink or a NAT Gateway."
    ),
    "brokers": "PROBLEM: Connection error. Please check your event source connection configuration.",
    "not-pem": "PROBLEM: Certificates and/or private key must be in PEM format.",
    "cert-invalid": "PROBLEM: Provided certificate or private key is invalid.",
    "dns": "PROBLEM: Cannot resolve the provided Kafka broker endpoint.",
    "sasl": "PROBLEM: SASL authentication failed.",
    "authz": "PROBLEM: Cluster failed to authorize Lambda.",
    "server-auth": "PROBLEM: Server failed to authenticate Lambda.",
    "function": "PROBLEM: Function call failed.",
    "ok": "OK",
}

USER_INITIATED = "USER_INITIATED"
AUTHZ_ERROR = "EVENT_SOURCE_AUTHZ_ERROR"
CONFIG_ERROR = "ESM_CONFIG_NOT_VALID"

HTTPS = 443
#: A representative ephemeral port for return traffic checks in NACLs.
EPHEMERAL_PORT = 49152
#: A representative public AWS service address (the far side of a NAT gateway).
PUBLIC_SERVICE_IP = ipaddress.ip_network("52.94.0.10/32")

KAFKA_DATA_ACTIONS = (
    "kafka-cluster:DescribeGroup",
    "kafka-cluster:AlterGroup",
    "kafka-cluster:DescribeTopic",
    "kafka-cluster:ReadData",
    "kafka-cluster:DescribeClusterDynamicConfiguration",
)
_MSK_BROKER_NAME = re.compile(r"\.kafka(-serverless)?\.[a-z0-9-]+\.amazonaws\.com$", re.IGNORECASE)
_SASL_TYPES = ("SASL_SCRAM_512_AUTH", "SASL_SCRAM_256_AUTH", "BASIC_AUTH")
_AWS_MANAGED_SECRET_KEY = "alias/aws/secretsmanager"
#: SSM parameters under this prefix hold broker-side SCRAM / SASL-PLAIN passwords (name = prefix + username):
#: the sandbox's stand-in for the brokers' user database, readable by the simulator in any process.
SCRAM_SSM_PREFIX = "/esm-medic/sandbox/kafka-users/"


# ---------------------------------------------------------------------------------------------- results
@dataclass
class Decision:
    """One check of the set-up chain: which step, what was checked, the verdict and why."""

    step: str
    check: str
    ok: bool | None  # None: not applicable / skipped
    detail: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Trace:
    """The per-step decisions for one ESM and the status they lead to."""

    uuid: str
    status: dict[str, str]
    failed_step: str  # the step that failed, "none" when healthy, "disabled" when the user disabled the ESM
    decisions: list[Decision] = field(default_factory=list)
    cause: str = ""  # short machine id of the failure (e.g. "no-sg-self-rule"), "" when healthy

    def to_dict(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "status": dict(self.status),
            "failed_step": self.failed_step,
            "cause": self.cause,
            "decisions": [d.to_dict() for d in self.decisions],
        }


class _Fail(Exception):
    """Raised inside the walk when a step fails; carries the resulting status."""

    def __init__(self, step: str, cause: str, result: str, state: str = "Enabled", reason: str = USER_INITIATED):
        super().__init__(cause)
        self.step = step
        self.cause = cause
        self.result = result
        self.state = state
        self.reason = reason


# ---------------------------------------------------------------------------------------------- sandbox tables
_lock = threading.RLock()
_generation = 0


def _bump(*_: Any) -> None:
    global _generation
    with _lock:
        _generation += 1


def generation() -> int:
    """The current account-change counter (for tests and the demo)."""
    return _generation


def invalidate() -> None:
    """Forget memoised account reads: call after editing moto backends directly (not through the API)."""
    _bump()


class _TrackedDict(dict[str, str]):
    """A dict whose edits count as account changes."""

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        _bump()

    def __delitem__(self, key: Any) -> None:
        super().__delitem__(key)
        _bump()

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        _bump()

    def pop(self, *args: Any) -> Any:
        value = super().pop(*args)
        _bump()
        return value

    def setdefault(self, key: Any, default: Any = None) -> Any:
        value = super().setdefault(key, default)
        _bump()
        return value

    def clear(self) -> None:
        super().clear()
        _bump()


_DNS: _TrackedDict = _TrackedDict()
_SCRAM: _TrackedDict = _TrackedDict()


def dns_table() -> dict[str, str]:
    """The sandbox DNS: broker host name (lower case) -> IP address. Self-managed broker names resolve only when
    they are here (or are IP literals); MSK broker names always resolve. Edits count as account changes."""
    return _DNS


def scram_users() -> dict[str, str]:
    """SCRAM / SASL-PLAIN credentials the brokers know: username -> password. Edits count as account changes."""
    return _SCRAM


def register_dns(host: str, ip: str = "10.0.0.10") -> None:
    _DNS[host.strip().lower()] = ip


def register_scram_user(username: str, password: str) -> None:
    _SCRAM[username] = password


# ---------------------------------------------------------------------------------------------- account reader
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
        if self._memo_gen != _generation:
            self._memo.clear()
            self._memo_gen = _generation
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
    with _lock:
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


# ---------------------------------------------------------------------------------------------- network helpers
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _net(cidr: str) -> _Network | None:
    try:
        return ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return None


def _covers(rule_cidr: str, peer: _Network) -> bool:
    net = _net(rule_cidr)
    return bool(net is not None and net.version == peer.version and peer.subnet_of(net))  # type: ignore[arg-type]


def _perm_covers_port(perm: Mapping[str, Any], port: int) -> bool:
    proto = str(perm.get("IpProtocol", ""))
    if proto in ("-1", "all"):
        return True
    if proto not in ("tcp", "6"):
        return False
    lo, hi = perm.get("FromPort"), perm.get("ToPort")
    if lo is None or hi is None or lo == -1:
        return True
    return int(lo) <= port <= int(hi)


def sg_allows(
    groups: Iterable[Mapping[str, Any]],
    *,
    egress: bool,
    port: int,
    peer_groups: Iterable[str] = (),
    peer_cidrs: Iterable[_Network] = (),
) -> bool:
    """Does any of ``groups`` allow TCP ``port`` in the given direction to/from a peer that carries one of
    ``peer_groups`` or lives in every one of ``peer_cidrs``?"""
    peer_set = set(peer_groups)
    cidrs = list(peer_cidrs)
    for sg in groups:
        perms = sg.get("IpPermissionsEgress" if egress else "IpPermissions") or []
        for perm in perms:
            if not _perm_covers_port(perm, port):
                continue
            if peer_set and any(p.get("GroupId") in peer_set for p in perm.get("UserIdGroupPairs") or []):
                return True
            if cidrs:
                ranges = [r.get("CidrIp", "") for r in perm.get("IpRanges") or []]
                ranges += [r.get("CidrIpv6", "") for r in perm.get("Ipv6Ranges") or []]
                if all(any(_covers(c, peer) for c in ranges) for peer in cidrs):
                    return True
    return False


def nacl_allows(nacl: Mapping[str, Any] | None, *, egress: bool, port: int, peer: _Network) -> bool:
    """First-match evaluation of a network ACL for TCP ``port`` to/from (a representative address of) ``peer``."""
    if nacl is None:
        return True
    addr = peer.network_address if peer.num_addresses == 1 else next(iter(peer.hosts()), peer.network_address)
    point = ipaddress.ip_network(f"{addr}/32")
    entries = sorted(
        (e for e in nacl.get("Entries") or [] if bool(e.get("Egress")) == egress),
        key=lambda e: int(e.get("RuleNumber", 32767)),
    )
    for e in entries:
        proto = str(e.get("Protocol", "-1"))
        if proto not in ("-1", "6", "tcp"):
            continue
        cidr = e.get("CidrBlock")
        if not cidr or not _covers(cidr, point):
            continue
        pr = e.get("PortRange")
        if proto != "-1" and pr and not (int(pr.get("From", 0)) <= port <= int(pr.get("To", 65535))):
            continue
        return str(e.get("RuleAction", "deny")).lower() == "allow"
    return False


def _nacl_flow(r: _Reader, subnet_id: str, port: int, peer: _Network, *, initiator: bool) -> str:
    """'' when the NACL of ``subnet_id`` lets a TCP flow to/from ``peer`` pass; else a reason."""
    nacl = r.nacl(subnet_id)
    if initiator:
        if not nacl_allows(nacl, egress=True, port=port, peer=peer):
            return f"NACL of {subnet_id} blocks outbound TCP {port} to {peer}"
        if not nacl_allows(nacl, egress=False, port=EPHEMERAL_PORT, peer=peer):
            return f"NACL of {subnet_id} blocks the inbound return traffic (ephemeral ports) from {peer}"
    else:
        if not nacl_allows(nacl, egress=False, port=port, peer=peer):
            return f"NACL of {subnet_id} blocks inbound TCP {port} from {peer}"
        if not nacl_allows(nacl, egress=True, port=EPHEMERAL_PORT, peer=peer):
            return f"NACL of {subnet_id} blocks the outbound return traffic (ephemeral ports) to {peer}"
    return ""


# ---------------------------------------------------------------------------------------------- the walk
@dataclass
class _Identity:
    source: str  # cluster | esm | internet
    vpc_id: str = ""
    subnets: dict[str, dict[str, Any]] = field(default_factory=dict)
    security_groups: dict[str, dict[str, Any]] = field(default_factory=dict)


def _account_region(esm: EsmConfig) -> tuple[str, str]:
    return esm.account or "123456789012", esm.region or "us-east-1"


def _service_name(region: str, service: str) -> str:
    return f"com.amazonaws.{region}.{service}"


class _Walk:
    def __init__(self, item: Mapping[str, Any]) -> None:
        self.item = item
        self.esm = EsmConfig.from_api(item)
        account, region = _account_region(self.esm)
        self.r = _reader(account, region)
        self.region = region
        self.account = account
        self.decisions: list[Decision] = []
        self.cluster: dict[str, Any] | None = None
        self.role_arn = ""
        self.role_name = ""
        self.mode = ""
        self.secret_value: dict[str, Any] | None = None
        self.secret_type = ""

    def cached(self, key: tuple[Any, ...], fn: Callable[[], None]) -> None:
        """Run a step whose outcome depends only on ``key`` and the account once per account change; replay its
        decisions (and failure) for every other ESM with the same key (ESMs sharing a cluster share the work)."""
        start = len(self.decisions)

        def run() -> tuple[list[Decision], _Fail | None]:
            try:
                fn()
            except _Fail as f:
                return self.decisions[start:], f
            return self.decisions[start:], None

        decisions, failure = self.r.memo(("step", *key), run)
        del self.decisions[start:]
        self.decisions.extend(decisions)
        if failure is not None:
            raise failure

    def note(self, step: str, check: str, ok: bool | None, detail: str, **evidence: Any) -> None:
        self.decisions.append(Decision(step, check, ok, detail, evidence))

    def fail(self, step: str, check: str, cause: str, message_key: str, detail: str, **evidence: Any) -> _Fail:
        self.note(step, check, False, detail, **evidence)
        return _Fail(step, cause, MESSAGES[message_key])

    # ------------------------------------------------------------------ steps
    def run(self) -> Trace:
        esm = self.esm
        try:
            self.step_role()
            ident = self.step_identity()
            net_key = (ident.vpc_id, tuple(sorted(ident.subnets)), tuple(sorted(ident.security_groups)))
            services_key = (esm.provisioned, bool(esm.secrets))
            self.cached(("service-path", *net_key, services_key), lambda: self.step_service_path(ident))
            self.step_secret()
            self.step_dns(ident)
            ports_key = (self.mode, esm.cluster_arn, esm.bootstrap_servers)
            self.cached(("network", *net_key, ports_key), lambda: self.step_network(ident))
            self.step_tls()
            self.step_auth()
            self.step_authz()
        except _Fail as f:
            status = {"State": f.state, "StateTransitionReason": f.reason, "LastProcessingResult": f.result}
            return Trace(esm.uuid, status, f.step, self.decisions, f.cause)
        self.note("none", "healthy", True, "every set-up step passed")
        status = {"State": "Enabled", "StateTransitionReason": USER_INITIATED, "LastProcessingResult": MESSAGES["ok"]}
        return Trace(esm.uuid, status, "none", self.decisions, "")

    def step_role(self) -> None:
        fn = self.r.function(self.esm.function_arn)
        if fn is None:
            raise self.fail(
                "invoke",
                "function-exists",
                "function-missing",
                "function",
                f"function {self.esm.function_arn} does not exist",
            )
        self.role_arn = str(fn.get("Role") or "")
        self.role_name = self.role_arn.rsplit("/", 1)[-1]
        role = self.r.role(self.role_name) if self.role_name else None
        if role is None:
            raise self.fail(
                "role",
                "role-exists",
                "role-deleted",
                "role",
                f"execution role {self.role_arn or '?'} does not exist",
                role=self.role_arn,
            )
        problem = trust_problem(role.get("AssumeRolePolicyDocument"))
        if problem:
            raise self.fail("role", "role-trust", "trust-policy", "role", problem, role=self.role_arn)
        self.note(
            "role", "role-trust", True, f"{self.role_name} exists and trusts lambda.amazonaws.com", role=self.role_arn
        )

    def step_identity(self) -> _Identity:
        esm = self.esm
        if esm.source_kind == MSK:
            cluster = self.r.cluster(esm.cluster_arn)
            if cluster is None:
                self.note("dns", "cluster-exists", False, f"MSK cluster {esm.cluster_arn} does not exist")
                raise _Fail("dns", "cluster-missing", MESSAGES["brokers"])
            self.cluster = cluster
            subnet_ids, sg_ids = msk_cluster_network(cluster)
            source = "cluster"
        elif esm.vpc_subnets or esm.vpc_security_groups:
            subnet_ids, sg_ids = esm.vpc_subnets, esm.vpc_security_groups
            source = "esm"
        else:
            self.note("network", "network-identity", True, "self-managed ESM without VPC config: internet path")
            self.mode = auth_mode(esm, None)
            return _Identity("internet")
        subnets = self.r.subnets(subnet_ids)
        sgs = self.r.security_groups(sg_ids)
        missing = [s for s in subnet_ids if s not in subnets] + [g for g in sg_ids if g not in sgs]
        if missing or not subnets or not sgs:
            self.note(
                "network",
                "network-identity",
                False,
                f"subnets / security groups missing: {missing}",
                subnets=list(subnet_ids),
                security_groups=list(sg_ids),
            )
            raise _Fail("network", "network-identity-missing", MESSAGES["brokers"])
        vpcs = {s.get("VpcId") for s in subnets.values()}
        vpc_id = str(next(iter(vpcs)))
        self.mode = auth_mode(esm, self.cluster)
        self.note(
            "network",
            "network-identity",
            True,
            f"ENIs in {len(subnets)} subnet(s) of {vpc_id} with {sorted(sgs)} ({source})",
            source=source,
            vpc_id=vpc_id,
            subnets=sorted(subnets),
            security_groups=sorted(sgs),
            auth_mode=self.mode,
        )
        return _Identity(source, vpc_id, subnets, sgs)

    def step_service_path(self, ident: _Identity) -> None:
        esm = self.esm
        if ident.source == "internet":
            self.note("sts", "service-path", None, "not in a VPC: Lambda reaches STS / Lambda itself")
            return
        if esm.provisioned:
            self.note("sts", "service-path", None, "provisioned mode: no NAT / PrivateLink needed")
            return
        services = ["sts", "lambda"] + (["secretsmanager"] if esm.secrets else [])
        dns_support, dns_hostnames = self.r.vpc_dns(ident.vpc_id)
        endpoints = self.r.endpoints(ident.vpc_id)
        paths: dict[str, str] = {}
        for sid, subnet in ident.subnets.items():
            nat_cause, nat_reason = self._nat_path(ident, sid)
            if not nat_cause:
                paths[sid] = "nat"
                continue
            for svc in services:
                ep_cause, ep_reason = self._endpoint_path(
                    ident, sid, subnet, svc, endpoints, dns_support, dns_hostnames
                )
                if not ep_cause:
                    continue
                # No endpoint at all: the NAT side tells the real story (a NAT route that egress/NACL blocks).
                cause = nat_cause if ep_cause == "no-nat-or-endpoints" else ep_cause
                raise self.fail(
                    "sts",
                    "service-path",
                    cause,
                    "vpc-services",
                    f"{sid} cannot reach {svc}: NAT path: {nat_reason}; endpoint path: {ep_reason}",
                    subnet=sid,
                    service=svc,
                    security_groups=sorted(ident.security_groups),
                )
            paths[sid] = "endpoints"
        self.note(
            "sts",
            "service-path",
            True,
            f"every ENI subnet reaches {', '.join(services)}",
            services=services,
            paths=paths,
        )

    def _nat_path(self, ident: _Identity, sid: str) -> tuple[str, str]:
        """('', '') when subnet ``sid`` reaches the internet through an available NAT gateway; else (cause, why)."""
        rtb = self.r.route_table(sid, ident.vpc_id)
        nat_id = ""
        for route in (rtb or {}).get("Routes") or []:
            if route.get("DestinationCidrBlock") == "0.0.0.0/0" and route.get("NatGatewayId"):
                nat_id = str(route["NatGatewayId"])
        if not nat_id:
            return "no-nat-or-endpoints", "no 0.0.0.0/0 route to a NAT gateway"
        nat = self.r.nat_gateway(nat_id)
        if nat is None or nat.get("State") != "available":
            return "no-nat-or-endpoints", f"NAT gateway {nat_id} is {(nat or {}).get('State', 'missing')}"
        nat_rtb = self.r.route_table(str(nat.get("SubnetId")), ident.vpc_id)
        if not any(
            rt.get("DestinationCidrBlock") == "0.0.0.0/0" and str(rt.get("GatewayId", "")).startswith("igw-")
            for rt in (nat_rtb or {}).get("Routes") or []
        ):
            return "no-nat-or-endpoints", f"NAT gateway {nat_id} is not in a public subnet"
        if not sg_allows(ident.security_groups.values(), egress=True, port=HTTPS, peer_cidrs=[PUBLIC_SERVICE_IP]):
            return "no-egress-443", "the ESM security groups allow no outbound 443 to the internet"
        reason = _nacl_flow(self.r, sid, HTTPS, PUBLIC_SERVICE_IP, initiator=True)
        return ("nacl-blocks-443", reason) if reason else ("", "")

    def _endpoint_path(
        self,
        ident: _Identity,
        sid: str,
        subnet: Mapping[str, Any],
        svc: str,
        endpoints: list[dict[str, Any]],
        dns_support: bool,
        dns_hostnames: bool,
    ) -> tuple[str, str]:
        """('', '') when subnet ``sid`` reaches ``svc`` through an interface endpoint; else (cause, why)."""
        name = _service_name(self.region, svc)
        candidates = [
            e
            for e in endpoints
            if e.get("ServiceName") == name and e.get("VpcEndpointType", "Interface") == "Interface"
        ]
        if not candidates:
            return "no-nat-or-endpoints", f"no interface endpoint for {svc}"
        problems: list[tuple[str, str]] = []
        az = subnet.get("AvailabilityZone")
        for ep in candidates:
            ep_id = ep.get("VpcEndpointId")
            if str(ep.get("State", "available")).lower() != "available":
                problems.append(("no-nat-or-endpoints", f"{ep_id} is {ep.get('State')}"))
                continue
            if not ep.get("PrivateDnsEnabled"):
                problems.append(("endpoint-sg-blocks-443", f"{ep_id} has private DNS off"))
                continue
            if not (dns_support and dns_hostnames):
                problems.append(
                    (
                        "vpc-dns-disabled",
                        f"VPC DNS off (enableDnsSupport={dns_support}, enableDnsHostnames={dns_hostnames}): "
                        f"the private DNS name of {ep_id} does not resolve",
                    )
                )
                continue
            ep_subnets = self.r.subnets(ep.get("SubnetIds") or [])
            if az not in {s.get("AvailabilityZone") for s in ep_subnets.values()}:
                problems.append(("no-nat-or-endpoints", f"{ep_id} has no subnet in {az}"))
                continue
            ep_sgs = self.r.security_groups(g.get("GroupId") for g in ep.get("Groups") or [])
            sub_net = _net(str(subnet.get("CidrBlock", "")))
            if not sg_allows(
                ep_sgs.values(),
                egress=False,
                port=HTTPS,
                peer_groups=ident.security_groups,
                peer_cidrs=[sub_net] if sub_net else [],
            ):
                problems.append(("endpoint-sg-blocks-443", f"the SGs of {ep_id} do not admit 443 from the ESM SGs"))
                continue
            ep_cidrs = [n for n in (_net(str(s.get("CidrBlock", ""))) for s in ep_subnets.values()) if n]
            if not sg_allows(
                ident.security_groups.values(), egress=True, port=HTTPS, peer_groups=ep_sgs, peer_cidrs=ep_cidrs
            ):
                problems.append(("no-egress-443", f"the ESM SGs allow no outbound 443 to {ep_id}"))
                continue
            nacl_reason = _nacl_flow(self.r, sid, HTTPS, ep_cidrs[0], initiator=True) if ep_cidrs else ""
            if not nacl_reason and sub_net is not None:
                for es in ep_subnets:
                    nacl_reason = _nacl_flow(self.r, es, HTTPS, sub_net, initiator=False)
                    if nacl_reason:
                        break
            if nacl_reason:
                problems.append(("nacl-blocks-443", nacl_reason))
                continue
            return "", ""
        return problems[0][0], "; ".join(p[1] for p in problems)

    def step_secret(self) -> None:
        esm = self.esm
        secrets = esm.secrets
        if not secrets:
            self.note("secret", "secret", None, "no secret in SourceAccessConfigurations")
            return
        for sac_type, arn in secrets.items():
            meta, value = self.r.secret(arn)
            if meta is None or value is None:
                self.note("secret", "secret-exists", False, f"secret {arn} does not exist or is deleted")
                raise _Fail(
                    "secret",
                    "secret-missing",
                    f"PROBLEM: The secret {arn} is marked for deletion or does not exist.",
                    state="Disabled",
                    reason=AUTHZ_ERROR,
                )
            session = f"arn:aws:sts::{self.account}:assumed-role/{self.role_name}/esm-{esm.uuid[:8]}"
            real_arn = str(meta.get("ARN") or arn)
            if not self.r.allowed(self.role_arn, ("secretsmanager:GetSecretValue",), real_arn)[
                "secretsmanager:GetSecretValue"
            ]:
                self.note(
                    "secret",
                    "secret-permission",
                    False,
                    f"{self.role_name} may not call secretsmanager:GetSecretValue on {real_arn}",
                )
                raise _Fail(
                    "secret",
                    "missing-getsecretvalue",
                    f"User: {session} is not authorized to perform: secretsmanager:GetSecretValue on "
                    f"resource: {real_arn} because no identity-based policy allows the "
                    "secretsmanager:GetSecretValue action",
                    state="Disabled",
                    reason=AUTHZ_ERROR,
                )
            key_id = str(meta.get("KmsKeyId") or "")
            if key_id and key_id != _AWS_MANAGED_SECRET_KEY:
                key = self.r.kms_key(key_id)
                key_arn = str((key or {}).get("Arn") or key_id)
                if key is None or key.get("KeyState") not in ("Enabled", None):
                    state = (key or {}).get("KeyState", "missing")
                    self.note("secret", "kms-key", False, f"KMS key {key_arn} is {state}")
                    raise _Fail(
                        "secret",
                        "key-disabled",
                        f"PROBLEM: The KMS key {key_arn} is disabled.",
                        state="Disabled",
                        reason=AUTHZ_ERROR,
                    )
                if not self.r.allowed(self.role_arn, ("kms:Decrypt",), key_arn)["kms:Decrypt"]:
                    self.note(
                        "secret", "kms-permission", False, f"{self.role_name} may not call kms:Decrypt on {key_arn}"
                    )
                    raise _Fail(
                        "secret",
                        "missing-kms-decrypt",
                        f"User: {session} is not authorized to perform: kms:Decrypt on resource: {key_arn} "
                        "because no identity-based policy allows the kms:Decrypt action",
                        state="Disabled",
                        reason=AUTHZ_ERROR,
                    )
            text = value.get("SecretString")
            parsed: Any = None
            if isinstance(text, str):
                try:
                    parsed = json.loads(text)
                except ValueError:
                    parsed = None
            parsed = parsed if isinstance(parsed, dict) else None
            if sac_type in ("CLIENT_CERTIFICATE_TLS_AUTH", "SERVER_ROOT_CA_CERTIFICATE"):
                problem = pem_problem(parsed, client=sac_type == "CLIENT_CERTIFICATE_TLS_AUTH")
                if problem:
                    msg_key = "not-pem" if problem.startswith("not PEM") else "cert-invalid"
                    cause = "not-pem" if msg_key == "not-pem" else "not-pkcs8"
                    raise self.fail("secret", "secret-format", cause, msg_key, f"{arn}: {problem}")
            if sac_type in _SASL_TYPES:
                self.secret_type = sac_type
                self.secret_value = parsed
                ok = bool(parsed and parsed.get("username") and parsed.get("password"))
                # A real ESM only finds out at SASL login time: record it here, fail at the auth step.
                self.note(
                    "secret",
                    "secret-format",
                    True if ok else None,
                    "JSON with username and password"
                    if ok
                    else "not JSON with username and password (the SASL login will fail)",
                    secret=arn,
                )
                continue
            self.note("secret", "secret", True, f"{sac_type} secret readable and well formed", secret=arn)

    def step_dns(self, ident: _Identity) -> None:
        esm = self.esm
        if esm.source_kind == MSK:
            self.note("dns", "broker-dns", True, "MSK broker names resolve from the cluster's VPC")
            return
        if ident.vpc_id:
            dns_support, _ = self.r.vpc_dns(ident.vpc_id)
            if not dns_support:
                raise self.fail(
                    "dns",
                    "vpc-dns",
                    "vpc-dns-disabled",
                    "dns",
                    f"enableDnsSupport is off in {ident.vpc_id}: broker names cannot resolve",
                )
        zone_names = self.r.zone_records(ident.vpc_id)
        unresolved = [h for h, _ in esm.broker_hosts if not resolves(h, zone_names)]
        if unresolved or not esm.broker_hosts:
            raise self.fail(
                "dns", "broker-dns", "typo", "dns", f"unresolvable broker names: {unresolved}", hosts=unresolved
            )
        self.note("dns", "broker-dns", True, f"{len(esm.broker_hosts)} broker name(s) resolve")

    def step_network(self, ident: _Identity) -> None:
        esm = self.esm
        if ident.source == "internet":
            self.note("network", "broker-path", None, "internet path: no VPC rules to check")
            return
        mode = self.mode
        if esm.source_kind == MSK:
            offered = msk_client_authentication(self.cluster or {})
            need = {
                MTLS: "mtls",
                SASL_SCRAM_512: "scram",
                SASL_SCRAM_256: "scram",
                SASL_PLAIN: "scram",
                IAM: "iam",
                TLS: "tls",
                PLAINTEXT: "plaintext",
            }.get(mode, "iam")
            if not offered.get(need):
                raise self.fail(
                    "network",
                    "auth-mode-offered",
                    "wrong-port-for-auth",
                    "brokers",
                    f"the ESM uses {mode} but the cluster does not enable it (no listener on its port)",
                    auth_mode=mode,
                    cluster_auth=offered,
                )
            ports = broker_ports(
                esm, mode if mode not in (SASL_SCRAM_256, SASL_PLAIN) else SASL_SCRAM_512, self.cluster
            )
        else:
            ports = broker_ports(esm, mode)
        sgs = list(ident.security_groups.values())
        sg_ids = set(ident.security_groups)
        subnet_nets = [n for n in (_net(str(s.get("CidrBlock", ""))) for s in ident.subnets.values()) if n]
        for port in ports:
            if not sg_allows(sgs, egress=False, port=port, peer_groups=sg_ids, peer_cidrs=subnet_nets):
                other = sorted(
                    {
                        int(p.get("FromPort", -1))
                        for sg in sgs
                        for p in sg.get("IpPermissions") or []
                        if any(g.get("GroupId") in sg_ids for g in p.get("UserIdGroupPairs") or [])
                        and p.get("FromPort") not in (None, -1)
                    }
                )
                cause = "wrong-port-for-auth" if other else "no-sg-self-rule"
                raise self.fail(
                    "network",
                    "sg-ingress",
                    cause,
                    "brokers",
                    f"no inbound TCP {port} from {sorted(sg_ids)} on the broker SGs"
                    + (f" (self rules only open {other})" if other else ""),
                    port=port,
                    security_groups=sorted(sg_ids),
                    auth_mode=mode,
                )
            if not sg_allows(sgs, egress=True, port=port, peer_groups=sg_ids, peer_cidrs=subnet_nets):
                raise self.fail(
                    "network",
                    "sg-egress",
                    "no-sg-self-rule",
                    "brokers",
                    f"no outbound TCP {port} to the broker SGs",
                    port=port,
                    security_groups=sorted(sg_ids),
                )
            for sid, sub in ident.subnets.items():
                peer = _net(str(sub.get("CidrBlock", "")))
                if peer is None:
                    continue
                reason = _nacl_flow(self.r, sid, port, peer, initiator=True) or _nacl_flow(
                    self.r, sid, port, peer, initiator=False
                )
                if reason:
                    raise self.fail("network", "nacl", "nacl-blocks-brokers", "brokers", reason, port=port)
        self.note(
            "network",
            "broker-path",
            True,
            f"TCP {list(ports)} open between the ENIs and the brokers",
            ports=list(ports),
            auth_mode=mode,
        )

    def step_tls(self) -> None:
        # A listener for the auth mode exists (network step); certificate trust is not modelled further.
        self.note(
            "tls",
            "tls",
            True if self.mode in (MTLS, TLS, IAM, SASL_SCRAM_512, SASL_SCRAM_256) else None,
            f"TLS handshake for {self.mode}",
        )

    def step_auth(self) -> None:
        esm = self.esm
        mode = self.mode
        if mode in (SASL_SCRAM_512, SASL_SCRAM_256, SASL_PLAIN):
            parsed = self.secret_value or {}
            user, password = parsed.get("username"), parsed.get("password")
            if not (isinstance(user, str) and isinstance(password, str) and user and password):
                raise self.fail(
                    "auth",
                    "sasl",
                    "wrong-credentials",
                    "sasl",
                    "the secret does not hold JSON with username and password",
                )
            secret_arn = esm.secrets.get(self.secret_type, "")
            if esm.source_kind == MSK:
                associated = self.r.scram_secrets(esm.cluster_arn)
                if associated is not None and any(_same_secret(secret_arn, a) for a in associated):
                    self.note("auth", "sasl", True, "secret associated with the cluster")
                    return
            known = _SCRAM.get(user)
            if known is None:
                known = self.r.kafka_user_password(user)
            if known == password:
                self.note("auth", "sasl", True, f"broker knows {user} with this password")
                return
            cause = "scram-secret-not-associated" if esm.source_kind == MSK and known is None else "wrong-credentials"
            raise self.fail("auth", "sasl", cause, "sasl", f"the brokers reject {user}: unknown user or wrong password")
        if mode == IAM:
            cluster_arn = esm.cluster_arn
            if not self.r.allowed(self.role_arn, ("kafka-cluster:Connect",), cluster_arn)["kafka-cluster:Connect"]:
                raise self.fail(
                    "auth",
                    "iam-connect",
                    "iam-missing-connect",
                    "sasl",
                    f"{self.role_name} may not call kafka-cluster:Connect on {cluster_arn}",
                )
            self.note("auth", "iam-connect", True, "kafka-cluster:Connect allowed")
            return
        self.note("auth", "auth", None, f"no SASL / IAM login for {mode}")

    def step_authz(self) -> None:
        esm = self.esm
        if self.mode != IAM or esm.source_kind != MSK:
            self.note("authz", "authz", None, "Kafka ACLs are not modelled in the sandbox (assumed to allow)")
            return
        arns = kafka_resource_arns(esm, self.cluster or {})
        checks: list[tuple[str, tuple[str, ...], str]] = [
            ("cluster", ("kafka-cluster:DescribeClusterDynamicConfiguration",), arns["cluster"])
        ]
        for topic_arn in arns["topics"]:
            checks.append(("topic", ("kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"), topic_arn))
        checks.append(("group", ("kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"), arns["group"]))
        missing: list[str] = []
        for _, actions, res in checks:
            allowed = self.r.allowed(self.role_arn, actions, res)
            missing.extend(f"{a} on {res}" for a in actions if not allowed[a])
        if missing:
            raise self.fail(
                "authz",
                "iam-authz",
                "iam-missing-kafka-cluster",
                "authz",
                f"{self.role_name} lacks: {'; '.join(missing)}",
                missing=missing,
            )
        self.note("authz", "iam-authz", True, "cluster, topic and group actions allowed")


# ---------------------------------------------------------------------------------------------- pure helpers
def trust_problem(document: Any) -> str:
    """'' when a role trust policy lets lambda.amazonaws.com assume the role without extra conditions."""
    if isinstance(document, str):
        from urllib.parse import unquote

        try:
            document = json.loads(unquote(document))
        except ValueError:
            return "trust policy is not valid JSON"
    if not isinstance(document, Mapping):
        return "role has no trust policy"
    statements = document.get("Statement") or []
    if isinstance(statements, Mapping):
        statements = [statements]
    allowed = False
    for st in statements:
        principal = st.get("Principal") or {}
        services: list[str] = []
        if principal == "*":
            services = ["*"]
        elif isinstance(principal, Mapping):
            svc = principal.get("Service") or []
            services = [svc] if isinstance(svc, str) else list(svc)
        if not any(s in ("lambda.amazonaws.com", "*") for s in services):
            continue
        actions = st.get("Action") or []
        actions = [actions] if isinstance(actions, str) else list(actions)
        if not any(a.lower() in ("sts:assumerole", "sts:*", "*") for a in actions):
            continue
        if st.get("Effect") == "Deny":
            return "trust policy denies lambda.amazonaws.com"
        cond = json.dumps(st.get("Condition") or {}).lower()
        if "sourceidentity" in cond:
            return "trust policy requires a source identity that Lambda does not set"
        if st.get("Effect") == "Allow" and not st.get("Condition"):
            allowed = True
    return "" if allowed else "trust policy does not allow lambda.amazonaws.com to call sts:AssumeRole"


def pem_problem(secret: Mapping[str, Any] | None, *, client: bool) -> str:
    """'' when an mTLS / root-CA secret holds PEM text; else the problem ('not PEM ...' or 'not PKCS#8 ...')."""
    if not secret:
        return "not PEM: the secret is not JSON with a certificate"
    cert = secret.get("certificate")
    if not isinstance(cert, str) or "-----BEGIN CERTIFICATE-----" not in cert:
        return "not PEM: certificate has no PEM header"
    if not client:
        return ""
    key = secret.get("privateKey")
    if not isinstance(key, str) or "-----BEGIN" not in key:
        return "not PEM: privateKey has no PEM header"
    if "-----BEGIN PRIVATE KEY-----" in key:
        return ""
    if "-----BEGIN ENCRYPTED PRIVATE KEY-----" in key:
        return "" if secret.get("privateKeyPassword") else "encrypted key without privateKeyPassword"
    return "not PKCS#8: the private key must be a PKCS#8 PEM (BEGIN PRIVATE KEY / BEGIN ENCRYPTED PRIVATE KEY)"


def resolves(host: str, zone_names: frozenset[str] | set[str] = frozenset()) -> bool:
    """Does a broker name resolve in the sandbox (IP literal, :func:`dns_table`, MSK broker name, or a record in
    ``zone_names``, wildcards included)?"""
    h = host.strip().lower().rstrip(".")
    if not h:
        return False
    try:
        ipaddress.ip_address(h)
        return True
    except ValueError:
        pass
    if h in _DNS or h in zone_names or _MSK_BROKER_NAME.search(h):
        return True
    labels = h.split(".")
    return any("*." + ".".join(labels[i:]) in zone_names for i in range(1, len(labels)))


def _same_secret(a: str, b: str) -> bool:
    # Secrets Manager ARNs end in -XXXXXX; tolerate partial ARNs on either side.
    return bool(a and b) and (a == b or a.startswith(b) or b.startswith(a))


def cluster_name_and_id(cluster_arn: str, cluster: Mapping[str, Any] | None = None) -> tuple[str, str]:
    """(cluster name, cluster uuid) from an MSK ARN ``cluster/<name>/<uuid>`` (or moto's ``cluster/<uuid>``)."""
    parts = cluster_arn.split(":", 5)[-1].split("/")
    name = str((cluster or {}).get("ClusterName") or (parts[1] if len(parts) > 2 else ""))
    uuid = parts[-1] if len(parts) > 1 else ""
    return name, uuid


def kafka_resource_arns(esm: EsmConfig, cluster: Mapping[str, Any]) -> dict[str, Any]:
    """The cluster / topic / group ARNs the IAM data-plane actions of an MSK ESM are checked against."""
    name, cid = cluster_name_and_id(esm.cluster_arn, cluster)
    parts = esm.cluster_arn.split(":")
    region, account = (parts[3], parts[4]) if len(parts) > 4 else ("us-east-1", "123456789012")
    base = f"arn:aws:kafka:{region}:{account}"
    return {
        "cluster": esm.cluster_arn,
        "topics": [f"{base}:topic/{name}/{cid}/{t}" for t in esm.topics] or [f"{base}:topic/{name}/{cid}/*"],
        "group": f"{base}:group/{name}/{cid}/{esm.consumer_group_id or esm.uuid}",
    }


# ---------------------------------------------------------------------------------------------- public API
_CACHE: dict[str, tuple[int, str, Trace]] = {}
_LAST: dict[str, dict[str, str]] = {}
_FINGERPRINT_KEYS = (
    "FunctionArn",
    "EventSourceArn",
    "SelfManagedEventSource",
    "SourceAccessConfigurations",
    "ProvisionedPollerConfig",
    "Topics",
    "AmazonManagedKafkaEventSourceConfig",
    "SelfManagedKafkaEventSourceConfig",
    "LastModified",
)


def _fingerprint(item: Mapping[str, Any], enabled: bool) -> str:
    data = {k: item.get(k) for k in _FINGERPRINT_KEYS}
    data["enabled"] = enabled
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def _moto_esm(uuid: str) -> Any | None:
    """moto's EventSourceMapping object for ``uuid`` (whichever Lambda backend holds it), or None."""
    try:
        from esm_medic_sandbox.patches import find_esm

        return find_esm(uuid)
    except Exception:  # pragma: no cover - patches missing or moto internals moved
        log.debug("could not look up moto's ESM object", exc_info=True)
        return None


def _moto_enabled(esm: EsmConfig, item: Mapping[str, Any]) -> bool:
    """The user's Enabled flag, from moto's own ESM object (the item's State may carry our earlier answer)."""
    obj = _moto_esm(esm.uuid)
    if obj is not None:
        return bool(getattr(obj, "enabled", True))
    return str(item.get("State", "Enabled")) not in ("Disabled", "Disabling")


def _evaluate_trace(item: Mapping[str, Any]) -> Trace | None:
    esm = EsmConfig.from_api(item)
    if not esm.is_kafka:
        return None
    enabled = _moto_enabled(esm, item)
    with _lock:
        fp = _fingerprint(item, enabled)
        cached = _CACHE.get(esm.uuid)
        if cached is not None and cached[0] == _generation and cached[1] == fp:
            return cached[2]
        gen = _generation
        if not enabled:
            last = _LAST.get(esm.uuid, {})
            status = {
                "State": "Disabled",
                "StateTransitionReason": USER_INITIATED,
                "LastProcessingResult": last.get("LastProcessingResult", ""),
            }
            tr = Trace(esm.uuid, status, "disabled", [Decision("none", "enabled", None, "the ESM is disabled")])
        else:
            tr = _Walk(item).run()
            _LAST[esm.uuid] = dict(tr.status)
        _CACHE[esm.uuid] = (gen, fp, tr)
        return tr


def evaluate(esm_item: Mapping[str, Any]) -> dict[str, str]:
    """The status a real ESM would show: {"State", "StateTransitionReason", "LastProcessingResult"}.
    Non-Kafka ESMs get {} (no opinion). Raises on simulator bugs (the provider wraps it)."""
    tr = _evaluate_trace(esm_item)
    return dict(tr.status) if tr is not None else {}


def trace(esm_item: Mapping[str, Any]) -> dict[str, Any]:
    """The per-step decisions behind :func:`evaluate` (for the demo and for debugging)."""
    tr = _evaluate_trace(esm_item)
    if tr is None:
        return {
            "uuid": str(esm_item.get("UUID", "")),
            "status": {},
            "failed_step": "n/a",
            "cause": "",
            "decisions": [Decision("none", "kind", None, "not a Kafka ESM").to_dict()],
        }
    return tr.to_dict()


def provider(esm_item: dict[str, Any]) -> dict[str, str] | None:
    """The status provider registered with patches: never raises; falls back to the last known status."""
    uuid = str(esm_item.get("UUID") or "")
    try:
        status = evaluate(esm_item)
        return status or None
    except Exception:
        log.exception("esm-medic simulator failed for ESM %s; keeping its last known status", uuid)
        return dict(_LAST[uuid]) if uuid in _LAST else None


def evaluate_all() -> dict[str, dict[str, str]]:
    """uuid -> simulated status for every Kafka ESM in every account / region moto holds."""
    from moto.awslambda.models import lambda_backends
    from moto.awslambda_simple.models import lambda_simple_backends

    out: dict[str, dict[str, str]] = {}
    for backends in (lambda_simple_backends, lambda_backends):
        for account_id in list(backends.keys()):
            for region in list(backends[account_id].keys()):
                for uuid, obj in list(backends[account_id][region]._event_source_mappings.items()):
                    if uuid in out:
                        continue
                    status = evaluate(obj.get_configuration())
                    if status:
                        out[uuid] = status
    return out


def last_status(uuid: str) -> dict[str, str]:
    return dict(_LAST.get(uuid, {}))


def reset() -> None:
    """Forget everything: caches, the DNS table and SCRAM users (called when moto resets)."""
    with _lock:
        _CACHE.clear()
        _LAST.clear()
        dict.clear(_DNS)
        dict.clear(_SCRAM)
        _bump()


_INSTALLED = False


def _install_change_hooks() -> None:
    from moto.core.base_backend import BackendDict
    from moto.core.responses import BaseResponse

    if getattr(BaseResponse.call_action, "_esm_medic_sim", False):
        return
    original = BaseResponse.call_action

    def call_action(self: Any) -> Any:
        result = original(self)
        try:
            status = result[0] if isinstance(result, tuple) and result else 200
            service = str(getattr(self, "service_name", "") or "")
            method = str(getattr(self, "method", "") or "").upper()
            # GETs of the REST APIs never mutate; ESM calls are tracked by fingerprint (and are the hot path)
            if (
                int(status) < 400
                and service in _WATCHED_SERVICES
                and method != "GET"
                and "/event-source-mappings" not in str(getattr(self, "path", ""))
                and _is_mutation(service, str(self._get_action()))
            ):
                _bump()
        except Exception:  # pragma: no cover - never break a moto call
            _bump()
        return result

    call_action._esm_medic_sim = True  # type: ignore[attr-defined]
    call_action.__wrapped__ = original  # type: ignore[attr-defined]
    BaseResponse.call_action = call_action  # type: ignore[method-assign]

    original_reset = BackendDict.reset.__func__  # type: ignore[attr-defined]

    def reset_all(cls: Any) -> None:
        original_reset(cls)
        reset()

    BackendDict.reset = classmethod(reset_all)  # type: ignore[method-assign,assignment]


def install() -> None:
    """Register the simulator as the ESM status provider of the sandbox patches (idempotent)."""
    global _INSTALLED
    from esm_medic_sandbox import patches

    _install_change_hooks()
    patches.set_status_provider(provider)
    _INSTALLED = True


def installed() -> bool:
    return _INSTALLED
