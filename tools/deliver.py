"""Send a launcher sample event over HTTP, signed afresh: ``make deliver EVENT=events/<file>.json``.

The samples in ``events/`` are the events Lambda hands the launcher; this
sends one as the HTTP request it stands for (method, path, headers, body)
to ``EC2_SESSIONS_URL`` (``make local``'s ``url=``, or a stack's
``LauncherUrl``), re-signed with ``EC2_SESSIONS_SECRET`` as ``make sign``
signs (``tools/sign.py``), so a GitHub or GitLab delivery can be tried on
``make local`` the way GitHub or GitLab would send it. A ``workflow_job``
sample is dated now first: the samples are GitHub's from 2021, and the
launcher ignores a job queued more than 72 hours ago as a replay.

Standard output carries the launcher's answer (its JSON body) alone; exit
status 0 on a 2xx answer, 1 on any other answer or none, 2 on bad usage
(one line naming it). The secret comes from the environment, never the
command line, and is never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.sign import SecretNotBase64, UsageError, read_event, resign  # noqa: E402

USAGE = "usage: EC2_SESSIONS_URL=<url> EC2_SESSIONS_SECRET=<webhook secret> make deliver EVENT=events/<file>.json"


def dated_now(event: dict, now: datetime) -> dict:
    """A ``workflow_job`` delivery's job created (and started) ``now``; any other event as it is."""
    try:
        body = json.loads(event.get("body") or "")
    except ValueError:
        return event
    job = body.get("workflow_job") if isinstance(body, dict) else None
    if not isinstance(job, dict) or event.get("isBase64Encoded"):
        return event
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    job.update({key: stamp for key in ("created_at", "started_at") if job.get(key)})
    return {**event, "body": json.dumps(body)}


def send(url: str, event: dict) -> tuple[int, bytes]:
    """The event as an HTTP request to ``url``; answer the status and body (``0`` and the reason: no answer)."""
    body = event.get("body") or ""
    request = urllib.request.Request(  # noqa: S310 (the user's own launcher URL)
        url.rstrip("/") + event["rawPath"],
        data=body.encode() if body else None,
        method=event["requestContext"]["http"]["method"],
        headers={k: v for k, v in event["headers"].items() if k.lower() != "host"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (urllib.error.URLError, OSError) as error:
        return 0, f"could not reach {url}: {getattr(error, 'reason', error)}".encode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("event", type=Path, nargs="?", help="a launcher event file (events/launcher-*.json)")
    args = parser.parse_args(argv)
    url, secret = os.environ.get("EC2_SESSIONS_URL", ""), os.environ.get("EC2_SESSIONS_SECRET", "")
    try:
        if args.event is None or not url.startswith(("http://", "https://")) or not secret:
            raise UsageError(USAGE)
        event = read_event(args.event)
        try:
            signed = resign(dated_now(event, datetime.now(UTC)), secret)
        except SecretNotBase64:
            raise UsageError("EC2_SESSIONS_SECRET is not base64, so it cannot sign Standard Webhooks") from None
    except UsageError as error:
        print(f"make deliver: {error}", file=sys.stderr)
        return 2
    status, answer = send(url, signed)
    if status == 0:
        print(f"make deliver: {answer.decode()}", file=sys.stderr)
        return 1
    sys.stdout.write(answer.decode(errors="replace") + "\n")
    print(f"make deliver: {signed['requestContext']['http']['method']} {signed['rawPath']}: {status}", file=sys.stderr)
    return 0 if 200 <= status < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
