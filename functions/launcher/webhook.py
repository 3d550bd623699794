"""What arrives at the Function URL, checked before anything else happens.

A request is read into raw bytes (base64-decoded when Lambda says so),
bounded in size, and authenticated with GitHub's HMAC-SHA256 scheme before
any body is parsed or any AWS resource is touched. The signature covers the
bytes as sent, so the body is never re-serialised before checking.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass


class HttpError(Exception):
    """An answer other than success: status, a stable error code, and what to fix."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def body(self) -> dict:
        return {"error": self.code, "message": self.message}


class BadRequest(HttpError):
    pass


class Unauthorized(HttpError):
    status, code = 401, "unauthorized"


class NotFound(HttpError):
    status, code = 404, "not_found"


class Conflict(HttpError):
    status, code = 409, "conflict"


class TooLarge(HttpError):
    status, code = 413, "payload_too_large"


class TooManySessions(HttpError):
    status, code = 429, "too_many_sessions"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: Mapping[str, str]  # lower-case names, as Function URLs send them
    body: bytes


def read_request(event: object, max_body_bytes: int) -> Request:
    """The Function URL (payload 2.0) request in ``event``, or ``BadRequest``/``TooLarge``."""
    if not isinstance(event, dict):
        raise BadRequest("event must be a Lambda Function URL request (payload format 2.0)")
    context = event.get("requestContext")
    http = context.get("http") if isinstance(context, dict) else None
    method = http.get("method") if isinstance(http, dict) else None
    path = event.get("rawPath")
    headers, body = event.get("headers") or {}, event.get("body") or ""
    encoded = event.get("isBase64Encoded", False)
    if not (isinstance(method, str) and isinstance(path, str) and path.startswith("/")):
        raise BadRequest("event must be a Lambda Function URL request: requestContext.http.method and rawPath")
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise BadRequest("headers must be an object of strings")
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


def verify_signature(body: bytes, header: str | None, secret: str) -> None:
    """``X-Hub-Signature-256: sha256=<hex>`` must be the HMAC of ``body``; compared in constant time."""
    if not header:
        raise Unauthorized("X-Hub-Signature-256 header is missing: sign the body with the webhook secret")
    if not hmac.compare_digest(sign(body, secret).encode(), header.strip().encode("utf-8", "surrogatepass")):
        raise Unauthorized("X-Hub-Signature-256 does not match the body: sign the exact bytes sent")


def sign(body: bytes, secret: str) -> str:
    """The header value a caller sends (used by ``make sign``, the demo and tests)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
