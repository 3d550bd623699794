"""A profile's warm pool: its ``pool`` field checked like every other, and the counts it asks for at a moment."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from session_naming.pools import Pool
from session_naming.profiles import ProfileError, parse_profiles

LABEL = "ec2-session"
WEEKDAYS = {"days": "mon-fri", "from": "07:00", "to": "19:00", "timezone": "Europe/Berlin", "stopped": 4, "hot": 2}
MONDAY_NOON_BERLIN = datetime(2026, 12, 7, 11, 0, tzinfo=UTC)  # 12:00 in Berlin (UTC+1 in December)


def pooled(pool, **fields):
    document = {"small": {"labels": [LABEL], "launch_template_id": "lt-0abc12345", **fields, "pool": pool}}
    return parse_profiles(json.dumps(document), LABEL, timedelta(days=1))["small"].pool


def refusal(pool, **fields) -> str:
    with pytest.raises(ProfileError) as refused:
        pooled(pool, **fields)
    return str(refused.value)


def test_a_pool_takes_its_counts_max_age_and_schedule_with_defaults():
    pool = pooled({"stopped": 2, "hot": 1, "schedule": [WEEKDAYS]})

    assert (pool.stopped, pool.hot, pool.max_age) == (2, 1, timedelta(minutes=720))
    assert len(pool.windows) == 1 and pool.windows[0].days == frozenset(range(5))
    assert pooled({"hot": 1}).stopped == 0


@pytest.mark.parametrize(
    ("moment", "counts"),
    [
        (MONDAY_NOON_BERLIN, (4, 2)),
        (MONDAY_NOON_BERLIN + timedelta(hours=6, minutes=59), (4, 2)),  # 18:59 in Berlin
        (MONDAY_NOON_BERLIN + timedelta(hours=7), (2, 1)),  # 19:00: the window has ended
        (MONDAY_NOON_BERLIN - timedelta(hours=5, minutes=1), (2, 1)),  # 06:59 in Berlin, 05:59 UTC
        (MONDAY_NOON_BERLIN + timedelta(days=5), (2, 1)),  # a Saturday
    ],
)
def test_the_first_window_that_holds_in_its_time_zone_sets_the_counts_else_the_top_level_ones(moment, counts):
    assert pooled({"stopped": 2, "hot": 1, "schedule": [WEEKDAYS]}).counts(moment) == counts


def test_a_window_to_midnight_holds_to_the_days_last_minute():
    night = {"days": "sun", "from": "20:00", "to": "24:00", "timezone": "UTC", "hot": 3}
    sunday_late = datetime(2026, 12, 13, 23, 59, tzinfo=UTC)

    assert pooled({"schedule": [night]}).counts(sunday_late) == (0, 3)
    assert pooled({"schedule": [night]}).counts(sunday_late + timedelta(minutes=1)) == (0, 0)


@pytest.mark.parametrize(
    ("pool", "named"),
    [
        ({"stopped": 51}, "pool.stopped: a whole number from 0 to 50"),
        ({"hot": -1}, "pool.hot"),
        ({"hot": True}, "pool.hot"),
        ({"max_age_minutes": 10}, "pool.max_age_minutes"),
        ({"warm": 1}, "pool: unknown field"),
        ({"schedule": {}}, "pool.schedule: a list"),
        ({"schedule": [{**WEEKDAYS, "days": "mon-someday"}]}, "pool.schedule[0].days"),
        ({"schedule": [{**WEEKDAYS, "days": "fri-mon"}]}, "pool.schedule[0].days"),
        ({"schedule": [{**WEEKDAYS, "from": "7:00"}]}, "pool.schedule[0].from"),
        ({"schedule": [{**WEEKDAYS, "to": "06:00"}]}, "pool.schedule[0].to: later than from"),
        ({"schedule": [{**WEEKDAYS, "timezone": "Mars/Olympus_Mons"}]}, "pool.schedule[0].timezone"),
        ({"schedule": [{**WEEKDAYS, "hot": 99}]}, "pool.schedule[0].hot"),
        ({"schedule": [{**WEEKDAYS, "lunch": True}]}, "pool.schedule[0]: unknown field"),
        ([], "pool: a JSON object"),
    ],
)
def test_a_bad_pool_is_a_configuration_error_naming_the_profile_and_the_field(pool, named):
    message = refusal(pool)

    assert "profile small" in message and named in message
    assert "Olympus" not in message  # the rule, not the value sent


def test_a_pool_never_exceeds_its_profiles_cap_in_any_window():
    assert "must not exceed max_live (5)" in refusal({"stopped": 3, "hot": 3}, max_live=5)
    assert "must not exceed max_live (5)" in refusal({"stopped": 1, "schedule": [WEEKDAYS]}, max_live=5)
    assert pooled({"stopped": 3, "hot": 2}, max_live=5) == Pool(3, 2)


def test_a_time_zone_that_names_a_folder_of_zones_is_a_configuration_error():
    message = refusal({"schedule": [{**WEEKDAYS, "timezone": "America"}]})

    assert "pool.schedule[0].timezone: an IANA time zone name" in message


def test_the_pools_together_leave_max_live_sessions_room_for_cold_launches():
    document = {
        name: {"labels": [LABEL, name], "launch_template_id": "lt-0abc12345", "pool": {"stopped": 20, "hot": 5}}
        for name in ("one", "two")
    }
    with pytest.raises(ProfileError, match=r"stopped \+ hot of every profile \(50 at most\) must stay under MAX_LIVE"):
        parse_profiles(json.dumps(document), LABEL, timedelta(days=1), max_live_sessions=50)
    assert len(parse_profiles(json.dumps(document), LABEL, timedelta(days=1), max_live_sessions=51)) == 2
