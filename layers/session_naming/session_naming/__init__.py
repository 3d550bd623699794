"""The shared vocabulary of ec2-sessions.

The launcher and the collector both import this one package, so they can
never disagree about what a session name means, when it expires, which tags
mark a resource as a session's, or how a session's resource is deleted.
"""

from session_naming.name import SessionName
from session_naming.tags import (
    EXPIRES_TAG,
    GITHUB_JOB_TAG,
    GITHUB_RUNNER_TAG,
    GITLAB_JOB_TAG,
    INSTANCE_TAG,
    KEEP_TAG,
    POOL_STATE_TAG,
    POOL_TAG,
    PROFILE_TAG,
    SESSION_TAG,
    SPEC_TAG,
    keeps,
    session_tags,
    tag_specifications,
    tags_of,
)

__all__ = [
    "EXPIRES_TAG",
    "GITHUB_JOB_TAG",
    "GITHUB_RUNNER_TAG",
    "GITLAB_JOB_TAG",
    "INSTANCE_TAG",
    "KEEP_TAG",
    "POOL_STATE_TAG",
    "POOL_TAG",
    "PROFILE_TAG",
    "SESSION_TAG",
    "SPEC_TAG",
    "SessionName",
    "keeps",
    "session_tags",
    "tag_specifications",
    "tags_of",
]
