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

from collections.abc import Callable
from contextlib import suppress
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from errors import NO_PROFILE, JobBusy, JobOver, NoCapacity, TooManySessions
from launch import Extras, TimeLeft, create_session, release_job, sessions_tagged
from payloads import WorkflowJobDelivery, parse_body
from session_naming import GITHUB_JOB_TAG, GITHUB_RUNNER_TAG, PROFILE_TAG, SESSION_TAG, SessionName, clients
from session_naming.github import GitHubError, Scope
from session_naming.profiles import Profile, has_label, match
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
    if not has_label(delivery.workflow_job.labels, settings.github_label):
        return 202, {"ignored": f"the job has no {settings.github_label} label"}
    if not settings.github.allows(delivery.repository.full_name if delivery.repository else ""):
        return 202, {"ignored": "the repository is not in GITHUB_REPOSITORIES"}
    scope = scope_of(settings, delivery)
    if delivery.waits_for_approval:
        return waiting(settings, delivery, now)
    if delivery.action == "queued":
        return queued(settings, delivery, scope, now)
    if delivery.action == "in_progress":
        return in_progress(settings, delivery, scope, now)
    if delivery.action == "completed":
        return completed(settings, delivery, scope, now)
    return 202, {"ignored": "only queued, in_progress and completed jobs change sessions"}


def scope_of(settings: LauncherSettings, delivery: WorkflowJobDelivery) -> Scope | None:
    """The delivery's place on GitHub, built once; ``None`` when it names no repository (no runner then)."""
    if delivery.repository is None:
        return None
    owner, _, repo = delivery.repository.full_name.partition("/")  # the owner object may name another account
    installation = delivery.installation.id if delivery.installation else None
    return Scope(settings.github.runner_scope, owner, repo, installation)


def github_app(settings: LauncherSettings) -> GitHubApp | None:
    """The configured GitHub App, or ``None`` (then sessions are made without runners)."""
    from session_naming.github import configured_app

    return configured_app(settings.github, clients.client("secretsmanager", settings.region))


def waiting(settings: LauncherSettings, delivery: WorkflowJobDelivery, now: datetime) -> tuple[int, dict[str, Any]]:
    """Held for an environment's reviewer, maybe for days: no session now (it could expire before the approval),
    only a record, so that the approved ``queued`` is served whatever its age."""
    ledger_of(settings).wait("github", str(delivery.workflow_job.id), essentials(delivery), now)
    return 202, {"ignored": "waiting for approval"}


def queued(
    settings: LauncherSettings, delivery: WorkflowJobDelivery, scope: Scope | None, now: datetime
) -> tuple[int, dict[str, Any]]:
    """Too old: a replay. No profile: refused, and reported. Else claimed once, and served."""
    job = delivery.workflow_job
    ledger = ledger_of(settings)
    too_old = job.created_at is not None and now - job.created_at > MAX_QUEUED_AGE
    if too_old and not ledger.is_waiting("github", str(job.id)):
        # GitHub cancels a job queued 24 h; its record lives 4 days: an older queued is a replay
        # (unless the job waited for a deployment's approval: then its clock starts at the approval).
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
        existing = claim(settings, delivery, now)
    except JobOver:
        return 202, {"ignored": "the job is already over"}
    if existing is not None:
        return 200, existing
    return serve(settings, delivery, scope, profile, now)


def claim(settings: LauncherSettings, delivery: WorkflowJobDelivery, now: datetime) -> dict[str, Any] | None:
    """The job's claim (``None``: make its session), or the answer of its session, if that session still exists.

    A session gone before its job started (expired and swept, released by
    hand, taken back) is never the answer: the job is pending again and
    this delivery makes it a new one.
    """
    ledger, job = ledger_of(settings), str(delivery.workflow_job.id)
    existing = ledger.claim("github", job, now, essentials(delivery))
    if existing is None or session_exists(settings, existing.get("session"), now):
        return existing
    ledger.rebind("github", job, now, "session_gone")
    logger.info("the job's session is gone before it started: a new one is made", extra={"job": job})
    return ledger.claim("github", job, now, essentials(delivery))


def session_exists(settings: LauncherSettings, session: object, now: datetime) -> bool:
    """Is the session still there: not expired, its key pair or group not deleted?"""
    name = SessionName.parse(session)
    if name is None or name.is_expired(now, timedelta(0)):
        return False
    return bool(sessions_tagged(clients.client, settings, SESSION_TAG, str(name)))


def wait_for_the_pass(settings: LauncherSettings, delivery: WorkflowJobDelivery, now: datetime) -> None:
    """Record the job pending before a failure that comes ahead of its claim: the pass retries it and,
    after 15 minutes, tells its user; without the record it would wait a day with no word."""
    ledger, job = ledger_of(settings), str(delivery.workflow_job.id)
    with suppress(JobOver, JobBusy):
        if ledger.claim("github", job, now, essentials(delivery)) is None:
            ledger.pend("github", job, "launch_failed", now, clock_of_job(settings, delivery))


def clock_of_job(settings: LauncherSettings, delivery: WorkflowJobDelivery) -> datetime | None:
    """When the job's clock started: its approval, if it waited for one, else its ``created_at``."""
    return ledger_of(settings).clock_from("github", str(delivery.workflow_job.id)) or delivery.workflow_job.created_at


def unmatched(settings: LauncherSettings, delivery: WorkflowJobDelivery, now: datetime) -> tuple[int, dict[str, Any]]:
    """Only the workflow's author can fix a job no profile matches: its failure is reported on its commit."""
    logger.info(
        "no profile matches the job", extra={"labels": [label[:100] for label in delivery.workflow_job.labels[:20]]}
    )
    metrics.add_metric(name="JobsUnmatched", unit=MetricUnit.Count, value=1)
    ledger_of(settings).unserved("github", str(delivery.workflow_job.id), essentials(delivery), "no_profile", now)
    return 202, {"ignored": "no profile matches the job's labels"}


def serve(
    settings: LauncherSettings,
    delivery: WorkflowJobDelivery,
    scope: Scope | None,
    profile: Profile | None,
    now: datetime,
    time_left: TimeLeft | None = None,
) -> tuple[int, dict[str, Any]]:
    """Make the claimed job's session; one that fails leaves the job pending for the reconcile pass.

    The job may end while its session is made: then what was made is
    released (by this create, or by the end's own release) and the answer
    is ``202``. ``time_left`` is the reconcile pass's: its create stops,
    rolled back, before the invocation's end.
    """
    ledger, job = ledger_of(settings), str(delivery.workflow_job.id)
    try:
        answer, tags = make_session(settings, delivery, scope, profile, now, time_left)
    except Exception as error:
        if ledger.is_over("github", job):
            # The job ended mid-create and its completed delivery released what it found: a step
            # that needed a released resource failed, and the rollback took the rest.
            return 202, {"ignored": "the job ended while its session was made; it is released"}
        ledger.pend("github", job, failure_reason(error), now, clock_of_job(settings, delivery))
        raise
    name = SessionName(answer["session"])
    try:
        ledger.settle("github", job, answer, name.expires)
    except JobOver:
        release(settings, scope, {name: tags})
        return 202, {"ignored": "the job ended while its session was made; it is released"}
    return 201, answer


def failure_reason(error: Exception) -> str:
    """What a user is told when the job stays without a session: capacity, or a failed launch."""
    return "no_capacity" if isinstance(error, NoCapacity | TooManySessions) else "launch_failed"


def make_session(
    settings: LauncherSettings,
    delivery: WorkflowJobDelivery,
    scope: Scope | None,
    profile: Profile | None,
    now: datetime,
    time_left: TimeLeft | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The session (from the profile's warm pool when it has a ready instance, else launched cold) and, with an
    App and an instance, its JIT runner; a failure deletes the registration too."""
    from session_naming.github import runner_name

    job = str(delivery.workflow_job.id)
    app = github_app(settings) if profile is not None and scope is not None else None  # a runner needs an instance
    job_tags = {GITHUB_JOB_TAG: job}
    registered: list[tuple[str, Registration]] = []  # (installation token, registration) once made

    def register(name: SessionName) -> Extras:
        """The JIT runner, registered once the session's slots are held: a refused create costs GitHub nothing."""
        from user_data import runner_user_data

        assert app is not None and scope is not None and profile is not None
        token, registration = register_runner(settings, app, scope, delivery, profile, name)
        registered.append((token, registration))
        return Extras(
            tags={**job_tags, GITHUB_RUNNER_TAG: registration.path},
            secrets={JITCONFIG: registration.encoded_jit_config},
            user_data=runner_user_data(f"/{name}/{JITCONFIG}"),
        )

    try:
        answer = from_pool(settings, profile, job, job_tags, register if app is not None else None, now)
        if answer is None:
            lifetime = (profile.lifetime if profile is not None else None) or settings.default_lifetime
            name = SessionName.make(settings.session_bases[0], lifetime, now)
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
                register=(lambda: register(name)) if app is not None else None,
                time_left=time_left,
            )
    except BaseException:
        unregister(app, registered)
        raise
    own = runner_name(SessionName(answer["session"]))
    unregister(app, [(token, r) for token, r in registered if r.name != own])  # a failed claim's, for nothing
    registered = [(token, r) for token, r in registered if r.name == own]
    tags = dict(job_tags)
    for _, registration in registered:
        answer["runner"] = {"id": registration.id, "name": registration.name}
        tags[GITHUB_RUNNER_TAG] = registration.path
    return answer, tags


def unregister(app: GitHubApp | None, registered: list[tuple[str, Registration]]) -> None:
    """Delete registrations no session uses; one left offline is the collector's once its session expired."""
    for token, registration in registered:
        with suppress(Exception):
            app.delete_runner(token, registration.path)  # type: ignore[union-attr]


def from_pool(
    settings: LauncherSettings,
    profile: Profile | None,
    job: str,
    job_tags: dict[str, str],
    register: Callable[[SessionName], Extras] | None,
    now: datetime,
) -> dict[str, Any] | None:
    """A ready instance of the profile's warm pool made the job's session, or ``None`` (no pool, or a miss)."""
    if profile is None or profile.pool is None:
        return None
    from pool_claim import Runner, claim

    return claim(settings, profile, f"github#{job}", Runner(job_tags, register), now)


def register_runner(
    settings: LauncherSettings,
    app: GitHubApp,
    scope: Scope,
    delivery: WorkflowJobDelivery,
    profile: Profile,
    name: SessionName,
) -> tuple[str, Registration]:
    """A JIT runner named for the session, with the profile's labels, where the delivery's scope says."""
    from session_naming.github import runner_name

    token = scope.token(app)
    registration = app.generate_jitconfig(
        token,
        scope.kind,
        scope.owner,
        scope.repo if scope.kind == "repo" else None,
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


def in_progress(
    settings: LauncherSettings, delivery: WorkflowJobDelivery, scope: Scope | None, now: datetime
) -> tuple[int, dict[str, Any]]:
    """The job runs: on its own session, or on one made for another job, which is then bound to it.

    GitHub gives a JIT runner any queued job with its labels. When the
    runner of job A's session takes job B, the session is re-tagged with B
    (B's end releases it) and A, still queued, is pending again: the next
    pass (or a redelivery) makes it a session of its own. Only a session
    whose registration lies in the delivery's own scope is bound this way.
    """
    job = str(delivery.workflow_job.id)
    ran_on = session_that_ran(settings, delivery, scope)
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


def completed(
    settings: LauncherSettings, delivery: WorkflowJobDelivery, scope: Scope | None, now: datetime
) -> tuple[int, dict[str, Any]]:
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
    ran_on = session_that_ran(settings, delivery, scope)
    for tags in ran_on.values():  # its in_progress was lost or late: the job it was made for still waits
        if tags.get(GITHUB_JOB_TAG) != job:
            repend(settings, tags.get(GITHUB_JOB_TAG), now)
    sessions.update(ran_on)
    return 200, release(settings, scope, sessions)


def session_that_ran(
    settings: LauncherSettings, delivery: WorkflowJobDelivery, scope: Scope | None
) -> dict[SessionName, dict[str, str]]:
    """The session named by ``runner_name``, only if its registration lies in the delivery's own scope.

    A runner name is public (every job log prints it) and whoever administers
    a repository can register a runner under any name: the name alone proves
    nothing. The session's registration tag must name this delivery's
    repository (scope ``repo``) or organisation (scope ``org``); a session
    without one (made by curl, GitLab or without an App) is never found so.
    """
    from session_naming.github import sessions_of_runner_name

    found: dict[SessionName, dict[str, str]] = {}
    if scope is None:
        return found
    for session in sessions_of_runner_name(delivery.workflow_job.runner_name, settings.session_bases):
        for name, tags in sessions_tagged(clients.client, settings, SESSION_TAG, str(session)).items():
            if scope.holds(tags.get(GITHUB_RUNNER_TAG)):
                found[name] = tags
    return found


def release_registered(settings: LauncherSettings, sessions: dict[SessionName, dict[str, str]]) -> dict[str, Any]:
    """Release sessions with their registrations, each in the scope its own registration tag names.

    For a release with no delivery (a spot interruption): the tag was
    written by the launcher at creation, and the runner at its path must
    still carry the session's runner name, as for any release. A busy
    runner goes too: its instance is being taken back whatever it runs.
    """
    answers: list[dict[str, Any]] = []
    for name, tags in sessions.items():
        scope = Scope.of_registration(tags.get(GITHUB_RUNNER_TAG))
        answers.append(release(settings, scope, {name: tags}, busy_too=True))
    merged: dict[str, Any] = {"released": [], "kept": []}
    for answer in answers:
        for key, names in answer.items():
            merged.setdefault(key, []).extend(names)
    return merged


def release(
    settings: LauncherSettings,
    scope: Scope | None,
    sessions: dict[SessionName, dict[str, str]],
    *,
    busy_too: bool = False,
) -> dict[str, Any]:
    """Release sessions and delete their runner registrations (gone already is done); a busy runner's session stays.

    Only registrations in ``scope`` are deleted (``None``: none). AWS
    resources go whatever GitHub answers: when the App, its token or a
    runner cannot be read, the sessions are released all the same and their
    registrations are counted (``RunnerDeletesFailed``), left to the
    collector and to GitHub's own removal of offline ephemeral runners.
    """
    registered = {name: tags[GITHUB_RUNNER_TAG] for name, tags in sessions.items() if tags.get(GITHUB_RUNNER_TAG)}
    runners: dict[SessionName, str] = {}  # session -> its registration's path, checked on GitHub
    busy: list[str] = []
    app, token, unreachable = None, None, False
    if registered and scope is not None:
        try:
            app = github_app(settings)
            if app is not None:
                token = scope.token(app)
                runners, busy = _runners_of(app, token, scope, registered)
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
            left += scope is not None and scope.holds(path)
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


def _runners_of(app: GitHubApp, token: str, scope: Scope, registered: dict) -> tuple[dict[SessionName, str], list[str]]:
    """Each session's own registration (in the delivery's scope, carrying the session's runner name), and the busy ones.

    A runner GitHub cannot describe right now is deleted as any other: the
    job is over, and a one-job runner has nothing left to run.
    """
    from session_naming.github import runner_name

    runners: dict[SessionName, str] = {}
    busy: list[str] = []
    for name, path in registered.items():
        if not scope.holds(path):
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
