"""Checks about the ESM itself and its event source: esm-mode, cluster-state, broker-dns."""

from __future__ import annotations

from typing import Any

from esm_medic.diagnose.checks import check, finding, skip, unknown
from esm_medic.diagnose.context import Context
from esm_medic.diagnose.netpath import is_ip
from esm_medic.esm import (
    IAM,
    MSK,
    MTLS,
    PLAINTEXT,
    SASL_PLAIN,
    SASL_SCRAM_256,
    SASL_SCRAM_512,
    TLS,
    msk_client_authentication,
)
from esm_medic.models import CheckStatus, Finding
from esm_medic.steps import Step

_BUSY_STATES = frozenset({"CREATING", "UPDATING", "MAINTENANCE", "REBOOTING_BROKER", "HEALING"})
_BROKEN_STATES = frozenset({"FAILED", "DELETING"})
_MODE_METHOD = {
    MTLS: "mtls",
    SASL_SCRAM_512: "scram",
    SASL_SCRAM_256: "scram",
    SASL_PLAIN: "scram",
    IAM: "iam",
    TLS: "tls",
    PLAINTEXT: "plaintext",
}


@check("esm-mode", Step.CONFIG, "On-demand or provisioned mode")
def esm_mode(ctx: Context) -> Finding:
    esm = ctx.esm
    mode = "provisioned" if esm.provisioned else "on-demand"
    ident = ctx.identity
    evidence: dict[str, Any] = {
        "mode": mode,
        "source_kind": esm.source_kind,
        "network_source": ident.source,
        "auth_mode": ident.mode,
        "broker_ports": list(ident.ports),
    }
    ppc = esm.raw.get("ProvisionedPollerConfig")
    if isinstance(ppc, dict) and ppc:
        evidence["provisioned_poller_config"] = {k: v for k, v in ppc.items() if k != "ResponseMetadata"}
    if esm.provisioned:
        summary = "provisioned mode: Lambda needs no NAT gateway or PrivateLink endpoints for STS / Lambda"
    elif ident.in_vpc:
        summary = "on-demand mode: the ENI subnets need a NAT route or interface endpoints for STS and Lambda"
        summary += " (and Secrets Manager)" if esm.secrets else ""
    else:
        summary = "on-demand mode, no VPC configuration (internet path)"
    entry = ctx.entry
    if entry is not None and entry.applies_modes and mode not in entry.applies_modes:
        evidence["entry_modes"] = list(entry.applies_modes)
        return finding(
            "esm-mode",
            CheckStatus.WARN,
            f"{summary}; but '{entry.id}' is only expected in {'/'.join(entry.applies_modes)} mode: the status "
            "text may predate a mode change",
            evidence=evidence,
        )
    return finding("esm-mode", CheckStatus.PASS, summary, evidence=evidence)


@check("cluster-state", Step.NETWORK, "MSK cluster state and enabled auth methods")
def cluster_state(ctx: Context) -> Finding:
    esm = ctx.esm
    if esm.source_kind != MSK:
        return skip("cluster-state", "not an MSK event source")
    got = ctx.cluster
    if got is None:
        return skip("cluster-state", "no cluster ARN")
    if got.not_found:
        return finding(
            "cluster-state",
            CheckStatus.FAIL,
            f"the MSK cluster {esm.cluster_arn} does not exist",
            step=Step.DNS,
            evidence={"cluster_arn": esm.cluster_arn},
            causes=["cluster-unhealthy"],
            fix="ticket",
            fix_params={"reason": "the ESM's MSK cluster was deleted; recreate the ESM on an existing cluster"},
        )
    if not got.ok or got.value is None:
        return unknown("cluster-state", got, "the MSK cluster")
    info = got.value
    state = str(info.get("State") or "")
    offered = msk_client_authentication(info)
    mode = ctx.identity.mode
    evidence = {
        "cluster_arn": esm.cluster_arn,
        "cluster_name": info.get("ClusterName"),
        "cluster_type": info.get("ClusterType") or ("SERVERLESS" if "Serverless" in info else "PROVISIONED"),
        "state": state,
        "client_authentication": offered,
        "auth_mode": mode,
        "broker_ports": list(ctx.identity.ports),
    }
    need = _MODE_METHOD.get(mode, "iam")
    if not offered.get(need):
        enabled = [k for k, v in offered.items() if v]
        return finding(
            "cluster-state",
            CheckStatus.FAIL,
            f"the ESM connects with {mode} but the cluster does not enable it "
            f"(enabled: {', '.join(enabled) or 'none'}); Lambda never falls back to another auth mode",
            evidence=evidence,
            causes=["wrong-port-for-auth"],
            fix="ticket",
            fix_params={"reason": f"the ESM's auth mode {mode} is not enabled on the cluster"},
        )
    if state in _BROKEN_STATES:
        return finding(
            "cluster-state",
            CheckStatus.FAIL,
            f"the cluster is {state}",
            evidence=evidence,
            causes=["cluster-unhealthy", "cluster-overloaded"],
            fix="ticket",
            fix_params={"reason": f"the MSK cluster is {state}"},
        )
    if state != "ACTIVE":
        return finding(
            "cluster-state",
            CheckStatus.WARN,
            f"the cluster is {state or 'in an unknown state'} (not ACTIVE)",
            evidence=evidence,
            causes=["cluster-unhealthy", "cluster-overloaded"] if state in _BUSY_STATES else [],
        )
    return finding("cluster-state", CheckStatus.PASS, f"cluster ACTIVE and it enables {mode}", evidence=evidence)


def _zone_answer(ctx: Context, h: str, zones: list[tuple[str, str]], row: dict[str, Any]) -> bool | None:
    """True / False when a private zone of the VPC answers for ``h`` (proof); None when none does or unreadable."""
    zone = next((z for z in zones if h == z[0] or h.endswith("." + z[0])), None)
    if zone is None:
        return None
    names = ctx.lookups.zone_names(zone[1])
    if not names.ok:
        row["note"] = f"records of private zone {zone[0]} not read: {names.describe()}"
        return None
    labels = h.split(".")
    wild = {"*." + ".".join(labels[i:]) for i in range(1, len(labels))}
    found = h in (names.value or ()) or bool(wild & set(names.value or ()))
    row.update(private_zone=zone[0], found=found)
    return found


@check("broker-dns", Step.DNS, "Bootstrap broker names resolve where the ESM resolves them")
def broker_dns(ctx: Context) -> Finding:
    """Read where the ESM resolves: the VPC's DNS attribute, its Route 53 Resolver rules (a FORWARD rule for the
    broker domain: resolved elsewhere, unknown) and its private hosted zones (proof). Resolution from where
    esm-medic runs is a heuristic only."""
    esm = ctx.esm
    if esm.source_kind == MSK:
        return skip("broker-dns", "MSK broker names are managed by AWS and resolve in the cluster's VPC")
    hosts = esm.broker_hosts
    if not hosts:
        return finding(
            "broker-dns",
            CheckStatus.FAIL,
            "the ESM has no KAFKA_BOOTSTRAP_SERVERS",
            evidence={},
            causes=["wrong-bootstrap-servers", "typo"],
            fix="ticket",
            fix_params={"reason": "the ESM has no bootstrap servers"},
        )
    results: list[dict[str, Any]] = []
    proof_nx: list[str] = []
    outside_nx: list[str] = []
    soft: list[str] = []
    forwarded: list[str] = []
    zones: list[tuple[str, str]] = []
    rules: list[tuple[str, str, str]] = []
    notes: list[str] = []
    ident = ctx.identity
    in_vpc = ident.in_vpc and bool(ident.vpc_id)
    if in_vpc:
        got = ctx.lookups.private_zones(ident.vpc_id, ctx.region)
        if got.ok:
            zones = sorted(got.value or [], key=lambda z: -len(z[0]))  # the most specific zone answers
        else:
            notes.append(f"private hosted zones not checked: {got.describe()}")
        rr = ctx.lookups.resolver_rules(ident.vpc_id)
        if rr.ok:
            rules = sorted((r for r in rr.value or [] if r[1] == "FORWARD"), key=lambda r: -len(r[0]))
        else:
            notes.append(f"Route 53 Resolver rules not checked: {rr.describe()}")
    for host, port in hosts:
        row: dict[str, Any] = {"host": host, "port": port}
        results.append(row)
        if is_ip(host):
            row.update(addresses=[host], literal=True)
            continue
        h = host.lower().rstrip(".")
        rule = next((r for r in rules if h == r[0] or h.endswith("." + r[0])), None)
        if rule is not None:
            row.update(resolver_rule=rule[2], forwarded_domain=rule[0])
            forwarded.append(host)
            continue
        found = _zone_answer(ctx, h, zones, row)
        if found is not None:
            if not found:
                row["error"] = "nxdomain"
                proof_nx.append(host)
            continue
        if row.get("note"):
            notes.append(str(row.pop("note")))
        ans = ctx.lookups.resolve(host)
        row["resolved_from"] = "outside the VPC"
        if ans.ok:
            row["addresses"] = list(ans.addresses)
        else:
            row["error"] = ans.error
            row["detail"] = ans.detail[:200]
            (outside_nx if ans.error == "nxdomain" else soft).append(host)
    evidence: dict[str, Any] = {
        "brokers": results,
        "resolved_from": "the VPC's Resolver rules and private zones (proof), else DNS from where esm-medic runs "
        "(a heuristic: the ESM resolves inside its VPC)",
    }
    if notes:
        evidence["notes"] = notes
    nx = proof_nx + outside_nx
    if nx:
        return finding(
            "broker-dns",
            CheckStatus.FAIL,
            f"no DNS record for {', '.join(nx)} (NXDOMAIN"
            + (")" if proof_nx else ", seen from outside the ESM's VPC)"),
            evidence=evidence,
            causes=["typo", "private-zone", "wrong-bootstrap-servers"],
            fix="ticket",
            fix_params={"reason": f"bootstrap server names do not resolve: {', '.join(nx)}"},
            strength="proof" if proof_nx else "heuristic",
        )
    if in_vpc:
        dns = ctx.lookups.vpc_dns(ident.vpc_id)
        if dns.ok and dns.value is not None and not dns.value.get("enableDnsSupport"):
            evidence["enableDnsSupport"] = False
    if forwarded:
        return finding(
            "broker-dns",
            CheckStatus.UNKNOWN,
            f"{', '.join(forwarded)} resolved elsewhere: a Route 53 Resolver FORWARD rule sends the domain to other "
            "DNS servers, which esm-medic cannot ask",
            evidence=evidence,
            strength="heuristic",
        )
    if soft:
        return finding(
            "broker-dns",
            CheckStatus.WARN,
            f"could not resolve {', '.join(soft)} from here (timeout / resolver error); this is evidence, not proof",
            evidence=evidence,
            strength="heuristic",
        )
    return finding("broker-dns", CheckStatus.PASS, f"{len(hosts)} bootstrap server name(s) resolve", evidence=evidence)
