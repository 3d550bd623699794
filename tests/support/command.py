"""The ``ec2-sessions`` command as an operator runs it: the console script ``make install`` writes into the venv,
or, where it is missing, ``python -m ec2_sessions`` from this checkout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).parent / "ec2-sessions"


def run_ec2_sessions(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run it with ``env`` as its whole environment (plus the package's path when run with ``-m``)."""
    if SCRIPT.exists():
        command = [str(SCRIPT)]
    else:
        command, env = [sys.executable, "-m", "ec2_sessions"], {**env, "PYTHONPATH": str(ROOT / "clients")}
    return subprocess.run(  # noqa: S603 (our own command)
        [*command, *args], input=stdin, capture_output=True, text=True, cwd=ROOT, env=env, timeout=60, check=False
    )
