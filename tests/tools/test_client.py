"""``clients/ec2-session``, the client for any CI, run by every POSIX shell this machine has against ``make local``."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.support.local_server import ROOT

CLIENT = ROOT / "clients" / "ec2-session"
# /bin/sh and whichever of dash, bash and busybox exist, each once (sh is one of the others on most systems).
SHELLS = sorted(
    {os.path.realpath(p): p for p in ("/bin/sh", "/bin/dash", "/bin/bash", "/bin/busybox") if os.path.exists(p)}.items()
)
SHELL_IDS = [Path(real).name for real, _ in SHELLS]
VECTOR = {  # Standard Webhooks' reference test vector
    "EC2_SESSIONS_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "EC2_SESSIONS_MSG_ID": "msg_p5jXN8AQM9LWM0D4loKWxJek",
    "EC2_SESSIONS_NOW": "1614265330",
}


@pytest.fixture(params=SHELLS, ids=SHELL_IDS)
def shell(request) -> list[str]:
    real, _ = request.param
    return [real, "sh"] if Path(real).name == "busybox" else [real]


def run(shell: list[str], *args: str, env: dict[str, str] | None = None, trace: bool = False):
    return subprocess.run(  # noqa: S603 (our own script)
        [*shell, *(["-x"] if trace else []), str(CLIENT), *args],
        env={"PATH": os.environ["PATH"], **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def configured(server) -> dict[str, str]:
    return {"EC2_SESSIONS_URL": server.url, "EC2_SESSIONS_SECRET": server.secret}


def test_the_signature_is_standard_webhooks_reference_vector(shell):
    done = run(shell, "sign", '{"test": 2432232314}', env=VECTOR)

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "webhook-id: msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp: 1614265330",
        "webhook-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    ]


def test_create_prints_the_session_and_release_frees_it(shell, local_server):
    env = configured(local_server)

    created = run(shell, "create", '{"lifetime_minutes": 30}', env=env)
    session = json.loads(created.stdout)
    name = session["session"]
    released = run(shell, "release", name, env=env)
    again = run(shell, "release", name, env=env)

    assert created.returncode == 0 and created.stderr == ""
    assert session["key_pair"]["name"] == name and session["expires_at"]
    assert released.returncode == 0 and json.loads(released.stdout)["deleted"]["key_pair"] == [name]
    assert again.returncode == 1 and again.stdout == ""
    assert again.stderr.startswith("ec2-session: HTTP 404: not_found: ") and again.stderr.count("\n") == 1


def test_name_reads_the_session_from_what_create_printed(shell, tmp_path):
    created = tmp_path / "session.json"
    created.write_text('{"session":"b/20261206T000000Z/0123456789abcdef","key_pair":{"name":"x"}}\n')
    pretty = json.dumps({"expires_at": "x", "session": "b/20261206T000000Z/fedcba9876543210"}, indent=2)

    from_file = run(shell, "name", str(created))
    from_stdin = subprocess.run(  # noqa: S603
        [*shell, str(CLIENT), "name"], input=pretty, capture_output=True, text=True, check=False
    )
    missing = run(shell, "name", "/nonexistent/session.json")

    assert from_file.stdout == "b/20261206T000000Z/0123456789abcdef\n"
    assert from_stdin.stdout == "b/20261206T000000Z/fedcba9876543210\n"
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1


def test_a_wrong_secret_is_refused_with_the_launchers_error_and_nothing_on_stdout(shell, local_server):
    env = {**configured(local_server), "EC2_SESSIONS_SECRET": VECTOR["EC2_SESSIONS_SECRET"]}

    done = run(shell, "create", env=env)

    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("ec2-session: HTTP 401: unauthorized: webhook-signature does not match")


def test_a_refused_body_says_the_field_and_exits_1(shell, local_server):
    done = run(shell, "create", '{"lifetime_minutes": 1}', env=configured(local_server))

    assert done.returncode == 1 and "HTTP 400: bad_request: lifetime_minutes" in done.stderr


def test_an_unreachable_launcher_exits_1_naming_it(shell):
    env = {"EC2_SESSIONS_URL": "http://127.0.0.1:9", "EC2_SESSIONS_SECRET": VECTOR["EC2_SESSIONS_SECRET"]}

    done = run(shell, "create", env=env)

    assert done.returncode == 1 and "could not reach http://127.0.0.1:9" in done.stderr


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        ((), {}, "usage: ec2-session"),
        (("frobnicate",), {}, "usage: ec2-session"),
        (("release",), {}, "usage: ec2-session"),
        (("create", "{}", "extra"), {}, "usage: ec2-session"),
        (("release", "not-a-session"), {}, "NAME must be a session name"),
        (("release", 'a/b/c"}'), {}, "NAME must be a session name"),
        (("create",), {"EC2_SESSIONS_SECRET": "x"}, "set EC2_SESSIONS_URL"),
        (("create",), {"EC2_SESSIONS_URL": "ftp://x"}, "must start with https://"),
        (("create",), {"EC2_SESSIONS_URL": "http://x"}, "set EC2_SESSIONS_SECRET"),
        (("create",), {"EC2_SESSIONS_URL": "http://x", "EC2_SESSIONS_SECRET": "not base64!"}, "is not base64"),
        (("sign", "{}"), {"EC2_SESSIONS_SECRET": "abc"}, "is not base64"),
    ],
)
def test_usage_and_configuration_errors_are_one_line_and_exit_2(shell, args, env, says):
    done = run(shell, *args, env=env)

    assert done.returncode == 2 and done.stdout == ""
    assert says in done.stderr and done.stderr.count("\n") == 1


def test_the_secret_is_never_printed_traced_in_argv_or_inherited(shell, local_server, tmp_path):
    """Even under ``sh -x``; curl and openssl (wrapped here to log their argv and environment) never see it."""
    log = tmp_path / "calls.log"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("curl", "openssl", "od"):
        real = shutil.which(tool)
        wrapper = bin_dir / tool
        wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "{tool} $*" >>"{log}"\nenv >>"{log}"\nexec {real} "$@"\n')
        wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    env = {**configured(local_server), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    key = local_server.secret.removeprefix("whsec_")
    key_hex = base64.b64decode(key).hex()

    created = run(shell, "create", env=env, trace=True)
    released = run(shell, "release", json.loads(created.stdout)["session"], env=env, trace=True)

    assert created.returncode == 0 and released.returncode == 0, created.stderr + released.stderr
    seen = created.stdout + created.stderr + released.stdout + released.stderr + log.read_text()
    assert "curl " in log.read_text() and "openssl " in log.read_text()
    assert key not in seen and key_hex not in seen and "EC2_SESSIONS_SECRET" not in log.read_text()


def test_the_client_is_a_portable_executable_script():
    text = CLIENT.read_text()

    assert text.startswith("#!/bin/sh\n") and os.access(CLIENT, os.X_OK)
    assert 0 < text.index("\nset +x\n") < text.index("${EC2_SESSIONS_SECRET")  # tracing off before the secret is read
    for bashism in ("[[", "local ", "function ", "$'", "<<<", "source ", "${!", "==", "pipefail", "mapfile"):
        assert bashism not in text, bashism


def test_a_missing_tool_is_named_with_status_2(shell, tmp_path):
    for tool in ("openssl", "od"):  # everything but curl
        (tmp_path / tool).symlink_to(shutil.which(tool))
    env = {"PATH": str(tmp_path), "EC2_SESSIONS_URL": "http://127.0.0.1:9", **VECTOR}

    done = run(shell, "create", env=env)

    assert (
        done.returncode == 2
        and done.stderr == "ec2-session: needs curl: install it on the machine or in the job's image\n"
    )
