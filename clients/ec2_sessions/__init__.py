"""``ec2-sessions``, the operators' command: list, keep, release and expire sessions; list warm pools; read a
sweep's summary.

It runs the code the functions run (the layer's listings and keep rule, the
launcher's judged release), so an operator can never release what the
launcher would refuse, or keep a session the collector would still sweep.
That code is not installed: it is put on the path from this checkout, as
Lambda puts the layer and the function's folder on its own. Only this, and
nothing heavier, happens when the package is imported, so ``--help`` stays
fast; each subcommand imports what it needs when it runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for _folder in (ROOT / "functions" / "launcher", ROOT / "layers" / "session_naming"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

PROG = "ec2-sessions"


class Refused(Exception):
    """Something could not be done (exit 1); the message says what, and what to do."""


class UsageError(Exception):
    """The command line or the environment is wrong (exit 2); the message names what to fix."""
