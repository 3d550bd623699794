"""``make local``'s server (``tools/local_server.py``) as the README runs it: a child process, read from its stdout.

The client and the CI examples are tested against it, so what a user runs
by hand is what the tests run: the real HTTP front, the real handler, moto
behind it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "tools" / "local_server.py"


@dataclass
class LocalServer:
    url: str
    secret: str
    process: subprocess.Popen[str]

    def stop(self) -> int:
        """SIGTERM, as a CI runner or ``kill`` stops it; answers the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


def start_local_server(**env: str) -> LocalServer:
    """Start the server on a free port and wait for its two lines; ``env`` adds to the environment (``SECRET``)."""
    # Its logs go to a file (a pipe nobody reads could fill and stall it), read only if it does not start.
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(  # noqa: S603 (this interpreter, our own script)
            [sys.executable, str(SERVER), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**os.environ, **env},
        )
        assert process.stdout is not None
        lines = [process.stdout.readline().rstrip("\n") for _ in range(2)]
        if not (lines[0].startswith("url=http://127.0.0.1:") and lines[1].startswith("secret=")):
            process.kill()
            process.wait()
            log.seek(0)
            raise RuntimeError(f"make local did not start: {lines!r}\n{log.read().decode(errors='replace')[-2000:]}")
    return LocalServer(lines[0].removeprefix("url="), lines[1].removeprefix("secret="), process)
