"""Jobs as GitHub really sends them, and the reconcile pass under pressure.

Deployment approvals (a job ``waiting`` for an environment's reviewer, then
``queued`` again days later), sessions that go before their job starts,
fields as GitHub's webhook schema has them, and passes that run out of time
or meet a capacity outage: against moto over HTTP (with capacity faults) and
the fake GitHub, each test on its own clock.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
import reconcile
from session_naming import SessionName, clients
from session_naming.settings import load_collector, load_launcher
from sweep import sweep

from tests.support.deliveries import github_event, workflow_job
from tests.support.faults import Faults
from tests.support.handlers import LambdaContext, load_event
from tests.support.jobs import ROOT, finished, no_capacity, queued, run_pass, sessions_of, with_app
from tests.support.seed import ALL_KINDS, inventory
from tests.support.stack import REGION, make_launch_template

NOTHING = {kind: set() for kind in ALL_KINDS}
LABELS = ["self-hosted", "ec2-session"]
SHA256_COMMIT = "9f2c" * 16  # a SHA-256 repository's commit: 64 hexadecimal digits


@pytest.fixture
def launcher(launcher, look, github_fake):
    return with_app(launcher, look, github_fake)


def waiting(job, *, created_at=None, form="waiting"):
    """A job held for a reviewer, as GitHub sends it: ``action: waiting``, or ``queued`` with ``status: waiting``."""
    if form == "waiting":
        payload = workflow_job("waiting", job, labels=LABELS, created_at=created_at)
    else:
        payload = workflow_job("queued", job, labels=LABELS, created_at=created_at, status="waiting")
    return github_event(payload, f"w-{job}-{form}")


# ---- deployment approvals ----------------------------------------------------------------------


@pytest.mark.parametrize("form", ["waiting", "queued"])
def test_a_job_waiting_for_its_reviewer_gets_no_session(launcher, look, form):
    status, body = launcher(waiting(31, form=form))

    assert (status, body) == (202, {"ignored": "waiting for approval"})
    assert inventory(look, REGION) == NOTHING and launcher.github.runner_names(ROOT) == set()


def test_an_approved_job_is_served_whatever_its_age(launcher, look):
    queued_at = datetime.now(UTC) - timedelta(days=5)
    launcher(waiting(32, created_at=queued_at))

    status, body = launcher(queued(32, created_at=queued_at, delivery="approved"))

    assert status == 201 and sessions_of(look, 32) == {body["session"]}


def test_an_old_queued_the_ledger_never_saw_waiting_is_still_a_replay(launcher, look):
    status, body = launcher(queued(33, created_at=datetime.now(UTC) - timedelta(days=5)))

    assert (status, body) == (202, {"ignored": "the job was queued more than 72 hours ago"})
    assert inventory(look, REGION) == NOTHING


def test_an_approved_jobs_clock_starts_at_its_approval(launcher):
    queued_at = datetime.now(UTC) - timedelta(days=3)
    launcher(waiting(34, created_at=queued_at))
    no_capacity(launcher)
    approved = datetime.now(UTC)
    assert launcher(queued(34, created_at=queued_at, delivery="approved"))[0] == 503

    early = run_pass(approved + timedelta(minutes=10))
    told = run_pass(approved + timedelta(minutes=16))

    assert (early["pending"], early["failed_visibly"], early["dropped"]) == (1, 0, 0)
    assert (told["pending"], told["failed_visibly"], told["dropped"]) == (1, 1, 0)


def test_a_waiting_delivery_that_comes_after_the_approval_changes_nothing(launcher, look):
    _, made = launcher(queued(35))

    assert launcher(waiting(35))[0] == 202
    assert launcher(queued(35, delivery="again"))[1]["session"] == made["session"]


# ---- a session gone before its job started -------------------------------------------------------


def test_a_session_expired_and_swept_before_its_job_started_is_made_again_by_the_next_pass(launcher, look):
    _, made = launcher(queued(41))
    expired = SessionName(made["session"]).expires
    sweep(look, load_collector({"REGIONS": REGION, "GRACE_SECONDS": "0"}), expired, lambda: 900.0, False)
    assert made["session"] not in inventory(look, REGION)["key_pair"]

    summary = run_pass(expired + timedelta(minutes=1))

    assert (summary["sessions_gone"], summary["created"]) == (1, 1)
    [new] = sessions_of(look, 41)
    assert new != made["session"]


def test_a_redelivered_queued_never_answers_a_session_that_no_longer_exists(launcher, look):
    _, made = launcher(queued(42))
    expired = SessionName(made["session"]).expires
    sweep(look, load_collector({"REGIONS": REGION, "GRACE_SECONDS": "0"}), expired, lambda: 900.0, False)

    status, again = launcher(queued(42, delivery="redelivered"))

    assert status == 201 and again["session"] != made["session"]
    assert sessions_of(look, 42) == {again["session"]}


def test_a_session_taken_back_by_spot_before_its_job_started_leaves_the_job_pending(launcher, look):
    _, made = launcher(queued(43))
    event = load_event("spot-interruption.json")
    event["detail"]["instance-id"] = made["instances"][0]["id"]

    answer = launcher.module.lambda_handler(event, LambdaContext())

    assert answer["job_pending"] == "43"
    assert run_pass()["created"] == 1 and len(sessions_of(look, 43)) == 1


def test_a_job_that_started_keeps_its_session_past_the_pass_at_expiry(launcher, look):
    _, made = launcher(queued(44))
    started = workflow_job("in_progress", 44, labels=LABELS, runner_name=made["runner"]["name"])
    launcher(github_event(started, "p-44"))

    summary = run_pass(SessionName(made["session"]).expires + timedelta(minutes=1))

    assert (summary["sessions_gone"], summary["created"]) == (0, 0)
    assert sessions_of(look, 44) == {made["session"]}


def test_an_approved_job_no_profile_matches_is_told_so_on_its_commit(launcher, look):
    queued_at = datetime.now(UTC) - timedelta(hours=5)
    launcher(waiting(36, created_at=queued_at))

    status, _ = launcher(queued(36, created_at=queued_at, labels=[*LABELS, "gpu"], delivery="approved"))

    assert status == 202 and run_pass()["failed_visibly"] == 1
    assert launcher.github.check_runs[ROOT][0]["output"]["title"].startswith("no_profile")


# ---- fields as the schema has them -------------------------------------------------------------


def test_a_sha256_repositorys_job_is_served_and_told_on_its_commit(launcher):
    assert launcher(queued(51, head_sha=SHA256_COMMIT))[0] == 201
    no_capacity(launcher)
    launcher(queued(52, head_sha=SHA256_COMMIT))

    assert run_pass(datetime.now(UTC) + timedelta(minutes=16))["failed_visibly"] == 1
    assert [c["head_sha"] for c in launcher.github.check_runs[ROOT]] == [SHA256_COMMIT]


@pytest.mark.parametrize(("label", "status"), [("\u212avm", 202), ("KVM", 201), ("kvm", 201)])
def test_labels_fold_in_ascii_only_as_github_compares_them(launcher, look, label, status):
    template = make_launch_template(look, name="kvm")
    launcher.env("PROFILES", json.dumps({"kvm": {"labels": ["ec2-session", "kvm"], "launch_template_id": template}}))

    answer = launcher(queued(53, labels=[*LABELS, label]))[0]

    assert answer == status  # the Kelvin sign is not a k: no profile matches
    assert bool(sessions_of(look, 53)) is (status == 201)


def test_labels_are_any_strings_as_the_schema_has_them(launcher, look):
    status, body = launcher(queued(54, labels=[*LABELS, "", "x" * 300, "ラベル"]))

    assert (status, body) == (202, {"ignored": "no profile matches the job's labels"})


def test_a_job_without_created_at_or_runner_name_is_served_and_released(launcher, look):
    payload = workflow_job("queued", 55, labels=LABELS)
    del payload["workflow_job"]["created_at"]
    status, made = launcher(github_event(payload, "q-55"))
    ended = workflow_job("completed", 55, labels=LABELS, runner_name=None, runner_id=None)

    assert status == 201
    assert launcher(github_event(ended, "c-55"))[1]["released"] == [made["session"]]


# ---- the pass under pressure -----------------------------------------------------------------


class Stopwatch:
    """The invocation's time as the pass sees it, spent by the launcher's EC2 calls (``cost`` seconds each),
    so that a test's budget does not depend on how fast this machine runs moto."""

    def __init__(self, budget: float, cost=lambda operation: 1.0):
        self.left, self.cost, self.lowest = budget, cost, budget
        self._lock = threading.Lock()
        clients.client("ec2", REGION).meta.events.register("before-call.ec2", self._spend)

    def _spend(self, model, **_):
        with self._lock:
            self.left -= self.cost(model.name)
            self.lowest = min(self.lowest, self.left)

    def __call__(self) -> float:
        return self.left


def test_a_capacity_outage_with_many_pending_jobs_starves_no_other_step(launcher):
    launcher.github.add_delivery("lost-guid", status_code=502)
    run = launcher.github.add_workflow_run(ROOT, status="completed", conclusion="failure")
    _, made = launcher(queued(60, run_id=run.id))
    event = load_event("spot-interruption.json")
    event["detail"]["instance-id"] = made["instances"][0]["id"]
    launcher.module.lambda_handler(event, LambdaContext())
    launcher(finished(60, conclusion="failure", run_id=run.id))
    no_capacity(launcher)
    for job in range(61, 69):
        launcher(queued(job, created_at=datetime.now(UTC) - timedelta(minutes=20)))

    summary = run_pass(time_left=Stopwatch(30.0))

    assert summary["redelivered"] == 1 and summary["reruns"] == 1
    assert summary["failed_visibly"] == 8  # every pending job past its 15 minutes is told why
    assert summary["created"] == 0


def test_a_create_the_pass_starts_stops_rolled_back_before_the_invocations_end(launcher, look):
    no_capacity(launcher)
    launcher(queued(70))
    launcher.capacity.restore()
    clock = Stopwatch(21.0, cost=lambda operation: 10.0 if operation == "CreateKeyPair" else 1.0)  # a slow call

    summary = run_pass(time_left=clock)

    assert summary["created"] == 0 and clock.lowest > 0
    assert inventory(look, REGION) == NOTHING and launcher.github.runner_names(ROOT) == set()
    assert run_pass()["created"] == 1  # still pending, and served by the next pass


def test_profiles_that_cannot_be_read_are_one_jobs_failure_not_the_passs(launcher, look):
    no_capacity(launcher)
    launcher(queued(71))
    launcher.capacity.restore()
    launcher.env("PROFILES", "ssm:/ec2-sessions/profiles-nobody-wrote")

    summary = run_pass()

    assert summary["pending"] == 1 and summary["created"] == 0
    assert run_pass()["pending"] == 1  # still waiting for its profiles


def test_a_pending_job_whose_repository_left_the_allow_list_gets_no_machine(launcher, look):
    no_capacity(launcher)
    launcher(queued(72))
    launcher.capacity.restore()
    launcher.env("GITHUB_REPOSITORIES", "someone-else/*")

    summary = run_pass()

    assert (summary["dropped"], summary["created"]) == (1, 0) and sessions_of(look, 72) == set()


def test_a_pending_job_whose_label_is_no_longer_the_stacks_gets_no_machine(launcher, look):
    launcher.env("PROFILES", "")
    launcher.env("LAUNCH_TEMPLATE_ID", make_launch_template(look, name="legacy"))
    no_capacity(launcher)
    launcher(queued(73))
    launcher.capacity.restore()
    launcher.env("GITHUB_LABEL", "another-label")

    summary = run_pass()

    assert (summary["dropped"], summary["created"]) == (1, 0) and sessions_of(look, 73) == set()


def test_an_interrupted_job_is_re_run_once_however_many_completed_deliveries_come(launcher):
    run = launcher.github.add_workflow_run(ROOT, status="completed", conclusion="failure")
    _, made = launcher(queued(74, run_id=run.id))
    event = load_event("spot-interruption.json")
    event["detail"]["instance-id"] = made["instances"][0]["id"]
    launcher.module.lambda_handler(event, LambdaContext())

    launcher(finished(74, conclusion="failure", run_id=run.id, delivery="c-1"))
    first = run_pass()
    run.status, run.conclusion = "completed", "failure"  # the re-run ran, and failed on its own
    launcher(finished(74, conclusion="failure", run_id=run.id, delivery="c-2"))  # another hook, a redelivery
    second = run_pass(datetime.now(UTC) + timedelta(minutes=6))

    assert (first["reruns"], second["reruns"]) == (1, 0)
    assert len(launcher.github.reruns) == 1


def test_a_redelivery_github_failed_is_asked_again_on_the_next_pass(launcher):
    lost = launcher.github.add_delivery("lost-guid", status_code=502)
    launcher.github.fail(times=3, status=502, route="redeliver-webhook-delivery")  # the client's retries too

    first = run_pass()
    second = run_pass(datetime.now(UTC) + timedelta(minutes=5))

    assert (first["redelivered"], second["redelivered"]) == (0, 1)
    assert launcher.github.redeliveries == [lost.id]


def test_a_job_a_redelivery_took_after_its_profile_came_is_retried_when_that_create_dies(launcher, look):
    from sessions import ledger_of

    launcher(queued(75, labels=[*LABELS, "gpu"]))  # no profile: unmatched, told
    run_pass()
    gpu = {"labels": ["ec2-session", "gpu"], "launch_template_id": make_launch_template(look, name="gpu")}
    launcher.env("PROFILES", json.dumps({"gpu": gpu}))  # the operator adds its profile
    now = datetime.now(UTC)
    assert ledger_of(load_launcher()).take("github", "75", now)  # a redelivery takes it... and its Lambda dies

    summary = run_pass(now + timedelta(minutes=3))  # once its lease has lapsed

    assert summary["created"] == 1 and len(sessions_of(look, 75)) == 1


def test_a_catch_up_longer_than_a_pass_is_cut_and_says_so(launcher, monkeypatch, caplog):
    monkeypatch.setattr(reconcile, "LISTING_PAGES", 1)
    for n in range(101):
        launcher.github.add_delivery(f"guid-{n}", status_code=200, ago=60 + n)

    summary = run_pass()

    assert summary["cut_short"] is None and "deliveries listed in part" in caplog.text


def test_an_interrupted_jobs_re_run_github_failed_is_asked_again_and_once(launcher):
    run = launcher.github.add_workflow_run(ROOT, status="completed", conclusion="failure")
    _, made = launcher(queued(76, run_id=run.id))
    event = load_event("spot-interruption.json")
    event["detail"]["instance-id"] = made["instances"][0]["id"]
    launcher.module.lambda_handler(event, LambdaContext())
    launcher(finished(76, conclusion="failure", run_id=run.id))
    launcher.github.fail(times=3, status=502, route="rerun-failed-jobs")  # the client's two retries too

    passes = [run_pass(datetime.now(UTC) + timedelta(minutes=m)) for m in (0, 6, 12)]

    assert [p["reruns"] for p in passes] == [0, 1, 0] and len(launcher.github.reruns) == 1


# ---- interruptions, caps, rollbacks -------------------------------------------------------------


def test_an_interruption_releases_its_session_even_when_the_job_table_fails(launcher, look):
    _, made = launcher(queued(80))
    # An error botocore does not retry (a 5xx would be retried, with real back-off, before it surfaced).
    Faults().inject(clients.client("dynamodb", REGION), "UpdateItem", "AccessDeniedException")
    event = load_event("spot-interruption.json")
    event["detail"]["instance-id"] = made["instances"][0]["id"]

    with pytest.raises(Exception, match="AccessDenied"):
        launcher.module.lambda_handler(event, LambdaContext())

    assert made["session"] not in inventory(look, REGION)["key_pair"]  # released first, recorded after


def test_the_breakers_item_holds_only_its_windows_interruptions(launcher):
    from session_naming.settings import load_launcher
    from sessions import breaker_of

    breaker = breaker_of(load_launcher())
    start = datetime.now(UTC)
    for hour in range(6):  # one interruption every 40 minutes: never three within half an hour
        breaker.record("small", start + timedelta(minutes=40 * hour), f"i-{hour:017x}")

    item = clients.client("dynamodb", REGION).get_item(
        TableName=load_launcher().idempotency_table, Key={"id": {"S": "spot#small"}}
    )["Item"]
    assert len(item["window"]["M"]) == 1
    assert not breaker.is_open("small", start + timedelta(minutes=201))


def test_ten_racing_creates_against_caps_of_three_make_exactly_three(launcher, look):
    from tests.support.function_url import answer, url_event
    from tests.support.handlers import load_handler

    template = make_launch_template(look, name="capped")
    launcher.env("MAX_LIVE_SESSIONS", "3")  # the base's cap and the profile's, both tight
    launcher.env(
        "PROFILES",
        json.dumps({"small": {"labels": ["ec2-session"], "launch_template_id": template, "max_live": 3}}),
    )
    barrier, answers = threading.Barrier(10), []

    def one(container):
        event = url_event("POST", "/sessions", {"instance": True, "profile": "small"})
        barrier.wait()
        answers.append(answer(container.lambda_handler(event, LambdaContext())))

    threads = [threading.Thread(target=one, args=(load_handler("launcher"),)) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(status for status, _ in answers) == [201] * 3 + [429] * 7
    assert len(inventory(look, REGION)["instance"]) == 3


def test_a_create_whose_fleet_answer_was_lost_terminates_the_instance_it_started(launcher, look):
    launcher.env("MAX_LIVE_SESSIONS", "1")  # one slot: the retry below gets it only if the lost create freed it
    Faults().inject(clients.client("ec2", REGION), "CreateFleet", "lost", times=1)

    status, _ = launcher(queued(81))

    assert status == 500
    assert inventory(look, REGION)["instance"] == set()  # the instance nobody was told of is gone
    assert launcher(queued(81, delivery="retried"))[0] == 201  # its slots were freed
