"""The GitHub App client against the fake GitHub, over HTTP on loopback, on the fake's clock."""

from __future__ import annotations

import socket
import traceback

import jwt
import pytest
import urllib3
from session_naming.github import (
    GitHubApp,
    GitHubError,
    RateLimited,
    Registration,
    load_app,
)

from tests.support.github_fake import Clock, other_private_key

OWNER, REPO, ORG = "Codertocat", "Hello-World", "Octocoders"
ROOT = f"repos/{OWNER}/{REPO}"
NAME = "ec2-test-runner-20261124T223400Z-3f9a1c2b7d4e5f60"
LABELS = ["self-hosted", "ec2-session"]


@pytest.fixture
def installed(github_fake):
    """The App installed on the repository's owner and on an organisation: (fake, app, repo token, org token)."""
    repo_installation = github_fake.install(OWNER)
    org_installation = github_fake.install(ORG)
    app = github_fake.app()
    return github_fake, app, app.installation_token(repo_installation), app.installation_token(org_installation)


def register(app, token, name=NAME, scope="repo", owner=OWNER, repo=REPO) -> Registration:
    return app.generate_jitconfig(token, scope, owner, repo, name, 1, LABELS)


# -- the App's JWT and its tokens ----------------------------------------------


def test_the_app_jwt_is_rs256_from_a_minute_back_and_lives_nine_minutes(github_fake):
    app = github_fake.app()
    token = app.app_jwt()
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    claims = jwt.decode(token, options={"verify_signature": False})
    now = int(github_fake.clock())
    assert claims == {"iat": now - 60, "exp": now - 60 + 540, "iss": str(github_fake.app_id)}


def test_an_installation_token_is_reused_until_five_minutes_before_it_expires(github_fake):
    installation = github_fake.install(OWNER)
    app = github_fake.app()
    first = app.installation_token(installation)
    github_fake.clock.advance(github_fake.token_lifetime - 301)
    assert app.installation_token(installation) == first
    assert len(github_fake.calls_to("create-installation-token")) == 1
    github_fake.clock.advance(2)  # now 299 s before expiry: inside the margin
    second = app.installation_token(installation)
    assert second != first
    assert len(github_fake.calls_to("create-installation-token")) == 2
    assert app.installation_token(installation) == second


def test_tokens_are_cached_per_installation(github_fake):
    one, two = github_fake.install(OWNER), github_fake.install(ORG)
    app = github_fake.app()
    assert app.installation_token(one) != app.installation_token(two)
    app.installation_token(one), app.installation_token(two)
    assert len(github_fake.calls_to("create-installation-token")) == 2


def test_a_jwt_signed_with_another_key_is_refused(github_fake):
    installation = github_fake.install(OWNER)
    app = github_fake.app(key=other_private_key())
    with pytest.raises(GitHubError) as refused:
        app.installation_token(installation)
    assert (refused.value.status, refused.value.code) == (401, "unauthorized")
    assert github_fake.calls_to("create-installation-token")[0].auth == "bad-jwt"


def test_a_jwt_naming_another_app_is_refused(github_fake):
    installation = github_fake.install(OWNER)
    with pytest.raises(GitHubError, match="401"):
        github_fake.app(app_id="999").installation_token(installation)


@pytest.mark.parametrize("behind", [601, 3600], ids=["expired", "an-hour-stale"])
def test_a_stale_jwt_is_refused(github_fake, behind):
    """The App's clock is behind GitHub's: its exp has passed when GitHub reads it."""
    installation = github_fake.install(OWNER)
    stale = Clock(github_fake.clock() - behind)
    with pytest.raises(GitHubError, match="401"):
        github_fake.app(clock=stale, sleep=stale.sleep).installation_token(installation)


def test_a_jwt_from_the_future_is_refused(github_fake):
    installation = github_fake.install(OWNER)
    ahead = Clock(github_fake.clock() + 300)
    with pytest.raises(GitHubError, match="401"):
        github_fake.app(clock=ahead, sleep=ahead.sleep).installation_token(installation)


def test_a_slightly_skewed_clock_is_accepted(github_fake):
    """iat is a minute back precisely so that a clock up to a minute ahead still works."""
    installation = github_fake.install(OWNER)
    ahead = Clock(github_fake.clock() + 90)
    assert github_fake.app(clock=ahead, sleep=ahead.sleep).installation_token(installation).startswith("ghs_")


def test_a_token_is_refused_once_it_has_expired(installed):
    fake, app, token, _ = installed
    fake.clock.advance(fake.token_lifetime)
    with pytest.raises(GitHubError) as refused:
        app.list_runners(token, "repo", OWNER, REPO)
    assert refused.value.status == 401


def test_the_fake_refuses_a_request_without_githubs_headers(installed):
    """So the client's own tests can fail when it forgets them."""
    fake, _, token, _ = installed
    pool = urllib3.PoolManager()
    url = f"{fake.url}/{ROOT}/actions/runners"
    bare = pool.request("GET", url, headers={"Authorization": f"Bearer {token}", "User-Agent": "t"})
    assert bare.status == 400
    full = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
    assert (
        pool.request("GET", url, headers={**full, "Authorization": f"Bearer {token}", "User-Agent": "t"}).status == 200
    )
    anonymous = {**full, "Authorization": f"Bearer {token}", "User-Agent": urllib3.util.SKIP_HEADER}
    assert pool.request("GET", url, headers=anonymous).status == 403


def test_the_installation_is_found_for_a_repository_and_an_organisation(github_fake):
    repo_installation, org_installation = github_fake.install(OWNER, [REPO]), github_fake.install(ORG)
    app = github_fake.app()
    assert app.installation_for(OWNER, REPO) == repo_installation
    assert app.installation_for(OWNER.lower(), REPO.upper()) == repo_installation  # GitHub ignores case
    assert app.installation_for(ORG) == org_installation
    with pytest.raises(GitHubError) as missing:
        app.installation_for(OWNER, "another-repo")
    assert missing.value.code == "not_found"
    assert {call.auth for call in github_fake.calls_to("get-installation")} == {"app"}


# -- registrations ---------------------------------------------------------------


def test_a_repository_runner_is_registered_with_the_documented_body(installed):
    fake, app, token, _ = installed
    registration = register(app, token)
    assert registration.name == NAME
    assert registration.path == f"{ROOT}/actions/runners/{registration.id}"
    assert registration.encoded_jit_config == fake.jit_configs[-1]
    (call,) = fake.calls_to("generate-jitconfig")
    assert call.body == {"name": NAME, "runner_group_id": 1, "labels": LABELS, "work_folder": "_work"}
    assert call.status == 201
    assert fake.runner_names(ROOT) == {NAME}


def test_an_organisation_runner_is_registered_under_the_organisation(installed):
    fake, app, _, org_token = installed
    registration = register(app, org_token, scope="org", owner=ORG, repo=None)
    assert registration.path == f"orgs/{ORG}/actions/runners/{registration.id}"
    assert fake.runner_names(f"orgs/{ORG}") == {NAME}


def test_a_taken_runner_name_is_a_conflict(installed):
    _, app, token, _ = installed
    register(app, token)
    with pytest.raises(GitHubError) as taken:
        register(app, token)
    assert (taken.value.status, taken.value.code) == (409, "conflict")


def test_an_unknown_runner_group_is_not_found(installed):
    _, app, token, _ = installed
    with pytest.raises(GitHubError, match="404"):
        app.generate_jitconfig(token, "repo", OWNER, REPO, NAME, 7, LABELS)


def test_a_token_of_another_installation_cannot_register_there(installed):
    _, app, _, org_token = installed
    with pytest.raises(GitHubError) as refused:
        register(app, org_token)  # the organisation's token, the other owner's repository
    assert refused.value.status == 404


@pytest.mark.parametrize(
    "name, labels",
    [("x" * 65, LABELS), ("", LABELS), (NAME, []), (NAME, [""])],
    ids=["name-too-long", "empty-name", "no-labels", "empty-label"],
)
def test_a_bad_registration_is_refused_before_any_request(installed, name, labels):
    fake, app, token, _ = installed
    with pytest.raises(ValueError):
        app.generate_jitconfig(token, "repo", OWNER, REPO, name, 1, labels)
    assert fake.calls_to("generate-jitconfig") == []


def test_a_runner_is_read_and_deleted_and_a_missing_one_is_done(installed):
    fake, app, token, _ = installed
    registration = register(app, token)
    runner = app.get_runner(token, registration.path)
    assert (runner.id, runner.name, runner.status, runner.busy) == (registration.id, NAME, "offline", False)
    assert app.delete_runner(token, registration.path) is True
    assert app.delete_runner(token, registration.path) is False  # 404: already gone, done
    assert app.get_runner(token, registration.path) is None
    assert [call.status for call in fake.calls_to("delete-runner")] == [204, 404]


def test_a_busy_runner_is_not_deleted(installed):
    fake, app, token, _ = installed
    runner = fake.add_runner(ROOT, NAME, status="online", busy=True)
    with pytest.raises(GitHubError) as refused:
        app.delete_runner(token, f"{ROOT}/actions/runners/{runner.id}")
    assert refused.value.code == "unprocessable"
    assert fake.runner_names(ROOT) == {NAME}


@pytest.mark.parametrize(
    "path",
    [
        ROOT,
        f"{ROOT}/actions/runners",
        f"{ROOT}/actions/runners/0",
        f"repos/{OWNER}/../actions/runners/1",
        f"{ROOT}/actions/runners/1/../../../../hooks/1",
        f"/{ROOT}/actions/runners/1",
        f"https://evil.example/{ROOT}/actions/runners/1",
    ],
)
def test_only_a_registration_path_is_ever_deleted(installed, path):
    fake, app, token, _ = installed
    with pytest.raises(ValueError):
        app.delete_runner(token, path)
    assert fake.calls_to("delete-runner") == [] and fake.counts["unknown"] == 0


# -- listing ---------------------------------------------------------------------


def test_listing_follows_every_page(installed):
    fake, app, token, _ = installed
    made = {fake.add_runner(ROOT, f"runner-{index}").id for index in range(250)}
    runners = app.list_runners(token, "repo", OWNER, REPO)
    assert {runner.id for runner in runners} == made
    assert all(runner.path == f"{ROOT}/actions/runners/{runner.id}" for runner in runners)
    calls = fake.calls_to("list-runners")
    assert [call.query.get("page") for call in calls] == ["1", "2", "3"]
    assert {call.query.get("per_page") for call in calls} == {"100"}
    assert calls[1].path.startswith("repositories/")  # GitHub's next links use the repository id


def test_listing_pages_by_number_when_github_sends_no_link(installed):
    fake, app, _, org_token = installed
    fake.send_link = False
    made = {fake.add_runner(f"orgs/{ORG}", f"runner-{index}").id for index in range(201)}
    assert {runner.id for runner in app.list_runners(org_token, "org", ORG)} == made
    assert len(fake.calls_to("list-runners")) == 3


def test_an_empty_listing_is_one_call(installed):
    fake, app, token, _ = installed
    assert app.list_runners(token, "repo", OWNER, REPO) == []
    assert len(fake.calls_to("list-runners")) == 1


def test_a_next_link_off_the_api_root_is_not_followed(installed):
    """The token must never go to another host."""
    fake, app, token, _ = installed
    for index in range(101):
        fake.add_runner(ROOT, f"runner-{index}")
    fake.link_root = "http://127.0.0.1:9/api/v3"
    with pytest.raises(GitHubError) as refused:
        app.list_runners(token, "repo", OWNER, REPO)
    assert refused.value.code == "bad_link"
    assert len(fake.calls_to("list-runners")) == 1


# -- rate limits and failures ---------------------------------------------------


def test_a_secondary_limit_is_waited_out_for_its_retry_after(installed):
    fake, app, token, _ = installed
    fake.rate_limit(retry_after=7, status=429, route="list-runners")
    assert app.list_runners(token, "repo", OWNER, REPO) == []
    assert fake.clock.sleeps == [7.0]
    assert [call.status for call in fake.calls_to("list-runners")] == [429, 200]


def test_a_primary_limit_is_waited_out_until_its_reset(installed):
    fake, app, token, _ = installed
    fake.rate_limit(reset_in=8, status=403, route="list-runners")
    app.list_runners(token, "repo", OWNER, REPO)
    assert fake.clock.sleeps == [9.0]  # until the reset, and a second for the clocks' rounding


def test_a_spent_quota_waits_for_the_reset_before_asking_again(installed):
    """The answer that spends the last request says so; the next call waits instead of meeting a 403."""
    fake, app, token, _ = installed
    fake.set_quota(remaining=1, reset_in=6)
    app.list_runners(token, "repo", OWNER, REPO)
    app.list_runners(token, "repo", OWNER, REPO)
    assert [call.status for call in fake.calls_to("list-runners")] == [200, 200]
    assert fake.clock.sleeps == [7.0]


def test_a_wait_longer_than_the_budget_gives_up_at_once(installed):
    fake, app, token, _ = installed
    fake.rate_limit(retry_after=30, route="list-runners")
    with pytest.raises(RateLimited) as limited:
        app.list_runners(token, "repo", OWNER, REPO)
    assert (limited.value.wait, limited.value.code) == (30.0, "rate_limited")
    assert fake.clock.sleeps == []
    assert len(fake.calls_to("list-runners")) == 1


def test_a_limit_without_headers_waits_a_minute_when_the_budget_allows(installed):
    fake, _, token, _ = installed
    fake.rate_limit(times=2, status=429, route="list-runners")
    with pytest.raises(RateLimited):
        fake.app(max_wait=10).list_runners(token, "repo", OWNER, REPO)
    patient = fake.app(max_wait=120)
    assert patient.list_runners(token, "repo", OWNER, REPO) == []
    assert fake.clock.sleeps == [60.0]


def test_a_limit_that_keeps_coming_back_is_not_waited_out_forever(installed):
    fake, _, token, _ = installed
    fake.rate_limit(times=10, retry_after=1, route="list-runners")
    with pytest.raises(RateLimited):
        fake.app(max_wait=100).list_runners(token, "repo", OWNER, REPO)
    assert len(fake.calls_to("list-runners")) == 4


def test_server_errors_are_retried_a_couple_of_times(installed):
    fake, app, token, _ = installed
    fake.fail(times=2, status=502, route="generate-jitconfig")
    assert register(app, token).name == NAME
    assert [call.status for call in fake.calls_to("generate-jitconfig")] == [502, 502, 201]
    assert fake.clock.sleeps[-2:] == [1.0, 2.0]


def test_server_errors_past_the_retries_fail(installed):
    fake, app, token, _ = installed
    fake.fail(times=3, status=503, route="list-runners")
    with pytest.raises(GitHubError) as failed:
        app.list_runners(token, "repo", OWNER, REPO)
    assert (failed.value.status, failed.value.code) == (503, "server_error")


def test_writes_are_spaced_a_second_apart(installed):
    fake, app, token, _ = installed
    first = register(app, token)
    second = register(app, token, name=NAME.replace("3f9a", "4f9a"))
    app.delete_runner(token, first.path)
    app.delete_runner(token, second.path)
    assert fake.clock.sleeps == [1.0, 1.0, 1.0]


def test_an_unreachable_github_is_an_error_with_status_zero():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    clock = Clock()
    app = GitHubApp(f"http://127.0.0.1:{port}/api/v3", "1", "unused", clock=clock, sleep=clock.sleep)
    with pytest.raises(GitHubError) as failed:
        app.delete_runner("ghs_x", f"{ROOT}/actions/runners/1")
    assert (failed.value.status, failed.value.code) == (0, "unreachable")
    assert clock.sleeps == [1.0, 2.0]


# -- secrets ----------------------------------------------------------------------


def test_no_secret_shows_in_reprs_or_error_messages(installed):
    fake, app, token, _ = installed
    registration = register(app, token)
    secrets = [token, registration.encoded_jit_config, fake.private_key_pem, *fake.tokens]
    errors = []
    for attempt in (
        lambda: register(app, token),  # 409
        lambda: app.generate_jitconfig(token, "repo", OWNER, REPO, NAME.replace("3f", "5f"), 7, LABELS),  # 404
        lambda: app.list_runners("ghs_not-a-token", "repo", OWNER, REPO),  # 401
    ):
        with pytest.raises(GitHubError) as failed:
            attempt()
        errors.append(failed.value)
    fake.rate_limit(retry_after=600)
    with pytest.raises(RateLimited) as limited:
        app.get_runner(token, registration.path)
    errors.append(limited.value)
    shown = [repr(app), str(app), repr(registration), str(registration)]
    shown += ["".join(traceback.format_exception(error)) for error in errors]
    for text in shown:
        for secret in secrets:
            assert secret not in text
    assert "PRIVATE KEY" not in repr(app)


def test_an_app_is_not_pickled_and_its_errors_are(github_fake):
    import pickle

    with pytest.raises(TypeError):
        pickle.dumps(github_fake.app())
    for error in (GitHubError(404, "not_found", "get-runner"), RateLimited(429, 30.0, "list-runners")):
        copy = pickle.loads(pickle.dumps(error))  # noqa: S301 (our own bytes)
        assert (type(copy), str(copy), copy.code) == (type(error), str(error), error.code)


def test_an_app_loaded_from_its_secret_talks_to_github(github_fake):
    import json

    installation = github_fake.install(OWNER)
    secret = json.dumps({"app_id": str(github_fake.app_id), "private_key": github_fake.private_key_pem})
    app = load_app(secret, github_fake.url, clock=github_fake.clock, sleep=github_fake.clock.sleep)
    assert app.installation_token(installation).startswith("ghs_")
