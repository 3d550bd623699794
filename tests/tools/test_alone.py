"""``tools/alone.py`` (make soak): a seeded sample of tests, each in a pytest of its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def alone(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - the project's own tool
        [sys.executable, str(ROOT / "tools" / "alone.py"), *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_a_seeded_sample_runs_each_test_alone_and_the_same_seed_picks_the_same_tests():
    first = alone("--seed", "7", "--count", "2", "tests/unit/test_pools.py")
    again = alone("--seed", "7", "--count", "2", "tests/unit/test_pools.py")

    assert first.returncode == 0, first.stdout + first.stderr
    picked = [line.split()[-1] for line in first.stdout.splitlines() if line.startswith("passed")]
    assert len(picked) == 2 and all("tests/unit/test_pools.py::" in test for test in picked)
    assert picked == [line.split()[-1] for line in again.stdout.splitlines() if line.startswith("passed")]
    assert "2 tests passed alone (seed 7)" in first.stdout


def test_a_test_that_fails_alone_fails_the_run_and_is_named(tmp_path):
    failing = tmp_path / "test_alone_fails_on_purpose.py"
    failing.write_text("def test_needs_another_first():\n    import os\n    assert os.environ.get('NOT_SET_ALONE')\n")

    done = alone("--seed", "1", "--count", "1", str(failing))

    assert done.returncode == 1
    assert "test_needs_another_first" in done.stdout and "1 of 1 failed alone (seed 1)" in done.stdout
