"""Create and release sessions: the launcher's domain, free of HTTP.

Functions take their clients (``clients(service, region)``), settings and
clock, and raise the domain errors of ``errors.py``. A create either answers
the whole session or deletes what it made and raises ``LaunchFailed``;
anything a crash leaves behind is already named and tagged, so the collector
removes it at expiry. Release uses the layer's deletion units, the very code
the collector runs, and the layer's one rule for what a session keeps.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import fleet
from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from errors import NO_PROFILE, DomainError, LaunchFailed, NoCapacity, OutOfTime, SessionKept, SessionNotFound
from fleet import Started
from session_naming import INSTANCE_TAG, PROFILE_TAG, SESSION_TAG, SessionName, session_tags, tag_specifications
from session_naming.profiles import Profile
from session_naming.resources import (
    INSTANCES,
    KEY_PAIRS,
    LAUNCH_TEMPLATES,
    ORDER,
    PARAMETERS,
    SECURITY_GROUPS,
    Clients,
    Found,
    InUse,
    error_code,
    instance_cost,
    session_resources,
)
from session_naming.settings import LauncherSettings
from slots import Slots

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import (
        CreateSecurityGroupRequestTypeDef,
        FilterTypeDef,
        IpPermissionTypeDef,
        IpRangeTypeDef,
        Ipv6RangeTypeDef,
    )

SSH = 22
PRIVATE_KEY = "private-key"
TimeLeft = Callable[[], float]  # seconds left in the invocation that makes the session
ROLLBACK_SECONDS = 5.0  # kept in hand for a rollback: deleting what was made takes a few calls
# What each step may take, at most as the launcher has seen it; a step starts only with that and a rollback left.
STEP_SECONDS = {"register": 4.0, "key pair and group": 3.0, "instance": 10.0, "secrets": 2.0}
logger = Logger()


@dataclass(frozen=True)
class Extras:
    """What a CI system or a pool adds to a session: tags on every resource (and on the instance alone),
    secrets, the instance's user data."""

    tags: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)  # suffix -> SecureString value
    user_data: str | None = None
    instance_tags: Mapping[str, str] = field(default_factory=dict)  # a pool instance's state


def create_session(
    clients: Clients,
    settings: LauncherSettings,
    base: str,
    lifetime: timedelta,
    now: datetime,
    *,
    slots: Slots | None,
    public_key: str | None = None,
    ingress_cidrs: tuple[str, ...] = (),
    profile: Profile | None = None,
    extras: Extras = Extras(),
    name: SessionName | None = None,
    breaker_open: Callable[[str], bool] = lambda profile: False,
    register: Callable[[], Extras] | None = None,
    time_left: TimeLeft | None = None,
    shutdown: str = "terminate",
) -> dict[str, Any]:
    """Make a session's resources, or none of them: its key pair and group, its instance, its secrets.

    ``profile`` says which instance to start (``None``: none). Requests
    always pass ``slots``; ``None`` (no cap) is for tools and tests that
    drive the domain directly. ``breaker_open(profile name)`` tells whether a
    profile's spot launches are to skip spot for now. ``register`` (a GitHub
    job's JIT runner) runs once the slots are held and answers the extras
    every resource after it carries; the caller undoes it if the create fails.
    ``time_left`` (the reconcile pass's) stops the create, rolled back,
    before a step that might not finish with a rollback in hand (``OutOfTime``).
    ``shutdown`` is the instance's power-off: ``terminate``, or ``stop`` for
    a stopped pool's instance.
    """
    made = Made(clients, settings.region, name or SessionName.make(base, lifetime, now), extras, profile)
    step = in_time(time_left)
    try:
        if register is not None:  # the caps first: a refused create registers nothing
            step("register")
            hold_slots(made, settings, slots, now)
            made.extras = register()
            slots = None
        step("key pair and group")
        key, group = make_key_pair_and_group(made, settings, slots, now, public_key, ingress_cidrs)
        instance = None
        if profile is not None:
            step("instance")
            instance = start_instance(made, settings, group["id"], breaker_open, shutdown)
        step("secrets")
        store_secrets(made, instance)
    except Exception as error:
        raise roll_back(made, made.slot_pool, error) from error
    return {
        "session": made.name,
        "expires_at": made.name.expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "key_pair": {"name": key["name"], "id": key["id"]},
        "security_group": group,
        "instances": [instance.answer()] if instance is not None else [],
        "private_key_parameter": key["parameter"],
    }


def in_time(time_left: TimeLeft | None) -> Callable[[str], None]:
    """A check before each step: ``OutOfTime`` when the step and a rollback may not fit in what is left."""

    def step(name: str) -> None:
        if time_left is not None and time_left() < STEP_SECONDS[name] + ROLLBACK_SECONDS:
            raise OutOfTime(f"{time_left():.0f} s left: not enough for the {name} step and a rollback")

    return step


@dataclass
class Made:
    """One create: what it is making, and every resource it has made so far (for the rollback)."""

    clients: Clients
    region: str
    name: SessionName
    extras: Extras
    profile: Profile | None
    found: list[Found] = field(default_factory=list)
    slots: list[str | None] = field(default_factory=list)  # pools held: None (the base's) or a profile's name
    slot_pool: Slots | None = None  # where they are held
    fleet_asked: bool = False  # a fleet call was made: if no answer came, an instance may exist all the same
    fleet_answered: bool = False

    @property
    def tags(self) -> dict[str, str]:
        """Every resource's tags beyond the session's own: the CI system's and the profile's."""
        profile = {PROFILE_TAG: self.profile.name} if self.profile is not None else {}
        return {**self.extras.tags, **profile}

    def secure(self, suffix: str, value: str, description: str, tags: Mapping[str, str], **tier: str) -> str:
        """A SecureString ``/<session>/<suffix>``, tagged at creation."""
        parameter = f"/{self.name}/{suffix}"
        self.clients("ssm", self.region).put_parameter(
            Name=parameter,
            Value=value,
            Type="SecureString",
            Description=description,
            Tags=session_tags(self.name, tags),
            **tier,  # type: ignore[arg-type]
        )
        self.found.append(Found(PARAMETERS.name, self.name, parameter))
        return parameter


@dataclass(frozen=True)
class Instance:
    started: Started
    profile: str

    def answer(self) -> dict[str, Any]:
        return {
            "id": self.started.id,
            "arn": self.started.arn,  # as ${ec2:SourceInstanceARN} spells it
            "instance_type": self.started.instance_type,
            "market": self.started.market,
            "profile": self.profile,
        }


def make_key_pair_and_group(
    made: Made,
    settings: LauncherSettings,
    slots: Slots | None,
    now: datetime,
    public_key: str | None,
    ingress_cidrs: tuple[str, ...],
) -> tuple[dict[str, Any], dict[str, str]]:
    """The key pair and the group, beside the live-session slots (a round trip less on every create: bench/).

    The instance, the costly part, starts only once the slots are held.
    """
    with ThreadPoolExecutor(max_workers=3) as pool:  # none waits for another
        hold = pool.submit(hold_slots, made, settings, slots, now)
        key = pool.submit(key_pair, made, public_key)
        group = pool.submit(security_group, made, settings.vpc_id, ingress_cidrs)
    for future in (hold, key, group):
        future.result()  # TooManySessions from a slot: rolled back by the caller, no instance started
    return key.result(), group.result()


def hold_slots(made: Made, settings: LauncherSettings, slots: Slots | None, now: datetime) -> None:
    """The base's slot and the profile's (when it has a cap), in one transaction: both or neither."""
    if slots is None:
        return
    pools: list[tuple[str | None, int]] = [(None, settings.max_live_sessions)]
    if made.profile is not None and made.profile.max_live is not None:
        pools.append((made.profile.name, made.profile.max_live))
    slots.hold(made.name, now, pools)
    made.slot_pool = slots
    made.slots.extend(profile for profile, _ in pools)


def key_pair(made: Made, public_key: str | None) -> dict[str, Any]:
    """Import the caller's public key, or create an ed25519 pair whose private key goes only to SSM."""
    ec2 = made.clients("ec2", made.region)
    spec = tag_specifications(made.name, ["key-pair"], made.tags)
    if public_key:
        answer = ec2.import_key_pair(KeyName=made.name, PublicKeyMaterial=public_key.encode(), TagSpecifications=spec)
        made.found.append(Found(KEY_PAIRS.name, made.name, made.name))
        return {"name": made.name, "id": answer["KeyPairId"], "parameter": None}
    created = ec2.create_key_pair(KeyName=made.name, KeyType="ed25519", TagSpecifications=spec)
    made.found.append(Found(KEY_PAIRS.name, made.name, made.name))
    ident, material = created["KeyPairId"], created["KeyMaterial"]
    del created  # the private key is held no longer than it takes to store it
    parameter = made.secure(PRIVATE_KEY, material, "private key of an ec2-sessions key pair", made.tags)
    return {"name": made.name, "id": ident, "parameter": parameter}


def security_group(made: Made, vpc_id: str | None, ingress_cidrs: tuple[str, ...]) -> dict[str, str]:
    ec2 = made.clients("ec2", made.region)
    request: CreateSecurityGroupRequestTypeDef = {
        "GroupName": made.name,
        "Description": "ec2-sessions session",
        "TagSpecifications": tag_specifications(made.name, ["security-group"], made.tags),
    }
    if vpc_id:
        request["VpcId"] = vpc_id
    group = ec2.create_security_group(**request)["GroupId"]
    made.found.append(Found(SECURITY_GROUPS.name, made.name, group))
    if ingress_cidrs:
        ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[ssh_from(ingress_cidrs)])
    return {"name": made.name, "id": group}


def start_instance(
    made: Made,
    settings: LauncherSettings,
    group_id: str,
    breaker_open: Callable[[str], bool],
    shutdown: str = "terminate",
) -> Instance:
    """The profile's instance through one EC2 Fleet call (two for spot-first on capacity), from the session's template.

    The session's own launch template goes once the fleet has answered,
    whatever it answered; if that delete fails, the collector sweeps it.
    """
    profile = made.profile
    assert profile is not None
    ec2 = made.clients("ec2", made.region)
    template = fleet.session_template(
        ec2, profile, made.name, group_id, made.tags, made.extras.user_data, shutdown, dict(made.extras.instance_tags)
    )
    try:
        subnets = fleet.subnets_of(ec2, profile, settings.vpc_id, template)
        breaker = profile.market == "spot-first" and breaker_open(profile.name)
        made.fleet_asked = True
        try:
            started = fleet.launch(ec2, template, profile, subnets, breaker)
        except (fleet.FleetRefused, NoCapacity):
            made.fleet_answered = True  # EC2 said no: nothing was started
            raise
    finally:
        try:
            ec2.delete_launch_template(LaunchTemplateId=template.id)
        except Exception as error:  # noqa: BLE001 - named and tagged: the collector removes it
            made.found.append(Found(LAUNCH_TEMPLATES.name, made.name, template.id))
            logger.warning("session launch template left to the collector", extra={"error": error_code(error)})
    made.found.append(Found(INSTANCES.name, made.name, started.id))
    report_launch(profile, started, breaker)
    return Instance(started, profile.name)


def report_launch(profile: Profile, started: Started, breaker: bool) -> None:
    """Count a spot-first launch that ended on demand: capacity (a second call) or an open breaker."""
    if profile.market != "spot-first" or started.market == "spot":
        return
    name = "SpotBreakerOpen" if breaker else "CapacityFallbacks"
    with single_metric(name=name, unit=MetricUnit.Count, value=1) as metric:
        metric.add_dimension(name="profile", value=profile.name)


def store_secrets(made: Made, instance: Instance | None) -> None:
    """After the instance: a runner configuration names the one instance allowed to read it."""
    tags = {**made.tags, **({INSTANCE_TAG: instance.started.arn} if instance is not None else {})}
    for suffix, value in made.extras.secrets.items():
        # GitHub's JIT configuration passes the Standard tier's 4 KB: SSM picks Advanced when it must.
        made.secure(suffix, value, "ec2-sessions runner configuration", tags, Tier="Intelligent-Tiering")


def roll_back(made: Made, slots: Slots | None, error: Exception) -> Exception:
    """Delete what a failed create made and free its slots; answer the error to raise.

    A fleet whose answer was lost (a timeout, a dropped connection) may have
    started an instance nobody was told of: any instance carrying the
    session's tag is terminated with the rest, and the slots stay held while
    one of them could not be (it runs, and costs, until the collector).
    """
    unanswered = made.fleet_asked and not made.fleet_answered and not any(f.kind == INSTANCES.name for f in made.found)
    if unanswered:
        made.found += started_unseen(made)
    report = delete_found(made.clients, made.region, made.found)
    left = [item["id"] for item in report["left_to_collector"] + report["failed"]]
    # An instance that would not terminate runs on; so may one no listing showed yet, if the group it uses
    # would not go: either way the slots stay held until the session expires.
    still_running = any(item["kind"] == INSTANCES.name for item in report["failed"]) or (
        unanswered and any(item["kind"] == SECURITY_GROUPS.name for item in report["left_to_collector"])
    )
    if slots is not None and not still_running:
        for profile in made.slots:
            slots.give_back(made.name, profile)
    if isinstance(error, DomainError | OutOfTime):
        return error
    code = error.code if isinstance(error, fleet.FleetRefused) else error_code(error)
    return LaunchFailed(code, left, made.name.base, made.profile.name if made.profile is not None else NO_PROFILE)


def started_unseen(made: Made, waits: Sequence[float] = (0.5, 1.0)) -> list[Found]:
    """The instances carrying the session's tag that a fleet whose answer was lost may have started.

    ``DescribeInstances`` is eventually consistent: an instance a moment old
    may not show yet, so an empty listing is asked again after a pause or two.
    """
    for pause in (0.0, *waits):
        time.sleep(pause)
        found = INSTANCES.listing(made.clients, made.region, [made.name])
        if found:
            return found
    return []


def ssh_from(cidrs: Sequence[str]) -> IpPermissionTypeDef:
    v4: list[IpRangeTypeDef] = [{"CidrIp": c, "Description": "ec2-sessions"} for c in cidrs if ":" not in c]
    v6: list[Ipv6RangeTypeDef] = [{"CidrIpv6": c, "Description": "ec2-sessions"} for c in cidrs if ":" in c]
    return {"IpProtocol": "tcp", "FromPort": SSH, "ToPort": SSH, "IpRanges": v4, "Ipv6Ranges": v6}


def delete_found(clients: Clients, region: str, found: list[Found]) -> dict[str, Any]:
    """Delete ``found`` in the collector's order with its deletion units; report by kind."""
    report: dict[str, Any] = {"deleted": {}, "left_to_collector": [], "failed": []}
    for kind in ORDER:
        client = kind.client(clients, region)
        for item in (f for f in found if f.kind == kind.name):
            try:
                kind.delete_quietly(client, item)
            except InUse:
                report["left_to_collector"].append({"kind": kind.name, "id": item.ident, "reason": "in-use"})
            except Exception as error:
                report["failed"].append({"kind": kind.name, "id": item.ident, "error": error_code(error)})
            else:
                report["deleted"].setdefault(kind.name, []).append(item.ident)
    return report


def release_session(
    clients: Clients,
    settings: LauncherSettings,
    name: SessionName,
    slots: Slots | None = None,
    delete_regions: Iterable[str] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Delete the session now; ``SessionKept`` (nothing deleted) if any resource, in any region, carries the keep tag.

    Every region of ``settings.regions`` is read before anything is deleted.
    Deleting happens in ``delete_regions`` (the launcher's own region, where
    it makes sessions and where its IAM lets it delete); what lies in
    another region is left to the collector, which sweeps every region.
    """
    deletable, kept = session_resources(clients, settings.regions, name, settings.session_bases)
    if any(k["reason"] == "keep-tag" for k in kept):
        raise SessionKept(f"session {name} is kept (tag ec2-sessions:keep=true): remove the tag to release it")
    if not deletable and not kept:
        raise SessionNotFound(f"session {name} has no resources in {', '.join(settings.regions)}")
    report: dict[str, Any] = {"deleted": {}, "left_to_collector": [], "failed": []}
    targets = set(delete_regions or (settings.region,))
    for region, found in deletable.items():
        if region not in targets:
            report["left_to_collector"] += [{"kind": f.kind, "id": f.ident, "reason": "other-region"} for f in found]
            continue
        done = delete_found(clients, region, found)
        for kind, idents in done["deleted"].items():
            report["deleted"].setdefault(kind, []).extend(idents)
        report["left_to_collector"] += done["left_to_collector"]
        report["failed"] += done["failed"]
    still_running = any(item["kind"] == "instance" for item in report["failed"] + kept)  # listed: not terminated
    if slots is not None and not still_running:  # an instance left running keeps its session's slots until expiry
        slots.give_back(name)
        for profile in {f.tags.get(PROFILE_TAG) for founds in deletable.values() for f in founds if f.tags}:
            if profile:
                slots.give_back(name, profile)
    ended = set(report["deleted"].get(INSTANCES.name, ()))
    count_instance_seconds([f for founds in deletable.values() for f in founds if f.ident in ended], now)
    report["kept"] = kept
    if any(item["reason"] == "in-use" for item in report["left_to_collector"]):
        report["note"] = "a group still used by a terminating instance is left to the collector's next run"
    return {"session": name, **report}


def count_instance_seconds(instances: Iterable[Found], now: datetime | None) -> None:
    """``InstanceSeconds`` by type and market for every instance a release ended: what CI costs."""
    moment = now or datetime.now(UTC)
    for found in instances:
        cost = instance_cost(found, moment)
        if cost is None:
            continue
        logger.info("instance ended", extra={"session": found.name, **cost})
        with single_metric(name="InstanceSeconds", unit=MetricUnit.Seconds, value=cost["seconds"]) as metric:
            metric.add_dimension(name="instance_type", value=cost["instance_type"])
            metric.add_dimension(name="market", value=cost["market"])


def sessions_tagged(
    clients: Clients, settings: LauncherSettings, key: str, value: str
) -> dict[SessionName, dict[str, str]]:
    """The owned sessions whose key pair or group carries ``key=value``, with those resources' tags.

    Every create makes the key pair and the group at once, so one of them is
    there for any session a crash left half-made.
    """
    ec2: EC2Client = clients("ec2", settings.region)
    wanted: list[FilterTypeDef] = [{"Name": f"tag:{key}", "Values": [value]}]
    tagged = [k.get("Tags") for k in ec2.describe_key_pairs(Filters=wanted)["KeyPairs"]]
    for page in ec2.get_paginator("describe_security_groups").paginate(Filters=wanted):
        tagged += [g.get("Tags") for g in page["SecurityGroups"]]
    found: dict[SessionName, dict[str, str]] = {}
    for tags in tagged:
        as_dict = {t["Key"]: t["Value"] for t in tags or ()}
        name = SessionName.parse(as_dict.get(SESSION_TAG))
        if name is not None and name.base in settings.session_bases:
            found.setdefault(name, {}).update(as_dict)
    return dict(sorted(found.items()))


def release_job(
    clients: Clients, settings: LauncherSettings, sessions: Iterable[SessionName], slots: Slots
) -> dict[str, list[str]]:
    """Release a CI job's sessions; a kept one stays, and one with a resource that would not go is ``failed``."""
    released: list[str] = []
    kept: list[str] = []
    failed: list[str] = []
    for name in sessions:
        try:
            report = release_session(clients, settings, name, slots)
        except SessionKept:
            kept.append(str(name))
        except SessionNotFound:  # released meanwhile by another delivery
            continue
        else:
            (failed if report["failed"] else released).append(str(name))
    answer = {"released": released, "kept": kept}
    if failed:  # the collector deletes what is left at expiry
        answer["failed"] = failed
    return answer
