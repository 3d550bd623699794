"""A profile's warm pool: how many instances it keeps made ahead, stopped or hot, and when.

A cold launch spends 20-60 s in EC2 and the OS before a job's runner is
online. A pool keeps instances made ahead (``stopped``: booted once, warmed
and powered off, its volume kept; ``hot``: running, waiting for its job's
configuration) so a job claims one in seconds. This module is only the
configuration: the profile's ``pool`` field, checked like every other
field, and the counts it asks for at a given moment.

``{"stopped": N, "hot": M, "max_age_minutes": 720, "schedule": [{"days":
"mon-fri", "from": "07:00", "to": "19:00", "timezone": "Europe/Berlin",
"stopped": N2, "hot": M2}]}``: counts 0-50; a window's counts hold from
``from`` to ``to`` (``24:00`` is the day's end) on its days, in its time
zone; the first window that holds wins; outside every window the top-level
counts hold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

MAX_COUNT = 50
MAX_WINDOWS = 10
DEFAULT_MAX_AGE = timedelta(minutes=720)
MAX_AGE_RANGE = (30, 7 * 24 * 60)  # minutes: at least a fill's worth, at most a week
FIELDS = frozenset({"stopped", "hot", "max_age_minutes", "schedule"})
WINDOW_FIELDS = frozenset({"days", "from", "to", "timezone", "stopped", "hot"})
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])|24:00", re.ASCII)
_ZONE = re.compile(r"[A-Za-z][A-Za-z0-9_+-]{0,30}(/[A-Za-z0-9_+-]{1,30}){0,2}", re.ASCII)


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # 0 = Monday
    start: time
    end: time | None  # None: the day's end (24:00)
    timezone: str
    stopped: int
    hot: int

    def holds(self, now: datetime) -> bool:
        from zoneinfo import ZoneInfo  # imported with the first pool that has a schedule

        local = now.astimezone(ZoneInfo(self.timezone))
        moment = local.time().replace(tzinfo=None)
        return local.weekday() in self.days and self.start <= moment and (self.end is None or moment < self.end)


@dataclass(frozen=True)
class Pool:
    stopped: int
    hot: int
    max_age: timedelta = DEFAULT_MAX_AGE
    windows: tuple[Window, ...] = ()

    def counts(self, now: datetime) -> tuple[int, int]:
        """``(stopped, hot)`` the pool keeps at ``now``: the first window that holds, else the top-level counts."""
        for window in self.windows:
            if window.holds(now):
                return window.stopped, window.hot
        return self.stopped, self.hot

    def keeps(self, kind: str) -> bool:
        """Whether the pool ever keeps instances of ``kind`` (``stopped`` or ``hot``), in any window."""
        return any(getattr(counts, kind) > 0 for counts in (self, *self.windows))

    @property
    def most(self) -> int:
        """The most instances the pool ever keeps (what its slots must allow)."""
        return max([self.stopped + self.hot, *(w.stopped + w.hot for w in self.windows)])


def parse_pool(spec: object, where: str, max_live: int | None, problems: list[str]) -> Pool | None:
    """The profile's ``pool`` field, or ``None`` with every problem named (profile, field) in ``problems``."""
    if not isinstance(spec, dict):
        problems.append(f"{where}: pool: a JSON object with stopped, hot, max_age_minutes and schedule")
        return None
    before = len(problems)
    unknown = sorted(str(key) for key in spec if key not in FIELDS)
    if unknown:
        problems.append(f"{where}: pool: unknown field(s); accepted: {', '.join(sorted(FIELDS))}")
    stopped = _count(spec, "stopped", f"{where}: pool", problems)
    hot = _count(spec, "hot", f"{where}: pool", problems)
    minutes = spec.get("max_age_minutes", int(DEFAULT_MAX_AGE.total_seconds() // 60))
    low, high = MAX_AGE_RANGE
    if not _whole(minutes) or not low <= minutes <= high:
        problems.append(f"{where}: pool.max_age_minutes: a whole number from {low} to {high}")
    schedule = spec.get("schedule", [])
    windows: list[Window] = []
    if not isinstance(schedule, list) or len(schedule) > MAX_WINDOWS:
        problems.append(f"{where}: pool.schedule: a list of at most {MAX_WINDOWS} windows")
    else:
        for index, entry in enumerate(schedule):
            window = _window(entry, f"{where}: pool.schedule[{index}]", problems)
            if window is not None:
                windows.append(window)
    if len(problems) > before:
        return None
    pool = Pool(stopped, hot, timedelta(minutes=minutes), tuple(windows))
    if max_live is not None and pool.most > max_live:
        problems.append(f"{where}: pool: stopped + hot ({pool.most} at most) must not exceed max_live ({max_live})")
        return None
    return pool


def _window(entry: object, where: str, problems: list[str]) -> Window | None:
    if not isinstance(entry, dict):
        problems.append(f"{where}: a JSON object with days, from, to, timezone, stopped and hot")
        return None
    before = len(problems)
    if any(key not in WINDOW_FIELDS for key in entry):
        problems.append(f"{where}: unknown field(s); accepted: {', '.join(sorted(WINDOW_FIELDS))}")
    days = _days(entry.get("days"))
    if days is None:
        problems.append(f"{where}.days: days and ranges of mon tue wed thu fri sat sun, e.g. mon-fri or sat,sun")
    start, end = _clock(entry.get("from")), _clock(entry.get("to"))
    if start is None or start == "24:00":
        problems.append(f"{where}.from: HH:MM, 00:00 to 23:59")
    if end is None:
        problems.append(f"{where}.to: HH:MM, 00:01 to 24:00")
    elif start not in (None, "24:00") and end != "24:00" and end <= start:
        problems.append(f"{where}.to: later than from (a window ends the day it starts; 24:00 is midnight)")
    zone = entry.get("timezone", "UTC")
    if not isinstance(zone, str) or not _ZONE.fullmatch(zone) or not _known_zone(zone):
        problems.append(f"{where}.timezone: an IANA time zone name, e.g. Europe/Berlin")
    stopped, hot = _count(entry, "stopped", where, problems), _count(entry, "hot", where, problems)
    if len(problems) > before:
        return None
    assert days is not None and start is not None and end is not None
    until = None if end == "24:00" else time.fromisoformat(end)
    return Window(days, time.fromisoformat(start), until, zone, stopped, hot)


def _count(spec: dict[str, Any], field: str, where: str, problems: list[str]) -> int:
    value = spec.get(field, 0)
    if not _whole(value) or not 0 <= value <= MAX_COUNT:
        problems.append(f"{where}.{field}: a whole number from 0 to {MAX_COUNT}")
        return 0
    return int(value)


def _days(value: object) -> frozenset[int] | None:
    if not isinstance(value, str) or not 3 <= len(value) <= 40:
        return None
    days: set[int] = set()
    for part in value.lower().split(","):
        first, _, last = part.strip().partition("-")
        if first not in DAYS or (last and last not in DAYS):
            return None
        start, end = DAYS.index(first), DAYS.index(last or first)
        if end < start:
            return None
        days.update(range(start, end + 1))
    return frozenset(days)


def _clock(value: object) -> str | None:
    return value if isinstance(value, str) and _CLOCK.fullmatch(value) else None


def _known_zone(name: str) -> bool:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder of zones (America, Etc), not a zone
        return False
    return True


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
