"""A Function URL request read into raw bytes and bounded in size, before anything trusts it.

Signatures cover the bytes as sent, so the body is never re-serialised; a
body Lambda marks as base64 is decoded first, as the sender signed it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass

from http_errors import BadRequest, TooLarge

# De-duplication headers; the first present wins.
DELIVERY_HEADERS = ("webhook-id", "idempotency-key", "x-github-delivery", "x-gitlab-event-uuid", "x-request-id")
GITHUB_DELIVERY_HEADERS = ("x-github-delivery",)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: Mapping[str, str]  # lower-case names, as Function URLs send them
    body: bytes


def read_request(event: object, max_body_bytes: int) -> Request:
    """The Function URL request in ``event``, or ``BadRequest``/``TooLarge``: nothing in it is trusted yet."""
    shape = "event must be a Lambda Function URL request: requestContext.http.method, rawPath, headers"
    if not isinstance(event, dict):
        raise BadRequest(shape)
    context = event.get("requestContext")
    http = context.get("http") if isinstance(context, dict) else None
    method = http.get("method") if isinstance(http, dict) else None
    path, headers = event.get("rawPath"), event.get("headers") or {}
    if not (isinstance(method, str) and isinstance(path, str) and path.startswith("/") and isinstance(headers, dict)):
        raise BadRequest(shape)
    if not all(isinstance(name, str) and isinstance(value, str) for name, value in headers.items()):
        raise BadRequest(shape)
    body, encoded = event.get("body") or "", event.get("isBase64Encoded", False)
    if not isinstance(body, str) or not isinstance(encoded, bool):
        raise BadRequest("body must be a string and isBase64Encoded true or false")
    if len(body) > max_body_bytes * 4 // 3 + 4:  # cheap bound before decoding
        raise TooLarge(f"body is over {max_body_bytes} bytes")
    if encoded:
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("body is marked base64 but is not valid base64") from None
    else:
        raw = body.encode("utf-8", "surrogatepass")
    if len(raw) > max_body_bytes:
        raise TooLarge(f"body is over {max_body_bytes} bytes")
    return Request(method.upper(), path, {k.lower(): v for k, v in headers.items()}, raw)


def delivery_key(request: Request) -> str | None:
    """The request's de-duplication key, or ``None`` when it carries no delivery id.

    ``webhook-id`` (Standard Webhooks) names one message whatever route it is
    sent to, so a replay on another route answers the first answer; the other
    ids are per route (a CI job may create and release under one job id).
    ``/github`` verifies GitHub's signature only, which covers none of these
    headers: there only ``X-GitHub-Delivery``, which GitHub sets, counts.
    """
    for name in GITHUB_DELIVERY_HEADERS if request.path == "/github" else DELIVERY_HEADERS:
        value = request.headers.get(name, "").strip()[:200]
        if value:
            return f"{name}:{value}" if name == "webhook-id" else f"{request.method} {request.path} {name}:{value}"
    return None
