"""GitLab's Job Hook: a job that finishes (cancelled included) releases its sessions at once.

A job makes its sessions itself through ``POST /sessions`` naming the job;
its ``after_script`` may never run when it is cancelled, so the hook is what
frees the session before its expiry. The job is recorded as over whether or
not a session exists yet, so a create still in flight releases itself.
"""

from __future__ import annotations

from datetime import datetime

from launch import release_job, sessions_tagged
from payloads import GitLabJobHook, parse_body
from session_naming import GITLAB_JOB_TAG, clients
from session_naming.settings import LauncherSettings
from sessions import ledger_of, slots_of

FINISHED = frozenset({"success", "failed", "canceled", "skipped"})


def handle(settings: LauncherSettings, event: str, body: bytes, now: datetime) -> tuple[int, dict]:
    if event != "Job Hook":
        return 202, {"ignored": "only Job Hook events release sessions"}
    hook = parse_body(body, GitLabJobHook)
    if hook.object_kind != "build":
        return 202, {"ignored": "object_kind is not build"}
    if hook.build_status not in FINISHED:
        return 202, {"ignored": "the job has not finished"}
    job = f"{hook.project_id}/{hook.build_id}"
    ledger_of(settings).end("gitlab", job, now)
    sessions = sessions_tagged(clients.client, settings, GITLAB_JOB_TAG, job)
    return 200, release_job(clients.client, settings, sessions, slots_of(settings))
