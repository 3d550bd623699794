"""Run a handler the way Lambda does, in this process, without Docker.

Lambda puts the function's folder and the layer's ``python/`` first on
``sys.path``, sets the environment from the template, imports ``app`` and
calls ``lambda_handler(event, context)`` with a context that has a deadline.
This module does the same for ``tools/invoke.py``, the demo and the tests.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tools.cfn_yaml import load_template

ROOT = Path(__file__).resolve().parents[1]
LOGICAL_IDS = {"collector": "CollectorFunction", "launcher": "LauncherFunction"}


@dataclass
class LambdaContext:
    """The attributes Powertools and our handlers read from Lambda's context."""

    function_name: str = "ec2-sessions-local"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:ec2-sessions-local"
    memory_limit_in_mb: int = 256
    aws_request_id: str = "00000000-0000-4000-8000-000000000000"
    log_group_name: str = "/aws/lambda/ec2-sessions-local"
    log_stream_name: str = "local"
    timeout_seconds: float = 300.0
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000))


def code_paths(function: str, build_dir: Path | None = None) -> list[Path]:
    """The function's folder and the layer's package folder, built or from source."""
    if build_dir:
        return [build_dir / LOGICAL_IDS[function], build_dir / "SessionNamingLayer" / "python"]
    return [ROOT / "functions" / function, ROOT / "layers" / "session_naming"]


def load_handler(function: str, build_dir: Path | None = None):
    """The function's ``app`` module, freshly imported, with its code first on ``sys.path``."""
    for path in reversed(code_paths(function, build_dir)):
        if str(path) in sys.path:
            sys.path.remove(str(path))
        sys.path.insert(0, str(path))
    spec = importlib.util.spec_from_file_location(f"{function}_app", code_paths(function, build_dir)[0] / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def template_environment(function: str, template: dict | None = None) -> dict[str, str]:
    """The function's environment as the template sets it, parameters at their defaults.

    Values that name stack resources (the secret, the table) have no local
    meaning and are left out; an env-vars file supplies them.
    """
    template = template or load_template()
    defaults = {name: str(p.get("Default", "")) for name, p in template.get("Parameters", {}).items()}
    variables = dict(template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}))
    resource = template["Resources"][LOGICAL_IDS[function]]["Properties"]
    variables.update(resource.get("Environment", {}).get("Variables", {}))
    env = {}
    for name, value in variables.items():
        resolved = _resolve(value, defaults, template.get("Conditions", {}))
        if resolved is not None:
            env[name] = resolved
    return env


def _resolve(value, defaults: dict[str, str], conditions: dict):
    if isinstance(value, str | int | float):
        return str(value)
    if "Ref" in value:
        name = value["Ref"]
        if name == "AWS::Region":
            return os.environ.get("AWS_REGION", "us-east-1")
        return defaults.get(name)  # a resource: no local value
    if "Fn::If" in value:
        condition, yes, no = value["Fn::If"]
        return _resolve(yes if _holds(conditions[condition], defaults) else no, defaults, conditions)
    return None


def _holds(condition: dict, defaults: dict[str, str]) -> bool:
    if "Fn::Not" in condition:
        return not _holds(condition["Fn::Not"][0], defaults)
    left, right = (_resolve(side, defaults, {}) for side in condition["Fn::Equals"])
    return left == right


def env_vars_file(path: str | Path, function: str) -> dict[str, str]:
    """SAM's ``--env-vars`` format: ``Parameters`` for every function, then the function's own."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: must be a JSON object like SAM's --env-vars file")
    merged = {**data.get("Parameters", {}), **data.get(LOGICAL_IDS[function], {})}
    return {key: str(value) for key, value in merged.items()}
