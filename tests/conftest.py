"""Fixtures shared by every suite.

Fake credentials and empty AWS config files are set before anything imports
boto3, so no test can reach a real account whatever the developer's shell
holds.
"""

from __future__ import annotations

import functools

from tools.offline import go_offline

go_offline(POWERTOOLS_SERVICE_NAME="ec2-sessions-test")

import os  # noqa: E402

import botocore.session  # noqa: E402
import pytest  # noqa: E402
from botocore.loaders import create_loader  # noqa: E402
from hypothesis import settings  # noqa: E402

# Property tests are derandomized in `make test`: the same examples on every run of a commit, one verdict.
# `make soak` explores with a fresh seed (EC2_SESSIONS_SOAK=1 and --hypothesis-seed, printed to replay).
settings.register_profile("ec2-sessions-test", derandomize=True, database=None, print_blob=True)
settings.register_profile("ec2-sessions-explore", derandomize=False, database=None, print_blob=True)
settings.load_profile(
    "ec2-sessions-explore"
    if os.environ.get("EC2_SESSIONS_SOAK", "").strip().lower() not in ("", "0", "false", "no")
    else "ec2-sessions-test"
)

# Every test starts new boto3 sessions (fresh clients, as a new container has),
# and each session would parse the services' JSON models again: about 0.2 s a
# test. The model files never change, so one loader serves every session.
botocore.session.create_loader = functools.cache(create_loader)

from tests.support.moto_server import MotoServer  # noqa: E402

# Every AWS call the functions make in the integration and reliability suites, judged by IAM against the role
# SAM deploys for them (tests/support/iam_recorder.py).
pytest_plugins = ["tests.support.iam_recorder"]


@pytest.fixture(scope="session")
def moto_server():
    """One moto server over HTTP on a free loopback port for the whole run, in a child process (tools/moto_server)."""
    with MotoServer(child=True) as server:
        yield server


@pytest.fixture
def aws(moto_server, monkeypatch):
    """An empty account on the moto server; the code under test talks to it over HTTP."""
    from session_naming import clients

    moto_server.reset()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)
    clients.reset()
    yield moto_server
    clients.reset()


@pytest.fixture
def launcher_stack(aws, monkeypatch):
    """The launcher's secret and idempotency table on the moto server, its environment set."""
    from tests.support.clients import client_factory
    from tests.support.function_url import SECRET
    from tools.local_stack import make_launcher_stack

    env = {"SESSION_BASES": "ec2-test-runner", **make_launcher_stack(client_factory(), SECRET)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def github_fake():
    """A fake GitHub REST API on a free loopback port, with its own App key and clock (tests/support/github_fake.py).

    The container's App and its tokens are forgotten first: a fake may get the port of an earlier one, and the
    App the code under test cached for that URL holds tokens this fake never issued.
    """
    from session_naming import github

    from tests.support.github_fake import GitHubFake

    github.reset()
    with GitHubFake() as fake:
        # The code under test's App waits on the fake's clock: GitHub's second between writes and its back-offs
        # pass at once (and are recorded in fake.clock.sleeps), its JWTs dated on the clock the fake checks them by.
        github.CONTAINER_OPTIONS = {"clock": fake.clock, "sleep": fake.clock.sleep}
        try:
            yield fake
        finally:
            github.CONTAINER_OPTIONS = {}
            github.reset()


@pytest.fixture
def look(aws):
    """Clients of an onlooker (not the code under test's own), to inspect the account."""
    from tests.support.clients import client_factory

    return client_factory()


@pytest.fixture
def launcher(launcher_stack, monkeypatch):
    """The launcher's handler as a function of a Function URL event, answering ``(status, JSON body)``.

    ``.env(name, value)`` sets a variable for the next requests (the handler
    reads its settings per request); ``.module`` is the handler module.
    """
    from tests.support.function_url import answer
    from tests.support.handlers import LambdaContext, load_handler

    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
    handler = load_handler("launcher")

    def invoke(event):
        return answer(handler.lambda_handler(event, LambdaContext()))

    invoke.env, invoke.module = monkeypatch.setenv, handler
    return invoke
