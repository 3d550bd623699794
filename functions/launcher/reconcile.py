"""The reconcile pass: no GitHub job is left queued silently.

GitHub does not redeliver a failed webhook, and a job whose session could
not be made would wait until GitHub cancels it a day later. Every five
minutes EventBridge Scheduler runs this pass in the launcher, within a time
budget and GitHub's rate limits:

1. **Sessions gone**: a job served but not started when its session
   expires is pending again (the collector takes the session).
2. **Visible failure** (with an App): a job still without a session 15
   minutes after it was queued (or approved), or refused for a reason only
   its user can fix, gets one failing check run on its commit whose title
   says why.
3. **Lost deliveries** (with an App): each failed ``workflow_job`` delivery
   without a later success, since the last whole listing, is redelivered,
   once per guid.
4. **Interrupted jobs run again once**: a job whose spot session was taken
   back and that failed is re-run once its workflow run has completed.
5. **Pending jobs**: each job the launcher claimed but could not serve is
   tried again (every pass for its first hour, then every 15 minutes) until
   it has a session, ends, is a day old, or is no longer the stack's to
   serve (then it is dropped, counted).

Each step has its own share of the pass's time, and the creates of the
last step take what the others leave: a capacity outage with many pending
jobs never keeps failures from being told, deliveries from being redelivered
or runs from being re-run. What waits is found with one query of the job
table's index per page, never a scan. One job's failure is reported and the
pass goes on; the pass answers (and logs) its summary.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from jobs import GIVE_UP_AFTER, PENDING, REPORT, RERUN, SERVED, JobLedger, clock_of
from payloads import WorkflowJobDelivery
from session_naming.github import PER_PAGE, GitHubError
from session_naming.resources import error_code
from session_naming.settings import LauncherSettings

if TYPE_CHECKING:
    from session_naming.github import GitHubApp

REPORT_AFTER = timedelta(minutes=15)  # a job still without a session this long after it was queued is told why
LOST_WINDOW = timedelta(hours=1)  # the first listing of deliveries looks back this far,
CATCH_UP = timedelta(hours=24)  # a later one back to where the last whole listing began, at most this far
LISTING_OVERLAP = timedelta(minutes=5)  # GitHub's delivered_at and our clock may disagree a little
LISTING_PAGES = 10  # a pass lists at most 1,000 deliveries: a catch-up that needs more gives the rest up, logged
RERUN_TRIES = 5  # a re-run GitHub keeps failing is asked this many times, one a pass
RUN_CHECK_EVERY = timedelta(minutes=5)  # a run that has not completed is asked about on the next pass
TIME_RESERVE_SECONDS = 5.0  # stop while this much of the invocation is left
# A create takes seconds (a runner, a key pair and group, a fleet or two): one is started only while this much is
# left, so the invocation is never cut off mid-create (an instance and a registration held until expiry); each of
# its steps checks the time again and rolls back rather than run past the invocation's end.
SERVE_NEEDS_SECONDS = 20.0
# Each step's share of the pass's time, so that no step starves the others: creates for pending jobs (which can
# take seconds each, and fail slowly in a capacity outage) run last and take what the others leave.
SHARES = {"sessions gone": 0.05, "failures told": 0.15, "lost deliveries": 0.15, "re-runs": 0.15}
PAGE = 25  # items a query reads at once: the pass stops between pages when its time is up
TITLES = {
    "no_capacity": "no_capacity: EC2 had no capacity for this job's machine",
    "no_profile": "no_profile: no runner profile matches this job's labels",
    "launch_failed": "launch_failed: the job's machine could not be started",
}
FOR_GOOD = frozenset({403, 404, 422})  # GitHub's refusals of a check run that no retry changes
logger = Logger()
metrics = Metrics()


@dataclass
class Pass:
    """One pass's budget and what it did (the summary)."""

    now: datetime
    time_left: Callable[[], float]
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            (
                "pending",
                "created",
                "dropped",
                "redelivered",
                "failed_visibly",
                "reruns",
                "sessions_gone",
                "items_read",
                "github_calls",
            ),
            0,
        )
    )
    cut_short: str | None = None
    oldest_pending: float = 0.0
    floor: float = TIME_RESERVE_SECONDS  # the current step stops once no more than this is left

    def step(self, name: str) -> None:
        """Start a step: it may use its share of what is left (the last step, everything but the reserve)."""
        spare = max(0.0, self.time_left() - TIME_RESERVE_SECONDS)
        self.floor = TIME_RESERVE_SECONDS + spare * (1 - SHARES.get(name, 1.0))

    def has_time(self) -> bool:
        """Is there time left in this step's share? Running out of the pass's own reserve cuts the pass short."""
        left = self.time_left()
        if left < TIME_RESERVE_SECONDS and self.cut_short is None:
            self.cut_short = "time"
        return left > self.floor

    def summary(self) -> dict[str, Any]:
        return {**self.counts, "cut_short": self.cut_short}


def reconcile(settings: LauncherSettings, now: datetime, time_left: Callable[[], float]) -> dict[str, Any]:
    """Run the pass's steps in order, each within its share of the budget; answer the summary."""
    from github_jobs import github_app
    from sessions import ledger_of

    run = Pass(now, time_left)
    ledger = ledger_of(settings)
    app = None
    try:
        app = github_app(settings)
    except Exception as error:  # noqa: BLE001 - without the App the pass still retries pending jobs
        logger.warning("GitHub App unreadable: the pass only retries pending jobs", extra={"error": error_code(error)})
    repend_gone(ledger, run)
    if app is not None:
        report_failures(settings, ledger, app, run)
        redeliver_lost(app, ledger, run)
        rerun_interrupted(settings, ledger, app, run)
    retry_pending(settings, ledger, app, run)
    publish(run)
    count_live_sessions(settings, run.now)
    summary = run.summary()
    logger.info("reconcile pass finished", extra={"summary": summary})
    return summary


def waiting(ledger: JobLedger, queue: str, run: Pass, due: datetime | None = None) -> Iterator[dict]:
    """The items of a queue due by ``due`` (now), page by page, while the step has time (each page one query)."""
    start: dict | None = None
    while run.has_time():
        items, start = ledger.due(queue, due or run.now, PAGE, start)
        run.counts["items_read"] += len(items)
        yield from items
        if not start:
            return


def repend_gone(ledger: JobLedger, run: Pass) -> None:
    """A job served but still not started when its session expires has lost it (the collector takes it):
    pending again, and served with a new session by this pass's last step."""
    run.step("sessions gone")
    for item in waiting(ledger, SERVED, run):
        job = str(delivery_of(item).workflow_job.id)
        if ledger.rebind("github", job, run.now, "session_gone"):
            run.counts["sessions_gone"] += 1
            logger.info("job pending again: its session expired before it started", extra={"job": job})
        else:  # started or over meanwhile: nothing waits on it
            ledger.leave_index(item)


def retry_pending(settings: LauncherSettings, ledger: JobLedger, app: GitHubApp | None, run: Pass) -> None:
    """Each pending job (a failed create, a crash mid-create, a session gone) gets its create again.

    Whether the job may still have a machine is asked again first: its
    repository may have left ``GITHUB_REPOSITORIES``, its label the stack.
    One job's failure (its profiles unreadable, its create failing) is that
    job's: it stays pending, and the pass goes on.
    """
    from github_jobs import failure_reason, scope_of, serve
    from session_naming.profiles import has_label, match
    from sessions import profiles_of

    run.step("pending")
    tried: set[str] = set()  # a job that failed again is due again at once: once a pass is enough
    for item in waiting(ledger, PENDING, run):
        if not run.has_time():
            return
        delivery = delivery_of(item)
        job = str(delivery.workflow_job.id)
        if job in tried:
            continue
        tried.add(job)
        since = clock_of(item) or delivery.workflow_job.created_at or run.now
        age = run.now - since
        if age > GIVE_UP_AFTER:
            drop(ledger, item, run, "pending job dropped: a day old")
            continue
        repository = delivery.repository.full_name if delivery.repository else ""
        if not (settings.github.allows(repository) and has_label(delivery.workflow_job.labels, settings.github_label)):
            drop(ledger, item, run, "pending job dropped: its repository or label is no longer the stack's")
            continue
        run.counts["pending"] += 1
        run.oldest_pending = max(run.oldest_pending, age.total_seconds())
        if run.time_left() < SERVE_NEEDS_SECONDS:
            run.cut_short = "time"
            return
        if not ledger.take("github", job, run.now):
            continue  # a delivery is making it right now, or it was served meanwhile
        try:
            profiles = profiles_of(settings)
        except Exception as error:  # noqa: BLE001 - PROFILES unreadable: this job waits, the pass goes on
            ledger.pend("github", job, "launch_failed", run.now, since)
            logger.warning("pending job waits: the profiles cannot be read", extra={"job": job, **_code(error)})
            continue
        profile = match(profiles, delivery.workflow_job.labels, settings.github_label) if profiles else None
        if profiles and profile is None:  # the profiles changed since: only the workflow's author can fix it now
            ledger.pend("github", job, "no_profile", run.now, since)
            if app is not None:
                report(settings, ledger, app, item, "no_profile", run)
            continue
        try:
            status, _ = serve(settings, delivery, scope_of(settings, delivery), profile, run.now, run.time_left)
        except Exception as error:  # noqa: BLE001 - one job's failure is that job's: it stays pending
            logger.info("pending job still without a session", extra={"job": job, "why": failure_reason(error)})
            continue
        if status == 201:
            run.counts["created"] += 1
            logger.info("pending job served", extra={"job": job})


def drop(ledger: JobLedger, item: dict, run: Pass, why: str) -> None:
    ledger.leave_index(item, state="dropped")
    run.counts["dropped"] += 1
    logger.info(why, extra={"job": delivery_of(item).workflow_job.id})


def report_failures(settings: LauncherSettings, ledger: JobLedger, app: GitHubApp, run: Pass) -> None:
    """One failing check run per job that is without a session 15 minutes after its clock started (created_at,
    or its approval), or refused for a reason only its user can fix (no profile: at once)."""
    run.step("failures told")
    for item in waiting(ledger, REPORT, run):
        if report(settings, ledger, app, item, item.get("reason", {}).get("S", "no_profile"), run) != "retry":
            ledger.leave_index(item)
        else:  # GitHub failed: the next pass tries again
            ledger.defer(item, REPORT, run.now + RUN_CHECK_EVERY)
    for item in waiting(ledger, PENDING, run, due=run.now + GIVE_UP_AFTER):  # every pending job, however due
        if "reported" in item or item.get("state", {}).get("S") != "pending":
            continue
        delivery = delivery_of(item)
        reason = item.get("reason", {}).get("S", "launch_failed")
        since = clock_of(item) or delivery.workflow_job.created_at or run.now
        if reason == "no_profile" or run.now - since >= REPORT_AFTER:
            report(settings, ledger, app, item, reason, run)


def report(settings: LauncherSettings, ledger: JobLedger, app: GitHubApp, item: dict, reason: str, run: Pass) -> str:
    """One failing check run per job: marked first (two passes at once make one), unmarked if GitHub failed.

    Answers ``done`` (told, now or before), ``retry`` (GitHub failed: a later
    pass tries again, five times at most) or ``refused`` (GitHub refused it
    for good, 403, 404 or 422, or the job names no commit: never tried again).
    """
    from github_jobs import scope_of

    if not ledger.report_once(item):
        return "done"
    delivery = delivery_of(item)
    scope = scope_of(settings, delivery)
    try:
        head_sha = delivery.workflow_job.head_sha
        if head_sha is None or scope is None:
            raise ValueError("the delivery names no commit")
        summary = (
            f"Job {delivery.workflow_job.id} asked for an ec2-sessions runner and has none: {title(reason)}. "
            "The launcher keeps trying while the job is queued; see the README's troubleshooting."
        )
        run.counts["github_calls"] += 1
        app.create_check_run(scope.token(app), scope.owner, scope.repo, head_sha, title(reason), summary)
    except Exception as error:  # noqa: BLE001 - logged; retried unless refused for good
        final = isinstance(error, ValueError) or (isinstance(error, GitHubError) and error.status in FOR_GOOD)
        logger.warning("check run not created", extra={"job": delivery.workflow_job.id, "final": final, **_code(error)})
        ledger.report_failed(item, final=final)
        return "refused" if final else "retry"
    run.counts["failed_visibly"] += 1
    logger.info("job failed visibly", extra={"job": delivery.workflow_job.id, "reason": reason})
    return "done"


def title(reason: str) -> str:
    return TITLES.get(reason, TITLES["launch_failed"])


def redeliver_lost(app: GitHubApp, ledger: JobLedger, run: Pass) -> None:
    """Each failed ``workflow_job`` delivery without a later success: redelivered once per guid.

    The listing goes back to where the last whole listing began (a pass
    that did not run for a while, an App GitHub refused for an hour, lose
    nothing), a day at most (GitHub cancels a job queued that long), an
    hour the first time.
    """
    run.step("lost deliveries")
    if not run.has_time():
        return
    began = run.now
    last = ledger.listed_since()
    since = max(last - LISTING_OVERLAP, run.now - CATCH_UP) if last is not None else run.now - LOST_WINDOW
    try:
        deliveries = app.hook_deliveries(since=since.timestamp(), max_pages=LISTING_PAGES)
    except Exception as error:  # noqa: BLE001 - GitHub unreachable: the next pass looks again, as far back
        logger.warning("deliveries not listed", extra=_code(error))
        return
    run.counts["github_calls"] += 1
    if len(deliveries) >= LISTING_PAGES * PER_PAGE:  # a catch-up longer than a pass may take: what is older waits
        logger.warning(
            "deliveries listed in part: older ones not looked at", extra={"oldest": deliveries[-1].delivered_at}
        )
    succeeded = {d.guid for d in deliveries if d.succeeded}
    latest_failure: dict[str, Any] = {}
    for delivery in deliveries:  # newest first
        if delivery.event == "workflow_job" and not delivery.succeeded and delivery.guid not in succeeded:
            latest_failure.setdefault(delivery.guid, delivery)
    for guid, delivery in latest_failure.items():
        if not run.has_time():
            return  # the rest waits for the next pass, which lists from the same point
        if not ledger.remember_once(f"redelivered#{guid}", run.now):
            continue  # redelivered before: a redelivery that fails again is not redelivered again
        try:
            app.redeliver(delivery.id)
        except Exception as error:  # noqa: BLE001 - forgotten: the next pass asks again
            logger.warning("redelivery failed", extra={"guid": guid, **_code(error)})
            ledger.forget(f"redelivered#{guid}")
            continue
        run.counts["github_calls"] += 1
        run.counts["redelivered"] += 1
    ledger.listed(began, run.now)


def rerun_interrupted(settings: LauncherSettings, ledger: JobLedger, app: GitHubApp, run: Pass) -> None:
    """A failed job whose session was interrupted: its run's failed jobs are re-run once the run has completed.

    The item leaves the queue (a conditional write) before GitHub is asked,
    so two passes at once ask once; a re-run GitHub fails is asked again on
    a later pass, five times at most, and one it refuses for good never.
    """
    from github_jobs import scope_of

    run.step("re-runs")
    for item in waiting(ledger, RERUN, run):
        if not run.has_time():
            return
        delivery = WorkflowJobDelivery.model_validate(json.loads(item["run"]["S"]))
        run_id, scope = delivery.workflow_job.run_id, scope_of(settings, delivery)
        if run_id is None or scope is None:
            ledger.leave_index(item)
            continue
        try:
            token = scope.token(app)
            workflow_run = app.workflow_run(token, scope.owner, scope.repo, run_id)
            run.counts["github_calls"] += 1
            if workflow_run is not None and workflow_run.status != "completed":
                ledger.defer(item, RERUN, run.now + RUN_CHECK_EVERY)
                continue
            if not ledger.leave_index(item) or workflow_run is None:
                continue  # another pass took it, or GitHub has no such run any more
            app.rerun_failed_jobs(token, scope.owner, scope.repo, run_id)
            run.counts["github_calls"] += 1
            run.counts["reruns"] += 1
            logger.info("interrupted job re-run", extra={"job": delivery.workflow_job.id, "run": run_id})
        except Exception as error:  # noqa: BLE001 - asked again later, unless GitHub refused it for good
            final = isinstance(error, GitHubError) and error.status in FOR_GOOD
            logger.warning("re-run failed", extra={"job": delivery.workflow_job.id, "final": final, **_code(error)})
            if not final:
                ledger.retry(item, RERUN, run.now + RUN_CHECK_EVERY, RERUN_TRIES)


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
