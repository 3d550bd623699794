"""``make local``: the launcher's Function URL on loopback, as curl and the CI client see the deployed one."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from http.server import ThreadingHTTPServer

import pytest
from signatures import github_signature, standard_signature

from tests.support.command import run_ec2_sessions
from tests.support.local_server import ROOT, start_local_server
from tools.local_server import function_url_event, http_answer, new_secret, request_handler


def send(url: str, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url + path, data=body, method=method, headers=headers)  # noqa: S310 (loopback)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def standard_headers(body: bytes, secret: str) -> dict[str, str]:
    msg_id, stamp = f"msg_{uuid.uuid4().hex}", int(time.time())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": standard_signature(msg_id, stamp, body, secret),
    }


def test_a_signed_create_and_release_go_through_the_real_handler_and_moto(local_server):
    url, secret = local_server.url, local_server.secret
    body = b'{"lifetime_minutes": 30}'
    status, headers, raw = send(url, "POST", "/sessions", body, standard_headers(body, secret))
    made = json.loads(raw)
    assert status == 201 and headers["Content-Type"] == "application/json"
    assert made["session"].startswith("ec2-test-runner/") and made["key_pair"]["name"] == made["session"]

    release = json.dumps({"session": made["session"]}).encode()
    status, _, raw = send(url, "DELETE", f"/sessions/{made['session']}", release, standard_headers(release, secret))

    assert status == 200 and json.loads(raw)["deleted"]["key_pair"] == [made["session"]]


def test_an_unsigned_request_is_the_launchers_401(local_server):
    status, _, raw = send(local_server.url, "POST", "/sessions", b"{}", {})

    assert status == 401 and json.loads(raw)["error"] == "unauthorized"


def test_a_body_that_is_not_utf8_reaches_the_handler_as_the_bytes_signed(local_server):
    """Signed over raw bytes, passed base64 (as Lambda does): the signature verifies, the JSON does not parse."""
    body = b'{"lifetime_minutes": 30, "x": "\xff\xfe"}'

    status, _, raw = send(local_server.url, "POST", "/sessions", body, standard_headers(body, local_server.secret))

    assert status == 400, raw


def test_the_generated_secret_keys_standard_webhooks_and_is_fresh_each_time():
    secret = new_secret()

    assert secret.startswith("whsec_") and len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 24
    assert new_secret() != secret


def test_stdout_is_three_lines_the_callers_settings_are_used_and_sigterm_stops_it_with_status_0():
    secret = "GivenSecretForMakeLocal0123456789abcdefghijklmn"
    server = start_local_server(SECRET=secret, MAX_LIVE_SESSIONS="1")
    body = b'{"lifetime_minutes": 30}'
    signed = {"x-hub-signature-256": github_signature(body, secret)}
    first, _, _ = send(server.url, "POST", "/sessions", body, signed)
    second, _, raw = send(server.url, "POST", "/sessions", body, signed)

    code = server.stop()

    assert server.secret == secret and first == 201  # signed with the given secret
    assert server.aws_endpoint_url.startswith("http://127.0.0.1:") and server.aws_endpoint_url != server.url
    assert second == 429 and json.loads(raw)["error"] == "too_many_sessions"  # MAX_LIVE_SESSIONS from the caller
    assert code == 0
    assert server.process.stdout is not None and server.process.stdout.read() == ""  # the logs went to stderr


def test_the_event_is_a_function_url_payload_2_0():
    headers = [("Content-Type", "application/json"), ("X-Many", "a"), ("x-many", "b"), ("Cookie", "a=1; b=2")]

    event = function_url_event("DELETE", "/sessions/x?y=1&y=2&z=", headers, b"{}", "127.0.0.1:8787", "127.0.0.1")

    assert event["version"] == "2.0" and event["rawPath"] == "/sessions/x" and event["rawQueryString"] == "y=1&y=2&z="
    http = event["requestContext"]["http"]
    assert (http["method"], http["path"], http["sourceIp"]) == ("DELETE", "/sessions/x", "127.0.0.1")
    assert event["headers"] == {"content-type": "application/json", "x-many": "a,b"}
    assert event["cookies"] == ["a=1", "b=2"] and event["queryStringParameters"] == {"y": "1,2", "z": ""}
    assert (event["body"], event["isBase64Encoded"]) == ("{}", False)
    binary = function_url_event("POST", "/", [], b"\x00\xff", "h", "127.0.0.1")
    assert (binary["body"], binary["isBase64Encoded"]) == ("AP8=", True)
    assert "body" not in function_url_event("GET", "/", [], b"", "h", "127.0.0.1")


def test_the_answer_keeps_status_headers_and_body_and_infers_json_like_lambda():
    answer = {"statusCode": 429, "headers": {"Retry-After": "30"}, "body": base64.b64encode(b"hi").decode()}

    assert http_answer({**answer, "isBase64Encoded": True}) == (429, {"Retry-After": "30"}, b"hi")
    assert http_answer({"ok": True}) == (200, {"content-type": "application/json"}, b'{"ok": true}')


def test_retry_after_and_the_status_reach_the_http_client_and_a_raising_handler_is_502():
    answers = iter([{"statusCode": 429, "headers": {"Retry-After": "7"}, "body": "{}"}, RuntimeError("boom")])

    def launcher(event):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), request_handler(launcher))  # type: ignore[arg-type]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        first = send(url, "POST", "/sessions", b"{}", {})
        second = send(url, "POST", "/sessions", b"{}", {})
    finally:
        server.shutdown()
        server.server_close()

    assert first[0] == 429 and first[1]["Retry-After"] == "7"
    assert second[0] == 502


def ec2_sessions(server, *args: str) -> subprocess.CompletedProcess[str]:
    """The operators' command against ``make local``'s AWS, from a shell holding only what the docs export."""
    env = {
        "PATH": os.environ["PATH"],
        "AWS_ENDPOINT_URL": server.aws_endpoint_url,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
    }
    return run_ec2_sessions(*args, env=env)


def test_an_instance_is_launched_on_the_demo_profile_and_the_operators_command_lists_it(local_server):
    body = b'{"instance": true, "lifetime_minutes": 30}'

    status, _, raw = send(local_server.url, "POST", "/sessions", body, standard_headers(body, local_server.secret))
    listed = ec2_sessions(local_server, "list", "--json")

    made = json.loads(raw)
    [instance] = made["instances"]
    assert status == 201 and instance["id"].startswith("i-") and instance["profile"] == "demo"
    assert (instance["instance_type"], instance["market"]) == ("t3.micro", "spot")  # spot-first: spot had room
    assert listed.returncode == 0, listed.stderr
    [shown] = [session for session in json.loads(listed.stdout) if session["session"] == made["session"]]
    assert shown["profile"] == "demo" and [i["id"] for i in shown["instances"]] == [instance["id"]]
    assert shown["instances"][0]["state"] == "running"


@pytest.fixture(scope="module")
def local_github():
    """``make local GITHUB=1``: the App's stand-in served beside the launcher."""
    server = start_local_server(github=True)
    yield server
    server.stop()


def deliver(server, event: str) -> subprocess.CompletedProcess[str]:
    """``make deliver EVENT=...`` as the docs show it, against that server."""
    env = {**os.environ, "EC2_SESSIONS_URL": server.url, "EC2_SESSIONS_SECRET": server.secret}
    return subprocess.run(  # noqa: S603 (this interpreter, our own tool)
        [sys.executable, str(ROOT / "tools" / "deliver.py"), str(ROOT / "events" / event)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_with_github_the_sample_delivery_registers_a_runner_end_to_end_and_completed_releases_it(local_github):
    queued = deliver(local_github, "launcher-github-queued.json")
    listed = ec2_sessions(local_github, "list", "--json")
    completed = deliver(local_github, "launcher-github-completed.json")

    assert queued.returncode == 0, queued.stderr
    made = json.loads(queued.stdout)
    assert made["runner"]["name"] == made["session"].replace("/", "-") and made["runner"]["id"]
    assert made["instances"][0]["profile"] == "demo"
    [shown] = json.loads(listed.stdout)
    assert shown["session"] == made["session"] and shown["github_job"] == "289782451"
    assert completed.returncode == 0 and json.loads(completed.stdout)["released"] == [made["session"]]


def test_deliver_without_the_url_or_secret_says_how_in_one_line_with_status_2():
    done = subprocess.run(  # noqa: S603
        [sys.executable, str(ROOT / "tools" / "deliver.py"), str(ROOT / "events" / "launcher-github-queued.json")],
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("make deliver: usage: EC2_SESSIONS_URL=") and done.stderr.count("\n") == 1
