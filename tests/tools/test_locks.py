"""Every environment installs from a lock; the locks must say what their inputs ask for.

Someone who adds a package to an input and forgets ``make lock`` would get
an install that silently lacks it (or, under ``--require-hashes``, fails on
a fresh clone only). These checks need no network: each pin of an input is
in its lock at that version, every locked package carries hashes, and the
test environment holds the layer's packages at the layer's versions.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYER_LOCK = ROOT / "layers/session_naming/requirements.txt"
# input -> the lock `make lock` writes from it (the Makefile's table)
LOCKS = {
    ROOT / "layers/session_naming/requirements.in": LAYER_LOCK,
    ROOT / "requirements-dev.txt": ROOT / "requirements-dev.lock",
    ROOT / "requirements-sam.txt": ROOT / "requirements-sam.lock",
    ROOT / "requirements-scan.txt": ROOT / "requirements-scan.lock",
    ROOT / "requirements-uv.txt": ROOT / "requirements-uv.lock",
}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(requirements: Path) -> dict[str, str]:
    """``name: version`` of each ``name[extras]==version`` line, following ``-r`` includes."""
    found: dict[str, str] = {}
    for line in requirements.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            found.update(pins(requirements.parent / line[3:].strip()))
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)", line)
        if match:
            found[canonical(match.group(1))] = match.group(3)
    return found


def locked(lock: Path) -> dict[str, tuple[str, int]]:
    """``name: (version, number of hashes)`` of each package of a lock."""
    found = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", lock.read_text()):
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", block)
        if match:
            found[canonical(match.group(1))] = (match.group(2), block.count("--hash=sha256:"))
    return found


@pytest.mark.parametrize("source", LOCKS, ids=lambda path: path.name)
def test_each_pin_of_an_input_is_in_its_lock_at_that_version(source):
    lock = locked(LOCKS[source])
    wanted = pins(source)

    assert wanted, f"{source.name} pins nothing"
    stale = {name: (version, lock.get(name, ("missing", 0))[0]) for name, version in wanted.items()}
    assert {name: pair for name, pair in stale.items() if pair[0] != pair[1]} == {}, "run make lock"


@pytest.mark.parametrize("lock", LOCKS.values(), ids=lambda path: path.name)
def test_every_locked_package_carries_its_hashes(lock):
    packages = locked(lock)

    assert packages
    assert [name for name, (_, hashes) in packages.items() if hashes == 0] == []


def test_the_test_environment_holds_the_layers_packages_at_the_layers_versions():
    layer = {name: version for name, (version, _) in locked(LAYER_LOCK).items()}
    dev = {name: version for name, (version, _) in locked(ROOT / "requirements-dev.lock").items()}

    assert {name: dev.get(name) for name in layer} == layer


def test_the_layer_lock_has_a_wheel_per_platform_for_its_compiled_package():
    """pydantic-core is the layer's one compiled package: its hashes cover every platform's wheel, arm64 and x86_64."""
    version, hashes = locked(LAYER_LOCK)["pydantic-core"]

    assert hashes > 20, f"pydantic-core {version}: only {hashes} hashes; make lock must keep every wheel's"
