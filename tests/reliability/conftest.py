"""Reliability suite: hypothesis profiles, an in-process moto account, and the summary line.

``make test`` runs the fast profile; ``make soak`` sets ``EC2_SESSIONS_SOAK=1``
and every hypothesis test runs ten times as many examples. The profiles are
registered here but applied per test (``examples(n)``), never loaded
globally, so other suites' hypothesis settings are left alone.
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
    database=None,  # every run explores afresh; a failure prints its reproducing example
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
    print_blob=True,
)
# Shrinking a stateful failure against moto can take minutes: the fast profile reports the
# failing sequence as found; the soak profile shrinks it.
settings.register_profile(
    "ec2-sessions-fast", max_examples=25, phases=[Phase.explicit, Phase.reuse, Phase.generate], **_COMMON
)
settings.register_profile("ec2-sessions-soak", max_examples=250, **_COMMON)


def examples(n: int, **overrides) -> settings:
    """Settings for a test that runs ``n`` examples by default (``10 * n`` under soak)."""
    return settings(settings.get_profile(PROFILE), max_examples=n * SCALE, **overrides)


class Account:
    """One in-process moto account (``mock_aws``) with clients made once; ``reset()`` empties it."""

    def __init__(self, mock, clients):
        self._mock = mock
        self.clients = clients

    def reset(self) -> None:
        self._mock.reset()


@pytest.fixture(scope="module")
def account():
    """An in-process moto account for a module, clients with AWS's group/terminate rules modelled.

    In-process moto is far faster per call than the server; the suites that
    must go over HTTP (concurrency) use the ``aws`` fixture instead.
    """
    from moto import mock_aws

    from session_naming import clients as shared
    from tests.reliability.first import client_factory_first

    saved = os.environ.pop("AWS_ENDPOINT_URL", None)
    mock = mock_aws()
    mock.start()
    shared.reset()
    try:
        yield Account(mock, client_factory_first())
    finally:
        shared.reset()
        mock.stop()
        if saved is not None:
            os.environ["AWS_ENDPOINT_URL"] = saved


@pytest.fixture
def fresh(account):
    """The module's account, emptied."""
    account.reset()
    return account


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if TALLY.examples or TALLY.checks or TALLY.faults:
        terminalreporter.write_line(TALLY.line())
