"""Answers other than success that belong to HTTP itself: a request that cannot be read or is not signed.

Domain code never raises these; it raises the domain errors of ``errors.py``,
which the app maps to status codes in one place.
"""

from __future__ import annotations


class HttpError(Exception):
    """A status, a stable error code, and a message that says what to fix (never what was sent)."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


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
