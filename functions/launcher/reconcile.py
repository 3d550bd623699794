"""The reconcile pass: no GitHub job is left queued silently.

GitHub does not redeliver a failed webhook, and a job whose session could
not be made would wait until GitHub cancels it a day later. Every five
minutes EventBridge Scheduler runs this pass in the launcher, within a time
budget and GitHub's rate limits:

1. **Pending jobs**: each job the launcher claimed but could not serve is
   tried again (every pass for its first hour, then every 15 minutes) until
   it has a session, ends, or is a day old (then it is dropped, counted).
2. **Visible failure**: a job still without a session 15 minutes after it
   was queued, or refused for a reason only its user can fix, gets one
   failing check run on its commit whose title says why.
3. **Lost deliveries** (with an App): each failed ``workflow_job`` delivery
   of the last hour without a later success is redelivered, once per guid.
4. **Interrupted jobs run again once**: a job whose spot session was taken
   back and that failed is re-run once its workflow run has completed.

What waits is found with one query of the job table's index per page,
never a scan. One job's failure is reported and the pass goes on; the pass
answers (and logs) its summary.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from jobs import GIVE_UP_AFTER, PENDING, REPORT, RERUN, JobLedger
from payloads import WorkflowJobDelivery
from session_naming.resources import error_code
from session_naming.settings import LauncherSettings

if TYPE_CHECKING:
    from session_naming.github import GitHubApp

REPORT_AFTER = timedelta(minutes=15)  # a job still without a session this long after it was queued is told why
LOST_WINDOW = timedelta(hours=1)  # deliveries older than this are not looked at
RUN_CHECK_EVERY = timedelta(minutes=5)  # a run that has not completed is asked about on the next pass
TIME_RESERVE_SECONDS = 5.0  # stop while this much of the invocation is left
# A create takes seconds (a runner, a key pair and group, a fleet or two): one is started only while this much is
# left, so the invocation is never cut off mid-create (an instance and a registration held until expiry).
SERVE_NEEDS_SECONDS = 20.0
PAGE = 25  # items a query reads at once: the pass stops between pages when its time is up
TITLES = {
    "no_capacity": "no_capacity: EC2 had no capacity for this job's machine",
    "no_profile": "no_profile: no runner profile matches this job's labels",
    "launch_failed": "launch_failed: the job's machine could not be started",
}
logger = Logger()
metrics = Metrics()


@dataclass
class Pass:
    """One pass's budget and what it did (the summary)."""

    now: datetime
    time_left: Callable[[], float]
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("pending", "created", "dropped", "redelivered", "failed_visibly", "reruns", "items_read", "github_calls"),
            0,
        )
    )
    cut_short: str | None = None
    oldest_pending: float = 0.0

    def has_time(self) -> bool:
        if self.cut_short is None and self.time_left() < TIME_RESERVE_SECONDS:
            self.cut_short = "time"
        return self.cut_short is None

    def summary(self) -> dict[str, Any]:
        return {**self.counts, "cut_short": self.cut_short}


def reconcile(settings: LauncherSettings, now: datetime, time_left: Callable[[], float]) -> dict[str, Any]:
    """Run the pass's four steps in order, each within what is left of the budget; answer the summary."""
    from github_jobs import github_app
    from sessions import ledger_of

    run = Pass(now, time_left)
    ledger = ledger_of(settings)
    app = None
    try:
        app = github_app(settings)
    except Exception as error:  # noqa: BLE001 - without the App the pass still retries pending jobs
        logger.warning("GitHub App unreadable: the pass only retries pending jobs", extra={"error": error_code(error)})
    retry_pending(settings, ledger, app, run)
    if app is not None:
        report_failures(settings, ledger, app, run)
        redeliver_lost(app, ledger, run)
        rerun_interrupted(settings, ledger, app, run)
    publish(run)
    count_live_sessions(settings, run.now)
    summary = run.summary()
    logger.info("reconcile pass finished", extra={"summary": summary})
    return summary


def waiting(ledger: JobLedger, queue: str, run: Pass, due: datetime | None = None) -> Iterator[dict]:
    """The items of a queue due by now, page by page, while the pass has time (each page one query)."""
    start: dict | None = None
    while run.has_time():
        items, start = ledger.due(queue, due or run.now, PAGE, start)
        run.counts["items_read"] += len(items)
        yield from items
        if not start:
            return


def retry_pending(settings: LauncherSettings, ledger: JobLedger, app: GitHubApp | None, run: Pass) -> None:
    """Each pending job (a failed create, a crash mid-create, a runner taken) gets its create again.

    One still without a session 15 minutes after it was queued is told why,
    once, on its commit (with an App).
    """
    from github_jobs import failure_reason, serve
    from session_naming.profiles import match
    from sessions import profiles_of

    tried: set[str] = set()  # a job that failed again is due again at once: once a pass is enough
    for item in waiting(ledger, PENDING, run):
        if not run.has_time():
            return
        delivery = delivery_of(item)
        job = str(delivery.workflow_job.id)
        if job in tried:
            continue
        tried.add(job)
        age = run.now - (delivery.workflow_job.created_at or run.now)
        if age > GIVE_UP_AFTER:
            ledger.leave_index(item, state="dropped")
            run.counts["dropped"] += 1
            logger.info("pending job dropped: a day old", extra={"job": job})
            continue
        run.counts["pending"] += 1
        run.oldest_pending = max(run.oldest_pending, age.total_seconds())
        if run.time_left() < SERVE_NEEDS_SECONDS:
            run.cut_short = "time"
            return
        if not ledger.take("github", job, run.now):
            continue  # a delivery is making it right now, or it was served meanwhile
        profiles = profiles_of(settings)
        profile = match(profiles, delivery.workflow_job.labels, settings.github_label) if profiles else None
        if profiles and profile is None:  # the profiles changed since: only the workflow's author can fix it now
            ledger.pend("github", job, "no_profile", run.now, delivery.workflow_job.created_at)
            if app is not None:
                report(settings, ledger, app, item, "no_profile", run)
            continue
        try:
            status, _ = serve(settings, delivery, profile, run.now)
        except Exception as error:  # noqa: BLE001 - one job's failure is that job's: it stays pending
            logger.info("pending job still without a session", extra={"job": job, "error": error_code(error)})
            if app is not None and age >= REPORT_AFTER:
                report(settings, ledger, app, item, failure_reason(error), run)
            continue
        if status == 201:
            run.counts["created"] += 1
            logger.info("pending job served", extra={"job": job})


def report_failures(settings: LauncherSettings, ledger: JobLedger, app: GitHubApp, run: Pass) -> None:
    """Jobs refused for a reason only their user can fix (no profile): one failing check run each."""
    for item in waiting(ledger, REPORT, run):
        if report(settings, ledger, app, item, item.get("reason", {}).get("S", "no_profile"), run):
            ledger.leave_index(item)
        else:  # GitHub refused or failed: the next pass tries again
            ledger.defer(item, REPORT, run.now + timedelta(minutes=5))


def report(settings: LauncherSettings, ledger: JobLedger, app: GitHubApp, item: dict, reason: str, run: Pass) -> bool:
    """One failing check run per job: marked first (two passes at once make one), unmarked if GitHub failed.

    Answers whether the job's failure is reported (now or before).
    """
    if not ledger.report_once(item):
        return True
    delivery = delivery_of(item)
    try:
        check_run(settings, app, delivery, reason, run)
    except Exception as error:  # noqa: BLE001 - logged; the next pass tries again
        logger.warning("check run not created", extra={"job": delivery.workflow_job.id, **_code(error)})
        ledger.unreport(item)
        return False
    run.counts["failed_visibly"] += 1
    logger.info("job failed visibly", extra={"job": delivery.workflow_job.id, "reason": reason})
    return True


def check_run(
    settings: LauncherSettings, app: GitHubApp, delivery: WorkflowJobDelivery, reason: str, run: Pass
) -> None:
    """A completed, failed check run named ``ec2-sessions`` on the job's commit, its title saying why."""
    from github_jobs import Scope, installation_of, owner_and_repo

    head_sha = delivery.workflow_job.head_sha
    if head_sha is None or delivery.repository is None:
        raise ValueError("the delivery names no commit")
    token = app.installation_token(installation_of(app, settings, Scope.of(delivery)))
    owner, repo = owner_and_repo(delivery)
    summary = (
        f"Job {delivery.workflow_job.id} asked for an ec2-sessions runner and has none: {TITLES[reason]}. "
        "The launcher keeps trying while the job is queued; see the README's troubleshooting."
    )
    app.create_check_run(token, owner, repo, head_sha, TITLES[reason], summary)
    run.counts["github_calls"] += 1


def redeliver_lost(app: GitHubApp, ledger: JobLedger, run: Pass) -> None:
    """Each failed ``workflow_job`` delivery of the last hour without a later success: redelivered once per guid."""
    if not run.has_time():
        return
    try:
        deliveries = app.hook_deliveries(since=(run.now - LOST_WINDOW).timestamp())
    except Exception as error:  # noqa: BLE001 - GitHub unreachable: the next pass looks again
        logger.warning("deliveries not listed", extra=_code(error))
        return
    run.counts["github_calls"] += 1
    succeeded = {d.guid for d in deliveries if d.succeeded}
    latest_failure: dict[str, Any] = {}
    for delivery in deliveries:  # newest first
        if delivery.event == "workflow_job" and not delivery.succeeded and delivery.guid not in succeeded:
            latest_failure.setdefault(delivery.guid, delivery)
    for guid, delivery in latest_failure.items():
        if not run.has_time():
            return
        if not ledger.remember_once(f"redelivered#{guid}", run.now):
            continue  # redelivered before: a redelivery that fails again is not redelivered again
        try:
            app.redeliver(delivery.id)
        except Exception as error:  # noqa: BLE001
            logger.warning("redelivery failed", extra={"guid": guid, **_code(error)})
            continue
        run.counts["github_calls"] += 1
        run.counts["redelivered"] += 1


def rerun_interrupted(settings: LauncherSettings, ledger: JobLedger, app: GitHubApp, run: Pass) -> None:
    """A failed job whose session was interrupted: its run's failed jobs are re-run once the run has completed."""
    from github_jobs import Scope, installation_of, owner_and_repo

    for item in waiting(ledger, RERUN, run):
        if not run.has_time():
            return
        delivery = WorkflowJobDelivery.model_validate(json.loads(item["run"]["S"]))
        run_id = delivery.workflow_job.run_id
        if run_id is None or delivery.repository is None:
            ledger.leave_index(item)
            continue
        try:
            token = app.installation_token(installation_of(app, settings, Scope.of(delivery)))
            owner, repo = owner_and_repo(delivery)
            workflow_run = app.workflow_run(token, owner, repo, run_id)
            run.counts["github_calls"] += 1
            if workflow_run is not None and workflow_run.status != "completed":
                ledger.defer(item, RERUN, run.now + RUN_CHECK_EVERY)
                continue
            if workflow_run is not None:
                app.rerun_failed_jobs(token, owner, repo, run_id)
                run.counts["github_calls"] += 1
                run.counts["reruns"] += 1
                logger.info("interrupted job re-run", extra={"job": delivery.workflow_job.id, "run": run_id})
        except Exception as error:  # noqa: BLE001 - GitHub's refusal: once per interruption, never retried forever
            logger.warning("re-run failed", extra={"job": delivery.workflow_job.id, **_code(error)})
        ledger.leave_index(item)


def delivery_of(item: dict) -> WorkflowJobDelivery:
    return WorkflowJobDelivery.model_validate(json.loads(item["delivery"]["S"]))


def publish(run: Pass) -> None:
    """The pass's counts as metrics (gauges included: the dashboard charts pending jobs and their age)."""
    for name, key in (
        ("JobsPending", "pending"),
        ("JobsDropped", "dropped"),
        ("JobsFailedVisibly", "failed_visibly"),
        ("DeliveriesRedelivered", "redelivered"),
        ("JobsRerun", "reruns"),
    ):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=run.counts[key])
    metrics.add_metric(name="OldestPendingSeconds", unit=MetricUnit.Seconds, value=run.oldest_pending)


def count_live_sessions(settings: LauncherSettings, now: datetime) -> None:
    """``LiveSessions`` per base, from the slots every create holds: one read per base a pass."""
    from aws_lambda_powertools.metrics import single_metric
    from sessions import slots_of

    slots = slots_of(settings)
    for base in settings.session_bases:
        with single_metric(name="LiveSessions", unit=MetricUnit.Count, value=slots.live(base, now)) as metric:
            metric.add_dimension(name="base", value=base)


def _code(error: Exception) -> dict[str, str]:
    return {"error": getattr(error, "code", None) or error_code(error)}
