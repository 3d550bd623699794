"""What operators get from the stack: the alarms' topic, the alarms, the dashboard, the saved log queries.

Read from template.yaml as cfn-lint reads it; the dashboard's ``!Sub``
body resolved as CloudFormation would (tests/support/dashboard.py) and
checked against the metric contract: every metric a widget or an alarm
reads is one the functions emit, under the same namespace, name and
dimension names. CloudWatch itself takes a dashboard or an alarm naming a
metric nobody emits, and shows an empty graph or stays OK for ever.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.dashboard import dashboard_body, dashboard_metrics, widget_metrics
from tools.cfn_template import Resolver, load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template()
RESOURCES = TEMPLATE["Resources"]
ALARMS = {name: r["Properties"] for name, r in RESOURCES.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
NEW_ALARMS = {
    "LauncherServerErrorsAlarm",
    "CreatesFailedAlarm",
    "CapacityExhaustedAlarm",
    "JobsFailedVisiblyAlarm",
    "JobPendingTooLongAlarm",
    "ReconcileFailuresAlarm",
    "LauncherErrorsAlarm",
}
NAMESPACE = "ec2-sessions"


def _contract(*entries: tuple[str, ...]) -> set[tuple[str, str, frozenset[str]]]:
    return {(NAMESPACE, name, frozenset({"service", *dimensions})) for name, *dimensions in entries}


# What the functions emit (namespace ec2-sessions; Powertools adds `service` to each): the design's contract.
CONTRACT = _contract(
    ("SessionsCreated", "base", "profile"),
    ("SessionsReleased", "base"),
    ("CreatesFailed", "base", "profile"),
    ("CapacityFallbacks", "profile"),
    ("CapacityExhausted", "profile"),
    ("SpotInterruptions", "profile"),
    ("SpotBreakerOpen", "profile"),
    ("QueueLatency", "profile"),
    ("JobsUnmatched",),
    ("JobsPending",),
    ("JobsDropped",),
    ("JobsFailedVisibly",),
    ("DeliveriesRedelivered",),
    ("JobsRerun",),
    ("ReconcileFailures",),
    ("OldestPendingSeconds",),
    ("InstanceSeconds", "instance_type", "market"),
    ("RunnerDeletesFailed",),
    ("RequestsRefused", "status"),
    ("LiveSessions", "base"),
    ("Deleted", "kind"),
    ("Kept", "kind"),
    ("Failed", "kind"),
    ("InUse", "kind"),
    ("SweepSeconds",),
    ("BudgetLeft",),
    ("RemovedGiB", "kind"),
    ("PoolClaims", "profile", "kind"),
    ("PoolMisses", "profile"),
    ("PoolReady", "profile", "state"),
    ("PoolFillFailed", "profile"),
    ("PoolReplaced", "profile", "reason"),
)
# What the design asks the dashboard to show.
DESIGN_SHOWS = {
    "LiveSessions",
    "SessionsCreated",
    "SessionsReleased",
    "CreatesFailed",
    "CapacityFallbacks",
    "CapacityExhausted",
    "SpotInterruptions",
    "QueueLatency",
    "JobsUnmatched",
    "JobsPending",
    "JobsFailedVisibly",
    "DeliveriesRedelivered",
    "Deleted",
    "InUse",
    "Failed",
    "SweepSeconds",
    "BudgetLeft",
    "PoolClaims",
    "PoolMisses",
    "PoolReady",
    "PoolFillFailed",
    "PoolReplaced",
}
# SELECT SUM(Name) FROM SCHEMA("namespace", "dimension", ...): a Metrics Insights query over an exact dimension set.
_INSIGHTS = re.compile(r"^SELECT (?P<stat>\w+)\((?P<name>\w+)\) FROM SCHEMA\((?P<schema>[^)]*)\)$")


def alarm_metric(alarm: dict) -> tuple[str, str, frozenset[str]]:
    """The one metric an alarm reads: its own, or the one its Metrics Insights query aggregates."""
    if "MetricName" in alarm:
        return alarm["Namespace"], alarm["MetricName"], frozenset(d["Name"] for d in alarm["Dimensions"])
    [query] = [m for m in alarm["Metrics"] if m.get("ReturnData")]
    match = _INSIGHTS.match(query["Expression"])
    assert match, query["Expression"]
    namespace, *dimensions = (part.strip().strip('"') for part in match["schema"].split(","))
    return namespace, match["name"], frozenset(dimensions)


def test_the_stack_makes_its_alarm_topic_and_outputs_its_arn():
    assert RESOURCES["AlarmTopic"]["Type"] == "AWS::SNS::Topic"
    assert TEMPLATE["Outputs"]["AlarmTopicArn"]["Value"] == {"Ref": "AlarmTopic"}
    # CloudWatch cannot publish to a topic under the AWS-managed key: no KmsMasterKeyId alias/aws/sns.
    assert "KmsMasterKeyId" not in RESOURCES["AlarmTopic"].get("Properties", {})


@pytest.mark.parametrize("extra", ["", "arn:aws:sns:us-east-1:123456789012:on-call"])
def test_every_alarm_notifies_the_stacks_topic_and_the_parameters_topic_when_one_is_given(extra):
    resolver = Resolver(TEMPLATE, {"AlarmTopicArn": extra}, resources={"AlarmTopic": "stack-topic"})

    for name, alarm in ALARMS.items():
        assert resolver.resolve(alarm["AlarmActions"]) == ["stack-topic", *([extra] if extra else [])], name


def test_the_new_alarms_read_metrics_the_functions_emit_and_name_their_runbook_section():
    assert set(ALARMS) >= NEW_ALARMS
    for name in NEW_ALARMS:
        namespace, metric, dimensions = alarm_metric(ALARMS[name])
        if namespace == NAMESPACE:
            assert (namespace, metric, dimensions) in CONTRACT, name
        assert f'docs/runbooks.md, "{name}"' in ALARMS[name]["AlarmDescription"], name


def test_the_launcher_alarms_watch_5xx_answers_and_a_job_pending_longer_than_15_minutes():
    errors, pending = ALARMS["LauncherServerErrorsAlarm"], ALARMS["JobPendingTooLongAlarm"]

    assert alarm_metric(errors) == ("AWS/Lambda", "Url5xxCount", frozenset({"FunctionName"}))
    assert errors["Dimensions"][0]["Value"] == {"Ref": "LauncherFunction"}
    assert (pending["MetricName"], pending["Statistic"], pending["Threshold"]) == (
        "OldestPendingSeconds",
        "Maximum",
        900,
    )
    assert pending["ComparisonOperator"] == "GreaterThanThreshold"


def test_a_launcher_invocation_that_fails_as_a_whole_is_alarmed_a_pass_killed_by_its_timeout_included():
    errors = ALARMS["LauncherErrorsAlarm"]

    assert alarm_metric(errors) == ("AWS/Lambda", "Errors", frozenset({"FunctionName"}))  # timeouts count here
    assert errors["Dimensions"][0]["Value"] == {"Ref": "LauncherFunction"}
    assert (errors["Statistic"], errors["Threshold"], errors["ComparisonOperator"]) == (
        "Sum",
        0,
        "GreaterThanThreshold",
    )


def test_alarms_over_every_profile_use_metrics_insights_never_search_which_alarms_refuse():
    for name in ("CreatesFailedAlarm", "CapacityExhaustedAlarm"):
        assert "profile" in alarm_metric(ALARMS[name])[2]
    for name, alarm in ALARMS.items():
        assert all("SEARCH(" not in m.get("Expression", "") for m in alarm.get("Metrics", [])), name


def test_every_alarm_has_its_section_in_the_runbooks():
    sections = set(re.findall(r"^## (\w+)", (ROOT / "docs" / "runbooks.md").read_text(), re.MULTILINE))

    assert set(ALARMS) <= sections, set(ALARMS) - sections


def test_the_dashboard_is_named_after_the_stack_and_each_widget_shows_metrics_or_every_alarm():
    dashboard = RESOURCES["OperatorDashboard"]["Properties"]
    widgets = dashboard_body(TEMPLATE)["widgets"]

    assert dashboard["DashboardName"] == {"Fn::Sub": "${AWS::StackName}-ec2-sessions"}
    assert {widget["type"] for widget in widgets} == {"metric", "alarm"}
    for widget in widgets:
        if widget["type"] == "alarm":
            shown = {arn.rsplit(":", 1)[1] for arn in widget["properties"]["alarms"]}
            assert shown == set(ALARMS)
        else:
            assert widget["properties"]["metrics"], widget["properties"]["title"]
            assert widget_metrics(widget), widget["properties"]["title"]
            assert widget["properties"]["region"] == "us-east-1"  # ${AWS::Region}, resolved


def test_every_metric_on_the_dashboard_is_one_the_functions_emit():
    ours = {metric for metric in dashboard_metrics(TEMPLATE) if metric[0] == NAMESPACE}
    aws = dashboard_metrics(TEMPLATE) - ours

    assert ours <= CONTRACT, ours - CONTRACT
    assert {name for _, name, _ in ours} >= DESIGN_SHOWS, DESIGN_SHOWS - {name for _, name, _ in ours}
    assert aws == {
        ("AWS/Lambda", "UrlRequestCount", frozenset({"FunctionName"})),
        ("AWS/Lambda", "Url5xxCount", frozenset({"FunctionName"})),
        ("AWS/Lambda", "Errors", frozenset({"FunctionName"})),
    }


def test_queue_latency_is_shown_at_p50_and_p90():
    expressions = [
        entry[-1]["expression"]
        for widget in dashboard_body(TEMPLATE)["widgets"]
        for entry in widget["properties"].get("metrics", [])
        if isinstance(entry[-1], dict) and "QueueLatency" in entry[-1].get("expression", "")
    ]

    assert {re.search(r"'(p\d+)'", e)[1] for e in expressions} == {"p50", "p90"}


def test_dashboard_metrics_reads_plain_metrics_and_searches_by_their_exact_dimension_set():
    widget = {
        "properties": {
            "metrics": [
                ["ec2-sessions", "JobsPending", "service", "ec2-sessions", {"stat": "Maximum"}],
                [
                    {
                        "id": "a",
                        "expression": "SEARCH('{\"ec2-sessions\",kind,service} MetricName=\"Deleted\"', 'Sum', 900)",
                    }
                ],
                [{"id": "b", "expression": "SUM(METRICS())"}],
            ]
        }
    }

    assert widget_metrics(widget) == {
        ("ec2-sessions", "JobsPending", frozenset({"service"})),
        ("ec2-sessions", "Deleted", frozenset({"kind", "service"})),
    }


def test_three_saved_queries_read_both_log_groups_for_messages_the_functions_log():
    queries = {name: r["Properties"] for name, r in RESOURCES.items() if r["Type"] == "AWS::Logs::QueryDefinition"}
    launcher = (ROOT / "functions" / "launcher" / "app.py").read_text()
    collector = (ROOT / "functions" / "collector" / "app.py").read_text()

    assert set(queries) == {"SessionStoryQuery", "FailedCreatesQuery", "LastSweepsQuery"}
    for query in queries.values():
        assert query["LogGroupNames"] == [{"Ref": "LauncherLogGroup"}, {"Ref": "CollectorLogGroup"}]
    assert re.search(r'^\| filter session = "[^"]+"$', queries["SessionStoryQuery"]["QueryString"], re.MULTILINE)
    failed = queries["FailedCreatesQuery"]["QueryString"]
    assert 'filter message = "create failed and was rolled back"' in failed and " by error" in failed
    assert re.search(r'"create failed and was rolled back",\s*extra=\{"error"', launcher)
    assert 'filter message = "sweep finished"' in queries["LastSweepsQuery"]["QueryString"]
    assert 'logger.info("sweep finished", extra={"summary"' in collector
    assert "append_keys(session=" in launcher and 'extra={"session": found.name' in collector
