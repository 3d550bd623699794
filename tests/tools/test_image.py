"""The image recipe (``image/``): what can be checked without Packer, AWS or the network.

The Packer template is read for what the user data and the docs rely on
(two sources, one script, a pinned runner with a checksum per
architecture, nothing it uses undeclared); the provisioning script's
download step runs for real against a local file URL, because a checksum
that does not stop a tampered archive is the one failure that matters.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess

import pytest

from tests.support.local_server import ROOT

IMAGE = ROOT / "image"
TEMPLATE = (IMAGE / "runner.pkr.hcl").read_text()
PROVISION = IMAGE / "provision.sh"
SHELLS = sorted({os.path.realpath(p) for p in ("/bin/sh", "/bin/dash", "/bin/bash") if os.path.exists(p)})


def blocks(kind: str) -> dict[str, str]:
    """Top-level ``kind "name" { ... }`` blocks (one label; sources have two: joined with a dot), by name."""
    found = {}
    for match in re.finditer(rf'^{kind} ((?:"[^"]+" ?)+)\{{\n(.*?)^\}}', TEMPLATE, re.MULTILINE | re.DOTALL):
        found[".".join(re.findall(r'"([^"]+)"', match.group(1)))] = match.group(2)
    return found


def default(variable: str) -> str:
    match = re.search(r'default\s*=\s*"([^"]*)"', blocks("variable")[variable])
    assert match, variable
    return match.group(1)


def test_the_template_is_balanced_and_uses_only_what_it_declares():
    code = re.sub(r'#[^\n]*|"(?:[^"\\]|\\.)*"', '""', TEMPLATE)

    assert code.count("{") == code.count("}") and code.count("[") == code.count("]")
    assert set(re.findall(r"\bvar\.(\w+)", TEMPLATE)) == set(blocks("variable"))
    local_block = re.search(r"^locals \{\n(.*?)^\}", TEMPLATE, re.MULTILINE | re.DOTALL)
    assert local_block
    assert set(re.findall(r"\blocal\.(\w+)", TEMPLATE)) == set(re.findall(r"^  (\w+)\s*=", local_block.group(1), re.M))


def test_two_sources_ubuntu_24_04_and_amazon_linux_2023_build_with_one_script():
    sources = blocks("source")
    build = TEMPLATE.split("\nbuild {", 1)[1]

    assert set(sources) == {"amazon-ebs.ubuntu", "amazon-ebs.al2023"}
    assert "ubuntu-noble-24.04-" in sources["amazon-ebs.ubuntu"] and '"099720109477"' in sources["amazon-ebs.ubuntu"]
    assert "al2023-ami-2023." in sources["amazon-ebs.al2023"] and '["amazon"]' in sources["amazon-ebs.al2023"]
    assert re.findall(r'"source\.([\w.-]+)"', build) == ["amazon-ebs.ubuntu", "amazon-ebs.al2023"]
    assert build.count('provisioner "shell"') == 1 and '"${path.root}/provision.sh"' in build
    for body in sources.values():
        assert 'http_tokens                 = "required"' in body  # the user data speaks IMDSv2


def test_the_runner_is_pinned_with_a_checksum_for_each_architecture():
    version = default("runner_version")
    x64, arm64 = default("runner_sha256_x64"), default("runner_sha256_arm64")

    assert re.fullmatch(r"2\.\d{3}\.\d+", version)
    assert re.fullmatch(r"[0-9a-f]{64}", x64) and re.fullmatch(r"[0-9a-f]{64}", arm64) and x64 != arm64
    for name in ("RUNNER_VERSION=${var.runner_version}", "RUNNER_ARCH=${local.runner_arch}", "RUNNER_SHA256="):
        assert name in TEMPLATE


def test_the_script_installs_what_the_user_data_needs_where_the_launcher_looks():
    import user_data as launcher_user_data  # functions/launcher: where it runs the runner, and as whom

    user_data = (ROOT / "functions" / "launcher" / "runner_user_data.sh").read_text()
    script = PROVISION.read_text()

    assert f"RUNNER_DIR={launcher_user_data.RUNNER_DIR}\n" in script
    assert f"RUNNER_USER={launcher_user_data.RUNNER_USER}\n" in script
    for tool in ("curl", "runuser", "getent", "aws"):
        assert tool in user_data and re.search(rf"\b{tool}\b", script.split("check() {", 1)[1]), tool


@pytest.mark.parametrize("shell", SHELLS, ids=[os.path.basename(s) for s in SHELLS])
def test_the_runner_archive_is_kept_only_when_its_checksum_is_the_pinned_one(shell, tmp_path):
    release = tmp_path / "releases" / "v2.337.0"
    release.mkdir(parents=True)
    archive = release / "actions-runner-linux-x64-2.337.0.tar.gz"
    archive.write_bytes(b"pretend runner archive")
    good = hashlib.sha256(archive.read_bytes()).hexdigest()
    env = {
        "PATH": os.environ["PATH"],
        "RUNNER_BASE_URL": (tmp_path / "releases").as_uri(),
        "RUNNER_VERSION": "2.337.0",
        "RUNNER_ARCH": "x64",
    }

    kept = subprocess.run(  # noqa: S603 (our own script)
        [shell, str(PROVISION), "fetch-runner", str(tmp_path / "ok.tar.gz")],
        env={**env, "RUNNER_SHA256": good},
        capture_output=True,
        text=True,
        check=False,
    )
    tampered = subprocess.run(  # noqa: S603
        [shell, str(PROVISION), "fetch-runner", str(tmp_path / "bad.tar.gz")],
        env={**env, "RUNNER_SHA256": "0" * 64},
        capture_output=True,
        text=True,
        check=False,
    )

    assert kept.returncode == 0, kept.stderr
    assert (tmp_path / "ok.tar.gz").read_bytes() == archive.read_bytes()
    assert tampered.returncode != 0 and "checksum mismatch" in tampered.stderr
    assert not (tmp_path / "bad.tar.gz").exists()
