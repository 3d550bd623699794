"""Every file in events/ runs against its handler, so none goes stale.

The collector's events run as they are; the launcher's are re-signed with
the test stack's secret first (``make sign`` does the same for users).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.clients import client_factory
from tests.support.deliveries import iso
from tests.support.function_url import SECRET, answer
from tests.support.handlers import EVENTS, LambdaContext, load_event, load_handler
from tests.support.seed import name_expiring, seed
from tests.support.stack import make_launch_template
from tools.sign import resign

COLLECTOR_EVENTS = sorted(p.name for p in EVENTS.glob("collector-*.json"))
SCHEDULED = ("launcher-reconcile.json", "spot-interruption.json")  # the launcher's events that are no URL request
LAUNCHER_EVENTS = sorted(p.name for p in EVENTS.glob("launcher-*.json") if p.name not in SCHEDULED)


def test_every_event_file_belongs_to_a_handler():
    assert {p.name for p in EVENTS.glob("*.json")} == {*COLLECTOR_EVENTS, *LAUNCHER_EVENTS, *SCHEDULED}
    assert len(COLLECTOR_EVENTS) == 3 and len(LAUNCHER_EVENTS) == 6


def test_the_reconcile_sample_runs_a_pass_and_answers_its_summary(launcher_stack):
    summary = load_handler("launcher").lambda_handler(load_event("launcher-reconcile.json"), LambdaContext())

    assert {"pending", "created", "dropped", "redelivered", "failed_visibly", "reruns", "cut_short"} <= set(summary)


def test_the_spot_interruption_sample_releases_the_session_of_its_instance(launcher_stack, look, monkeypatch):
    monkeypatch.setenv("LAUNCH_TEMPLATE_ID", make_launch_template(look))
    handler = load_handler("launcher")
    _, made = answer(
        handler.lambda_handler(
            resign(json_body(load_event("launcher-create-session.json"), instance=True), SECRET), LambdaContext()
        )
    )
    event = load_event("spot-interruption.json")
    event["detail"]["instance-id"] = made["instances"][0]["id"]

    result = handler.lambda_handler(event, LambdaContext())

    assert result["released"] == [made["session"]] and result["profile"] == "default"


@pytest.mark.parametrize("name", COLLECTOR_EVENTS)
def test_collector_event_runs_a_sweep(aws, monkeypatch, name):
    monkeypatch.setenv("REGIONS", "us-east-1")
    expired = name_expiring("ec2-test-runner", -timedelta(hours=1), datetime.now(UTC))  # the handler's clock is real
    seed(client_factory(), "us-east-1", expired, kinds=("key_pair",))

    summary = load_handler("collector").lambda_handler(load_event(name), LambdaContext())

    assert summary["dry_run"] is (name == "collector-dry-run.json")
    assert summary["regions"]["us-east-1"]["key_pair"]["deleted"] == [expired]


@pytest.mark.parametrize("name", LAUNCHER_EVENTS)
def test_launcher_event_is_answered_as_its_route_promises(launcher_stack, name):
    handler = load_handler("launcher")
    event = load_event(name)
    if name == "launcher-release-session.json":  # release the session a create just made
        _, made = answer(
            handler.lambda_handler(resign(load_event("launcher-create-session.json"), SECRET), LambdaContext())
        )
        event["rawPath"] = event["requestContext"]["http"]["path"] = f"/sessions/{made['session']}"
        event["body"] = json.dumps({"session": made["session"]})
    if name == "launcher-github-completed.json":
        handler.lambda_handler(resign(dated(load_event("launcher-github-queued.json")), SECRET), LambdaContext())

    status, body = answer(handler.lambda_handler(resign(dated(event), SECRET), LambdaContext()))

    expected = {
        "launcher-create-session.json": 201,
        "launcher-release-session.json": 200,
        "launcher-github-queued.json": 201,
        "launcher-github-completed.json": 200,
        "launcher-github-ping.json": 200,
        "launcher-gitlab-job-canceled.json": 200,
    }
    assert status == expected[name], json.dumps(body)


def dated(event: dict) -> dict:
    """A GitHub job's sample dated now: a job queued long ago is a replay, answered 202."""
    if event["rawPath"] != "/github":
        return event
    payload = json.loads(event["body"])
    if "workflow_job" in payload:
        payload["workflow_job"]["created_at"] = iso(datetime.now(UTC))
        event["body"] = json.dumps(payload)
    return event


def json_body(event: dict, **fields) -> dict:
    """The sample with fields added to its JSON body."""
    event["body"] = json.dumps({**json.loads(event["body"] or "{}"), **fields})
    return event
