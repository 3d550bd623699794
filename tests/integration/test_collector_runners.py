"""The collector's sweep of runner registrations, against the fake GitHub over HTTP.

Each test lays out registrations as GitHub would hold them, among them the
look-alikes the sweep must leave: online or busy runners, live or kept
sessions, runners of other tools and other bases, places outside the
allow-list; then checks both the outcomes reported and what GitHub still holds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from runners import sweep_registrations, targets
from session_naming import SessionName
from session_naming.github import runner_name
from session_naming.settings import GitHubSettings

from tests.support.seed import name_expiring

BASE = "ec2-test-runner"
LONG_BASE = "nightly-build-farm-sessions-for-the-arm64-images"  # longer than 30: cut in runner names
GRACE = timedelta(minutes=5)
HELLO = "repos/Codertocat/Hello-World"
TOOLS = "repos/Codertocat/Tools"
ORG = "orgs/Octocoders"


def settings_for(fake, *repositories: str, scope: str = "repo") -> GitHubSettings:
    return GitHubSettings(
        app_secret_arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:app",
        api_url=fake.url,
        runner_scope=scope,
        runner_group_id=1,
        repositories=tuple(r.lower() for r in repositories),
    )


class Scene:
    """The fake GitHub with the App installed on both owners, the moment of the sweep, and the sweep."""

    def __init__(self, fake):
        fake.install("Codertocat")
        fake.install("Octocoders")
        self.fake, self.app = fake, fake.app()
        self.now = datetime.fromtimestamp(fake.clock(), UTC)

    def sweep(self, settings, *, tagged=None, kept=(), live=(), dry_run=False, budget=None, bases=(BASE, LONG_BASE)):
        return sweep_registrations(
            self.app,
            settings,
            bases,
            self.now,
            GRACE,
            tagged=tagged or {},
            kept=set(kept),
            live=set(live),
            dry_run=dry_run,
            take_budget=budget or (lambda: True),
        )


@pytest.fixture
def scene(github_fake):
    return Scene(github_fake)


def expired(now, base=BASE, ago=timedelta(hours=1)) -> SessionName:
    return name_expiring(base, -ago, now)


def register(fake, root, session, **state):
    return fake.add_runner(root, runner_name(session), **state)


def outcome_map(outcomes) -> dict[str, tuple[str, str | None]]:
    return {name: (outcome, detail) for name, outcome, detail in outcomes}


def test_only_expired_offline_idle_registrations_of_owned_sessions_go(scene):
    gh, now = scene.fake, scene.now
    gone = {name: register(gh, HELLO, name) for name in (expired(now), expired(now, LONG_BASE))}
    online, busy = expired(now), expired(now)
    register(gh, HELLO, online, status="online")
    register(gh, HELLO, busy, busy=True)
    fresh = name_expiring(BASE, timedelta(hours=2), now)
    within_grace = expired(now, ago=timedelta(minutes=1))
    kept, live = expired(now), expired(now)
    for session in (fresh, within_grace, kept, live):
        register(gh, HELLO, session)
    gh.add_runner(HELLO, "GitHub Actions 5")
    gh.add_runner(HELLO, runner_name(expired(now, "other-base")))
    register(gh, TOOLS, expired(now))  # allowed, but not listed: the allow-list names Hello-World only

    before = gh.runner_names(HELLO)
    outcomes = scene.sweep(settings_for(gh, "Codertocat/Hello-World"), kept=[kept], live=[live])

    assert outcome_map(outcomes) == {
        **{name: ("deleted", f"{HELLO.lower()}/actions/runners/{runner.id}") for name, runner in gone.items()},
        online: ("kept", "online"),
        busy: ("kept", "busy"),
        fresh: ("kept", "not-expired"),
        within_grace: ("kept", "not-expired"),
        kept: ("kept", "keep-tag"),
        live: ("kept", "live"),
    }
    assert gh.runner_names(HELLO) == before - {runner_name(name) for name in gone}
    assert len(gh.runner_names(TOOLS)) == 1
    assert {call.status for call in gh.calls_to("delete-runner")} == {204}


def test_organisation_scope_lists_every_owner_of_the_allow_list(scene):
    gh, now = scene.fake, scene.now
    old, fresh = expired(now), name_expiring(BASE, timedelta(hours=1), now)
    old_runner = register(gh, ORG, old)
    register(gh, ORG, fresh)
    outcomes = scene.sweep(settings_for(gh, "Octocoders/*", "Octocoders/Hello-World", scope="org"))
    assert outcome_map(outcomes) == {
        fresh: ("kept", "not-expired"),
        old: ("deleted", f"{ORG.lower()}/actions/runners/{old_runner.id}"),  # as the allow-list writes it
    }
    assert gh.runner_names(ORG) == {runner_name(fresh)}
    assert len(gh.calls_to("list-runners")) == 1  # one owner, listed once


def test_tagged_registrations_of_expired_sessions_go_and_gone_ones_are_done(scene):
    gh, now = scene.fake, scene.now
    listed_place, asked_place, already_gone = expired(now), expired(now), expired(now)
    in_hello = register(gh, HELLO, listed_place)
    in_tools = register(gh, TOOLS, asked_place)
    tagged = {
        listed_place: in_hello_path(in_hello),
        asked_place: f"{TOOLS}/actions/runners/{in_tools.id}",
        already_gone: f"{HELLO}/actions/runners/999999",
    }
    outcomes = scene.sweep(settings_for(gh, "Codertocat/Hello-World", "Codertocat/*"), tagged=tagged)

    assert outcome_map(outcomes) == {name: ("deleted", path) for name, path in tagged.items()}
    assert gh.runner_names(HELLO) == gh.runner_names(TOOLS) == set()
    assert len(gh.calls_to("get-runner")) == 1  # Tools is not listed (a wildcard): asked for by path
    assert len(gh.calls_to("delete-runner")) == 2  # nothing to delete for the one already gone


def in_hello_path(runner) -> str:
    return f"{HELLO}/actions/runners/{runner.id}"


def test_a_tag_is_trusted_only_for_a_registration_of_its_own_session_in_the_allow_list(scene):
    gh, now = scene.fake, scene.now
    victim = gh.add_runner(HELLO, runner_name(name_expiring(BASE, timedelta(hours=3), now)))
    foreign = gh.add_runner("repos/Elsewhere/Project", runner_name(expired(now)))
    gh.install("Elsewhere")
    online = expired(now)
    busy_one = register(gh, TOOLS, online, status="online")
    kept_one, live_one = expired(now), expired(now)
    not_expired = name_expiring(BASE, timedelta(hours=1), now)
    pointing_elsewhere, outside, not_a_path = expired(now), expired(now), expired(now)
    tagged = {
        pointing_elsewhere: in_hello_path(victim),  # the tag names another session's runner
        outside: f"repos/Elsewhere/Project/actions/runners/{foreign.id}",
        not_a_path: HELLO,
        online: f"{TOOLS}/actions/runners/{busy_one.id}",
        kept_one: in_hello_path(victim),
        live_one: in_hello_path(victim),
        not_expired: in_hello_path(victim),
    }
    outcomes = scene.sweep(settings_for(gh, "Codertocat/*"), tagged=tagged, kept=[kept_one], live=[live_one])

    assert outcome_map(outcomes) == {
        pointing_elsewhere: ("kept", "name"),
        outside: ("kept", "path-refused"),
        not_a_path: ("kept", "path-refused"),
        online: ("kept", "online"),
        kept_one: ("kept", "keep-tag"),
        live_one: ("kept", "live"),
        not_expired: ("kept", "not-expired"),
    }
    assert gh.calls_to("delete-runner") == []
    assert gh.runner_names("repos/Elsewhere/Project") == {foreign.name}


def test_a_runner_name_shared_by_two_owned_bases_goes_only_if_both_sessions_may(scene):
    gh, now = scene.fake, scene.now
    one, two = "x" * 30 + "-one", "x" * 30 + "-two"
    session = expired(now, one)
    twin = SessionName(f"{two}/{session.split('/', 1)[1]}")
    register(gh, HELLO, session)
    settings = settings_for(gh, "Codertocat/Hello-World")

    assert outcome_map(scene.sweep(settings, bases=(one, two), live=[twin])) == {session: ("kept", "live")}
    assert outcome_map(scene.sweep(settings, bases=(one, two)))[session][0] == "deleted"


def test_a_dry_run_reports_the_same_and_deletes_nothing(scene):
    gh, now = scene.fake, scene.now
    for session in (expired(now), expired(now), name_expiring(BASE, timedelta(hours=1), now)):
        register(gh, HELLO, session)
    tagged_session = expired(now)
    tagged = {tagged_session: f"{TOOLS}/actions/runners/{register(gh, TOOLS, tagged_session).id}"}
    settings = settings_for(gh, "Codertocat/Hello-World", "Codertocat/Tools")
    before = gh.runner_names(HELLO), gh.runner_names(TOOLS)

    dry = scene.sweep(settings, tagged=tagged, dry_run=True)
    assert gh.calls_to("delete-runner") == []
    assert (gh.runner_names(HELLO), gh.runner_names(TOOLS)) == before
    real = scene.sweep(settings, tagged=tagged)
    assert sorted(dry) == sorted(real)
    assert [outcome for _, outcome, _ in sorted(real)].count("deleted") == 3


def test_deletions_stop_when_the_budget_is_spent(scene):
    gh, now = scene.fake, scene.now
    for _ in range(5):
        register(gh, HELLO, expired(now))
    budget = iter([True, True])
    outcomes = scene.sweep(settings_for(gh, "Codertocat/Hello-World"), budget=lambda: next(budget, False))
    assert [outcome for _, outcome, _ in outcomes] == ["deleted", "deleted"]
    assert len(gh.runner_names(HELLO)) == 3


def test_a_long_rate_limit_ends_the_run_after_one_refused_call(scene):
    gh, now = scene.fake, scene.now
    for _ in range(3):
        register(gh, HELLO, expired(now))
    gh.rate_limit(times=5, retry_after=900, route="delete-runner")
    outcomes = scene.sweep(settings_for(gh, "Codertocat/Hello-World"))
    assert [(outcome, detail) for _, outcome, detail in outcomes] == [("failed", "rate_limited")]
    assert len(gh.calls_to("delete-runner")) == 1
    assert len(gh.runner_names(HELLO)) == 3


def test_a_short_rate_limit_is_waited_out(scene):
    gh, now = scene.fake, scene.now
    register(gh, HELLO, expired(now))
    gh.rate_limit(retry_after=3, route="delete-runner")
    outcomes = scene.sweep(settings_for(gh, "Codertocat/Hello-World"))
    assert [outcome for _, outcome, _ in outcomes] == ["deleted"]
    assert 3.0 in gh.clock.sleeps


def test_one_place_failing_leaves_the_others_swept(scene):
    gh, now = scene.fake, scene.now
    register(gh, HELLO, expired(now))
    gh.add_runner("repos/Nobody/Nothing", runner_name(expired(now)))  # the App is not installed there
    outcomes = scene.sweep(settings_for(gh, "Nobody/Nothing", "Codertocat/Hello-World"))
    assert ("<listing repos/nobody/nothing>", "failed", "not_found") in outcomes
    assert [outcome for name, outcome, _ in outcomes if not name.startswith("<")] == ["deleted"]
    assert gh.runner_names(HELLO) == set()


def test_a_failed_delete_is_reported_and_the_others_go_on(scene):
    gh, now = scene.fake, scene.now
    for _ in range(2):
        register(gh, HELLO, expired(now))
    gh.fail(times=3, status=500, route="delete-runner")  # the first delete and both its retries
    outcomes = scene.sweep(settings_for(gh, "Codertocat/Hello-World"))
    assert sorted((outcome, detail if outcome == "failed" else "") for _, outcome, detail in outcomes) == [
        ("deleted", ""),
        ("failed", "server_error"),
    ]
    assert len(gh.runner_names(HELLO)) == 1


def test_an_empty_allow_list_lists_nothing_but_tagged_registrations_still_go(scene):
    gh, now = scene.fake, scene.now
    session = expired(now)
    runner = register(gh, HELLO, session)
    register(gh, HELLO, expired(now))
    outcomes = scene.sweep(settings_for(gh), tagged={session: in_hello_path(runner)})
    assert outcome_map(outcomes) == {session: ("deleted", in_hello_path(runner))}
    assert gh.calls_to("list-runners") == []


@pytest.mark.parametrize(
    "repositories, scope, expected",
    [
        (("codertocat/hello-world", "codertocat/*", "octo/x"), "repo", [("codertocat", "hello-world"), ("octo", "x")]),
        (("codertocat/hello-world", "codertocat/*", "octo/x"), "org", [("codertocat", None), ("octo", None)]),
        ((), "repo", []),
        ((), "org", []),
    ],
)
def test_the_places_listed_follow_the_allow_list(github_fake, repositories, scope, expected):
    settings = GitHubSettings(None, github_fake.url, scope, 1, repositories)
    assert targets(settings) == expected
