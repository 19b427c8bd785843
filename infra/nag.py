"""cdk-nag (AwsSolutions) acknowledgements.

cdk-nag 3 reports one finding per wildcard (``AwsSolutions-IAM5[Resource::<LogGroup.Arn>:*]``) and CDK's
``Validations.acknowledge`` matches finding ids exactly. Rather than a blanket "IAM5 is fine", every wildcard in
our IAM policies is matched against the vetted list below; a match is acknowledged on that policy with the reason
given; a wildcard that matches nothing stays a finding and fails the synth.
"""

from __future__ import annotations

import json
import re
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import IConstruct

# An ARN's partition, region and account are tokens (<AWS::Region>) in an environment-agnostic synth and literals
# when the stack has a concrete env (as under the CDK CLI).
_PART = r"(<AWS::Partition>|aws[a-z-]*)"
_REGION = r"(<AWS::Region>|[a-z]{2}(-[a-z]+)+-\d)"
_ACCOUNT = r"(<AWS::AccountId>|\d{12})"

#: (kind, regex over the flattened value, reason)
VETTED_WILDCARDS: tuple[tuple[str, str, str], ...] = (
    (
        "Resource",
        r"\*",
        "Read-only diagnosis calls (EC2 Describe*, Lambda List/Get ESM, Kafka Describe*, IAM Simulate/Get*), "
        "X-Ray, and the remediation actions, which act on whichever SG / VPC / execution role an incident names "
        "and support no deploy-time scoping; each action validates its own parameters and never writes a CIDR "
        "rule. The sweeper's Organizations ListAccounts / ListAccountsForParent / "
        "ListOrganizationalUnitsForParent (organization installs only) have no resource-level permissions.",
    ),
    (
        "Resource",
        r"<[A-Za-z0-9]+Logs[A-Z0-9]+\.Arn>:\*",
        "Log streams are created at run time in the function's own log group.",
    ),
    ("Resource", r"<[A-Za-z0-9]+Function[A-Z0-9]+\.Arn>:\*", "Step Functions may invoke the function's versions."),
    ("Resource", r"<[A-Za-z0-9]+Table[A-Z0-9]+\.Arn>/index/\*", "Queries on the table's own secondary indexes."),
    (
        "Resource",
        rf"arn:{_PART}:ssm:{_REGION}:{_ACCOUNT}:parameter/esm-medic/\*",
        "esm-medic's own settings under /esm-medic/.",
    ),
    (
        "Resource",
        rf"arn:{_PART}:iam::\*:role/esm-medic-(diagnosis|remediation)",
        "The member stack's roles in any account of the configured organization (aws:ResourceOrgID condition).",
    ),
    (
        "Resource",
        rf"arn:{_PART}:secretsmanager:{_REGION}:{_ACCOUNT}:secret:AmazonMSK_\*",
        "Shape checks (keys and PEM headers only) of MSK SASL/SCRAM secrets, which must be named AmazonMSK_*.",
    ),
    (
        "Resource",
        rf"arn:{_PART}:secretsmanager:{_REGION}:{_ACCOUNT}:secret:esm-medic/\*",
        "Ticket providers' and the Slack app's credentials, kept under esm-medic/ (never logged).",
    ),
    (
        "Resource",
        rf"arn:{_PART}:states:{_REGION}:{_ACCOUNT}:execution:.*:\*",
        "Reading the executions of esm-medic's own state machine (duplicate detection).",
    ),
    (
        "Resource",
        rf"arn:{_PART}:logs:{_REGION}:{_ACCOUNT}:log-group:/aws/lambda/\*",
        "Log path, per-log-group mode: the sweeper subscribes the log groups of functions whose ESMs write system "
        "logs, which appear at run time.",
    ),
    (
        "Action",
        r"kms:(GenerateDataKey|ReEncrypt|Encrypt|Decrypt|Describe)\*",
        "Publishing to the KMS-encrypted notification topic (CDK's grant).",
    ),
    ("Action", r"(states:(List|Describe|Get).*|xray:.*)\*?", "Read access to esm-medic's own state machine."),
)


def flatten(value: Any) -> str:
    """cdk-nag's rendering of a (possibly intrinsic) policy value."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if "Fn::Join" in value:
            sep, parts = value["Fn::Join"]
            return sep.join(flatten(p) for p in parts)
        if "Fn::GetAtt" in value:
            att = value["Fn::GetAtt"]
            att = att if isinstance(att, list) else str(att).split(".", 1)
            return f"<{att[0]}.{att[1]}>"
        if "Ref" in value:
            return f"<{value['Ref']}>"
    return json.dumps(value, separators=(",", ":"))


def wildcard_findings(document: dict[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for stmt in document.get("Statement", []):
        if stmt.get("Effect") != "Allow":
            continue
        for kind, key in (("Action", "Action"), ("Resource", "Resource")):
            values = stmt.get(key, [])
            for v in values if isinstance(values, list) else [values]:
                flat = flatten(v)
                if "*" in flat:
                    out.append((kind, flat))
    return out


def acknowledge_policies(stack: cdk.Stack) -> list[str]:
    """Acknowledge every vetted wildcard of every IAM policy in ``stack``; returns the unvetted ones."""
    unvetted: list[str] = []
    for construct in stack.node.find_all():
        if not isinstance(construct, iam.CfnPolicy):
            continue
        document = stack.resolve(construct.policy_document)
        for kind, flat in wildcard_findings(document):
            reason = next((r for k, rx, r in VETTED_WILDCARDS if k == kind and re.fullmatch(rx, flat)), None)
            if reason is None:
                unvetted.append(f"{construct.node.path}: {kind}::{flat}")
                continue
            _ack(construct, f"AwsSolutions-IAM5[{kind}::{flat}]", reason)
    return unvetted


def _ack(scope: IConstruct, rule: str, reason: str) -> None:
    cdk.Validations.of(scope).acknowledge(  # type: ignore[attr-defined]
        cdk.Acknowledgment(id=f"AwsSolutions::{rule}", reason=reason)  # type: ignore[attr-defined]
    )


RUNTIME_REASON = (
    "python3.13 on purpose: the venv, ruff, mypy and every test run on the interpreter this runtime uses (3.13 is "
    "the newest one the build machines ship); moving to a newer runtime moves the whole toolchain with it."
)


def acknowledge_runtime(stack: cdk.Stack) -> None:
    """AwsSolutions-L1 (not the latest runtime) on each of our functions, with the reason above."""
    from aws_cdk import aws_lambda as lambda_

    for construct in stack.node.find_all():
        if isinstance(construct, lambda_.CfnFunction) and construct.runtime == lambda_.Runtime.PYTHON_3_13.name:
            _ack(construct, "AwsSolutions-L1", RUNTIME_REASON)


def acknowledge(stack: cdk.Stack) -> list[str]:
    """All acknowledgements for the stack; call after the stack is fully built."""
    acknowledge_runtime(stack)
    return acknowledge_policies(stack)
