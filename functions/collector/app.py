"""Collector handler: parse the trigger, load settings, sweep, report."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from session_naming import clients
from session_naming.resources import instance_cost
from session_naming.settings import load_collector
from sweep import summary_for_log, sweep
from trigger import requested_dry_run

logger = Logger()


@logger.inject_lambda_context
def lambda_handler(event, context):
    dry_run = requested_dry_run(event)  # a bad event fails before any AWS call
    settings = load_collector()
    started, now = time.monotonic(), datetime.now(UTC)
    dry_run = settings.dry_run or dry_run
    summary = sweep(
        clients.client,
        settings,
        now=now,
        time_left=lambda: context.get_remaining_time_in_millis() / 1000,
        dry_run=dry_run,
        on_outcome=lambda *outcome: log_outcome(*outcome, now=now, dry_run=dry_run),
        github=lambda: github_app(settings),
    )
    publish_metrics(summary, time.monotonic() - started)
    logger.info("sweep finished", extra={"summary": summary_for_log(summary)})  # one event: at most 256 KB
    return summary


def github_app(settings):
    """The stack's GitHub App (read from Secrets Manager in this function's region), or ``None``."""
    if settings.github.app_secret_arn is None:
        return None
    from session_naming.github import configured_app

    region = settings.github.app_secret_arn.split(":")[3]
    return configured_app(settings.github, clients.client("secretsmanager", region))


def log_outcome(region, found, outcome, detail, *, now, dry_run):
    if outcome == "failed":
        logger.warning(
            "delete failed", extra={"session": found.name, "kind": found.kind, "region": region, "error": detail}
        )
    elif outcome == "deleted":
        logger.info("deleted", extra={"session": found.name, "kind": found.kind, "region": region})
        cost = instance_cost(found, now) if found.kind == "instance" and not dry_run else None
        if cost is not None:  # what CI cost: by type and market
            logger.info("instance ended", extra={"session": found.name, **cost})
            with single_metric(name="InstanceSeconds", unit=MetricUnit.Seconds, value=cost["seconds"]) as metric:
                metric.add_dimension(name="instance_type", value=cost["instance_type"])
                metric.add_dimension(name="market", value=cost["market"])


def publish_metrics(summary: dict, seconds: float) -> None:
    """``Deleted``, ``Kept``, ``Failed``, ``InUse`` per kind, summed over regions; GiB removed; run time, budget."""
    counts: dict[tuple[str, str], int] = {}
    for kinds in summary["regions"].values():
        for kind, report in kinds.items():
            for outcome in ("deleted", "kept", "failed"):
                counts[kind, outcome] = counts.get((kind, outcome), 0) + len(report[outcome])
            in_use = sum(1 for kept in report["kept"] if kept.get("reason") == "in-use")
            counts[kind, "in_use"] = counts.get((kind, "in_use"), 0) + in_use
    names = {"deleted": "Deleted", "kept": "Kept", "failed": "Failed", "in_use": "InUse"}
    for (kind, outcome), count in counts.items():
        emit(names[outcome], count, MetricUnit.Count, kind=kind)
    for kind in ("volume", "snapshot"):
        emit("RemovedGiB", summary["removed"][f"{kind}_gib"], MetricUnit.Gigabytes, kind=kind)
    emit("SweepSeconds", seconds, MetricUnit.Seconds)
    emit("BudgetLeft", summary.get("budget_left", 0), MetricUnit.Count)


def emit(name: str, value: float, unit: MetricUnit, **dimensions: str) -> None:
    with single_metric(name=name, unit=unit, value=value) as metric:
        for key, dimension in dimensions.items():
            metric.add_dimension(name=key, value=dimension)
