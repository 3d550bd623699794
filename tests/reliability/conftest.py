"""Reliability suite: hypothesis profiles, a moto account, and the summary line.

``make test`` runs the fast profile, derandomized: the same examples on
every run of a commit, so one commit has one verdict. ``make soak`` sets
``EC2_SESSIONS_SOAK=1`` and a fresh ``--hypothesis-seed`` (printed, to
replay a failure): every hypothesis test explores, with ten times as many
examples. The profiles are applied per test (``examples(n)``) on top of the
run's own (``tests/conftest.py``).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, Phase, settings

from tests.reliability.tally import TALLY

SOAK = os.environ.get("EC2_SESSIONS_SOAK", "").strip().lower() not in ("", "0", "false", "no")
SCALE = 10 if SOAK else 1
PROFILE = "ec2-sessions-soak" if SOAK else "ec2-sessions-fast"

_COMMON = dict(
    deadline=None,
    database=None,  # no examples remembered between runs: a verdict depends on the commit alone
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
    print_blob=True,
)
# Shrinking a stateful failure against moto can take minutes: the fast profile reports the
# failing sequence as found; the soak profile shrinks it.
settings.register_profile(
    "ec2-sessions-fast",
    max_examples=25,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    derandomize=True,
    **_COMMON,
)
settings.register_profile("ec2-sessions-soak", max_examples=250, derandomize=False, **_COMMON)


def examples(n: int, **overrides) -> settings:
    """Settings for a test that runs ``n`` examples by default (``10 * n`` under soak)."""
    return settings(settings.get_profile(PROFILE), max_examples=n * SCALE, **overrides)


class Account:
    """The moto server's account with clients made once; ``reset()`` empties it."""

    def __init__(self, server, clients):
        self._server = server
        self.clients = clients

    def reset(self) -> None:
        self._server.reset()


@pytest.fixture(scope="module")
def account(moto_server):
    """The moto server, for a module, with clients that model AWS's group and terminate rules.

    Not in-process ``mock_aws``: there moto carries a request out before a
    ``before-send`` hook of ``model_aws_rules`` or ``Faults`` can refuse it
    (a group answered DependencyViolation is deleted all the same), so the
    rules and faults would be fiction. Over HTTP the hook answers first.
    """
    from session_naming import clients as shared

    from tests.support.clients import client_factory

    saved = os.environ.get("AWS_ENDPOINT_URL")
    os.environ["AWS_ENDPOINT_URL"] = moto_server.url
    shared.reset()
    try:
        yield Account(moto_server, client_factory(aws_rules=True))
    finally:
        shared.reset()
        if saved is None:
            os.environ.pop("AWS_ENDPOINT_URL", None)
        else:
            os.environ["AWS_ENDPOINT_URL"] = saved


@pytest.fixture
def fresh(account):
    """The module's account, emptied."""
    account.reset()
    return account


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if TALLY.examples or TALLY.checks or TALLY.faults:
        terminalreporter.write_line(TALLY.line())
