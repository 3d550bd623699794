"""The job ledger's rules, against moto's DynamoDB: one session per GitHub job, ends that win, lapsed claims."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest
from breaker import SpotBreaker
from errors import JobBusy, JobOver
from jobs import CLAIM_LEASE, PENDING, RERUN, JobLedger
from moto import mock_aws

from tools.local_stack import TABLE, make_launcher_stack

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture
def table():
    """The stack's job table, with its index of waiting jobs, as tools/local_stack.py makes it."""
    with mock_aws():
        db = boto3.client("dynamodb", region_name="us-east-1")
        make_launcher_stack(lambda service, region: boto3.client(service, region_name=region), "s")
        yield db


@pytest.fixture
def ledger(table):
    return JobLedger(table, TABLE)


def waiting(ledger, queue, now):
    return [item["id"]["S"] for item in ledger.due(queue, now)[0]]


def test_a_claimed_job_waits_in_the_index_until_served_and_a_failed_one_until_its_next_turn(ledger):
    delivery = {"workflow_job": {"id": 1}}
    ledger.claim("github", "1", NOW, delivery)
    assert waiting(ledger, PENDING, NOW) == []  # being made: due when the claim lapses
    assert waiting(ledger, PENDING, NOW + CLAIM_LEASE) == ["job#github#1"]

    ledger.pend("github", "1", "no_capacity", NOW, NOW - timedelta(minutes=5))
    assert waiting(ledger, PENDING, NOW) == ["job#github#1"]  # young: every pass
    assert ledger.take("github", "1", NOW) and not ledger.take("github", "1", NOW)
    ledger.pend("github", "1", "no_capacity", NOW, NOW - timedelta(hours=2))
    assert waiting(ledger, PENDING, NOW + timedelta(minutes=14)) == []  # older than an hour: every 15 minutes
    assert waiting(ledger, PENDING, NOW + timedelta(minutes=15)) == ["job#github#1"]

    assert ledger.take("github", "1", NOW + timedelta(minutes=15))
    ledger.settle("github", "1", {"session": "s"})
    assert waiting(ledger, PENDING, NOW + timedelta(days=1)) == []


def test_an_ended_job_leaves_the_index_and_a_failed_interrupted_one_waits_for_its_re_run(ledger):
    ledger.claim("github", "1", NOW, {"workflow_job": {"id": 1}})
    ledger.claim("github", "2", NOW, {"workflow_job": {"id": 2}})
    ledger.end("github", "1", NOW)
    ledger.end("github", "2", NOW, rerun={"workflow_job": {"id": 2, "run_id": 5}})

    assert waiting(ledger, PENDING, NOW + timedelta(days=1)) == []
    assert waiting(ledger, RERUN, NOW) == ["job#github#2"]


def test_the_breaker_opens_on_its_threshold_within_half_an_hour_and_closes_half_an_hour_later(table):
    breaker = SpotBreaker(table, TABLE, threshold=3)

    opened = [breaker.record("small", NOW + timedelta(minutes=m), f"i-{m}") for m in (0, 10, 20)]

    assert opened == [False, False, True]
    assert breaker.is_open("small", NOW + timedelta(minutes=49)) and not breaker.is_open("gpu", NOW)
    assert not breaker.is_open("small", NOW + timedelta(minutes=51))


def test_interruptions_spread_over_more_than_half_an_hour_keep_the_breaker_closed(table):
    breaker = SpotBreaker(table, TABLE, threshold=3)

    opened = [breaker.record("small", NOW + timedelta(minutes=m), f"i-{m}") for m in (0, 20, 40, 60)]

    assert opened == [False, False, False, False]


def test_a_job_is_claimed_once_and_later_deliveries_get_its_answer(ledger):
    assert ledger.claim("github", "1", NOW) is None
    with pytest.raises(JobBusy):
        ledger.claim("github", "1", NOW + timedelta(seconds=5))
    ledger.settle("github", "1", {"session": "s"})

    assert ledger.claim("github", "1", NOW + timedelta(days=1)) == {"session": "s"}


def test_a_claim_whose_creator_died_is_taken_over_once_its_lease_lapses(ledger):
    assert ledger.claim("github", "1", NOW) is None  # then the Lambda times out: no settle, no abandon

    assert ledger.claim("github", "1", NOW + CLAIM_LEASE + timedelta(seconds=1)) is None
    with pytest.raises(JobBusy):  # and the new claim is a lease of its own
        ledger.claim("github", "1", NOW + CLAIM_LEASE + timedelta(seconds=2))


def test_an_end_beats_every_claim_and_a_creator_that_settles_late_learns_it(ledger):
    assert ledger.claim("github", "1", NOW) is None
    ledger.end("github", "1", NOW)

    with pytest.raises(JobOver):
        ledger.settle("github", "1", {"session": "s"})
    with pytest.raises(JobOver):
        ledger.claim("github", "1", NOW + CLAIM_LEASE * 10)


def test_the_same_instances_warning_delivered_again_is_counted_once(table):
    breaker = SpotBreaker(table, TABLE, threshold=2)

    assert [breaker.record("small", NOW, "i-1") for _ in range(3)] == [False, False, False]
    assert breaker.record("small", NOW, "i-2") is True


def test_a_job_no_profile_matched_is_served_by_a_redelivery_once_its_profile_exists(ledger):
    ledger.unserved("github", "1", {"workflow_job": {"id": 1}}, "no_profile", NOW)

    assert ledger.claim("github", "1", NOW, {"workflow_job": {"id": 1}}) is None


def test_a_job_that_started_before_its_create_answered_keeps_its_session(ledger):
    ledger.claim("github", "7", NOW, {"workflow_job": {"id": 7}})
    ledger.running("github", "7")  # a hot pool's runner took it within a second: its in_progress came first

    ledger.settle("github", "7", {"session": "s"})  # no JobOver: nothing is released

    assert ledger.claim("github", "7", NOW + timedelta(minutes=5)) == {"session": "s"}


def test_a_job_moved_by_another_delivery_is_not_taken_out_of_its_new_queue(ledger):
    from jobs import SERVED

    ledger.claim("github", "8", NOW, {"workflow_job": {"id": 8}})
    ledger.settle("github", "8", {"session": "s"}, NOW + timedelta(hours=6))
    [served] = ledger.due(SERVED, NOW + timedelta(hours=7))[0]
    ledger.rebind("github", "8", NOW)  # meanwhile its runner was taken: pending again

    assert ledger.leave_index(served) is False  # the pass that read it as served leaves it where it now is
    assert waiting(ledger, PENDING, NOW) == ["job#github#8"]


def test_a_queue_item_two_passes_read_leaves_its_queue_for_one_of_them(ledger):
    ledger.claim("github", "9", NOW, {"workflow_job": {"id": 9}})
    ledger.end("github", "9", NOW, rerun={"workflow_job": {"id": 9, "run_id": 5}})
    [first] = ledger.due(RERUN, NOW)[0]
    [second] = ledger.due(RERUN, NOW)[0]

    assert (ledger.leave_index(first), ledger.leave_index(second)) == (True, False)  # one re-run is asked


def test_an_approved_job_no_profile_matches_is_reported_from_its_waiting_record(ledger):
    from jobs import REPORT

    ledger.wait("github", "10", {"workflow_job": {"id": 10}}, NOW - timedelta(days=2))

    ledger.unserved("github", "10", {"workflow_job": {"id": 10}}, "no_profile", NOW)

    assert waiting(ledger, REPORT, NOW) == ["job#github#10"]


def test_a_re_run_github_keeps_failing_is_given_up_after_five_asks(ledger):
    ledger.claim("github", "11", NOW, {"workflow_job": {"id": 11}})
    ledger.end("github", "11", NOW, rerun={"workflow_job": {"id": 11, "run_id": 5}})
    [item] = ledger.due(RERUN, NOW)[0]

    asked_again = [ledger.retry(item, RERUN, NOW, 5) for _ in range(6)]

    assert asked_again == [True, True, True, True, False, False]  # the first ask and four more
