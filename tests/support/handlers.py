"""Load a function's handler module the way Lambda does, and a Lambda context for it.

Both functions' handler modules are called ``app``; Lambda imports each from
its own folder. Tests load them by path under distinct module names so both
can live in one test process, with the layer and the function's folder on
``sys.path`` (set once in pyproject.toml) exactly as in Lambda.
"""

from __future__ import annotations

import importlib.util
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
FIXTURES = ROOT.parent / "shared" / "fixtures"


def load_handler(function: str):
    """The ``app`` module of ``functions/<function>``, freshly imported."""
    path = ROOT / "functions" / function / "app.py"
    spec = importlib.util.spec_from_file_location(f"{function}_app", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_event(name: str) -> dict:
    """A sample event from ``events/``."""
    return json.loads((EVENTS / name).read_text())


def load_fixture(path: str) -> bytes:
    """A real payload from ``../shared/fixtures/`` as raw bytes (signatures cover bytes)."""
    return (FIXTURES / path).read_bytes()


@dataclass
class LambdaContext:
    """The attributes Powertools and our handlers read from Lambda's context."""

    function_name: str = "test-function"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    memory_limit_in_mb: int = 128
    aws_request_id: str = "11111111-2222-3333-4444-555555555555"
    log_group_name: str = "/aws/lambda/test-function"
    log_stream_name: str = "2026/11/24/[$LATEST]0"
    timeout_seconds: float = 900.0
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000)
