"""GitHub ``workflow_job`` deliveries built from octokit's real payloads (tests/events/github), dated now.

The payloads were recorded in 2021; the launcher ignores a ``queued`` older
than 72 hours (a replay), so every delivery a test sends carries the test's
own clock in ``workflow_job.created_at`` unless the test says otherwise.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from tests.support.function_url import url_event
from tests.support.handlers import load_fixture

FIXTURES = {
    "queued": "workflow_job-queued.payload.json",
    "in_progress": "workflow_job-in_progress.payload.json",
    "completed": "workflow_job-completed.success.with-organization.payload.json",
    "failure": "workflow_job-completed.failure.with-organization.payload.json",
    "waiting": "workflow_job-waiting.payload.json",  # held for an environment's reviewer
}


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def workflow_job(
    action: str,
    job_id: int | None = None,
    *,
    labels=None,
    now: datetime | None = None,
    created_at: datetime | None = None,
    **job_fields,
) -> dict:
    """The payload of ``action`` (``failure``: a completed one that failed), its job dated ``created_at``/``now``."""
    payload = json.loads(load_fixture(f"github/{FIXTURES[action]}"))
    job = payload["workflow_job"]
    job["created_at"] = iso(created_at or now or datetime.now(UTC))
    if job_id is not None:
        job["id"] = job_id
    if labels is not None:
        job["labels"] = list(labels)
    job.update({key: iso(value) if isinstance(value, datetime) else value for key, value in job_fields.items()})
    return payload


def github_event(payload: dict | bytes, delivery_id: str, event: str = "workflow_job", **kwargs) -> dict:
    """A signed ``POST /github`` as GitHub sends it (``X-GitHub-Event``, ``X-GitHub-Delivery``)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload)
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery_id, **kwargs.pop("headers", {})}
    return url_event("POST", "/github", body, headers, **kwargs)
