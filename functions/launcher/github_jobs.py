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
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from errors import NO_PROFILE, JobBusy, JobOver, NoCapacity, TooManySessions
from launch import Extras, create_session, release_job, sessions_tagged
from payloads import WorkflowJobDelivery, parse_body
from session_naming import GITHUB_JOB_TAG, GITHUB_RUNNER_TAG, PROFILE_TAG, SESSION_TAG, SessionName, clients
from session_naming.github import GitHubError
from session_naming.profiles import Profile, match
from session_naming.settings import LauncherSettings
from sessions import breaker_of, ledger_of, profiles_of, slots_of

if TYPE_CHECKING:
    from session_naming.github import GitHubApp, Registration

JITCONFIG = "runner-jitconfig"
MAX_QUEUED_AGE = timedelta(hours=72)
logger = Logger()
metrics = Metrics()  # Powertools' metrics are one set per process: the handler's ``log_metrics`` flushes these


def handle(settings: LauncherSettings, event: str, body: bytes, now: datetime) -> tuple[int, dict[str, Any]]:
    """A delivery in, an answer out: filter it, then queued creates, in_progress binds, completed releases."""
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
    if delivery.action == "in_progress":
        return in_progress(settings, delivery, now)
    if delivery.action == "completed":
        return completed(settings, delivery, now)
    return 202, {"ignored": "only queued, in_progress and completed jobs change sessions"}


def github_app(settings: LauncherSettings) -> GitHubApp | None:
    """The configured GitHub App, or ``None`` (then sessions are made without runners)."""
    from session_naming.github import configured_app

    return configured_app(settings.github, clients.client("secretsmanager", settings.region))


def queued(settings: LauncherSettings, delivery: WorkflowJobDelivery, now: datetime) -> tuple[int, dict[str, Any]]:
    """Too old: a replay. No profile: refused, and reported. Else claimed once, and served."""
    job = delivery.workflow_job
    if job.created_at is not None and now - job.created_at > MAX_QUEUED_AGE:
        # GitHub cancels a job queued 24 h; its record lives 4 days: an older queued is a replay.
        return 202, {"ignored": "the job was queued more than 72 hours ago"}
    try:
        profiles = profiles_of(settings)
    except Exception:
        wait_for_the_pass(settings, delivery, now)  # a bad or unreadable PROFILES: the operator's alarm, not silence
        raise
    profile = match(profiles, job.labels, settings.github_label) if profiles else None
    if profiles and profile is None:
        return unmatched(settings, delivery, now)
    try:
        existing = ledger_of(settings).claim("github", str(job.id), now, essentials(delivery))
    except JobOver:
        return 202, {"ignored": "the job is already over"}
    if existing is not None:
        return 200, existing
    return serve(settings, delivery, profile, now)


def wait_for_the_pass(settings: LauncherSettings, delivery: WorkflowJobDelivery, now: datetime) -> None:
    """Record the job pending before a failure that comes ahead of its claim: the pass retries it and,
    after 15 minutes, tells its user; without the record it would wait a day with no word."""
    ledger, job = ledger_of(settings), str(delivery.workflow_job.id)
    with suppress(JobOver, JobBusy):
        if ledger.claim("github", job, now, essentials(delivery)) is None:
            ledger.pend("github", job, "launch_failed", now, delivery.workflow_job.created_at)


def unmatched(settings: LauncherSettings, delivery: WorkflowJobDelivery, now: datetime) -> tuple[int, dict[str, Any]]:
    """Only the workflow's author can fix a job no profile matches: its failure is reported on its commit."""
    logger.info("no profile matches the job", extra={"labels": delivery.workflow_job.labels[:20]})
    metrics.add_metric(name="JobsUnmatched", unit=MetricUnit.Count, value=1)
    ledger_of(settings).unserved("github", str(delivery.workflow_job.id), essentials(delivery), "no_profile", now)
    return 202, {"ignored": "no profile matches the job's labels"}


def serve(
    settings: LauncherSettings, delivery: WorkflowJobDelivery, profile: Profile | None, now: datetime
) -> tuple[int, dict[str, Any]]:
    """Make the claimed job's session; one that fails leaves the job pending for the reconcile pass.

    The job may end while its session is made: then what was made is
    released (by this create, or by the end's own release) and the answer
    is ``202``.
    """
    ledger, job = ledger_of(settings), str(delivery.workflow_job.id)
    try:
        answer, tags = make_session(settings, delivery, profile, now)
    except Exception as error:
        if ledger.is_over("github", job):
            # The job ended mid-create and its completed delivery released what it found: a step
            # that needed a released resource failed, and the rollback took the rest.
            return 202, {"ignored": "the job ended while its session was made; it is released"}
        ledger.pend("github", job, failure_reason(error), now, delivery.workflow_job.created_at)
        raise
    try:
        ledger.settle("github", job, answer)
    except JobOver:
        release(settings, Scope.of(delivery), {SessionName(answer["session"]): tags})
        return 202, {"ignored": "the job ended while its session was made; it is released"}
    return 201, answer


def failure_reason(error: Exception) -> str:
    """What a user is told when the job stays without a session: capacity, or a failed launch."""
    return "no_capacity" if isinstance(error, NoCapacity | TooManySessions) else "launch_failed"


def make_session(
    settings: LauncherSettings, delivery: WorkflowJobDelivery, profile: Profile | None, now: datetime
) -> tuple[dict[str, Any], dict[str, str]]:
    """The session and, with an App and an instance, its JIT runner; a failure deletes the registration too."""
    job = str(delivery.workflow_job.id)
    lifetime = (profile.lifetime if profile is not None else None) or settings.default_lifetime
    name = SessionName.make(settings.session_bases[0], lifetime, now)
    app = github_app(settings) if profile is not None else None  # a runner needs an instance
    job_tags = {GITHUB_JOB_TAG: job}
    registered: list[tuple[str, Registration]] = []  # (installation token, registration) once made

    def register() -> Extras:
        """The JIT runner, registered once the session's slots are held: a refused create costs GitHub nothing."""
        from user_data import runner_user_data

        assert app is not None and profile is not None
        token, registration = register_runner(settings, app, delivery, profile, name)
        registered.append((token, registration))
        return Extras(
            tags={**job_tags, GITHUB_RUNNER_TAG: registration.path},
            secrets={JITCONFIG: registration.encoded_jit_config},
            user_data=runner_user_data(f"/{name}/{JITCONFIG}"),
        )

    with_runner = app is not None and profile is not None and delivery.repository is not None
    try:
        answer = create_session(
            clients.client,
            settings,
            name.base,
            lifetime,
            now,
            slots=slots_of(settings),
            profile=profile,
            extras=Extras(tags=job_tags),
            name=name,
            breaker_open=breaker_of(settings).checker(now),
            register=register if with_runner else None,
        )
    except BaseException:
        for token, registration in registered:
            with suppress(Exception):  # left offline; the collector removes it once the session has expired
                app.delete_runner(token, registration.path)  # type: ignore[union-attr]
        raise
    tags = dict(job_tags)
    for _, registration in registered:
        answer["runner"] = {"id": registration.id, "name": registration.name}
        tags[GITHUB_RUNNER_TAG] = registration.path
    return answer, tags


def register_runner(
    settings: LauncherSettings, app: GitHubApp, delivery: WorkflowJobDelivery, profile: Profile, name: SessionName
) -> tuple[str, Registration]:
    """A JIT runner named for the session, with the profile's labels, in the delivery's repository or organisation."""
    from session_naming.github import runner_name

    token = app.installation_token(installation_of(app, settings, Scope.of(delivery)))
    scope = settings.github.runner_scope
    owner, repo = owner_and_repo(delivery)
    registration = app.generate_jitconfig(
        token,
        scope,
        owner,
        repo if scope == "repo" else None,
        runner_name(name),
        settings.github.runner_group_id,
        profile.runner_labels(delivery.workflow_job.labels),
    )
    return token, registration


def essentials(delivery: WorkflowJobDelivery) -> dict[str, Any]:
    """What a retry, a check run or a re-run needs of the delivery (never its whole body)."""
    return delivery.model_dump(
        mode="json",
        include={
            "action": True,
            "workflow_job": {"id", "labels", "created_at", "run_id", "head_sha"},
            "repository": {"name", "full_name", "owner"},
            "installation": {"id"},
        },
    )


def in_progress(settings: LauncherSettings, delivery: WorkflowJobDelivery, now: datetime) -> tuple[int, dict[str, Any]]:
    """The job runs: on its own session, or on one made for another job, which is then bound to it.

    GitHub gives a JIT runner any queued job with its labels. When the
    runner of job A's session takes job B, the session is re-tagged with B
    (B's end releases it) and A, still queued, is pending again: the next
    pass (or a redelivery) makes it a session of its own. Only a session
    whose registration lies in the delivery's own scope is bound this way.
    """
    job = str(delivery.workflow_job.id)
    ran_on = session_that_ran(settings, delivery)
    profile = next((tags[PROFILE_TAG] for tags in ran_on.values() if tags.get(PROFILE_TAG)), NO_PROFILE)
    started, created = delivery.workflow_job.started_at, delivery.workflow_job.created_at
    if started is not None and created is not None:
        with single_metric(
            name="QueueLatency", unit=MetricUnit.Seconds, value=max(0.0, (started - created).total_seconds())
        ) as metric:
            metric.add_dimension(name="profile", value=profile)
    ledger = ledger_of(settings)
    ledger.running("github", job)  # started: whatever other job's start comes next, this one is not re-pended
    rebound = []
    for name, tags in ran_on.items():
        made_for = tags.get(GITHUB_JOB_TAG)
        if made_for == job:
            continue
        repend(settings, made_for, now)  # first: a failed re-tag must not leave the other job waiting silently
        retag(settings, name, {GITHUB_JOB_TAG: job})
        rebound.append(str(name))
        logger.info("session bound to the job its runner took", extra={"session": str(name), "made_for": made_for})
    return 200, {"bound": rebound}


def repend(settings: LauncherSettings, job: str | None, now: datetime) -> None:
    """The job a session was made for lost its runner to another job: pending again, unless it started or ended."""
    if job and ledger_of(settings).rebind("github", job, now):
        logger.info("job pending again: its runner was taken", extra={"job": job})


def retag(settings: LauncherSettings, name: SessionName, tags: dict[str, str]) -> None:
    """Tag the session's own resources (in the launcher's region) with ``tags``, beside its session tag.

    The kinds the launcher makes (and IAM lets it re-tag): what a test made
    from the session is released with it by its session tag all the same.
    """
    from session_naming.resources import INSTANCES, KEY_PAIRS, LAUNCH_TEMPLATES, PARAMETERS, SECURITY_GROUPS

    values = {SESSION_TAG: str(name), **tags}
    for kind in (INSTANCES, LAUNCH_TEMPLATES, PARAMETERS, KEY_PAIRS, SECURITY_GROUPS):
        found = kind.listing(clients.client, settings.region, [name])
        if not found:
            continue
        if kind is PARAMETERS:
            ssm = clients.client("ssm", settings.region)
            for parameter in found:
                ssm.add_tags_to_resource(
                    ResourceType="Parameter",
                    ResourceId=parameter.ident,
                    Tags=[{"Key": k, "Value": v} for k, v in values.items()],
                )
            continue
        ec2 = clients.client("ec2", settings.region)
        idents = [f.ident for f in found]
        if kind.name == "key_pair":  # tagged by id, listed and deleted by name
            idents = [k["KeyPairId"] for k in ec2.describe_key_pairs(KeyNames=idents)["KeyPairs"]]
        ec2.create_tags(Resources=idents, Tags=[{"Key": k, "Value": v} for k, v in values.items()])


def completed(settings: LauncherSettings, delivery: WorkflowJobDelivery, now: datetime) -> tuple[int, dict[str, Any]]:
    """The job is over: its sessions go, and so does the session whose runner ran it (when that is provably ours).

    A JIT runner takes any queued job with matching labels, not only the one
    it was registered for, so the session that ran this job is found by the
    delivery's ``runner_name`` too, and a session of this job whose runner is
    busy (with another job) is left running: that job's own ``completed``
    releases it.
    """
    job = str(delivery.workflow_job.id)
    ledger = ledger_of(settings)
    rerun = None
    if delivery.workflow_job.conclusion == "failure" and ledger.was_interrupted("github", job):
        rerun = essentials(delivery)  # its session was taken back: the run is re-run once it completes
    ledger.end("github", job, now, rerun)
    sessions = sessions_tagged(clients.client, settings, GITHUB_JOB_TAG, job)
    ran_on = session_that_ran(settings, delivery)
    for tags in ran_on.values():  # its in_progress was lost or late: the job it was made for still waits
        if tags.get(GITHUB_JOB_TAG) != job:
            repend(settings, tags.get(GITHUB_JOB_TAG), now)
    sessions.update(ran_on)
    return 200, release(settings, Scope.of(delivery), sessions)


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
            if in_scope(tags.get(GITHUB_RUNNER_TAG), settings, Scope.of(delivery)):
                found[name] = tags
    return found


@dataclass(frozen=True)
class Scope:
    """Where a release may delete registrations: a delivery's repository (and its installation, when sent)."""

    owner: str
    repo: str
    installation: int | None = None

    @classmethod
    def of(cls, delivery: WorkflowJobDelivery) -> Scope:
        owner, repo = owner_and_repo(delivery)
        return cls(owner, repo, delivery.installation.id if delivery.installation else None)


def in_scope(path: str | None, settings: LauncherSettings, scope: Scope) -> bool:
    """Does the registration ``path`` lie in the scope's repository or organisation (any letter case)?"""
    from session_naming.github import parse_registration_path

    where = parse_registration_path(path)
    if where is None or where[0] != settings.github.runner_scope or where[1].lower() != scope.owner.lower():
        return False
    return where[0] == "org" or (where[2] or "").lower() == scope.repo.lower()


def release_registered(settings: LauncherSettings, sessions: dict[SessionName, dict[str, str]]) -> dict[str, Any]:
    """Release sessions with their registrations, each in the scope its own registration tag names.

    For a release with no delivery (a spot interruption): the tag was
    written by the launcher at creation, and the runner at its path must
    still carry the session's runner name, as for any release. A busy
    runner goes too: its instance is being taken back whatever it runs.
    """
    from session_naming.github import parse_registration_path

    answers: list[dict[str, Any]] = []
    for name, tags in sessions.items():
        where = parse_registration_path(tags.get(GITHUB_RUNNER_TAG))
        scope = Scope(where[1], where[2] or "") if where is not None else Scope("", "")
        answers.append(release(settings, scope, {name: tags}, busy_too=True))
    merged: dict[str, Any] = {"released": [], "kept": []}
    for answer in answers:
        for key, names in answer.items():
            merged.setdefault(key, []).extend(names)
    return merged


def release(
    settings: LauncherSettings, scope: Scope, sessions: dict[SessionName, dict[str, str]], *, busy_too: bool = False
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
                token = app.installation_token(installation_of(app, settings, scope))
                runners, busy = _runners_of(app, token, settings, scope, registered)
                if busy_too:
                    runners.update({name: path for name, path in registered.items() if str(name) in busy})
                    busy = []
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
            left += in_scope(path, settings, scope)
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
    app: GitHubApp, token: str, settings: LauncherSettings, scope: Scope, registered: dict
) -> tuple[dict[SessionName, str], list[str]]:
    """Each session's own registration (in the delivery's scope, carrying the session's runner name), and the busy ones.

    A runner GitHub cannot describe right now is deleted as any other: the
    job is over, and a one-job runner has nothing left to run.
    """
    from session_naming.github import runner_name

    runners: dict[SessionName, str] = {}
    busy: list[str] = []
    for name, path in registered.items():
        if not in_scope(path, settings, scope):
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


def installation_of(app: GitHubApp, settings: LauncherSettings, scope: Scope) -> int:
    """The delivery's installation; a repository or organisation webhook sends none, so it is looked up."""
    if scope.installation is not None:
        return scope.installation
    repo = scope.repo.lower() if settings.github.runner_scope == "repo" else None
    return _installation_for(app, scope.owner.lower(), repo)


@cache
def _installation_for(app: GitHubApp, owner: str, repo: str | None) -> int:
    """Asked once per container: an App's installation on an account does not move."""
    return app.installation_for(owner, repo)


def owner_and_repo(delivery: WorkflowJobDelivery) -> tuple[str, str]:
    """The job's repository as ``full_name`` gives it (the owner object may name another account)."""
    owner, _, repo = delivery.repository.full_name.partition("/") if delivery.repository else ("", "", "")
    return owner, repo
