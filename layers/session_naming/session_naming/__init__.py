"""The shared vocabulary of ec2-sessions.

The launcher and the collector both import this one package, so they can
never disagree about what a session name means, when it expires, which tags
mark a resource as a session's, or how a session's resource is deleted.
"""

from session_naming.name import SessionName
from session_naming.tags import (
    EXPIRES_TAG,
    GITHUB_JOB_TAG,
    KEEP_TAG,
    SESSION_TAG,
    session_tags,
    tag_specifications,
    tags_of,
)

__all__ = [
    "EXPIRES_TAG",
    "GITHUB_JOB_TAG",
    "KEEP_TAG",
    "SESSION_TAG",
    "SessionName",
    "session_tags",
    "tag_specifications",
    "tags_of",
]
