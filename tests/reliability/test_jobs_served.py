"""A stateful model of GitHub jobs: no job left queued silently, no session deleted while its job runs.

Hypothesis drives random sequences of: jobs queued (their delivery reaching
the launcher, or lost on the way), EC2 capacity running out and coming
back, a runner taken by another job with the same labels (``in_progress``
on someone else's runner), jobs completing, the clock moving, and reconcile
passes (after which GitHub redelivers what the pass asked for, as GitHub
does). Against moto over HTTP (with capacity faults) and the fake GitHub.

After every step: no session of a job that has not completed is gone (0
wrongful deletions). At the end, with capacity back and the passes run,
every queued job has a session or a failing check run on its commit, and
once every job has completed and the collector has swept, nothing is left
(0 leaks).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import github_jobs
import reconcile
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from session_naming import GITHUB_JOB_TAG, SessionName, clients
from session_naming import github as github_client
from session_naming.github import runner_name
from session_naming.settings import load_collector, load_launcher
from sweep import sweep

from tests.reliability.conftest import examples
from tests.reliability.tally import TALLY
from tests.support.capacity import Capacity
from tests.support.deliveries import workflow_job
from tests.support.github_fake import GitHubFake
from tests.support.seed import inventory
from tests.support.stack import REGION, make_launch_template
from tools.local_stack import make_launcher_stack

ROOT = "repos/codertocat/hello-world"
JOBS = range(1, 6)


class Jobs(RuleBasedStateMachine):
    def __init__(self, account):
        super().__init__()
        TALLY.add(examples=1)
        account.reset()
        github_client.reset()
        self.look = account.clients
        self.github = github = GitHubFake().__enter__()  # a GitHub of its own: each example starts clean
        github.install("Codertocat")
        template = make_launch_template(self.look)
        stack = make_launcher_stack(self.look, "JobsWebhookSecret0123456789abcdefghijklmnopqrs", REGION)
        profiles = {"small": {"labels": ["ec2-session"], "launch_template_id": template, "market": "spot-first"}}
        self.settings = load_launcher(
            {
                **stack,
                "SESSION_BASES": "ec2-test-runner",
                "PROFILES": json.dumps(profiles),
                "GITHUB_APP_SECRET_ARN": github.app_secret(self.look("secretsmanager", REGION), name="app"),
                "GITHUB_API_URL": github.url,
                "MAX_LIVE_SESSIONS": "2000",
            }
        )
        self.capacity = Capacity.on(clients.client("ec2", REGION))
        self.now = datetime.now(UTC)
        self.queued: dict[int, dict] = {}  # job -> its queued payload (sent or lost)
        self.completed: set[int] = set()
        self.lost: dict[str, int] = {}  # delivery guid -> job
        self.redelivered = 0

    # ---- rules -----------------------------------------------------------------------------

    @rule(job=st.sampled_from(JOBS), lost=st.booleans())
    def job_queued(self, job, lost):
        if job in self.queued:
            return
        self.queued[job] = workflow_job("queued", job, labels=["self-hosted", "ec2-session"], now=self.now)
        if lost:  # GitHub tried and failed: it shows in the App's deliveries, and never comes again by itself
            guid = f"guid-{job}"
            self.github.add_delivery(guid, status_code=502, ago=0)
            self.lost[guid] = job
            TALLY.add(faults=1)
            return
        self._deliver(job)

    def _deliver(self, job):
        body = json.dumps(self.queued[job]).encode()
        try:
            status, answer = github_jobs.handle(self.settings, "workflow_job", body, self.now)
        except Exception:  # noqa: BLE001 - a 5xx to GitHub: the job waits for the pass
            return
        assert status in (200, 201, 202), (status, answer)

    @rule(gone=st.booleans())
    def capacity_changes(self, gone):
        if gone:
            TALLY.add(faults=1)
            self.capacity.exhaust("spot")
            self.capacity.exhaust("on-demand")
        else:
            self.capacity.restore()

    @precondition(lambda self: len(self.running()) >= 2)
    @rule(pick=st.integers(0, 10**6))
    def runner_taken(self, pick):
        """Job B starts on the runner of job A's session (a stolen runner)."""
        jobs = sorted(self.running())
        thief, victim = jobs[pick % len(jobs)], jobs[(pick + 1) % len(jobs)]
        sessions = self.sessions_of(victim)
        if not sessions:
            return
        runner = runner_name(SessionName(sorted(sessions)[0]))
        payload = workflow_job(
            "in_progress", thief, labels=["self-hosted", "ec2-session"], runner_name=runner, now=self.now
        )
        status, _ = github_jobs.handle(self.settings, "workflow_job", json.dumps(payload).encode(), self.now)
        assert status == 200
        TALLY.add(faults=1)

    @precondition(lambda self: set(self.queued) - self.completed)
    @rule(pick=st.integers(0, 10**6))
    def job_completed(self, pick):
        open_jobs = sorted(set(self.queued) - self.completed)
        job = open_jobs[pick % len(open_jobs)]
        payload = workflow_job("completed", job, labels=["self-hosted", "ec2-session"], now=self.now)
        status, _ = github_jobs.handle(self.settings, "workflow_job", json.dumps(payload).encode(), self.now)
        assert status == 200
        self.completed.add(job)

    @rule(minutes=st.integers(1, 30))
    def clock_moves(self, minutes):
        self.now += timedelta(minutes=minutes)

    @rule()
    def reconcile_pass(self):
        summary = reconcile.reconcile(self.settings, self.now, lambda: 25.0)
        assert summary["cut_short"] is None
        self._github_redelivers()

    def _github_redelivers(self):
        """GitHub sends again each delivery the pass asked it to (the fake records the ask)."""
        asked = self.github.redeliveries[self.redelivered :]
        self.redelivered = len(self.github.redeliveries)
        by_id = {d.id: d.guid for d in self.github.deliveries}
        for ident in asked:
            job = self.lost.get(by_id.get(ident, ""))
            if job is not None:
                self._deliver(job)

    # ---- what must hold ---------------------------------------------------------------------

    def running(self) -> set[int]:
        return set(self.queued) - self.completed

    def sessions_of(self, job: int) -> set[str]:
        tagged = self.look("ec2", REGION).describe_key_pairs(
            Filters=[{"Name": f"tag:{GITHUB_JOB_TAG}", "Values": [str(job)]}]
        )
        return {k["KeyName"] for k in tagged["KeyPairs"]}

    @invariant()
    def no_session_of_a_running_job_is_gone(self):
        have = inventory(self.look, REGION)
        TALLY.add(checks=1)
        for job in self.running():
            for session in self.sessions_of(job):
                missing = [kind for kind in ("key_pair", "security_group") if session not in have[kind]]
                TALLY.add(wrongful_deletions=len(missing))
                assert not missing, (job, session, missing)

    def teardown(self):
        if not hasattr(self, "queued"):
            return
        self.capacity.restore()
        for _ in range(3):  # passes until every job is served or told why (redeliveries included)
            self.now += timedelta(minutes=16)
            reconcile.reconcile(self.settings, self.now, lambda: 25.0)
            self._github_redelivers()
        told = " ".join(c["output"]["summary"] for c in self.github.check_runs.get(ROOT, []))
        for job in self.running():
            assert self.sessions_of(job) or f"Job {job} " in told, f"job {job} left queued silently"
        while self.running():
            self.job_completed(0)
        expired = self.now + timedelta(days=2)
        sweep(self.look, load_collector({"REGIONS": REGION, "GRACE_SECONDS": "300"}), expired, lambda: 900.0, False)
        left = inventory(self.look, REGION)
        leaked = sum(len(names) for kind, names in left.items() if kind != "launch_template")
        TALLY.add(leaked=leaked)
        self.github.__exit__(None, None, None)
        assert leaked == 0, left


def test_every_queued_job_is_served_or_told_why_and_no_running_jobs_session_is_deleted(account):
    run_state_machine_as_test(lambda: Jobs(account), settings=examples(4, stateful_step_count=15))
