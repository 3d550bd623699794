"""Every metric the dashboard and the alarms chart is one the functions really write: same namespace, name, dimensions.

One scenario drives both handlers down every path that counts something
(creates, capacity, spot, jobs, the reconcile pass, releases, sweeps),
reads the metrics back from what they wrote (Powertools' EMF lines), and
holds the template's dashboard and alarms against them. A widget naming a
metric nobody writes would show an empty graph forever; an alarm on one
would never fire.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from session_naming import clients
from session_naming.settings import load_launcher

from tests.support.capacity import Capacity
from tests.support.dashboard import dashboard_metrics
from tests.support.deliveries import github_event, workflow_job
from tests.support.faults import Faults
from tests.support.function_url import release_event, url_event
from tests.support.handlers import LambdaContext, load_event, load_handler
from tests.support.metrics import emitted
from tests.support.seed import name_expiring, seed
from tests.support.stack import REGION, make_launch_template
from tools.cfn_template import load_template

NAMESPACE = "ec2-sessions"
TEMPLATE = load_template()


def written(output: str) -> set[tuple[str, str, frozenset[str]]]:
    return {(m["namespace"], m["name"], frozenset(m["dimensions"])) for m in emitted(output)}


def alarm_metrics(template) -> set[tuple[str, str, frozenset[str]]]:
    """The metrics the stack's own alarms read by name (metric math included; Insights queries by their SCHEMA)."""
    found = set()
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        properties = resource["Properties"]
        stats = [properties] if "MetricName" in properties else []
        stats += [m["MetricStat"]["Metric"] for m in properties.get("Metrics", []) if "MetricStat" in m]
        for stat in stats:
            dimensions = frozenset(d["Name"] for d in stat.get("Dimensions", []))
            found.add((stat["Namespace"], stat["MetricName"], dimensions))
        for query in (m.get("Expression", "") for m in properties.get("Metrics", [])):
            for name, schema in re.findall(r'SELECT \w+\("?(\w+)"?\) FROM SCHEMA\(([^)]*)\)', query):
                namespace, *dimensions = (part.strip().strip('"') for part in schema.split(","))
                found.add((namespace, name, frozenset(dimensions)))
    return found


@pytest.fixture
def launcher(launcher, look, github_fake):
    github_fake.install("Codertocat")
    launcher.env("GITHUB_APP_SECRET_ARN", github_fake.app_secret(look("secretsmanager", REGION)))
    launcher.env("GITHUB_API_URL", github_fake.url)
    launcher.env("SPOT_BREAKER_INTERRUPTIONS", "1")
    template = make_launch_template(look)
    pooled = {"labels": ["ec2-session", "pooled"], "launch_template_id": template, "pool": {"stopped": 1, "hot": 1}}
    launcher.env(
        "PROFILES",
        json.dumps(
            {
                "small": {"labels": ["ec2-session"], "launch_template_id": template, "market": "spot-first"},
                "pooled": pooled,
            }
        ),
    )
    launcher.github = github_fake
    return launcher


def drive_every_counting_path(launcher, look, github):
    """Each step is one path that counts; together they are every metric the code writes."""
    capacity = Capacity().attach(clients.client("ec2", REGION))
    handler = launcher.module.lambda_handler

    def queued(job, labels=("ec2-session",), **fields):
        return github_event(workflow_job("queued", job, labels=labels, **fields), f"q{job}")

    _, made = launcher(queued(1))  # SessionsCreated
    launcher(url_event("POST", "/sessions", {}, secret="wrong"))  # RequestsRefused
    launcher(queued(2, labels=["ec2-session", "gpu"]))  # JobsUnmatched
    capacity.exhaust("spot")
    launcher(queued(3))  # CapacityFallbacks
    capacity.exhaust("on-demand")
    launcher(queued(4, created_at=datetime.now(UTC) - timedelta(minutes=20)))  # CapacityExhausted; pending
    capacity.restore()
    Faults().inject(clients.client("ec2", REGION), "CreateFleet", "InternalError", times=1)
    launcher(url_event("POST", "/sessions", {"instance": True}))  # CreatesFailed
    interruption = load_event("spot-interruption.json")
    interruption["detail"]["instance-id"] = made["instances"][0]["id"]
    handler(interruption, LambdaContext())  # SpotInterruptions, SessionsReleased, InstanceSeconds
    launcher(url_event("POST", "/sessions", {"instance": True}))  # SpotBreakerOpen (the breaker opened on 1)
    started = datetime.now(UTC)
    in_progress = workflow_job("in_progress", 5, labels=["ec2-session"], created_at=started, started_at=started)
    launcher(github_event(in_progress, "p5"))  # QueueLatency
    drive_the_pools(launcher, queued)
    _, other = launcher(url_event("POST", "/sessions", {}))
    launcher(release_event(other["session"]))  # SessionsReleased (a route)
    github.add_delivery("lost", status_code=502)
    handler(load_event("launcher-reconcile.json"), LambdaContext())  # the pass's counts and gauges
    launcher(queued(6))
    github.fail(times=20, status=403)
    launcher(github_event(workflow_job("completed", 6, labels=["ec2-session"]), "c6"))  # RunnerDeletesFailed
    launcher.env("IDEMPOTENCY_TABLE", "no-such-table")
    with pytest.raises(Exception):  # noqa: B017, PT011 - any failure of the pass as a whole
        handler(load_event("launcher-reconcile.json"), LambdaContext())  # ReconcileFailures
    expired = name_expiring("ec2-test-runner", -timedelta(hours=1), datetime.now(UTC))
    seed(look, REGION, expired)
    load_handler("collector").lambda_handler(load_event("collector-scheduled.json"), LambdaContext())  # the sweep's


def drive_the_pools(launcher, queued):
    """A pool fills and gets ready, a job claims its hot instance, the next misses, a fill fails, one ages out."""
    import pool_upkeep

    pool_pass = {"source": "ec2-sessions.scheduler", "detail-type": "Scheduled Event", "detail": {"pass": "pool"}}
    launcher.module.lambda_handler(pool_pass, LambdaContext())  # fills
    launcher.module.lambda_handler(pool_pass, LambdaContext())  # PoolReady (the hot one runs, its checks ok)
    launcher(queued(7, labels=["ec2-session", "pooled"]))  # PoolClaims
    launcher(queued(8, labels=["ec2-session", "pooled"]))  # PoolMisses (the stopped one never powered off)
    later = datetime.now(UTC)
    pool_upkeep.upkeep(load_launcher(), later + timedelta(minutes=11), lambda: 50.0)  # PoolFillFailed; refills
    pool_upkeep.upkeep(load_launcher(), later + timedelta(minutes=12), lambda: 50.0)  # the new hot one is ready
    pool_upkeep.upkeep(load_launcher(), later + timedelta(minutes=740), lambda: 50.0)  # PoolReplaced (age)


def test_every_dashboard_and_alarm_metric_is_one_the_functions_write(launcher, look, capsys, monkeypatch):
    monkeypatch.setenv("REGIONS", REGION)
    capsys.readouterr()

    drive_every_counting_path(launcher, look, launcher.github)
    written_now = written(capsys.readouterr().out)

    ours = {m for m in dashboard_metrics(TEMPLATE) | alarm_metrics(TEMPLATE) if m[0] == NAMESPACE}
    assert ours, "the dashboard charts none of the stack's own metrics"
    assert ours <= written_now, sorted(ours - written_now)
