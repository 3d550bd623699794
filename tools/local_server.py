"""``make local``: the launcher's Function URL on loopback, backed by an embedded moto server. No AWS account.

    make local [PORT=8787] [SECRET=<webhook secret>] [GITHUB=1]

curl, ``clients/ec2-session`` and the CI examples need a URL that answers
as the deployed Function URL does; this serves one at
``http://127.0.0.1:<port>``. Each HTTP request becomes a Lambda Function URL
event (payload format 2.0, built as Lambda builds it), the launcher's
handler answers it in this process (imported as Lambda imports it), and its
answer becomes the HTTP response. Behind it: the project's moto server with
the stack's webhook secret and idempotency table (``tools/local_stack``),
so sessions are made, de-duplicated and released for real, in moto; and
what an operator adds after a deploy, a launch template and the profile
``demo`` (labels ``[ec2-session]``) naming it, so ``{"instance": true}``
and a job labelled ``ec2-session`` launch a machine. ``GITHUB=1`` also
serves a stand-in for GitHub's App API on loopback (the tests' fake,
``tests/support/github_fake.py``, on the time of day) with the App
installed on the sample delivery's repository and its key in moto, so a
``workflow_job`` delivery registers a just-in-time runner end to end
(``make deliver EVENT=events/launcher-github-queued.json``).

Standard output carries exactly three lines, ``url=...``, ``secret=...``
and ``aws_endpoint_url=...`` (the moto server: ``AWS_ENDPOINT_URL`` for the
``ec2-sessions`` command and the AWS CLI), once the server listens, so a
script can read them and go on; everything else (the handler's logs and
metrics, this server's own lines) goes to standard error. The launcher's
settings are the template's defaults (bases ``ec2-test-runner``), the demo
profile and the App, each overridden by the same variable in the caller's
environment (``MAX_LIVE_SESSIONS=5 make local``). The secret is ``SECRET``
from the environment, or a fresh one in Standard Webhooks' form (``whsec_``
and base64 of 24 random bytes), so every scheme the launcher takes verifies
with it. It stops on Ctrl-C or SIGTERM with exit status 0.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import secrets
import signal
import sys
import threading
import traceback
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.offline import go_offline  # noqa: E402

REGION = "us-east-1"
MAX_REQUEST_BYTES = 6 * 1024 * 1024  # a Function URL's request payload limit; the launcher bounds its own lower
DEFAULT_ENV = {"SESSION_BASES": "ec2-test-runner", "POWERTOOLS_LOG_LEVEL": "INFO"}


def new_secret() -> str:
    """A webhook secret as Standard Webhooks issues them: ``whsec_`` and base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def standard_key_ok(secret: str) -> bool:
    """Whether ``secret`` can key Standard Webhooks: base64 after an optional ``whsec_``, as the launcher reads it."""
    try:
        return bool(base64.b64decode(secret.removeprefix("whsec_"), validate=True))
    except ValueError:
        return False


def function_url_event(
    method: str, target: str, headers: list[tuple[str, str]], body: bytes, host: str, source_ip: str
) -> dict[str, Any]:
    """The event Lambda gives a function for one Function URL request (payload format 2.0).

    Header names are lower-cased and repeated headers joined with commas;
    cookies go to ``cookies``; a body that is not UTF-8 is base64 with
    ``isBase64Encoded`` true, as Lambda does for binary content.
    """
    path, _, query = target.partition("?")
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        if name.lower() == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        key = name.lower()
        merged[key] = f"{merged[key]},{value}" if key in merged else value
    now = datetime.now(UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": merged,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split(".")[0].split(":")[0],
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": merged.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if query:
        parameters: dict[str, str] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            parameters[key] = f"{parameters[key]},{value}" if key in parameters else value
        event["queryStringParameters"] = parameters
    if cookies:
        event["cookies"] = cookies
    if body:
        try:
            event["body"] = body.decode("utf-8")
        except UnicodeDecodeError:
            event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    return event


def http_answer(result: object) -> tuple[int, dict[str, str], bytes]:
    """A handler's return value as Function URLs turn it into a response: status, headers, body bytes.

    A dict with ``statusCode`` is a response (its body base64-decoded when it
    says so); anything else is JSON with status 200, as Lambda infers it.
    """
    if not (isinstance(result, dict) and "statusCode" in result):
        return 200, {"content-type": "application/json"}, json.dumps(result).encode()
    headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
    return int(result["statusCode"]), headers, raw


class Launcher:
    """The launcher's handler, called one request at a time, as one Lambda execution environment runs it."""

    def __init__(self, handler: ModuleType, timeout_seconds: float) -> None:
        self.handler = handler
        self.timeout_seconds = timeout_seconds
        self._lock = threading.Lock()  # an environment runs one invocation at a time; the handler relies on it

    def __call__(self, event: dict[str, Any]) -> object:
        from tools.lambda_context import LambdaContext

        context = LambdaContext(
            function_name="ec2-sessions-launcher",
            invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:ec2-sessions-launcher",
            log_group_name="/aws/lambda/ec2-sessions-launcher",
            aws_request_id=event["requestContext"]["requestId"],
            timeout_seconds=self.timeout_seconds,
        )
        with self._lock:
            return self.handler.lambda_handler(event, context)


def request_handler(launcher: Launcher) -> type[BaseHTTPRequestHandler]:
    class FunctionUrl(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "ec2-sessions-local"

        def handle_any(self) -> None:
            try:
                body = self.read_body()
            except ValueError as error:
                self.send(400, {"content-type": "application/json"}, json.dumps({"message": str(error)}).encode())
                return
            if body is None:
                self.send(413, {"content-type": "application/json"}, b'{"message":"Request Entity Too Large"}')
                return
            host = self.headers.get("host", f"127.0.0.1:{self.server.server_address[1]}")
            event = function_url_event(
                self.command, self.path, list(self.headers.items()), body, host, self.client_address[0]
            )
            try:
                status, headers, raw = http_answer(launcher(event))
            except Exception:  # noqa: BLE001 - the handler raised: Lambda answers 502, the trace goes to the log
                traceback.print_exc(file=sys.stderr)
                status, headers, raw = 502, {"content-type": "application/json"}, b'{"message":"Internal Server Error"}'
            self.send(status, headers, raw)

        def read_body(self) -> bytes | None:
            """The request's body bytes (``Content-Length`` or chunked); ``None`` when over the limit."""
            if "chunked" in self.headers.get("transfer-encoding", "").lower():
                chunks, size = [], 0
                while True:
                    line = self.rfile.readline(1024).split(b";")[0].strip()
                    length = int(line, 16)
                    if length == 0:
                        while self.rfile.readline(1024).strip():  # trailers
                            pass
                        return b"".join(chunks)
                    size += length
                    if size > MAX_REQUEST_BYTES:
                        self.close_connection = True
                        return None
                    chunks.append(self.rfile.read(length))
                    self.rfile.readline(1024)
            length = int(self.headers.get("content-length") or 0)
            if length < 0:
                raise ValueError("Content-Length must not be negative")
            if length > MAX_REQUEST_BYTES:
                self.close_connection = True
                return None
            return self.rfile.read(length)

        def send(self, status: int, headers: dict[str, str], raw: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(name, value)
            self.send_header("content-length", str(len(raw)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(raw)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = handle_any

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    return FunctionUrl


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8787), help="0: any free port")
    parser.add_argument("--github", action="store_true", help="serve a stand-in for GitHub's App API too")
    args = parser.parse_args(argv)
    given = dict(os.environ)  # the caller's own settings, before this process adds fake credentials
    secret = given.get("SECRET") or new_secret()
    if not standard_key_ok(secret):
        print(
            "make local: SECRET is not base64, so Standard Webhooks (the client's scheme) cannot verify",
            file=sys.stderr,
        )
    stdout, sys.stdout = sys.stdout, sys.stderr  # the three lines go to stdout; every log and metric to stderr
    go_offline()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    import boto3

    from tools.cfn_template import load_template
    from tools.lambda_runtime import LOGICAL_IDS, load_handler, template_environment
    from tools.local_stack import make_demo_profile, make_launcher_stack
    from tools.moto_server import MotoServer

    with MotoServer() as moto, local_github(args.github) as github:
        os.environ["AWS_ENDPOINT_URL"] = moto.url

        def aws(service: str, region: str) -> Any:
            return boto3.client(service, region_name=region)

        template = load_template()
        env = {**template_environment("launcher", template), **DEFAULT_ENV, "PROFILES": make_demo_profile(aws, REGION)}
        if github is not None:
            env.update(github_app(github, aws))
        env.update({name: given[name] for name in env if given.get(name)})  # MAX_LIVE_SESSIONS=5 make local
        env.update(make_launcher_stack(aws, secret, REGION))
        os.environ.update(env)
        timeout = float(template["Resources"][LOGICAL_IDS["launcher"]]["Properties"].get("Timeout", 30))
        launcher = Launcher(load_handler("launcher"), timeout)
        try:
            server = ThreadingHTTPServer(("127.0.0.1", args.port), request_handler(launcher))
        except (OSError, OverflowError) as error:
            reason = error.strerror if isinstance(error, OSError) else str(error)
            print(f"make local: cannot listen on 127.0.0.1:{args.port}: {reason} (try PORT=...)")
            return 1
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name="function-url", daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}"
        stdout.write(f"url={url}\nsecret={secret}\naws_endpoint_url={moto.url}\n")
        stdout.flush()
        app = f", GitHub's App API stood in for on {github.url}" if github is not None else ""
        print(f"launcher Function URL on {url}, AWS on moto {moto.url}{app} (bases {env['SESSION_BASES']})")
        print(
            f"operators: AWS_ENDPOINT_URL={moto.url} AWS_REGION={REGION} AWS_ACCESS_KEY_ID=local "
            "AWS_SECRET_ACCESS_KEY=local ec2-sessions list; Ctrl-C stops"
        )
        while not stop.wait(3600):
            pass
        print("stopping")
        server.shutdown()
        server.server_close()
    return 0


@contextlib.contextmanager
def local_github(serve: bool) -> Iterator[Any]:
    """The tests' fake GitHub API on a free loopback port, its clock the time of day; ``None`` unless asked."""
    if not serve:
        yield None
        return
    import time

    from tests.support.github_fake import Clock, GitHubFake

    class TimeOfDay(Clock):
        """The launcher signs its App JWTs with the time of day, which the fake checks: it keeps the same."""

        def __call__(self) -> float:
            return time.time()

    with GitHubFake(TimeOfDay()) as fake:
        yield fake


def github_app(fake: Any, aws: Any) -> dict[str, str]:
    """The App installed on the owner of the sample delivery's repository, its id and key in moto: the settings.

    The owner and the installation are the sample's (``events/launcher-github-queued.json``),
    so the sample, signed with this server's secret, is served as GitHub would have it served.
    """
    sample = json.loads(json.loads((ROOT / "events" / "launcher-github-queued.json").read_text())["body"])
    fake.install(sample["repository"]["full_name"].split("/")[0], installation_id=sample["installation"]["id"])
    arn = fake.app_secret(aws("secretsmanager", REGION))
    return {"GITHUB_APP_SECRET_ARN": arn, "GITHUB_API_URL": fake.url}


if __name__ == "__main__":
    sys.exit(main())
