"""Sign a launcher event for ``make invoke``, into a new file: ``SECRET=... make sign EVENT=events/<file>.json``.

Users edit a sample's body and need it signed with their secret. The
signed copy goes to ``.aws-sam/signed/<file>`` (ignored by git; ``--out``
names another untracked file, ``--out -`` writes to standard output), never
back over the sample: a tracked file would then hold a signature made with
the user's secret. The secret comes from the ``SECRET`` environment variable,
never from the command line, where every user of the machine can read it
(``ps``); nothing printed contains it. Standard output carries only the
signed file's path (or the event, with ``--out -``), so
``EVENT=$(make -s sign EVENT=...)`` works.

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
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "functions" / "launcher"))
from http_errors import HttpError  # noqa: E402
from request import read_request  # noqa: E402
from signatures import SecretNotBase64, github_signature, standard_signature  # noqa: E402

SIGNATURE_HEADERS = ("x-hub-signature-256", "webhook-id", "webhook-timestamp", "webhook-signature", "x-gitlab-token")
SIGNED_DIR = ROOT / ".aws-sam" / "signed"
USAGE = "usage: SECRET=<webhook secret> make sign EVENT=events/<launcher event>.json [SCHEME=auto|standard|github|both]"


class UsageError(Exception):
    """A mistake the user fixes: one line, exit status 2."""


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


def read_event(path: Path) -> dict:
    """The launcher Function URL event in ``path``, or ``UsageError`` naming the file and what is wrong."""
    try:
        event = json.loads(path.read_text())
    except OSError as error:
        raise UsageError(f"{path}: cannot read it ({error.strerror})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UsageError(f"{path}: not JSON ({error})") from None
    try:
        read_request(event, max_body_bytes=sys.maxsize // 2)  # the launcher's own reading of a request
    except HttpError:
        raise UsageError(
            f"{path}: not a launcher Function URL event (requestContext.http.method, rawPath, headers, body)"
        ) from None
    return event


def tracked(path: Path) -> bool:
    """Whether git tracks ``path`` (a signed event must never land in a file that is committed)."""
    try:
        done = subprocess.run(  # noqa: S603 (git, on our own tree)
            ["git", "ls-files", "--error-unmatch", str(path.resolve())],  # noqa: S607 (git from PATH)
            cwd=ROOT,
            capture_output=True,
            check=False,
        )
    except OSError:  # no git: nothing is tracked
        return False
    return done.returncode == 0


def output_path(event_path: Path, out: str | None) -> Path | None:
    """Where the signed event goes (``None``: standard output); never the event itself or a tracked file."""
    if out == "-":
        return None
    target = Path(out) if out else SIGNED_DIR / event_path.name
    if target.resolve() == event_path.resolve() or tracked(target):
        raise UsageError(f"{target}: will not write a signed event over a tracked file or the sample; use --out")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("event", type=Path, nargs="?", help="a launcher event file (events/launcher-*.json)")
    parser.add_argument("--scheme", choices=("auto", "standard", "github", "both"), default="auto")
    parser.add_argument("--out", help="where to write the signed event (default .aws-sam/signed/<name>; -: stdout)")
    args = parser.parse_args(argv)
    secret = os.environ.get("SECRET", "")
    try:
        if args.event is None or not secret:
            raise UsageError(USAGE)
        event = read_event(args.event)
        target = output_path(args.event, args.out)
        try:
            signed = resign(event, secret, scheme=args.scheme)
        except SecretNotBase64:
            raise UsageError("SECRET is not base64, so it cannot sign Standard Webhooks: use SCHEME=github") from None
    except UsageError as error:
        print(f"make sign: {error}", file=sys.stderr)
        return 2
    text = json.dumps(signed, indent=2) + "\n"
    schemes = ", ".join(sorted(k for k in signed["headers"] if k in SIGNATURE_HEADERS))
    if target is None:
        sys.stdout.write(text)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        shown = target.resolve()
        print(shown.relative_to(ROOT) if shown.is_relative_to(ROOT) else shown)
    window = "; Standard Webhooks: invoke within five minutes" if "webhook-id" in signed["headers"] else ""
    print(f"signed {args.event} ({schemes}){window}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
