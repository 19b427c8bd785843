"""The walk: one ESM's set-up chain (role -> network identity -> service path -> secret -> DNS -> broker path ->
TLS -> auth -> authz) checked against the sandbox account, ending in the status a real ESM would show."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from esm_medic_sandbox import sim_model as m
from esm_medic_sandbox import sim_state
from esm_medic_sandbox.sim_checks import (
    MESSAGES,
    USER_INITIATED,
    Decision,
    Trace,
    _Fail,
    _nacl_flow,
    _net,
    _same_secret,
    iam_resource_arns,
    resolves,
    sg_allows,
    trust_problem,
)
from esm_medic_sandbox.sim_paths import _PathChecks
from esm_medic_sandbox.sim_reader import _reader


@dataclass
class _Identity:
    source: str  # cluster | esm | internet
    vpc_id: str = ""
    subnets: dict[str, dict[str, Any]] = field(default_factory=dict)
    security_groups: dict[str, dict[str, Any]] = field(default_factory=dict)


def _join(items: Any) -> str:
    """A readable list for decision texts: ``a, b`` (never a Python repr)."""
    return ", ".join(str(i) for i in items) or "none"


def _account_region(esm: m.EsmView) -> tuple[str, str]:
    return esm.account or "123456789012", esm.region or "us-east-1"


class _Walk(_PathChecks):
    def __init__(self, item: Mapping[str, Any]) -> None:
        self.item = item
        self.esm = m.EsmView.parse(item)
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
        if esm.kind == m.KIND_MSK:
            cluster = self.r.cluster(esm.cluster_arn)
            if cluster is None:
                self.note("dns", "cluster-exists", False, f"MSK cluster {esm.cluster_arn} does not exist")
                raise _Fail("dns", "cluster-missing", MESSAGES["brokers"])
            self.cluster = cluster
            subnet_ids, sg_ids = m.cluster_network(cluster)
            if not sg_ids and m.is_serverless(cluster) and subnet_ids:
                # MSK Serverless without security groups puts its endpoints in the VPC's default group
                sg_ids = self.r.default_security_groups(subnet_ids)
            source = "cluster"
        elif esm.subnets or esm.security_groups:
            subnet_ids, sg_ids = esm.subnets, esm.security_groups
            source = "esm"
        else:
            self.note("network", "network-identity", True, "self-managed ESM without VPC config: internet path")
            self.mode = m.broker_type(esm, None)
            return _Identity("internet")
        subnets = self.r.subnets(subnet_ids)
        sgs = self.r.security_groups(sg_ids)
        missing = [s for s in subnet_ids if s not in subnets] + [g for g in sg_ids if g not in sgs]
        if missing or not subnets or not sgs:
            self.note(
                "network",
                "network-identity",
                False,
                f"subnets / security groups missing: {_join(missing)}",
                subnets=list(subnet_ids),
                security_groups=list(sg_ids),
            )
            raise _Fail("network", "network-identity-missing", MESSAGES["brokers"])
        vpcs = {s.get("VpcId") for s in subnets.values()}
        vpc_id = str(next(iter(vpcs)))
        self.mode = m.broker_type(esm, self.cluster)
        self.note(
            "network",
            "network-identity",
            True,
            f"ENIs in {len(subnets)} subnet(s) of {vpc_id} with {_join(sorted(sgs))} ({source})",
            source=source,
            vpc_id=vpc_id,
            subnets=sorted(subnets),
            security_groups=sorted(sgs),
            auth_mode=self.mode,
        )
        return _Identity(source, vpc_id, subnets, sgs)

    def step_dns(self, ident: _Identity) -> None:
        esm = self.esm
        if esm.kind == m.KIND_MSK:
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
        unresolved = [h for h, _ in esm.brokers if not resolves(h, zone_names)]
        if unresolved or not esm.brokers:
            raise self.fail(
                "dns", "broker-dns", "typo", "dns", f"unresolvable broker names: {_join(unresolved)}", hosts=unresolved
            )
        self.note("dns", "broker-dns", True, f"{len(esm.brokers)} broker name(s) resolve")

    def step_network(self, ident: _Identity) -> None:
        esm = self.esm
        if ident.source == "internet":
            self.note("network", "broker-path", None, "internet path: no VPC rules to check")
            return
        mode = self.mode
        if esm.kind == m.KIND_MSK:
            cluster = self.cluster or {}
            if not m.listener_offered(mode, cluster):
                raise self.fail(
                    "network",
                    "auth-mode-offered",
                    "wrong-port-for-auth",
                    "brokers",
                    f"the ESM uses {mode} but the cluster does not enable it (no listener on its port)",
                    auth_mode=mode,
                    cluster_auth=m.listeners(cluster),
                )
            ports = m.target_ports(esm, mode, self.cluster)
        else:
            ports = m.target_ports(esm, mode)
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
                    f"no inbound TCP {port} from {_join(sorted(sg_ids))} on the broker SGs"
                    + (f" (self rules only open {_join(other)})" if other else ""),
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
            f"TCP {_join(ports)} open between the ENIs and the brokers",
            ports=list(ports),
            auth_mode=mode,
        )

    def step_tls(self) -> None:
        # A listener for the auth mode exists (network step); certificate trust is not modelled further.
        self.note(
            "tls",
            "tls",
            True if self.mode in m.ENCRYPTED_MODES else None,
            f"TLS handshake for {self.mode}",
        )

    def step_auth(self) -> None:
        esm = self.esm
        mode = self.mode
        if mode in m.SASL_MODES:
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
            if esm.kind == m.KIND_MSK:
                associated = self.r.scram_secrets(esm.cluster_arn)
                if associated is not None and any(_same_secret(secret_arn, a) for a in associated):
                    self.note("auth", "sasl", True, "secret associated with the cluster")
                    return
            known = sim_state.scram_users().get(user)
            if known is None:
                known = self.r.kafka_user_password(user)
            if known == password:
                self.note("auth", "sasl", True, f"broker knows {user} with this password")
                return
            cause = "scram-secret-not-associated" if esm.kind == m.KIND_MSK and known is None else "wrong-credentials"
            raise self.fail("auth", "sasl", cause, "sasl", f"the brokers reject {user}: unknown user or wrong password")
        if mode == m.MODE_IAM:
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
        if self.mode != m.MODE_IAM or esm.kind != m.KIND_MSK:
            self.note("authz", "authz", None, "Kafka ACLs are not modelled in the sandbox (assumed to allow)")
            return
        arns = iam_resource_arns(esm, self.cluster or {})
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
