"""Fake credentials and no AWS config, so nothing run locally can reach a real account.

Stdlib only: the smoke test imports it inside an environment holding only boto3.
"""

from __future__ import annotations

import os

FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "POWERTOOLS_SERVICE_NAME": "ec2-sessions",
    "POWERTOOLS_METRICS_NAMESPACE": "ec2-sessions",
    "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon outside Lambda
}


def go_offline(**extra: str) -> None:
    """Fake credentials in this process; a developer's profile or endpoint is dropped."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        os.environ.pop(name, None)
    os.environ.update(FAKE_AWS, **extra)
