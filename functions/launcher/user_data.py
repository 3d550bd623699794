"""The user data that turns a session's instance into its job's GitHub runner.

The script itself is ``runner_user_data.sh`` beside this file, a plain shell
script that shellcheck reads; this module only fills in its four quoted
placeholders. One script serves every instance, cold or from a warm pool:
``pool`` tells it which (``none``, ``stopped`` or ``hot``). The JIT configuration is never one of them: user data is
readable by anyone who may describe the instance, so the script fetches the
configuration from the session's SSM SecureString through the instance role.
"""

from __future__ import annotations

import re
import string
from functools import cache
from pathlib import Path

from session_naming import SessionName
from session_naming.github import RUNNER_JITCONFIG_SUFFIX

TEMPLATE = Path(__file__).with_name("runner_user_data.sh")
RUNNER_DIR = "/opt/actions-runner"  # where the AMI holds the runner (run.sh)
RUNNER_USER = "runner"  # who the AMI lets run it: never root
MAX_USER_DATA_BYTES = 16 * 1024  # EC2's limit, before base64
POOLS = ("none", "stopped", "hot")  # a cold instance's, a stopped pool's, a hot pool's

_DIRECTORY = re.compile(r"/[A-Za-z0-9._/-]{0,200}", re.ASCII)
_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}", re.ASCII)


class _Placeholders(string.Template):
    """``@{name}``: ``$`` belongs to the shell."""

    delimiter = "@"


@cache
def _template() -> _Placeholders:
    return _Placeholders(TEMPLATE.read_text())


def runner_user_data(
    parameter_name: str, *, runner_dir: str = RUNNER_DIR, runner_user: str = RUNNER_USER, pool: str = "none"
) -> str:
    """The script for an instance whose runner configuration is in ``parameter_name``.

    ``parameter_name`` must be a session's ``/<session>/runner-jitconfig``;
    every value is checked against a pattern with no quote or space, so none
    can end the shell's single quotes around it.
    """
    session = parameter_name[1 : -len(RUNNER_JITCONFIG_SUFFIX)] if isinstance(parameter_name, str) else None
    if (
        session is None
        or not parameter_name.startswith("/")
        or not parameter_name.endswith(RUNNER_JITCONFIG_SUFFIX)
        or SessionName.parse(session) is None
    ):
        raise ValueError(f"parameter name must be /<session name>{RUNNER_JITCONFIG_SUFFIX}")
    if not isinstance(runner_dir, str) or not _DIRECTORY.fullmatch(runner_dir) or "/../" in f"{runner_dir}/":
        raise ValueError("runner_dir must be an absolute path of A-Z a-z 0-9 . _ - /")
    if not isinstance(runner_user, str) or not _USER.fullmatch(runner_user) or runner_user == "root":
        raise ValueError("runner_user must be a user name other than root")
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {', '.join(POOLS)}")
    script = _template().substitute(
        parameter_name=parameter_name, runner_dir=runner_dir.rstrip("/") or "/", runner_user=runner_user, pool=pool
    )
    if len(script.encode()) > MAX_USER_DATA_BYTES:
        raise ValueError(f"user data is over EC2's {MAX_USER_DATA_BYTES} bytes")
    return script
