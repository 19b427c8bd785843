"""The hand-built account classes of the evidence-driven diagnosis, judged by the sandbox simulator:

- the ESM says "Connection error" (it resolved its brokers), the names do not resolve from where esm-medic runs,
  and the self rule is missing -> the self-rule fix, the DNS finding demoted to a note;
- the ESM says "Cannot resolve..." in a VPC whose DNS support is off -> enable-vpc-dns first;
- the cluster SG's egress fully revoked -> one plan with the self-rule fix and a ticket for outbound 443.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Sequence

from esm_medic_sandbox import combos, scenarios, simulator

from esm_medic.diagnose import diagnose


def nxdomain_here(host: str) -> Sequence[str]:
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


def _drop_private_zone(aws, r) -> None:
    """The brokers resolve for the ESM (the sandbox DNS stands for the VPC's resolver) but not from esm-medic."""
    zone = r.resources["hosted_zone_id"]
    records = aws.call("route53", "list_resource_record_sets", HostedZoneId=zone)["ResourceRecordSets"]
    changes = [{"Action": "DELETE", "ResourceRecordSet": rr} for rr in records if rr["Type"] == "A"]
    aws.call("route53", "change_resource_record_sets", HostedZoneId=zone, ChangeBatch={"Changes": changes})
    aws.call("route53", "delete_hosted_zone", Id=zone)
    for i, host in enumerate(r.resources["broker_hosts"]):
        simulator.register_dns(host, f"10.40.{i + 1}.50")
    simulator.invalidate()


def test_connection_error_with_nxdomain_from_outside_gets_the_self_rule_fix(sim_aws):
    r = scenarios.build(sim_aws, "self-managed-missing-sg-rule", prefix="cls1-")
    _drop_private_zone(sim_aws, r)
    d = diagnose(sim_aws, r.uuid, resolver=nxdomain_here)
    assert d.esm["last_processing_result"].startswith("PROBLEM: Connection error.")
    dns = next(f for f in d.findings if f.check == "broker-dns")
    assert dns.strength == "heuristic" and str(dns.status) == "warn" and "contradicted" in dns.evidence
    assert (d.root_cause.id, d.root_cause.fix) == ("no-sg-self-rule", "add-sg-self-rule")
    assert d.plan[0].fix == "add-sg-self-rule"
    out = json.loads(json.dumps(d.to_dict()))
    assert out["root_cause"]["fix"] == "add-sg-self-rule" and out["hypotheses"] and out["plan"]
    assert "cluster security group" not in d.root_cause.summary


def test_cannot_resolve_with_vpc_dns_off_fixes_vpc_dns_first(sim_aws):
    r = scenarios.build(sim_aws, "self-managed-missing-sg-rule", prefix="cls2-")
    sim_aws.call("ec2", "modify_vpc_attribute", VpcId=r.vpc_id, EnableDnsSupport={"Value": False})
    simulator.invalidate()
    d = diagnose(sim_aws, r.uuid, resolver=nxdomain_here)
    assert d.classification["entry"] == "broker-endpoint-unresolvable"
    assert (d.root_cause.id, d.root_cause.fix) == ("vpc-dns-disabled", "enable-vpc-dns")
    assert d.hypotheses[0].id == "vpc-dns-disabled"
    fixes = [p.fix for p in d.plan]
    assert "enable-vpc-dns" in fixes and "add-sg-self-rule" in fixes  # the latent self rule is in the same plan


def test_egress_fully_revoked_gives_a_plan_with_both_parts(sim_aws):
    combo = combos.build(sim_aws, ("egress-revoked",), prefix="cls3-")
    d = diagnose(sim_aws, combo.result.uuid, resolver=nxdomain_here)
    parts = [(p.fix, p.ticket_only) for p in d.plan]
    assert parts == [("add-sg-self-rule", False), ("ticket", True)], parts
    assert d.plan[0].fix_params["directions"] == ["egress"]
    assert "no-egress-443" in d.plan[1].hypotheses
    from esm_medic.models import Diagnosis

    doc = json.loads(json.dumps(d.to_dict()))  # what a workflow step receives
    assert Diagnosis.from_dict(doc).to_dict() == doc


def test_fix_apply_runs_the_whole_plan_with_one_confirmation(sim_aws, monkeypatch, capsys):
    from esm_medic.cli.main import main
    from esm_medic.tables import create_tables

    monkeypatch.setenv("ESM_MEDIC_AUDIT_TABLE", "esm-medic-audit-cls4")
    monkeypatch.setenv("ESM_MEDIC_STATE_TABLE", "esm-medic-state-cls4")
    create_tables(sim_aws)
    combo = combos.build(sim_aws, ("egress-revoked",), prefix="cls4-")
    sg = combo.result.security_group_ids[0]
    code = main(["fix", combo.result.uuid, "--apply", "--yes", "--mode", "approve", "--no-restart"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "one diff for the whole plan" in out and "plan partial" in out and "no-egress-443" in out
    egress = sim_aws.call("ec2", "describe_security_groups", GroupIds=[sg])["SecurityGroups"][0]["IpPermissionsEgress"]
    assert any(p.get("FromPort") == 9098 and p.get("UserIdGroupPairs") for p in egress)
    assert combos.status(sim_aws, combo.result.uuid)["cause"] == "no-egress-443"  # the ticket-only part remains
