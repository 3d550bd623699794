"""The CI files in ``examples/`` parse, and their commands run as their CI would run them, against ``make local``.

Each CI runs a file's shell lines its own way; these tests do the same with
what a user's repository holds after following the file's header: the
client vendored as ``ci/ec2-session`` and the user's own tests (here a stub,
``ci/integration-tests.sh``, that records the session it was given). What
only the CI's servers have (a package manager, the Buildkite agent) is a
small stand-in on ``PATH``; everything else is real: the client, curl,
openssl, the launcher's handler and moto behind ``make local``.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from signatures import github_signature

from tests.support.handlers import load_fixture
from tests.support.local_server import ROOT

EXAMPLES = ROOT / "examples"
CLIENT = ROOT / "clients" / "ec2-session"
BASH = shutil.which("bash")
STUB_TESTS = """#!/bin/sh
# The user's tests, stood in for: they get the session's name, and may be slow.
[ -n "${EC2_SESSION_NAME:-}" ] || { echo "no EC2_SESSION_NAME" >&2; exit 1; }
printf '%s\\n' "$EC2_SESSION_NAME" >> tested.txt
[ -z "${TESTS_SLEEP:-}" ] || { : > sleeping; sleep "$TESTS_SLEEP"; }
"""


@pytest.fixture
def workspace(tmp_path):
    """A checkout of the user's repository: the vendored client, their tests, stand-ins for the CI's own tools."""
    (tmp_path / "ci").mkdir()
    shutil.copy(CLIENT, tmp_path / "ci" / "ec2-session")
    (tmp_path / "ci" / "integration-tests.sh").write_text(STUB_TESTS)
    tools = tmp_path / "ci-tools"
    tools.mkdir()
    (tools / "apk").write_text("#!/bin/sh\nexit 0\n")  # the image's package manager: curl and openssl are here
    (tools / "buildkite-agent").write_text(
        '#!/bin/sh\n[ "$1 $2 $3" = "secret get EC2_SESSIONS_SECRET" ] && printf %s "$STAND_IN_SECRET"\n'
    )
    for tool in tools.iterdir():
        tool.chmod(0o755)
    return tmp_path


def ci_env(workspace: Path, server, **extra: str) -> dict[str, str]:
    return {
        "PATH": f"{workspace / 'ci-tools'}:{os.environ['PATH']}",
        "HOME": str(workspace),
        "EC2_SESSIONS_URL": server.url,
        "EC2_SESSIONS_SECRET": server.secret,
        **extra,
    }


def shell(script: str, cwd: Path, env: dict[str, str], shell: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 (a shell running the example's own lines)
        [*shell, script], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False, **kwargs
    )


def release_status(server, workspace: Path, name: str) -> str:
    """What a release of ``name`` answers now: ``released`` or the launcher's error (``not_found``: it is gone)."""
    done = subprocess.run(  # noqa: S603
        ["/bin/sh", str(CLIENT), "release", name],
        env=ci_env(workspace, server),
        capture_output=True,
        text=True,
        check=False,
    )
    return "released" if done.returncode == 0 else done.stderr.split(": ")[2]


def post(server, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    request = urllib.request.Request(server.url + path, data=body, method="POST", headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 (loopback)
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


# GitHub


def test_the_github_workflow_asks_for_a_session_that_the_launcher_serves_and_frees(local_server):
    """Its runs-on labels, in a queued delivery as GitHub sends it: a session; completed: released."""
    workflow = yaml.safe_load((EXAMPLES / "github" / "workflow.yml").read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    jobs = [job for job in workflow["jobs"].values() if "ec2-session" in job["runs-on"]]
    assert set(triggers) >= {"push", "workflow_dispatch"} and workflow["permissions"] == {"contents": "read"}
    assert jobs and all(job["runs-on"][0] == "self-hosted" for job in jobs)

    for job in jobs:
        delivery = json.loads(load_fixture("github/workflow_job-queued.payload.json"))
        delivery["workflow_job"] |= {
            "id": int(time.time() * 1000),
            "labels": job["runs-on"],
            "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        queued = send_github(local_server, delivery)
        finished = copy.deepcopy(delivery)
        finished["action"] = "completed"
        finished["workflow_job"] |= {"status": "completed", "conclusion": "cancelled"}
        completed = send_github(local_server, finished)

        assert queued[0] == 201, queued
        assert completed[0] == 200 and completed[1]["released"] == [queued[1]["session"]]


def send_github(server, delivery: dict) -> tuple[int, dict]:
    body = json.dumps(delivery).encode()
    headers = {
        "content-type": "application/json",
        "x-github-event": "workflow_job",
        "x-github-delivery": str(uuid.uuid4()),
        "x-hub-signature-256": github_signature(body, server.secret),
    }
    return post(server, "/github", body, headers)


# GitLab


def gitlab_job() -> dict:
    pipeline = yaml.safe_load((EXAMPLES / "gitlab" / ".gitlab-ci.yml").read_text())
    return pipeline["integration"]


def test_the_gitlab_job_is_a_whole_pipeline_that_names_its_job():
    pipeline = yaml.safe_load((EXAMPLES / "gitlab" / ".gitlab-ci.yml").read_text())
    job = pipeline["integration"]

    assert pipeline["stages"] == [job["stage"]] and job["image"]
    create = next(line for line in job["before_script"] if "ec2-session create" in line)
    assert '\\"gitlab_job\\": {\\"project_id\\": $CI_PROJECT_ID, \\"job_id\\": $CI_JOB_ID}' in create
    assert any("ec2-session release" in line for line in job["after_script"])
    assert "X-Request-Id" not in json.dumps(job)


def run_gitlab(part: list[str], workspace: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Lines as GitLab's runner runs them in a shell image: one sh, stopping at the first that fails."""
    return shell("set -e\n" + "\n".join(part), workspace, env, ["/bin/sh", "-c"])


def test_the_gitlab_job_creates_tests_and_releases_its_session(local_server, workspace):
    job = gitlab_job()
    env = ci_env(workspace, local_server, CI_PROJECT_ID="4242", CI_JOB_ID=str(int(time.time() * 1000)))

    main = run_gitlab(job["before_script"] + job["script"], workspace, env)
    after = run_gitlab(job["after_script"], workspace, env)  # GitLab runs it in a shell of its own

    assert main.returncode == 0, main.stderr
    name = (workspace / "tested.txt").read_text().strip()
    assert json.loads((workspace / "session.json").read_text())["session"] == name
    assert after.returncode == 0 and "already released" not in after.stdout, after.stderr
    assert release_status(local_server, workspace, name) == "not_found"


def test_a_cancelled_gitlab_job_is_freed_by_the_job_hook_and_its_after_script_still_passes(local_server, workspace):
    job = gitlab_job()
    project, job_id = 4242, int(time.time() * 1000) + 1
    env = ci_env(workspace, local_server, CI_PROJECT_ID=str(project), CI_JOB_ID=str(job_id))
    assert run_gitlab(job["before_script"], workspace, env).returncode == 0
    name = json.loads((workspace / "session.json").read_text())["session"]

    hook = json.loads(load_fixture("gitlab/job-hook.json"))
    hook |= {"project_id": project, "build_id": job_id, "build_status": "canceled"}
    headers = {
        "content-type": "application/json",
        "x-gitlab-event": "Job Hook",
        "x-gitlab-token": local_server.secret,
        "x-gitlab-event-uuid": str(uuid.uuid4()),
    }
    status, answer = post(local_server, "/gitlab", json.dumps(hook).encode(), headers)
    after = run_gitlab(job["after_script"], workspace, env)

    assert status == 200 and answer["released"] == [name]
    assert after.returncode == 0 and "already released" in after.stdout


# Jenkins


def jenkins_blocks(text: str) -> dict[str, list[str]]:
    """The ``sh '''...'''`` steps of each stage and of ``post``, in order (Groovy leaves ''' strings' $ alone)."""
    blocks: dict[str, list[str]] = {}
    section = ""
    for match in re.finditer(r"stage\('([^']+)'\)|(post) \{|sh '''(.*?)'''", text, re.DOTALL):
        if match.group(1) or match.group(2):
            section = match.group(1) or match.group(2)
        else:
            blocks.setdefault(section, []).append(match.group(3))
    return blocks


def test_the_jenkinsfile_is_a_declarative_pipeline_with_a_release_that_always_runs():
    text = (EXAMPLES / "jenkins" / "Jenkinsfile").read_text()
    code = re.sub(r"'''.*?'''|'[^'\n]*'|//[^\n]*", "", text, flags=re.DOTALL)  # strings and comments out

    assert code.count("{") == code.count("}") and code.count("(") == code.count(")")
    assert re.search(r"^pipeline \{\n    agent any\n", text, re.MULTILINE)
    assert "EC2_SESSIONS_SECRET = credentials('ec2-sessions-secret')" in text
    assert re.search(r"post \{\s*always \{\s*sh '''", text)
    assert "ec2-session release" in jenkins_blocks(text)["post"][0]
    assert list(jenkins_blocks(text)) == ["Session", "Integration tests", "post"]


def test_the_jenkinsfile_steps_run_as_jenkins_runs_them_and_never_show_the_secret(local_server, workspace):
    blocks = jenkins_blocks((EXAMPLES / "jenkins" / "Jenkinsfile").read_text())
    env = ci_env(workspace, local_server)

    runs = [shell(block, workspace, env, ["/bin/sh", "-xec"]) for part in blocks.values() for block in part]

    assert [run.returncode for run in runs] == [0, 0, 0], [run.stderr for run in runs]
    name = (workspace / "tested.txt").read_text().strip()
    assert runs[0].stdout.strip().endswith(name)
    assert release_status(local_server, workspace, name) == "not_found"
    key = local_server.secret.removeprefix("whsec_")
    assert not any(key in run.stdout + run.stderr for run in runs)


def test_the_jenkinsfile_release_passes_when_the_session_is_already_released(local_server, workspace):
    """As the GitLab job's after_script does: an operator, or the session's expiry, may have been first."""
    blocks = jenkins_blocks((EXAMPLES / "jenkins" / "Jenkinsfile").read_text())
    env = ci_env(workspace, local_server)
    assert shell(blocks["Session"][0], workspace, env, ["/bin/sh", "-xec"]).returncode == 0
    name = json.loads((workspace / "session.json").read_text())["session"]
    assert release_status(local_server, workspace, name) == "released"

    post = shell(blocks["post"][0], workspace, env, ["/bin/sh", "-xec"])

    assert post.returncode == 0 and "already released" in post.stdout, post.stderr


# Buildkite


def buildkite_command(text: str) -> str:
    """The step's command as the agent runs it: ``$$`` is ``$`` once the pipeline is uploaded."""
    step = yaml.safe_load(text)["steps"][0]
    return step["command"].replace("$$", "$")


def test_the_buildkite_pipeline_keeps_the_secret_out_of_the_uploaded_pipeline():
    text = (EXAMPLES / "buildkite" / "pipeline.yml").read_text()
    pipeline = yaml.safe_load(text)
    command = pipeline["steps"][0]["command"]

    assert set(pipeline["env"]) == {"EC2_SESSIONS_URL"} and pipeline["steps"][0]["timeout_in_minutes"]
    assert "buildkite-agent secret get EC2_SESSIONS_SECRET" in command
    assert re.findall(r"(?<!\$)\$[A-Za-z({]", command) == []  # every $ deferred to the job


def test_the_buildkite_step_creates_tests_and_releases_its_session(local_server, workspace):
    env = ci_env(workspace, local_server, STAND_IN_SECRET=local_server.secret)
    del env["EC2_SESSIONS_SECRET"]  # it comes from Buildkite's secrets

    done = shell(buildkite_command((EXAMPLES / "buildkite" / "pipeline.yml").read_text()), workspace, env, runner())

    assert done.returncode == 0, done.stderr
    name = (workspace / "tested.txt").read_text().strip()
    assert release_status(local_server, workspace, name) == "not_found"


def test_a_cancelled_buildkite_step_still_releases_its_session(local_server, workspace):
    """The agent cancels a job with SIGTERM to its process group; the trap releases on the way out."""
    env = ci_env(workspace, local_server, STAND_IN_SECRET=local_server.secret, TESTS_SLEEP="30")
    del env["EC2_SESSIONS_SECRET"]
    command = buildkite_command((EXAMPLES / "buildkite" / "pipeline.yml").read_text())
    job = subprocess.Popen(  # noqa: S603
        [*runner(), command], cwd=workspace, env=env, start_new_session=True, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 30
    while not (workspace / "sleeping").exists() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)

    os.killpg(job.pid, signal.SIGTERM)
    code = job.wait(timeout=30)

    assert code != 0  # cancelled, not passed
    name = (workspace / "tested.txt").read_text().strip()
    assert release_status(local_server, workspace, name) == "not_found"


def runner() -> list[str]:
    """The agent's default shell, ``bash -e -c`` (``sh -e -c`` where there is no bash)."""
    return [BASH, "-e", "-c"] if BASH else ["/bin/sh", "-e", "-c"]
