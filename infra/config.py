"""Per-function settings for the stack: every handler module in ``esm_medic/handlers`` must have an entry here
(a test enforces it), so nothing is deployed without deciding its timeout and its permissions."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FunctionSpec:
    timeout_s: int = 60
    memory_mb: int = 256
    # permission groups, resolved by the stack: read (diagnosis reads), remediate (actions' declared permissions),
    # esm-restart, esm-tags, state, audit, idempotency, events, sfn-start, sfn-token, sns, ssm, secrets-shape
    grants: tuple[str, ...] = ()
    url: bool = False  # a Lambda function URL (the approval page / Slack actions endpoint)
    description: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)


FUNCTIONS: dict[str, FunctionSpec] = {
    # workflow
    "start": FunctionSpec(30, 256, ("sfn-start",), description="EventBridge -> named, deduplicated execution"),
    # read: after a suspected failure's hold, the Recheck state re-reads the ESM through this function
    "classify": FunctionSpec(30, 256, ("read",), description="Classify the ESM status (and re-read it after a hold)"),
    "diagnose": FunctionSpec(120, 512, ("read", "secrets-shape"), description="Read-only diagnosis"),
    # decide plans the fix: mutating EC2 calls are probed with DryRun, so it needs the actions' permissions too
    "decide": FunctionSpec(
        120,
        512,
        ("read", "remediate", "state", "audit", "ssm"),
        description="Policy: mode, budget, kill switch; writes the planned audit row",
    ),
    # a plan of several fixes re-diagnoses after each (the diagnosis's reads, secret shape included) and may wait
    # for new endpoints; no new fix starts after 540 s (workflow/remediate.py PLAN_TIME_BUDGET_SECONDS)
    "remediate": FunctionSpec(
        900,
        512,
        ("read", "secrets-shape", "remediate", "esm-restart", "state", "audit", "idempotency", "ssm"),
        description="Apply the plan fix by fix",
    ),
    "verify": FunctionSpec(180, 256, ("read", "esm-restart", "state", "audit"), description="Prove recovery"),
    "rollback": FunctionSpec(
        420,
        512,
        ("read", "remediate", "state", "audit", "idempotency"),
        description="Undo a fix (endpoint deletion may wait up to 300 s)",
    ),
    "record": FunctionSpec(
        60,
        256,
        ("state", "audit", "idempotency", "sns", "ssm"),
        description="Record the execution outcome; failure path opens tickets",
    ),
    # people
    "notify": FunctionSpec(30, 256, ("sns", "ssm", "state", "people"), description="Notifications"),
    "ticket": FunctionSpec(60, 256, ("sns", "ssm", "state", "audit", "idempotency", "people"), description="Tickets"),
    "outbox": FunctionSpec(120, 256, ("sns", "ssm", "state", "people"), description="Deliver due ticket outbox items"),
    "approval_request": FunctionSpec(
        30, 256, ("sns", "ssm", "state", "audit", "esm-tags", "people"), description="Ask for approval"
    ),
    "approval_http": FunctionSpec(
        10,
        256,
        ("sfn-token", "ssm", "state", "audit"),
        url=True,
        description="Approval page and Slack actions endpoint",
    ),
    # detection
    "sweeper": FunctionSpec(
        900,
        1024,
        ("read", "state", "events"),
        description="ESM status sweeper",
        extra_env={"ESM_MEDIC_SWEEP_HOLD_SECONDS": "120"},
    ),
    "watch": FunctionSpec(60, 256, ("read", "state", "events"), description="Re-check an ESM until it settles"),
    "cloudtrail_error": FunctionSpec(60, 256, ("read", "state", "events"), description="CloudTrail denials -> ESMs"),
    "esm_logs": FunctionSpec(60, 256, ("read", "state", "events"), description="ESM system logs -> ESM events"),
}

#: Read-only actions the diagnosis and the sweeper use (Describe/Get/List/Simulate). Resource "*" is required for
#: EC2 Describe* and the Lambda/Kafka list calls.
READ_ACTIONS: tuple[str, ...] = (
    "lambda:ListEventSourceMappings",
    "lambda:GetEventSourceMapping",
    "lambda:GetFunctionConfiguration",
    "lambda:GetFunction",
    "lambda:ListFunctions",  # CloudTrail denials name a role: find the functions (and ESMs) that use it
    "lambda:ListTags",
    "kafka:DescribeCluster",
    "kafka:DescribeClusterV2",
    "kafka:GetBootstrapBrokers",
    "kafka:ListScramSecrets",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSecurityGroupRules",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
    "ec2:DescribeVpcAttribute",
    "ec2:DescribeRouteTables",
    "ec2:DescribeNatGateways",
    "ec2:DescribeNetworkAcls",
    "ec2:DescribeVpcEndpoints",
    "ec2:DescribeNetworkInterfaces",
    "iam:SimulatePrincipalPolicy",
    "iam:GetRole",
    "iam:GetRolePolicy",
    "iam:ListRolePolicies",
    "iam:ListAttachedRolePolicies",
    "iam:GetPolicy",
    "iam:GetPolicyVersion",
    "kms:DescribeKey",
    "secretsmanager:DescribeSecret",
    "route53:ListHostedZonesByVPC",
    "route53resolver:ListResolverRuleAssociations",
    "route53resolver:ListResolverRules",
    "sts:GetCallerIdentity",
)

ESM_RESTART_ACTIONS: tuple[str, ...] = ("lambda:UpdateEventSourceMapping", "lambda:GetEventSourceMapping")
