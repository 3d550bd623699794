"""The reconcile pass's GitHub calls against the fake GitHub, over HTTP on loopback, on the fake's clock.

Lost webhook deliveries are listed and redelivered with the App's JWT; a job
left without a session gets a failed check run on its commit; an interrupted
job's workflow run is read and its failed jobs re-run, with an installation
token. The fake follows GitHub's OpenAPI description of each operation
(``tests/events/github/api/``), so the first tests here prove the fake
itself refuses what GitHub refuses and answers what GitHub answers.
"""

from __future__ import annotations

import json
import traceback

import pytest
import urllib3
from openapi_schema_validator import OAS30Validator
from session_naming.github import (
    CHECK_RUN_NAME,
    GitHubError,
    HookDelivery,
    RateLimited,
    WorkflowRun,
)

from tests.support.github_fake import openapi

OWNER, REPO = "Codertocat", "Hello-World"
ROOT = f"repos/{OWNER}/{REPO}"
SHA = "ce587453ced02b1526dfb4cb910479d431683101"
HOUR = 3600.0
DELIVERIES = "/app/hook/deliveries"
CHECK_RUNS = "/repos/{owner}/{repo}/check-runs"
RUN = "/repos/{owner}/{repo}/actions/runs/{run_id}"
RERUN = "/repos/{owner}/{repo}/actions/runs/{run_id}/rerun-failed-jobs"


@pytest.fixture
def installed(github_fake):
    """The App installed on the repository's owner: (fake, app, installation token)."""
    installation = github_fake.install(OWNER)
    app = github_fake.app()
    return github_fake, app, app.installation_token(installation)


def raw(fake, method: str, path: str, credential: str, body: object = None, *, query: str = ""):
    """One request as any client would send it, with GitHub's headers: (status, headers, JSON answer)."""
    headers = {
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
        "User-Agent": "tests",
        "Authorization": f"Bearer {credential}",
    }
    data = None
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    url = f"{fake.url}/{path}" + (f"?{query}" if query else "")
    answer = urllib3.PoolManager().request(method, url, body=data, headers=headers, retries=False)
    return answer.status, answer.headers, (json.loads(answer.data) if answer.data else None)


def documented(path: str, method: str) -> tuple[str, dict]:
    """The success status and response schema GitHub documents for an operation."""
    code, response = next((c, r) for c, r in openapi()["paths"][path][method]["responses"].items() if c[0] == "2")
    return code, response["content"]["application/json"]["schema"]


def check_run_body(**changes) -> dict:
    body = {
        "name": CHECK_RUN_NAME,
        "head_sha": SHA,
        "status": "completed",
        "conclusion": "failure",
        "output": {"title": "no_capacity", "summary": "No instance type had capacity."},
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not None}


# -- the fake is GitHub as its OpenAPI description has it -------------------------


def test_the_description_is_githubs_for_the_five_operations():
    operations = {
        op["operationId"]: (method.upper(), path)
        for path, methods in openapi()["paths"].items()
        for method, op in methods.items()
    }
    assert operations == {
        "apps/list-webhook-deliveries": ("GET", DELIVERIES),
        "apps/redeliver-webhook-delivery": ("POST", "/app/hook/deliveries/{delivery_id}/attempts"),
        "checks/create": ("POST", CHECK_RUNS),
        "actions/get-workflow-run": ("GET", RUN),
        "actions/re-run-workflow-failed-jobs": ("POST", RERUN),
    }


def test_the_fakes_answers_have_githubs_documented_shapes(installed):
    fake, app, token = installed
    fake.add_delivery(status_code=502, installation_id=7, repository_id=8)
    fake.add_delivery(action=None, event="ping")
    run = fake.add_workflow_run(ROOT, run_attempt=2)
    answers = {
        DELIVERIES: raw(fake, "GET", "app/hook/deliveries", app.app_jwt()),
        CHECK_RUNS: raw(fake, "POST", f"{ROOT}/check-runs", token, check_run_body()),
        RUN: raw(fake, "GET", f"{ROOT}/actions/runs/{run.id}", token),
    }
    for path, (status, _, answer) in answers.items():
        method = "post" if path == CHECK_RUNS else "get"
        code, schema = documented(path, method)
        assert str(status) == code
        assert [error.message for error in OAS30Validator(schema).iter_errors(answer)] == [], path


def test_the_fake_answers_redeliveries_and_reruns_with_githubs_statuses(installed):
    fake, app, token = installed
    delivery = fake.add_delivery(status_code=502)
    run = fake.add_workflow_run(ROOT)
    redelivered = raw(fake, "POST", f"app/hook/deliveries/{delivery.id}/attempts", app.app_jwt())
    rerun = raw(fake, "POST", f"{ROOT}/actions/runs/{run.id}/rerun-failed-jobs", token)
    assert (redelivered[0], redelivered[2]) == (int(documented(DELIVERIES + "/{delivery_id}/attempts", "post")[0]), {})
    assert (rerun[0], rerun[2]) == (int(documented(RERUN, "post")[0]), {})


@pytest.mark.parametrize(
    "body, says",
    [
        (check_run_body(head_sha=None), "'head_sha' is a required property"),
        (check_run_body(name=None), "'name' is a required property"),
        (check_run_body(name=" "), "name can't be blank"),
        (check_run_body(conclusion=None), "conclusion is required when status is completed"),
        (check_run_body(status=None, conclusion=None, completed_at="2026-12-06T05:00:00Z"), "or completed_at is given"),
        (check_run_body(conclusion="broken"), "conclusion: 'broken' is not one of"),
        (check_run_body(status="done"), "status: 'done' is not one of"),
        (check_run_body(output={"title": "no_capacity"}), "output: 'summary' is a required property"),
        (check_run_body(output={"summary": "why"}), "output: 'title' is a required property"),
        (check_run_body(output={"title": "t", "summary": "x" * 65536}), "is too long"),
        (check_run_body(head_sha=123), "head_sha: 123 is not of type 'string'"),
        (check_run_body(head_sha="main"), "No commit found for SHA: main"),
        ({**check_run_body(), "colour": "red"}, "unknown key colour"),  # stricter than GitHub, which ignores it
        ([check_run_body()], "is not of type 'object'"),
    ],
    ids=[
        "no-head-sha",
        "no-name",
        "blank-name",
        "completed-without-conclusion",
        "completed-at-without-conclusion",
        "unknown-conclusion",
        "unknown-status",
        "output-without-summary",
        "output-without-title",
        "summary-too-long",
        "head-sha-not-a-string",
        "head-sha-not-a-commit",
        "unknown-key",
        "not-an-object",
    ],
)
def test_the_fake_refuses_a_check_run_github_would_refuse(installed, body, says):
    fake, _, token = installed
    status, _, answer = raw(fake, "POST", f"{ROOT}/check-runs", token, body)
    assert (status, says in answer["message"]) == (422, True), answer["message"]
    assert len(answer["message"]) < 300  # no body echoed back whole
    assert fake.check_runs == {}


def test_the_fake_accepts_githubs_own_example_check_run(installed):
    fake, _, token = installed
    request = openapi()["paths"][CHECK_RUNS]["post"]["requestBody"]["content"]["application/json"]["examples"]
    for example in request.values():
        status, _, answer = raw(fake, "POST", f"{ROOT}/check-runs", token, example["value"])
        assert status == 201
        assert answer["name"] == example["value"]["name"]
    assert len(fake.check_runs[ROOT.lower()]) == 2


@pytest.mark.parametrize(
    "body, status",
    [(None, 201), ({}, 201), ({"enable_debug_logging": True}, 201), ({"enable_debug_logging": "yes"}, 422)]
    + [({"enable_debug_logging": False, "jobs": [1]}, 422)],
    ids=["no-body", "empty", "debug", "debug-not-a-boolean", "unknown-key"],
)
def test_the_fake_checks_a_rerun_body(installed, body, status):
    fake, _, token = installed
    run = fake.add_workflow_run(ROOT)
    assert raw(fake, "POST", f"{ROOT}/actions/runs/{run.id}/rerun-failed-jobs", token, body)[0] == status
    assert len(fake.reruns) == (1 if status == 201 else 0)


def test_deliveries_take_the_apps_jwt_and_nothing_else(installed):
    """GitHub marks both delivery operations "not enabled for GitHub Apps": an installation token is refused."""
    fake, app, token = installed
    delivery = fake.add_delivery(status_code=502)
    assert raw(fake, "GET", "app/hook/deliveries", token)[0] == 401
    assert raw(fake, "POST", f"app/hook/deliveries/{delivery.id}/attempts", token)[0] == 401
    assert raw(fake, "GET", "app/hook/deliveries", app.app_jwt())[0] == 200
    assert fake.redeliveries == []


def test_repository_calls_take_an_installation_token_and_not_the_jwt(installed):
    fake, app, _ = installed
    run = fake.add_workflow_run(ROOT)
    jwt = app.app_jwt()
    assert raw(fake, "POST", f"{ROOT}/check-runs", jwt, check_run_body())[0] == 401
    assert raw(fake, "GET", f"{ROOT}/actions/runs/{run.id}", jwt)[0] == 401
    assert raw(fake, "POST", f"{ROOT}/actions/runs/{run.id}/rerun-failed-jobs", jwt)[0] == 401
    assert fake.check_runs == {} and fake.reruns == []


def test_the_fake_checks_listing_queries_as_github_does(installed):
    fake, app, _ = installed
    jwt = app.app_jwt()
    for index in range(150):
        fake.add_delivery(status_code=502 if index % 2 else 200, ago=150 - index)
    fake.add_delivery(ago=3 * 86400 + 1)  # past GitHub's three days: never listed
    assert len(raw(fake, "GET", "app/hook/deliveries", jwt)[2]) == 30  # GitHub's default page
    assert len(raw(fake, "GET", "app/hook/deliveries", jwt, query="per_page=500")[2]) == 100  # clamped
    failed = raw(fake, "GET", "app/hook/deliveries", jwt, query="per_page=100&status=failure")[2]
    assert len(failed) == 75 and {item["status_code"] for item in failed} == {502}
    for query in ("per_page=0", "per_page=x", "status=broken", "cursor=v1_1"):
        assert raw(fake, "GET", "app/hook/deliveries", jwt, query=query)[0] == 422, query


# -- lost deliveries ----------------------------------------------------------------


def test_deliveries_since_a_moment_are_listed_newest_first(installed):
    fake, app, _ = installed
    old = fake.add_delivery(ago=2 * HOUR)
    failed = fake.add_delivery(status_code=502, ago=600, installation_id=3456996, repository_id=1296269)
    ping = fake.add_delivery(event="ping", action=None, ago=60)
    listed = app.hook_deliveries(since=fake.clock() - HOUR)
    assert [d.id for d in listed] == [ping.id, failed.id]
    assert listed[1] == HookDelivery(
        id=failed.id,
        guid=failed.guid,
        delivered_at=fake.clock() - 600,
        status_code=502,
        event="workflow_job",
        action="queued",
        redelivery=False,
        installation_id=3456996,
        repository_id=1296269,
    )
    assert (listed[0].action, listed[0].installation_id, listed[0].succeeded, listed[1].succeeded) == (
        None,
        None,
        True,
        False,
    )
    assert old.id not in {d.id for d in listed}
    (call,) = fake.calls_to("list-webhook-deliveries")
    assert (call.auth, call.query) == ("app", {"per_page": "100"})


def test_the_listing_follows_the_cursor_page_by_page(installed):
    fake, app, _ = installed
    made = [fake.add_delivery(status_code=502, ago=250 - index) for index in range(250)]
    listed = app.hook_deliveries(since=fake.clock() - HOUR)
    assert [d.id for d in listed] == [d.id for d in reversed(made)]
    calls = fake.calls_to("list-webhook-deliveries")
    assert len(calls) == 3
    assert "cursor" not in calls[0].query
    assert [call.query["cursor"] for call in calls[1:]] == [f"v1_{made[150].id}", f"v1_{made[50].id}"]
    assert {call.query["per_page"] for call in calls} == {"100"}


def test_the_listing_stops_at_the_first_delivery_older_than_since(installed):
    """An hour's deliveries cost the pages that hold them, not GitHub's three days."""
    fake, app, _ = installed
    for index in range(300):
        fake.add_delivery(ago=2 * HOUR + index)
    recent = [fake.add_delivery(ago=120 - index) for index in range(120)]
    listed = app.hook_deliveries(since=fake.clock() - HOUR)
    assert {d.id for d in listed} == {d.id for d in recent}
    assert len(fake.calls_to("list-webhook-deliveries")) == 2  # 100 recent, then 20 recent and 80 older


def test_no_deliveries_is_one_call(installed):
    fake, app, _ = installed
    assert app.hook_deliveries(since=fake.clock() - HOUR) == []
    assert fake.counts["list-webhook-deliveries"] == 1


def test_a_next_link_off_the_listing_is_not_followed(installed):
    """The App's JWT must never go to another host."""
    fake, app, _ = installed
    for index in range(101):
        fake.add_delivery(ago=index)
    fake.link_root = "http://127.0.0.1:9/api/v3"
    with pytest.raises(GitHubError) as refused:
        app.hook_deliveries(since=fake.clock() - HOUR)
    assert (refused.value.code, refused.value.operation) == ("bad_link", "list-webhook-deliveries")
    assert fake.counts["list-webhook-deliveries"] == 1


@pytest.mark.parametrize(
    "answer",
    [
        {"deliveries": []},
        [{"id": 1, "guid": "g"}],
        [{**{"id": True}, "guid": "g", "delivered_at": "2026-12-06T05:00:00Z", "status_code": 200}],
        [{"id": 1, "guid": "g", "delivered_at": "2026-12-06T05:00:00", "redelivery": False}],
        [{"id": 1, "guid": "g", "delivered_at": "yesterday", "redelivery": False, "status_code": 200}],
    ],
    ids=["not-a-list", "fields-missing", "boolean-id", "no-timezone", "not-a-time"],
)
def test_a_listing_not_of_githubs_shape_is_a_bad_response(installed, monkeypatch, answer):
    fake, app, _ = installed
    monkeypatch.setattr(fake, "_list_webhook_deliveries", lambda *_: (200, {}, answer))
    with pytest.raises(GitHubError) as bad:
        app.hook_deliveries(since=0)
    assert (bad.value.status, bad.value.code) == (200, "bad_response")


def test_a_failed_delivery_is_redelivered_under_a_new_id_with_its_guid(installed):
    fake, app, _ = installed
    failed = fake.add_delivery(status_code=502, ago=600, installation_id=3456996)
    assert app.redeliver(failed.id) is None
    assert fake.redeliveries == [failed.id]
    again, first = app.hook_deliveries(since=fake.clock() - HOUR)
    assert first.id == failed.id and again.id != failed.id
    assert (again.guid, again.redelivery, again.status_code, again.installation_id) == (
        failed.guid,
        True,
        200,
        3456996,
    )
    (call,) = fake.calls_to("redeliver-webhook-delivery")
    assert (call.auth, call.status, call.body) == ("app", 202, None)


def test_a_redelivery_that_fails_again_is_listed_as_failed(installed):
    fake, app, _ = installed
    fake.redelivery_status = 503
    failed = fake.add_delivery(status_code=502)
    app.redeliver(failed.id)
    again = app.hook_deliveries(since=fake.clock() - HOUR)[0]
    assert (again.guid, again.redelivery, again.status_code, again.succeeded) == (failed.guid, True, 503, False)


def test_an_unknown_delivery_is_not_found(installed):
    _, app, _ = installed
    with pytest.raises(GitHubError) as missing:
        app.redeliver(987654321)
    assert (missing.value.status, missing.value.code, missing.value.operation) == (
        404,
        "not_found",
        "redeliver-webhook-delivery",
    )


def test_a_delivery_older_than_three_days_is_not_redelivered(installed):
    fake, app, _ = installed
    stale = fake.add_delivery(status_code=502, ago=3 * 86400)
    with pytest.raises(GitHubError) as refused:
        app.redeliver(stale.id)
    assert refused.value.code == "unprocessable"
    assert fake.redeliveries == []


@pytest.mark.parametrize("ident", [0, -1, True, "12", 2**63])
def test_a_delivery_id_must_be_a_positive_whole_number(installed, ident):
    fake, app, _ = installed
    with pytest.raises(ValueError):
        app.redeliver(ident)
    assert fake.counts["redeliver-webhook-delivery"] == 0 and fake.counts["unknown"] == 0


# -- visible failure ----------------------------------------------------------------


def test_a_job_without_a_session_shows_a_failed_check_run_on_its_commit(installed):
    fake, app, token = installed
    ident = app.create_check_run(token, OWNER, REPO, SHA, "no_capacity", "No instance type had capacity.")
    (body,) = fake.check_runs[ROOT.lower()]
    assert body == {
        "name": "ec2-sessions",
        "head_sha": SHA,
        "status": "completed",
        "conclusion": "failure",
        "output": {"title": "no_capacity", "summary": "No instance type had capacity."},
    }
    (call,) = fake.calls_to("create-check-run")
    assert (call.status, call.auth) == (201, "installation:3456996")
    assert isinstance(ident, int) and ident > 0


def test_a_commit_sha_in_capitals_is_sent_as_github_writes_it(installed):
    fake, app, token = installed
    app.create_check_run(token, OWNER, REPO, SHA.upper(), "no_profile", "")
    assert fake.check_runs[ROOT.lower()][0]["head_sha"] == SHA


@pytest.mark.parametrize(
    "owner, head_sha, title, summary",
    [
        (OWNER, SHA[:39], "t", "s"),
        (OWNER, "z" * 40, "t", "s"),
        (OWNER, None, "t", "s"),
        (OWNER, SHA, "", "s"),
        (OWNER, SHA, "t", "x" * 65536),
        ("..", SHA, "t", "s"),
        ("own/er", SHA, "t", "s"),
    ],
    ids=["short-sha", "not-hex", "no-sha", "no-title", "summary-too-long", "dot-dot-owner", "slash-in-owner"],
)
def test_a_bad_check_run_is_refused_before_any_request(installed, owner, head_sha, title, summary):
    fake, app, token = installed
    with pytest.raises(ValueError):
        app.create_check_run(token, owner, REPO, head_sha, title, summary)
    assert fake.counts["create-check-run"] == 0 and fake.counts["unknown"] == 0


def test_a_summary_of_githubs_maximum_length_is_accepted(installed):
    fake, app, token = installed
    app.create_check_run(token, OWNER, REPO, SHA, "no_capacity", "x" * 65535)
    assert len(fake.check_runs[ROOT.lower()][0]["output"]["summary"]) == 65535


def test_the_jwt_cannot_make_a_check_run(installed):
    fake, app, _ = installed
    with pytest.raises(GitHubError) as refused:
        app.create_check_run(app.app_jwt(), OWNER, REPO, SHA, "no_capacity", "why")
    assert refused.value.status == 401
    assert fake.check_runs == {}


def test_a_token_of_another_installation_cannot_make_a_check_run_there(installed):
    fake, app, _ = installed
    other = app.installation_token(fake.install("Octocoders"))
    with pytest.raises(GitHubError) as refused:
        app.create_check_run(other, OWNER, REPO, SHA, "no_capacity", "why")
    assert refused.value.status == 404


def test_an_app_without_checks_write_is_forbidden(github_fake):
    app = github_fake.app()
    token = app.installation_token(github_fake.install(OWNER, permissions={"administration": "write"}))
    with pytest.raises(GitHubError) as refused:
        app.create_check_run(token, OWNER, REPO, SHA, "no_capacity", "why")
    assert (refused.value.status, refused.value.code) == (403, "forbidden")


# -- interrupted jobs run again once ---------------------------------------------


def test_a_workflow_run_is_read(installed):
    fake, app, token = installed
    run = fake.add_workflow_run(ROOT, status="in_progress", conclusion=None)
    assert app.workflow_run(token, OWNER, REPO, run.id) == WorkflowRun(run.id, "in_progress", None, 1)
    assert fake.calls_to("get-workflow-run")[0].auth == "installation:3456996"


def test_an_unknown_workflow_run_is_none(installed):
    fake, app, token = installed
    assert app.workflow_run(token, OWNER, REPO, 4242) is None
    assert [call.status for call in fake.calls_to("get-workflow-run")] == [404]


def test_a_run_without_run_attempt_is_read_as_github_allows(installed, monkeypatch):
    """GitHub's schema does not require ``run_attempt`` and lets ``status`` be null."""
    fake, app, token = installed
    answer = {"id": 77, "status": None, "conclusion": None}
    monkeypatch.setattr(fake, "_get_workflow_run", lambda *_: (200, {}, answer))
    assert app.workflow_run(token, OWNER, REPO, 77) == WorkflowRun(77, None, None, None)


@pytest.mark.parametrize(
    "answer",
    [{"id": 78, "status": "completed"}, {"id": 77, "status": 3}, {"id": 77, "run_attempt": 0}, ["run"]],
    ids=["another-run", "status-not-a-string", "attempt-zero", "not-an-object"],
)
def test_a_run_not_of_githubs_shape_is_a_bad_response(installed, monkeypatch, answer):
    fake, app, token = installed
    monkeypatch.setattr(fake, "_get_workflow_run", lambda *_: (200, {}, answer))
    with pytest.raises(GitHubError) as bad:
        app.workflow_run(token, OWNER, REPO, 77)
    assert bad.value.code == "bad_response"


def test_a_completed_runs_failed_jobs_are_rerun(installed):
    fake, app, token = installed
    run = fake.add_workflow_run(ROOT, status="completed", conclusion="failure")
    assert app.rerun_failed_jobs(token, OWNER, REPO, run.id) is None
    assert fake.reruns == [(ROOT.lower(), run.id, None)]
    assert app.workflow_run(token, OWNER, REPO, run.id) == WorkflowRun(run.id, "queued", None, 2)
    assert [call.status for call in fake.calls_to("rerun-failed-jobs")] == [201]


def test_a_run_that_has_not_completed_is_not_rerun(installed):
    """GitHub answers 403 "This workflow is already running"; a re-run itself is such a run."""
    fake, app, token = installed
    running = fake.add_workflow_run(ROOT, status="in_progress", conclusion=None)
    with pytest.raises(GitHubError) as refused:
        app.rerun_failed_jobs(token, OWNER, REPO, running.id)
    assert (refused.value.status, refused.value.code) == (403, "forbidden")
    done = fake.add_workflow_run(ROOT)
    app.rerun_failed_jobs(token, OWNER, REPO, done.id)
    with pytest.raises(GitHubError, match="403"):
        app.rerun_failed_jobs(token, OWNER, REPO, done.id)
    assert [rerun[1] for rerun in fake.reruns] == [done.id]
    assert fake.clock.sleeps == [1.0, 1.0]  # not waited out: a 403 that is no rate limit


def test_rerunning_an_unknown_run_is_not_found(installed):
    _, app, token = installed
    with pytest.raises(GitHubError) as missing:
        app.rerun_failed_jobs(token, OWNER, REPO, 4242)
    assert missing.value.code == "not_found"


def test_an_app_without_actions_write_can_read_runs_but_not_rerun_them(github_fake):
    app = github_fake.app()
    token = app.installation_token(github_fake.install(OWNER, permissions={"actions": "read"}))
    run = github_fake.add_workflow_run(ROOT)
    assert app.workflow_run(token, OWNER, REPO, run.id).run_attempt == 1
    with pytest.raises(GitHubError) as refused:
        app.rerun_failed_jobs(token, OWNER, REPO, run.id)
    assert refused.value.status == 403
    assert github_fake.reruns == []


@pytest.mark.parametrize("run_id", [0, -5, False, "12"])
def test_a_run_id_must_be_a_positive_whole_number(installed, run_id):
    fake, app, token = installed
    for call in (app.workflow_run, app.rerun_failed_jobs):
        with pytest.raises(ValueError):
            call(token, OWNER, REPO, run_id)
    assert fake.counts["get-workflow-run"] == fake.counts["rerun-failed-jobs"] == 0


# -- rate limits, failures, pacing, secrets ----------------------------------------


def test_a_secondary_limit_on_the_listing_is_waited_out(installed):
    fake, app, _ = installed
    fake.add_delivery(status_code=502)
    fake.rate_limit(retry_after=5, status=429, route="list-webhook-deliveries")
    assert len(app.hook_deliveries(since=fake.clock() - HOUR)) == 1
    assert fake.clock.sleeps == [5.0]
    assert [call.status for call in fake.calls_to("list-webhook-deliveries")] == [429, 200]


def test_a_limit_longer_than_the_budget_gives_up_at_once(installed):
    fake, app, token = installed
    run = fake.add_workflow_run(ROOT)
    fake.rate_limit(reset_in=600, route="rerun-failed-jobs")
    with pytest.raises(RateLimited) as limited:
        app.rerun_failed_jobs(token, OWNER, REPO, run.id)
    assert limited.value.operation == "rerun-failed-jobs"
    assert fake.reruns == []


def test_server_errors_are_retried_a_couple_of_times(installed):
    fake, app, token = installed
    fake.fail(times=2, status=502, route="create-check-run")
    app.create_check_run(token, OWNER, REPO, SHA, "launch_failed", "why")
    assert [call.status for call in fake.calls_to("create-check-run")] == [502, 502, 201]
    assert len(fake.check_runs[ROOT.lower()]) == 1


def test_writes_are_spaced_a_second_apart_and_reads_are_not(installed):
    fake, app, token = installed
    failed = fake.add_delivery(status_code=502)
    run = fake.add_workflow_run(ROOT)
    app.redeliver(failed.id)
    app.hook_deliveries(since=fake.clock() - HOUR)
    app.workflow_run(token, OWNER, REPO, run.id)
    app.create_check_run(token, OWNER, REPO, SHA, "no_capacity", "why")
    app.rerun_failed_jobs(token, OWNER, REPO, run.id)
    assert fake.clock.sleeps == [1.0, 1.0]
    assert {route: fake.counts[route] for route in ("list-webhook-deliveries", "create-check-run")} == {
        "list-webhook-deliveries": 1,
        "create-check-run": 1,
    }


def test_no_secret_shows_in_error_messages(installed):
    fake, app, token = installed
    jwt = app.app_jwt()
    errors = []
    for attempt in (
        lambda: app.redeliver(1),  # 404
        lambda: app.create_check_run(jwt, OWNER, REPO, SHA, "t", "s"),  # 401
        lambda: app.rerun_failed_jobs(token, OWNER, REPO, 1),  # 404
    ):
        with pytest.raises(GitHubError) as failed:
            attempt()
        errors.append(failed.value)
    shown = ["".join(traceback.format_exception(error)) for error in errors]
    for text in shown:
        for secret in (token, jwt, fake.private_key_pem, *fake.tokens):
            assert secret not in text
