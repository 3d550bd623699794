"""Function URL (payload 2.0) events for the launcher, built from the samples in ``events/``.

Tests start from a committed sample, so the events a user runs and the
events the tests run have one shape, then change the method, path, body or
headers and sign the result with the test's secret.
"""

from __future__ import annotations

import base64
import copy
import json
import time
import uuid

from signatures import github_signature, standard_signature

from tests.support.handlers import load_event

# Like the stack's generated secret: 48 letters and digits, so also valid base64 (Standard Webhooks' key).
SECRET = "TestWebhookSecret0123456789abcdefghijklmnopqrstu"


def url_event(
    method: str = "POST",
    path: str = "/sessions",
    body: bytes | str | dict = b"",
    headers: dict | None = None,
    *,
    secret: str | None = SECRET,
    scheme: str = "github",
    base64_encode: bool = False,
    sample: str = "launcher-create-session.json",
    now: float | None = None,
) -> dict:
    """An event for ``method path`` with ``body``, signed with ``secret`` (``None``: unsigned).

    ``scheme``: ``github`` (X-Hub-Signature-256), ``standard`` (Standard Webhooks, timestamp ``now``),
    ``gitlab`` (X-Gitlab-Token) or ``both`` (GitHub's and Standard Webhooks').
    """
    if isinstance(body, dict):
        body = json.dumps(body)
    raw = body.encode() if isinstance(body, str) else body
    event = copy.deepcopy(load_event(sample))
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["headers"] = {k: v for k, v in event["headers"].items() if not k.startswith("x-")}
    event["headers"].update({k.lower(): v for k, v in (headers or {}).items()})
    if secret is not None:
        event["headers"].update(signed_headers(raw, secret, scheme, now))
    event["isBase64Encoded"] = base64_encode
    event["body"] = base64.b64encode(raw).decode() if base64_encode else raw.decode("utf-8", "surrogateescape")
    return event


def answer(response: dict) -> tuple[int, dict]:
    """A Function URL answer as ``(status, JSON body)``."""
    return response["statusCode"], json.loads(response["body"])


def signed_headers(raw: bytes, secret: str, scheme: str = "github", now: float | None = None) -> dict[str, str]:
    """The headers that sign ``raw`` under ``secret`` in ``scheme`` (see ``url_event``)."""
    headers = {}
    if scheme in ("github", "both"):
        headers["x-hub-signature-256"] = github_signature(raw, secret)
    if scheme in ("standard", "both"):
        msg_id, stamp = f"msg_{uuid.uuid4().hex}", int(time.time() if now is None else now)
        headers |= {
            "webhook-id": msg_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": standard_signature(msg_id, stamp, raw, secret),
        }
    if scheme == "gitlab":
        headers["x-gitlab-token"] = secret
    return headers


def release_event(name: str, **kwargs) -> dict:
    """A signed ``DELETE /sessions/<name>`` whose body names the session, as the route requires."""
    return url_event("DELETE", f"/sessions/{name}", {"session": str(name)}, **kwargs)
