"""Sign a launcher event's body in place, so users can edit bodies: ``make sign EVENT=... SECRET=...``.

By default each route gets the scheme that binds the most: ``/github``
GitHub's ``X-Hub-Signature-256`` (all GitHub sends), ``/sessions`` and
``/gitlab`` Standard Webhooks, whose id and timestamp keep the request from
being replayed later (accepted for five minutes: sign just before you
invoke). ``--scheme github`` or ``--scheme both`` sign a ``/sessions`` event
with GitHub's too; a request that carries GitHub's signature can be replayed
with its other headers stripped, so prefer Standard Webhooks alone.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "functions" / "launcher"))
from signatures import github_signature, standard_signature  # noqa: E402

SIGNATURE_HEADERS = ("x-hub-signature-256", "webhook-id", "webhook-timestamp", "webhook-signature", "x-gitlab-token")


def resign(event: dict, secret: str, now: float | None = None, scheme: str = "auto") -> dict:
    """``event`` with its signature headers replaced by fresh ones over its exact body bytes."""
    body = event.get("body") or ""
    raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
    headers = {k: v for k, v in event.get("headers", {}).items() if k.lower() not in SIGNATURE_HEADERS}
    path = event.get("rawPath", "")
    github = path == "/github" or (scheme in ("github", "both") and path != "/gitlab")
    standard = path != "/github" and scheme in ("auto", "standard", "both")
    if github:
        headers["x-hub-signature-256"] = github_signature(raw, secret)
    if standard:
        msg_id, stamp = f"msg_{uuid.uuid4().hex}", int(time.time() if now is None else now)
        headers.update(
            {
                "webhook-id": msg_id,
                "webhook-timestamp": str(stamp),
                "webhook-signature": standard_signature(msg_id, stamp, raw, secret),
            }
        )
    event["headers"] = headers
    return event


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("event", type=Path)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--scheme", choices=("auto", "standard", "github", "both"), default="auto")
    args = parser.parse_args(argv)
    event = resign(json.loads(args.event.read_text()), args.secret, scheme=args.scheme)
    args.event.write_text(json.dumps(event, indent=2) + "\n")
    signed = sorted(k for k in event["headers"] if k in SIGNATURE_HEADERS)
    print(f"{args.event}: signed ({', '.join(signed)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
