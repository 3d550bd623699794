"""The AWS side of a launcher stack, made on the moto server the way template.yaml makes it."""

from __future__ import annotations

from tests.support.seed import catalogue_image
from tools.local_stack import make_launcher_stack  # noqa: F401 (re-exported for the suites)

REGION = "us-east-1"


def make_launch_template(clients, region: str = REGION, name: str = "ec2-sessions-runner") -> str:
    """A profile's launch template, as an operator makes it (its name is not a session's)."""
    ec2 = clients("ec2", region)
    image = catalogue_image(ec2)
    return ec2.create_launch_template(
        LaunchTemplateName=name, LaunchTemplateData={"ImageId": image, "InstanceType": "t3.micro"}
    )["LaunchTemplate"]["LaunchTemplateId"]
