"""A warm pool's upkeep, once a minute: mark the ready, retire what should go, fill what is missing.

Most minutes there is nothing to do, and that costs one listing of the
region: instances carry their state in a tag, so only a change reads the
job table or writes to it. One pool's failure (its template gone, a throttled
call) is that pool's: the others are tended all the same.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger
from launch import Extras, TimeLeft, create_session
from session_naming import POOL_STATE_TAG, POOL_TAG, SPEC_TAG, SessionName, clients
from session_naming.github import RUNNER_JITCONFIG_SUFFIX
from session_naming.profiles import Profile
from session_naming.resources import error_code
from session_naming.settings import LauncherSettings
from warm_pool import KINDS, Member, count, current_spec, mark, members, release, table_of

FILL_DEADLINE = timedelta(minutes=10)  # an instance not ready by then is released (PoolFillFailed)
FILLS_PER_UPKEEP = 5  # instances one upkeep starts for one pool: a pool fills over a few minutes, never in a burst
UPKEEP_RESERVE_SECONDS = 15.0  # a fill starts only while this much of the invocation is left
logger = Logger()


@dataclass
class Tended:
    """What one upkeep did to one pool (the answer, and the metrics)."""

    wanted: dict[str, int]
    ready: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    filled: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    retired: dict[str, int] = field(default_factory=dict)  # reason -> count
    failed: str | None = None  # the error code that stopped this pool's upkeep

    def summary(self) -> dict[str, Any]:
        shown = {"wanted": self.wanted, "ready": self.ready, "filled": self.filled, "retired": self.retired}
        return shown | ({"failed": self.failed} if self.failed else {})


def upkeep(settings: LauncherSettings, now: datetime, time_left: TimeLeft) -> dict[str, Any]:
    """Tend every pool: one listing of the region, then only what something needs (nothing, most minutes).

    The listing is made with no pool configured too: a pool removed from
    ``PROFILES`` still has instances to retire.
    """
    from sessions import profiles_of

    pooled = {name: profile for name, profile in profiles_of(settings).items() if profile.pool is not None}
    listed = members(settings, now)
    summary: dict[str, Any] = {}
    for name in sorted(set(pooled) | {m.profile for m in listed}):
        tended = Tended({})
        try:
            tend(settings, pooled.get(name), name, [m for m in listed if m.profile == name], now, time_left, tended)
        except Exception as error:  # noqa: BLE001 - that pool's failure: the next upkeep tries again
            tended.failed = error_code(error)
            logger.warning("pool upkeep failed", extra={"profile": name, "error": tended.failed})
        summary[name] = tended.summary()
    logger.info("pool upkeep finished", extra={"pools": summary})
    return {"pools": summary}


def tend(
    settings: LauncherSettings,
    profile: Profile | None,
    name: str,
    pool_members: list[Member],
    now: datetime,
    time_left: TimeLeft,
    tended: Tended,
) -> None:
    """One pool's upkeep: mark the ready, retire the failed, superseded, too old and too many, fill the rest."""
    wanted = dict(zip(("stopped", "hot"), profile.pool.counts(now), strict=True)) if profile and profile.pool else {}
    tended.wanted = {kind: wanted.get(kind, 0) for kind in KINDS}
    live = [m for m in pool_members if m.state.startswith(("filling-", "ready-"))]
    for member in [m for m in pool_members if m.state == "retiring"]:
        release(settings, member.session)  # a release that failed before: again
    spec = current_spec(settings, profile) if profile is not None and profile.pool is not None and live else None
    checked = checks_ok(settings, [m for m in live if m.state == "filling-hot" and m.ec2_state == "running"])
    keep: list[Member] = []
    for member in live:
        verdict = judge(member, profile, spec, now, checked)
        if verdict == "ready" and ready(settings, name, member, now, tended):
            keep.append(replace(member, state=f"ready-{member.kind}"))
        elif verdict == "ready":
            retire(settings, name, member, "fill_failed", tended)  # its record failed after its fill: unclaimable
        elif verdict is not None:
            retire(settings, name, member, verdict, tended)
        else:
            keep.append(member)
    for kind in KINDS:
        own = sorted((m for m in keep if m.kind == kind), key=lambda m: (m.state.startswith("ready"), m.launched))
        for member in own[: max(0, len(own) - tended.wanted[kind])]:  # the newest filling first, then the oldest ready
            retire(settings, name, member, "schedule", tended)
        missing = tended.wanted[kind] - len(own)
        if missing > 0 and profile is not None:
            release_the_gone(settings, name, kind, own, tended)  # a ready item whose instance died holds a slot
            for _ in range(min(missing, FILLS_PER_UPKEEP)):
                if time_left() < UPKEEP_RESERVE_SECONDS or not fill(settings, profile, kind, now, time_left):
                    break
                tended.filled[kind] += 1


def judge(member: Member, profile: Profile | None, spec: str | None, now: datetime, checked: set[str]) -> str | None:
    """What upkeep does with a filling or ready instance: ``ready``, a reason to retire it, or ``None`` (leave it)."""
    if profile is None or profile.pool is None:
        return "schedule"  # the pool is gone from PROFILES: nothing is wanted of it
    age = now - (member.launched or now)
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


def ready(settings: LauncherSettings, profile: str, member: Member, now: datetime, tended: Tended) -> bool:
    """``filling`` → ``ready``; ``False`` when the table has no record of the instance (nothing could claim it).

    The tag first: once the table says ready a claim may take the
    instance, and its ``claimed`` must be the last word on the tag.
    """
    mark(settings, member.instance, member.session, f"ready-{member.kind}")
    table = table_of(settings)
    if table.ready(profile, member.instance, member.kind, now):
        tended.ready[member.kind] += 1
        count("PoolReady", profile=profile, state=member.kind)
        return True
    return bool(table.read(profile, member.instance))  # marked ready by an upkeep alongside: it stays


def retire(settings: LauncherSettings, profile: str, member: Member, reason: str, tended: Tended) -> None:
    """First in the table (a claim that won keeps its instance), then the tag, then the session goes."""
    if not table_of(settings).retire(profile, member):
        return  # claimed meanwhile: it is a job's session now
    mark(settings, member.instance, member.session, "retiring")
    tended.retired[reason] = tended.retired.get(reason, 0) + 1
    if reason == "fill_failed":
        count("PoolFillFailed", profile=profile)
    else:
        count("PoolReplaced", profile=profile, reason=reason)
    logger.info("pool instance retired", extra={"session": str(member.session), "reason": reason})
    release(settings, member.session)


def release_the_gone(settings: LauncherSettings, profile: str, kind: str, listed: list[Member], tended: Tended) -> None:
    """Ready records whose instance no listing shows (terminated by hand, lost to a reboot): retired and released,
    so that their slots are free for the fill that follows and no claim takes a dead instance."""
    seen = {m.instance for m in listed}
    table = table_of(settings)
    for item in table.ready_items(profile, kind, limit=25):
        instance = item["id"]["S"].rpartition("#")[2]
        if instance in seen:
            continue
        session = SessionName(json.loads(item["answer"]["S"])["session"])
        gone = Member(
            instance, session, profile, f"ready-{kind}", "terminated", item.get("spec", {}).get("S", ""), None
        )
        retire(settings, profile, gone, "gone", tended)


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
    table_of(settings).filling(profile.name, kind, answer, spec, now)  # a failure here: released once found unready
    return True
