"""The job ledger's rules, against moto's DynamoDB: one session per GitHub job, ends that win, lapsed claims."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest
from errors import JobBusy, JobOver
from jobs import CLAIM_LEASE, JobLedger
from moto import mock_aws

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture
def ledger():
    with mock_aws():
        db = boto3.client("dynamodb", region_name="us-east-1")
        db.create_table(
            TableName="t",
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield JobLedger(db, "t")


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
