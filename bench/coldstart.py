"""Measure 2: each handler's import and initialisation in a fresh interpreter, against ``import boto3``.

Each sample is a new ``python`` process (as a new Lambda container is) that
times its own import: interpreter start-up is the same for all three and
left out. The three are interleaved so machine noise hits them alike.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys

from aws import fake_environment
from paths import ROOT
from report import Row

LAYER = ROOT / "layers/session_naming"
TARGETS = {
    "boto3": (None, "boto3"),
    "collector": (ROOT / "functions/collector", "app"),
    "launcher": (ROOT / "functions/launcher", "app"),
}
LIMITS = {"collector": 1.3, "launcher": 1.3}
CHILD = "import sys, time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


def _env(folder) -> dict:
    env = fake_environment()
    env["PYTHONPATH"] = f"{folder}:{LAYER}" if folder else ""
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def sample(name: str) -> float:
    folder, module = TARGETS[name]
    out = subprocess.run(
        [sys.executable, "-c", CHILD.format(module=module)],
        env=_env(folder),
        cwd="/",
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def largest_imports(name: str, top: int = 6) -> list[tuple[str, int]]:
    """Top-level packages by cumulative import time (``python -X importtime``), in ms."""
    folder, module = TARGETS[name]
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        env=_env(folder),
        cwd="/",
        capture_output=True,
        text=True,
        check=True,
    )
    packages: dict[str, int] = {}
    for line in out.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if match:
            cumulative, depth, name_ = int(match[1]), len(match[2]), match[3]
            if 1 < depth <= 3:  # imported directly by the handler (depth 1 with its 2-space step)
                top_name = name_.split(".")[0]
                packages[top_name] = max(packages.get(top_name, 0), cumulative)
    return sorted(((k, v // 1000) for k, v in packages.items()), key=lambda kv: -kv[1])[:top]


def measure(runs: int, log) -> tuple[list[Row], list[str]]:
    log(f"cold start: {runs} fresh interpreters each for boto3, collector, launcher")
    times = {name: [] for name in TARGETS}
    for _ in range(runs):
        for name in TARGETS:
            times[name].append(sample(name))
    median = {name: statistics.median(values) for name, values in times.items()}
    rows = [Row("cold start: import boto3 (baseline)", f"{median['boto3'] * 1000:.0f} ms", "", None)]
    details = []
    for name, limit in LIMITS.items():
        ratio = median[name] / median["boto3"]
        rows.append(
            Row(f"cold start: {name} handler", f"{median[name] * 1000:.0f} ms", f"<= {limit}x", ratio, ratio <= limit)
        )
        details.append(
            f"cold start, {name}: largest imports (cumulative ms) "
            + ", ".join(f"{k} {v}" for k, v in largest_imports(name))
        )
    return rows, details
