"""Ready-made broken (and healthy) sandbox accounts: one realistic Kafka ESM set-up per scenario.

Each scenario builds the whole chain with ordinary AWS calls through :class:`esm_medic.aws.Aws`: a VPC with three
private subnets in three AZs (plus a public subnet, internet gateway and NAT gateway when the scenario has NAT),
route tables, security groups, an MSK cluster (``CreateClusterV2``, provisioned, with the scenario's client
authentication) or self-managed bootstrap servers, a KMS key and secret when SASL is used (``AmazonMSK_`` prefix
for MSK SCRAM, associated with the cluster), an execution role trusted by Lambda with the scenario's policies, the
function and the event source mapping. Nothing writes the error text into the ESM: the sandbox simulator
(:mod:`esm_medic_sandbox.simulator`) derives the status from the account, so repairing the account makes the ESM
recover.

Every build gets a random token in its resource names, so a scenario can be built many times in one account and
several scenarios can live side by side; ``prefix`` groups names (e.g. per test or per demo run).

Public API: :data:`SCENARIOS`, :class:`Scenario`, :class:`ScenarioResult`, :func:`get`, :func:`names`,
:func:`build`, :func:`build_fleet` / :class:`FleetResult`, and the CLI hooks :func:`cli_register` /
:func:`cli_run` used by ``esm-medic sandbox scenario``.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from esm_medic.aws import Aws
from esm_medic_sandbox.scenario_builder import (
    HEALTHY,
    IAM_PORT,
    KAFKA_CLUSTER_ACTIONS,
    MSK,
    SCRAM_PORT,
    SELF_MANAGED,
    TLS_PORT,
    TRUST_LAMBDA,
    AccountBuilder,
    ScenarioResult,
    _exec_statement,
    _expected,
    _kafka_statement,
)
from esm_medic_sandbox.scenario_kinds import _build_msk, _build_self_managed, _SelfSpec, _Spec

__all__ = [
    "KAFKA_CLUSTER_ACTIONS",
    "SCENARIOS",
    "TRUST_LAMBDA",
    "AccountBuilder",
    "FleetResult",
    "Scenario",
    "ScenarioResult",
    "build",
    "build_fleet",
    "cli_register",
    "cli_run",
    "get",
    "names",
]


# ---------------------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    description: str
    source_kind: str  # msk | self-managed
    auth_mode: str  # iam | sasl-scram-512 | mtls | plaintext
    expected: dict[str, Any]
    recipe: Callable[[AccountBuilder], ScenarioResult] = field(repr=False, compare=False)
    notes: tuple[str, ...] = ()

    def build(self, aws: Aws, *, prefix: str = "") -> ScenarioResult:
        """Build the account and the ESM; the simulator gives the ESM its status."""
        builder = AccountBuilder(aws, self.name, prefix)
        result = self.recipe(builder)
        result.expected = json.loads(json.dumps(self.expected))
        result.notes = list(self.notes)
        return result

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "source_kind": self.source_kind,
            "auth_mode": self.auth_mode,
            "expected": self.expected,
        }


SCENARIOS: dict[str, Scenario] = {}


def _register(scenario: Scenario) -> None:
    SCENARIOS[scenario.name] = scenario


_register(
    Scenario(
        name="missing-sg-self-rule",
        title="MSK (IAM auth) cluster SG has no self-referencing rule",
        description="NAT present and IAM complete, but the cluster security group (which the ESM's ENIs also use) "
        "admits nothing from itself, so the ENIs cannot open TCP 9098 to the brokers.",
        source_kind=MSK,
        auth_mode="iam",
        expected=_expected(
            "network", "no-sg-self-rule", "add-sg-self-rule", "connection-broker-unreachable", ports=[IAM_PORT]
        ),
        recipe=lambda b: _build_msk(b, _Spec(auth="iam", self_ports=())),
        notes=("Repair: authorize inbound TCP 9098 on the cluster SG from the same SG.",),
    )
)
_register(
    Scenario(
        name="wrong-port-self-rule",
        title="MSK IAM auth, but the self rule opens the TLS port 9094 only",
        description="The cluster uses IAM access control (port 9098) while the cluster SG's self rule opens 9094; "
        "Lambda never falls back to another listener.",
        source_kind=MSK,
        auth_mode="iam",
        expected=_expected(
            "network", "wrong-port-for-auth", "add-sg-self-rule", "connection-broker-unreachable", ports=[IAM_PORT]
        ),
        recipe=lambda b: _build_msk(b, _Spec(auth="iam", self_ports=(TLS_PORT,))),
        notes=("Repair: authorize inbound TCP 9098 on the cluster SG from the same SG.",),
    )
)
_register(
    Scenario(
        name="no-nat-no-endpoints",
        title="On-demand MSK ESM in private subnets with neither NAT nor VPC endpoints",
        description="Brokers are reachable, but the ESM's ENIs (in the cluster's private subnets) have no route to a "
        "NAT gateway and the VPC has no interface endpoints for STS and Lambda.",
        source_kind=MSK,
        auth_mode="iam",
        expected=_expected(
            "sts", "no-nat-or-endpoints", "create-vpc-endpoints", "connection-vpc-services", services=["sts", "lambda"]
        ),
        recipe=lambda b: _build_msk(b, _Spec(auth="iam", nat=False)),
        notes=("Repair: interface endpoints for sts and lambda (private DNS) admitting 443 from the cluster SG.",),
    )
)
_register(
    Scenario(
        name="missing-secretsmanager-endpoint",
        title="SCRAM ESM with sts + lambda endpoints but no Secrets Manager endpoint",
        description="The VPC has no NAT; interface endpoints exist for STS and Lambda, but the ESM also needs Secrets "
        "Manager to read its SASL/SCRAM secret.",
        source_kind=MSK,
        auth_mode="sasl-scram-512",
        expected=_expected(
            "sts", "no-nat-or-endpoints", "create-vpc-endpoints", "connection-vpc-services", services=["secretsmanager"]
        ),
        recipe=lambda b: _build_msk(b, _Spec(auth="scram", nat=False, endpoints=("sts", "lambda"))),
        notes=("Repair: an interface endpoint for secretsmanager only; sts and lambda already have one.",),
    )
)
_register(
    Scenario(
        name="healthy",
        title="A correctly configured MSK (IAM auth) ESM",
        description="NAT gateway, cluster SG self rule on 9098, execution role with the kafka-cluster actions.",
        source_kind=MSK,
        auth_mode="iam",
        expected=HEALTHY,
        recipe=lambda b: _build_msk(b, _Spec(auth="iam")),
    )
)
_register(
    Scenario(
        name="provisioned-mode",
        title="Provisioned-mode ESM in private subnets without NAT or endpoints",
        description="Everything else is right; provisioned mode needs neither NAT nor PrivateLink, so the ESM is "
        "healthy and a diagnosis must not blame the service path.",
        source_kind=MSK,
        auth_mode="iam",
        expected=HEALTHY,
        recipe=lambda b: _build_msk(b, _Spec(auth="iam", nat=False, provisioned=True)),
        notes=("A diagnosis that reports no-nat-or-endpoints here is wrong: the check does not apply.",),
    )
)
_register(
    Scenario(
        name="role-without-kafka-cluster",
        title="IAM-auth ESM whose role can connect but has no topic / group permissions",
        description="The role has the AWSLambdaMSKExecutionRole actions and kafka-cluster:Connect, but none of "
        "DescribeGroup, AlterGroup, DescribeTopic, ReadData, DescribeClusterDynamicConfiguration.",
        source_kind=MSK,
        auth_mode="iam",
        expected=_expected(
            "authz",
            "iam-missing-kafka-cluster",
            "grant-iam-permissions",
            "cluster-authorization-failed",
            actions=KAFKA_CLUSTER_ACTIONS[1:],
        ),
        recipe=lambda b: _build_msk(b, _Spec(auth="iam", kafka_actions=["kafka-cluster:Connect"])),
        notes=(
            "kafka-cluster:Connect is granted on purpose: without it a real ESM fails earlier, at SASL authentication "
            "(see role-without-connect).",
        ),
    )
)
_register(
    Scenario(
        name="role-without-connect",
        title="IAM-auth ESM whose role has only AWSLambdaMSKExecutionRole-like permissions",
        description="No kafka-cluster actions at all: the IAM SASL login itself is refused.",
        source_kind=MSK,
        auth_mode="iam",
        expected=_expected(
            "auth",
            "iam-missing-connect",
            "grant-iam-permissions",
            "sasl-authentication-failed",
            actions=KAFKA_CLUSTER_ACTIONS,
        ),
        recipe=lambda b: _build_msk(b, _Spec(auth="iam", kafka_actions=[])),
    )
)
_register(
    Scenario(
        name="malformed-secret",
        title="MSK SASL/SCRAM secret without a password",
        description="The AmazonMSK_ secret is associated with the cluster, but its JSON lacks the password key, so "
        "the SCRAM login fails.",
        source_kind=MSK,
        auth_mode="sasl-scram-512",
        expected=_expected("auth", "wrong-credentials", "ticket", "sasl-authentication-failed"),
        recipe=lambda b: _build_msk(b, _Spec(auth="scram", secret_value={"username": f"esm-{b.token}"})),
        notes=("Secret material is never changed automatically: a person must put the right JSON in the secret.",),
    )
)
_register(
    Scenario(
        name="vpc-dns-off",
        title="Endpoints with private DNS in a VPC whose DNS support / hostnames are off",
        description="Interface endpoints for STS and Lambda exist with private DNS, but enableDnsSupport and "
        "enableDnsHostnames are off, so their private names do not resolve; no NAT.",
        source_kind=MSK,
        auth_mode="iam",
        expected=_expected("sts", "vpc-dns-disabled", "enable-vpc-dns", "connection-vpc-services"),
        recipe=lambda b: _build_msk(b, _Spec(auth="iam", nat=False, endpoints=("sts", "lambda"), dns_off=True)),
    )
)
_register(
    Scenario(
        name="secret-access-denied",
        title="SCRAM ESM whose role may not read its secret",
        description="NAT and network are fine, but the execution role lacks secretsmanager:GetSecretValue and "
        "kms:Decrypt for the ESM's secret.",
        source_kind=MSK,
        auth_mode="sasl-scram-512",
        expected=_expected("secret", "missing-getsecretvalue", "grant-iam-permissions", "secret-access-denied"),
        recipe=lambda b: _build_msk(b, _Spec(auth="scram", secret_permissions=False)),
    )
)
_register(
    Scenario(
        name="mtls-secret-not-pem",
        title="mTLS ESM whose client certificate secret is not PEM",
        description="The CLIENT_CERTIFICATE_TLS_AUTH secret holds base64 DER instead of PEM text.",
        source_kind=MSK,
        auth_mode="mtls",
        expected=_expected("secret", "not-pem", "ticket", "certificate-not-pem"),
        recipe=lambda b: _build_msk(
            b, _Spec(auth="mtls", secret_value={"certificate": "MIIBsandboxDER==", "privateKey": "MIIEsandboxDER=="})
        ),
    )
)
_register(
    Scenario(
        name="role-trust-broken",
        title="Execution role that does not trust lambda.amazonaws.com",
        description="The role's trust policy names ec2.amazonaws.com instead of Lambda, so the ESM cannot assume it.",
        source_kind=MSK,
        auth_mode="iam",
        expected=_expected("role", "trust-policy", "ticket", "execution-role-assume-failed"),
        recipe=lambda b: _build_msk(
            b,
            _Spec(
                auth="iam",
                trust={
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
                    ],
                },
            ),
        ),
    )
)
_register(
    Scenario(
        name="self-managed-unresolvable-broker",
        title="Self-managed Kafka with a misspelt bootstrap domain",
        description="The bootstrap servers name 'exmaple.internal' while the brokers live under 'example.internal'; "
        "the names do not resolve from the ESM's VPC.",
        source_kind=SELF_MANAGED,
        auth_mode="sasl-scram-512",
        expected=_expected("dns", "typo", "ticket", "broker-endpoint-unresolvable"),
        recipe=lambda b: _build_self_managed(b, _SelfSpec(auth="scram", typo=True)),
        notes=("Bootstrap servers cannot be changed on an ESM: the fix is a new ESM (or a DNS record) by a person.",),
    )
)
_register(
    Scenario(
        name="self-managed-missing-sg-rule",
        title="Self-managed Kafka: the ESM security group lacks its self rule on the broker port",
        description="The ESM runs in the brokers' VPC with VPC_SUBNET / VPC_SECURITY_GROUP; the security group has no "
        "self-referencing inbound rule on 9096.",
        source_kind=SELF_MANAGED,
        auth_mode="sasl-scram-512",
        expected=_expected(
            "network", "no-sg-self-rule", "add-sg-self-rule", "connection-broker-unreachable", ports=[SCRAM_PORT]
        ),
        recipe=lambda b: _build_self_managed(b, _SelfSpec(auth="scram", self_ports=())),
    )
)


def names() -> list[str]:
    return list(SCENARIOS)


def get(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise KeyError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}") from None


def build(aws: Aws, name: str, *, prefix: str = "") -> ScenarioResult:
    return get(name).build(aws, prefix=prefix)


# ---------------------------------------------------------------------------------------------- fleet
@dataclass
class FleetResult:
    """A fleet of ESMs built by :func:`build_fleet`. Iterates / len() over the ESM UUIDs."""

    uuids: list[str]
    expected: dict[str, dict[str, Any]]  # uuid -> expected (as in Scenario.expected)
    broken: list[str]
    cluster_arns: list[str]
    function_names: list[str]
    resources: dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[str]:
        return iter(self.uuids)

    def __len__(self) -> int:
        return len(self.uuids)


def _settled(aws: Aws, uuid: str, timeout: float = 60.0) -> None:
    """Wait (bounded) until the ESM ``uuid`` has left its transitional state (the sandbox's delay)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = aws.call("lambda", "get_event_source_mapping", UUID=uuid).get("State")
        if state not in ("Creating", "Enabling", "Disabling", "Updating"):
            return
        time.sleep(0.1)


def build_fleet(
    aws: Aws,
    clusters: int = 10,
    esms: int = 1000,
    broken_ratio: float = 0.2,
    *,
    prefix: str = "fleet-",
    seed: int = 0,
) -> FleetResult:
    """Many ESMs on a few clusters, sharing a VPC (with NAT), roles and functions, as real fleets do.

    About ``broken_ratio`` of the ESMs are broken, half by network and half by IAM where the numbers allow:
    whole clusters lose their SG self rule (every ESM on them reports connection-broker-unreachable), and the
    rest of the broken ESMs use a function whose role can connect but lacks the topic / group actions
    (cluster-authorization-failed). ESMs are spread round-robin over the clusters, one topic each. The fleet is
    returned once its ESMs have left ``Creating`` (a fleet that has been running, not one being created).
    """
    if clusters < 1 or esms < 0 or not 0.0 <= broken_ratio <= 1.0:
        raise ValueError("clusters >= 1, esms >= 0 and 0 <= broken_ratio <= 1 are required")
    rng = random.Random(seed)
    b = AccountBuilder(aws, "fleet", prefix)
    net = b.network(nat=True)
    vpc_id, subnets = net["vpc_id"], net["subnet_ids"]
    per_cluster = max(1, esms // clusters)
    n_broken = round(esms * broken_ratio)
    # about half of the broken ESMs by network (whole clusters), the rest by IAM
    broken_clusters = min(clusters - 1, n_broken // per_cluster, int(n_broken / 2 / per_cluster + 0.5)) if esms else 0
    cluster_arns: list[str] = []
    sgs: list[str] = []
    for c in range(clusters):
        ports = () if c < broken_clusters else (IAM_PORT,)
        sg = b.security_group(vpc_id, f"msk-{c:02d}", self_ports=ports)
        sgs.append(sg)
        cluster_arns.append(b.msk_cluster(subnets, [sg], "iam"))
    base = f"arn:aws:kafka:{b.region}:{b.account}"
    all_kafka = {"cluster": f"{base}:cluster/*", "topics": f"{base}:topic/*", "groups": f"{base}:group/*"}
    _, good_role_arn = b.role([_exec_statement(), _kafka_statement(all_kafka)])
    b_bad = AccountBuilder(aws, "fleet-connect-only", prefix)
    _, bad_role_arn = b_bad.role([_exec_statement(), _kafka_statement(all_kafka, ["kafka-cluster:Connect"])])
    good_fns = [b.function(good_role_arn, f"fn-{c:02d}")[0] for c in range(clusters)]
    bad_fn = b_bad.function(bad_role_arn, "fn")[0]

    index_by_cluster: dict[int, list[int]] = {}
    for i in range(esms):
        index_by_cluster.setdefault(i % clusters, []).append(i)
    broken_network = {i for c in range(broken_clusters) for i in index_by_cluster.get(c, [])}
    healthy_pool = [i for i in range(esms) if i not in broken_network]
    rng.shuffle(healthy_pool)
    broken_authz = set(healthy_pool[: max(0, n_broken - len(broken_network))])

    uuids: list[str] = []
    expected: dict[str, dict[str, Any]] = {}
    broken: list[str] = []
    authz_expected = SCENARIOS["role-without-kafka-cluster"].expected
    network_expected = SCENARIOS["missing-sg-self-rule"].expected
    for i in range(esms):
        c = i % clusters
        fn = bad_fn if i in broken_authz else good_fns[c]
        uuid = b.esm(fn, f"topic-{i:05d}", EventSourceArn=cluster_arns[c])
        uuids.append(uuid)
        if i in broken_network:
            expected[uuid] = network_expected
            broken.append(uuid)
        elif i in broken_authz:
            expected[uuid] = authz_expected
            broken.append(uuid)
        else:
            expected[uuid] = HEALTHY
    if uuids:
        _settled(aws, uuids[-1])
    return FleetResult(
        uuids=uuids,
        expected=expected,
        broken=broken,
        cluster_arns=cluster_arns,
        function_names=[*good_fns, bad_fn],
        resources={**net, "security_group_ids": sgs, "broken_clusters": cluster_arns[:broken_clusters]},
    )


# ---------------------------------------------------------------------------------------------- CLI hooks


# ---------------------------------------------------------------------------------------------- CLI hooks
def cli_register(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``esm-medic sandbox scenario``."""
    from esm_medic_sandbox import scenario_cli

    scenario_cli.cli_register(parser)


def cli_run(args: argparse.Namespace) -> int:
    from esm_medic_sandbox import scenario_cli

    return scenario_cli.cli_run(args)
