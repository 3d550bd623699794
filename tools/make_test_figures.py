"""docs/performance.md's ``make test`` figures (how long, how many tests), measured and written by this, not by hand.

    .venv/bin/python tools/make_test_figures.py                      # a fresh clone of HEAD runs .ci/run, timed
    .venv/bin/python tools/make_test_figures.py --log run.log --seconds 424   # a run timed elsewhere

By default it clones the commit checked out (``git clone``: nothing
installed, as CI starts) into a temporary folder, runs ``.ci/run`` there
(``make test``, then ``make demo``) with its output passed through to
standard error, and times it. From that output it reads pytest's summary
line (the tests passed, pytest's own time), and it rewrites the block
between ``BEGIN`` and ``END`` in docs/performance.md with the figures,
today's date and this machine's cores and architecture. A run that failed,
or whose summary shows a failure, writes nothing (exit status 1).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "performance.md"
BEGIN = "<!-- make-test figures: written by tools/make_test_figures.py, not by hand -->"
END = "<!-- end of make-test figures -->"
SUMMARY = re.compile(r"^=+ (?P<counts>.*?) in (?P<seconds>[\d.]+)s\b.*=+$", re.MULTILINE)
SENTENCE = re.compile(
    r"On a (?P<cores>\d+)-core (?P<arch>\S+) machine a fresh clone took (?P<total>.+?) for `make test` and `make demo`"
    r" together \(`\.ci/run`, (?P<date>\d{4}-\d\d-\d\d)\): (?P<tests>[\d,]+) tests, pytest (?P<pytest>.+?) of it\.",
    re.DOTALL,
)


class Failed(Exception):
    """The run cannot give figures: it failed, or its output holds no passing summary."""


@dataclass(frozen=True)
class Figures:
    total_seconds: float
    tests: int
    pytest_seconds: float
    date: str
    cores: int
    arch: str

    def sentence(self) -> str:
        return (
            f"On a {self.cores}-core {self.arch} machine a fresh clone took {span(self.total_seconds)} for "
            f"`make test` and `make demo` together (`.ci/run`, {self.date}): {self.tests:,} tests, "
            f"pytest {span(self.pytest_seconds)} of it."
        )


def span(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def pytest_summary(output: str) -> tuple[int, float]:
    """The tests passed and pytest's own seconds, from the last summary line of ``output``; ``Failed`` else."""
    found = list(SUMMARY.finditer(output))
    if not found:
        raise Failed("the output holds no pytest summary line")
    counts, seconds = found[-1]["counts"], float(found[-1]["seconds"])
    bad = re.findall(r"(\d+) (failed|errors?)\b", counts)
    passed = re.search(r"(\d+) passed", counts)
    if bad or passed is None:
        raise Failed(f"pytest did not pass: {counts}")
    return int(passed[1]), seconds


def rewrite(doc: str, figures: Figures) -> str:
    """``doc`` with the text between the markers replaced by the figures' sentence, wrapped as the doc is."""
    start, end = doc.index(BEGIN) + len(BEGIN), doc.index(END)
    return f"{doc[:start]}\n{wrap(figures.sentence())}\n{doc[end:]}"


def wrap(text: str, width: int = 76) -> str:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return "\n".join([*lines, line])


def written(doc: str) -> str:
    """The block's text as it stands (for the test that keeps it the tool's)."""
    return " ".join(doc[doc.index(BEGIN) + len(BEGIN) : doc.index(END)].split())


def run_fresh_clone() -> tuple[str, float]:
    """``.ci/run`` in a fresh clone of HEAD: its output (also passed through to standard error) and seconds."""
    with tempfile.TemporaryDirectory(prefix="ec2-sessions-figures-") as folder:
        clone = Path(folder) / "ec2-sessions"
        git(["clone", "--quiet", "--no-checkout", str(ROOT), str(clone)])
        git(["checkout", "--quiet", git(["rev-parse", "HEAD"], cwd=ROOT)], cwd=clone)  # the very commit measured
        env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "VIRTUAL_ENV")}
        started = time.monotonic()
        process = subprocess.Popen(  # noqa: S603 (the clone's own CI script)
            [str(clone / ".ci" / "run")],
            cwd=clone,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert process.stdout is not None
        output = []
        for line in process.stdout:
            sys.stderr.write(line)
            output.append(line)
        status = process.wait()
        seconds = time.monotonic() - started
    if status != 0:
        raise Failed(f".ci/run exited {status}")
    return "".join(output), seconds


def git(args: list[str], cwd: Path | None = None) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)  # noqa: S603, S607
    return done.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", type=Path, help="the output of a .ci/run timed elsewhere (with --seconds)")
    parser.add_argument("--seconds", type=float, help="how long that run took")
    args = parser.parse_args(argv)
    if (args.log is None) != (args.seconds is None):
        parser.error("--log and --seconds go together")
    try:
        output, seconds = (args.log.read_text(), args.seconds) if args.log else run_fresh_clone()
        tests, pytest_seconds = pytest_summary(output)
    except (Failed, OSError) as error:
        print(f"make_test_figures: no figures written: {error}", file=sys.stderr)
        return 1
    figures = Figures(
        seconds, tests, pytest_seconds, datetime.now(UTC).date().isoformat(), os.cpu_count() or 1, platform.machine()
    )
    DOC.write_text(rewrite(DOC.read_text(), figures))
    print(figures.sentence())
    return 0


if __name__ == "__main__":
    sys.exit(main())
