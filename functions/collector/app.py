"""Collector handler: parse the trigger, load settings, sweep, report."""

from __future__ import annotations

from datetime import UTC, datetime

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from session_naming import clients
from session_naming.settings import load_collector
from sweep import summary_for_log, sweep
from trigger import requested_dry_run

logger = Logger()


@logger.inject_lambda_context
def lambda_handler(event, context):
    dry_run = requested_dry_run(event)  # a bad event fails before any AWS call
    settings = load_collector()
    summary = sweep(
        clients.client,
        settings,
        now=datetime.now(UTC),
        time_left=lambda: context.get_remaining_time_in_millis() / 1000,
        dry_run=settings.dry_run or dry_run,
        on_outcome=log_outcome,
        github=lambda: github_app(settings),
    )
    publish_metrics(summary)
    logger.info("sweep finished", extra={"summary": summary_for_log(summary)})  # one event: at most 256 KB
    return summary


def github_app(settings):
    """The stack's GitHub App (read from Secrets Manager in this function's region), or ``None``."""
    if settings.github.app_secret_arn is None:
        return None
    from session_naming.github import configured_app

    region = settings.github.app_secret_arn.split(":")[3]
    return configured_app(settings.github, clients.client("secretsmanager", region))


def log_outcome(region, found, outcome, detail):
    if outcome == "failed":
        logger.warning(
            "delete failed", extra={"session": found.name, "kind": found.kind, "region": region, "error": detail}
        )
    elif outcome == "deleted":
        logger.info("deleted", extra={"session": found.name, "kind": found.kind, "region": region})


def publish_metrics(summary: dict) -> None:
    """``Deleted``, ``Kept``, ``Failed`` per kind, summed over regions (one EMF line each)."""
    counts: dict[tuple[str, str], int] = {}
    for kinds in summary["regions"].values():
        for kind, report in kinds.items():
            for outcome in ("deleted", "kept", "failed"):
                counts[kind, outcome] = counts.get((kind, outcome), 0) + len(report[outcome])
    for (kind, outcome), count in counts.items():
        with single_metric(name=outcome.capitalize(), unit=MetricUnit.Count, value=count) as metric:
            metric.add_dimension(name="kind", value=kind)
