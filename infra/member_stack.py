"""The member stack: what esm-medic needs in each account it looks after, when one central install serves many.

Two roles, both assumable only by the central account's esm-medic functions (``aws:PrincipalArn`` under
``role/EsmMedic*``), only with the agreed ``sts:ExternalId``, and, when ``OrganizationId`` is set, only from inside
that organization:

- ``esm-medic-diagnosis``: the read-only calls of the diagnosis and the sweeper (``infra.config.READ_ACTIONS``)
  plus the shape check of MSK SCRAM secrets;
- ``esm-medic-remediation``: exactly the actions the remediation registry declares, plus restarting an ESM, plus
  the diagnosis' reads (the workflow's remediate, verify and rollback steps re-read the live state with it).

Forwarding rules: the detection rules whose events AWS raises in the member account (CloudTrail ESM API calls,
access denials to ESM execution roles, ESM metric alarms: every pattern in ``esm_medic/detect/patterns`` whose
``source`` is an AWS one, read as data like the central stack does) are created on the member's default bus, in
the same states, with the central account's bus (``CentralAccount``, ``CentralEventBus``, this region) as their
target, through a role EventBridge assumes for the cross-account PutEvents. The central bus policy
(``infra/stack.py``) admits the members' PutEvents; the envelope ``account`` keeps naming the member, so the
central detectors act there through the diagnosis role.

The central sweeper assumes the diagnosis role in each member account (no Lambda runs in a member account): one
AssumeRole per member per credential lifetime is cheaper than a scheduled function in every account, and modes,
budgets and the kill switch stay in one place. The same template serves as a CloudFormation StackSet for an
organization (``cdk synth EsmMedicMember`` and deploy the template through StackSets).
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.config import ESM_RESTART_ACTIONS, READ_ACTIONS
from infra.settings import Settings

DIAGNOSIS_ROLE = "esm-medic-diagnosis"
REMEDIATION_ROLE = "esm-medic-remediation"

#: functions that act in member accounts -> the member stack roles they assume (``handlers/_common.STEP_PURPOSE``;
#: the sweeper lists through the diagnosis role)
MEMBER_FUNCTIONS: dict[str, frozenset[str]] = {
    "sweeper": frozenset({DIAGNOSIS_ROLE}),
    "classify": frozenset({DIAGNOSIS_ROLE}),
    "diagnose": frozenset({DIAGNOSIS_ROLE}),
    "decide": frozenset({DIAGNOSIS_ROLE}),
    "remediate": frozenset({REMEDIATION_ROLE}),
    "verify": frozenset({REMEDIATION_ROLE}),
    "rollback": frozenset({REMEDIATION_ROLE}),
    # the fast detectors read a member's ESM where the event came from (watch, CloudTrail denial, system logs)
    "watch": frozenset({DIAGNOSIS_ROLE}),
    "cloudtrail_error": frozenset({DIAGNOSIS_ROLE}),
    "esm_logs": frozenset({DIAGNOSIS_ROLE}),
}
#: what the central sweeper needs to discover the organization's (or the OUs') accounts
ORGANIZATION_LIST_ACTIONS = [
    "organizations:ListAccounts",
    "organizations:ListAccountsForParent",
    "organizations:ListOrganizationalUnitsForParent",
]
#: the SecureString holding the external id the member roles require (created after the deploy, never in a template)
EXTERNAL_ID_PARAMETER = "/esm-medic/external-id"


def _trust(central: str, external_id: str, organization: str, partition: str) -> iam.IPrincipal:
    conditions: dict[str, Any] = {
        "StringEquals": {"sts:ExternalId": external_id},
        "ArnLike": {"aws:PrincipalArn": f"arn:{partition}:iam::{central}:role/EsmMedic*"},
        # "*" (the default) when no organization is given; an organization id pins the caller's organization
        "StringLikeIfExists": {"aws:PrincipalOrgID": organization},
    }
    return iam.AccountPrincipal(central).with_conditions(conditions)


class EsmMedicMemberStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        from infra.stack import remediation_actions

        # parameters, so the same template deploys per account or as a StackSet; context values become defaults
        central = cdk.CfnParameter(
            self,
            "CentralAccount",
            type="String",
            allowed_pattern=r"\d{12}",
            description="The account of the central esm-medic install",
            **({"default": settings.central_account} if settings.central_account else {}),
        ).value_as_string
        external_id = cdk.CfnParameter(
            self,
            "ExternalId",
            type="String",
            min_length=8,
            no_echo=True,
            description="The sts:ExternalId the central install presents",
            **({"default": settings.external_id} if settings.external_id else {}),
        ).value_as_string
        organization = cdk.CfnParameter(
            self,
            "OrganizationId",
            type="String",
            default=settings.organization_id or "*",
            allowed_pattern=r"\*|o-[a-z0-9]{10,32}",
            description="Require callers from this organization ('*': no organization condition)",
        ).value_as_string
        trust = _trust(central, external_id, organization, self.partition)
        self.diagnosis_role = iam.Role(
            self,
            "DiagnosisRole",
            role_name=DIAGNOSIS_ROLE,
            assumed_by=trust,
            description="esm-medic (central install): read-only diagnosis and sweeping of Kafka ESMs",
            max_session_duration=cdk.Duration.hours(1),
        )
        self.diagnosis_role.add_to_policy(iam.PolicyStatement(actions=list(READ_ACTIONS), resources=["*"]))
        # the secret's shape (keys, PEM headers; never logged), for MSK's AmazonMSK_ secrets
        secret_shape = iam.PolicyStatement(
            actions=["secretsmanager:GetSecretValue"],
            resources=[f"arn:{self.partition}:secretsmanager:{self.region}:{self.account}:secret:AmazonMSK_*"],
        )
        self.diagnosis_role.add_to_policy(secret_shape)
        self.remediation_role = iam.Role(
            self,
            "RemediationRole",
            role_name=REMEDIATION_ROLE,
            assumed_by=trust,
            description="esm-medic (central install): the remediation registry's declared actions only",
            max_session_duration=cdk.Duration.hours(1),
        )
        # the reads too: the remediate / verify / rollback steps re-plan from live state and record before / after
        # with the same credentials (the writes stay exactly the registry's)
        self.remediation_role.add_to_policy(
            iam.PolicyStatement(
                actions=sorted({*READ_ACTIONS, *remediation_actions(), *ESM_RESTART_ACTIONS, "lambda:ListTags"}),
                resources=["*"],
            )
        )
        # the remediate step re-diagnoses after each fix of a plan, secret shape included
        self.remediation_role.add_to_policy(secret_shape)
        bus_name = cdk.CfnParameter(
            self,
            "CentralEventBus",
            type="String",
            default="default",
            allowed_pattern=r"[/\.\-_A-Za-z0-9]{1,256}",
            description="The central install's event bus (ESM_MEDIC_EVENT_BUS; 'default' unless changed)",
        ).value_as_string
        self.forwarding_rules = self._forwarding_rules(central, bus_name)
        from infra.member_logs import member_subscription

        self.log_subscription = member_subscription(self, central)
        cdk.CfnOutput(self, "DiagnosisRoleArn", value=self.diagnosis_role.role_arn)
        cdk.CfnOutput(self, "RemediationRoleArn", value=self.remediation_role.role_arn)

    def _forwarding_rules(self, central: str, bus_name: str) -> dict[str, events.Rule]:
        """The member side of the fast detectors: each AWS-sourced detection rule, forwarding to the central bus."""
        from infra.stack import PATTERNS, RULES, event_pattern, set_rule_state

        bus_arn = f"arn:{self.partition}:events:{self.region}:{central}:event-bus/{bus_name}"
        bus = events.EventBus.from_event_bus_arn(self, "CentralBus", bus_arn)
        role = iam.Role(
            self,
            "ForwardRole",
            assumed_by=iam.ServicePrincipal("events.amazonaws.com"),
            description="esm-medic: EventBridge forwards the member's ESM events to the central install's bus",
        )
        role.add_to_policy(iam.PolicyStatement(actions=["events:PutEvents"], resources=[bus_arn]))
        rules: dict[str, events.Rule] = {}
        for rule_id, (filename, _target, state) in RULES.items():
            doc = forwarded_pattern(PATTERNS / filename)
            if doc is None:
                continue
            rule = events.Rule(
                self,
                f"{rule_id}Forward",
                event_pattern=event_pattern(doc),
                targets=[targets.EventBus(bus, role=role)],
                description=f"esm-medic: {filename} -> the central install's event bus",
            )
            set_rule_state(rule, state)
            rules[rule_id] = rule
        return rules


def forwarded_pattern(path: Any) -> dict[str, Any] | None:
    """The pattern of a rule a member forwards (its events are raised by AWS in the member account: ``source``
    ``aws.*``), None for esm-medic's own events (the central sweeper and detectors put those) or a missing file."""
    import json
    from pathlib import Path

    file = Path(path)
    if not file.exists():
        return None
    doc: dict[str, Any] = json.loads(file.read_text(encoding="utf-8"))
    sources = doc.get("source") or []
    if not sources or not all(isinstance(s, str) and s.startswith("aws.") for s in sources):
        return None
    return doc


def grant_member_access(stack: cdk.Stack, settings: Settings, name: str, fn: lambda_.Function, role: iam.Role) -> None:
    """A function that acts in member accounts (``MemberAccounts``, or any account of ``OrganizationId``):
    sts:AssumeRole on the member stack's roles it uses, the member list, and the external id SecureString
    (``/esm-medic/external-id``, created after the deploy) with the KMS decrypt SSM needs for it."""
    members, org = settings.member_accounts, settings.organization_id
    if not members and not org:
        return
    role_names = sorted(MEMBER_FUNCTIONS[name])
    if members:
        arns = [f"arn:{stack.partition}:iam::{a}:role/{r}" for a in members for r in role_names]
        role.add_to_policy(iam.PolicyStatement(actions=["sts:AssumeRole"], resources=arns))
    if org:  # any account of the organization (the sweeper discovers them; events of them are accepted)
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["sts:AssumeRole"],
                resources=[f"arn:{stack.partition}:iam::*:role/{r}" for r in role_names],
                conditions={"StringEquals": {"aws:ResourceOrgID": org}},
            )
        )
    parameter = f"arn:{stack.partition}:ssm:{stack.region}:{stack.account}:parameter{EXTERNAL_ID_PARAMETER}"
    role.add_to_policy(iam.PolicyStatement(actions=["ssm:GetParameter"], resources=[parameter]))
    role.add_to_policy(
        iam.PolicyStatement(
            actions=["kms:Decrypt"],
            resources=["*"],
            conditions={"StringEquals": {"kms:ViaService": f"ssm.{stack.region}.amazonaws.com"}},
        )
    )
    fn.add_environment("ESM_MEDIC_EXTERNAL_ID_PARAM", EXTERNAL_ID_PARAMETER)
    if members:
        fn.add_environment("ESM_MEDIC_MEMBER_ACCOUNTS", ",".join(members))
    if org:
        # the detectors accept events of any account the bus policy admits (this organization's); the sweeper
        # discovers the organization's (or the OUs') accounts
        fn.add_environment("ESM_MEDIC_ORGANIZATION_ID", org)
    if org and name == "sweeper":
        if settings.organizational_units:
            fn.add_environment("ESM_MEDIC_MEMBER_OUS", ",".join(settings.organizational_units))
        role.add_to_policy(
            iam.PolicyStatement(
                # List* of Organizations support no resource-level permissions: "*" is the only resource
                actions=ORGANIZATION_LIST_ACTIONS,
                resources=["*"],
            )
        )


def allow_member_events(stack: cdk.Stack, settings: Settings, bus_name: str = "default") -> list[cdk.CfnResource]:
    """The central bus policy: the member accounts (``MemberAccounts``) or any account of ``OrganizationId`` may
    put events on the central bus (their forwarding rules). Nothing when the install has no members."""
    members, org = settings.member_accounts, settings.organization_id
    if not members and not org:
        return []
    bus_arn = f"arn:{stack.partition}:events:{stack.region}:{stack.account}:event-bus/{bus_name}"
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Action": "events:PutEvents",
        "Resource": bus_arn,
    }
    statements: list[tuple[str, str, dict[str, Any]]] = []
    if members:
        principal = {"AWS": [f"arn:{stack.partition}:iam::{a}:root" for a in members]}
        statements.append(("MemberEventsPolicy", "esm-medic-member-events", {**statement, "Principal": principal}))
    if org:  # with a list too: the accounts the sweeper discovers in the organization forward their events
        condition = {"StringEquals": {"aws:PrincipalOrgID": org}}
        logical, sid = (
            ("OrganizationEventsPolicy", "esm-medic-organization-events")
            if members
            else ("MemberEventsPolicy", "esm-medic-member-events")
        )
        statements.append((logical, sid, {**statement, "Principal": "*", "Condition": condition}))
    # the L1 resource itself: aws_events.CfnEventBusPolicy prints a deprecation banner for its (unused) Principal
    return [
        cdk.CfnResource(
            stack,
            logical,
            type="AWS::Events::EventBusPolicy",
            properties={"StatementId": sid, "EventBusName": bus_name, "Statement": body},
        )
        for logical, sid, body in statements
    ]
