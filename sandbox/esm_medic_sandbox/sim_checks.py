"""The simulator's vocabulary and pure checks: the texts a real ESM shows, the per-step results, and the
security group / network ACL / trust policy / PEM / DNS rules, all over plain API dicts (no AWS calls)."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from esm_medic_sandbox import sim_state
from esm_medic_sandbox.sim_model import EsmView, cluster_name_and_id, iam_resource_arns

__all__ = ["cluster_name_and_id", "iam_resource_arns"]

if TYPE_CHECKING:
    from esm_medic_sandbox.sim_reader import _Reader

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
    if h in sim_state.dns_table() or h in zone_names or _MSK_BROKER_NAME.search(h):
        return True
    labels = h.split(".")
    return any("*." + ".".join(labels[i:]) in zone_names for i in range(1, len(labels)))


def _same_secret(a: str, b: str) -> bool:
    # Secrets Manager ARNs end in -XXXXXX; tolerate partial ARNs on either side.
    return bool(a and b) and (a == b or a.startswith(b) or b.startswith(a))


def kafka_resource_arns(esm: EsmView | Mapping[str, Any], cluster: Mapping[str, Any]) -> dict[str, Any]:
    """The cluster / topic / group ARNs the IAM data-plane actions of an MSK ESM are checked against (an ESM item
    or its parsed view)."""
    view = esm if isinstance(esm, EsmView) else EsmView.parse(esm)
    return iam_resource_arns(view, cluster)
