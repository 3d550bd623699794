"""The image recipe (``image/``): everything that can be checked without AWS or the network.

Packer reads the template's syntax; shellcheck reads both scripts; the template's pins are read for
their form and followed into provision.sh. The script's download steps run for real against local file
URLs, because a check that lets a tampered download through is the one failure that matters: for each
kind of check (a SHA-256, a key's fingerprint, a signature) the good file is kept and the bad one
deleted. The warm-up hook runs against a file standing for the root volume, with a folder of fake hooks,
a made-up sysfs and, where a test says so, a fake fio, under dash and bash as the two systems run it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.local_server import ROOT
from tests.support.shell import shellcheck

IMAGE = ROOT / "image"
TEMPLATE = (IMAGE / "runner.pkr.hcl").read_text()
PROVISION = IMAGE / "provision.sh"
SCRIPT = PROVISION.read_text()
WARM_UP = IMAGE / "warm-up"
SHELLS = sorted({os.path.realpath(p) for p in ("/bin/sh", "/bin/dash", "/bin/bash") if os.path.exists(p)})
SHELL_IDS = [os.path.basename(s) for s in SHELLS]
NO_TELEMETRY = {"CHECKPOINT_DISABLE": "1"}  # Packer asks HashiCorp for news unless told not to


def blocks(kind: str) -> dict[str, str]:
    """Top-level ``kind "name" { ... }`` blocks (one label; sources have two: joined with a dot), by name."""
    found = {}
    for match in re.finditer(rf'^{kind} ((?:"[^"]+" ?)+)\{{\n(.*?)^\}}', TEMPLATE, re.MULTILINE | re.DOTALL):
        found[".".join(re.findall(r'"([^"]+)"', match.group(1)))] = match.group(2)
    return found


def default(variable: str) -> str:
    match = re.search(r'default\s*=\s*"?([^"\n]*)"?\n', blocks("variable")[variable])
    assert match, variable
    return match.group(1)


def functions(script: str) -> dict[str, str]:
    """The shell functions of a script (``name() {`` to the ``}`` that closes it at the line's start), by name."""
    return dict(re.findall(r"^(\w+)\(\) \{.*?\n(.*?)^\}", script, re.MULTILINE | re.DOTALL))


def environment() -> dict[str, str]:
    """What the template's shell provisioner gives provision.sh: NAME -> the expression or value."""
    listed = re.search(r"environment_vars = \[\n(.*?)\]", TEMPLATE, re.DOTALL)
    assert listed
    return dict(re.findall(r'"(\w+)=([^"]*)"', listed.group(1)))


def run(*command: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 (our own scripts and the test environment's tools)
        [str(part) for part in command],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


# The template


def test_the_template_is_balanced_and_uses_only_what_it_declares():
    code = re.sub(r'#[^\n]*|"(?:[^"\\]|\\.)*"', '""', TEMPLATE)

    assert code.count("{") == code.count("}") and code.count("[") == code.count("]")
    assert set(re.findall(r"\bvar\.(\w+)", TEMPLATE)) == set(blocks("variable"))
    local_block = re.search(r"^locals \{\n(.*?)^\}", TEMPLATE, re.MULTILINE | re.DOTALL)
    assert local_block
    assert set(re.findall(r"\blocal\.(\w+)", TEMPLATE)) == set(re.findall(r"^  (\w+)\s*=", local_block.group(1), re.M))


def test_packer_finds_the_template_valid_and_formatted(tmp_path):
    packer = shutil.which("packer")
    assert packer, "packer is missing: `make install` installs it (Debian's package)"
    version = re.search(r"v?(\d+)\.(\d+)", run(packer, "version", **NO_TELEMETRY).stdout)
    assert version, "packer printed no version"
    copy = tmp_path / "runner.pkr.hcl"
    if (int(version[1]), int(version[2])) < (1, 7):
        # Debian's packer (1.6) predates the `packer { required_plugins }` block; the rest it reads in full.
        assert re.search(r'^packer \{\n.*?source\s*=\s*"github.com/hashicorp/amazon"', TEMPLATE, re.M | re.S)
        copy.write_text(re.sub(r"^packer \{\n.*?^\}\n", "", TEMPLATE, count=1, flags=re.M | re.S))
    else:
        copy.write_text(TEMPLATE)

    validated = run(packer, "validate", "-syntax-only", copy, **NO_TELEMETRY)
    formatted = run(packer, "fmt", "-check", "-diff", IMAGE / "runner.pkr.hcl", **NO_TELEMETRY)

    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr


def test_two_sources_ubuntu_24_04_and_amazon_linux_2023_build_with_one_script():
    sources = blocks("source")
    build = TEMPLATE.split("\nbuild {", 1)[1]

    assert set(sources) == {"amazon-ebs.ubuntu", "amazon-ebs.al2023"}
    assert "ubuntu-noble-24.04-" in sources["amazon-ebs.ubuntu"] and '"099720109477"' in sources["amazon-ebs.ubuntu"]
    assert "al2023-ami-2023." in sources["amazon-ebs.al2023"] and '["amazon"]' in sources["amazon-ebs.al2023"]
    assert re.findall(r'"source\.([\w.-]+)"', build) == ["amazon-ebs.ubuntu", "amazon-ebs.al2023"]
    assert build.count('provisioner "shell"') == 1 and '"${path.root}/provision.sh"' in build
    for body in sources.values():
        # The AMI requires IMDSv2 of every instance made from it; the build instance also keeps containers out.
        assert re.search(r'^  imds_support\s*=\s*"v2.0"$', body, re.M)
        assert re.search(r'http_tokens\s*=\s*"required"', body)
        assert re.search(r"http_put_response_hop_limit\s*=\s*1$", body, re.M)


def test_the_files_the_script_installs_are_uploaded_where_it_is_told_to_find_them():
    uploads = dict(re.findall(r'source\s*=\s*"\$\{path.root\}/([\w.-]+)"\n\s*destination\s*=\s*"([^"]+)"', TEMPLATE))

    assert uploads == {"warm-up": "/tmp/ec2-sessions-warm-up", "aws-cli.asc": "/tmp/ec2-sessions-aws-cli.asc"}
    assert environment()["WARM_UP"] == uploads["warm-up"]
    assert environment()["AWS_CLI_KEY"] == uploads["aws-cli.asc"]


PINS = {  # variable -> the form of its default
    "runner_version": r"2\.\d{3}\.\d+",
    "buildx_version": r"\d+\.\d+\.\d+",
    "compose_version": r"\d+\.\d+\.\d+",
    "aws_cli_version": r"2\.\d+\.\d+",
    "runner_sha256_x64": r"[0-9a-f]{64}",
    "runner_sha256_arm64": r"[0-9a-f]{64}",
    "buildx_sha256_x64": r"[0-9a-f]{64}",
    "buildx_sha256_arm64": r"[0-9a-f]{64}",
    "compose_sha256_x64": r"[0-9a-f]{64}",
    "compose_sha256_arm64": r"[0-9a-f]{64}",
    "docker_key_fingerprint": r"[0-9A-F]{40}",
    "aws_cli_key_fingerprint": r"[0-9A-F]{40}",
    "runner_sudo": r"true",
}


@pytest.mark.parametrize("variable", PINS)
def test_every_pin_has_a_default_of_its_form(variable):
    assert re.fullmatch(PINS[variable], default(variable)), default(variable)


def test_each_architecture_has_its_own_checksum_and_the_build_picks_it():
    for download in ("runner", "buildx", "compose"):
        x64, arm64 = default(f"{download}_sha256_x64"), default(f"{download}_sha256_arm64")
        assert x64 != arm64, download
        picked = (
            rf'{download}_sha256\s*=\s*var.arch == "x86_64" \? var.{download}_sha256_x64 : var.{download}_sha256_arm64'
        )
        assert re.search(picked, TEMPLATE), download
        assert environment()[f"{download.upper()}_SHA256"] == f"${{local.{download}_sha256}}"


def test_the_template_passes_every_setting_the_script_requires_and_no_other():
    required = set(re.findall(r"^  require (\w+) \w+$", functions(SCRIPT)["all_settings"], re.M))
    required |= set(re.findall(r"^  require (\w+) \w+$", functions(SCRIPT)["runner_settings"], re.M))

    assert set(environment()) == required
    assert environment()["RUNNER_SUDO"] == "${var.runner_sudo}"


def test_the_aws_cli_key_in_the_image_folder_is_the_pinned_one(tmp_path):
    shown = run(
        "gpg", "--batch", "--homedir", tmp_path, "--no-keyring", "--show-keys", "--with-colons", IMAGE / "aws-cli.asc"
    )

    assert re.findall(r"^fpr:+(\w+):", shown.stdout, re.M)[:1] == [default("aws_cli_key_fingerprint")]


def test_the_script_installs_what_the_user_data_needs_where_the_launcher_looks():
    import user_data as launcher_user_data  # functions/launcher: where it runs the runner, and as whom

    user_data = (ROOT / "functions" / "launcher" / "runner_user_data.sh").read_text()

    assert f"RUNNER_DIR={launcher_user_data.RUNNER_DIR}\n" in SCRIPT
    assert f"RUNNER_USER={launcher_user_data.RUNNER_USER}\n" in SCRIPT
    for tool in ("curl", "runuser", "getent", "aws"):
        assert tool in user_data and re.search(rf"\b{tool}\b", functions(SCRIPT)["check"]), tool


def test_the_built_machine_is_checked_for_what_jobs_use():
    check = functions(SCRIPT)["check"]

    for tool in ("git", "jq", "unzip", "zip", "gcc", "g++", "make", "python3", "fio"):
        assert re.search(rf"for tool in .*\b{re.escape(tool)}( |;)", check), tool
    for promise in (
        "python3 -m venv",
        "docker version",
        "docker buildx version",
        "docker compose version",
        "grep -qx docker",
        "sudo -n true",
        '"$WARM_UP_HOOK" device',
        "per_boot_configured",
        "TimeoutStartUSec",
    ):
        assert promise in check, promise
    assert "main" in functions(SCRIPT) and re.search(r"^  check$", functions(SCRIPT)["main"], re.M)


@pytest.mark.parametrize("script", [PROVISION, WARM_UP], ids=["provision.sh", "warm-up"])
def test_shellcheck_passes_on_the_image_scripts(script):
    done = run(shellcheck(), "--shell=sh", "--severity=style", script)

    assert done.returncode == 0, done.stdout


# Downloads


def test_every_download_is_checked_before_use():
    downloading = {name for name, body in functions(SCRIPT).items() if re.search(r"\bcurl -", body)}
    calls = re.findall(r"^\s*(fetch_\w+) (.*)$", SCRIPT, re.M)

    assert downloading == {"fetch_verified", "fetch_key", "fetch_aws_cli"}
    assert "sha256sum -c" in functions(SCRIPT)["fetch_verified"]
    assert "--show-keys" in functions(SCRIPT)["fetch_key"] and '!= "$2"' in functions(SCRIPT)["fetch_key"]
    assert "gpgv --keyring" in functions(SCRIPT)["fetch_aws_cli"] and "VALIDSIG" in functions(SCRIPT)["fetch_aws_cli"]
    # Each site is reached through one of them, with its pin.
    assert ("fetch_key", '"$DOCKER_APT_URL/gpg" "$DOCKER_KEY_FINGERPRINT" /etc/apt/keyrings/docker.asc') in calls
    for pin in ("RUNNER_SHA256", "BUILDX_SHA256", "COMPOSE_SHA256"):
        assert re.search(rf'fetch_verified "[^"]+"\s*\\?\n?\s*"\${pin}"', SCRIPT), pin
    assert ("fetch_aws_cli", '"$work"') in calls
    # No address is fetched any other way: each is a download site's default or a fetch_verified call.
    for line in (line for line in SCRIPT.splitlines() if "https://" in line):
        assert re.fullmatch(r'\w+_URL=\$\{\w+_URL:-https://[^}]+\}|\s*fetch_verified "https://\S+" \\', line), line


@pytest.mark.parametrize("shell", SHELLS, ids=SHELL_IDS)
def test_the_runner_archive_is_kept_only_when_its_checksum_is_the_pinned_one(shell, tmp_path):
    release = tmp_path / "releases" / "v2.337.0"
    release.mkdir(parents=True)
    archive = release / "actions-runner-linux-x64-2.337.0.tar.gz"
    archive.write_bytes(b"pretend runner archive")
    good = hashlib.sha256(archive.read_bytes()).hexdigest()
    env = {"RUNNER_BASE_URL": (tmp_path / "releases").as_uri(), "RUNNER_VERSION": "2.337.0", "RUNNER_ARCH": "x64"}

    kept = run(shell, PROVISION, "fetch-runner", tmp_path / "ok.tar.gz", **env, RUNNER_SHA256=good)
    tampered = run(shell, PROVISION, "fetch-runner", tmp_path / "bad.tar.gz", **env, RUNNER_SHA256="0" * 64)

    assert kept.returncode == 0, kept.stderr
    assert (tmp_path / "ok.tar.gz").read_bytes() == archive.read_bytes()
    assert tampered.returncode != 0 and "checksum mismatch" in tampered.stderr
    assert not (tmp_path / "bad.tar.gz").exists()


def test_settings_that_are_missing_or_malformed_are_all_named_at_once(tmp_path):
    done = run(PROVISION, "fetch-runner", tmp_path / "x", RUNNER_VERSION="v2", RUNNER_SHA256="ABC", RUNNER_ARCH="x86")

    assert done.returncode != 0
    assert "RUNNER_VERSION (version) RUNNER_SHA256 (sha256) RUNNER_ARCH (arch)" in done.stderr
    assert not (tmp_path / "x").exists()


class Keys:
    """Two OpenPGP signing keys made for the tests, standing for a vendor's key and anyone else's."""

    def __init__(self, home: Path):
        self.home = home
        self.fingerprints: dict[str, str] = {}
        for name in ("vendor", "other"):
            self._gpg(
                "--passphrase", "", "--quick-gen-key", f"{name} <{name}@example.invalid>", "ed25519", "sign", "never"
            )
            listed = self._gpg("--with-colons", "--list-keys", f"{name}@example.invalid").stdout
            self.fingerprints[name] = re.findall(r"^fpr:+(\w+):", listed, re.M)[0]

    def _gpg(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        done = run("gpg", "--batch", "--homedir", self.home, *args)
        assert done.returncode == 0, done.stderr
        return done

    def public(self, path: Path, *names: str) -> Path:
        path.write_text(self._gpg("--armor", "--export", *(f"{n}@example.invalid" for n in names)).stdout)
        return path

    def sign(self, path: Path, name: str, signature: Path) -> None:
        self._gpg("--local-user", self.fingerprints[name], "--output", signature, "--detach-sign", path)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    try:
        yield Keys(home)
    finally:
        run("gpgconf", "--homedir", home, "--kill", "all")  # the agent that made and used the keys


def test_dockers_key_is_kept_only_when_it_is_the_one_pinned(keys, tmp_path):
    site = tmp_path / "docker"
    site.mkdir()
    keys.public(site / "gpg", "vendor")
    env = {"DOCKER_APT_URL": site.as_uri()}

    kept = run(
        PROVISION, "fetch-docker-key", tmp_path / "ok.asc", **env, DOCKER_KEY_FINGERPRINT=keys.fingerprints["vendor"]
    )
    other = run(
        PROVISION, "fetch-docker-key", tmp_path / "no.asc", **env, DOCKER_KEY_FINGERPRINT=keys.fingerprints["other"]
    )
    keys.public(site / "gpg", "vendor", "other")
    two = run(
        PROVISION, "fetch-docker-key", tmp_path / "two.asc", **env, DOCKER_KEY_FINGERPRINT=keys.fingerprints["vendor"]
    )

    assert kept.returncode == 0, kept.stderr
    assert "BEGIN PGP PUBLIC KEY BLOCK" in (tmp_path / "ok.asc").read_text()
    for refused, file in ((other, "no.asc"), (two, "two.asc")):
        assert refused.returncode != 0 and "is not the one with the fingerprint" in refused.stderr
        assert not (tmp_path / file).exists()


def test_the_aws_cli_installer_is_kept_only_when_the_pinned_key_signed_it(keys, tmp_path):
    site = tmp_path / "awscli"
    site.mkdir()
    installer = site / "awscli-exe-linux-x86_64-2.36.11.zip"
    env = {
        "AWS_CLI_BASE_URL": site.as_uri(),
        "AWS_CLI_VERSION": "2.36.11",
        "RUNNER_ARCH": "x64",
        "AWS_CLI_KEY": str(keys.public(tmp_path / "keys.asc", "vendor", "other")),  # both keys: the pin decides
        "AWS_CLI_KEY_FINGERPRINT": keys.fingerprints["vendor"],
    }

    def fetch(name: str, signer: str, content: bytes, signed: bytes | None = None):
        """Serve ``content`` with a signature by ``signer`` of ``signed`` (default: of the content itself)."""
        installer.write_bytes(content if signed is None else signed)
        signature = Path(f"{installer}.sig")
        signature.unlink(missing_ok=True)
        keys.sign(installer, signer, signature)
        installer.write_bytes(content)
        into = tmp_path / name
        into.mkdir()
        return run(PROVISION, "fetch-aws-cli", into, **env), into

    good, good_dir = fetch("good", "vendor", b"the real installer")
    other, other_dir = fetch("other", "other", b"a look-alike installer")
    tampered, tampered_dir = fetch("tampered", "vendor", b"the real installer, changed", signed=b"the real installer")

    assert good.returncode == 0, good.stderr
    assert (good_dir / "awscliv2.zip").read_bytes() == b"the real installer"
    for refused, folder in ((other, other_dir), (tampered, tampered_dir)):
        assert refused.returncode != 0 and "is not good or not by the key" in refused.stderr
        assert list(folder.iterdir()) == []


# The warm-up hook

HOOK_TOOLS = ("timeout", "ionice", "nice", "dd", "date", "readlink", "tr", "find", "id", "sleep", "cat")


class Machine:
    """A folder standing for a pool instance: its tools (no fio unless faked), its hooks, its root volume."""

    def __init__(self, root: Path):
        self.root = root
        self.bin = root / "bin"
        self.hooks = root / "warm-up.d"
        self.record = root / "record"
        self.device = root / "root-volume"
        for folder in (self.bin, self.hooks):
            folder.mkdir(mode=0o755)
            folder.chmod(0o755)
        for tool in HOOK_TOOLS:
            found = shutil.which(tool)
            assert found, f"{tool} is missing on this machine"
            (self.bin / tool).symlink_to(found)
        self.device.write_bytes(os.urandom(3 * 1024 * 1024))

    def fake(self, tool: str, body: str) -> None:
        (self.bin / tool).unlink(missing_ok=True)
        self.executable(self.bin / tool, body)

    def hook(self, name: str, body: str, mode: int = 0o755) -> Path:
        return self.executable(self.hooks / name, body, mode)

    @staticmethod
    def executable(path: Path, body: str, mode: int = 0o755) -> Path:
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(mode)
        return path

    def recorded(self) -> list[str]:
        return self.record.read_text().split() if self.record.exists() else []

    def env(self, **settings: str) -> dict[str, str]:
        return {
            "PATH": str(self.bin),
            "RECORD": str(self.record),
            "WARM_UP_DIR": str(self.hooks),
            "WARM_UP_DEVICE": str(self.device),
            "WARM_UP_SYSFS": str(self.root / "sys"),
            **settings,
        }

    def warm_up(self, *args: str, shell: str = "/bin/sh", **settings: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 (our own script)
            [shell, str(WARM_UP), *args], env=self.env(**settings), capture_output=True, text=True, timeout=60
        )


@pytest.fixture
def machine(tmp_path):
    return Machine(tmp_path)


def gone(pid: int) -> bool:
    """Whether the process has ended within two seconds (dead and not yet reaped by init counts as ended)."""
    for _ in range(40):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("shell", SHELLS, ids=SHELL_IDS)
def test_the_warm_up_reads_the_whole_volume_then_runs_the_hooks_in_name_order(machine, shell):
    machine.hook("20-images", 'echo 20-images >> "$RECORD"')
    machine.hook("10-first", 'echo 10-first >> "$RECORD"')
    machine.hook("15-notes.txt", 'echo 15-notes >> "$RECORD"', mode=0o644)  # not executable: not a hook

    done = machine.warm_up(shell=shell)

    assert done.returncode == 0
    assert f"read all of {machine.device}" in done.stdout
    assert "3145728 bytes" in done.stderr  # dd's own count: every byte of the volume was read
    assert machine.recorded() == ["10-first", "20-images"]
    assert done.stdout.splitlines()[-1] == "ec2-sessions warm-up: done"


def test_the_warm_up_reads_with_fio_at_idle_priority_where_the_image_has_it(machine):
    machine.fake("fio", 'ionice -p $$ > "$RECORD.class"; cat /proc/$$/stat > "$RECORD.stat"; echo "$@" > "$RECORD.fio"')

    done = machine.warm_up()
    arguments = Path(f"{machine.record}.fio").read_text().split()
    niceness = int(Path(f"{machine.record}.stat").read_text().rsplit(")", 1)[1].split()[16])

    assert done.returncode == 0 and f"read all of {machine.device}" in done.stdout
    assert f"--filename={machine.device}" in arguments
    assert {"--readonly", "--rw=read", "--bs=1M", "--direct=0"} <= set(arguments)  # a file: no O_DIRECT
    assert Path(f"{machine.record}.class").read_text().strip() == "idle"
    assert niceness == 19


def test_the_read_stops_at_its_time_limit_and_the_hooks_still_run(machine):
    machine.hook("10-pull", 'echo 10-pull >> "$RECORD"')

    started = time.monotonic()
    done = machine.warm_up(WARM_UP_DEVICE="/dev/zero", WARM_UP_READ_SECONDS="1")  # a device that never ends

    assert done.returncode == 0
    assert "read part of /dev/zero: stopped after" in done.stdout and "WARM_UP_READ_SECONDS=1" in done.stdout
    assert machine.recorded() == ["10-pull"]
    assert time.monotonic() - started < 8


def test_a_failing_or_hanging_hook_neither_stops_the_others_nor_fails_the_boot(machine):
    machine.hook("10-fails", "exit 3")
    machine.hook("20-works", 'echo 20-works >> "$RECORD"')
    machine.hook("30-hangs", 'sleep 60 & echo $! > "$RECORD.pid"; wait')
    machine.hook("40-too-late", 'echo 40-too-late >> "$RECORD"')

    done = machine.warm_up(WARM_UP_HOOK_SECONDS="2")

    assert done.returncode == 0
    assert "10-fails failed (status 3); going on" in done.stdout
    assert machine.recorded() == ["20-works"]
    assert "30-hangs stopped: WARM_UP_HOOK_SECONDS=2 ran out" in done.stdout
    assert "40-too-late and the hooks after it not run" in done.stdout
    assert gone(int(Path(f"{machine.record}.pid").read_text()))  # what the hook started goes with it


def test_hooks_that_others_may_write_or_that_are_links_are_not_run(machine):
    machine.hook("10-anyone", 'echo 10-anyone >> "$RECORD"', mode=0o757)
    real = machine.executable(machine.root / "elsewhere", 'echo linked >> "$RECORD"')
    (machine.hooks / "20-link").symlink_to(real)
    machine.hook("30-ours", 'echo 30-ours >> "$RECORD"')

    done = machine.warm_up()
    machine.hooks.chmod(0o775)
    open_folder = machine.warm_up()

    assert done.returncode == 0 and open_folder.returncode == 0
    assert machine.recorded() == ["30-ours"]  # the second run ran none
    assert "skipped" in done.stdout and "10-anyone: it must belong to" in done.stdout
    assert "20-link: a symbolic link" in done.stdout
    assert "be writable by no one else; no hook run" in open_folder.stdout


def test_sigterm_stops_the_warm_up_at_once_with_status_0(machine):
    machine.hook("10-pulls", 'sleep 60 & echo $! > "$RECORD.pid"; wait')
    pid_file = Path(f"{machine.record}.pid")
    process = subprocess.Popen(  # noqa: S603 (our own script)
        ["/bin/sh", str(WARM_UP)], env=machine.env(), stdout=subprocess.PIPE, text=True
    )
    try:
        for _ in range(200):
            if pid_file.exists() and pid_file.read_text().strip():
                break
            time.sleep(0.05)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=10)
    finally:
        process.kill()

    assert process.returncode == 0
    assert time.monotonic() - started < 3
    assert "stopped by a signal" in output
    assert gone(int(pid_file.read_text()))


def test_no_readable_device_only_skips_the_read(machine):
    machine.hook("10-pull", 'echo 10-pull >> "$RECORD"')
    machine.fake("findmnt", "echo 259:1")

    missing = machine.warm_up(WARM_UP_DEVICE=str(machine.root / "no-such-device"), WARM_UP_READ_SECONDS="soon")
    unfound = machine.warm_up(WARM_UP_DEVICE="")  # the root volume, from a sysfs that has no entry for it

    assert missing.returncode == 0 and unfound.returncode == 0
    assert "WARM_UP_READ_SECONDS must be a whole number of seconds; using 240" in missing.stderr
    assert "cannot read" in missing.stdout and "no block device found for /" in unfound.stdout
    assert machine.recorded() == ["10-pull", "10-pull"]


@pytest.mark.parametrize(
    ("number", "sysfs_path", "partition", "device"),
    [
        ("259:1", "devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1/nvme0n1p1", True, "/dev/nvme0n1"),  # Nitro
        ("202:1", "devices/vbd-51712/block/xvda/xvda1", True, "/dev/xvda"),  # Xen
        ("259:0", "devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1", False, "/dev/nvme0n1"),  # no partition
        ("253:0", "devices/virtual/block/dm-0", False, "/dev/dm-0"),  # a logical volume
    ],
    ids=["nitro-nvme", "xen", "whole-disk", "device-mapper"],
)
def test_the_root_volume_is_the_disk_that_holds_the_root_file_system(machine, number, sysfs_path, partition, device):
    machine.fake("findmnt", f'[ "$*" = "--noheadings --output MAJ:MIN --target /" ] && echo " {number}"')
    entry = machine.root / "sys" / sysfs_path
    entry.mkdir(parents=True)
    if partition:
        (entry / "partition").write_text("1\n")
    links = machine.root / "sys" / "dev" / "block"
    links.mkdir(parents=True)
    (links / number).symlink_to(os.path.relpath(entry, links))

    found = machine.warm_up("device")

    assert (found.returncode, found.stdout) == (0, f"{device}\n")
