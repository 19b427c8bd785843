"""Reads about name resolution where the ESM resolves: the VPC's Route 53 private zones and their records, the
Route 53 Resolver rules associated with the VPC, and (a heuristic only) resolution from where esm-medic runs
(a mixin of :class:`~esm_medic.diagnose.lookups.Lookups`)."""

from __future__ import annotations

import socket
from typing import Any

from esm_medic.diagnose.readcore import DnsAnswer, Fetched, ReadCore


class DnsReads(ReadCore):
    # ------------------------------------------------------------------ dns
    def private_zones(self, vpc_id: str, region: str) -> Fetched[list[tuple[str, str]]]:
        """(zone name without the trailing dot, zone id) of the Route 53 private zones associated with a VPC."""

        def fetch() -> Fetched[list[tuple[str, str]]]:
            def read() -> list[tuple[str, str]]:
                zones = self._pages(
                    "route53", "list_hosted_zones_by_vpc", "HostedZoneSummaries", VPCId=vpc_id, VPCRegion=region
                )
                return [
                    (str(z.get("Name") or "").lower().rstrip("."), str(z.get("HostedZoneId") or "").rsplit("/", 1)[-1])
                    for z in zones
                ]

            return self._read("route53", "list_hosted_zones_by_vpc", read)

        return self._memo("zones", (vpc_id, region), fetch)

    def zone_names(self, zone_id: str) -> Fetched[frozenset[str]]:
        """Names with an A / AAAA / CNAME / ALIAS record in a hosted zone (``*`` for wildcard records)."""

        def fetch() -> Fetched[frozenset[str]]:
            def read() -> frozenset[str]:
                names: set[str] = set()
                params: dict[str, Any] = {"HostedZoneId": zone_id}
                for _ in range(1000):  # pages of 300 records; a guard, not a limit anyone reaches
                    page = self._call("route53", "list_resource_record_sets", **params)
                    for rr in page.get("ResourceRecordSets") or []:
                        if rr.get("Type") in ("A", "AAAA", "CNAME"):
                            names.add(str(rr.get("Name") or "").lower().rstrip(".").replace("\\052", "*"))
                    if not page.get("IsTruncated"):
                        break
                    params = {
                        "HostedZoneId": zone_id,
                        "StartRecordName": page.get("NextRecordName"),
                        "StartRecordType": page.get("NextRecordType"),
                    }
                return frozenset(names)

            return self._read("route53", "list_resource_record_sets", read)

        return self._memo("zone-records", (zone_id,), fetch)

    def resolver_rules(self, vpc_id: str) -> Fetched[list[tuple[str, str, str]]]:
        """(domain without the trailing dot, rule type FORWARD | SYSTEM | RECURSIVE, rule id) of the Route 53
        Resolver rules associated with a VPC: a FORWARD rule sends the domain's queries elsewhere (on-premises
        DNS, another VPC), which esm-medic cannot ask."""

        def fetch() -> Fetched[list[tuple[str, str, str]]]:
            def read() -> list[tuple[str, str, str]]:
                assocs = self._pages(
                    "route53resolver",
                    "list_resolver_rule_associations",
                    "ResolverRuleAssociations",
                    Filters=[{"Name": "VPCId", "Values": [vpc_id]}],
                )
                ids = {str(a.get("ResolverRuleId") or "") for a in assocs if a.get("Status") != "DELETING"}
                if not ids:
                    return []
                rules = self._pages("route53resolver", "list_resolver_rules", "ResolverRules")
                return [
                    (
                        str(r.get("DomainName") or "").lower().rstrip("."),
                        str(r.get("RuleType") or ""),
                        str(r.get("Id") or ""),
                    )
                    for r in rules
                    if r.get("Id") in ids
                ]

            return self._read("route53resolver", "list_resolver_rule_associations", read)

        return self._memo("resolver-rules", (vpc_id,), fetch)

    def resolve(self, host: str) -> DnsAnswer:
        h = host.strip().rstrip(".").lower()

        def fetch() -> DnsAnswer:
            try:
                addrs = tuple(str(a) for a in self.resolver(h))
            except socket.gaierror as exc:
                nx = exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME))
                return DnsAnswer(h, (), "nxdomain" if nx else "error", str(exc))
            except TimeoutError as exc:
                return DnsAnswer(h, (), "timeout", str(exc))
            except Exception as exc:
                return DnsAnswer(h, (), "error", f"{type(exc).__name__}: {exc}")
            return DnsAnswer(h, addrs, "" if addrs else "nxdomain", "" if addrs else "no addresses")

        return self._memo("dns", (h,), fetch)


__all__ = ["DnsReads"]
