"""Run a sample of the suite's tests each alone, in a pytest of its own: a test must not need another first.

``make test`` runs the whole suite in an order shuffled by the commit, which
finds a test that passes only after another; this finds one that fails when
nothing ran before it (a cold import, a fixture another test warmed). ``make
soak`` runs it with its seed; ``python tools/alone.py --seed N --count K
[PATH ...]`` replays a sample.

Exit status: 0 when every sampled test passed alone, 1 otherwise (the
failing ids are printed), 2 on bad usage.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def collected(paths: list[str]) -> list[str]:
    """Every test id under ``paths``, as pytest collects them (one id a line)."""
    done = subprocess.run(  # noqa: S603 - this interpreter's pytest, on the project's own tests
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:randomly", *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [line for line in done.stdout.splitlines() if "::" in line and not line.startswith(" ")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=["tests"], help="where to sample from (default: tests)")
    parser.add_argument("--seed", type=int, default=0, help="the sample's seed (make soak prints it)")
    parser.add_argument("--count", type=int, default=20, help="how many tests to run alone (default 20)")
    options = parser.parse_args(argv)
    ids = collected(options.paths)
    sample = random.Random(options.seed).sample(ids, min(options.count, len(ids)))  # noqa: S311 - a sample
    failed = []
    for test in sample:
        started = time.monotonic()
        done = subprocess.run(  # noqa: S603 - this interpreter's pytest, one test of the project's own
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        verdict = "passed" if done.returncode == 0 else "FAILED"
        print(f"{verdict:6} {time.monotonic() - started:5.1f} s  {test}", flush=True)
        if done.returncode != 0:
            failed.append(test)
    if failed:
        print(f"{len(failed)} of {len(sample)} failed alone (seed {options.seed}):", *failed, sep="\n  ")
        return 1
    print(f"{len(sample)} tests passed alone (seed {options.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
