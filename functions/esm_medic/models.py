"""Result types shared by diagnosis, remediation, the workflow and the CLI. Plain dataclasses, JSON-able."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any

#: Fix ids a diagnosis may name. Each one except ``ticket`` is a registered remediation action.
FIX_IDS = ("add-sg-self-rule", "create-vpc-endpoints", "grant-iam-permissions", "enable-vpc-dns", "ticket")


def _known(cls: Any, d: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of ``d`` that are fields of dataclass ``cls`` (newer or older JSON still loads)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}


class CheckStatus(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    WARN = "warn"
    UNKNOWN = "unknown"  # could not be decided (AccessDenied, API missing, ...): evidence says why
    SKIP = "skip"  # does not apply to this ESM (e.g. NAT check for a provisioned-mode ESM)


@dataclass
class Finding:
    """One read-only check's verdict, with the evidence that supports it."""

    check: str
    status: CheckStatus
    summary: str
    step: str = "unknown"
    evidence: dict[str, Any] = field(default_factory=dict)
    fix: str | None = None  # fix id that would turn a FAIL into a PASS
    fix_params: dict[str, Any] = field(default_factory=dict)
    missing_permission: str | None = None  # set when status is UNKNOWN because a read was denied
    #: "proof" (read from API state: SG rules, a VPC attribute, a policy simulated with exact ARNs) or
    #: "heuristic" (resolution from outside the ESM's VPC, a denied read, a conditional policy)
    strength: str = "proof"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = str(self.status)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Finding:
        return cls(**{**_known(cls, d), "status": CheckStatus(str(d.get("status") or "unknown"))})


@dataclass
class RootCause:
    id: str
    summary: str
    step: str
    fix: str  # one of FIX_IDS
    fix_params: dict[str, Any] = field(default_factory=dict)
    confidence: float = 0.0
    evidence: list[str] = field(default_factory=list)  # names of the checks that support it
    notes: list[str] = field(default_factory=list)  # step disagreements, latent problems, other failed checks

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Hypothesis:
    """One candidate root cause, ranked: what supports it, how strongly, and the fix it calls for."""

    id: str
    step: str
    score: float
    summary: str
    fix: str
    fix_params: dict[str, Any] = field(default_factory=dict)
    safety: str = "manual"  # the catalogue's safety class of the fix: auto | approve | manual
    strength: str = "proof"  # the strongest evidence behind it
    evidence: list[str] = field(default_factory=list)  # names of the supporting checks
    masked_by: list[str] = field(default_factory=list)  # hypotheses that hide this one until they are fixed
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PlanItem:
    """One independent fix of an ordered plan; ``ticket`` items are the parts only a person can do."""

    order: int
    fix: str
    fix_params: dict[str, Any]
    hypotheses: list[str]
    safety: str
    summary: str
    ticket_only: bool = False
    after: list[str] = field(default_factory=list)  # hypotheses to re-check once the earlier items are applied

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class NetworkIdentity:
    """Where the ESM's ENIs really live: the MSK cluster's subnets and SGs, or the ESM's own VPC config."""

    source: str  # "cluster" | "esm" | "internet"
    vpc_id: str = ""
    subnets: list[str] = field(default_factory=list)
    security_groups: list[str] = field(default_factory=list)
    auth_mode: str = ""
    ports: list[int] = field(default_factory=list)
    provisioned: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Diagnosis:
    uuid: str
    state: str
    step: str
    classification: dict[str, Any]
    root_cause: RootCause
    findings: list[Finding] = field(default_factory=list)
    network: NetworkIdentity | None = None
    esm: dict[str, Any] = field(default_factory=dict)
    api_calls: int = 0
    hypotheses: list[Hypothesis] = field(default_factory=list)
    plan: list[PlanItem] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return self.step == "none"

    def to_dict(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "state": self.state,
            "step": self.step,
            "healthy": self.healthy,
            "classification": self.classification,
            "root_cause": self.root_cause.to_dict(),
            "findings": [f.to_dict() for f in self.findings],
            "network": self.network.to_dict() if self.network else None,
            "esm": self.esm,
            "api_calls": self.api_calls,
            "hypotheses": [h.to_dict() for h in self.hypotheses],
            "plan": [p.to_dict() for p in self.plan],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Diagnosis:
        """The inverse of :meth:`to_dict` (a workflow step receives the diagnosis as JSON)."""
        net = d.get("network")
        return cls(
            uuid=str(d.get("uuid") or ""),
            state=str(d.get("state") or ""),
            step=str(d.get("step") or ""),
            classification=dict(d.get("classification") or {}),
            root_cause=RootCause(**_known(RootCause, d.get("root_cause") or {})),
            findings=[Finding.from_dict(f) for f in d.get("findings") or []],
            network=NetworkIdentity(**_known(NetworkIdentity, net)) if isinstance(net, Mapping) else None,
            esm=dict(d.get("esm") or {}),
            api_calls=int(d.get("api_calls") or 0),
            hypotheses=[Hypothesis(**_known(Hypothesis, h)) for h in d.get("hypotheses") or []],
            plan=[PlanItem(**_known(PlanItem, p)) for p in d.get("plan") or []],
        )
