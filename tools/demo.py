"""The demo: both handlers against an embedded moto server. No AWS account, no Docker.

It launches sessions through signed Function URL requests (the sample events
in ``events/``), backdates two as if launched seven hours ago, adds a foreign
look-alike and a kept session, rehearses a sweep (dry run), sweeps, releases
a session through the API, and prints what was created, kept and deleted.
Fake credentials and an explicit endpoint mean it cannot reach real AWS.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / folder) for folder in (".", "clients", "layers/session_naming", "functions/launcher")]

from tools.offline import go_offline  # noqa: E402

go_offline(POWERTOOLS_LOG_LEVEL="WARNING")

import io  # noqa: E402

from ec2_sessions.summary import summary_table  # noqa: E402

from tools.invoke import invoke as invoke_handler  # noqa: E402
from tools.lambda_runtime import template_environment  # noqa: E402
from tools.local_stack import make_launcher_stack  # noqa: E402
from tools.moto_server import MotoServer  # noqa: E402
from tools.sign import resign  # noqa: E402

SECRET = "DemoWebhookSecretNotForProduction0123456789abcde"  # noqa: S105 (the demo's own moto secret)
REGION = "us-east-1"


def event(name: str, body: dict | None = None, path: str | None = None) -> dict:
    """A sample event from events/ with another body or path, signed afresh (both schemes on /sessions)."""
    sample = json.loads((ROOT / "events" / name).read_text())
    if body is not None:
        sample["body"] = json.dumps(body)
    if path is not None:
        sample["rawPath"] = sample["requestContext"]["http"]["path"] = path
    return resign(sample, SECRET)


def invoke(function: str, event: dict, env: dict):
    """The handler's answer; its JSON logs and metric lines are kept off the demo's screen."""
    return invoke_handler(function, event, {**env, "POWERTOOLS_LOG_LEVEL": "WARNING"}, log=io.StringIO())


def main() -> int:
    with MotoServer() as server:
        os.environ["AWS_ENDPOINT_URL"] = server.url
        return demo()


def demo() -> int:
    import boto3
    from launch import create_session
    from session_naming import KEEP_TAG, clients
    from session_naming.settings import load_launcher

    print(f"moto server on {os.environ['AWS_ENDPOINT_URL']} (fake credentials; real AWS is unreachable)\n")
    stack = make_launcher_stack(lambda service, region: boto3.client(service, region_name=region), SECRET, REGION)
    launcher_env = {**template_environment("launcher"), **stack}
    collector_env = {**template_environment("collector"), "REGIONS": REGION}

    print("1. Launch three sessions through signed POST /sessions requests")
    created = []
    for minutes in (60, 120, 240):
        response = invoke(
            "launcher", event("launcher-create-session.json", {"lifetime_minutes": minutes}), launcher_env
        )
        body = json.loads(response["body"])
        created.append(body)
        print(f"   {response['statusCode']}  {body['session']}  expires {body['expires_at']}")

    print("2. Two sessions launched 'seven hours ago' with a six-hour lifetime (now expired); one of them kept")
    settings = load_launcher()
    long_ago = datetime.now(UTC) - timedelta(hours=7)
    six_hours = timedelta(hours=6)
    old = [
        create_session(clients.client, settings, "ec2-test-runner", six_hours, long_ago, slots=None) for _ in range(2)
    ]
    ec2 = boto3.client("ec2", region_name=REGION)
    ec2.create_tags(Resources=[old[1]["security_group"]["id"]], Tags=[{"Key": KEEP_TAG, "Value": "true"}])
    for body in old:
        print(f"   {body['session']}  expired {body['expires_at']}")
    foreign = "someone-else/20200101T000000Z/0123456789abcdef"
    ec2.create_key_pair(KeyName=foreign, KeyType="ed25519")
    print(f"   and a foreign key pair {foreign} (another base: never ours)")

    print("\n3. Collector, dry run (events/collector-dry-run.json)")
    rehearsal = invoke("collector", json.loads((ROOT / "events/collector-dry-run.json").read_text()), collector_env)
    print(indent(summary_table(rehearsal)))

    print("\n4. Collector, scheduled run (events/collector-scheduled.json)")
    summary = invoke("collector", json.loads((ROOT / "events/collector-scheduled.json").read_text()), collector_env)
    print(indent(summary_table(summary)))
    print(
        "   deleted sessions:",
        sorted({n for r in summary["regions"].values() for k in r.values() for n in k["deleted"]}),
    )

    print("\n5. Release a live session now: DELETE /sessions/<name>")
    name = created[0]["session"]
    release = event("launcher-release-session.json", {"session": name}, path=f"/sessions/{name}")
    response = invoke("launcher", release, launcher_env)
    print(f"   {response['statusCode']}  deleted {json.loads(response['body'])['deleted']}")

    left = sorted(k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"])
    print("\nKey pairs left (two live sessions, the kept one, the foreign one):")
    for key in left:
        print(f"   {key}")
    expected = {created[1]["session"], created[2]["session"], old[1]["session"], foreign}
    if set(left) != expected or summary["totals"]["failed"]:
        print("demo: unexpected result", file=sys.stderr)
        return 1
    print("\nDemo finished: expired sessions deleted, live, kept and foreign ones untouched.")
    return 0


def indent(text: str) -> str:
    return "\n".join("   " + line for line in text.splitlines())


if __name__ == "__main__":
    sys.exit(main())
