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
          └──(not ready in 10 minutes)──▶ retiring ◀──(spec, age, the window's counts, gone)──┘

``kind`` is ``stopped`` or ``hot``. Every move is a conditional write, so a
claim and a retirement never both win one instance, two jobs never get one
instance, and nothing moves back: a claimed instance serves its job and is
released like any session, never returned to a pool (docs/DESIGN.md,
"Warm pools").

This module is what both of the pool's steps share: the table, the
listing, the spec, the state tag, a retirement. The steps are
``pool_upkeep.py`` (once a minute: fill, mark ready, retire) and
``pool_claim.py`` (a job takes an instance).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from botocore.exceptions import ClientError
from launch import release_session
from session_naming import POOL_STATE_TAG, POOL_TAG, SESSION_TAG, SPEC_TAG, SessionName, clients, tags_of
from session_naming.profiles import Profile
from session_naming.resources import INSTANCES, error_code
from session_naming.settings import LauncherSettings

KINDS = ("hot", "stopped")  # a claim takes a hot instance first: its job starts soonest
# Seconds a profile template's resolved version is trusted: a new version rolls out within five minutes, and
# four upkeeps in five make only their one listing.
SPEC_MAX_AGE = 300.0
KEPT = timedelta(days=1)  # a pool item outlives its session by this much, then DynamoDB's TTL removes it
logger = Logger()


@dataclass(frozen=True)
class Member:
    """A pool instance as one listing of the region shows it."""

    instance: str
    session: SessionName
    profile: str
    state: str  # its pool-state tag: filling-<kind>, ready-<kind>, claimed or retiring
    ec2_state: str
    spec: str
    launched: datetime | None

    @property
    def kind(self) -> str:
        return self.state.rpartition("-")[2]


class PoolTable:
    """The pool states in the stack's job table; claims find ready instances through its ``due`` index."""

    def __init__(self, dynamodb: Any, table: str):
        self._db, self._table = dynamodb, table

    @staticmethod
    def key(profile: str, instance: str) -> dict[str, Any]:
        return {"id": {"S": f"pool#{profile}#{instance}"}}

    @staticmethod
    def queue(profile: str, kind: str) -> str:
        """The index queue of a pool's ready instances of one kind, oldest ready first."""
        return f"pool#{profile}#{kind}"

    def filling(self, profile: str, kind: str, answer: dict[str, Any], spec: str, now: datetime) -> None:
        """A new instance, not ready yet; ``answer`` is its session's, for the job that claims it."""
        self._db.put_item(
            TableName=self._table,
            Item={
                **self.key(profile, answer["instances"][0]["id"]),
                "state": {"S": f"filling-{kind}"},
                "answer": {"S": json.dumps(answer)},
                "spec": {"S": spec},
                "made": {"N": str(int(now.timestamp()))},
                "expiration": self._expiration(answer["session"]),
            },
            ConditionExpression="attribute_not_exists(id)",
        )

    def ready(self, profile: str, instance: str, kind: str, now: datetime) -> bool:
        """``filling`` → ``ready``: claimable from now on (``False``: it was moved already, or never recorded)."""
        return self._move(
            profile,
            instance,
            f"filling-{kind}",
            "SET #state = :target, awaiting = :queue, due_at = :now",
            {
                ":target": {"S": f"ready-{kind}"},
                ":queue": {"S": self.queue(profile, kind)},
                ":now": {"N": str(int(now.timestamp()))},
            },
        )

    def retire(self, profile: str, member: Member) -> bool:
        """``filling`` or ``ready`` → ``retiring``: no claim can take it any more (``False``: a claim won).

        An instance already retiring (a release that failed), or one the
        table never heard of (its record failed after its fill: no claim can
        have found it), is retired too.
        """
        current = self.read(profile, member.instance)
        state = current.get("state", {}).get("S")
        if state == "retiring":
            return True
        target = {":target": {"S": "retiring"}}
        if state is None:
            expiration = {":expiration": self._expiration(str(member.session))}  # removed by the TTL in its time
            update = "SET #state = :target, expiration = :expiration"
            return self._move(profile, member.instance, None, update, target | expiration)
        return self._move(profile, member.instance, state, "SET #state = :target REMOVE awaiting, due_at", target)

    def claim(self, profile: str, kind: str, job: str, now: datetime) -> dict[str, Any] | None:
        """The oldest ready instance of the kind, now ``claimed`` by ``job`` (one conditional write), or ``None``."""
        for _ in range(3):  # a page of candidates lost to other claims: read the next one
            for item in self.ready_items(profile, kind):
                claimed = self._move(
                    profile,
                    item["id"]["S"].rpartition("#")[2],
                    f"ready-{kind}",
                    "SET #state = :target, job = :job, claimed_at = :now REMOVE awaiting, due_at",
                    {":target": {"S": "claimed"}, ":job": {"S": job}, ":now": {"N": str(int(now.timestamp()))}},
                    returned=True,
                )
                if claimed:
                    return claimed
        return None

    def ready_items(self, profile: str, kind: str, limit: int = 5) -> list[dict[str, Any]]:
        """The pool's ready instances of a kind, oldest ready first: what a claim takes first."""
        page = self._db.query(
            TableName=self._table,
            IndexName="due",
            KeyConditionExpression="awaiting = :queue",
            ExpressionAttributeValues={":queue": {"S": self.queue(profile, kind)}},
            Limit=limit,
        )
        items: list[dict[str, Any]] = page.get("Items", [])
        return items

    def read(self, profile: str, instance: str) -> dict[str, Any]:
        """An instance's item (empty when there is none), read consistently: a move decides on it."""
        item: dict[str, Any] = self._db.get_item(
            TableName=self._table, Key=self.key(profile, instance), ConsistentRead=True
        ).get("Item", {})
        return item

    def _move(
        self,
        profile: str,
        instance: str,
        source: str | None,
        update: str,
        values: dict[str, Any],
        *,
        returned: bool = False,
    ) -> Any:
        """One conditional write from ``source`` (``None``: no item yet); ``None``/``False`` when it had moved."""
        if source is None:
            condition = "attribute_not_exists(id)"
        else:
            condition, values = "#state = :source", {":source": {"S": source}, **values}
        try:
            answer = self._db.update_item(
                TableName=self._table,
                Key=self.key(profile, instance),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW" if returned else "NONE",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None if returned else False
            raise
        return answer["Attributes"] if returned else True

    @staticmethod
    def _expiration(session: str) -> dict[str, str]:
        return {"N": str(int((SessionName(session).expires + KEPT).timestamp()))}


def table_of(settings: LauncherSettings) -> PoolTable:
    """The stack's job table as the pools' (the same table: one to provision, one TTL, one index)."""
    return PoolTable(clients.client("dynamodb", settings.region), settings.idempotency_table)


def members(settings: LauncherSettings, now: datetime) -> list[Member]:
    """Every pool instance of the region's owned bases, with its state as its tags say: one paged listing."""
    ec2 = clients.client("ec2", settings.region)
    found: list[Member] = []
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[
            {"Name": "tag-key", "Values": [POOL_TAG]},
            {"Name": "instance-state-name", "Values": list(INSTANCES.LIVE_STATES)},
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
                        instance.get("LaunchTime"),
                    )
                )
    return found


def mark(settings: LauncherSettings, instance: str, session: SessionName, state: str) -> None:
    """The state tag follows the table (a failed tag is mended by the next upkeep, which sees the old one)."""
    clients.client("ec2", settings.region).create_tags(
        Resources=[instance],
        Tags=[{"Key": SESSION_TAG, "Value": str(session)}, {"Key": POOL_STATE_TAG, "Value": state}],
    )


def release(settings: LauncherSettings, session: SessionName) -> None:
    """A pool session goes as any session does (its slots freed); what will not go, the collector takes."""
    from sessions import slots_of

    try:
        release_session(clients.client, settings, session, slots_of(settings))
    except Exception as error:  # noqa: BLE001 - named and tagged: the next upkeep or the collector tries again
        logger.warning("pool session not released", extra={"session": str(session), "error": error_code(error)})


_SPECS: dict[tuple[Any, ...], tuple[float, str]] = {}


def forget_specs() -> None:
    """Forget the template versions read (tests: a new container, or the minutes after a roll-out)."""
    _SPECS.clear()


def current_spec(settings: LauncherSettings, profile: Profile) -> str:
    """A hash of what makes the profile's instance: its template and resolved version, image, types,
    subnets and the boot script. Read at most once every five minutes per profile: an idle upkeep lists."""
    from user_data import TEMPLATE

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


def count(name: str, **dimensions: str) -> None:
    """One pool metric with its own dimensions (Powertools adds ``service``), as the dashboard charts it."""
    with single_metric(name=name, unit=MetricUnit.Count, value=1) as metric:
        for key, value in dimensions.items():
            metric.add_dimension(name=key, value=value)
