"""Which IAM permissions a Kafka ESM's execution role needs, on which exact resources.

Pure code: from the ESM configuration, the auth mode, the MSK cluster description, the secret / key ARNs and the
on-failure destination, list :class:`Requirement` s. Each requirement is one permission (with accepted
alternatives, e.g. ``kafka:DescribeClusterV2`` or ``kafka:DescribeCluster`` for a provisioned cluster) on one
resource ARN, tagged with the set-up step that needs it and the catalogue root causes its absence explains.

Resource scoping follows the fix contract: kafka-cluster / secretsmanager / kms permissions are always on exact
ARNs (never ``*``); the EC2 ENI actions do not support resource scoping for Lambda and are on ``*``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from esm_medic.esm import IAM, MSK, EsmConfig
from esm_medic.steps import Step

EC2_ENI_ACTIONS = (
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeVpcs",
    "ec2:DeleteNetworkInterface",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
)

#: MSK IAM access control: data-plane actions and the resource kind each is checked against
KAFKA_CLUSTER_ACTIONS: tuple[tuple[str, str], ...] = (
    ("kafka-cluster:Connect", "cluster"),
    ("kafka-cluster:DescribeClusterDynamicConfiguration", "cluster"),
    ("kafka-cluster:DescribeTopic", "topic"),
    ("kafka-cluster:ReadData", "topic"),
    ("kafka-cluster:DescribeGroup", "group"),
    ("kafka-cluster:AlterGroup", "group"),
)

#: root-cause hints per permission (catalogue root_causes[].id the absence of this permission explains)
_CAUSES: dict[str, tuple[str, ...]] = {
    "kafka-cluster:Connect": ("iam-missing-connect", "iam-missing-kafka-cluster", "authz", "authn"),
    "kafka-cluster:DescribeClusterDynamicConfiguration": ("iam-missing-kafka-cluster", "authz"),
    "kafka-cluster:DescribeTopic": ("iam-missing-topic-actions", "iam-missing-kafka-cluster", "authz"),
    "kafka-cluster:ReadData": ("iam-missing-topic-actions", "iam-missing-kafka-cluster", "authz"),
    "kafka-cluster:DescribeGroup": ("iam-missing-group-actions", "iam-missing-kafka-cluster", "authz"),
    "kafka-cluster:AlterGroup": ("iam-missing-group-actions", "iam-missing-kafka-cluster", "authz"),
    "secretsmanager:GetSecretValue": ("missing-getsecretvalue", "authz"),
    "kms:Decrypt": ("missing-kms-decrypt", "authz"),
    "kafka:DescribeClusterV2": ("missing-kafka-describe", "authz"),
    "kafka:GetBootstrapBrokers": ("missing-kafka-describe", "authz"),
    "sqs:SendMessage": ("destination-permission",),
    "sns:Publish": ("destination-permission",),
    "s3:PutObject": ("destination-permission",),
    "s3:ListBucket": ("destination-permission",),
}
_EC2_CAUSES = ("missing-ec2-eni-actions", "authz")

_STEPS: dict[str, str] = {
    "kafka-cluster:Connect": Step.AUTH,
    "secretsmanager:GetSecretValue": Step.SECRET,
    "kms:Decrypt": Step.SECRET,
    "kafka:DescribeClusterV2": Step.DNS,
    "kafka:GetBootstrapBrokers": Step.DNS,
}


@dataclass(frozen=True)
class Requirement:
    """One permission the role needs: any of ``actions`` on ``resource``."""

    actions: tuple[str, ...]  # accepted alternatives; the first is the one a grant adds
    resource: str
    purpose: str
    step: str
    causes: tuple[str, ...] = ()

    @property
    def action(self) -> str:
        return self.actions[0]

    @property
    def scoped(self) -> bool:
        return self.resource != "*"

    def to_dict(self) -> dict[str, Any]:
        return {
            "actions": list(self.actions),
            "resource": self.resource,
            "purpose": self.purpose,
            "step": self.step,
        }


def _req(actions: Sequence[str], resource: str, purpose: str) -> Requirement:
    first = actions[0]
    causes: tuple[str, ...]
    if first.startswith("ec2:"):
        causes, step = _EC2_CAUSES, str(Step.NETWORK)
    else:
        causes = _CAUSES.get(first, ("authz",))
        step = str(_STEPS.get(first, Step.AUTHZ))
        if first.split(":", 1)[0] in ("sqs", "sns", "s3"):
            step = str(Step.STS)
    return Requirement(tuple(actions), resource, purpose, step, causes)


# ---------------------------------------------------------------------------------------------- ARNs
def arn_parts(arn: str) -> tuple[str, str, str, str, str]:
    """(partition, service, region, account, resource) of an ARN; empty strings when it is not one."""
    parts = arn.split(":", 5)
    if len(parts) < 6 or parts[0] != "arn":
        return "", "", "", "", ""
    return parts[1], parts[2], parts[3], parts[4], parts[5]


def cluster_name_and_uuid(cluster_arn: str, cluster: Mapping[str, Any] | None = None) -> tuple[str, str]:
    """(name, uuid) of an MSK cluster ARN ``...:cluster/<name>/<uuid>``; the name comes from DescribeClusterV2
    when the ARN lacks it."""
    resource = arn_parts(cluster_arn)[4]
    segs = resource.split("/")
    uuid = segs[-1] if len(segs) > 1 else ""
    name = str((cluster or {}).get("ClusterName") or (segs[1] if len(segs) > 2 else ""))
    return name, uuid


def kafka_arns(esm: EsmConfig, cluster: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The cluster, topic and group ARNs MSK IAM access control checks the ESM's requests against.
    The group is the ESM UUID unless a ConsumerGroupId is set."""
    partition, _, region, account, _ = arn_parts(esm.cluster_arn)
    name, cid = cluster_name_and_uuid(esm.cluster_arn, cluster)
    base = f"arn:{partition or 'aws'}:kafka:{region}:{account}"
    topics = [f"{base}:topic/{name}/{cid}/{t}" for t in esm.topics]
    group = f"{base}:group/{name}/{cid}/{esm.consumer_group_id or esm.uuid}"
    return {"cluster": esm.cluster_arn, "topics": topics, "group": group}


def destination_requirements(destination_arn: str) -> list[Requirement]:
    partition, service, _, _, resource = arn_parts(destination_arn)
    purpose = "deliver failed batches to the on-failure destination"
    if service == "sqs":
        return [_req(("sqs:SendMessage",), destination_arn, purpose)]
    if service == "sns":
        return [_req(("sns:Publish",), destination_arn, purpose)]
    if service == "s3":
        bucket = resource.split("/", 1)[0]
        return [
            _req(("s3:PutObject",), f"arn:{partition}:s3:::{bucket}/*", purpose),
            _req(("s3:ListBucket",), f"arn:{partition}:s3:::{bucket}", purpose),
        ]
    return []


def destination_service(destination_arn: str) -> str:
    """The AWS service an on-failure destination ARN belongs to (sqs, sns, s3, kafka ...)."""
    return arn_parts(destination_arn)[1]


# ---------------------------------------------------------------------------------------------- requirements
def required_permissions(
    esm: EsmConfig,
    *,
    mode: str,
    cluster: Mapping[str, Any] | None = None,
    in_vpc: bool = True,
    secret_arns: Iterable[str] = (),
    key_arns: Iterable[str] = (),
) -> list[Requirement]:
    """Everything the ESM's execution role must be allowed to do, in set-up order.

    ``secret_arns`` are the secret ARNs as Secrets Manager reports them (full ARNs); ``key_arns`` the
    customer-managed KMS key ARNs of those secrets (AWS-managed keys need no kms:Decrypt grant).
    """
    reqs: list[Requirement] = []
    for arn in dict.fromkeys(secret_arns):
        reqs.append(_req(("secretsmanager:GetSecretValue",), arn, "read the SourceAccessConfigurations secret"))
    for arn in dict.fromkeys(key_arns):
        reqs.append(_req(("kms:Decrypt",), arn, "decrypt the secret's customer-managed key"))
    if esm.source_kind == MSK:
        serverless = isinstance((cluster or {}).get("Serverless"), Mapping)
        describe: tuple[str, ...] = (
            ("kafka:DescribeClusterV2",) if serverless else ("kafka:DescribeClusterV2", "kafka:DescribeCluster")
        )
        reqs.append(_req(describe, esm.cluster_arn, "read the cluster's subnets and security groups"))
        reqs.append(_req(("kafka:GetBootstrapBrokers",), esm.cluster_arn, "find the broker endpoints"))
    if esm.source_kind == MSK or in_vpc:
        for action in EC2_ENI_ACTIONS:
            reqs.append(_req((action,), "*", "create and manage the ESM's network interfaces"))
    if esm.source_kind == MSK and mode == IAM:
        arns = kafka_arns(esm, cluster)
        for action, kind in KAFKA_CLUSTER_ACTIONS:
            if kind == "cluster":
                reqs.append(_req((action,), arns["cluster"], "MSK IAM access control (cluster)"))
            elif kind == "topic":
                for topic_arn in arns["topics"]:
                    reqs.append(_req((action,), topic_arn, "MSK IAM access control (topic)"))
            else:
                reqs.append(_req((action,), arns["group"], "MSK IAM access control (consumer group)"))
    if esm.on_failure_destination:
        reqs.extend(destination_requirements(esm.on_failure_destination))
    return reqs


def grant_statements(requirements: Iterable[Requirement]) -> list[dict[str, list[str]]]:
    """Statements for the ``grant-iam-permissions`` fix: the first action of each requirement, grouped by the
    exact set of resources it needs (so kafka-cluster / secretsmanager / kms stay scoped; EC2 stays on ``*``)."""
    by_action: dict[str, list[str]] = {}
    for r in requirements:
        resources = by_action.setdefault(r.action, [])
        if r.resource not in resources:
            resources.append(r.resource)
    grouped: dict[tuple[str, ...], list[str]] = {}
    for action, resources in by_action.items():
        grouped.setdefault(tuple(resources), []).append(action)
    return [{"actions": actions, "resources": list(resources)} for resources, actions in grouped.items()]


__all__ = [
    "EC2_ENI_ACTIONS",
    "KAFKA_CLUSTER_ACTIONS",
    "Requirement",
    "arn_parts",
    "cluster_name_and_uuid",
    "destination_requirements",
    "destination_service",
    "grant_statements",
    "kafka_arns",
    "required_permissions",
]
