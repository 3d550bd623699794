"""Each warm pool's instances as an operator sees them, and what the stopped ones' volumes cost a month.

The instances are the upkeep's own listing (``warm_pool.members``: the
pool instances of the stack's bases, with their ``ec2-sessions:pool-state``
tag), each region of the command's; their state is the job table's
``pool#<profile>#<instance>`` record when the table is read (the tag
follows the table, and a tag the upkeep has not mended yet is shown beside
it); their spec is compared with the profile's current one when the
profiles are known (one template read per profile, as the upkeep reads it,
with this checkout's boot script). A stopped instance costs only its
volumes: their GiB at a price per GiB-month (EBS gp3 in us-east-1 is 0.08
USD; other regions and volume types differ, hence the setting).
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from session_naming.profiles import Profile
from session_naming.resources import Clients
from session_naming.settings import LauncherSettings

from ec2_sessions import UsageError
from ec2_sessions.release import launcher_environment
from ec2_sessions.summary import table

if TYPE_CHECKING:
    from mypy_boto3_ec2.type_defs import FilterTypeDef

DEFAULT_GIB_MONTH_PRICE = 0.08  # USD per GiB-month: EBS gp3 storage in us-east-1 (aws.amazon.com/ebs/pricing)
PRICE_VARIABLE = "EBS_GIB_MONTH_PRICE"
BATCH_KEYS = 100  # DynamoDB's BatchGetItem limit
FILTER_VALUES = 200  # EC2's limit of values in one filter


@dataclass(frozen=True)
class PoolInstance:
    """One pool instance: where it is, what the tag and the table say of it, its age, spec and volumes."""

    instance: str
    region: str
    pool: str
    session: str
    tag_state: str
    table_state: str | None  # None: the table was not read; "": it holds no record of the instance
    ec2_state: str
    spec: str
    current: bool | None  # the profile's current spec? None: the profiles are not known
    made: datetime
    gib: int  # its volumes, together

    @property
    def state(self) -> str:
        """The table's state when it has one (the tag follows it), else the tag's."""
        return self.table_state or self.tag_state

    @property
    def agree(self) -> bool:
        return self.table_state is None or self.table_state == self.tag_state

    def state_text(self) -> str:
        if self.table_state == "":
            return f"{self.tag_state} (tag; no table record)"
        return self.state if self.agree else f"{self.state} (tag: {self.tag_state})"

    def as_json(self, now: datetime) -> dict[str, Any]:
        return {
            "instance": self.instance,
            "region": self.region,
            "session": self.session,
            "state": self.state,
            "table_state": self.table_state,
            "tag_state": self.tag_state,
            "states_agree": self.agree,
            "ec2_state": self.ec2_state,
            "made_at": self.made.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "age_seconds": int((now - self.made).total_seconds()),
            "spec": self.spec,
            "spec_current": self.current,
            "volume_gib": self.gib,
        }


def gib_month_price(flag: float | None, env: Mapping[str, str]) -> float:
    """``--gib-month-price``, else ``EBS_GIB_MONTH_PRICE``, else 0.08: a finite price of zero or more."""
    if flag is not None:
        return flag
    text = env.get(PRICE_VARIABLE, "").strip()
    if not text:
        return DEFAULT_GIB_MONTH_PRICE
    try:
        return price(text)
    except ValueError:
        raise UsageError(
            f"{PRICE_VARIABLE} must be a price in USD per GiB-month, e.g. 0.08, not {text!r:.40}"
        ) from None


def price(text: str) -> float:
    """A price in USD: a finite number of zero or more (``ValueError`` otherwise; argparse's type)."""
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError(text)
    return value


def list_pools(
    client: Clients,
    settings: LauncherSettings,
    records: PoolRecords | None,
    profiles: Mapping[str, Profile] | None,
    only: str | None = None,
) -> list[PoolInstance]:
    """The pool instances of every region of ``settings`` (of pool ``only``, if given), by pool and age."""
    members, current_spec = _launcher()
    found: list[PoolInstance] = []
    for region in settings.regions:
        here = replace(settings, region=region)
        listed = [m for m in members(here, datetime.now(UTC)) if only is None or m.profile == only]
        if not listed:
            continue
        states = records.states([(m.profile, m.instance) for m in listed]) if records is not None else {}
        made = records.made if records is not None else {}
        specs: dict[str, str | None] = {}
        for name in {m.profile for m in listed}:
            profile = (profiles or {}).get(name)
            specs[name] = current_spec(here, profile) if profile is not None and profile.pool is not None else None
        volumes = volume_gib(client, region, [m.instance for m in listed])
        for m in listed:
            found.append(
                PoolInstance(
                    instance=m.instance,
                    region=region,
                    pool=m.profile,
                    session=str(m.session),
                    tag_state=m.state,
                    table_state=states.get(m.instance, "") if records is not None else None,
                    ec2_state=m.ec2_state,
                    spec=m.spec,
                    current=None if profiles is None else specs[m.profile] == m.spec,
                    made=made.get(m.instance) or m.launched,
                    gib=volumes.get(m.instance, 0),
                )
            )
    return sorted(found, key=lambda p: (p.pool, p.made, p.instance))


class PoolRecords:
    """The pool states in the stack's job table (``pool#<profile>#<instance>``), read in batches."""

    def __init__(self, dynamodb: Any, table_name: str):
        self._db, self._table = dynamodb, table_name
        self.made: dict[str, datetime] = {}  # instance -> when its pool made it, from the records read

    def states(self, instances: Sequence[tuple[str, str]]) -> dict[str, str]:
        """``{instance: state}`` of the records found; an instance without one is absent."""
        keys = [{"id": {"S": f"pool#{pool}#{instance}"}} for pool, instance in instances]
        found: dict[str, str] = {}
        for start in range(0, len(keys), BATCH_KEYS):
            asked: dict[str, Any] = {
                self._table: {
                    "Keys": keys[start : start + BATCH_KEYS],
                    "ConsistentRead": True,
                    "ProjectionExpression": "id, #state, made",
                    "ExpressionAttributeNames": {"#state": "state"},
                }
            }
            for _ in range(5):  # what DynamoDB leaves unprocessed, asked again (botocore retries throttling)
                answer = self._db.batch_get_item(RequestItems=asked)
                for item in answer.get("Responses", {}).get(self._table, []):
                    instance = item["id"]["S"].rpartition("#")[2]
                    found[instance] = item.get("state", {}).get("S", "")
                    if "made" in item:
                        self.made[instance] = datetime.fromtimestamp(int(item["made"]["N"]), UTC)
                asked = answer.get("UnprocessedKeys") or {}
                if not asked:
                    break
        return found


def volume_gib(client: Clients, region: str, instances: Sequence[str]) -> dict[str, int]:
    """``{instance: GiB of the volumes attached to it}``: one listing per 200 instances."""
    gib: Counter[str] = Counter()
    ec2 = client("ec2", region)
    for start in range(0, len(instances), FILTER_VALUES):
        chunk = list(instances[start : start + FILTER_VALUES])
        attached: FilterTypeDef = {"Name": "attachment.instance-id", "Values": chunk}
        for page in ec2.get_paginator("describe_volumes").paginate(Filters=[attached]):
            for volume in page["Volumes"]:
                for attachment in volume.get("Attachments", ()):
                    if attachment.get("InstanceId") in chunk:
                        gib[attachment["InstanceId"]] += volume.get("Size", 0)
    return dict(gib)


def pools_json(found: Iterable[PoolInstance], price_per_gib: float, table_read: bool, now: datetime) -> dict[str, Any]:
    pools: dict[str, dict[str, Any]] = {}
    for item in found:
        pool = pools.setdefault(item.pool, {"instances": [], "stopped_gib": 0, "stopped_monthly_usd": 0.0})
        pool["instances"].append(item.as_json(now))
        if item.ec2_state == "stopped":
            pool["stopped_gib"] += item.gib
    for pool in pools.values():
        pool["stopped_monthly_usd"] = round(pool["stopped_gib"] * price_per_gib, 2)
    return {"gib_month_price_usd": price_per_gib, "table_read": table_read, "pools": pools}


def pools_table(found: list[PoolInstance], price_per_gib: float, table_read: bool, now: datetime) -> str:
    rows = [("pool", "instance", "state", "age", "spec", "current", "ec2", "GiB", "region")]
    for item in found:
        current = {True: "yes", False: "no", None: "-"}[item.current]
        rows.append(
            (
                item.pool,
                item.instance,
                item.state_text(),
                _age(now - item.made),
                item.spec or "-",
                current,
                item.ec2_state,
                str(item.gib),
                item.region,
            )
        )
    lines = table(rows) if found else []
    by_pool: dict[str, list[PoolInstance]] = {}
    for item in found:
        by_pool.setdefault(item.pool, []).append(item)
    for name, items in by_pool.items():
        states = ", ".join(f"{state} {n}" for state, n in sorted(Counter(i.state for i in items).items()))
        stopped = [i for i in items if i.ec2_state == "stopped"]
        gib = sum(i.gib for i in stopped)
        lines.append(
            f"pool {name}: {states}; {len(stopped)} stopped, {gib} GiB of volumes: "
            f"{gib * price_per_gib:.2f} USD a month at {price_per_gib:g} USD per GiB-month"
        )
    source = "the job table (the tag shown where it differs)" if table_read else "the tags alone"
    source += "" if table_read else " (IDEMPOTENCY_TABLE unset)"
    plural = "s" * (len(found) != 1)
    lines.append(f"({len(found)} pool instance{plural}; states from {source})")
    return "\n".join(lines)


def pool_profiles(settings: LauncherSettings) -> Mapping[str, Profile]:
    """The stack's profiles as the launcher reads them (``PROFILES``: JSON, or its SSM parameter)."""
    from session_naming.settings import ConfigError

    with launcher_environment(), contextlib.redirect_stdout(sys.stderr):
        from sessions import profiles_of

        try:
            return profiles_of(settings)
        except ConfigError as error:
            raise UsageError(str(error)) from None


def _launcher() -> tuple[Any, Any]:
    """The upkeep's ``members`` and ``current_spec``, imported as the command runs the launcher's code
    (``release._launcher``: its logger at warning level, on standard error)."""
    with launcher_environment(), contextlib.redirect_stdout(sys.stderr):
        from warm_pool import current_spec, members
    return members, current_spec


def _age(span: Any) -> str:
    minutes = max(0, int(span.total_seconds() // 60))
    return f"{minutes // 1440}d{minutes // 60 % 24}h" if minutes >= 1440 else f"{minutes // 60}h{minutes % 60:02d}m"
