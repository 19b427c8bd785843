"""Alarms and a dashboard for the esm-medic stack.

Custom metrics are the ones the handlers emit through Powertools (namespace ``esm-medic``, default dimension
``service``). :data:`CUSTOM_METRICS` names each metric the dashboard or an alarm reads; ``tests/infra`` checks every
name against the metric names in the handlers' source, so a renamed metric cannot leave a silent widget behind.

Alarms read custom metrics with the ``service`` dimension only: the handlers emit the alarmed counters without extra
dimensions (a CloudWatch alarm matches one exact dimension set). Dashboard graphs use ``SEARCH`` over the namespace,
so they show a metric under every dimension set it is emitted with (by outcome, by step, by channel).
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

NAMESPACE = "esm-medic"
SERVICE = "esm-medic"


@dataclass(frozen=True)
class CustomMetric:
    name: str
    statistic: str = "Sum"
    description: str = ""


#: every custom metric the dashboard or the alarms read (name -> how)
CUSTOM_METRICS: dict[str, CustomMetric] = {
    m.name: m
    for m in (
        CustomMetric("Outcomes", description="executions by outcome"),
        CustomMetric("FixesApplied", description="remediation actions applied"),
        CustomMetric("RolledBack", description="remediation actions rolled back"),
        CustomMetric("TicketsOpened", description="tickets opened"),
        CustomMetric("ApprovalsRequested", description="approval requests sent"),
        CustomMetric("ApprovalDecisions", description="approvals answered"),
        CustomMetric("EsmsSwept", "Maximum", "Kafka ESMs seen by the last sweep"),
        CustomMetric("TransitionsEmitted", description="ESM Status Change events"),
        CustomMetric("Classified", description="statuses classified, by catalogue entry"),
        CustomMetric("SweepDuration", "Maximum", "sweep wall time (ms)"),
        CustomMetric("SweepFailed", description="failed sweeps"),
        CustomMetric("AccountsFailed", description="member accounts a sweep could not reach (role not assumable)"),
        CustomMetric("AccountsNotEnrolled", description="discovered organization accounts without the member stack"),
        CustomMetric("OrganizationDiscoveryFailed", description="sweeps that could not list the organization"),
        CustomMetric("UnlistedAccountEvents", description="events from accounts that are not members: ignored"),
        CustomMetric("OutboxPending", "Maximum", "notifications and tickets not yet delivered"),
        CustomMetric("BudgetExhausted", description="fixes refused because a blast-radius budget was used up"),
        CustomMetric("KillSwitchOn", "Maximum", "1 while the kill switch stops every change"),
    )
}


@dataclass(frozen=True)
class AlarmSpec:
    key: str
    description: str
    threshold: float = 1
    evaluation_periods: int = 1
    missing: cw.TreatMissingData = cw.TreatMissingData.NOT_BREACHING


def custom(name: str, period: cdk.Duration, statistic: str | None = None) -> cw.Metric:
    spec = CUSTOM_METRICS[name]
    return cw.Metric(
        namespace=NAMESPACE,
        metric_name=name,
        dimensions_map={"service": SERVICE},
        statistic=statistic or spec.statistic,
        period=period,
    )


def search(name: str, statistic: str = "Sum", period_s: int = 300, label: str = "") -> cw.MathExpression:
    """Every dimension set ``name`` is emitted with (by outcome, step, entry...), one line each."""
    return cw.MathExpression(
        expression=f"SEARCH('Namespace=\"{NAMESPACE}\" MetricName=\"{name}\"', '{statistic}', {period_s})",
        label=label or name,
        period=cdk.Duration.seconds(period_s),
        using_metrics={},
    )


class Observability(Construct):
    """The alarms (each notifying ``alarm_topic``) and one dashboard."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        state_machine: sfn.StateMachine,
        functions: dict[str, lambda_.Function],
        alarm_topic: sns.ITopic,
        sweep_minutes: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.alarms: dict[str, cw.Alarm] = {}
        five = cdk.Duration.minutes(5)
        sweep_period = cdk.Duration.minutes(max(sweep_minutes, 1) * 3)
        action = cw_actions.SnsAction(alarm_topic)

        def alarm(spec: AlarmSpec, metric: cw.IMetric) -> None:
            a = metric.create_alarm(
                self,
                spec.key,
                alarm_name=f"esm-medic-{spec.key}",
                alarm_description=spec.description,
                threshold=spec.threshold,
                evaluation_periods=spec.evaluation_periods,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=spec.missing,
            )
            a.add_alarm_action(action)
            self.alarms[spec.key] = a

        alarm(
            AlarmSpec("workflow-failed", "A remediation execution failed (the record step ticketed it)"),
            state_machine.metric_failed(period=five),
        )
        alarm(
            AlarmSpec("workflow-timed-out", "A remediation execution timed out"),
            state_machine.metric_timed_out(period=five),
        )
        sweeper = functions.get("sweeper")
        if sweeper is not None:
            alarm(AlarmSpec("sweeper-errors", "The ESM sweeper raised"), sweeper.metric_errors(period=five))
            alarm(AlarmSpec("sweep-failed", "A sweep could not list the ESMs"), custom("SweepFailed", five))
            alarm(
                AlarmSpec(
                    "member-unreachable",
                    "A member account could not be swept for 15 minutes (its esm-medic-diagnosis role was refused: "
                    "the log line AccountSweepFailed names the account and error)",
                    evaluation_periods=3,
                ),
                custom("AccountsFailed", five),
            )
            # late: no sweep at all within three intervals (missing data breaches), or a sweep longer than 80 % of
            # the interval (the next one would start before this one ends)
            late = cw.MathExpression(
                expression="IF(FILL(invocations, 0) < 1, 1, 0)",
                using_metrics={"invocations": sweeper.metric_invocations(period=sweep_period, statistic="Sum")},
                period=sweep_period,
                label="sweeps missing",
            )
            alarm(
                AlarmSpec(
                    "sweep-missing", "No sweep ran within three intervals", missing=cw.TreatMissingData.BREACHING
                ),
                late,
            )
            alarm(
                AlarmSpec(
                    "sweep-late",
                    "A sweep took longer than 80 % of the sweep interval",
                    threshold=0.8 * sweep_minutes * 60_000,
                ),
                custom("SweepDuration", cdk.Duration.minutes(max(sweep_minutes, 1)), "Maximum"),
            )
        alarm(
            AlarmSpec(
                "outbox-not-empty",
                "Notifications or tickets have waited undelivered for 15 minutes (esm-medic outbox list)",
                evaluation_periods=3,
            ),
            custom("OutboxPending", five, "Maximum"),
        )
        alarm(AlarmSpec("rolled-back", "A fix was rolled back: the ESM did not get better"), custom("RolledBack", five))
        alarm(
            AlarmSpec("budget-exhausted", "A blast-radius budget is used up: fixes are ticketed"),
            custom("BudgetExhausted", five),
        )
        alarm(AlarmSpec("kill-switch-on", "The kill switch is on: no change is made"), custom("KillSwitchOn", five))

        self.dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=f"esm-medic-{cdk.Aws.REGION}")
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Executions by outcome",
                left=[search("Outcomes", label="outcomes")],
                right=[state_machine.metric_failed(period=five), state_machine.metric_timed_out(period=five)],
                width=12,
            ),
            cw.GraphWidget(
                title="Fixes applied / rolled back",
                left=[search("FixesApplied"), search("RolledBack")],
                width=12,
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Tickets opened, approvals waiting / answered",
                left=[search("TicketsOpened"), search("ApprovalsRequested"), search("ApprovalDecisions")],
                width=12,
            ),
            cw.GraphWidget(
                title="ESMs swept, transitions, by catalogue entry",
                left=[search("EsmsSwept", "Maximum"), search("TransitionsEmitted")],
                right=[search("Classified", label="by entry")],
                width=12,
            ),
        )
        sweeper_widgets: list[cw.IWidget] = [
            cw.GraphWidget(
                title="Sweeper duration and errors",
                left=[custom("SweepDuration", five, "Maximum")],
                right=[
                    custom("SweepFailed", five),
                    custom("AccountsFailed", five),
                    custom("AccountsNotEnrolled", five, "Maximum"),
                    custom("OrganizationDiscoveryFailed", five),
                    custom("UnlistedAccountEvents", five),
                ]
                + ([sweeper.metric_errors(period=five)] if sweeper is not None else []),
                width=12,
            ),
            cw.GraphWidget(
                title="Undelivered notifications, budgets, kill switch",
                left=[custom("OutboxPending", five, "Maximum")],
                right=[custom("BudgetExhausted", five), custom("KillSwitchOn", five)],
                width=12,
            ),
        ]
        self.dashboard.add_widgets(*sweeper_widgets)
        self.dashboard.add_widgets(
            cw.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms.values()), width=24),
        )
