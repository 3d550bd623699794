"""A fake GitHub REST API over HTTP on loopback, checking what GitHub checks.

It serves the calls the GitHub App client makes, under ``/api/v3`` as a
GitHub Enterprise Server does (so the client's API root has a path), and
refuses what GitHub would refuse:

- an App JWT must be RS256, signed by the App's key, with ``iss`` the App id
  (a string), ``iat`` not in the future beyond a minute, ``exp`` not passed
  and at most ten minutes after ``iat`` (and after now);
- an installation token must be one it issued, unexpired, for an
  installation that covers the repository or organisation asked about;
- ``Accept: application/vnd.github+json``, ``X-GitHub-Api-Version:
  2022-11-28`` and a ``User-Agent`` are required (GitHub only advises the
  first two; the fake insists, so the client cannot forget them);
- generate-jitconfig bodies: ``name`` 1 to 64 characters and unique in its
  repository or organisation (``409``), ``runner_group_id`` an integer naming
  a group, ``labels`` a non-empty list of strings, ``work_folder`` a string;
- deleting a busy runner is ``422``, as on GitHub;
- webhook deliveries (list, redeliver) take the App's JWT only (an
  installation token is ``401``, as GitHub answers any non-JWT there); the
  listing is newest first, ``per_page`` clamped to 100, paged by an opaque
  ``cursor`` in ``Link: rel="next"`` (an unknown cursor is ``422``), shows
  the last three days, filters by ``status=success|failure``; a redelivery
  of an unknown id is ``404``, of one older than three days ``422``;
- check runs, workflow runs and re-runs take an installation token covering
  the repository and holding the permission GitHub asks for (``checks:
  write``, ``actions: read``/``write``; without it ``403 Resource not
  accessible by integration``); request bodies are checked against GitHub's
  own OpenAPI schemas (``tests/events/github/api/``), and more strictly than
  GitHub, unknown keys are refused (``422``); a check run's ``head_sha`` must
  be a commit's 40 hex characters and ``status: completed`` or
  ``completed_at`` needs a ``conclusion`` (``422``); an unknown run is
  ``404``; re-running a run that has not completed is ``403`` ("This
  workflow is already running", as GitHub answers).

Answers have GitHub's documented shapes and headers (``x-ratelimit-*`` on
every one, ``Link`` on listings, pointing at ``repositories/{id}/...`` as
GitHub's do); check runs and workflow runs are GitHub's documented examples
with the fake's values laid over them. Its time is a ``Clock`` the tests
move, shared with the client under test (``fake.app()``), so token expiry,
JWT windows and rate-limit waits are exact and instant.

State is plain attributes: ``installations`` (``install``, with the
permissions granted), ``runners`` (per scope root, lower case),
``deliveries`` (newest first; ``add_delivery``), ``redeliveries`` (the ids
asked for), ``check_runs`` (request bodies per repository root, lower case),
``workflow_runs`` (by ``(root, id)``; ``add_workflow_run``), ``reruns``,
``calls``, ``counts`` (per route). Knobs: ``rate_limit`` and ``fail`` answer
the next requests (of a route) with a limit or an error;
``redelivery_status`` is the status code a redelivery meets (default 200).
"""

from __future__ import annotations

import base64
import copy
import json
import re
import secrets
import string
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

API_PREFIX = "/api/v3"
APP_ID = 424242
API_VERSIONS = ("2022-11-28",)
MEDIA_TYPE = "application/vnd.github+json"
IAT_SKEW_SECONDS = 60
MAX_JWT_SECONDS = 600
DOCS = "https://docs.github.com/rest"
_NAME = r"[A-Za-z0-9._-]+"
_ROUTES = [
    ("POST", "create-installation-token", r"app/installations/(?P<installation>\d+)/access_tokens"),
    ("GET", "get-installation", rf"repos/(?P<owner>{_NAME})/(?P<repo>{_NAME})/installation"),
    ("GET", "get-installation", rf"orgs/(?P<org>{_NAME})/installation"),
    ("POST", "generate-jitconfig", rf"(?P<root>repos/{_NAME}/{_NAME}|orgs/{_NAME})/actions/runners/generate-jitconfig"),
    ("GET", "list-runners", rf"(?P<root>repos/{_NAME}/{_NAME}|orgs/{_NAME}|repositories/\d+)/actions/runners"),
    ("GET", "get-runner", rf"(?P<root>repos/{_NAME}/{_NAME}|orgs/{_NAME})/actions/runners/(?P<id>\d+)"),
    ("DELETE", "delete-runner", rf"(?P<root>repos/{_NAME}/{_NAME}|orgs/{_NAME})/actions/runners/(?P<id>\d+)"),
    ("GET", "list-webhook-deliveries", r"app/hook/deliveries"),
    ("POST", "redeliver-webhook-delivery", r"app/hook/deliveries/(?P<delivery>\d+)/attempts"),
    ("POST", "create-check-run", rf"(?P<root>repos/{_NAME}/{_NAME})/check-runs"),
    ("GET", "get-workflow-run", rf"(?P<root>repos/{_NAME}/{_NAME})/actions/runs/(?P<run>\d+)"),
    ("POST", "rerun-failed-jobs", rf"(?P<root>repos/{_NAME}/{_NAME})/actions/runs/(?P<run>\d+)/rerun-failed-jobs"),
]
_READ_ONLY_LABELS = {"self-hosted", "linux", "x64", "arm64"}
_JWT_ROUTES = {"create-installation-token", "get-installation", "list-webhook-deliveries", "redeliver-webhook-delivery"}
_PERMISSION = {  # route: (permission, level) an installation token needs, as GitHub documents
    "create-check-run": ("checks", "write"),
    "get-workflow-run": ("actions", "read"),
    "rerun-failed-jobs": ("actions", "write"),
}
DEFAULT_PERMISSIONS = {
    "administration": "write",
    "organization_self_hosted_runners": "write",
    "checks": "write",
    "actions": "write",
    "metadata": "read",
}
DELIVERY_DAYS = 3  # GitHub keeps, lists and redelivers a webhook's deliveries for three days
OPENAPI = Path(__file__).resolve().parents[1] / "events" / "github" / "api" / "reconcile-operations.openapi.json"
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}", re.ASCII)  # SHA-1 or SHA-256 repositories


@cache
def _key(which: str) -> tuple[str, str]:
    """A 2048-bit RSA key pair (private PEM in GitHub's PKCS#1 form, public PEM), made once per test run."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def app_private_key() -> str:
    return _key("app")[0]


def other_private_key() -> str:
    """A well-formed RSA key that is not the App's: GitHub refuses what it signs."""
    return _key("other")[0]


@cache
def _loaded_key(pem: str):
    return serialization.load_pem_private_key(pem.encode(), password=None)


class Clock:
    """Epoch seconds that only tests move; ``sleep`` advances it and records the wait."""

    def __init__(self, start: float | None = None):
        self.now = float(int(time.time() if start is None else start))
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


@dataclass
class FakeRunner:
    id: int
    name: str
    status: str = "offline"
    busy: bool = False
    labels: list[str] = field(default_factory=lambda: ["self-hosted"])

    def shown(self) -> dict:
        """The runner as GitHub's REST API shows it."""
        return {
            "id": self.id,
            "name": self.name,
            "os": "Linux",
            "status": self.status,
            "busy": self.busy,
            "ephemeral": True,
            "labels": [
                {"id": index + 1, "name": label, "type": "read-only" if label in _READ_ONLY_LABELS else "custom"}
                for index, label in enumerate(self.labels)
            ],
        }


@dataclass
class Installation:
    id: int
    account: str
    target_type: str = "Organization"
    repositories: set[str] | None = None  # lower-case names; None: every repository of the account
    permissions: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_PERMISSIONS))

    def allows(self, permission: str, level: str) -> bool:
        granted = self.permissions.get(permission)
        return granted == "write" or granted == level

    def covers(self, owner: str, repo: str | None) -> bool:
        if owner.lower() != self.account.lower():
            return False
        if repo is None:
            return self.target_type == "Organization"
        return self.repositories is None or repo.lower() in self.repositories


@dataclass
class FakeDelivery:
    """One delivery of the App's webhook; ``delivered_at`` in epoch seconds."""

    id: int
    guid: str
    delivered_at: float
    status_code: int = 200
    event: str = "workflow_job"
    action: str | None = "queued"
    redelivery: bool = False
    installation_id: int | None = None
    repository_id: int | None = None
    duration: float = 0.27

    def shown(self) -> dict:
        """The delivery as GitHub lists it (``hook-delivery-item``)."""
        if self.status_code == 0:
            status = "failed to connect"
        elif 200 <= self.status_code < 300:
            status = "OK"
        else:
            status = f"Invalid HTTP Response: {self.status_code}"
        return {
            "id": self.id,
            "guid": self.guid,
            "delivered_at": _iso(self.delivered_at),
            "redelivery": self.redelivery,
            "duration": self.duration,
            "status": status,
            "status_code": self.status_code,
            "event": self.event,
            "action": self.action,
            "installation_id": self.installation_id,
            "repository_id": self.repository_id,
            "throttled_at": None,
        }


@dataclass
class FakeWorkflowRun:
    id: int
    root: str  # repos/O/R, lower case
    status: str = "completed"
    conclusion: str | None = "failure"
    run_attempt: int = 1
    head_sha: str = "acb5820ced9479c074f688cc328bf03f341a511d"


@dataclass(frozen=True)
class Call:
    """A request as the fake saw it; ``auth`` is ``app``, ``installation:<id>`` or what was wrong."""

    method: str
    route: str
    path: str
    query: dict
    auth: str
    body: object
    status: int


@dataclass
class _Planned:
    times: int
    status: int
    headers: dict
    message: str
    route: str | None


class GitHubFake:
    """The fake API and its state; a context manager that serves it on a free loopback port."""

    def __init__(self, clock: Clock | None = None):
        self.app_id = APP_ID
        self.private_key_pem = app_private_key()
        self._public_pem = _key("app")[1]
        self.clock = clock or Clock()
        self.url = ""  # the API root, set on __enter__
        self.installations: dict[int, Installation] = {}
        self.runners: dict[str, dict[int, FakeRunner]] = {}
        self.runner_groups: set[int] = {1}
        self.tokens: dict[str, tuple[int, float]] = {}  # token -> (installation id, expires at)
        self.token_lifetime = 3600.0
        self.send_link = True
        self.link_root: str | None = None  # another root for Link URLs (a misbehaving server)
        self.deliveries: list[FakeDelivery] = []  # newest first
        self.redeliveries: list[int] = []  # delivery ids, in the order they were asked for
        self.redelivery_status = 200  # the status code the launcher answers a redelivery with
        self.check_runs: dict[str, list[dict]] = {}  # repository root (lower case) -> request bodies
        self.workflow_runs: dict[tuple[str, int], FakeWorkflowRun] = {}  # (root, run id) -> run
        self.reruns: list[tuple[str, int, object]] = []  # (root, run id, request body)
        self.calls: list[Call] = []
        self.counts: Counter[str] = Counter()
        self.jit_configs: list[str] = []
        self.limit_status = 403
        self._buckets: dict[str, list[float]] = {}  # identity -> [remaining, reset at]
        self._quota_all: tuple[int, float] | None = None
        self._planned: list[_Planned] = []
        self._repo_ids: dict[str, int] = {}
        self._next_id = 23
        self._next_delivery = 12345678
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None

    # -- life ----------------------------------------------------------------

    def __enter__(self) -> GitHubFake:
        fake = self

        class Handler(_Handler):
            pass

        Handler.fake = fake
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}{API_PREFIX}"
        threading.Thread(target=self._server.serve_forever, args=(0.02,), name="github-fake", daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def app(self, **options):
        """The client under test, pointed at this fake, on its clock; ``options`` go to ``GitHubApp``."""
        from session_naming.github import GitHubApp

        options = {"clock": self.clock, "sleep": self.clock.sleep, **options}
        pem = options.pop("key", self.private_key_pem)
        app = GitHubApp(self.url, options.pop("app_id", str(self.app_id)), pem, **options)
        loaded = _loaded_key(pem) if pem in (app_private_key(), other_private_key()) else None
        if loaded is not None:
            # cryptography checks an RSA key as it parses it (about 60 ms); the fake's own
            # keys are parsed once per run, not once per test. The client's parsing stays
            # tested wherever a test builds its GitHubApp itself (load_app, a bad PEM).
            app._key = loaded
        return app

    # -- state the tests set -------------------------------------------------

    def install(
        self,
        account: str,
        repositories: list[str] | None = None,
        *,
        installation_id: int | None = None,
        permissions: dict[str, str] | None = None,
    ) -> int:
        """Install the App on an organisation (all its repositories, or those named); answer its id.

        ``permissions`` replaces the App's granted permissions (``DEFAULT_PERMISSIONS``).
        """
        with self._lock:
            ident = installation_id or 3456996 + len(self.installations)
            repos = None if repositories is None else {r.lower() for r in repositories}
            granted = dict(DEFAULT_PERMISSIONS if permissions is None else permissions)
            self.installations[ident] = Installation(ident, account, "Organization", repos, granted)
            return ident

    def app_secret(self, secretsmanager, name: str = "ec2-sessions/github-app") -> str:
        """Store this App's id and key as the stack's App secret (JSON, as the README says); answer its ARN."""
        secret = json.dumps({"app_id": str(self.app_id), "private_key": self.private_key_pem})
        return secretsmanager.create_secret(Name=name, SecretString=secret)["ARN"]

    def add_runner(self, root: str, name: str, *, status: str = "offline", busy: bool = False) -> FakeRunner:
        """Register a runner directly (``root``: ``repos/O/R`` or ``orgs/O``), as another tool would."""
        with self._lock:
            runner = FakeRunner(self._new_id(), name, status, busy)
            self.runners.setdefault(root.lower(), {})[runner.id] = runner
            return runner

    def add_delivery(
        self,
        guid: str | None = None,
        *,
        status_code: int = 200,
        ago: float = 0.0,
        event: str = "workflow_job",
        action: str | None = "queued",
        redelivery: bool = False,
        installation_id: int | None = None,
        repository_id: int | None = None,
    ) -> FakeDelivery:
        """Record a delivery of the App's webhook made ``ago`` seconds back; kept newest first."""
        with self._lock:
            self._next_delivery += 1
            delivery = FakeDelivery(
                self._next_delivery,
                guid or str(uuid.uuid4()),
                self.clock() - ago,
                status_code,
                event,
                action,
                redelivery,
                installation_id,
                repository_id,
            )
            self.deliveries.append(delivery)
            self.deliveries.sort(key=lambda d: (d.delivered_at, d.id), reverse=True)
            return delivery

    def add_workflow_run(
        self,
        root: str,
        *,
        status: str = "completed",
        conclusion: str | None = "failure",
        run_attempt: int = 1,
        head_sha: str | None = None,
    ) -> FakeWorkflowRun:
        """A workflow run in a repository (``root``: ``repos/O/R``), as a push would make."""
        with self._lock:
            ident = 30433642 + self._new_id()
            run = FakeWorkflowRun(
                ident, root.lower(), status, conclusion, run_attempt, head_sha or secrets.token_hex(20)
            )
            self.workflow_runs[(run.root, ident)] = run
            return run

    def runner_names(self, root: str) -> set[str]:
        with self._lock:
            return {r.name for r in self.runners.get(root.lower(), {}).values()}

    def set_quota(self, remaining: int, reset_in: float = 60.0) -> None:
        """Every credential has ``remaining`` requests until ``reset_in`` seconds from now."""
        with self._lock:
            self._buckets.clear()
            self._quota_all = (remaining, self.clock() + reset_in)

    def rate_limit(
        self,
        times: int = 1,
        *,
        reset_in: float | None = None,
        retry_after: int | None = None,
        status: int = 403,
        route: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests (of ``route``) with a rate limit.

        ``retry_after`` gives a secondary limit's ``retry-after`` header;
        ``reset_in`` a primary limit's ``x-ratelimit-remaining: 0`` and
        ``x-ratelimit-reset``; neither, a secondary limit with no header.
        """
        headers, message = (
            {},
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
        )
        if retry_after is not None:
            headers["retry-after"] = str(retry_after)
        elif reset_in is not None:
            headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(self.clock() + reset_in))}
            message = "API rate limit exceeded for installation."
        with self._lock:
            self._planned.append(_Planned(times, status, headers, message, route))

    def fail(self, times: int = 1, *, status: int = 502, route: str | None = None) -> None:
        """Answer the next ``times`` requests (of ``route``) with ``status``."""
        with self._lock:
            self._planned.append(_Planned(times, status, {}, "Server Error", route))

    def calls_to(self, route: str) -> list[Call]:
        with self._lock:
            return [call for call in self.calls if call.route == route]

    # -- answers -------------------------------------------------------------

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _repo_id(self, root: str) -> int:
        return self._repo_ids.setdefault(root.lower(), 1296269 + len(self._repo_ids))

    def _root_of_repo_id(self, ident: int) -> str | None:
        return next((root for root, value in self._repo_ids.items() if value == ident), None)

    def handle(self, method: str, raw_path: str, headers, body: bytes) -> tuple[int, dict, object]:
        """One request in, (status, headers, JSON body) out. Holds the lock: state is consistent per call."""
        with self._lock:
            parts = urlsplit(raw_path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            path = parts.path
            route, match = None, None
            if path.startswith(API_PREFIX + "/"):
                relative = path[len(API_PREFIX) + 1 :]
                for verb, name, pattern in _ROUTES:
                    match = re.fullmatch(pattern, relative, re.ASCII)
                    if match and verb == method:
                        route = name
                        break
                    match = None
            else:
                relative = path
            status, extra, answer, auth, parsed = self._answer(method, route, match, query, headers, body)
            self.calls.append(Call(method, route or "unknown", relative, query, auth, parsed, status))
            self.counts[route or "unknown"] += 1
            return status, extra, answer

    def _answer(self, method, route, match, query, headers, body):
        auth, parsed = "none", None
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                return 400, {}, _error("Problems parsing JSON"), auth, body
        if route is None:
            return 404, {}, _error("Not Found"), auth, parsed
        if not headers.get("User-Agent"):
            return 403, {}, _error("Request forbidden by administrative rules. Send a User-Agent header."), auth, parsed
        if headers.get("Accept") != MEDIA_TYPE:
            return 400, {}, _error(f"the fake requires Accept: {MEDIA_TYPE}"), auth, parsed
        if headers.get("X-GitHub-Api-Version") not in API_VERSIONS:
            return 400, {}, _error("X-GitHub-Api-Version is missing or not a supported version"), auth, parsed
        for planned in self._planned:
            if planned.times > 0 and planned.route in (None, route):
                planned.times -= 1
                return planned.status, dict(planned.headers), _error(planned.message), "planned", parsed
        credential = _bearer(headers.get("Authorization", ""))
        if route in _JWT_ROUTES:
            problem = self._jwt_problem(credential)
            if problem:
                return 401, {}, _error(problem), "bad-jwt", parsed
            auth = "app"
        else:
            installation = self._installation_of_token(credential)
            if installation is None:
                return 401, {}, _error("Bad credentials"), "bad-token", parsed
            auth = f"installation:{installation.id}"
        limited = self._spend(auth)
        if limited is not None:
            return self.limit_status, limited, _error("API rate limit exceeded."), auth, parsed
        limits = self._limit_headers(auth)
        handler = getattr(self, "_" + route.replace("-", "_"))
        if auth != "app":
            root = match.groupdict().get("root")
            if root and root.startswith("repositories/"):
                root = self._root_of_repo_id(int(root.split("/")[1]))
            installation = self.installations[int(auth.split(":")[1])]
            if root is None or not installation.covers(*_owner_repo(root)):
                return 404, limits, _error("Not Found"), auth, parsed
            needed = _PERMISSION.get(route)
            if needed is not None and not installation.allows(*needed):
                return 403, limits, _error("Resource not accessible by integration"), auth, parsed
            status, extra, answer = handler(root, match, query, parsed)
        else:
            status, extra, answer = handler(match, query, parsed)
        return status, {**limits, **extra}, answer, auth, parsed

    def _jwt_problem(self, credential: str | None) -> str | None:
        if not credential:
            return "A JSON web token could not be decoded"
        try:
            header = jwt.get_unverified_header(credential)
            claims = jwt.decode(
                credential,
                self._public_pem,
                algorithms=["RS256"],
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False, "verify_iss": False},
            )
        except jwt.PyJWTError:
            return "A JSON web token could not be decoded"
        if header.get("alg") != "RS256":
            return "A JSON web token could not be decoded"
        iat, exp, iss = claims.get("iat"), claims.get("exp"), claims.get("iss")
        now = self.clock()
        if iss != str(self.app_id):
            return "'Issuer' claim ('iss') must be the App's id"
        if not isinstance(iat, int) or iat > now + IAT_SKEW_SECONDS:
            return "'Issued at' claim ('iat') must be an Integer representing a time in the past"
        if not isinstance(exp, int) or exp <= now:
            return "'Expiration time' claim ('exp') must be a numeric value representing the future time"
        if exp - iat > MAX_JWT_SECONDS or exp > now + MAX_JWT_SECONDS:
            return "'Expiration time' claim ('exp') is too far in the future"
        return None

    def _installation_of_token(self, credential: str | None) -> Installation | None:
        issued = self.tokens.get(credential or "")
        if issued is None or self.clock() >= issued[1]:
            return None
        return self.installations.get(issued[0])

    def _spend(self, identity: str) -> dict | None:
        """Take one request from the credential's hourly bucket; headers of a refusal when it is empty."""
        now = self.clock()
        bucket = self._buckets.get(identity)
        if bucket is None or now >= bucket[1]:
            quota = self._quota_all if self._quota_all and now < self._quota_all[1] else (5000, now + 3600)
            bucket = self._buckets[identity] = [quota[0], quota[1]]
        if bucket[0] <= 0:
            return {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(bucket[1]))}
        bucket[0] -= 1
        return None

    def _limit_headers(self, identity: str) -> dict:
        remaining, reset = self._buckets[identity]
        return {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": str(int(remaining)),
            "x-ratelimit-reset": str(int(reset)),
            "x-ratelimit-resource": "core",
        }

    # -- routes (JWT) --------------------------------------------------------

    def _create_installation_token(self, match, query, body):
        installation = self.installations.get(int(match["installation"]))
        if installation is None:
            return 404, {}, _error("Not Found")
        if body is not None and not isinstance(body, dict):
            return 422, {}, _error("Invalid request.")
        token = "ghs_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(36))
        expires = self.clock() + self.token_lifetime
        self.tokens[token] = (installation.id, expires)
        return (
            201,
            {},
            {
                "token": token,
                "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires)),
                "permissions": dict(installation.permissions),
                "repository_selection": "all" if installation.repositories is None else "selected",
            },
        )

    def _get_installation(self, match, query, body):
        owner = match.groupdict().get("org") or match["owner"]
        repo = match.groupdict().get("repo")
        for installation in self.installations.values():
            if installation.covers(owner, repo):
                return (
                    200,
                    {},
                    {
                        "id": installation.id,
                        "account": {"login": installation.account, "type": installation.target_type},
                        "access_tokens_url": f"{self.url}/app/installations/{installation.id}/access_tokens",
                        "repository_selection": "all" if installation.repositories is None else "selected",
                        "app_id": self.app_id,
                        "target_type": installation.target_type,
                        "permissions": {"administration": "write", "organization_self_hosted_runners": "write"},
                    },
                )
        return 404, {}, _error("Not Found")

    def _list_webhook_deliveries(self, match, query, body):
        try:
            per_page = min(int(query.get("per_page", 30)), 100)  # GitHub clamps, as for every listing
        except ValueError:
            return 422, {}, _error("Invalid request.")
        if per_page < 1:
            return 422, {}, _error("Invalid request.")
        kept = [d for d in self.deliveries if d.delivered_at > self.clock() - DELIVERY_DAYS * 86400]
        wanted = query.get("status")
        if wanted not in (None, "success", "failure"):
            return 422, {}, _error("Invalid request.\n\nstatus must be one of success, failure.")
        if wanted is not None:
            low, high = (200, 399) if wanted == "success" else (400, 599)
            kept = [d for d in kept if low <= d.status_code <= high]
        start = 0
        if "cursor" in query:
            cursor = query["cursor"]
            after = next((i for i, d in enumerate(kept) if cursor == f"v1_{d.id}"), None)
            if after is None:
                return 422, {}, _error("Invalid request.\n\nThe cursor is not valid.")
            start = after + 1
        shown = kept[start : start + per_page]
        extra = {}
        if self.send_link and start + per_page < len(kept):
            filters = "" if wanted is None else f"&status={wanted}"
            url = f"{self.link_root or self.url}/app/hook/deliveries?per_page={per_page}{filters}"
            extra["link"] = f'<{url}&cursor=v1_{shown[-1].id}>; rel="next"'
        return 200, extra, [d.shown() for d in shown]

    def _redeliver_webhook_delivery(self, match, query, body):
        ident = int(match["delivery"])
        original = next((d for d in self.deliveries if d.id == ident), None)
        if original is None:
            return 404, {}, _error("Not Found")
        if original.delivered_at <= self.clock() - DELIVERY_DAYS * 86400:
            return 422, {}, _error("Validation Failed: only deliveries of the past three days are redelivered")
        self.redeliveries.append(ident)
        self._next_delivery += 1
        again = FakeDelivery(
            self._next_delivery,
            original.guid,
            self.clock(),
            self.redelivery_status,
            original.event,
            original.action,
            True,
            original.installation_id,
            original.repository_id,
        )
        self.deliveries.insert(0, again)
        return 202, {}, {}

    # -- routes (installation token) ----------------------------------------

    def _generate_jitconfig(self, root, match, query, body):
        if not isinstance(body, dict):
            return 422, {}, _error("Invalid request: a JSON object is required.")
        unknown = set(body) - {"name", "runner_group_id", "labels", "work_folder"}
        name, group, labels = body.get("name"), body.get("runner_group_id"), body.get("labels")
        problems = [f"unknown key {key}" for key in sorted(unknown)]
        if not isinstance(name, str) or not 1 <= len(name) <= 64:
            problems.append("name must be a string of 1 to 64 characters")
        if not isinstance(group, int) or isinstance(group, bool):
            problems.append("runner_group_id must be an integer")
        if not (isinstance(labels, list) and 1 <= len(labels) <= 100 and all(isinstance(x, str) and x for x in labels)):
            problems.append("labels must be a non-empty array of strings")
        if not isinstance(body.get("work_folder", "_work"), str):
            problems.append("work_folder must be a string")
        if problems:
            return 422, {}, _error("Invalid request: " + "; ".join(problems))
        if group not in self.runner_groups:
            return 404, {}, _error("Not Found")
        scope = self.runners.setdefault(root.lower(), {})
        if any(runner.name.lower() == name.lower() for runner in scope.values()):
            return 409, {}, _error(f"Already exists - A runner with the name {name} already exists.")
        runner = FakeRunner(self._new_id(), name, "offline", False, list(labels))
        scope[runner.id] = runner
        config = _encoded_jit_config(runner, group)
        self.jit_configs.append(config)
        return 201, {}, {"runner": runner.shown(), "encoded_jit_config": config}

    def _list_runners(self, root, match, query, body):
        try:
            per_page = min(int(query.get("per_page", 30)), 100)
            page = int(query.get("page", 1))
        except ValueError:
            return 422, {}, _error("Invalid request.")
        if per_page < 1 or page < 1:
            return 422, {}, _error("Invalid request.")
        runners = sorted(self.runners.get(root.lower(), {}).values(), key=lambda r: r.id)
        shown = runners[(page - 1) * per_page : page * per_page]
        extra = {}
        last = max(1, -(-len(runners) // per_page))
        if self.send_link and last > 1:
            where = f"repositories/{self._repo_id(root)}" if root.startswith("repos/") else root
            url = f"{self.link_root or self.url}/{where}/actions/runners?per_page={per_page}&page="
            links = []
            if page < last:
                links += [f'<{url}{page + 1}>; rel="next"', f'<{url}{last}>; rel="last"']
            if page > 1:
                links += [f'<{url}{page - 1}>; rel="prev"', f'<{url}1>; rel="first"']
            extra["link"] = ", ".join(links)
        return 200, extra, {"total_count": len(runners), "runners": [r.shown() for r in shown]}

    def _get_runner(self, root, match, query, body):
        runner = self.runners.get(root.lower(), {}).get(int(match["id"]))
        if runner is None:
            return 404, {}, _error("Not Found")
        return 200, {}, runner.shown()

    def _create_check_run(self, root, match, query, body):
        problem = _body_problem("/repos/{owner}/{repo}/check-runs", "post", body)
        if problem is None:
            if not body["name"].strip():
                problem = "name can't be blank"
            elif "conclusion" not in body and (body.get("status") == "completed" or "completed_at" in body):
                problem = "conclusion is required when status is completed or completed_at is given"
        if problem is not None:
            return 422, {}, _error("Invalid request.\n\n" + problem)
        if not _SHA.fullmatch(body["head_sha"]):
            return 422, {}, _error(f"No commit found for SHA: {body['head_sha']}")
        self.check_runs.setdefault(root.lower(), []).append(body)
        return 201, {}, self._check_run_shown(root, self._new_id(), body)

    def _check_run_shown(self, root: str, ident: int, body: dict) -> dict:
        """GitHub's documented completed check run, with this one's values laid over it."""
        shown = copy.deepcopy(_example("/repos/{owner}/{repo}/check-runs", "post", "example-of-completed-conclusion"))
        owner, repo = _owner_repo(root)
        conclusion = body.get("conclusion")
        status = "completed" if conclusion is not None else body.get("status", "queued")
        now = _iso(self.clock())
        output = body.get("output") or {}
        url = f"{self.url}/{root}/check-runs/{ident}"
        shown.update(
            id=ident,
            node_id=base64.b64encode(f"CheckRun{ident}".encode()).decode(),
            head_sha=body["head_sha"],
            name=body["name"],
            external_id=body.get("external_id", ""),
            url=url,
            html_url=f"https://github.com/{owner}/{repo}/runs/{ident}",
            details_url=body.get("details_url", shown["details_url"]),
            status=status,
            conclusion=conclusion,
            started_at=body.get("started_at", now),
            completed_at=body.get("completed_at", now) if status == "completed" else None,
            output={
                "title": output.get("title"),
                "summary": output.get("summary"),
                "text": output.get("text"),
                "annotations_count": len(output.get("annotations", [])),
                "annotations_url": f"{url}/annotations",
            },
            check_suite={"id": self._new_id()},
            pull_requests=[],
        )
        shown["app"] = {**shown["app"], "id": self.app_id}
        return shown

    def _get_workflow_run(self, root, match, query, body):
        run = self.workflow_runs.get((root.lower(), int(match["run"])))
        if run is None:
            return 404, {}, _error("Not Found")
        return 200, {}, self._workflow_run_shown(root, run)

    def _workflow_run_shown(self, root: str, run: FakeWorkflowRun) -> dict:
        """GitHub's documented workflow run, with this one's values laid over it."""
        shown = copy.deepcopy(_example("/repos/{owner}/{repo}/actions/runs/{run_id}", "get", "default"))
        owner, repo = _owner_repo(root)
        url = f"{self.url}/{root}/actions/runs/{run.id}"
        shown.update(
            id=run.id,
            node_id=base64.b64encode(f"WorkflowRun{run.id}".encode()).decode(),
            head_sha=run.head_sha,
            status=run.status,
            conclusion=run.conclusion,
            run_attempt=run.run_attempt,
            url=url,
            html_url=f"https://github.com/{owner}/{repo}/actions/runs/{run.id}",
            jobs_url=f"{url}/jobs",
            logs_url=f"{url}/logs",
            check_suite_url=f"{self.url}/{root}/check-suites/{run.id}",
            artifacts_url=f"{url}/artifacts",
            cancel_url=f"{url}/cancel",
            rerun_url=f"{url}/rerun",
            previous_attempt_url=f"{url}/attempts/{run.run_attempt - 1}" if run.run_attempt > 1 else None,
        )
        shown["head_commit"] = {**shown["head_commit"], "id": run.head_sha, "tree_id": run.head_sha}
        for key in ("repository", "head_repository"):
            shown[key] = {**shown[key], "name": repo, "full_name": f"{owner}/{repo}"}
        return shown

    def _rerun_failed_jobs(self, root, match, query, body):
        problem = _body_problem("/repos/{owner}/{repo}/actions/runs/{run_id}/rerun-failed-jobs", "post", body)
        if problem is not None:
            return 422, {}, _error("Invalid request.\n\n" + problem)
        run = self.workflow_runs.get((root.lower(), int(match["run"])))
        if run is None:
            return 404, {}, _error("Not Found")
        if run.status != "completed":
            return 403, {}, _error("This workflow is already running")
        self.reruns.append((root.lower(), run.id, body))
        run.run_attempt += 1
        run.status, run.conclusion = "queued", None
        return 201, {}, {}

    def _delete_runner(self, root, match, query, body):
        scope = self.runners.get(root.lower(), {})
        runner = scope.get(int(match["id"]))
        if runner is None:
            return 404, {}, _error("Not Found")
        if runner.busy:
            return 422, {}, _error(f'Bad request - Runner "{runner.name}" is still running a job"')
        del scope[runner.id]
        return 204, {}, None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms delayed-ACK stall
    fake: GitHubFake

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, headers, answer = self.fake.handle(self.command, self.path, self.headers, body)
        data = b"" if answer is None else json.dumps(answer).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-GitHub-Api-Version-Selected", API_VERSIONS[0])
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if data:
            self.wfile.write(data)

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve

    def log_message(self, format, *args) -> None:  # noqa: A002 (the base class's name)
        pass


def _bearer(header: str) -> str | None:
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() in ("bearer", "token") and value.strip() else None


def _owner_repo(root: str) -> tuple[str, str | None]:
    parts = root.split("/")
    return (parts[1], parts[2]) if parts[0] == "repos" else (parts[1], None)


def _error(message: str) -> dict:
    return {"message": message, "documentation_url": DOCS}


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


@cache
def openapi() -> dict:
    """GitHub's OpenAPI description of the operations the reconcile pass uses (tests/events/github/api)."""
    return json.loads(OPENAPI.read_text(encoding="utf-8"))


def _example(path: str, method: str, name: str) -> dict:
    answer = next(r for code, r in openapi()["paths"][path][method]["responses"].items() if code.startswith("2"))
    return answer["content"]["application/json"]["examples"][name]["value"]


def _body_problem(path: str, method: str, body: object) -> str | None:
    """What GitHub's schema for the request body refuses (and, stricter, any unknown key); ``None`` if nothing."""
    from openapi_schema_validator import OAS30Validator

    request = openapi()["paths"][path][method]["requestBody"]
    schema = request["content"]["application/json"]["schema"]
    if body is None:
        return "a JSON body is required" if request.get("required") else None
    errors = sorted(OAS30Validator(schema).iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path)
        message = errors[0].message if len(errors[0].message) <= 200 else "…" + errors[0].message[-100:]
        return f"{where or 'body'}: {message}"
    unknown = sorted(set(body) - set(schema.get("properties", {}))) if isinstance(body, dict) else []
    return f"unknown key {unknown[0]}" if unknown else None


def _encoded_jit_config(runner: FakeRunner, group: int) -> str:
    """Shaped like GitHub's: base64 JSON of base64 files, one holding a fresh credential.

    As large as GitHub's (over 4 KB since 2025: the RSA parameters of the
    runner's key), so code that stores it must use an SSM tier that holds it.
    """

    def b64(value) -> str:
        return base64.b64encode(json.dumps(value).encode()).decode()

    files = {
        ".runner": b64({"AgentId": runner.id, "AgentName": runner.name, "PoolId": group, "WorkFolder": "_work"}),
        ".credentials": b64({"Scheme": "OAuth", "Data": {"clientId": secrets.token_hex(16)}}),
        ".credentials_rsaparams": b64(
            {part: secrets.token_urlsafe(384) for part in ("d", "dp", "dq", "inverseQ", "p", "q")}
        ),
    }
    return b64(files)
