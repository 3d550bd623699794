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
import threading
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "tools" / "local_server.py"


@dataclass
class LocalServer:
    url: str
    secret: str
    aws_endpoint_url: str
    process: subprocess.Popen[str]

    def stop(self) -> int:
        """SIGTERM to its process group (``make`` and the server it runs), as Ctrl-C or ``kill`` stops it;
        answers the exit status."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            return self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            raise


def start_local_server(*, github: bool = False, command: list[str] | None = None, **env: str) -> LocalServer:
    """Start the server on a free port and wait for its three lines; ``env`` adds to the environment (``SECRET``).

    ``github``: with the stand-in for GitHub's App API (``make local GITHUB=1``). ``command``: how to start
    it instead (the README's ``make local`` line, say), with ``PORT=0`` in its environment.
    """
    # Its logs go to a file (a pipe nobody reads could fill and stall it), read only if it does not start.
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(  # noqa: S603 (this interpreter and our own script, or the docs' command)
            command or [sys.executable, str(SERVER), "--port", "0", *(["--github"] if github else [])],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            text=True,
            env={k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL")} | {"PORT": "0", **env},
            start_new_session=True,  # its own process group: stop() ends make and the server together
        )
        assert process.stdout is not None
        stdout, lines = process.stdout, []
        reader = threading.Thread(target=lambda: lines.extend(stdout.readline().rstrip("\n") for _ in range(3)))
        reader.start()
        reader.join(timeout=60)  # a server that never says where it listens fails the test, not the run
        keys = [line.partition("=")[0] for line in lines]
        if keys != ["url", "secret", "aws_endpoint_url"] or not lines[0].startswith("url=http://127.0.0.1:"):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            log.seek(0)
            raise RuntimeError(f"make local did not start: {lines!r}\n{log.read().decode(errors='replace')[-2000:]}")
    return LocalServer(*(line.partition("=")[2] for line in lines), process)
