"""GitLab CI: a job's sessions are released by its Job Hook the moment it finishes, cancelled included.

Payloads start from GitLab's documented Job Hook example (tests/events/gitlab).
"""

from __future__ import annotations

import json

import pytest
from session_naming import GITLAB_JOB_TAG, clients

from tests.support.function_url import SECRET, url_event
from tests.support.handlers import load_fixture
from tests.support.seed import ALL_KINDS, inventory
from tests.support.stack import REGION

PROJECT, JOB = 380, 1977


def hook(status: str, *, project=PROJECT, job=JOB, scheme="gitlab", headers=None, secret=SECRET) -> dict:
    payload = json.loads(load_fixture("gitlab/job-hook.json"))
    payload.update(build_status=status, project_id=project, build_id=job)
    event_headers = {"X-Gitlab-Event": "Job Hook", **(headers or {})}
    return url_event("POST", "/gitlab", json.dumps(payload), event_headers, secret=secret, scheme=scheme)


def create_for(launcher, project=PROJECT, job=JOB):
    body = {"lifetime_minutes": 60, "gitlab_job": {"project_id": project, "job_id": job}}
    return launcher(url_event("POST", "/sessions", body, {"X-Request-Id": f"{job}"}, scheme="both"))


@pytest.mark.parametrize("status", ["success", "failed", "canceled", "skipped"])
def test_a_finished_job_releases_its_sessions_and_no_other(launcher, look, status):
    _, mine = create_for(launcher)
    _, other_job = create_for(launcher, job=JOB + 1)
    _, other_project = create_for(launcher, project=PROJECT + 1)

    code, body = launcher(hook(status))

    assert (code, body) == (200, {"released": [mine["session"]], "kept": []})
    assert inventory(look, REGION)["key_pair"] == {other_job["session"], other_project["session"]}


def test_a_finished_job_whose_instance_would_not_terminate_reports_it_failed_and_keeps_its_slot(launcher, look):
    from tests.support.faults import Faults
    from tests.support.stack import make_launch_template

    launcher.env("LAUNCH_TEMPLATE_ID", make_launch_template(look))
    launcher.env("MAX_LIVE_SESSIONS", "1")
    body = {"lifetime_minutes": 60, "instance": True, "gitlab_job": {"project_id": PROJECT, "job_id": JOB}}
    _, made = launcher(url_event("POST", "/sessions", body, {"X-Request-Id": f"{JOB}"}, scheme="both"))
    Faults().inject(clients.client("ec2", REGION), "TerminateInstances", "UnauthorizedOperation")

    code, answer = launcher(hook("canceled"))

    assert (code, answer) == (200, {"released": [], "kept": [], "failed": [made["session"]]})
    assert create_for(launcher, job=JOB + 1)[0] == 429  # its instance still runs and still counts


def test_a_sessions_resources_carry_its_job(launcher, look):
    _, made = create_for(launcher)

    key = look("ec2", REGION).describe_key_pairs(KeyNames=[made["session"]])["KeyPairs"][0]

    assert {t["Key"]: t["Value"] for t in key["Tags"]}[GITLAB_JOB_TAG] == f"{PROJECT}/{JOB}"


@pytest.mark.parametrize("status", ["created", "pending", "running", "manual"])
def test_a_running_job_is_ignored_and_its_session_untouched(launcher, look, status):
    _, made = create_for(launcher)

    code, _ = launcher(hook(status))

    assert code == 202
    assert inventory(look, REGION)["key_pair"] == {made["session"]}


def test_other_gitlab_events_are_ignored(launcher, look):
    _, made = create_for(launcher)
    event = hook("success", headers={"X-Gitlab-Event": "Pipeline Hook"})

    assert launcher(event)[0] == 202
    assert inventory(look, REGION)["key_pair"] == {made["session"]}


@pytest.mark.parametrize(
    "forge",
    [
        lambda e: e["headers"].pop("x-gitlab-token"),
        lambda e: e["headers"].update({"x-gitlab-token": "wrong"}),
        lambda e: e["headers"].update({"x-gitlab-token": SECRET[:-1]}),
        lambda e: e["headers"].update({"webhook-id": "msg_1", "webhook-timestamp": "1", "webhook-signature": "v1,x"}),
    ],
    ids=["missing", "wrong", "prefix", "token-with-forged-standard-webhooks"],
)
def test_a_forged_hook_is_401_and_changes_nothing(launcher, look, forge):
    _, made = create_for(launcher)
    event = hook("canceled")
    forge(event)

    code, body = launcher(event)

    assert (code, body["error"]) == (401, "unauthorized")
    assert inventory(look, REGION)["key_pair"] == {made["session"]}
    assert create_for(launcher, job=JOB)[0] == 201  # and the job was not recorded as over


def test_github_signatures_do_not_open_the_gitlab_route(launcher, look):
    _, made = create_for(launcher)

    assert launcher(hook("canceled", scheme="github"))[0] == 401
    assert inventory(look, REGION)["key_pair"] == {made["session"]}


def test_a_standard_webhooks_signed_hook_is_accepted(launcher, look):
    create_for(launcher)

    code, body = launcher(hook("canceled", scheme="standard"))

    assert code == 200 and len(body["released"]) == 1
    assert inventory(look, REGION)["key_pair"] == set()


def test_a_job_that_ended_before_its_create_gets_409_and_nothing_is_made(launcher, look):
    code, body = launcher(hook("canceled"))
    assert (code, body) == (200, {"released": [], "kept": []})

    status, refused = create_for(launcher)

    assert (status, refused["error"]) == (409, "job_over")
    assert inventory(look, REGION)["key_pair"] == set()


@pytest.mark.parametrize("step", ["CreateKeyPair", "CreateSecurityGroup", "PutParameter"])
def test_a_job_that_ends_while_its_create_is_in_flight_leaves_nothing(launcher, look, step):
    """The hook lands between two creation steps: either it or the create releases everything."""
    service = "ssm" if step == "PutParameter" else "ec2"
    ended = []

    def end_the_job(**_):
        if not ended:
            ended.append(launcher(hook("canceled", headers={"X-Gitlab-Event-UUID": f"end-{step}"})))

    clients.client(service, REGION).meta.events.register(f"after-call.{service}.{step}", end_the_job)

    status, body = create_for(launcher)

    assert ended and ended[0][0] == 200
    assert (status, body["error"]) == (409, "job_over")
    assert inventory(look, REGION) == {kind: set() for kind in ALL_KINDS}


def test_a_redelivered_hook_is_answered_once(launcher, look):
    _, first_session = create_for(launcher)
    delivery = {"X-Gitlab-Event-UUID": "13792a34-cac6-4fda-95a8-c58e00a3954e"}

    first = launcher(hook("success", headers=delivery))
    again = launcher(hook("success", headers=delivery))

    assert first == again == (200, {"released": [first_session["session"]], "kept": []})
