"""A spot instance is about to be taken back: release its session now and remember it against its profile.

EC2 warns two minutes before it interrupts a spot instance. The session is
released at once (its runner registration included, so GitHub does not
wait on a runner that is going away), the interruption feeds the profile's
circuit breaker, and a GitHub job that ran on it is marked interrupted so
that the reconcile pass re-runs it once its workflow run has completed.
An instance that is not a session's, or not of an owned base, changes
nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from errors import SessionKept, SessionNotFound
from session_naming import GITHUB_JOB_TAG, GITHUB_RUNNER_TAG, PROFILE_TAG, SESSION_TAG, SessionName, clients
from session_naming.settings import LauncherSettings

DETAIL_TYPE = "EC2 Spot Instance Interruption Warning"
logger = Logger()


def is_interruption(event: object) -> bool:
    return isinstance(event, dict) and event.get("source") == "aws.ec2" and event.get("detail-type") == DETAIL_TYPE


def handle(settings: LauncherSettings, event: dict, now: datetime) -> dict[str, Any]:
    """Release the interrupted instance's session; answer what was done (EventBridge keeps no answer)."""
    detail = event.get("detail")
    instance = detail.get("instance-id") if isinstance(detail, dict) else None
    if not isinstance(instance, str) or not instance.startswith("i-") or len(instance) > 32:
        return {"ignored": "detail.instance-id must be an instance id"}
    tags = instance_tags(settings, instance)
    name = SessionName.parse(tags.get("Name"))
    if name is None or name.base not in settings.session_bases or tags.get(SESSION_TAG) != str(name):
        return {"ignored": "not a session's instance"}
    profile = tags.get(PROFILE_TAG, "none")
    logger.info("spot interruption", extra={"session": str(name), "profile": profile, "instance": instance})
    with single_metric(name="SpotInterruptions", unit=MetricUnit.Count, value=1) as metric:
        metric.add_dimension(name="profile", value=profile)
    answer: dict[str, Any] = {"session": str(name), "profile": profile}
    try:  # first: whatever the job table says next, the instance's session goes now
        answer["released"] = release(settings, name, tags)
    except SessionKept:
        answer["kept"] = True
    except SessionNotFound:
        answer["released"] = []
    record(settings, tags, instance, now, answer)
    return answer


def record(settings: LauncherSettings, tags: dict[str, str], instance: str, now: datetime, answer: dict) -> None:
    """After the release: the breaker counts the interruption, and the job is marked for its re-run and pending
    again if it had not started. A DynamoDB error here is raised (EventBridge retries; the release is done)."""
    from sessions import breaker_of, ledger_of

    profile, job = tags.get(PROFILE_TAG, "none"), tags.get(GITHUB_JOB_TAG)
    answer["breaker_open"] = breaker_of(settings).record(profile, now, instance)
    if job:
        ledger = ledger_of(settings)
        ledger.mark_interrupted("github", job, now)
        if "released" in answer and ledger.rebind("github", job, now, "interrupted"):  # taken back before it started
            answer["job_pending"] = job


def instance_tags(settings: LauncherSettings, instance: str) -> dict[str, str]:
    from botocore.exceptions import ClientError

    try:
        reservations = clients.client("ec2", settings.region).describe_instances(InstanceIds=[instance])
    except ClientError:
        return {}
    described = [i for r in reservations["Reservations"] for i in r["Instances"]]
    return {t["Key"]: t["Value"] for t in (described[0].get("Tags") or ()) if described} if described else {}


def release(settings: LauncherSettings, name: SessionName, tags: dict[str, str]) -> list[str]:
    """The session goes, and its runner registration with it when it has one (GitHub's failure left counted)."""
    if tags.get(GITHUB_RUNNER_TAG):
        from github_jobs import release_registered

        answer = release_registered(settings, {name: tags})
        if answer["kept"]:
            raise SessionKept(f"session {name} is kept")
        return answer["released"] + answer.get("failed", [])
    from launch import release_session
    from sessions import slots_of

    release_session(clients.client, settings, name, slots_of(settings))
    return [str(name)]
