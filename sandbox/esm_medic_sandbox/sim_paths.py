"""Two links of the simulated set-up chain: the path from the ESM's ENIs to STS / Lambda / Secrets Manager
(NAT gateway or interface endpoints) and the secret (exists, readable by the role, KMS, format)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from esm_medic_sandbox.sim_checks import (
    AUTHZ_ERROR,
    HTTPS,
    PUBLIC_SERVICE_IP,
    Decision,
    _Fail,
    _nacl_flow,
    _net,
    pem_problem,
    sg_allows,
)
from esm_medic_sandbox.sim_model import EsmView
from esm_medic_sandbox.sim_reader import _Reader

_SASL_TYPES = ("SASL_SCRAM_512_AUTH", "SASL_SCRAM_256_AUTH", "BASIC_AUTH")
_AWS_MANAGED_SECRET_KEY = "alias/aws/secretsmanager"


def _service_name(region: str, service: str) -> str:
    return f"com.amazonaws.{region}.{service}"


class _PathChecks:
    """Mixed into the walk (:class:`esm_medic_sandbox.sim_walk._Walk`), which provides these attributes."""

    esm: EsmView
    r: _Reader
    region: str
    account: str
    role_arn: str
    role_name: str
    decisions: list[Decision]
    secret_type: str
    secret_value: dict[str, Any] | None

    def note(self, step: str, check: str, ok: bool | None, detail: str, **evidence: Any) -> None:
        raise NotImplementedError

    def fail(self, step: str, check: str, cause: str, message_key: str, detail: str, **evidence: Any) -> _Fail:
        raise NotImplementedError

    def step_service_path(self, ident: Any) -> None:
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

    def _nat_path(self, ident: Any, sid: str) -> tuple[str, str]:
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
        ident: Any,
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
