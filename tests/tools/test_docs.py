"""The docs a newcomer follows: the README's "Try it first" runs as written, and docs/connect-ci.md names only
what exists (files, make targets, client commands, template parameters)."""

from __future__ import annotations

import json
import os
import re
import subprocess

from tests.support.local_server import ROOT, start_local_server
from tools.cfn_template import load_template

DOC = ROOT / "docs" / "connect-ci.md"
TEXT = DOC.read_text()


def test_every_link_to_a_repository_file_resolves():
    links = re.findall(r"\]\((\.\./[^)#]+)\)", TEXT)

    assert links and [link for link in links if not (DOC.parent / link).resolve().is_file()] == []


def test_every_make_target_it_names_is_in_the_makefile():
    targets = set(re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), re.MULTILINE))

    named = set(re.findall(r"`make ([a-z-]+)", TEXT)) | set(re.findall(r"^make ([a-z-]+)", TEXT, re.MULTILINE))
    assert named and named <= targets, named - targets


def test_every_client_command_it_shows_is_one_the_client_takes():
    client = (ROOT / "clients" / "ec2-session").read_text()
    commands = set(re.findall(r"^  ([a-z]+)\)$", client, re.MULTILINE))

    shown = set(re.findall(r"ec2-session (create|release|name|sign|[a-z]+) ", TEXT))
    assert {"create", "release", "name", "sign"} <= commands and shown <= commands, shown - commands


def test_it_lists_every_template_parameter():
    listed = set(re.findall(r"`([A-Z][A-Za-z]+)`", TEXT))

    assert set(load_template()["Parameters"]) <= listed, set(load_template()["Parameters"]) - listed


# The README


README = (ROOT / "README.md").read_text()
# What a reader replaces by what `make local` printed (its url= line at the default port, secret=, aws_endpoint_url=).
PLACEHOLDERS = ("http://127.0.0.1:8787", "whsec_...", "http://127.0.0.1:...")


def section(text: str, title: str) -> str:
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)


def test_the_readme_is_at_most_300_lines():
    assert len(README.splitlines()) <= 300


def test_try_it_first_runs_as_written_a_machine_launched_listed_and_a_github_job_served(tmp_path):
    """Its first block starts the server, its second is the other shell: every line runs, nothing left out."""
    server_block, shell = shell_blocks(section(README, "Try it first, without AWS"))
    [start] = [line.split("#")[0].strip() for line in server_block.splitlines() if line.strip()]
    assert start.startswith("make local") and all(p in shell for p in PLACEHOLDERS)
    checkout = tmp_path / "checkout"  # the reader's clone, where session.json lands (not this repository)
    checkout.mkdir()
    for entry in ROOT.iterdir():
        (checkout / entry.name).symlink_to(entry)
    server = start_local_server(command=["sh", "-c", start])
    try:
        values = (server.url, server.secret, server.aws_endpoint_url)
        for placeholder, value in zip(PLACEHOLDERS, values, strict=True):
            shell = shell.replace(placeholder, value)
        reader = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "EC2_SESSIONS_", "POWERTOOLS_"))}
        reader = {k: v for k, v in reader.items() if k not in ("MAKEFLAGS", "MAKELEVEL")}
        done = subprocess.run(  # noqa: S603 (the README's own lines)
            ["/bin/sh", "-ec", shell], cwd=checkout, env=reader, capture_output=True, text=True, timeout=180
        )
    finally:
        server.stop()  # make and the server, as Ctrl-C stops them

    assert done.returncode == 0, done.stderr
    [instance] = json.loads((checkout / "session.json").read_text())["instances"]
    assert instance["id"].startswith("i-") and (instance["instance_type"], instance["market"]) == ("t3.micro", "spot")
    queued, released, completed = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert queued["runner"]["name"] == queued["session"].replace("/", "-")  # GitHub's job got its JIT runner
    assert "(2 live sessions)" in done.stdout and done.stdout.count("running spot") == 2
    assert released["deleted"]["instance"] == [instance["id"]]
    assert completed["released"] == [queued["session"]]  # the job is over: its session released


def test_deploy_names_what_it_needs_and_its_two_passes_in_order():
    deploy = section(README, "Deploy")
    steps = ["**The stack, with its defaults**", "`DryRun=true`", "**The machines, from its outputs**", "`Profiles`"]
    steps += ["**The stack again**", "make deploy GUIDED=1"]

    assert all(need in deploy for need in ("AWS CLI v2", "jq 1.6 or later", "credentials"))
    assert [deploy.index(step) for step in steps] == sorted(deploy.index(step) for step in steps)


def test_sam_local_invoke_is_shown_with_a_sample_event_and_a_function_of_the_template():
    shown = re.findall(r"sam local invoke (\w+) -e (events/\S+)", README)

    assert shown and all(name in load_template()["Resources"] and (ROOT / event).is_file() for name, event in shown)
