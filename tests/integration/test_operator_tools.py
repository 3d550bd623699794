"""The local runner and the signing command, as the README tells operators to use them."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest

from tests.support.clients import client_factory
from tests.support.function_url import SECRET
from tests.support.handlers import EVENTS
from tests.support.seed import inventory, name_expiring, seed
from tools import invoke, sign
from tools.lambda_runtime import template_environment
from tools.local_stack import make_launcher_stack


@pytest.fixture(autouse=True)
def restore_environment():
    """The runner sets the function's environment in this process, as Lambda would; undo it."""
    with mock.patch.dict(os.environ):
        yield


def test_runner_invokes_the_collector_with_an_event_file_and_env_vars(aws, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("REGIONS", raising=False)
    clients = client_factory()
    expired = name_expiring("ec2-test-runner", -timedelta(hours=1), datetime.now(UTC))
    seed(clients, "eu-west-1", expired, kinds=("key_pair",))
    env_vars = tmp_path / "env.json"
    env_vars.write_text(json.dumps({"Parameters": {"DRY_RUN": "false"}, "CollectorFunction": {"REGIONS": "eu-west-1"}}))

    status = invoke.main(
        ["--function", "collector", "--event", str(EVENTS / "collector-scheduled.json"), "--env-vars", str(env_vars)]
    )

    out, err = capsys.readouterr()
    assert status == 0
    assert f"against endpoint {aws.url}" in err
    assert "kind" in err and re.search(r"^key_pair +1 ", err, re.MULTILINE)  # the human table
    summary = json.loads(out[out.index('{\n  "dry_run"') :])
    assert summary["regions"]["eu-west-1"]["key_pair"]["deleted"] == [expired]
    assert inventory(clients, "eu-west-1")["key_pair"] == set()


def test_runner_exits_non_zero_when_the_handler_raises(aws, tmp_path, capsys):
    event = tmp_path / "bad.json"
    event.write_text(json.dumps({"bases": ["everything"]}))

    status = invoke.main(["--function", "collector", "--event", str(event)])

    assert status == 1
    assert '"errorType": "InvalidTrigger"' in capsys.readouterr().out


def test_signed_event_file_is_accepted_by_the_launcher_through_the_runner(aws, tmp_path, capsys, monkeypatch):
    stack = make_launcher_stack(client_factory(), SECRET)
    env_vars = tmp_path / "env.json"
    env_vars.write_text(json.dumps({"LauncherFunction": stack}))
    event = tmp_path / "create.json"
    event.write_text((EVENTS / "launcher-create-session.json").read_text())
    assert sign.main([str(event), "--secret", SECRET]) == 0

    status = invoke.main(["--function", "launcher", "--event", str(event), "--env-vars", str(env_vars)])

    out = capsys.readouterr().out
    response = json.loads(out[out.index("{\n") :])
    assert status == 0 and response["statusCode"] == 201


def test_template_environment_gives_every_design_variable_its_default():
    collector, launcher = template_environment("collector"), template_environment("launcher")

    assert collector["SESSION_BASES"] == "ec2-test-runner" and collector["DRY_RUN"] == "false"
    assert (collector["GRACE_SECONDS"], collector["MAX_DELETIONS"]) == ("300", "1000")
    assert (launcher["DEFAULT_LIFETIME_MINUTES"], launcher["MAX_LIFETIME_MINUTES"]) == ("360", "1440")
    assert (launcher["MAX_LIVE_SESSIONS"], launcher["GITHUB_LABEL"]) == ("50", "ec2-session")
    assert launcher["ALLOW_WORLD_INGRESS"] == "false" and launcher["LAUNCH_TEMPLATE_ID"] == ""


def test_the_committed_gitlab_sample_runs_through_the_runner_as_is(aws, tmp_path, capsys):
    """events/launcher-gitlab-job-canceled.json carries X-Gitlab-Token with the placeholder secret the README names."""
    placeholder = "ReplaceWithYourWebhookSecretMakeSign0123456789a"
    env_vars = tmp_path / "env.json"
    env_vars.write_text(json.dumps({"LauncherFunction": make_launcher_stack(client_factory(), placeholder)}))

    status = invoke.main(
        [
            "--function",
            "launcher",
            "--event",
            str(EVENTS / "launcher-gitlab-job-canceled.json"),
            "--env-vars",
            str(env_vars),
        ]
    )

    out = capsys.readouterr().out
    response = json.loads(out[out.index("{\n") :])
    assert status == 0 and response["statusCode"] == 200
    assert json.loads(response["body"]) == {"released": [], "kept": []}
