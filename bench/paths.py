"""Where the benchmark and the code it measures live: the repository's root and the import path.

Every bench module takes ``ROOT`` from here, never from ``run.py``, which
imports them (a circle). ``run.py`` puts ``PATHS`` first on ``sys.path``
once: the layer, both functions' folders (as Lambda puts them), the
repository (``tests.support``, ``tools``) and this folder.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATHS = [
    ROOT / "layers/session_naming",
    ROOT / "functions/collector",
    ROOT / "functions/launcher",
    ROOT,
    ROOT / "bench",
]
