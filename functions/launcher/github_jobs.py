"""GitHub's ``workflow_job`` webhook: a labelled job gets one session when queued, released when completed.

Labels match in any letter case (GitHub's rule) and the repository must be
in the allow-list, both before any AWS or GitHub call. ``queued`` claims the
job, so redeliveries and second hooks answer the same session; ``completed``
(any conclusion, cancelled included) records the job as over and releases
what it has, so a ``queued`` that comes later makes nothing.
"""

from __future__ import annotations

from contextlib import suppress
from datetime import datetime

from errors import JobOver, SessionNotFound
from launch import Extras, create_session, release_job, release_session
from payloads import WorkflowJobDelivery, parse_body
from session_naming import GITHUB_JOB_TAG, clients
from session_naming.settings import LauncherSettings
from sessions import ledger_of, slots_of


def handle(settings: LauncherSettings, event: str, body: bytes, now: datetime) -> tuple[int, dict]:
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
        ledger_of(settings).end("github", str(job.id), now)
        return 200, release_job(clients.client, settings, GITHUB_JOB_TAG, str(job.id), slots_of(settings))
    return 202, {"ignored": "only queued and completed jobs change sessions"}


def queued(settings: LauncherSettings, delivery: WorkflowJobDelivery, now: datetime) -> tuple[int, dict]:
    job, ledger, slots = str(delivery.workflow_job.id), ledger_of(settings), slots_of(settings)
    try:
        existing = ledger.claim("github", job, now)
    except JobOver:
        return 202, {"ignored": "the job is already over"}
    if existing is not None:
        return 200, existing
    try:
        answer = create_session(
            clients.client,
            settings,
            settings.session_bases[0],
            settings.default_lifetime,
            now,
            slots=slots,
            instance=bool(settings.launch_template_id),
            extras=Extras(tags={GITHUB_JOB_TAG: job}),
        )
    except BaseException:
        ledger.abandon("github", job)
        raise
    try:
        ledger.settle("github", job, answer)
    except JobOver:
        with suppress(SessionNotFound):  # the completed delivery may have released it already
            release_session(clients.client, settings, answer["session"], slots)
        return 202, {"ignored": "the job ended while its session was made; it is released"}
    return 201, answer
