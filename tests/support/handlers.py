"""Load a function's handler module the way Lambda does, and a Lambda context for it (the project's one).

Both functions' handler modules are called ``app``; Lambda imports each from
its own folder. Tests load them by path under distinct module names so both
can live in one test process, with the layer and the function's folder on
``sys.path`` (set once in pyproject.toml) exactly as in Lambda.
"""

from __future__ import annotations

import json
from pathlib import Path

from tools import lambda_runtime
from tools.lambda_context import LambdaContext

__all__ = ["EVENTS", "PAYLOADS", "LambdaContext", "load_event", "load_fixture", "load_handler"]

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
PAYLOADS = ROOT / "tests" / "events"


def load_handler(function: str):
    """The ``app`` module of ``functions/<function>``, freshly imported from source."""
    return lambda_runtime.load_handler(function)


def load_event(name: str) -> dict:
    """A sample event from ``events/``."""
    return json.loads((EVENTS / name).read_text())


def load_fixture(path: str) -> bytes:
    """A real payload from ``tests/events/`` (each folder says its source) as raw bytes: signatures cover bytes."""
    return (PAYLOADS / path).read_bytes()
