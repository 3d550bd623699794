"""Who may call the launcher: three ways of proving the webhook secret, each over the raw bytes.

- GitHub's ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>``.
  It binds the body only, so an observed request can be sent again: routes
  that change things bind what they act on into the body (a release names
  its session), and the delivery id de-duplicates.
- Standard Webhooks (``webhook-id``, ``webhook-timestamp``,
  ``webhook-signature``): the HMAC covers id, timestamp and body under the
  base64-decoded secret, and a timestamp more than five minutes away is
  refused, so a request cannot be replayed later; inside the window its id
  de-duplicates it. What the README shows for curl.
- GitLab's ``X-Gitlab-Token``: the secret itself, compared in constant time.

Every comparison is constant-time. When a request carries several schemes,
each one it carries must verify: a valid signature never excuses a forged one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

from http_errors import Unauthorized

TOLERANCE_SECONDS = 5 * 60
GITHUB = "x-hub-signature-256"
STANDARD = ("webhook-id", "webhook-timestamp", "webhook-signature")
GITLAB = "x-gitlab-token"


class SecretNotBase64(Unauthorized):
    """The configured secret cannot key Standard Webhooks (an operator's problem, not the caller's)."""


def github_signature(body: bytes, secret: str) -> str:
    """The ``X-Hub-Signature-256`` value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def standard_signature(msg_id: str, timestamp: int, body: bytes, secret: str) -> str:
    """The ``webhook-signature`` value (``v1,<base64>``) for a message, as the reference libraries make it."""
    digest = hmac.new(_standard_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def _standard_key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raise SecretNotBase64(
            "Standard Webhooks signatures cannot be verified with this stack's secret: sign with another scheme"
        ) from None


def _equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))


def verify_github(body: bytes, header: str, secret: str) -> None:
    if not _equal(github_signature(body, secret), header.strip()):
        raise Unauthorized("X-Hub-Signature-256 does not match the body: sign the exact bytes sent")


def verify_standard(headers: Mapping[str, str], body: bytes, secret: str, now: float) -> None:
    msg_id, stamp, signatures = (headers.get(name, "") for name in STANDARD)
    if not (msg_id and stamp and signatures):
        raise Unauthorized("Standard Webhooks needs webhook-id, webhook-timestamp and webhook-signature together")
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        raise Unauthorized("webhook-timestamp must be Unix seconds")
    if abs(now - int(stamp)) > TOLERANCE_SECONDS:
        raise Unauthorized("webhook-timestamp is more than 5 minutes from now: sign the request afresh")
    expected = standard_signature(msg_id, int(stamp), body, secret)
    if not any(_equal(expected, candidate) for candidate in signatures.split(" ") if candidate.startswith("v1,")):
        raise Unauthorized("webhook-signature does not match id, timestamp and body: sign the exact bytes sent")


def verify_gitlab(header: str, secret: str) -> None:
    if not _equal(secret, header):
        raise Unauthorized("X-Gitlab-Token is not the webhook secret")


def authenticate(headers: Mapping[str, str], body: bytes, secret: str, schemes: tuple[str, ...], now: float) -> None:
    """Every scheme of ``schemes`` the request carries must verify, and it must carry one.

    ``schemes`` are the ones the route accepts: ``github``, ``standard``, ``gitlab``.
    """
    present = [
        scheme
        for scheme in schemes
        if (scheme == "github" and GITHUB in headers)
        or (scheme == "gitlab" and GITLAB in headers)
        or (scheme == "standard" and any(name in headers for name in STANDARD))
    ]
    if not present:
        names = {"github": "X-Hub-Signature-256", "standard": "webhook-* headers", "gitlab": "X-Gitlab-Token"}
        raise Unauthorized("sign the request: this route takes " + " or ".join(names[s] for s in schemes))
    for scheme in present:
        if scheme == "github":
            verify_github(body, headers[GITHUB], secret)
        elif scheme == "gitlab":
            verify_gitlab(headers[GITLAB], secret)
        else:
            verify_standard(headers, body, secret, now)
