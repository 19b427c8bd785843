"""The esm-medic stack: tables, one Lambda per handler from one asset, the remediation state machine (ASL read
from ``statemachine/``), the EventBridge rules (patterns read from ``esm_medic/detect/patterns``), the sweeper
schedule, the SNS topic and SSM settings.

No custom resources (they break the moto CloudFormation deploy used by the local pipeline tests): log groups are
explicit ``LogGroup`` resources, not ``log_retention=``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as ddb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_ssm as ssm
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from esm_medic.detect.events.esm_log import FILTER_PATTERN
from esm_medic.tables import TABLES, TableSpec
from infra.asset import ROOT, build_code_asset, build_dependency_layer
from infra.config import ESM_RESTART_ACTIONS, FUNCTIONS, READ_ACTIONS
from infra.member_logs import central_destination
from infra.member_stack import MEMBER_FUNCTIONS, allow_member_events, forwarded_pattern, grant_member_access
from infra.observability import Observability
from infra.settings import Settings
from infra.settings import load as load_settings

STATEMACHINE = ROOT / "statemachine" / "remediate.asl.json"
EXECUTION_ENDED = ROOT / "statemachine" / "execution-ended.pattern.json"
PATTERNS = ROOT / "functions" / "esm_medic" / "detect" / "patterns"
HANDLERS = ROOT / "functions" / "esm_medic" / "handlers"

#: Tunables the ASL may reference as ${Name}; values can be overridden with CDK context (-c Name=value).
TUNABLES: dict[str, str] = {
    "VerifyWaitSeconds": "30",  # first wait after a fix before reading the ESM again
    "VerifyMaxWaitSeconds": "300",  # cap of the backoff between verification reads
    "VerifyMaxAttempts": "12",
    "ApprovalTimeoutSeconds": "86400",  # a day to answer, then a ticket
    "ApprovalHeartbeatSeconds": "86340",  # must be below the timeout; nothing heartbeats an open approval
}

#: EventBridge rule name -> (pattern file, target function, rule state)
RULES: dict[str, tuple[str, str, str]] = {
    "StatusError": ("esm-status-error.json", "start", "ENABLED"),
    "ApiChange": ("esm-api-change.json", "watch", "ENABLED"),
    "RoleAccessDenied": (
        "esm-role-access-denied.json",
        "cloudtrail_error",
        "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS",
    ),
    "MetricAlarm": ("esm-metric-alarm.json", "watch", "ENABLED"),
}


def handler_modules() -> list[str]:
    """Handler modules present in the package (the deployable functions)."""
    return sorted(p.stem for p in HANDLERS.glob("*.py") if not p.stem.startswith("_"))


def asl_placeholders(text: str) -> set[str]:
    return set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", text))


def function_placeholder(handler: str) -> str:
    return "".join(part.capitalize() for part in handler.split("_")) + "FunctionArn"


def set_rule_state(rule: events.Rule, state: str) -> None:
    """A rule declared in RULES with another state than ENABLED (e.g. DISABLED until an operator turns it on)."""
    if state != "ENABLED":
        cfn = rule.node.default_child
        assert isinstance(cfn, events.CfnRule)
        cfn.add_property_override("State", state)


def event_pattern(doc: dict[str, Any]) -> events.EventPattern:
    """A pattern JSON file (EventBridge's own syntax) as the CDK type, key by key."""
    keymap = {
        "detail-type": "detail_type",
        "source": "source",
        "detail": "detail",
        "account": "account",
        "region": "region",
        "resources": "resources",
        "id": "id",
        "time": "time",
        "version": "version",
    }
    unknown = set(doc) - set(keymap)
    if unknown:
        raise ValueError(f"unsupported top-level pattern keys: {sorted(unknown)}")
    return events.EventPattern(**{keymap[k]: v for k, v in doc.items()})


class EsmMedicStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        install_deps: bool = False,
        settings: Settings | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.functions: dict[str, lambda_.Function] = {}
        self.settings = settings or load_settings(_context(self))

        # ---------------------------------------------------------------- settings and storage
        key = kms.Key(self, "Key", enable_key_rotation=True, description="esm-medic topic and logs")
        key.add_to_resource_policy(
            iam.PolicyStatement(
                actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                principals=[iam.ServicePrincipal(f"logs.{self.region}.amazonaws.com")],
                resources=["*"],
            )
        )
        self.tables = {spec.key: self._table(spec) for spec in TABLES}
        self.topic = sns.Topic(self, "Notifications", master_key=key, enforce_ssl=True)
        self.kill_switch = ssm.StringParameter(
            self,
            "KillSwitch",
            parameter_name="/esm-medic/kill-switch",
            string_value="off",
            description="Set to 'on' to stop every esm-medic change at once (notify/ticket only)",
        )
        self.default_mode = ssm.StringParameter(
            self,
            "DefaultMode",
            parameter_name="/esm-medic/default-mode",
            string_value=self.settings.default_mode,
            description="Default mode for ESMs without an esm-medic:mode tag: off, notify, approve or auto",
        )

        # ---------------------------------------------------------------- code
        asset_dir = build_code_asset()
        layer_dir = build_dependency_layer(install_deps=install_deps)
        self.code = lambda_.Code.from_asset(str(asset_dir))
        self.layer = lambda_.LayerVersion(
            self,
            "Dependencies",
            code=lambda_.Code.from_asset(str(layer_dir)),
            compatible_runtimes=[lambda_.Runtime.PYTHON_3_13],
            description="esm-medic runtime dependencies",
        )
        self.urls: dict[str, str] = {}
        for name in handler_modules():
            if name not in FUNCTIONS:
                raise ValueError(f"handler {name!r} has no FunctionSpec in infra/config.py")
            self.functions[name] = self._function(name, key)
        approval_url = self.urls.get("approval_http")
        if approval_url:
            for name in ("approval_request", "ticket", "notify"):
                if name in self.functions:
                    self.functions[name].add_environment("ESM_MEDIC_APPROVAL_BASE_URL", approval_url)
        # per-approver links go to a topic of their own: each approver's subscription filters on the message
        # attribute `approver`, so nobody receives a link that would let them decide as someone else
        self.link_topic = sns.Topic(self, "ApprovalLinks", master_key=key, enforce_ssl=True)
        if "approval_request" in self.functions:
            self.functions["approval_request"].add_environment(
                "ESM_MEDIC_APPROVAL_LINK_TOPIC_ARN", self.link_topic.topic_arn
            )
            self.link_topic.grant_publish(self.functions["approval_request"])
        cdk.CfnOutput(self, "ApprovalLinkTopicArn", value=self.link_topic.topic_arn)

        # ---------------------------------------------------------------- state machine
        self.state_machine = self._state_machine(key)
        for name, fn in self.functions.items():
            if "sfn-start" in FUNCTIONS[name].grants:
                # only functions the state machine does not invoke may know its ARN (else: a dependency cycle)
                fn.add_environment("ESM_MEDIC_STATE_MACHINE_ARN", self.state_machine.state_machine_arn)
                self.state_machine.grant_start_execution(fn)
                self.state_machine.grant_read(fn)

        # safety net: executions that fail, time out or are stopped (which Catch cannot see) still get an outcome
        if "record" in self.functions and EXECUTION_ENDED.exists():
            ended = json.loads(EXECUTION_ENDED.read_text(encoding="utf-8"))
            ended.setdefault("detail", {})["stateMachineArn"] = [self.state_machine.state_machine_arn]
            events.Rule(
                self,
                "ExecutionEndedRule",
                event_pattern=event_pattern(ended),
                targets=[targets.LambdaFunction(self.functions["record"], retry_attempts=4)],
                description="esm-medic: failed / timed-out / aborted executions -> record (failed-with-ticket)",
            )

        # ---------------------------------------------------------------- detection
        self.rules = self._rules()
        # member accounts' forwarding rules (infra/member_stack.py) put their ESM events on this bus
        self.member_event_policies = allow_member_events(self, self.settings)
        sweep_minutes = self.settings.sweep_minutes
        if "outbox" in self.functions:
            events.Rule(
                self,
                "OutboxSchedule",
                schedule=events.Schedule.rate(cdk.Duration.minutes(5)),
                targets=[targets.LambdaFunction(self.functions["outbox"], retry_attempts=0)],
                description="esm-medic outbox: redeliver tickets and notifications that are due",
            )
        if "sweeper" in self.functions:
            self.functions["sweeper"].add_environment("ESM_MEDIC_SWEEP_INTERVAL_SECONDS", str(sweep_minutes * 60))
            self.functions["sweeper"].add_environment(
                "ESM_MEDIC_SWEEP_HOLD_SECONDS", str(self.settings.sweep_hold_seconds)
            )
            events.Rule(
                self,
                "SweepSchedule",
                schedule=events.Schedule.rate(cdk.Duration.minutes(sweep_minutes)),
                targets=[targets.LambdaFunction(self.functions["sweeper"], retry_attempts=0)],
                description="esm-medic sweeper: ESM status transitions become 'ESM Status Change' events",
            )

        # ---------------------------------------------------------------- operations
        self.alarm_topic = sns.Topic(self, "Alarms", master_key=key, enforce_ssl=True)
        if self.settings.alarm_email:
            sns.Subscription(
                self,
                "AlarmEmail",
                topic=self.alarm_topic,
                protocol=sns.SubscriptionProtocol.EMAIL,
                endpoint=self.settings.alarm_email,
            )
        self.observability = Observability(
            self,
            "Observability",
            state_machine=self.state_machine,
            functions=self.functions,
            alarm_topic=self.alarm_topic,
            sweep_minutes=sweep_minutes,
        )
        cdk.CfnOutput(self, "DashboardName", value=self.observability.dashboard.dashboard_name)
        cdk.CfnOutput(self, "AlarmTopicArn", value=self.alarm_topic.topic_arn)
        if "esm_logs" in self.functions:
            self._esm_log_subscription(self.functions["esm_logs"])

        cdk.CfnOutput(self, "StateMachineArn", value=self.state_machine.state_machine_arn)
        cdk.CfnOutput(self, "TopicArn", value=self.topic.topic_arn)
        for spec in TABLES:
            cdk.CfnOutput(self, f"{spec.key.capitalize()}TableName", value=self.tables[spec.key].table_name)

    # -------------------------------------------------------------------- builders
    def _table(self, spec: TableSpec) -> ddb.Table:
        table = ddb.Table(
            self,
            f"{spec.key.capitalize()}Table",
            partition_key=ddb.Attribute(name=spec.pk, type=ddb.AttributeType.STRING),
            sort_key=ddb.Attribute(name=spec.sk, type=ddb.AttributeType.STRING) if spec.sk else None,
            billing_mode=ddb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute=spec.ttl,
            point_in_time_recovery_specification=ddb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=cdk.RemovalPolicy.RETAIN if spec.key == "audit" else cdk.RemovalPolicy.DESTROY,
        )
        for index, attr in spec.gsis:
            table.add_global_secondary_index(
                index_name=index, partition_key=ddb.Attribute(name=attr, type=ddb.AttributeType.STRING)
            )
        return table

    def _environment(self) -> dict[str, str]:
        env = {spec.env: self.tables[spec.key].table_name for spec in TABLES}
        env.update(
            {
                "POWERTOOLS_SERVICE_NAME": "esm-medic",
                "POWERTOOLS_METRICS_NAMESPACE": "esm-medic",
                "ESM_MEDIC_SNS_TOPIC_ARN": self.topic.topic_arn,
                "ESM_MEDIC_KILL_SWITCH_PARAM": self.kill_switch.parameter_name,
                "ESM_MEDIC_DEFAULT_MODE_PARAM": self.default_mode.parameter_name,
                "ESM_MEDIC_EVENT_BUS": "default",
                # SecureStrings the operator creates (CloudFormation cannot create SecureString parameters); without
                # them approval links and Slack buttons are disabled and approvals still work by API / console.
                "ESM_MEDIC_APPROVAL_KEY_NAME": "/esm-medic/approval-link-key",
                "ESM_MEDIC_SLACK_SIGNING_SECRET_NAME": "/esm-medic/slack-signing-secret",
                "ESM_MEDIC_TICKET_DIR": "/tmp/esm-medic/tickets",
            }
        )
        if self.settings.ticket_providers:
            env["ESM_MEDIC_TICKET_PROVIDERS"] = ",".join(self.settings.ticket_providers)
        budget_env = {
            "sg": "ESM_MEDIC_BUDGET_PER_SG",
            "vpc": "ESM_MEDIC_BUDGET_PER_VPC",
            "account": "ESM_MEDIC_BUDGET_PER_ACCOUNT",
        }
        env.update({budget_env[k]: str(v) for k, v in self.settings.budgets.items()})
        return env

    def _function(self, name: str, key: kms.Key) -> lambda_.Function:
        spec = FUNCTIONS[name]
        ident = "".join(p.capitalize() for p in name.split("_"))
        log_group = logs.LogGroup(
            self,
            f"{ident}Logs",
            retention=logs.RetentionDays.ONE_MONTH,
            encryption_key=key,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        role = iam.Role(
            self,
            f"{ident}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"esm-medic {name}",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn, f"{log_group.log_group_arn}:*"],
            )
        )
        if self.settings.tracing:
            role.add_to_policy(
                iam.PolicyStatement(actions=["xray:PutTraceSegments", "xray:PutTelemetryRecords"], resources=["*"])
            )
        fn = lambda_.Function(
            self,
            f"{ident}Function",
            runtime=lambda_.Runtime.PYTHON_3_13,
            architecture=lambda_.Architecture.X86_64,
            handler=f"esm_medic.handlers.{name}.handler",
            code=self.code,
            layers=[self.layer],
            timeout=cdk.Duration.seconds(spec.timeout_s),
            memory_size=spec.memory_mb,
            environment={**self._environment(), **spec.extra_env},
            tracing=lambda_.Tracing.ACTIVE if self.settings.tracing else lambda_.Tracing.DISABLED,
            log_group=log_group,
            role=role,
            description=spec.description or f"esm-medic {name}",
        )
        self._grant(name, fn, role)
        if name in MEMBER_FUNCTIONS:
            grant_member_access(self, self.settings, name, fn, role)
        if spec.url:
            # NONE: Slack cannot sign in; the handler verifies Slack's v0 signature and HMAC-signed approval links
            url = fn.add_function_url(auth_type=lambda_.FunctionUrlAuthType.NONE)
            self.urls[name] = url.url
            cdk.CfnOutput(self, f"{ident}Url", value=url.url)
            # AWS_IAM: operators approve with their own credentials (`esm-medic approve ID`, signed with SigV4); the
            # principal ARN in the request context is the approver. Same code, on the `iam` alias.
            alias = lambda_.Alias(self, f"{ident}IamAlias", alias_name="iam", version=fn.current_version)
            iam_url = alias.add_function_url(auth_type=lambda_.FunctionUrlAuthType.AWS_IAM)
            cdk.CfnOutput(self, f"{ident}IamUrl", value=iam_url.url)
        return fn

    def _grant(self, name: str, fn: lambda_.Function, role: iam.Role) -> None:
        grants = FUNCTIONS[name].grants
        if "read" in grants:
            role.add_to_policy(iam.PolicyStatement(actions=list(READ_ACTIONS), resources=["*"]))
        if "secrets-shape" in grants:
            # The diagnosis checks a secret's shape (keys, PEM headers), never logging values. Scoped to MSK's
            # AmazonMSK_ secrets by default; widen with -c SecretArnPattern=... for self-managed secrets.
            pattern = self.node.try_get_context("SecretArnPattern") or (
                f"arn:{self.partition}:secretsmanager:{self.region}:{self.account}:secret:AmazonMSK_*"
            )
            role.add_to_policy(iam.PolicyStatement(actions=["secretsmanager:GetSecretValue"], resources=[pattern]))
        if "remediate" in grants:
            role.add_to_policy(iam.PolicyStatement(actions=remediation_actions(), resources=["*"]))
        if "sfn-token" in grants:
            # SendTask* support no resource-level permissions (only "*"); CDK's grant_task_response scopes them to
            # the state machine ARN, which IAM does not honour, and would also create a dependency cycle.
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"],
                    resources=["*"],
                )
            )
        if "people" in grants:
            # owner routing reads tags (ESM / function / cluster); ticket providers and the Slack app read their
            # credentials from Secrets Manager, kept under esm-medic/
            role.add_to_policy(
                iam.PolicyStatement(actions=["lambda:ListTags", "kafka:ListTagsForResource"], resources=["*"])
            )
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["secretsmanager:GetSecretValue"],
                    resources=[f"arn:{self.partition}:secretsmanager:{self.region}:{self.account}:secret:esm-medic/*"],
                )
            )
        if "esm-tags" in grants:
            role.add_to_policy(iam.PolicyStatement(actions=["lambda:ListTags"], resources=["*"]))
        if "esm-restart" in grants:
            role.add_to_policy(iam.PolicyStatement(actions=list(ESM_RESTART_ACTIONS), resources=["*"]))
        if "state" in grants:
            self.tables["state"].grant_read_write_data(fn)
        if "audit" in grants:
            # append-only: put and read, never update or delete
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan"],
                    resources=[self.tables["audit"].table_arn, f"{self.tables['audit'].table_arn}/index/*"],
                )
            )
        if "idempotency" in grants:
            self.tables["idempotency"].grant_read_write_data(fn)
        if "events" in grants:
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["events:PutEvents"],
                    resources=[f"arn:{self.partition}:events:{self.region}:{self.account}:event-bus/default"],
                )
            )
        if "sns" in grants:
            self.topic.grant_publish(fn)
        if "ssm" in grants:
            self.kill_switch.grant_read(fn)
            self.default_mode.grant_read(fn)
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["ssm:GetParameter"],
                    resources=[f"arn:{self.partition}:ssm:{self.region}:{self.account}:parameter/esm-medic/*"],
                )
            )

    def _esm_log_subscription(self, fn: lambda_.Function) -> None:
        """The log path: ESM system-log records (ESM_PROCESSING / POLLER_STATUS events, in the functions' log groups)
        go to the esm_logs handler. ``-c EsmLogSubscription=``:

        - ``account`` (default): one account-level subscription filter policy; esm-medic's own log groups are left
          out so the handler never reads itself (an account holds one such policy: merge by hand where one exists);
        - ``log-group``: the sweeper puts a subscription filter on each log group an ESM writes system logs to, as
          such ESMs appear (``esm_medic.detect.log_subscriptions``);
        - ``off``: no log path (the sweeper alone)."""
        mode = str(self.node.try_get_context("EsmLogSubscription") or "account")
        if mode not in ("account", "log-group", "off"):
            raise ValueError(f"EsmLogSubscription must be account, log-group or off, got {mode!r}")
        if mode == "off":
            return
        # member accounts' system logs: a cross-account destination and a stream (infra/member_logs.py)
        central_destination(self, self.settings, fn)
        fn.add_permission(
            "EsmLogsInvokeByLogs",
            principal=iam.ServicePrincipal("logs.amazonaws.com"),
            source_arn=f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:*",
            source_account=self.account,
        )
        if mode == "log-group":
            sweeper = self.functions["sweeper"]
            sweeper.add_environment("ESM_MEDIC_ESM_LOGS_DESTINATION_ARN", fn.function_arn)
            sweeper.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["logs:DescribeSubscriptionFilters", "logs:PutSubscriptionFilter"],
                    resources=[f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:/aws/lambda/*"],
                )
            )
            return
        own = [f.log_group.log_group_name for f in self.functions.values()]
        excluded = cdk.Fn.join("", ["LogGroupName NOT IN [", cdk.Fn.join(",", [f'"{n}"' for n in own]), "]"])
        policy = logs.CfnAccountPolicy(
            self,
            "EsmLogSubscriptionPolicy",
            policy_name="esm-medic-esm-system-logs",
            policy_type="SUBSCRIPTION_FILTER_POLICY",
            scope="ALL",
            selection_criteria=excluded,
            policy_document=cdk.Stack.of(self).to_json_string(
                {"DestinationArn": fn.function_arn, "FilterPattern": FILTER_PATTERN, "Distribution": "Random"}
            ),
        )
        policy.node.add_dependency(fn)

    def _state_machine(self, key: kms.Key) -> sfn.StateMachine:
        text = STATEMACHINE.read_text(encoding="utf-8")
        json.loads(text)  # fail synth early on broken JSON
        subs: dict[str, str] = {}
        for name in sorted(asl_placeholders(text)):
            if name in TUNABLES:
                subs[name] = str(self.node.try_get_context(name) or TUNABLES[name])
                continue
            handler = next((h for h in self.functions if function_placeholder(h) == name), None)
            if handler is None:
                raise ValueError(f"ASL placeholder ${{{name}}} has no function or tunable in infra")
            subs[name] = self.functions[handler].function_arn
        log_group = logs.LogGroup(
            self,
            "StateMachineLogs",
            retention=logs.RetentionDays.ONE_MONTH,
            encryption_key=key,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        machine = sfn.StateMachine(
            self,
            "Workflow",
            definition_body=sfn.DefinitionBody.from_string(text),
            definition_substitutions=subs,
            state_machine_type=sfn.StateMachineType.STANDARD,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
            tracing_enabled=self.settings.tracing,
        )
        for name, fn in self.functions.items():
            if function_placeholder(name) in subs:
                fn.grant_invoke(machine)
        self.substitutions = subs
        return machine

    def _rules(self) -> dict[str, events.Rule]:
        rules: dict[str, events.Rule] = {}
        members_may_put = bool(self.settings.member_accounts or self.settings.organization_id)
        for rule_id, (filename, target, state) in RULES.items():
            path = PATTERNS / filename
            if not path.exists() or target not in self.functions:
                continue
            doc = json.loads(path.read_text(encoding="utf-8"))
            if members_may_put and forwarded_pattern(path) is None:
                # esm-medic's own events: only this account's (the bus policy lets members put events too)
                doc = {**doc, "account": [self.account]}
            rule = events.Rule(
                self,
                f"{rule_id}Rule",
                event_pattern=event_pattern(doc),
                targets=[targets.LambdaFunction(self.functions[target], retry_attempts=4)],
                description=f"esm-medic: {filename} -> {target}",
            )
            set_rule_state(rule, state)
            rules[rule_id] = rule
        return rules


def _context(scope: Construct) -> dict[str, Any]:
    """The CDK context values infra.settings reads."""
    keys = [
        "ConfigFile",
        "DefaultMode",
        "SweepMinutes",
        "SweepHoldSeconds",
        "Budgets",
        "Tracing",
        "AlarmEmail",
        "SlackChannel",
        "TicketProviders",
        "MemberAccounts",
        "OrganizationId",
        "OrganizationalUnits",
    ]
    return {k: v for k in keys if (v := scope.node.try_get_context(k)) is not None}


def remediation_actions() -> list[str]:
    """The IAM actions the registered remediation actions declare (the single source for the remediate role)."""
    from esm_medic.remediate.registry import all_permissions

    # the engine's own needs (tables, ESM restart, kill switch) come from the state/audit/esm-restart/ssm grants
    return sorted(set(all_permissions(include_engine=False)))
