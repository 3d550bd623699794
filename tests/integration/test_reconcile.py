"""No job left queued silently: the reconcile pass against moto (with capacity faults) and the fake GitHub.

The fake GitHub checks what GitHub checks: the App's JWT on webhook
deliveries, installation tokens elsewhere, bodies by GitHub's OpenAPI
description. Each test drives the pass with its own clock.
"""

from __future__ import annotations

import inspect
import json
from datetime import UTC, datetime, timedelta

import pytest
import reconcile
from session_naming import clients
from session_naming.github import GitHubApp
from session_naming.settings import load_launcher

from tests.support.deliveries import github_event, workflow_job
from tests.support.function_url import release_event
from tests.support.handlers import LambdaContext, load_event
from tests.support.jobs import ROOT, finished, no_capacity, queued, run_pass, sessions_of, with_app
from tests.support.metrics import total
from tests.support.seed import inventory
from tests.support.stack import REGION, make_launch_template

SHA = "3484a3fb816e0859fd6e1cea078d76385ff50625"


@pytest.fixture
def launcher(launcher, look, github_fake):
    """A launcher with the fake GitHub's App, one spot-first profile, and EC2 capacity a test can take away."""
    return with_app(launcher, look, github_fake)


def test_a_job_whose_create_failed_gets_exactly_one_session_once_capacity_returns(launcher, look):
    no_capacity(launcher)
    assert launcher(queued(1))[0] == 503

    still = run_pass()
    launcher.capacity.restore()
    served = run_pass()
    again = run_pass()

    assert (still["pending"], still["created"]) == (1, 0)
    assert (served["pending"], served["created"]) == (1, 1)
    assert (again["pending"], again["created"]) == (0, 0)
    [session] = sessions_of(look, 1)
    assert launcher(queued(1, delivery="redelivered"))[1]["session"] == session  # one session per job
    assert len(launcher.github.runner_names(ROOT)) == 1


def test_a_completed_job_is_never_created_afterwards(launcher, look):
    no_capacity(launcher)
    launcher(queued(2))
    launcher.capacity.restore()

    assert launcher(finished(2))[0] == 200
    summary = run_pass()

    assert summary["created"] == 0 and summary["pending"] == 0
    assert sessions_of(look, 2) == set() and launcher.github.runner_names(ROOT) == set()


def test_a_create_that_died_mid_way_is_retried_once_its_claim_lapses(launcher, look):
    from sessions import ledger_of

    payload = workflow_job("queued", 3, labels=["self-hosted", "ec2-session"])
    now = datetime.now(UTC)
    ledger_of(load_launcher()).claim("github", "3", now, {k: payload[k] for k in ("action", "workflow_job")})

    early = run_pass(now + timedelta(seconds=30))
    late = run_pass(now + timedelta(minutes=3))

    assert early["created"] == 0 and late["created"] == 1
    assert len(sessions_of(look, 3)) == 1


def test_a_day_old_pending_job_is_dropped_and_counted(launcher, look, capsys):
    no_capacity(launcher)
    launcher(queued(4, created_at=datetime.now(UTC) - timedelta(hours=23, minutes=50)))
    capsys.readouterr()

    summary = run_pass(datetime.now(UTC) + timedelta(minutes=16))  # its next turn, now past a day
    reconcile.metrics.flush_metrics()

    assert summary["dropped"] == 1 and summary["pending"] == 0
    assert total(capsys.readouterr().out, "JobsDropped") == 1
    assert run_pass()["pending"] == 0


def test_a_job_without_a_session_after_15_minutes_gets_one_failing_check_run_saying_why(launcher):
    no_capacity(launcher)
    launcher(queued(5, created_at=datetime.now(UTC) - timedelta(minutes=16)))

    first, second = run_pass(), run_pass()

    assert (first["failed_visibly"], second["failed_visibly"]) == (1, 0)
    [check] = launcher.github.check_runs[ROOT]
    assert check["name"] == "ec2-sessions" and check["status"] == "completed" and check["conclusion"] == "failure"
    assert check["head_sha"] == SHA and check["output"]["title"].startswith("no_capacity")


def test_a_job_no_profile_matches_is_told_so_once_on_its_commit(launcher, look):
    assert launcher(queued(6, labels=("self-hosted", "ec2-session", "gpu")))[0] == 202

    first, second = run_pass(), run_pass()

    assert (first["failed_visibly"], second["failed_visibly"]) == (1, 0)
    [check] = launcher.github.check_runs[ROOT]
    assert check["output"]["title"].startswith("no_profile")
    assert sessions_of(look, 6) == set()


def test_failed_recent_workflow_job_deliveries_are_redelivered_once_per_guid(launcher):
    github = launcher.github
    lost = github.add_delivery("guid-lost", status_code=502, ago=120)
    github.add_delivery("guid-recovered", status_code=500, ago=600)
    github.add_delivery("guid-recovered", status_code=200, ago=300, redelivery=True)
    github.add_delivery("guid-ping", status_code=500, ago=60, event="ping", action=None)
    github.add_delivery("guid-old", status_code=500, ago=2 * 3600)
    github.redelivery_status = 502  # the redelivery fails again: listed under a new id, not redelivered again

    first, second = run_pass(), run_pass()

    assert github.redeliveries == [lost.id]
    assert (first["redelivered"], second["redelivered"]) == (1, 0)


def test_an_interrupted_job_that_failed_is_re_run_once_after_its_run_completes(launcher, look):
    run = launcher.github.add_workflow_run(ROOT, status="in_progress", conclusion=None, head_sha=SHA)
    _, made = launcher(queued(7, run_id=run.id))
    event = load_event("spot-interruption.json")
    event["detail"]["instance-id"] = made["instances"][0]["id"]
    launcher.module.lambda_handler(event, LambdaContext())
    assert launcher(finished(7, conclusion="failure", run_id=run.id))[0] == 200

    waiting = run_pass()
    run.status, run.conclusion = "completed", "failure"
    rerun = run_pass(datetime.now(UTC) + timedelta(minutes=6))
    once = run_pass(datetime.now(UTC) + timedelta(minutes=12))

    assert (waiting["reruns"], rerun["reruns"], once["reruns"]) == (0, 1, 0)
    assert [(root, ident) for root, ident, _ in launcher.github.reruns] == [(ROOT, run.id)]


def test_a_failed_job_never_interrupted_is_not_re_run(launcher):
    run = launcher.github.add_workflow_run(ROOT, head_sha=SHA)
    launcher(queued(8, run_id=run.id))
    launcher(finished(8, conclusion="failure", run_id=run.id))

    assert run_pass()["reruns"] == 0 and launcher.github.reruns == []


def test_a_runner_taken_by_another_job_binds_its_session_to_that_job_and_the_first_gets_its_own(launcher, look, capsys):
    _, first = launcher(queued(9))
    _, second = launcher(queued(10))
    capsys.readouterr()
    started = datetime.now(UTC)
    taken = workflow_job(
        "in_progress",
        10,
        labels=["self-hosted", "ec2-session"],
        runner_name=first["runner"]["name"],
        created_at=started - timedelta(seconds=42),
        started_at=started,
    )

    status, body = launcher(github_event(taken, "p-10"))

    assert (status, body) == (200, {"bound": [first["session"]]})
    assert total(capsys.readouterr().out, "QueueLatency") == 42
    assert sessions_of(look, 10) == {first["session"], second["session"]}
    assert run_pass()["created"] == 1  # job 9, still queued, gets a session of its own
    [own] = sessions_of(look, 9)
    assert own not in (first["session"], second["session"])
    released = launcher(finished(10))[1]["released"]
    assert set(released) == {first["session"], second["session"]}
    assert own in inventory(look, REGION)["key_pair"]


def test_without_an_app_the_pass_only_retries_pending_jobs(launcher, look):
    launcher.env("GITHUB_APP_SECRET_ARN", "")
    no_capacity(launcher)
    launcher(queued(11, created_at=datetime.now(UTC) - timedelta(minutes=20)))
    launcher.capacity.restore()
    calls = len(launcher.github.calls)

    summary = run_pass()

    assert summary["created"] == 1 and summary["failed_visibly"] == 0
    assert len(launcher.github.calls) == calls


def test_the_schedule_runs_the_pass_through_the_handler_and_reads_an_index_never_the_table(launcher):
    operations = []
    clients.client("dynamodb", REGION).meta.events.register(
        "before-send.dynamodb", lambda event_name, **_: operations.append(event_name.rsplit(".", 1)[-1])
    )
    no_capacity(launcher)
    launcher(queued(12))

    summary = launcher.module.lambda_handler(load_event("launcher-reconcile.json"), LambdaContext())

    assert summary["pending"] == 1 and summary["cut_short"] is None
    assert "Query" in operations and "Scan" not in operations


def test_a_pass_out_of_time_stops_between_jobs_and_says_so(launcher):
    no_capacity(launcher)
    for job in (13, 14):
        launcher(queued(job))

    summary = run_pass(time_left=lambda: 1.0)

    assert summary["cut_short"] == "time" and summary["pending"] == 0


def test_a_pass_that_fails_as_a_whole_is_counted_for_its_alarm_and_raises(launcher, capsys):
    launcher.env("IDEMPOTENCY_TABLE", "no-such-table")
    capsys.readouterr()

    with pytest.raises(Exception, match="ResourceNotFoundException|Requested resource not found"):
        launcher.module.lambda_handler(load_event("launcher-reconcile.json"), LambdaContext())

    assert total(capsys.readouterr().out, "ReconcileFailures") == 1


def test_a_jit_runner_carries_its_profiles_labels_and_the_default_labels_the_job_asked_for_and_no_other(launcher):
    """A workflow author must not be able to register runners with labels of their choosing."""
    _, made = launcher(queued(15, labels=("self-hosted", "Linux", "ARM64", "ec2-session")))

    [runner] = launcher.github.runners[ROOT].values()
    assert runner.name == made["runner"]["name"]
    assert runner.labels == ["self-hosted", "ec2-session", "Linux", "ARM64"]


def test_two_jobs_that_swap_runners_are_both_running_and_get_no_extra_session(launcher, look):
    _, first = launcher(queued(16))
    _, second = launcher(queued(17))
    for job, runner, delivery in ((17, first, "p-17"), (16, second, "p-16")):  # each starts on the other's runner
        started = workflow_job(
            "in_progress", job, labels=["self-hosted", "ec2-session"], runner_name=runner["runner"]["name"]
        )
        assert launcher(github_event(started, delivery))[0] == 200

    assert run_pass()["created"] == 0
    assert sessions_of(look, 16) == {second["session"]} and sessions_of(look, 17) == {first["session"]}


def test_a_job_whose_runner_was_taken_is_served_even_when_the_takers_in_progress_never_came(launcher, look):
    _, first = launcher(queued(18))
    done = workflow_job("completed", 19, labels=["self-hosted", "ec2-session"], runner_name=first["runner"]["name"])

    assert launcher(github_event(done, "c-19"))[1]["released"] == [first["session"]]
    assert run_pass()["created"] == 1  # job 18, still queued, gets a session of its own
    assert len(sessions_of(look, 18)) == 1


def test_an_interruption_releases_a_session_whose_runner_is_busy_with_its_job(launcher, look):
    _, made = launcher(queued(20))
    [runner] = launcher.github.runners[ROOT].values()
    runner.status, runner.busy = "online", True
    event = load_event("spot-interruption.json")
    event["detail"]["instance-id"] = made["instances"][0]["id"]

    answer = launcher.module.lambda_handler(event, LambdaContext())
    again = launcher.module.lambda_handler(event, LambdaContext())  # EventBridge may deliver it twice

    assert answer["released"] == [made["session"]] and again["released"] == []
    assert sessions_of(look, 20) == set()
    # GitHub refuses to delete a busy runner (422): it goes offline with its instance, and the collector or
    # GitHub's own removal of offline ephemeral runners takes the registration.
    assert launcher.github.runner_names(ROOT) == {made["runner"]["name"]}


def test_a_check_run_github_failed_to_make_is_made_on_a_later_pass_and_still_once(launcher):
    assert launcher(queued(21, labels=("self-hosted", "ec2-session", "gpu")))[0] == 202
    launcher.github.fail(times=3, status=502, route="create-check-run")  # the client's two retries fail too

    failed = run_pass()
    later = [run_pass(datetime.now(UTC) + timedelta(minutes=m)) for m in (6, 12)]

    assert failed["failed_visibly"] == 0 and [p["failed_visibly"] for p in later] == [1, 0]
    assert len(launcher.github.check_runs[ROOT]) == 1


@pytest.mark.parametrize("status", [403, 404, 422])
def test_a_check_run_github_refuses_for_good_is_not_asked_again(launcher, status):
    assert launcher(queued(24, labels=("self-hosted", "ec2-session", "gpu")))[0] == 202
    launcher.github.fail(times=1, status=status, route="create-check-run")

    passes = [run_pass(datetime.now(UTC) + timedelta(minutes=m)) for m in (0, 6, 12)]

    assert [p["failed_visibly"] for p in passes] == [0, 0, 0]
    assert launcher.github.check_runs.get(ROOT, []) == []
    assert len(launcher.github.calls_to("create-check-run")) == 1  # one ask, refused: never again


def test_a_check_run_github_keeps_failing_is_asked_five_times_at_most(launcher):
    no_capacity(launcher)
    launcher(queued(25))
    launcher.github.fail(times=100, status=502, route="create-check-run")

    passes = [run_pass(datetime.now(UTC) + timedelta(minutes=m)) for m in range(16, 60, 5)]

    tries_per_ask = 1 + inspect.signature(GitHubApp).parameters["retries"].default  # the client retries a 5xx
    assert len(passes) > 5 and len(launcher.github.calls_to("create-check-run")) == 5 * tries_per_ask


def test_a_pending_job_no_profile_matches_any_more_is_told_so_and_gets_no_machine_less_session(launcher, look):
    no_capacity(launcher)
    launcher(queued(22))
    launcher.capacity.restore()
    launcher.env(
        "PROFILES",
        json.dumps(
            {"gpu": {"labels": ["ec2-session", "gpu"], "launch_template_id": make_launch_template(look, name="g")}}
        ),
    )

    summary = run_pass()

    assert summary["created"] == 0 and summary["failed_visibly"] == 1
    assert launcher.github.check_runs[ROOT][0]["output"]["title"].startswith("no_profile")
    assert sessions_of(look, 22) == set()


def test_a_session_released_by_hand_before_its_job_started_is_made_again_on_the_next_pass(launcher, look):
    _, made = launcher(queued(23))

    status, body = launcher(release_event(made["session"]))

    assert status == 200 and "next pass" in body["note_job"]
    assert run_pass()["created"] == 1 and len(sessions_of(look, 23)) == 1


def test_a_job_queued_while_the_profiles_cannot_be_read_is_served_once_they_can(launcher, look):
    good = json.dumps(
        {"small": {"labels": ["ec2-session"], "launch_template_id": make_launch_template(look, name="b")}}
    )
    launcher.env("PROFILES", "ssm:/ec2-sessions/missing")

    assert launcher(queued(24))[0] == 500
    launcher.env("PROFILES", good)
    assert run_pass()["created"] == 1 and len(sessions_of(look, 24)) == 1
