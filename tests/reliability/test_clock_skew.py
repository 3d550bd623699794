"""Clock skew between the launcher and the collector (DESIGN.md: ``GRACE_SECONDS`` tolerates it).

Sessions are made by the launcher's own domain code with the launcher's
clock; the collector sweeps with a clock ahead of it by less than the grace.
While a session is live by the launcher's clock, the collector deletes
nothing of it; at ``expires + grace`` (by the collector's clock) it deletes
all of it.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from session_naming.settings import load_collector, load_launcher
from sweep import sweep

from tests.reliability.conftest import examples
from tests.reliability.tally import TALLY
from tests.support.clients import client_factory
from tests.support.function_url import SECRET
from tests.support.seed import inventory, utc
from tests.support.stack import REGION, make_launcher_stack

BASE = "ec2-test-runner"
GRACE_SECONDS = 300
KINDS = ("parameter", "key_pair", "security_group")
LAUNCHER_T0 = utc("2026-11-24T22:00:00")


@pytest.fixture(scope="module")
def launch(account):
    """``launch(lifetime, now)``: the launcher's create_session, with the launcher's clock."""
    import os

    from tests.support.handlers import load_handler

    account.reset()
    env = {"SESSION_BASES": BASE, "MAX_LIVE_SESSIONS": "50", **make_launcher_stack(client_factory(), SECRET)}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    load_handler("launcher")  # puts the launcher's folder on the path, as Lambda does
    from launch import create_session

    settings = load_launcher()
    clients = client_factory()
    try:
        yield lambda lifetime, now: create_session(clients, settings, BASE, lifetime, now, slots=None)["session"]
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def collect(now):
    settings = load_collector({"SESSION_BASES": BASE, "REGIONS": REGION, "GRACE_SECONDS": str(GRACE_SECONDS)})
    return sweep(client_factory(aws_rules=True), settings, now, lambda: 900.0, False)


@examples(2)
@given(
    lifetimes=st.lists(st.integers(min_value=1, max_value=24 * 60), min_size=1, max_size=2),
    skew=st.integers(min_value=0, max_value=GRACE_SECONDS - 1),
    launched_after=st.integers(min_value=0, max_value=3 * 24 * 3600),
    at=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_collector_clock_ahead_by_less_than_the_grace_deletes_nothing_live_and_at_expiry_plus_grace_deletes_it(
    account, launch, lifetimes, skew, launched_after, at
):
    TALLY.add(examples=1)
    launched = LAUNCHER_T0 + timedelta(seconds=launched_after)
    sessions = [launch(timedelta(minutes=minutes), launched) for minutes in lifetimes]
    look = client_factory()
    # A launcher-clock instant at which every session is still live: before the first expiry.
    shortest = min(lifetimes) * 60
    launcher_now = launched + timedelta(seconds=int(at * shortest))
    collector_now = launcher_now + timedelta(seconds=skew)

    early = collect(collector_now)

    have = inventory(look, REGION)
    missing = [(kind, name) for name in sessions for kind in KINDS if name not in have[kind]]
    TALLY.add(wrongful_deletions=len(missing), checks=1)
    assert missing == [], {"collector clock": collector_now, "deleted": early["regions"][REGION]}
    assert early["totals"]["deleted"] == 0

    last_expiry = max(launched + timedelta(minutes=m) for m in lifetimes)
    final = collect(last_expiry + timedelta(seconds=GRACE_SECONDS))  # exactly expires + grace: due

    have = inventory(look, REGION)
    leaked = [(kind, name) for name in sessions for kind in KINDS if name in have[kind]]
    TALLY.add(leaked=len(leaked), checks=1)
    assert leaked == [], final
    assert final["totals"]["deleted"] == len(sessions) * len(KINDS)


@pytest.mark.parametrize("skew", [GRACE_SECONDS - 1])
def test_collector_one_second_before_expiry_plus_grace_keeps_the_session_and_at_it_deletes_it(account, launch, skew):
    TALLY.add(examples=1)
    session = launch(timedelta(minutes=5), LAUNCHER_T0)
    expires = LAUNCHER_T0 + timedelta(minutes=5)
    look = client_factory()

    kept_run = collect(expires - timedelta(seconds=1) + timedelta(seconds=skew))
    survived = all(session in names for kind, names in inventory(look, REGION).items() if kind in KINDS)
    TALLY.add(wrongful_deletions=0 if survived else 1, checks=1)
    assert survived and kept_run["totals"]["deleted"] == 0

    collect(expires + timedelta(seconds=GRACE_SECONDS))
    left = sum(session in names for names in inventory(look, REGION).values())
    TALLY.add(leaked=left, checks=1)
    assert left == 0
