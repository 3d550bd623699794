"""The AWS side of a launcher stack, made on the moto server the way template.yaml makes it."""

from __future__ import annotations

from tests.support.seed import catalogue_image
from tools import local_stack
from tools.local_stack import make_launcher_stack  # noqa: F401 (re-exported for the suites)

REGION = "us-east-1"


def make_launch_template(clients, region: str = REGION, name: str = "ec2-sessions-runner") -> str:
    """A profile's launch template, as an operator makes it (its name is not a session's)."""
    return local_stack.make_launch_template(clients, region, name, catalogue_image(clients("ec2", region)))
