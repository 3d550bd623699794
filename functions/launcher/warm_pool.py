"""Warm pools: instances made ahead, so a job starts in seconds, inside the exact caps.

A pool instance is a session like any other: named when it is made (its
expiry covers its whole pool life and one job), tagged with its profile's
pool and spec, holding its base's and profile's slots from the start, and
never registered with GitHub until a job claims it. The collector needs no
rule of its own for it.

Its state lives in the job table (``pool#<profile>#<instance id>``), and
its tag ``ec2-sessions:pool-state`` mirrors it so that one listing of the
region tells an upkeep with nothing to do that it has nothing to do::

    filling-<kind> ──(EC2: stopped, or running with checks ok)──▶ ready-<kind> ──(a job's claim)──▶ claimed
          │                                                            │
          └──(not ready in 10 minutes)──▶ retiring ◀──(spec, age, the window's counts)──┘

``kind`` is ``stopped`` or ``hot``. Every move is a conditional write, so a
claim and a retirement never both win one instance, two jobs never get one
instance, and nothing moves back: a claimed instance serves its job and is
released like any session, never returned to a pool. The design's own
description of these states is docs/DESIGN.md, "Warm pools".

Upkeep (``upkeep``, once a minute) fills what is missing through the
profile's fleet path, on demand; marks instances ready; retires what did not
get ready in 10 minutes, what a new spec superseded, what is older than
``max_age_minutes`` and what is beyond the current window's counts. A claim
(``claim``) takes a hot instance, else a stopped one: it registers the job's
runner, writes its configuration (readable by that instance alone), tags the
job onto the session, and starts a stopped instance; a start EC2 refuses for
capacity releases that session and the caller launches cold.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from botocore.exceptions import ClientError
from fleet import Started
from launch import Extras, Instance, Made, TimeLeft, create_session, release_session, store_secrets
from session_naming import (
    POOL_STATE_TAG,
    POOL_TAG,
    SESSION_TAG,
    SPEC_TAG,
    SessionName,
    clients,
    tags_of,
)
from session_naming.github import RUNNER_JITCONFIG_SUFFIX
from session_naming.profiles import Profile
from session_naming.resources import error_code
from session_naming.settings import LauncherSettings

KINDS = ("hot", "stopped")  # a claim takes a hot instance first: its job starts soonest
FILL_DEADLINE = timedelta(minutes=10)  # an instance not ready by then is released (PoolFillFailed)
FILLS_PER_UPKEEP = 5  # instances one upkeep starts for one pool: a pool fills over a few minutes, never in a burst
# Seconds a profile template's resolved version is trusted: a new version rolls out within five minutes, and
# four upkeeps in five make only their one listing.
SPEC_MAX_AGE = 300.0
UPKEEP_RESERVE_SECONDS = 15.0  # a fill starts only while this much of the invocation is left
NO_RUNNER = "none"  # the configuration of a session claimed without a runner (curl, GitLab): its instance stays up
CAPACITY = frozenset({"InsufficientInstanceCapacity", "InsufficientCapacity", "InsufficientHostCapacity"})
LISTED_STATES = ("pending", "running", "stopping", "stopped")
logger = Logger()


class StartRefused(Exception):
    """EC2 would not start a stopped pool's instance (capacity): its session is released, the job goes cold."""


@dataclass(frozen=True)
class Member:
    """A pool instance as one listing of the region shows it."""

    instance: str
    session: SessionName
    profile: str
    state: str  # its pool-state tag: filling-<kind>, ready-<kind>, claimed or retiring
    ec2_state: str
    spec: str
    launched: datetime

    @property
    def kind(self) -> str:
        return self.state.rpartition("-")[2]


@dataclass
class Tended:
    """What one upkeep did to one pool (the answer, and the metrics)."""

    wanted: dict[str, int]
    ready: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    filled: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    retired: dict[str, int] = field(default_factory=dict)  # reason -> count


class PoolTable:
    """The pool states in the stack's job table; claims find ready instances through its ``due`` index."""

    def __init__(self, dynamodb: Any, table: str):
        self._db, self._table = dynamodb, table

    @staticmethod
    def key(profile: str, instance: str) -> dict[str, Any]:
        return {"id": {"S": f"pool#{profile}#{instance}"}}

    @staticmethod
    def queue(profile: str, kind: str) -> str:
        return f"pool#{profile}#{kind}"

    def filling(self, profile: str, kind: str, answer: dict[str, Any], spec: str, now: datetime) -> None:
        """A new instance, not ready yet; ``answer`` is its session's, for the job that claims it."""
        expires = SessionName(answer["session"]).expires + timedelta(days=1)
        self._db.put_item(
            TableName=self._table,
            Item={
                **self.key(profile, answer["instances"][0]["id"]),
                "state": {"S": f"filling-{kind}"},
                "answer": {"S": json.dumps(answer)},
                "spec": {"S": spec},
                "made": {"N": str(int(now.timestamp()))},
                "expiration": {"N": str(int(expires.timestamp()))},
            },
            ConditionExpression="attribute_not_exists(id)",
        )

    def ready(self, profile: str, instance: str, kind: str, now: datetime) -> bool:
        """``filling`` → ``ready``: claimable from now on (``False``: it was moved already)."""
        return self._move(
            profile,
            instance,
            f"filling-{kind}",
            f"ready-{kind}",
            "SET #state = :target, awaiting = :queue, due_at = :now",
            {":queue": {"S": self.queue(profile, kind)}, ":now": {"N": str(int(now.timestamp()))}},
        )

    def retire(self, profile: str, instance: str, state: str) -> bool:
        """``filling`` or ``ready`` → ``retiring``: no claim can take it any more (``False``: a claim won).

        An instance the table never heard of (its record failed after its
        fill) is retired too: no claim can have found it.
        """
        return self._move(
            profile, instance, state, "retiring", "SET #state = :target REMOVE awaiting, due_at", {}, unknown_too=True
        )

    def claim(self, profile: str, kind: str, job: str, now: datetime) -> dict[str, Any] | None:
        """The oldest ready instance of the kind, now ``claimed`` by ``job`` (one conditional write), or ``None``."""
        for _ in range(3):  # a page of candidates lost to other claims: read the next one
            items = self._db.query(
                TableName=self._table,
                IndexName="due",
                KeyConditionExpression="awaiting = :queue",
                ExpressionAttributeValues={":queue": {"S": self.queue(profile, kind)}},
                Limit=5,
            ).get("Items", [])
            if not items:
                return None
            for item in items:
                claimed = self._move(
                    profile,
                    item["id"]["S"].rpartition("#")[2],
                    f"ready-{kind}",
                    "claimed",
                    "SET #state = :target, job = :job, claimed_at = :now REMOVE awaiting, due_at",
                    {":job": {"S": job}, ":now": {"N": str(int(now.timestamp()))}},
                    returned=True,
                )
                if claimed:
                    return claimed
        return None

    def read(self, profile: str, instance: str) -> dict[str, Any]:
        return self._db.get_item(TableName=self._table, Key=self.key(profile, instance), ConsistentRead=True).get(
            "Item", {}
        )

    def _move(
        self,
        profile: str,
        instance: str,
        source: str,
        target: str,
        update: str,
        values: dict[str, Any],
        *,
        returned: bool = False,
        unknown_too: bool = False,
    ) -> Any:
        """One conditional write: ``source`` → ``target`` (``None``/``False`` when the state was not ``source``)."""
        condition = "#state = :source" + (" OR attribute_not_exists(id)" if unknown_too else "")
        try:
            answer = self._db.update_item(
                TableName=self._table,
                Key=self.key(profile, instance),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={":source": {"S": source}, ":target": {"S": target}, **values},
                ReturnValues="ALL_NEW" if returned else "NONE",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None if returned else False
            raise
        return answer["Attributes"] if returned else True


def table_of(settings: LauncherSettings) -> PoolTable:
    return PoolTable(clients.client("dynamodb", settings.region), settings.idempotency_table)


# ---- upkeep --------------------------------------------------------------------------------------


def upkeep(settings: LauncherSettings, now: datetime, time_left: TimeLeft) -> dict[str, Any]:
    """Tend every pool: one listing of the region, then only what something needs (nothing, most minutes)."""
    from sessions import profiles_of

    pooled = {name: profile for name, profile in profiles_of(settings).items() if profile.pool is not None}
    listed = members(settings)  # with no pool configured too: a pool removed from PROFILES is retired
    summary: dict[str, Any] = {}
    for name in sorted(set(pooled) | {m.profile for m in listed}):
        own = [m for m in listed if m.profile == name]
        tended = tend(settings, pooled.get(name), name, own, now, time_left)
        summary[name] = {
            "wanted": tended.wanted,
            "ready": tended.ready,
            "filled": tended.filled,
            "retired": tended.retired,
        }
    logger.info("pool upkeep finished", extra={"pools": summary})
    return {"pools": summary}


def members(settings: LauncherSettings) -> list[Member]:
    """Every pool instance of the region's owned bases, with its state as its tags say: one paged listing."""
    ec2 = clients.client("ec2", settings.region)
    found: list[Member] = []
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[
            {"Name": "tag-key", "Values": [POOL_TAG]},
            {"Name": "instance-state-name", "Values": list(LISTED_STATES)},
        ]
    )
    for page in pages:
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                tags = tags_of(instance)
                name = SessionName.parse(tags.get(SESSION_TAG))
                if name is None or name.base not in settings.session_bases or tags.get("Name") != str(name):
                    continue  # not a session of this stack's: never touched
                found.append(
                    Member(
                        instance["InstanceId"],
                        name,
                        tags.get(POOL_TAG, ""),
                        tags.get(POOL_STATE_TAG, ""),
                        instance["State"]["Name"],
                        tags.get(SPEC_TAG, ""),
                        instance.get("LaunchTime", datetime.now(UTC)),
                    )
                )
    return found


def tend(
    settings: LauncherSettings,
    profile: Profile | None,
    name: str,
    pool_members: list[Member],
    now: datetime,
    time_left: TimeLeft,
) -> Tended:
    """One pool's upkeep: mark the ready, retire the failed, superseded, too old and too many, fill the rest."""
    wanted = dict(zip(("stopped", "hot"), profile.pool.counts(now), strict=True)) if profile and profile.pool else {}
    tended = Tended({kind: wanted.get(kind, 0) for kind in KINDS})
    live = [m for m in pool_members if m.state.startswith(("filling-", "ready-"))]
    for member in [m for m in pool_members if m.state == "retiring"]:
        release(settings, member, None, tended)  # a release that failed before: again
    spec = current_spec(settings, profile) if profile is not None and profile.pool is not None and live else None
    running_checked = checks_ok(settings, [m for m in live if m.state == "filling-hot" and m.ec2_state == "running"])
    keep: list[Member] = []
    for member in live:
        reason = judge(member, profile, spec, now, running_checked)
        if reason == "ready":
            # The tag first: once the table says ready a claim may take it, and its "claimed" must be the last word.
            mark(settings, member, f"ready-{member.kind}")
            table = table_of(settings)
            if table.ready(name, member.instance, member.kind, now):
                tended.ready[member.kind] += 1
                count("PoolReady", profile=name, state=member.kind)
            elif not table.read(name, member.instance):  # its record failed after its fill: no claim could serve it
                release(settings, replace(member, state=f"ready-{member.kind}"), "fill_failed", tended)
                continue
            keep.append(replace(member, state=f"ready-{member.kind}"))
        elif reason is not None:
            release(settings, member, reason, tended)
        else:
            keep.append(member)
    for kind in KINDS:
        own = sorted((m for m in keep if m.kind == kind), key=lambda m: (m.state.startswith("ready"), m.launched))
        for member in own[: max(0, len(own) - tended.wanted[kind])]:  # the newest filling first, then the oldest ready
            release(settings, member, "schedule", tended)
        missing = tended.wanted[kind] - len(own)
        for _ in range(min(max(0, missing), FILLS_PER_UPKEEP)):
            if profile is None or time_left() < UPKEEP_RESERVE_SECONDS:
                break
            if not fill(settings, profile, kind, now, time_left):
                break
            tended.filled[kind] += 1
    return tended


def judge(member: Member, profile: Profile | None, spec: str | None, now: datetime, checked: set[str]) -> str | None:
    """What upkeep does with a filling or ready instance: ``ready``, a reason to retire it, or ``None`` (leave it)."""
    if profile is None or profile.pool is None:
        return "schedule"  # the pool is gone from PROFILES: nothing is wanted of it
    age = now - member.launched
    if member.state.startswith("filling-"):
        done = member.ec2_state == "stopped" if member.kind == "stopped" else member.instance in checked
        if done:
            return "ready"
        return "fill_failed" if age >= FILL_DEADLINE else None
    if member.ec2_state != ("stopped" if member.kind == "stopped" else "running"):
        return "broken"  # a ready-stopped instance someone started, a ready-hot one that went down
    if member.spec != spec:
        return "spec"
    if age >= profile.pool.max_age:
        return "age"
    return None


def checks_ok(settings: LauncherSettings, running: list[Member]) -> set[str]:
    """The hot instances whose EC2 status checks are both ok (one call, only when some are filling)."""
    if not running:
        return set()
    ec2 = clients.client("ec2", settings.region)
    statuses = ec2.describe_instance_status(InstanceIds=[m.instance for m in running])["InstanceStatuses"]
    return {
        s["InstanceId"]
        for s in statuses
        if s.get("InstanceStatus", {}).get("Status") == "ok" and s.get("SystemStatus", {}).get("Status") == "ok"
    }


def mark(settings: LauncherSettings, member: Member, state: str) -> None:
    """The state tag follows the table (a failed tag is mended by the next upkeep, which sees the old one)."""
    ec2 = clients.client("ec2", settings.region)
    ec2.create_tags(
        Resources=[member.instance],
        Tags=[{"Key": SESSION_TAG, "Value": str(member.session)}, {"Key": POOL_STATE_TAG, "Value": state}],
    )


def release(settings: LauncherSettings, member: Member, reason: str | None, tended: Tended) -> None:
    """Retire a pool instance: first in the table (a claim that won keeps it), then its session goes."""
    from sessions import slots_of

    if reason is not None:
        if not table_of(settings).retire(member.profile, member.instance, member.state):
            return  # claimed meanwhile: it is a job's session now
        mark(settings, member, "retiring")
        tended.retired[reason] = tended.retired.get(reason, 0) + 1
        if reason == "fill_failed":
            count("PoolFillFailed", profile=member.profile)
        else:
            count("PoolReplaced", profile=member.profile, reason=reason)
        logger.info("pool instance retired", extra={"session": str(member.session), "reason": reason})
    try:
        release_session(clients.client, settings, member.session, slots_of(settings))
    except Exception as error:  # noqa: BLE001 - tagged retiring: the next upkeep (or the collector) tries again
        logger.warning("pool instance not released", extra={"session": str(member.session), "error": error_code(error)})


def fill(settings: LauncherSettings, profile: Profile, kind: str, now: datetime, time_left: TimeLeft) -> bool:
    """Make one instance for the pool through the profile's fleet path, on demand; ``False`` when it cannot."""
    from errors import TooManySessions
    from sessions import slots_of
    from user_data import runner_user_data

    assert profile.pool is not None
    spec = current_spec(settings, profile)
    lifetime = profile.pool.max_age + (profile.lifetime or settings.default_lifetime)  # its pool life and one job
    name = SessionName.make(settings.session_bases[0], lifetime, now)
    extras = Extras(
        tags={POOL_TAG: profile.name, SPEC_TAG: spec},
        user_data=runner_user_data(f"/{name}{RUNNER_JITCONFIG_SUFFIX}", pool=kind),
        instance_tags={POOL_STATE_TAG: f"filling-{kind}"},
    )
    try:
        answer = create_session(
            clients.client,
            settings,
            name.base,
            lifetime,
            now,
            slots=slots_of(settings),
            profile=replace(profile, market="on-demand"),  # a stopped spot instance needs a persistent request
            extras=extras,
            name=name,
            time_left=time_left,
            shutdown="stop" if kind == "stopped" else "terminate",
        )
    except TooManySessions:
        return False  # the caps are full: the pool waits for a slot like any session
    except Exception as error:  # noqa: BLE001 - rolled back; the next upkeep tries again
        logger.warning("pool fill failed", extra={"profile": profile.name, "error": error_code(error)})
        return False
    table_of(settings).filling(profile.name, kind, answer, spec, now)
    return True


_SPECS: dict[tuple[Any, ...], tuple[float, str]] = {}


def current_spec(settings: LauncherSettings, profile: Profile | None) -> str:
    """A hash of what makes the profile's instance: its template and resolved version, image, types,
    subnets and the boot script. Read at most once a minute per profile (a new version rolls out within it)."""
    from user_data import TEMPLATE

    assert profile is not None
    key = (profile.launch_template_id, profile.launch_template_version, profile.instance_types, profile.subnet_ids)
    cached = _SPECS.get(key)
    if cached is not None and time.monotonic() - cached[0] < SPEC_MAX_AGE:
        return cached[1]
    ec2 = clients.client("ec2", settings.region)
    version = ec2.describe_launch_template_versions(
        LaunchTemplateId=profile.launch_template_id, Versions=[profile.launch_template_version]
    )["LaunchTemplateVersions"][0]
    data = version.get("LaunchTemplateData", {})
    made_of: dict[str, Any] = {
        "template": profile.launch_template_id,
        "version": version.get("VersionNumber"),
        "image": data.get("ImageId"),
        "types": list(profile.instance_types) or [str(data.get("InstanceType"))],
        "subnets": list(profile.subnet_ids),
        "boot": hashlib.sha256(TEMPLATE.read_bytes()).hexdigest(),
    }
    spec = hashlib.sha256(json.dumps(made_of, sort_keys=True).encode()).hexdigest()[:16]
    _SPECS[key] = (time.monotonic(), spec)
    return spec


# ---- claim ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Runner:
    """What a claim adds for a job: its tags, and its runner's configuration (``None``: no runner)."""

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
    ``"pool"``, or ``None`` (a miss: launch cold). A claimed instance that cannot be made the job's (its
    start refused for capacity, a step failing) is released, never returned, and the next is tried."""
    table = table_of(settings)
    for kind in (kind for kind in KINDS if profile.pool is not None and profile.pool.keeps(kind)):
        while (item := table.claim(profile.name, kind, job, now)) is not None:
            try:
                answer = make_it_the_jobs(settings, item, kind, runner, ingress_cidrs)
            except Exception as error:  # noqa: BLE001 - that instance's failure: the next one, or cold
                logger.warning("pool claim failed", extra={"profile": profile.name, "error": error_code(error)})
                release_claimed(settings, item)
                if isinstance(error, StartRefused):
                    break  # no capacity for this kind right now: the next kind, or cold
                continue
            count("PoolClaims", profile=profile.name, kind=kind)
            return answer
    count("PoolMisses", profile=profile.name)
    return None


def make_it_the_jobs(
    settings: LauncherSettings, item: dict[str, Any], kind: str, runner: Runner, ingress_cidrs: tuple[str, ...]
) -> dict[str, Any]:
    """Register the runner, then at once: tag the job onto the session, write its configuration, open its
    ingress; then start a stopped instance (after its configuration exists: its boot reads it)."""
    answer = json.loads(item["answer"]["S"])
    name = SessionName(answer["session"])
    extras = runner.register(name) if runner.register is not None else Extras(tags=runner.tags)
    if not extras.secrets:
        extras = replace(extras, secrets={RUNNER_JITCONFIG_SUFFIX.strip("/"): NO_RUNNER})
    entry = answer["instances"][0]
    started = Started(entry["id"], entry.get("instance_type", ""), "on-demand", entry["arn"], 0)
    made = Made(clients.client, settings.region, name, extras, None)
    ec2 = clients.client("ec2", settings.region)
    with ThreadPoolExecutor(max_workers=3) as pool:
        steps: list[Future[Any]] = [
            pool.submit(
                ec2.create_tags,
                Resources=[entry["id"], answer["key_pair"]["id"], answer["security_group"]["id"]],
                Tags=[
                    {"Key": key, "Value": value}
                    for key, value in {SESSION_TAG: str(name), **extras.tags, POOL_STATE_TAG: "claimed"}.items()
                ],
            ),
            pool.submit(store_secrets, made, Instance(started, entry.get("profile", ""))),
        ]
        if ingress_cidrs:
            from launch import ssh_from

            group, opening = answer["security_group"]["id"], [ssh_from(ingress_cidrs)]
            open_group = lambda: ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=opening)  # noqa: E731
            steps.append(pool.submit(open_group))
    for step in steps:
        step.result()
    if kind == "stopped":
        try:
            ec2.start_instances(InstanceIds=[entry["id"]])
        except ClientError as error:
            if error.response["Error"]["Code"] in CAPACITY:
                raise StartRefused(entry["id"]) from None
            raise
    answer["pool"] = kind
    return answer


def release_claimed(settings: LauncherSettings, item: dict[str, Any]) -> None:
    """A claim that could not be made the job's: its session goes (the collector takes what will not)."""
    from sessions import slots_of

    name = SessionName(json.loads(item["answer"]["S"])["session"])
    try:
        release_session(clients.client, settings, name, slots_of(settings))
    except Exception as error:  # noqa: BLE001 - named and tagged: the collector removes it at expiry
        logger.warning("claimed pool instance not released", extra={"session": str(name), "error": error_code(error)})


def count(name: str, **dimensions: str) -> None:
    with single_metric(name=name, unit=MetricUnit.Count, value=1) as metric:
        for key, value in dimensions.items():
            metric.add_dimension(name=key, value=value)
