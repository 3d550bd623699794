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
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
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
logger = Logger()


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
        if app is not None and delivery.installation is not None and delivery.repository is not None:
            from session_naming.github import runner_name
            from user_data import runner_user_data

            token = app.installation_token(delivery.installation.id)
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
    """The job is over: its sessions go, and so does the session whose runner ran it.

    A JIT runner takes any queued job with matching labels, not only the one
    it was registered for. So the session that ran this job is found by the
    delivery's ``runner_name`` too, and a session of this job whose runner is
    busy (with another job) is left running: that job's own ``completed``
    releases it.
    """
    job = str(delivery.workflow_job.id)
    ledger_of(settings).end("github", job, now)
    sessions = sessions_tagged(clients.client, settings, GITHUB_JOB_TAG, job)
    ran_it = delivery.workflow_job.runner_name
    if ran_it:
        from session_naming.github import sessions_of_runner_name

        for session in sessions_of_runner_name(ran_it, settings.session_bases):
            sessions.update(sessions_tagged(clients.client, settings, SESSION_TAG, str(session)))
    return 200, release(settings, delivery, sessions)


def release(
    settings: LauncherSettings, delivery: WorkflowJobDelivery, sessions: dict[SessionName, dict[str, str]]
) -> dict[str, Any]:
    """Release sessions and delete their runner registrations (gone already is done); a busy runner's session stays."""
    app = github_app(settings)
    runners: dict[SessionName, tuple[str, str]] = {}  # session -> (its registration's path, installation token)
    busy: list[str] = []
    if app is not None and delivery.installation is not None and delivery.repository is not None:
        runners, busy = _runners_of(app, delivery.installation.id, delivery, sessions)
    answer = release_job(clients.client, settings, [n for n in sessions if str(n) not in busy], slots_of(settings))
    gone = set(answer["released"]) | set(answer.get("failed", ()))  # released, or as far as AWS let it
    for name, (path, token) in runners.items():
        if app is not None and str(name) in gone:
            try:
                app.delete_runner(token, path)
            except GitHubError as error:  # left offline; the collector removes it once the session has expired
                logger.warning("runner registration not deleted", extra={"session": str(name), "error": error.code})
    return {**answer, "busy": busy} if busy else answer


def _runners_of(
    app: GitHubApp, installation: int, delivery: WorkflowJobDelivery, sessions: dict[SessionName, dict[str, str]]
) -> tuple[dict[SessionName, tuple[str, str]], list[str]]:
    """Each session's own registration (by its tag, checked against the runner's name), and the busy ones."""
    from session_naming.github import parse_registration_path, runner_name

    token = app.installation_token(installation)
    owner, repo = (part.lower() for part in owner_and_repo(delivery))
    runners: dict[SessionName, tuple[str, str]] = {}
    busy: list[str] = []
    for name, tags in sessions.items():
        path = tags.get(GITHUB_RUNNER_TAG)
        where = parse_registration_path(path)
        if (
            path is None
            or where is None
            or where[1].lower() != owner
            or (where[2] is not None and where[2].lower() != repo)
        ):
            continue  # not a registration of this job's repository or organisation: never ours to delete
        try:
            runner = app.get_runner(token, path)
        except GitHubError as error:  # cannot tell whether it runs a job: leave the session to its expiry
            logger.warning("runner state unknown", extra={"session": str(name), "error": error.code})
            busy.append(str(name))
            continue
        if runner is None or runner.name != runner_name(name):  # gone, or the tag points at someone else's runner
            continue
        if runner.busy:
            busy.append(str(name))
        else:
            runners[name] = (path, token)
    return runners, busy


def owner_and_repo(delivery: WorkflowJobDelivery) -> tuple[str, str]:
    """The job's repository as ``full_name`` gives it (the owner object may name another account)."""
    owner, _, repo = delivery.repository.full_name.partition("/") if delivery.repository else ("", "", "")
    return owner, repo
