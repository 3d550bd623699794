"""The ``/sessions`` routes' domain calls: a signed body in, a session (or its release) out."""

from __future__ import annotations

from contextlib import suppress
from datetime import datetime

from errors import JobOver, SessionNotFound
from http_errors import BadRequest
from jobs import JobLedger
from launch import Extras, create_session, release_session
from payloads import ReleaseRequest, parse_body, session_request
from session_naming import GITLAB_JOB_TAG, SessionName, clients
from session_naming.settings import LauncherSettings
from slots import Slots


def slots_of(settings: LauncherSettings) -> Slots:
    return Slots(clients.client("dynamodb", settings.region), settings.idempotency_table)


def ledger_of(settings: LauncherSettings) -> JobLedger:
    return JobLedger(clients.client("dynamodb", settings.region), settings.idempotency_table)


def create(settings: LauncherSettings, body: bytes, now: datetime) -> dict:
    """A session for the body's request; a GitLab job's is refused, or released at once, once the job is over."""
    base, lifetime, request = session_request(body, settings)
    slots, tags, job = slots_of(settings), {}, None
    if request.gitlab_job:
        job = f"{request.gitlab_job.project_id}/{request.gitlab_job.job_id}"
        tags[GITLAB_JOB_TAG] = job
        ledger_of(settings).check_not_over("gitlab", job)
    answer = create_session(
        clients.client,
        settings,
        base,
        lifetime,
        now,
        slots=slots,
        public_key=request.public_key,
        ingress_cidrs=tuple(request.ingress_cidrs),
        instance=request.instance,
        extras=Extras(tags=tags),
    )
    if job:
        try:  # the job's end may have been recorded while this session was made
            ledger_of(settings).check_not_over("gitlab", job)
        except JobOver:
            with suppress(SessionNotFound):  # the hook may have released it already
                release_session(clients.client, settings, answer["session"], slots)
            raise
    return answer


def release(settings: LauncherSettings, path_name: str, body: bytes) -> dict:
    """Release the session in the path, which the signed body must name too."""
    request = parse_body(body, ReleaseRequest)
    if request.session != path_name:
        raise BadRequest("session: must equal the session name in the path (the signature binds the body)")
    name = SessionName.parse(path_name)
    if name is None or name.base not in settings.session_bases:
        raise SessionNotFound("that is not a session of this stack")
    return release_session(clients.client, settings, name, slots_of(settings))
