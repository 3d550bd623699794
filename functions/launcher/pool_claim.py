"""A job claims a warm pool's instance: hot first, then stopped, else it launches cold.

A claim is one conditional write in the job table (``ready`` → ``claimed``:
two jobs never get one instance). Then the instance becomes the job's: its
runner is registered, and at once the job is tagged onto the instance, key
pair and group, the runner's configuration is written (readable by that
instance alone) and any ingress asked for is opened; a stopped instance is
started last, once its configuration exists (its boot reads it).

An instance that cannot be made the job's (it died since it was ready, EC2
has no capacity to start it) is released, never returned to the pool, and
the next is tried; any other failure (GitHub, SSM, a throttled call) would
fail the next instance the same way, so the claimed one is released and the
job launches cold, where the same failure is answered as any create's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError
from fleet import CAPACITY_ERRORS, Started
from launch import Extras, Instance, Made, ssh_from, store_secrets
from session_naming import POOL_STATE_TAG, SESSION_TAG, SessionName, clients
from session_naming.github import RUNNER_JITCONFIG_SUFFIX
from session_naming.profiles import Profile
from session_naming.resources import error_code
from session_naming.settings import LauncherSettings
from warm_pool import KINDS, count, release, table_of

NO_RUNNER = "none"  # the configuration of a session claimed without a runner (curl, GitLab): its instance stays up
CLAIMS_PER_KIND = 3  # dead instances tried before the next kind: a claim never walks a whole pool
logger = Logger()


class InstanceRefused(Exception):
    """This instance cannot be the job's (gone since it was ready, no capacity to start it): the next may."""


@dataclass(frozen=True)
class Runner:
    """What a claim adds for a job: its tags, and its runner's registration (``None``: no runner)."""

    tags: Mapping[str, str]
    register: Callable[[SessionName], Extras] | None = None


def claim(
    settings: LauncherSettings,
    profile: Profile,
    job: str,
    runner: Runner,
    now: datetime,
    ingress_cidrs: tuple[str, ...] = (),
) -> dict[str, Any] | None:
    """A ready instance of the profile's pool, hot first, made the job's session: its ``201`` answer with
    ``"pool"``, or ``None`` (a miss, or a failure: launch cold)."""
    assert profile.pool is not None
    table = table_of(settings)
    for kind in (kind for kind in KINDS if profile.pool.keeps(kind)):
        for _ in range(CLAIMS_PER_KIND):
            item = table.claim(profile.name, kind, job, now)
            if item is None:
                break
            try:
                answer = make_it_the_jobs(settings, profile, item, kind, runner, ingress_cidrs)
            except InstanceRefused as refused:
                logger.warning("pool instance refused: released", extra={"profile": profile.name, "why": str(refused)})
                release_claimed(settings, item)
                continue
            except Exception as error:  # noqa: BLE001 - it would fail the next instance too: cold answers it
                logger.warning("pool claim failed: launching cold", extra={"profile": profile.name, **_code(error)})
                release_claimed(settings, item)
                return None
            count("PoolClaims", profile=profile.name, kind=kind)
            return answer
    count("PoolMisses", profile=profile.name)
    return None


def make_it_the_jobs(
    settings: LauncherSettings,
    profile: Profile,
    item: dict[str, Any],
    kind: str,
    runner: Runner,
    ingress_cidrs: tuple[str, ...],
) -> dict[str, Any]:
    """Check the instance, register the runner, then at once: tag the job onto the session, write its
    configuration, open its ingress; then start a stopped instance (after its configuration exists)."""
    answer = json.loads(item["answer"]["S"])
    name = SessionName(answer["session"])
    entry = answer["instances"][0]
    ec2 = clients.client("ec2", settings.region)
    still_there(ec2, entry["id"], kind)
    extras = runner.register(name) if runner.register is not None else Extras(tags=runner.tags)
    if not extras.secrets:
        extras = replace(extras, secrets={RUNNER_JITCONFIG_SUFFIX.strip("/"): NO_RUNNER})
    started = Started(entry["id"], entry.get("instance_type", ""), "on-demand", entry["arn"], 0)
    made = Made(clients.client, settings.region, name, extras, profile)
    job_tags: list[Any] = [
        {"Key": key, "Value": value} for key, value in {SESSION_TAG: str(name), **extras.tags}.items()
    ]
    resources = [entry["id"], answer["key_pair"]["id"], answer["security_group"]["id"]]
    claimed: list[Any] = [{"Key": SESSION_TAG, "Value": str(name)}, {"Key": POOL_STATE_TAG, "Value": "claimed"}]
    with ThreadPoolExecutor(max_workers=4) as pool:
        steps: list[Future[Any]] = [
            pool.submit(lambda: ec2.create_tags(Resources=resources, Tags=job_tags)),
            pool.submit(lambda: ec2.create_tags(Resources=[entry["id"]], Tags=claimed)),
            pool.submit(store_secrets, made, Instance(started, profile.name)),
        ]
        if ingress_cidrs:
            opening = [ssh_from(ingress_cidrs)]
            group = answer["security_group"]["id"]
            steps.append(
                pool.submit(lambda: ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=opening))
            )
    for step in steps:
        step.result()
    if kind == "stopped":
        start(ec2, entry["id"])
    answer["pool"] = kind
    return answer


def still_there(ec2: Any, instance: str, kind: str) -> None:
    """A ready instance may have died since (a reboot, a hand, EC2): the job never gets a dead one."""
    wanted = "stopped" if kind == "stopped" else "running"
    reservations = ec2.describe_instances(InstanceIds=[instance])["Reservations"]
    states = [i["State"]["Name"] for r in reservations for i in r["Instances"]]
    if states != [wanted]:
        raise InstanceRefused(f"{instance} is {states[0] if states else 'gone'}, not {wanted}")


def start(ec2: Any, instance: str) -> None:
    """Start a stopped instance; EC2's capacity refusal (or an instance gone) is this instance's alone."""
    try:
        ec2.start_instances(InstanceIds=[instance])
    except ClientError as error:
        code = error.response["Error"]["Code"]
        if code in CAPACITY_ERRORS or code in ("IncorrectInstanceState", "InvalidInstanceID.NotFound"):
            raise InstanceRefused(f"{instance} not started: {code}") from None
        raise


def release_claimed(settings: LauncherSettings, item: dict[str, Any]) -> None:
    """A claim that could not be made the job's: its session goes, never back to the pool."""
    release(settings, SessionName(json.loads(item["answer"]["S"])["session"]))


def _code(error: Exception) -> dict[str, str]:
    return {"error": getattr(error, "code", None) or error_code(error)}
