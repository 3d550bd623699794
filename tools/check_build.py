"""Build the stack with SAM and smoke-test the built artifact in a runtime-like environment.

`sam build` (no container) goes to a temporary folder, for this host's
architecture, so compiled wheels (pydantic-core) import here. The built layer
must hold ``python/session_naming`` and each function folder its ``app.py``.
Then, in a fresh virtual environment holding only boto3 (what the Lambda
runtime provides), the built layer and each built function are put on the
path and each handler is imported and invoked against a moto server. This is
what catches a dependency the test environment has but the layer lacks.

The built layer must hold exactly the versions of its lock: `sam build`
checks the lock's hashes when it downloads for this machine, but fetches a
foreign architecture's wheels by name and version only, so a version that
differs would be the sign of a build that did not install the lock. The
runtime-like environment installs boto3 from the same lock, hashes checked.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.moto_server import MotoServer  # noqa: E402

LAYER_LOCK = ROOT / "layers/session_naming/requirements.txt"
# What the Lambda runtime provides: boto3 and its closure, at the layer's versions.
RUNTIME = {"boto3", "botocore", "jmespath", "python-dateutil", "s3transfer", "six", "urllib3"}


def run(*command: str, **kwargs) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, **kwargs)  # noqa: S603


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(lock: Path) -> dict[str, str]:
    """Each package of a lock and its requirement block (``name==version`` and its ``--hash`` lines)."""
    blocks: dict[str, str] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", lock.read_text()):
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==", block)
        if match:
            blocks[canonical(match.group(1))] = "\n".join(line for line in block.splitlines() if "#" not in line)
    return blocks


def version(block: str) -> str:
    return block.split("==", 1)[1].split()[0]


def built_versions(site: Path) -> dict[str, str]:
    """``name: version`` of every distribution installed in ``site`` (its ``.dist-info`` folders)."""
    found = {}
    for info in site.glob("*.dist-info"):
        name, _, rest = info.name[: -len(".dist-info")].partition("-")
        found[canonical(name)] = rest
    return found


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
        lock = locked(LAYER_LOCK)
        shipped = built_versions(build / "SessionNamingLayer/python")
        wanted = {name: version(block) for name, block in lock.items()}
        if shipped != wanted:
            differ = sorted(set(shipped.items()) ^ set(wanted.items()))
            print(f"the built layer differs from {LAYER_LOCK.relative_to(ROOT)}: {differ}", file=sys.stderr)
            return 1
        runtime = Path(tmp) / "runtime"
        requirements = Path(tmp) / "runtime-requirements.txt"
        requirements.write_text("\n".join(lock[name] for name in sorted(RUNTIME)) + "\n")
        run(args.python, "-m", "venv", str(runtime))
        run(str(runtime / "bin/pip"), "install", "--quiet", "--require-hashes", "-r", str(requirements))
        with MotoServer() as server:
            run(
                str(runtime / "bin/python"),
                "-I",  # isolated: nothing from the user's site or PYTHONPATH
                str(ROOT / "tools/smoke.py"),
                str(build),
                env={"PATH": os.environ["PATH"], "AWS_ENDPOINT_URL": server.url},
            )
    print("build and smoke test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
