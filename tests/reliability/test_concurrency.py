"""The race that started this project, over HTTP against a moto server, both ways.

Twenty launcher invocations (through the handler, with signed Function URL
events) and two collector runs go at once. The collectors' clock is set so
the sessions' expiries straddle it. Then the same twenty jobs follow the old
ec2test recipe (one static name, delete-then-create) to show the clobbering
that session names prevent.
"""

from __future__ import annotations

import contextlib
import threading
import time
from datetime import UTC, datetime, timedelta

from session_naming import SessionName
from session_naming.settings import load_collector
from sweep import sweep

from tests.reliability.tally import TALLY
from tests.support.clients import client_factory
from tests.support.function_url import SECRET, answer, url_event
from tests.support.handlers import LambdaContext, load_handler
from tests.support.seed import inventory
from tests.support.stack import REGION, make_launcher_stack

BASE = "ec2-test-runner"
JOBS = 20
LIFETIMES = [5, 6, 7, 8]  # minutes: with grace 300 s, 5 and 6 fall due at the sweep time below, 7 and 8 do not


def run_together(targets):
    barrier = threading.Barrier(len(targets))
    errors = []

    def wrap(target):
        def go():
            barrier.wait()
            try:
                target()
            except Exception as error:  # surfaced below, with the others
                errors.append(error)

        return go

    threads = [threading.Thread(target=wrap(t)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_twenty_launches_and_two_sweeps_at_once_keep_every_live_session_and_remove_every_due_one(aws, monkeypatch):
    look = client_factory()
    for key, value in {"SESSION_BASES": BASE, **make_launcher_stack(look, SECRET)}.items():
        monkeypatch.setenv(key, value)
    start = datetime.now(UTC)
    sweep_at = start + timedelta(minutes=6, seconds=300) + timedelta(seconds=30)
    settings = load_collector({"SESSION_BASES": BASE, "REGIONS": REGION, "GRACE_SECONDS": "300"})
    answers, summaries = [], []

    def launcher(minutes):
        # One handler module per job: concurrent Lambda invocations run in separate
        # containers, and a container holds one request at a time (Loggers of one service share their keys).
        handler = load_handler("launcher")
        event = url_event("POST", "/sessions", {"lifetime_minutes": minutes})
        return lambda: answers.append((minutes, answer(handler.lambda_handler(event, LambdaContext()))))

    def collector():
        summaries.append(sweep(client_factory(aws_rules=True), settings, sweep_at, lambda: 900.0, False))

    errors = run_together([launcher(LIFETIMES[i % 4]) for i in range(JOBS)] + [collector, collector])
    assert errors == []
    assert datetime.now(UTC) - start < timedelta(seconds=30)  # else the 6-minute sessions were not yet due

    live = {body["session"] for minutes, (status, body) in answers if minutes >= 7 and status == 201}
    assert [status for minutes, (status, _) in answers if minutes >= 7] == [201] * (JOBS // 2)
    assert all(status in (201, 500) for _, (status, _) in answers)  # a due session may lose a race with the sweep
    for summary in summaries:
        assert summary["totals"]["failed"] == 0, summary
    have = inventory(look, REGION)
    missing = [
        (kind, name) for name in live for kind in ("parameter", "key_pair", "security_group") if name not in have[kind]
    ]
    TALLY.add(wrongful_deletions=len(missing), checks=1, examples=1)
    swept = {n for s in summaries for kinds in s["regions"].values() for r in kinds.values() for n in r["deleted"]}
    assert missing == [], {"deleted by a collector": sorted(live & swept), "missing": missing}

    sweep(client_factory(aws_rules=True), settings, sweep_at, lambda: 900.0, False)  # one more, after the launches
    have = inventory(look, REGION)
    due = [
        (kind, n)
        for kind, names in have.items()
        for n in names
        if SessionName.parse(n).is_expired(sweep_at, timedelta(seconds=300))
    ]
    TALLY.add(leaked=len(due), checks=1)
    assert due == []
    assert live <= have["key_pair"] & have["security_group"] & have["parameter"]
    for minutes, (_, body) in answers:
        if minutes >= 7:
            assert body["key_pair"]["id"] in {
                k["KeyPairId"] for k in look("ec2", REGION).describe_key_pairs()["KeyPairs"]
            }


STATIC = "ec2-test-runner"


def old_ec2test_setup(ec2, results, delay):
    """The recipe every job ran before session names: replace whatever carries the static name."""
    time.sleep(delay)  # CI jobs start close together, not in lock-step
    outcome = {}
    try:
        with contextlib.suppress(ec2.exceptions.ClientError):
            ec2.delete_key_pair(KeyName=STATIC)
        outcome["key"] = ec2.create_key_pair(KeyName=STATIC, KeyType="ed25519")["KeyPairId"]
        with contextlib.suppress(ec2.exceptions.ClientError):
            ec2.delete_security_group(GroupName=STATIC)
        outcome["group"] = ec2.create_security_group(GroupName=STATIC, Description="old")["GroupId"]
    except ec2.exceptions.ClientError as error:
        outcome["error"] = error.response["Error"]["Code"]
    results.append(outcome)


def test_the_old_static_name_leaves_at_most_one_of_twenty_concurrent_jobs_unharmed(aws):
    results = []
    jobs = [client_factory()("ec2", REGION) for _ in range(JOBS)]

    errors = run_together(
        [lambda ec2=ec2, i=i: old_ec2test_setup(ec2, results, i * 0.03) for i, ec2 in enumerate(jobs)]
    )

    assert errors == []
    ec2 = client_factory()("ec2", REGION)
    surviving_keys = {k["KeyPairId"] for k in ec2.describe_key_pairs()["KeyPairs"]}
    surviving_groups = {g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]}
    # A job is clobbered when something it made is gone, whether or not a later step failed.
    clobbered = [
        r
        for r in results
        if ("key" in r and r["key"] not in surviving_keys) or ("group" in r and r["group"] not in surviving_groups)
    ]
    unharmed = [r for r in results if r not in clobbered and "error" not in r]
    TALLY.add(examples=1, checks=1)
    # One name holds one key pair: at most one job still has what it made; the rest
    # had theirs deleted under them by a later job, or failed on a duplicate.
    assert len(results) == JOBS and len(surviving_keys) == 1
    assert len(unharmed) <= 1


def test_twenty_concurrent_creates_at_the_limit_make_exactly_the_limit_and_leave_nothing_else(aws, monkeypatch):
    """Each racer holds its key pair and group while it takes its slot; a conditional write on the
    base's slot item lets exactly MAX_LIVE_SESSIONS through, and every refused racer rolls back."""
    look = client_factory()
    for key, value in {"SESSION_BASES": BASE, "MAX_LIVE_SESSIONS": "5", **make_launcher_stack(look, SECRET)}.items():
        monkeypatch.setenv(key, value)
    answers = []

    def racer():
        handler = load_handler("launcher")  # a container each
        event = url_event("POST", "/sessions", {"lifetime_minutes": 60})
        return lambda: answers.append(answer(handler.lambda_handler(event, LambdaContext())))

    errors = run_together([racer() for _ in range(JOBS)])

    assert errors == []
    statuses = sorted(status for status, _ in answers)
    assert statuses == [201] * 5 + [429] * (JOBS - 5), statuses
    made = {body["session"] for status, body in answers if status == 201}
    have = inventory(look, REGION)
    assert have["key_pair"] == have["security_group"] == have["parameter"] == made
