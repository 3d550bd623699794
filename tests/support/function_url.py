"""Function URL (payload 2.0) events for the launcher, built from the samples in ``events/``.

Tests start from a committed sample, so the events a user runs and the
events the tests run have one shape, then change the method, path, body or
headers and sign the result with the test's secret.
"""

from __future__ import annotations

import base64
import copy
import json

from webhook import sign

from tests.support.handlers import load_event

SECRET = "test-webhook-secret-0123456789abcdef0123"


def url_event(
    method: str = "POST",
    path: str = "/sessions",
    body: bytes | str | dict = b"",
    headers: dict | None = None,
    *,
    secret: str | None = SECRET,
    base64_encode: bool = False,
    sample: str = "launcher-create-session.json",
) -> dict:
    """An event for ``method path`` with ``body``, signed with ``secret`` (``None``: unsigned)."""
    if isinstance(body, dict):
        body = json.dumps(body)
    raw = body.encode() if isinstance(body, str) else body
    event = copy.deepcopy(load_event(sample))
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["headers"] = {k: v for k, v in event["headers"].items() if not k.startswith("x-")}
    event["headers"].update({k.lower(): v for k, v in (headers or {}).items()})
    if secret is not None:
        event["headers"]["x-hub-signature-256"] = sign(raw, secret)
    event["isBase64Encoded"] = base64_encode
    event["body"] = base64.b64encode(raw).decode() if base64_encode else raw.decode("utf-8", "surrogateescape")
    return event


def answer(response: dict) -> tuple[int, dict]:
    """A Function URL answer as ``(status, JSON body)``."""
    return response["statusCode"], json.loads(response["body"])
