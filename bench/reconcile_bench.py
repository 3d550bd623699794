"""Measure 7: the reconcile pass reads what waits, not the job table, and stays within its time budget.

Everything goes through the launcher's own code in this process, on its
shared clients under the latency model (20 ms per AWS call, as long per
GitHub call to the fake GitHub on loopback), with the fake's App:

1. **Items read.** 1,000 job records made through the ledger
   (``jobs.JobLedger``): 700 served (``claim``, ``settle``), 287 over
   (``claim``, ``end``), 10 pending (``claim``, ``pend``: five of them queued
   20 minutes ago) and 3 that no profile matched (``unserved``, waiting for
   their check run); three failed ``workflow_job`` deliveries wait on the
   fake GitHub. One pass must read about the 10 pending (``items_read`` ÷
   ``pending`` <= 1.5), serve them, and make GitHub calls in proportion to
   what it does: one deliveries page, one redelivery per lost delivery, one
   check run per unmatched job (the summary's ``github_calls``), and, seen by
   the fake, one runner registration per job served plus at most one
   installation token. A second pass with nothing to do makes one call.
2. **500 pending.** 500 jobs pending at once, and a pass given 10 s of real
   time (``time_left``): it must stop by itself (``cut_short: "time"``)
   within the budget, and a second pass must resume where it stopped (the
   pending count goes down across passes; nothing is served twice).

GitHub's one-second spacing of writes is left out (``write_interval = 0``,
as in the GitHub bench); in production every runner registration, runner
delete, check run and redelivery waits for it, which the details say.
"""

from __future__ import annotations

import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta

from aws import factory
from github_bench import SlowPool
from jobs import JobLedger
from payloads import WorkflowJobDelivery
from report import Row
from session_naming import clients
from session_naming import github as github_module
from session_naming.settings import load_launcher
from throttle import Model

from tests.support.deliveries import workflow_job
from tests.support.github_fake import GitHubFake
from tests.support.stack import make_launch_template
from tools.local_stack import make_launcher_stack

REGION = "eu-central-1"  # its own: no other measure's jobs, sessions or table (scale seeds ap-southeast-2)
SECRET = "BenchWebhookSecret0123456789abcdefghijklmnopqr"  # noqa: S105 (the bench's own moto secret)
RECORDS, PENDING, UNMATCHED, LOST = 1000, 10, 3, 3
MANY_PENDING = 500
BUDGET_SECONDS = 30.0  # as in Lambda: a create starts only while 20 s are left
LABELS = ["self-hosted", "ec2-session"]


def essentials(job: int, created_at: datetime, labels=LABELS) -> dict:
    """What the ledger keeps of a ``queued`` delivery (``github_jobs.essentials``)."""
    from github_jobs import essentials as keep

    payload = workflow_job("queued", job, labels=labels, created_at=created_at)
    return keep(WorkflowJobDelivery.model_validate(payload))


def make_records(ledger, now: datetime, first: int, served: int, over: int, pending: int, old: int = 0) -> None:
    """Jobs ``first``... through the ledger: served, then over, then pending (the first ``old`` of them 20 min old)."""

    def one(i: int) -> None:
        job = str(first + i)
        kind = "served" if i < served else "over" if i < served + over else "pending"
        created = now - timedelta(minutes=20) if kind == "pending" and i - served - over < old else now
        ledger.claim("github", job, now, essentials(first + i, created))
        if kind == "served":
            ledger.settle("github", job, {"session": f"bench/{job}", "instances": []})
        elif kind == "over":
            ledger.end("github", job, now)
        else:
            ledger.pend("github", job, "no_capacity", now, created)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, range(served + over + pending)))


def waiting_count(db, table: str, queue: str, now: datetime) -> int:
    """How many items of ``queue`` are due, counted by an onlooker (a query of the index, ``COUNT``)."""
    count, start = 0, None
    while True:
        request = {
            "TableName": table,
            "IndexName": "due",
            "KeyConditionExpression": "awaiting = :q AND due_at <= :now",
            "ExpressionAttributeValues": {":q": {"S": queue}, ":now": {"N": str(int(now.timestamp()))}},
            "Select": "COUNT",
        }
        if start:
            request["ExclusiveStartKey"] = start
        page = db.query(**request)
        count += page["Count"]
        start = page.get("LastEvaluatedKey")
        if not start:
            return count


def measure(latency: float, log) -> tuple[list[Row], list[str]]:
    import reconcile

    saved_pool = github_module.default_pool
    with GitHubFake() as fake:
        fake.install("Codertocat")
        look = factory()
        stack = make_launcher_stack(look, SECRET, REGION)
        template = make_launch_template(look, REGION)
        env = {
            **stack,
            "MAX_LIVE_SESSIONS": "2000",
            "GITHUB_APP_SECRET_ARN": fake.app_secret(look("secretsmanager", REGION), "bench-reconcile-app"),
            "GITHUB_API_URL": fake.url,
            "GITHUB_REPOSITORIES": "codertocat/*",
            "PROFILES": json.dumps({"small": {"labels": ["ec2-session"], "launch_template_id": template}}),
        }
        settings = load_launcher(env)
        clients.reset()
        github_module.reset()
        github_module.default_pool = lambda pool=SlowPool(latency): pool
        model = Model(latency=latency, throttle=False)
        for service in ("ec2", "ssm", "dynamodb", "secretsmanager"):
            model.install(clients.client(service, REGION))
        app = github_module.configured_app(settings.github, clients.client("secretsmanager", REGION))
        app.write_interval = 0.0
        table, db = settings.idempotency_table, look("dynamodb", REGION)
        ledger = JobLedger(db, table)  # an onlooker's, outside the model: the records are set-up, not measured

        # 1. Items read: 1,000 records, 10 pending.
        now = datetime.now(UTC)
        log(f"reconcile: {RECORDS} job records through the ledger, {PENDING} pending, {UNMATCHED} unmatched")
        made = time.perf_counter()
        served, over = 700, RECORDS - 700 - PENDING - UNMATCHED
        make_records(ledger, now, 1, served, over, PENDING, old=5)
        for i in range(UNMATCHED):
            job = RECORDS - UNMATCHED + 1 + i
            labels = [*LABELS, "gpu"]
            ledger.unserved("github", str(job), essentials(job, now, labels), "no_profile", now)
        for i in range(LOST):
            fake.add_delivery(f"bench-lost-{i}", status_code=502, ago=60 + i)
        fake.add_delivery("bench-fine", status_code=200, ago=30)
        log(f"reconcile: records made in {time.perf_counter() - made:.1f} s; one pass, then another")
        fake.calls.clear(), fake.counts.clear()
        with redirect_stdout(io.StringIO()):
            first = reconcile.reconcile(settings, now, lambda: 25.0)
            seen_first = dict(fake.counts)
            fake.calls.clear(), fake.counts.clear()
            second = reconcile.reconcile(settings, now + timedelta(seconds=1), lambda: 25.0)
            seen_second = dict(fake.counts)
        mints = seen_first.get("create-installation-token", 0)
        expected_summary = 1 + first["redelivered"] + first["failed_visibly"]
        expected_seen = expected_summary + first["created"] + mints
        ratio = first["items_read"] / max(first["pending"], 1)
        calls_ok = (
            first["github_calls"] == expected_summary
            and sum(seen_first.values()) == expected_seen
            and mints <= 1
            and sum(seen_second.values()) == 1 + seen_second.get("create-installation-token", 0)
        )
        rows = [
            Row(
                "reconcile: items read per pending job (1,000 records, 10 pending)",
                f"{first['items_read']} read for {first['pending']} pending ({first['created']} served)",
                "<= 1.5x",
                ratio,
                ratio <= 1.5 and first["pending"] == PENDING and first["created"] == PENDING,
            ),
            Row(
                "reconcile: GitHub calls per pass",
                f"{first['github_calls']} (1 page + {first['redelivered']} redeliveries + "
                f"{first['failed_visibly']} check runs); fake saw {sum(seen_first.values())}, next pass "
                f"{second['github_calls']}/{sum(seen_second.values())}",
                "= 1 + work",
                None,
                calls_ok,
            ),
        ]
        details = [
            f"reconcile: first pass {first}",
            f"reconcile: GitHub calls the fake saw, first pass {seen_first}; second pass {seen_second}",
            f"reconcile: second pass {second}",
            "reconcile: the summary's github_calls leaves out the runner registrations of the jobs a pass "
            "serves and the installation-token mints (the fake counts them); in production each GitHub "
            "write of a pass (registration, runner delete on a failed retry, check run, redelivery) also "
            "waits GitHub's 1 s write spacing",
        ]

        # 2. 500 pending, a 30 s budget (a create starts only while 20 s are left), two passes.
        log(f"reconcile: {MANY_PENDING} pending jobs, passes of {BUDGET_SECONDS:g} s real time")
        later = datetime.now(UTC)
        make_records(ledger, later, 100_000, 0, 0, MANY_PENDING)
        before = waiting_count(db, table, "pending", later)
        passes, counts = [], [before]
        with redirect_stdout(io.StringIO()):
            for turn in range(2):
                start = time.monotonic()
                summary = reconcile.reconcile(
                    settings,
                    later + timedelta(seconds=turn),
                    lambda start=start: BUDGET_SECONDS - (time.monotonic() - start),
                )
                passes.append((summary, time.monotonic() - start))
                counts.append(waiting_count(db, table, "pending", later + timedelta(seconds=turn + 1)))
        reconcile.metrics.clear_metrics()
        longest = max(seconds for _, seconds in passes)
        resumed = counts[0] > counts[1] > counts[2] and all(s["cut_short"] == "time" for s, _ in passes)
        rows.append(
            Row(
                f"reconcile: 500 pending, pass within a {BUDGET_SECONDS:g} s budget",
                f"{longest:.1f} s of {BUDGET_SECONDS:g} s, cut_short time; pending "
                + " -> ".join(map(str, counts))
                + f" over {len(passes)} passes",
                "<= 1.0x",
                longest / BUDGET_SECONDS,
                longest <= BUDGET_SECONDS and resumed,
            )
        )
        details += [
            f"reconcile: 500 pending, pass {i + 1} in {seconds:.1f} s: {summary}"
            for i, (summary, seconds) in enumerate(passes)
        ]
    github_module.default_pool = saved_pool
    github_module.reset()
    clients.reset()
    return rows, details
