"""Build the stack with SAM and smoke-test the built artifact in a runtime-like environment.

`sam build` (no container) goes to a temporary folder, for this host's
architecture, so compiled wheels (pydantic-core) import here. The built layer
must hold ``python/session_naming`` and each function folder its ``app.py``.
Then, in a fresh virtual environment holding only boto3 (what the Lambda
runtime provides), the built layer and each built function are put on the
path and each handler is imported and invoked against a moto server. This is
what catches a dependency the test environment has but the layer lacks.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIME_BOTO3 = "boto3==1.44.8"  # the layer's pin (layers/session_naming/requirements.txt)


def run(*command: str, **kwargs) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, **kwargs)  # noqa: S603


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sam", required=True)
    parser.add_argument("--python", required=True, help="a Python 3.13 for the runtime-like venv")
    args = parser.parse_args()
    arch = "arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "SAM_CLI_TELEMETRY": "0"}
    with tempfile.TemporaryDirectory(prefix="ec2-sessions-build-") as tmp:
        build = Path(tmp) / "build"
        run(
            args.sam,
            "build",
            "--build-dir",
            str(build),
            "--parameter-overrides",
            f"Architecture={arch}",
            env=env,
            cwd=ROOT,
        )
        expected = [build / "SessionNamingLayer/python/session_naming/__init__.py"]
        expected += [build / f"{name}Function/app.py" for name in ("Collector", "Launcher")]
        missing = [str(path.relative_to(build)) for path in expected if not path.is_file()]
        if missing:
            print(f"sam build output lacks: {', '.join(missing)}", file=sys.stderr)
            return 1
        runtime = Path(tmp) / "runtime"
        run(args.python, "-m", "venv", str(runtime))
        run(str(runtime / "bin/pip"), "install", "--quiet", RUNTIME_BOTO3)
        port = free_port()
        server = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            run(
                str(runtime / "bin/python"),
                "-I",  # isolated: nothing from the user's site or PYTHONPATH
                str(ROOT / "tools/smoke.py"),
                str(build),
                env={"PATH": os.environ["PATH"], "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"},
            )
        finally:
            server.terminate()
            server.wait(timeout=10)
    print("build and smoke test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
