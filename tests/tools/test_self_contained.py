"""The repository stands alone: a user clones only it, so nothing in it may read or name what lies beside it."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def tracked_text_files() -> list[Path]:
    names = subprocess.run(  # noqa: S603 (git, on our own tree)
        ["git", "ls-files", "-z"],  # noqa: S607 (git from PATH, as a developer runs it)
        cwd=ROOT,
        capture_output=True,
        check=True,  # noqa: S607
    ).stdout.split(b"\0")
    files = [ROOT / name.decode() for name in names if name]
    return [path for path in files if path.is_file() and b"\0" not in path.read_bytes()[:4096]]


def test_no_tracked_file_names_a_folder_beside_the_repository():
    beside = ("../" + "shared", "shared/" + "fixtures")  # spelled apart so this file does not match itself
    offending = [
        str(path.relative_to(ROOT))
        for path in tracked_text_files()
        if any(s in path.read_text("utf-8", "replace") for s in beside)
    ]

    assert offending == []


def test_the_payloads_tests_sign_are_in_the_repository_with_their_source():
    for folder in ("github", "gitlab"):
        payloads = ROOT / "tests" / "events" / folder
        assert list(payloads.glob("*.json")), folder
        assert (
            "licence" in (payloads / "README.md").read_text().lower()
            or "CC BY-SA" in (payloads / "README.md").read_text()
        )
