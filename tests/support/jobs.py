"""GitHub jobs against a launcher with the fake GitHub's App: deliveries, reconcile passes, what a job holds.

Shared by the suites that drive jobs through queued, passes and completed
(``tests/integration/test_reconcile.py``, ``test_jobs_as_github_sends_them.py``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import reconcile
from session_naming import GITHUB_JOB_TAG, clients
from session_naming.settings import load_launcher

from tests.support.capacity import Capacity
from tests.support.deliveries import github_event, workflow_job
from tests.support.stack import REGION, make_launch_template

ROOT = "repos/codertocat/hello-world"  # the sample deliveries' repository, as the fake keys it


def with_app(launcher, look, github_fake):
    """The launcher with the fake GitHub's App (installed on Codertocat), one spot-first profile ``small`` for the
    label alone, and EC2 capacity a test can take away (``launcher.capacity``)."""
    github_fake.install("Codertocat")
    launcher.env("GITHUB_APP_SECRET_ARN", github_fake.app_secret(look("secretsmanager", REGION)))
    launcher.env("GITHUB_API_URL", github_fake.url)
    template = make_launch_template(look)
    launcher.env(
        "PROFILES",
        json.dumps({"small": {"labels": ["ec2-session"], "launch_template_id": template, "market": "spot-first"}}),
    )
    launcher.github = github_fake
    launcher.capacity = Capacity().attach(clients.client("ec2", REGION))
    return launcher


def queued(job, *, created_at=None, delivery=None, labels=("self-hosted", "ec2-session"), **fields):
    payload = workflow_job("queued", job, labels=labels, created_at=created_at, **fields)
    return github_event(payload, delivery or f"q-{job}")


def finished(job, conclusion="success", *, delivery=None, **fields):
    payload = workflow_job("completed", job, labels=["self-hosted", "ec2-session"], conclusion=conclusion, **fields)
    return github_event(payload, delivery or f"c-{job}")


def run_pass(now=None, time_left=lambda: 25.0):
    return reconcile.reconcile(load_launcher(), now or datetime.now(UTC), time_left)


def no_capacity(launcher):
    launcher.capacity.exhaust("spot")
    launcher.capacity.exhaust("on-demand")


def sessions_of(look, job):
    """The sessions whose key pair carries the job's tag."""
    tagged = look("ec2", REGION).describe_key_pairs(Filters=[{"Name": f"tag:{GITHUB_JOB_TAG}", "Values": [str(job)]}])
    return {k["KeyName"] for k in tagged["KeyPairs"]}
