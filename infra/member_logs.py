"""The system-log route from member accounts to the central ``esm_logs`` function.

CloudWatch Logs delivers to a Lambda function only in the same account; across accounts a subscription must target
a logical destination (``AWS::Logs::Destination``) whose target is a Kinesis data stream (or Firehose). So:

- central stack (:func:`central_destination`, when the install has members): an encrypted Kinesis stream, the
  destination ``esm-medic-esm-logs`` writing to it through a role CloudWatch Logs assumes (only for the members'
  and its own log groups), an access policy letting the members (``MemberAccounts``, or any account of
  ``OrganizationId``) subscribe to it, and the stream as an event source of ``esm_logs`` (each record is one
  gzip + base64 subscription payload; the handler reads the account from its ``owner``);
- member stack (:func:`member_subscription`): an account-level subscription filter policy (the same filter pattern
  as the central one) delivering to that destination, unless ``EsmSystemLogs`` is ``off`` (an account holds one
  such policy: merge by hand where one exists).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs

from esm_medic.detect.events.esm_log import FILTER_PATTERN
from infra.settings import Settings

DESTINATION_NAME = "esm-medic-esm-logs"
SUBSCRIPTION_POLICY_NAME = "esm-medic-esm-system-logs"


def destination_arn(partition: str, region: str, central: str) -> str:
    return f"arn:{partition}:logs:{region}:{central}:destination:{DESTINATION_NAME}"


def central_destination(
    stack: cdk.Stack, settings: Settings, fn: lambda_.Function
) -> logs.CrossAccountDestination | None:
    """The central end of the route (see the module docstring); None when the install has no members."""
    members, org = settings.member_accounts, settings.organization_id
    if not members and not org:
        return None
    stream = kinesis.Stream(
        stack,
        "EsmLogsStream",
        shard_count=1,
        retention_period=cdk.Duration.hours(24),
        encryption=kinesis.StreamEncryption.MANAGED,  # aws/kinesis: CloudWatch Logs' role needs no key grant
    )
    # an organization admits accounts discovered later: any source account (the destination policy checks the org)
    sources_ = [stack.account, *members] if members and not org else ["*"]
    role = iam.Role(
        stack,
        "EsmLogsDestinationRole",
        assumed_by=iam.ServicePrincipal("logs.amazonaws.com").with_conditions(
            {"StringLike": {"aws:SourceArn": [f"arn:{stack.partition}:logs:{stack.region}:{a}:*" for a in sources_]}}
        ),
        description="esm-medic: CloudWatch Logs puts the member accounts' ESM system logs on the stream",
    )
    stream.grant_write(role)
    destination = logs.CrossAccountDestination(
        stack,
        "EsmLogsDestination",
        destination_name=DESTINATION_NAME,
        role=role,
        target_arn=stream.stream_arn,
    )
    actions = ["logs:PutSubscriptionFilter", "logs:PutAccountPolicy"]
    own_arn = destination_arn(stack.partition, stack.region, stack.account)  # not a self-reference (a cycle)
    if members:
        destination.add_to_policy(
            iam.PolicyStatement(
                principals=[iam.AccountPrincipal(a) for a in members],
                actions=actions,
                resources=[own_arn],
            )
        )
    if org:
        destination.add_to_policy(
            iam.PolicyStatement(
                principals=[iam.StarPrincipal()],
                actions=actions,
                resources=[own_arn],
                conditions={"StringEquals": {"aws:PrincipalOrgID": org}},
            )
        )
    destination.node.add_dependency(role)
    fn.add_event_source(
        sources.KinesisEventSource(
            stream,
            starting_position=lambda_.StartingPosition.LATEST,
            batch_size=100,
            max_batching_window=cdk.Duration.seconds(1),
            retry_attempts=3,
            bisect_batch_on_error=True,
            report_batch_item_failures=True,
        )
    )
    cdk.CfnOutput(stack, "EsmLogsDestinationArn", value=destination.destination_arn)
    return destination


def member_subscription(stack: cdk.Stack, central: str) -> logs.CfnAccountPolicy:
    """The member end: every log group's ESM system-log records go to the central destination."""
    switch = cdk.CfnParameter(
        stack,
        "EsmSystemLogs",
        type="String",
        default="account",
        allowed_values=["account", "off"],
        description="Send the ESM system logs to the central install (an account-level subscription filter "
        "policy; 'off' where the account already holds one: merge by hand)",
    ).value_as_string
    enabled = cdk.CfnCondition(stack, "EsmSystemLogsOn", expression=cdk.Fn.condition_equals(switch, "account"))
    policy = logs.CfnAccountPolicy(
        stack,
        "EsmLogSubscriptionPolicy",
        policy_name=SUBSCRIPTION_POLICY_NAME,
        policy_type="SUBSCRIPTION_FILTER_POLICY",
        scope="ALL",
        policy_document=stack.to_json_string(
            {
                "DestinationArn": destination_arn(stack.partition, stack.region, central),
                "FilterPattern": FILTER_PATTERN,
                "Distribution": "Random",
            }
        ),
    )
    policy.cfn_options.condition = enabled
    return policy


__all__ = ["DESTINATION_NAME", "central_destination", "destination_arn", "member_subscription"]
