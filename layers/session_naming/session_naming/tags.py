"""The tag conventions that mark a resource as a session's.

Tags go on at creation (``TagSpecifications``), never in a second call: no
resource ever exists untagged, and IAM can demand the session tag on create
and scope every delete by it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from session_naming.name import SessionName, format_expires

if TYPE_CHECKING:  # the stubs are a development dependency; the layer never imports them
    from mypy_boto3_ec2.literals import ResourceTypeType
    from mypy_boto3_ec2.type_defs import TagSpecificationTypeDef
    from mypy_boto3_ssm.type_defs import TagTypeDef

SESSION_TAG = "ec2-sessions:session"
EXPIRES_TAG = "ec2-sessions:expires"
KEEP_TAG = "ec2-sessions:keep"
GITHUB_JOB_TAG = "ec2-sessions:github-job"
GITHUB_RUNNER_TAG = "ec2-sessions:github-runner"
GITLAB_JOB_TAG = "ec2-sessions:gitlab-job"
PROFILE_TAG = "ec2-sessions:profile"
# On /<session>/runner-jitconfig: the ARN of the one instance whose role may read it.
INSTANCE_TAG = "ec2-sessions:instance"
# A warm pool's instance: its profile, what made it (a hash), and its state (filling-stopped, filling-hot,
# ready-stopped, ready-hot, claimed, retiring; the job table holds the truth, the tag lets one listing tell it).
POOL_TAG = "ec2-sessions:pool"
SPEC_TAG = "ec2-sessions:spec"
POOL_STATE_TAG = "ec2-sessions:pool-state"


def _tags(name: SessionName, extra: Mapping[str, str] | None) -> dict[str, str]:
    return {SESSION_TAG: str(name), EXPIRES_TAG: format_expires(name.expires), **(extra or {})}


def session_tags(name: SessionName, extra: Mapping[str, str] | None = None) -> list[TagTypeDef]:
    """The tags every resource of the session carries, in boto3's shape."""
    return [{"Key": key, "Value": value} for key, value in _tags(name, extra).items()]


def tag_specifications(
    name: SessionName, resource_types: Iterable[ResourceTypeType], extra: Mapping[str, str] | None = None
) -> list[TagSpecificationTypeDef]:
    """``TagSpecifications`` for an EC2 create call, one entry per resource type (each with a list of its own)."""
    return [
        {"ResourceType": kind, "Tags": [{"Key": key, "Value": value} for key, value in _tags(name, extra).items()]}
        for kind in resource_types
    ]


def keeps(tags: Mapping[str, str] | None) -> bool:
    """True when the tags hold ``ec2-sessions:keep=true`` in any letter case: one rule for every kind."""
    return tags is not None and str(tags.get(KEEP_TAG, "")).strip().lower() == "true"


def tags_of(resource: Mapping[str, Any]) -> dict[str, str]:
    """A described resource's tags as a dict (EC2 answers ``Tags: None`` at times)."""
    return {tag["Key"]: tag["Value"] for tag in resource.get("Tags") or ()}
