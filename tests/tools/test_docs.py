"""docs/connect-ci.md names only what exists: files, make targets, client commands, template parameters."""

from __future__ import annotations

import re

from tests.support.local_server import ROOT
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
