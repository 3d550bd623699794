"""Run a handler the way Lambda does, in this process, without Docker.

Lambda puts the function's folder and the layer's ``python/`` first on
``sys.path``, sets the environment from the template, imports ``app`` and
calls ``lambda_handler(event, context)`` with a context that has a deadline.
This module does the same for ``tools/invoke.py``, the demo and the tests.
The context itself lives in ``tools/lambda_context.py`` (stdlib only), so
the smoke test can use it where only boto3 is installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from tools.lambda_context import LambdaContext

__all__ = ["LOGICAL_IDS", "LambdaContext", "code_paths", "env_vars_file", "load_handler", "template_environment"]

ROOT = Path(__file__).resolve().parents[1]
LOGICAL_IDS = {"collector": "CollectorFunction", "launcher": "LauncherFunction"}


def code_paths(function: str, build_dir: Path | None = None) -> list[Path]:
    """The function's folder and the layer's package folder, built or from source."""
    if build_dir:
        return [build_dir / LOGICAL_IDS[function], build_dir / "SessionNamingLayer" / "python"]
    return [ROOT / "functions" / function, ROOT / "layers" / "session_naming"]


def load_handler(function: str, build_dir: Path | None = None) -> ModuleType:
    """The function's ``app`` module, freshly imported, with its code first on ``sys.path``."""
    for path in reversed(code_paths(function, build_dir)):
        if str(path) in sys.path:
            sys.path.remove(str(path))
        sys.path.insert(0, str(path))
    spec = importlib.util.spec_from_file_location(f"{function}_app", code_paths(function, build_dir)[0] / "app.py")
    assert spec is not None and spec.loader is not None, "app.py is a source file"
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as importlib's recipe does: dataclasses and pickling look a class's module up
    spec.loader.exec_module(module)
    return module


def template_environment(function: str, template: dict[str, Any] | None = None) -> dict[str, str]:
    """The function's environment as the template sets it, parameters at their defaults.

    Values that name stack resources (the secret, the table) have no local
    meaning and are left out; an env-vars file supplies them. The template
    reader is imported here: cfn-lint's decoder takes 0.7 s to import, which
    a runner refusing a bad file or a test loading a handler need not pay.
    """
    from tools.cfn_template import Resolver, Unresolved, load_template

    template = template or load_template()
    resolver = Resolver(template, pseudo={"AWS::Region": os.environ.get("AWS_REGION", "us-east-1")})
    variables = dict(template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}))
    resource = template["Resources"][LOGICAL_IDS[function]]["Properties"]
    variables.update(resource.get("Environment", {}).get("Variables", {}))
    env = {}
    for name, value in variables.items():
        try:
            env[name] = str(resolver.resolve(value))
        except Unresolved:
            continue
    return env


def env_vars_file(path: str | Path, function: str) -> dict[str, str]:
    """SAM's ``--env-vars`` format: ``Parameters`` for every function, then the function's own."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: must be a JSON object like SAM's --env-vars file")
    merged = {**data.get("Parameters", {}), **data.get(LOGICAL_IDS[function], {})}
    return {key: str(value) for key, value in merged.items()}
