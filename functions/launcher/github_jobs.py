"""GitHub's ``workflow_job`` webhook: a labelled job gets one session when queued, released when completed.

Labels match in any letter case (GitHub's rule) and the repository must be
in the allow-list, both before any AWS or GitHub call. ``queued`` claims the
job, so redeliveries and second hooks answer the same session; ``completed``
(any conclusion, cancelled included) records the job as over and releases
what it has, so a ``queued`` that comes later makes nothing.

With a GitHub App configured (and a launch template, since a runner needs an
instance) the job runs on its session: a just-in-time runner is registered
under the session's runner name, its configuration goes only to the
SecureString ``/<session>/runner-jitconfig``, and the instance's user data
fetches it and runs the runner. A failure at any step deletes the
registration with everything else.
"""

from __future__ import annotations

from contextlib import suppress
from datetime import datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from errors import JobOver
from launch import Extras, create_session, release_job, sessions_tagged
from payloads import WorkflowJobDelivery, parse_body
from session_naming import GITHUB_JOB_TAG, GITHUB_RUNNER_TAG, SESSION_TAG, SessionName, clients
from session_naming.github import GitHubError
from session_naming.settings import LauncherSettings
from sessions import ledger_of, slots_of

if TYPE_CHECKING:
    from session_naming.github import GitHubApp

JITCONFIG = "runner-jitconfig"
MAX_QUEUED_AGE = timedelta(hours=72)
logger = Logger()
metrics = Metrics()  # Powertools' metrics are one set per process: the handler's ``log_metrics`` flushes these


def handle(settings: LauncherSettings, event: str, body: bytes, now: datetime) -> tuple[int, dict[str, Any]]:
    if event == "ping":
        return 200, {"ok": True}
    if event != "workflow_job":
        return 202, {"ignored": "only workflow_job events make sessions"}
    delivery = parse_body(body, WorkflowJobDelivery)
    job = delivery.workflow_job
    if settings.github_label.lower() not in {label.lower() for label in job.labels}:
        return 202, {"ignored": f"the job has no {settings.github_label} label"}
    repository = delivery.repository.full_name if delivery.repository else ""
    if not settings.github.allows(repository):
        return 202, {"ignored": "the repository is not in GITHUB_REPOSITORIES"}
    if delivery.action == "queued":
        if job.created_at is not None and now - job.created_at > MAX_QUEUED_AGE:
            # GitHub cancels a job queued 24 h; its record lives 4 days: an older queued is a replay.
            return 202, {"ignored": "the job was queued more than 72 hours ago"}
        return queued(settings, delivery, now)
    if delivery.action == "completed":
        return completed(settings, delivery, now)
    return 202, {"ignored": "only queued and completed jobs change sessions"}


def github_app(settings: LauncherSettings) -> GitHubApp | None:
    """The configured GitHub App, or ``None`` (then sessions are made without runners)."""
    from session_naming.github import configured_app

    return configured_app(settings.github, clients.client("secretsmanager", settings.region))


def queued(settings: LauncherSettings, delivery: WorkflowJobDelivery, now: datetime) -> tuple[int, dict[str, Any]]:
    job, ledger, slots = str(delivery.workflow_job.id), ledger_of(settings), slots_of(settings)
    try:
        existing = ledger.claim("github", job, now)
    except JobOver:
        return 202, {"ignored": "the job is already over"}
    if existing is not None:
        return 200, existing
    name = SessionName.make(settings.session_bases[0], settings.default_lifetime, now)
    app = github_app(settings) if settings.launch_template_id else None
    registration, token = None, None
    try:
        extras = Extras(tags={GITHUB_JOB_TAG: job})
        if app is not None and delivery.repository is not None:
            from session_naming.github import runner_name
            from user_data import runner_user_data

            token = app.installation_token(installation_of(app, settings, delivery))
            scope = settings.github.runner_scope
            owner, repo = owner_and_repo(delivery)
            registration = app.generate_jitconfig(
                token,
                scope,
                owner,
                repo if scope == "repo" else None,
                runner_name(name),
                settings.github.runner_group_id,
                delivery.workflow_job.labels,
            )
            extras = Extras(
                tags={GITHUB_JOB_TAG: job, GITHUB_RUNNER_TAG: registration.path},
                secrets={JITCONFIG: registration.encoded_jit_config},
                user_data=runner_user_data(f"/{name}/{JITCONFIG}"),
            )
        answer = create_session(
            clients.client,
            settings,
            name.base,
            settings.default_lifetime,
            now,
            slots=slots,
            instance=bool(settings.launch_template_id),
            extras=extras,
            name=name,
        )
        if registration is not None:
            answer["runner"] = {"id": registration.id, "name": registration.name}
    except BaseException as error:
        if registration is not None and app is not None and token is not None:
            with suppress(Exception):  # left offline; the collector removes it once the session has expired
                app.delete_runner(token, registration.path)
        if isinstance(error, Exception) and ledger.is_over("github", job):
            # The job ended mid-create and its completed delivery released what it found: a step
            # that needed a released resource failed, and the rollback took the rest.
            return 202, {"ignored": "the job ended while its session was made; it is released"}
        ledger.abandon("github", job)
        raise
    try:
        ledger.settle("github", job, answer)
    except JobOver:
        release(settings, delivery, {name: dict(extras.tags)})
        return 202, {"ignored": "the job ended while its session was made; it is released"}
    return 201, answer


def completed(settings: LauncherSettings, delivery: WorkflowJobDelivery, now: datetime) -> tuple[int, dict[str, Any]]:
    """The job is over: its sessions go, and so does the session whose runner ran it (when that is provably ours).

    A JIT runner takes any queued job with matching labels, not only the one
    it was registered for, so the session that ran this job is found by the
    delivery's ``runner_name`` too, and a session of this job whose runner is
    busy (with another job) is left running: that job's own ``completed``
    releases it.
    """
    job = str(delivery.workflow_job.id)
    ledger_of(settings).end("github", job, now)
    sessions = sessions_tagged(clients.client, settings, GITHUB_JOB_TAG, job)
    sessions.update(session_that_ran(settings, delivery))
    return 200, release(settings, delivery, sessions)


def session_that_ran(settings: LauncherSettings, delivery: WorkflowJobDelivery) -> dict[SessionName, dict[str, str]]:
    """The session named by ``runner_name``, only if its registration lies in the delivery's own scope.

    A runner name is public (every job log prints it) and whoever administers
    a repository can register a runner under any name: the name alone proves
    nothing. The session's registration tag must name this delivery's
    repository (scope ``repo``) or organisation (scope ``org``); a session
    without one (made by curl, GitLab or without an App) is never found so.
    """
    from session_naming.github import sessions_of_runner_name

    found: dict[SessionName, dict[str, str]] = {}
    for session in sessions_of_runner_name(delivery.workflow_job.runner_name, settings.session_bases):
        for name, tags in sessions_tagged(clients.client, settings, SESSION_TAG, str(session)).items():
            if in_scope(tags.get(GITHUB_RUNNER_TAG), settings, delivery):
                found[name] = tags
    return found


def in_scope(path: str | None, settings: LauncherSettings, delivery: WorkflowJobDelivery) -> bool:
    """Does the registration ``path`` lie in the delivery's repository or organisation (any letter case)?"""
    from session_naming.github import parse_registration_path

    where = parse_registration_path(path)
    owner, repo = (part.lower() for part in owner_and_repo(delivery))
    if where is None or where[0] != settings.github.runner_scope or where[1].lower() != owner:
        return False
    return where[0] == "org" or (where[2] or "").lower() == repo


def release(
    settings: LauncherSettings, delivery: WorkflowJobDelivery, sessions: dict[SessionName, dict[str, str]]
) -> dict[str, Any]:
    """Release sessions and delete their runner registrations (gone already is done); a busy runner's session stays.

    AWS resources go whatever GitHub answers: when the App, its token or a
    runner cannot be read, the sessions are released all the same and their
    registrations are counted (``RunnerDeletesFailed``), left to the
    collector and to GitHub's own removal of offline ephemeral runners.
    """
    registered = {name: tags[GITHUB_RUNNER_TAG] for name, tags in sessions.items() if tags.get(GITHUB_RUNNER_TAG)}
    runners: dict[SessionName, str] = {}  # session -> its registration's path, checked on GitHub
    busy: list[str] = []
    app, token, unreachable = None, None, False
    if registered:
        try:
            app = github_app(settings)
            if app is not None:
                token = app.installation_token(installation_of(app, settings, delivery))
                runners, busy = _runners_of(app, token, settings, delivery, registered)
        except Exception as error:  # noqa: BLE001 - GitHub's failure must not keep AWS resources alive
            logger.warning("GitHub not reachable: sessions released, registrations left", extra=_code(error))
            unreachable = True
    answer = release_job(clients.client, settings, [n for n in sessions if str(n) not in busy], slots_of(settings))
    gone = set(answer["released"]) | set(answer.get("failed", ()))  # released, or as far as AWS let it
    left = 0
    for name, path in registered.items():
        if str(name) not in gone:
            continue  # kept or busy: its runner stays with it
        if unreachable:
            left += in_scope(path, settings, delivery)
        elif app is not None and token is not None and name in runners:
            try:
                app.delete_runner(token, path)
            except GitHubError as error:  # left offline; the collector removes it once the session has expired
                logger.warning("runner registration not deleted", extra={"session": str(name), **_code(error)})
                left += 1
    if left:
        metrics.add_metric(name="RunnerDeletesFailed", unit=MetricUnit.Count, value=left)
    return {**answer, "busy": busy} if busy else answer


def _code(error: Exception) -> dict[str, str]:
    from session_naming.resources import error_code

    return {"error": getattr(error, "code", None) or error_code(error)}


def _runners_of(
    app: GitHubApp, token: str, settings: LauncherSettings, delivery: WorkflowJobDelivery, registered: dict
) -> tuple[dict[SessionName, str], list[str]]:
    """Each session's own registration (in the delivery's scope, carrying the session's runner name), and the busy ones.

    A runner GitHub cannot describe right now is deleted as any other: the
    job is over, and a one-job runner has nothing left to run.
    """
    from session_naming.github import runner_name

    runners: dict[SessionName, str] = {}
    busy: list[str] = []
    for name, path in registered.items():
        if not in_scope(path, settings, delivery):
            continue  # not a registration of this job's repository or organisation: never ours to delete
        try:
            runner = app.get_runner(token, path)
        except GitHubError as error:
            logger.warning(
                "runner state unknown: deleting it with its session", extra={"session": str(name), **_code(error)}
            )
            runners[name] = path
            continue
        if runner is None or runner.name != runner_name(name):  # gone, or the tag points at someone else's runner
            continue
        if runner.busy:
            busy.append(str(name))
        else:
            runners[name] = path
    return runners, busy


def installation_of(app: GitHubApp, settings: LauncherSettings, delivery: WorkflowJobDelivery) -> int:
    """The delivery's installation; a repository or organisation webhook sends none, so it is looked up."""
    if delivery.installation is not None:
        return delivery.installation.id
    owner, repo = (part.lower() for part in owner_and_repo(delivery))
    return _installation_for(app, owner, repo if settings.github.runner_scope == "repo" else None)


@cache
def _installation_for(app: GitHubApp, owner: str, repo: str | None) -> int:
    """Asked once per container: an App's installation on an account does not move."""
    return app.installation_for(owner, repo)


def owner_and_repo(delivery: WorkflowJobDelivery) -> tuple[str, str]:
    """The job's repository as ``full_name`` gives it (the owner object may name another account)."""
    owner, _, repo = delivery.repository.full_name.partition("/") if delivery.repository else ("", "", "")
    return owner, repo
