"""The ESM set-up steps, in the order the ESM performs them.

Every catalogue entry and every diagnosis names exactly one of these steps. The names are part of the
public contract (JSON output, tests, the state machine), so they never change.
"""

from __future__ import annotations

from enum import StrEnum


class Step(StrEnum):
    ROLE = "role"  # assume the function's execution role
    STS = "sts"  # reach STS / Lambda / Secrets Manager from the ESM ENIs (NAT or PrivateLink)
    SECRET = "secret"  # read the Secrets Manager secret, KMS decrypt, parse it
    DNS = "dns"  # resolve the broker names (self-managed) / fetch the MSK cluster's network config
    NETWORK = "network"  # TCP from the ESM ENIs to the brokers: SGs, ports, NACLs, ENIs
    TLS = "tls"  # TLS handshake, certificate verification both ways
    AUTH = "auth"  # SASL/SCRAM, SASL/PLAIN or IAM authentication
    AUTHZ = "authz"  # cluster, topic and consumer-group authorization
    TOPIC = "topic"  # topic metadata, topic existence
    INVOKE = "invoke"  # invoking the function
    CONFIG = "config"  # invalid ESM or function configuration
    SERVICE = "service"  # Lambda-side failure
    NONE = "none"  # healthy
    UNKNOWN = "unknown"  # not recognised


#: The order the ESM runs its set-up in; a failure at one step means every earlier step worked.
SETUP_ORDER: tuple[Step, ...] = (
    Step.ROLE,
    Step.STS,
    Step.SECRET,
    Step.DNS,
    Step.NETWORK,
    Step.TLS,
    Step.AUTH,
    Step.AUTHZ,
    Step.TOPIC,
    Step.INVOKE,
)

STEP_TITLES: dict[Step, str] = {
    Step.ROLE: "Assume the execution role",
    Step.STS: "Reach STS, Lambda and Secrets Manager (NAT or PrivateLink)",
    Step.SECRET: "Read and decrypt the secret",
    Step.DNS: "Resolve the brokers / read the cluster's network",
    Step.NETWORK: "Connect to the brokers (ENIs, security groups, NACLs)",
    Step.TLS: "TLS handshake and certificates",
    Step.AUTH: "SASL / IAM authentication",
    Step.AUTHZ: "Cluster, topic and group authorization",
    Step.TOPIC: "Topic metadata",
    Step.INVOKE: "Invoke the function",
    Step.CONFIG: "ESM / function configuration",
    Step.SERVICE: "Lambda service",
    Step.NONE: "Healthy",
    Step.UNKNOWN: "Unknown",
}


def step_index(step: str) -> int:
    """Position of a step in the set-up chain; -1 for steps outside it (config, service, none, unknown)."""
    try:
        return SETUP_ORDER.index(Step(step))
    except ValueError:
        return -1
