"""The local runner and the signing command, as the README tells operators to use them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
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
    monkeypatch.setenv("SECRET", SECRET)
    assert sign.main([str(EVENTS / "launcher-create-session.json"), "--out", str(event)]) == 0

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


ROOT = Path(__file__).resolve().parents[2]
SAMPLE = "events/launcher-create-session.json"


def make(*args: str, secret: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``make`` in the repository as a user runs it, SECRET in its environment when given (``env``: all of it)."""
    env = {
        k: v for k, v in (os.environ if env is None else env).items() if k not in ("SECRET", "MAKEFLAGS", "MAKELEVEL")
    }
    if secret is not None:
        env["SECRET"] = secret
    return subprocess.run(  # noqa: S603
        ["make", "--no-print-directory", *args],  # noqa: S607 (make from PATH, as a user runs it)
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def tool(script: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 (this interpreter, our own tools)
        [sys.executable, str(ROOT / "tools" / script), *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )


def git_status() -> str:
    return subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.mark.parametrize(
    ("args", "secret", "says"),
    [
        ((), SECRET, "usage: SECRET=<webhook secret> make sign EVENT="),
        ((f"EVENT={SAMPLE}",), None, "usage: SECRET=<webhook secret> make sign EVENT="),
        (
            ("EVENT=events/collector-dry-run.json",),
            SECRET,
            "events/collector-dry-run.json: not a launcher Function URL",
        ),
        (("EVENT=events/missing.json",), SECRET, "events/missing.json: cannot read it"),
        ((f"EVENT={SAMPLE}", "OUT=events/launcher-github-ping.json"), SECRET, "will not write a signed event over"),
        ((f"EVENT={SAMPLE}",), "not base64!", "SECRET is not base64"),
    ],
)
def test_make_sign_refuses_in_one_line_with_status_2_and_writes_nothing(args, secret, says):
    before = git_status()

    done = make("sign", *args, secret=secret)

    ours = [line for line in done.stderr.splitlines() if not line.startswith("make: ***")]
    assert done.returncode == 2 and done.stdout == ""
    assert len(ours) == 1 and says in ours[0] and "Traceback" not in done.stderr
    assert git_status() == before


def test_make_sign_writes_a_new_untracked_file_prints_its_path_and_never_the_secret():
    before = git_status()
    sample = (ROOT / SAMPLE).read_text()

    done = make("sign", f"EVENT={SAMPLE}", secret=SECRET)

    written = ROOT / done.stdout.strip()
    try:
        signed = json.loads(written.read_text())
        assert done.returncode == 0 and done.stdout.strip() == ".aws-sam/signed/launcher-create-session.json"
        assert set(signed["headers"]) >= {"webhook-id", "webhook-timestamp", "webhook-signature"}
        assert (ROOT / SAMPLE).read_text() == sample and git_status() == before
        assert SECRET not in done.stdout + done.stderr + written.read_text()
    finally:
        written.unlink(missing_ok=True)


def test_the_secret_is_on_no_command_line_make_runs():
    """``make -n`` prints the commands make would run: given on make's command line, the secret is in none."""
    done = make("-n", "sign", f"EVENT={SAMPLE}", f"SECRET={SECRET}")

    assert "tools/sign.py" in done.stdout and SECRET not in done.stdout


def test_invoke_prints_only_the_answer_on_stdout_and_the_logs_on_stderr(aws, tmp_path):
    env_vars = tmp_path / "env.json"
    env_vars.write_text(json.dumps({"LauncherFunction": make_launcher_stack(client_factory(), SECRET)}))
    signed = tmp_path / "create.json"
    assert tool("sign.py", SAMPLE, "--out", str(signed), SECRET=SECRET).returncode == 0

    done = tool(
        "invoke.py", "--function", "launcher", "--event", str(signed), "--env-vars", str(env_vars),
        AWS_ENDPOINT_URL=aws.url, POWERTOOLS_LOG_LEVEL="INFO",
    )  # fmt: skip

    answer = json.loads(done.stdout)  # the whole of stdout is one JSON document
    assert done.returncode == 0 and answer["statusCode"] == 201
    assert '"session created"' in done.stderr and "SessionsCreated" in done.stderr  # Logger and Metrics


def test_invoke_exits_1_when_the_answer_is_a_5xx(aws, tmp_path):
    env_vars = tmp_path / "env.json"
    stack = make_launcher_stack(client_factory(), SECRET)
    env_vars.write_text(json.dumps({"LauncherFunction": {**stack, "MAX_LIVE_SESSIONS": "many"}}))
    signed = tmp_path / "create.json"
    assert tool("sign.py", SAMPLE, "--out", str(signed), SECRET=SECRET).returncode == 0

    done = tool(
        "invoke.py", "--function", "launcher", "--event", str(signed), "--env-vars", str(env_vars),
        AWS_ENDPOINT_URL=aws.url,
    )  # fmt: skip

    assert done.returncode == 1 and json.loads(done.stdout)["statusCode"] == 500
    assert "the handler answered 500" in done.stderr


def test_invoke_exits_1_when_the_answer_is_a_4xx(aws, tmp_path):
    """The committed sample is signed with the placeholder secret: a stack of another secret answers 401."""
    env_vars = tmp_path / "env.json"
    env_vars.write_text(json.dumps({"LauncherFunction": make_launcher_stack(client_factory(), SECRET)}))

    done = tool("invoke.py", "--function", "launcher", "--event", SAMPLE, "--env-vars", str(env_vars))

    assert done.returncode == 1 and json.loads(done.stdout)["statusCode"] == 401
    assert "the handler answered 401" in done.stderr


# What `sam build` leaves for make invoke (each function's folder, the layer's python/), and what it prints on
# standard output, which make invoke must keep off its own.
SAM_STAND_IN = """#!/bin/sh
echo "Building codeuri: functions/collector runtime: python3.13 architecture: x86_64 functions: CollectorFunction"
while [ $# -gt 0 ]; do [ "$1" = --build-dir ] && dir=$2; shift; done
mkdir -p "$dir/SessionNamingLayer/python"
cp -R functions/collector "$dir/CollectorFunction" && cp -R functions/launcher "$dir/LauncherFunction"
cp -R layers/session_naming/session_naming "$dir/SessionNamingLayer/python/" && cp template.yaml "$dir/"
echo "Build Succeeded"
"""


def test_make_invoke_prints_the_answer_alone_even_on_a_first_build_and_fails_on_a_4xx(aws, tmp_path):
    """No ``-s``: make's echo of its recipes and the build's own output go to standard error."""
    sam = tmp_path / "sam"
    sam.write_text(SAM_STAND_IN)
    sam.chmod(0o755)
    env_vars = tmp_path / "env.json"
    env_vars.write_text(json.dumps({"LauncherFunction": make_launcher_stack(client_factory(), SECRET)}))
    build = [f"SAM={sam}", f"HOST_BUILD={tmp_path / 'build'}", "-o", ".venv-sam/.installed"]  # SAM's venv unused

    first = make("invoke", *build, "FUNCTION=collector", "EVENT=events/collector-dry-run.json")
    refused = make("invoke", *build, "FUNCTION=launcher", f"EVENT={SAMPLE}", f"ENV_VARS={env_vars}")

    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["dry_run"] is True  # the whole of stdout is the answer
    assert "Build Succeeded" in first.stderr and "Building codeuri" not in first.stdout
    assert refused.returncode != 0 and json.loads(refused.stdout)["statusCode"] == 401


@pytest.mark.parametrize(
    ("content", "which", "says"),
    [
        (None, "event", "cannot read the event file"),
        ("{not json", "event", "the event file is not JSON"),
        ("{not json", "env", "the env-vars file is not JSON"),
        ('{"Parameters": []}', "env", "the env-vars file must be"),
    ],
)
def test_invoke_names_a_bad_event_or_env_file_in_one_line_with_status_2(tmp_path, content, which, says):
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    event, env_vars = (bad, None) if which == "event" else (ROOT / SAMPLE, bad)

    done = tool(
        "invoke.py",
        "--function",
        "launcher",
        "--event",
        str(event),
        *(["--env-vars", str(env_vars)] if env_vars else []),
    )

    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and says in done.stderr and str(bad) in done.stderr


@pytest.mark.parametrize(
    ("saved", "guided", "runs"),
    [
        (None, "", "sam deploy --guided"),  # the committed samconfig.toml: never deployed from here
        ('[default.deploy.parameters]\nstack_name = "ec2-sessions"\n', "", "sam deploy --config-file"),
        ('[default.deploy.parameters]\nstack_name = "ec2-sessions"\n', "1", "sam deploy --guided"),
        ('[default.global.parameters]\nstack_name = "ec2-sessions"\n', "", "sam deploy --guided"),
    ],
)
def test_make_deploy_is_guided_until_a_guided_deploy_saved_its_answers(tmp_path, saved, guided, runs):
    samconfig = tmp_path / "samconfig.toml"
    samconfig.write_text((ROOT / "samconfig.toml").read_text() if saved is None else "version = 0.1\n\n" + saved)

    done = make("-s", "deploy", "-o", "build", "SAM=echo sam", f"SAMCONFIG={samconfig}", f"GUIDED={guided}")

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith(runs)


def test_make_deploy_without_credentials_stops_at_once_in_one_line_before_building_or_asking(tmp_path):
    """No variables, no files, no instance role: boto3's chain finds nothing, and no AWS account is reached."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "HOME": str(tmp_path),
    }

    done = make("deploy", "SAM=echo sam", f"SAMCONFIG={tmp_path / 'samconfig.toml'}", env=env)

    ours = [line for line in done.stderr.splitlines() if not line.startswith("make: ***")]
    assert done.returncode != 0 and done.stdout == ""  # nothing built (sam build), nothing asked (sam deploy)
    assert len(ours) == 1 and ours[0].startswith("make deploy: no AWS credentials: set AWS_PROFILE"), done.stderr
