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

from errors import JobOver
from launch import Extras, create_session, release_job, sessions_tagged
from payloads import WorkflowJobDelivery, parse_body
from session_naming import GITHUB_JOB_TAG, GITHUB_RUNNER_TAG, SessionName, clients
from session_naming.settings import LauncherSettings
from sessions import ledger_of, slots_of

if TYPE_CHECKING:
    from session_naming.github import GitHubApp

JITCONFIG = "runner-jitconfig"


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
    job = str(delivery.workflow_job.id)
    ledger_of(settings).end("github", job, now)
    return 200, release(settings, delivery, sessions_tagged(clients.client, settings, GITHUB_JOB_TAG, job))


def release(
    settings: LauncherSettings, delivery: WorkflowJobDelivery, sessions: dict[SessionName, dict[str, str]]
) -> dict[str, Any]:
    """Release the job's sessions and delete their runner registrations (gone already is done)."""
    answer = release_job(clients.client, settings, sessions, slots_of(settings))
    app = github_app(settings)
    if app is None or delivery.installation is None or delivery.repository is None:
        return answer
    from session_naming.github import parse_registration_path, runner_name

    token = app.installation_token(delivery.installation.id)
    owner, repo = (part.lower() for part in owner_and_repo(delivery))
    for name, tags in sessions.items():
        if str(name) in answer["kept"]:
            continue  # an operator holds the session (keep tag): its runner stays with it
        path = tags.get(GITHUB_RUNNER_TAG)
        where = parse_registration_path(path)
        if (
            path is None
            or where is None
            or where[1].lower() != owner
            or (where[2] is not None and where[2].lower() != repo)
        ):
            continue  # not a registration of this job's repository or organisation: never ours to delete
        runner = app.get_runner(token, path)
        if runner is not None and runner.name == runner_name(name):  # the tag must point at this session's runner
            app.delete_runner(token, path)
    return answer


def owner_and_repo(delivery: WorkflowJobDelivery) -> tuple[str, str]:
    """The job's repository as ``full_name`` gives it (the owner object may name another account)."""
    owner, _, repo = delivery.repository.full_name.partition("/") if delivery.repository else ("", "", "")
    return owner, repo
