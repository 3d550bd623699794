"""The ``/sessions`` routes' domain calls: a signed body in, a session (or its release) out."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from functools import cache

from breaker import SpotBreaker
from errors import JobOver, SessionNotFound
from http_errors import BadRequest
from jobs import JobLedger
from launch import Extras, create_session, release_session
from payloads import ReleaseRequest, SessionRequest, parse_body, session_request
from session_naming import GITLAB_JOB_TAG, SessionName, clients
from session_naming.profiles import Profile
from session_naming.settings import LauncherSettings
from slots import Slots

PROFILES_MAX_AGE = 60  # seconds: an operator's change to the SSM parameter is live within a minute


def slots_of(settings: LauncherSettings) -> Slots:
    return Slots(clients.client("dynamodb", settings.region), settings.idempotency_table)


def ledger_of(settings: LauncherSettings) -> JobLedger:
    return JobLedger(clients.client("dynamodb", settings.region), settings.idempotency_table)


def breaker_of(settings: LauncherSettings) -> SpotBreaker:
    return SpotBreaker(
        clients.client("dynamodb", settings.region), settings.idempotency_table, settings.spot_breaker_interruptions
    )


def profiles_of(settings: LauncherSettings) -> Mapping[str, Profile]:
    """The stack's profiles: from ``PROFILES`` (checked at load), or its SSM parameter (cached 60 s).

    A bad document in SSM is a configuration error naming profile and field,
    as a bad ``PROFILES`` is: nothing is launched with it.
    """
    if settings.launch_template_id and (settings.profiles_parameter or not _legacy(settings.profiles)):
        _warn_unused_template()
    if settings.profiles_parameter is None:
        return settings.profiles
    from aws_lambda_powertools.utilities.parameters import SSMProvider
    from session_naming.profiles import ProfileError
    from session_naming.settings import ConfigError

    provider = _ssm_provider(clients.client("ssm", settings.region), SSMProvider)
    text = provider.get(settings.profiles_parameter, max_age=PROFILES_MAX_AGE)
    try:
        return _parsed(text, settings.github_label, settings.max_lifetime, settings.max_live_sessions)
    except ProfileError as error:
        raise ConfigError(f"configuration error: {error} (from {settings.profiles_parameter})") from None


def _legacy(profiles: Mapping[str, Profile]) -> bool:
    return any(profile.legacy for profile in profiles.values())


@cache
def _warn_unused_template() -> None:
    """Once per container: both set is a configuration an operator should mend."""
    from aws_lambda_powertools import Logger

    Logger().warning("configuration: PROFILES is set, so LAUNCH_TEMPLATE_ID is not used; remove one of them")


@cache
def _ssm_provider(client, provider):
    return provider(boto3_client=client)


@cache
def _parsed(text: str, label: str, max_lifetime: timedelta, max_live_sessions: int) -> Mapping[str, Profile]:
    from session_naming.profiles import parse_profiles

    return parse_profiles(text, label, max_lifetime, max_live_sessions)


def instance_profile(settings: LauncherSettings, asked: str | None) -> Profile:
    """The profile a ``POST /sessions`` with ``instance: true`` runs: the named one, else the label's own."""
    profiles = profiles_of(settings)
    if asked is not None:
        if asked not in profiles:
            raise BadRequest(f"profile: not one of this stack's profiles ({', '.join(sorted(profiles)) or 'none'})")
        return profiles[asked]
    from session_naming.profiles import fold

    alone = frozenset({fold(settings.github_label)})
    for profile in profiles.values():
        if profile.labels == alone:
            return profile
    raise BadRequest("instance: this stack has no profile for it (PROFILES or LAUNCH_TEMPLATE_ID); name one in profile")


def create(settings: LauncherSettings, body: bytes, now: datetime) -> dict:
    """A session for the body's request; a GitLab job's is refused, or released at once, once the job is over."""
    base, lifetime, request = session_request(body, settings)
    profile = instance_profile(settings, request.profile) if request.instance else None
    if profile is not None and profile.lifetime is not None and request.lifetime_minutes is None:
        lifetime = profile.lifetime
    slots, tags, job = slots_of(settings), {}, None
    if request.gitlab_job:
        job = f"{request.gitlab_job.project_id}/{request.gitlab_job.job_id}"
        tags[GITLAB_JOB_TAG] = job
        ledger_of(settings).check_not_over("gitlab", job)
    answer = None
    if profile is not None and from_a_pool(settings, profile, request, base):
        from pool_claim import Runner, claim

        claimant = f"gitlab#{job}" if job else "sessions"
        answer = claim(settings, profile, claimant, Runner(tags), now, tuple(request.ingress_cidrs))
    if answer is None:
        answer = create_session(
            clients.client,
            settings,
            base,
            lifetime,
            now,
            slots=slots,
            public_key=request.public_key,
            ingress_cidrs=tuple(request.ingress_cidrs),
            profile=profile,
            extras=Extras(tags=tags),
            breaker_open=breaker_of(settings).checker(now),
        )
    if job:
        try:  # the job's end may have been recorded while this session was made
            ledger_of(settings).check_not_over("gitlab", job)
        except JobOver:
            with suppress(SessionNotFound):  # the hook may have released it already
                release_session(clients.client, settings, answer["session"], slots)
            raise
    return answer


def from_a_pool(settings: LauncherSettings, profile: Profile | None, request: SessionRequest, base: str) -> bool:
    """A pool's instance serves a request only as a pool made it: its key pair (an imported key launches cold),
    the first base, and its own lifetime (a caller who names one gets a cold session that lives that long)."""
    return (
        profile is not None
        and profile.pool is not None
        and request.public_key is None
        and request.lifetime_minutes is None
        and base == settings.session_bases[0]
    )


def release(settings: LauncherSettings, path_name: str, body: bytes) -> dict:
    """Release the session in the path, which the signed body must name too."""
    request = parse_body(body, ReleaseRequest)
    if request.session != path_name:
        raise BadRequest("session: must equal the session name in the path (the signature binds the body)")
    name = SessionName.parse(path_name)
    if name is None or name.base not in settings.session_bases:
        raise SessionNotFound("that is not a session of this stack")
    job = sessions_job(settings, name)
    answer = release_session(clients.client, settings, name, slots_of(settings))
    if job is not None and ledger_of(settings).rebind("github", job, datetime.now(UTC), "released"):
        answer["note_job"] = "its GitHub job had not started: it gets a session of its own on the next pass"
    return answer


def sessions_job(settings: LauncherSettings, name: SessionName) -> str | None:
    """The GitHub job a session was made for (its key pair's or group's tag), or ``None``."""
    from launch import sessions_tagged
    from session_naming import GITHUB_JOB_TAG, SESSION_TAG

    tags = sessions_tagged(clients.client, settings, SESSION_TAG, str(name)).get(name, {})
    return tags.get(GITHUB_JOB_TAG)
