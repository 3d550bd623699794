"""The collector deletes the GitHub registrations expired sessions leave, and no other, through its handler.

The fake GitHub (loopback) holds the registrations; the moto server holds the
sessions' resources, which name their registration in
``ec2-sessions:github-runner``. GitHub is reported as a region of its own,
``github``, with the kind ``github_runner``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from session_naming import GITHUB_RUNNER_TAG, KEEP_TAG, SessionName
from session_naming.github import runner_name

from tests.support.faults import Faults
from tests.support.handlers import LambdaContext, load_handler
from tests.support.seed import name_expiring, seed

REGION = "us-east-1"
BASE = "ec2-test-runner"
ROOT = "repos/Codertocat/Hello-World"


@pytest.fixture
def collector(aws, look, github_fake, monkeypatch):
    github_fake.install("Codertocat")
    for key, value in {
        "REGIONS": REGION,
        "SESSION_BASES": BASE,
        "GITHUB_APP_SECRET_ARN": github_fake.app_secret(look("secretsmanager", REGION)),
        "GITHUB_API_URL": github_fake.url,
        "GITHUB_REPOSITORIES": "codertocat/hello-world",
    }.items():
        monkeypatch.setenv(key, value)
    handler = load_handler("collector")
    handler.github = github_fake
    return handler


def registered(github, session: SessionName, status="offline", busy=False) -> str:
    """A registration named for ``session``; answers its API path."""
    runner = github.add_runner(ROOT, runner_name(session), status=status, busy=busy)
    return f"{ROOT}/actions/runners/{runner.id}"


def sweep(collector, event=None):
    summary = collector.lambda_handler(event or {}, LambdaContext())
    return summary, summary["regions"]["github"]["github_runner"]


def test_expired_sessions_registrations_go_and_live_kept_and_foreign_ones_stay(collector, look):
    now, github = datetime.now(UTC), collector.github
    expired = name_expiring(BASE, -timedelta(hours=1), now)
    live = name_expiring(BASE, timedelta(hours=1), now)
    kept = name_expiring(BASE, -timedelta(hours=1), now)
    for session, keep in ((expired, False), (live, False), (kept, True)):
        path = registered(github, session)
        seed(
            look, REGION, session, kinds=("key_pair", "security_group"), keep=keep, extra_tags={GITHUB_RUNNER_TAG: path}
        )
    orphan = name_expiring(BASE, -timedelta(hours=2), now)  # its resources are gone: traced by its name
    registered(github, orphan)
    online = name_expiring(BASE, -timedelta(hours=2), now)
    registered(github, online, status="online")
    busy = name_expiring(BASE, -timedelta(hours=2), now)
    registered(github, busy, status="online", busy=True)
    foreign = SessionName.make("someone-else", timedelta(hours=1), now - timedelta(days=1))
    github.add_runner(ROOT, runner_name(foreign))
    github.add_runner(ROOT, "a-runner-of-someone-elses")

    summary, report = sweep(collector)

    assert sorted(report["deleted"]) == sorted([expired, orphan])
    assert summary["totals"]["failed"] == 0, summary
    assert github.runner_names(ROOT) == {
        runner_name(live),
        runner_name(kept),
        runner_name(online),
        runner_name(busy),
        runner_name(foreign),
        "a-runner-of-someone-elses",
    }


def test_a_dry_run_lists_registrations_and_deletes_none(collector, look):
    expired = name_expiring(BASE, -timedelta(hours=1), datetime.now(UTC))
    path = registered(collector.github, expired)
    seed(look, REGION, expired, kinds=("key_pair",), extra_tags={GITHUB_RUNNER_TAG: path})

    _, report = sweep(collector, {"dry_run": True})

    assert report["deleted"] == [expired]
    assert collector.github.runner_names(ROOT) == {runner_name(expired)}


def test_a_region_that_cannot_be_listed_holds_back_every_registration(collector, look):
    """Without a whole listing the collector cannot prove a session is not kept: no registration goes."""
    expired = name_expiring(BASE, -timedelta(hours=1), datetime.now(UTC))
    path = registered(collector.github, expired)
    seed(look, REGION, expired, kinds=("key_pair",), extra_tags={GITHUB_RUNNER_TAG: path})
    from session_naming import clients

    Faults().inject(clients.client("ec2", REGION), "DescribeKeyPairs", "UnauthorizedOperation")

    _, report = sweep(collector)

    assert report["deleted"] == [] and report["failed"]
    assert collector.github.runner_names(ROOT) == {runner_name(expired)}


def test_a_keep_tag_in_any_case_on_any_resource_keeps_the_registration(collector, look):
    expired = name_expiring(BASE, -timedelta(hours=1), datetime.now(UTC))
    path = registered(collector.github, expired)
    ids = seed(look, REGION, expired, kinds=("key_pair", "security_group"), extra_tags={GITHUB_RUNNER_TAG: path})
    look("ec2", REGION).create_tags(Resources=[ids["security_group"]], Tags=[{"Key": KEEP_TAG, "Value": "TRUE"}])

    _, report = sweep(collector)

    assert report["deleted"] == []
    assert collector.github.runner_names(ROOT) == {runner_name(expired)}


def test_no_app_configured_means_no_github_calls(collector, look, monkeypatch):
    placeholder = look("secretsmanager", REGION).create_secret(
        Name="placeholder", SecretString='{"app_id": "", "private_key": ""}'
    )["ARN"]
    monkeypatch.setenv("GITHUB_APP_SECRET_ARN", placeholder)

    summary, report = sweep(collector)

    assert report == {"deleted": [], "kept": [], "failed": []}
    assert collector.github.calls == []
