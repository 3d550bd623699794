"""The collector's handler: its trigger, its summary, its metrics and its log lines."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from session_naming.settings import ConfigError
from trigger import InvalidTrigger

from tests.support.clients import client_factory
from tests.support.handlers import LambdaContext, load_event, load_handler
from tests.support.seed import inventory, name_expiring, seed

REGION = "us-east-1"


@pytest.fixture
def collector(aws, monkeypatch):
    monkeypatch.setenv("REGIONS", REGION)
    module = load_handler("collector")
    stream = io.StringIO()
    capture = logging.StreamHandler(stream)
    capture.setFormatter(module.logger.registered_formatter)
    module.logger.addHandler(capture)
    module.logs = stream
    yield module
    module.logger.removeHandler(capture)


def metric_lines(text: str) -> list[dict]:
    return [line for line in map(json.loads, filter(None, text.splitlines())) if "_aws" in line]


def test_handler_sweeps_and_reports_metrics_and_one_line_per_deletion(collector, capsys):
    clients = client_factory()
    expired = name_expiring("ec2-test-runner", -timedelta(hours=1), datetime.now(UTC))
    live = name_expiring("ec2-test-runner", timedelta(hours=1), datetime.now(UTC))
    for name in (expired, live):
        seed(clients, REGION, name, kinds=("key_pair", "security_group"))

    summary = collector.lambda_handler(load_event("collector-scheduled.json"), LambdaContext())

    assert summary["totals"] == {"deleted": 2, "kept": 2, "failed": 0}
    metrics = {
        (m["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"], m.get("kind")): m
        for m in metric_lines(capsys.readouterr().out)
    }
    assert metrics["Deleted", "key_pair"]["Deleted"] == [1.0]
    assert metrics["Kept", "security_group"]["Kept"] == [1.0]
    assert metrics["Failed", "instance"]["Failed"] == [0.0]
    assert ["kind", "service"] in metrics["Deleted", "key_pair"]["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
    lines = [json.loads(line) for line in collector.logs.getvalue().splitlines()]
    deletions = [line for line in lines if line["message"] == "deleted"]
    assert sorted(line["kind"] for line in deletions) == ["key_pair", "security_group"]
    assert {line["session"] for line in deletions} == {expired}
    assert [line["summary"] for line in lines if line["message"] == "sweep finished"] == [summary]


def test_handler_refuses_an_event_that_asks_for_more_than_dry_run_before_any_aws_call(collector):
    clients = client_factory()
    seed(clients, REGION, name_expiring("ec2-test-runner", -timedelta(hours=1), datetime.now(UTC)))
    before = inventory(clients, REGION)

    with pytest.raises(InvalidTrigger, match="bases"):
        collector.lambda_handler({"dry_run": False, "bases": ["everything"]}, LambdaContext())

    assert inventory(clients, REGION) == before


def test_handler_fails_loudly_on_bad_configuration(collector, monkeypatch):
    monkeypatch.setenv("MAX_DELETIONS", "0")

    with pytest.raises(ConfigError, match="MAX_DELETIONS"):
        collector.lambda_handler({}, LambdaContext())


def test_event_cannot_turn_off_a_configured_dry_run(collector, monkeypatch):
    monkeypatch.setenv("DRY_RUN", "true")
    clients = client_factory()
    seed(clients, REGION, name_expiring("ec2-test-runner", -timedelta(hours=1), datetime.now(UTC)), kinds=("key_pair",))

    summary = collector.lambda_handler(load_event("collector-schedule-input.json"), LambdaContext())

    assert summary["dry_run"] is True
    assert len(inventory(clients, REGION)["key_pair"]) == 1


def huge_summary(regions: int = 4, per_list: int = 3000) -> dict:
    """A run far past any log event's size: every kind of every region with thousands of entries."""
    from session_naming.resources import ORDER

    name = "ec2-test-runner/20261124T220000Z/{:016x}"
    report = {
        "deleted": [name.format(i) for i in range(per_list)],
        "kept": [{"name": name.format(i), "reason": "not-expired"} for i in range(per_list)],
        "failed": [{"name": name.format(i), "error": "UnauthorizedOperation"} for i in range(per_list // 30)],
    }
    kinds = regions * len(ORDER)
    return {
        "dry_run": False,
        "cut_short": "max-deletions",
        "totals": {outcome: len(entries) * kinds for outcome, entries in report.items()},
        "regions": {f"region-{r}": {kind.name: report for kind in ORDER} for r in range(regions)},
    }


def test_sweep_finished_stays_one_log_event_under_256_kb_however_large_the_run(collector, monkeypatch):
    summary = huge_summary()
    monkeypatch.setattr(collector, "sweep", lambda *args, **kwargs: summary)
    monkeypatch.setattr(collector, "publish_metrics", lambda summary, seconds: None)

    answer = collector.lambda_handler({}, LambdaContext())

    assert answer is summary  # the function's result is the whole summary
    [line] = [line for line in collector.logs.getvalue().splitlines() if '"sweep finished"' in line]
    assert len(line.encode()) < 256 * 1024
    logged = json.loads(line)["summary"]
    assert logged["totals"] == summary["totals"] and logged["cut_short"] == "max-deletions"
    for region, kinds in summary["regions"].items():
        assert logged["regions"][region].keys() == kinds.keys()
        for kind, report in kinds.items():
            cut = logged["regions"][region][kind]
            for outcome, entries in report.items():
                assert cut[outcome] == entries[: len(cut[outcome])]
                assert len(cut[outcome]) + cut.get("more", {}).get(outcome, 0) == len(entries)
