"""Re-sign a launcher event's body in place, so users can edit bodies: ``make sign EVENT=... SECRET=...``."""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "functions" / "launcher"))
from webhook import sign  # noqa: E402


def resign(event: dict, secret: str) -> dict:
    body = event.get("body") or ""
    raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
    event.setdefault("headers", {})["x-hub-signature-256"] = sign(raw, secret)
    return event


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("event", type=Path)
    parser.add_argument("--secret", required=True)
    args = parser.parse_args(argv)
    event = resign(json.loads(args.event.read_text()), args.secret)
    args.event.write_text(json.dumps(event, indent=2) + "\n")
    print(f"{args.event}: x-hub-signature-256 = {event['headers']['x-hub-signature-256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
