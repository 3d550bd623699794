"""A small GitHub App client: just-in-time runners registered, listed and deleted.

The launcher registers one runner per job and the collector removes the
registrations that sessions leave behind; the launcher's reconcile pass also
redelivers lost webhook deliveries, shows a failed check run for a job left
without a session and re-runs interrupted jobs. That is a dozen REST calls
and a JWT, so this is a few functions over ``urllib3`` (already loaded with
botocore) rather than an SDK on the cold-start path. PyJWT and cryptography
are imported only when a JWT is signed: a launcher that never meets a GitHub
job never pays for them.

The client takes its HTTP pool, clock and sleep as arguments, so tests run it
against a fake GitHub over loopback with a controlled clock. It follows
GitHub's documented rate-limit rules (``retry-after``, ``x-ratelimit-*``,
writes spaced a second apart) and waits only while a wait fits its budget;
past that it raises ``RateLimited`` for the caller to report.

Three things here are secrets: the App's private key, installation tokens and
a runner's JIT configuration. None of them is ever in a ``repr``, a log or an
exception message; neither is any response body.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any, NoReturn, TypedDict, Unpack
from urllib.parse import quote

import urllib3

from session_naming.name import SessionName, format_expires
from session_naming.settings import GitHubSettings

if TYPE_CHECKING:  # development dependencies, or imported only when a JWT is signed
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    from mypy_boto3_secretsmanager import SecretsManagerClient

API_VERSION = "2022-11-28"
MEDIA_TYPE = "application/vnd.github+json"
USER_AGENT = "ec2-sessions"
RUNNER_JITCONFIG_SUFFIX = "/runner-jitconfig"  # the session's SSM parameter holding the JIT config
RUNNER_BASE_CHARS = 30  # of the base, in a runner name: 30 + 1 + 16 + 1 + 16 = 64, GitHub's limit
WORK_FOLDER = "_work"
PER_PAGE = 100  # GitHub's maximum page size

JWT_BACKDATE_SECONDS = 60  # GitHub's advice against clock drift
JWT_LIFETIME_SECONDS = 9 * 60  # GitHub refuses exp more than 10 minutes after iat
TOKEN_MARGIN_SECONDS = 5 * 60  # an installation token is replaced this long before it expires
RETRY_AFTER_DEFAULT = 60.0  # GitHub: "otherwise, wait for at least one minute"
MAX_PAGES = 1000
MAX_RATE_LIMIT_WAITS = 3  # per call: a limit that keeps coming back is not waited out forever
CHECK_RUN_NAME = "ec2-sessions"  # the check run a job that got no session shows on its commit
MAX_CHECK_TEXT = 65535  # GitHub's limit on a check run's output summary (characters)
JWT_REUSE_SECONDS = 5 * 60  # one JWT serves a listing's pages while this young (it lives nine minutes)

_SEGMENT = re.compile(r"(?!\.{1,2}$)[A-Za-z0-9._-]{1,100}", re.ASCII)
_REGISTRATION = re.compile(
    r"(?P<root>repos/(?P<owner>[A-Za-z0-9._-]{1,100})/(?P<repo>[A-Za-z0-9._-]{1,100})"
    r"|orgs/(?P<org>[A-Za-z0-9._-]{1,100}))/actions/runners/(?P<id>[1-9][0-9]{0,18})",
    re.ASCII,
)
_RUNNER_NAME = re.compile(
    rf"(?P<prefix>[A-Za-z0-9._-]{{1,{RUNNER_BASE_CHARS}}})-(?P<expires>\d{{8}}T\d{{6}}Z)-(?P<token>[0-9a-f]{{16}})",
    re.ASCII,
)
_NEXT_LINK = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?')
_HEAD_SHA = re.compile(r"[0-9a-fA-F]{40}|[0-9a-fA-F]{64}", re.ASCII)  # SHA-1 or SHA-256 repositories
_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    422: "unprocessable",
}


class GitHubError(Exception):
    """GitHub refused or failed a call: its status and a stable code, never a token, key or body.

    ``status`` is 0 when GitHub could not be reached at all.
    """

    def __init__(self, status: int, code: str, operation: str = "call"):
        super().__init__(f"GitHub {operation} failed: HTTP {status} ({code})")
        self.status, self.code, self.operation = status, code, operation

    def __reduce__(self) -> tuple[type[GitHubError], tuple[object, ...]]:
        return type(self), (self.status, self.code, self.operation)


class RateLimited(GitHubError):
    """GitHub asks for a wait longer than the client's budget; ``wait`` is in seconds."""

    def __init__(self, status: int, wait: float, operation: str = "call"):
        super().__init__(status, "rate_limited", operation)
        self.wait = wait
        self.args = (f"GitHub {operation} is rate limited: it asks for a {wait:.0f} s wait, more than the budget",)

    def __reduce__(self) -> tuple[type[GitHubError], tuple[object, ...]]:
        return type(self), (self.status, self.wait, self.operation)


class AppSecretError(ValueError):
    """The GitHub App secret or key cannot be used; the message says why and never repeats it."""


@dataclass(frozen=True)
class Registration:
    """A just-in-time runner GitHub has registered.

    ``path`` is the registration's API path relative to the API root (the
    ``ec2-sessions:github-runner`` tag value). ``encoded_jit_config`` lets
    one runner take one job: it is kept out of ``repr`` and ``str``; never
    pass this object to ``dataclasses.asdict`` or a logger.
    """

    id: int
    name: str
    path: str
    encoded_jit_config: str = field(repr=False)


@dataclass(frozen=True)
class Runner:
    """A registration as GitHub lists it."""

    id: int
    name: str
    status: str  # "online" or "offline"
    busy: bool
    path: str


@dataclass(frozen=True)
class HookDelivery:
    """One delivery of the App's webhook as GitHub lists it (``apps/list-webhook-deliveries``).

    ``delivered_at`` is epoch seconds. A redelivery is a delivery of its own
    (a new ``id``) with the same ``guid``, so "was this event ever received"
    is a question about a ``guid``, never an ``id``. ``status_code`` is what
    the launcher answered (0 or a 5xx when GitHub could not reach it).
    """

    id: int
    guid: str
    delivered_at: float
    status_code: int
    event: str
    action: str | None
    redelivery: bool
    installation_id: int | None
    repository_id: int | None

    @property
    def succeeded(self) -> bool:
        """The launcher answered 2xx: GitHub counts the delivery as received."""
        return 200 <= self.status_code < 300


@dataclass(frozen=True)
class WorkflowRun:
    """The parts of a workflow run a re-run decision needs (``actions/get-workflow-run``).

    GitHub's schema lets ``status`` and ``conclusion`` be null and does not
    require ``run_attempt``; ``None`` stands for each when GitHub leaves it out.
    """

    id: int
    status: str | None  # "queued", "in_progress", "completed", ...
    conclusion: str | None  # "failure", "success", ... once completed
    run_attempt: int | None  # 1 for the first attempt; each re-run adds one


class AppOptions(TypedDict, total=False):
    """``GitHubApp``'s keyword options, as ``load_app`` and ``app_from_secret`` pass them on."""

    http: urllib3.PoolManager | None
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    max_wait: float
    retries: int
    write_interval: float


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: Mapping[str, str]
    data: object


@cache
def default_pool() -> urllib3.PoolManager:
    """One pool per container, made on first use: connections are reused across invocations."""
    return urllib3.PoolManager(num_pools=4, maxsize=4, retries=False, timeout=urllib3.Timeout(connect=5, read=20))


def _segment(value: object, what: str) -> str:
    if not isinstance(value, str) or not _SEGMENT.fullmatch(value):
        raise ValueError(f"{what} must be 1 to 100 of A-Z a-z 0-9 . _ - (GitHub's names)")
    return quote(value, safe="")


def scope_root(scope: str, owner: str, repo: str | None = None) -> str:
    """``repos/{owner}/{repo}`` (scope ``repo``) or ``orgs/{owner}`` (scope ``org``): where runners live."""
    if scope == "repo":
        return f"repos/{_segment(owner, 'owner')}/{_segment(repo, 'repository')}"
    if scope == "org":
        return f"orgs/{_segment(owner, 'organisation')}"
    raise ValueError("scope must be 'repo' or 'org'")


def parse_registration_path(path: object) -> tuple[str, str, str | None] | None:
    """``(scope, owner, repo)`` of a registration path, or ``None`` for anything else.

    A tag holds the path the collector will DELETE, and anyone who may tag a
    resource may write it: only the two registration shapes pass, so no tag
    can point a delete anywhere else in the API.
    """
    if not isinstance(path, str) or len(path) > 300:
        return None
    match = _REGISTRATION.fullmatch(path)
    if match is None:
        return None
    if match["org"] is not None:
        return ("org", match["org"], None) if _SEGMENT.fullmatch(match["org"]) else None
    if not (_SEGMENT.fullmatch(match["owner"]) and _SEGMENT.fullmatch(match["repo"])):
        return None
    return "repo", match["owner"], match["repo"]


@dataclass(frozen=True)
class Scope:
    """One delivery's place on GitHub, built once: its repository, where its runners live, its installation.

    ``kind`` is the stack's ``GITHUB_RUNNER_SCOPE``: runners are registered
    in the repository (``repo``) or its owner organisation (``org``).
    ``installation`` is the delivery's own, or ``None`` for a repository or
    organisation webhook (then ``installation_id`` asks GitHub once per
    container). A registration path is this delivery's only when it lies in
    ``root``, in any letter case, as GitHub compares names: a runner name
    alone proves nothing.
    """

    kind: str
    owner: str
    repo: str
    installation: int | None = None

    @classmethod
    def of_registration(cls, path: object) -> Scope | None:
        """The scope a registration path lies in (for a release with no delivery), or ``None``."""
        where = parse_registration_path(path)
        return None if where is None else cls(where[0], where[1], where[2] or "")

    @property
    def root(self) -> str:
        """``repos/{owner}/{repo}`` or ``orgs/{owner}``: where this delivery's runners are registered."""
        return scope_root(self.kind, self.owner, self.repo if self.kind == "repo" else None)

    def holds(self, path: object) -> bool:
        """Does the registration ``path`` lie in this scope's repository or organisation (any letter case)?"""
        where = parse_registration_path(path)
        if where is None or where[0] != self.kind or where[1].lower() != self.owner.lower():
            return False
        return where[0] == "org" or (where[2] or "").lower() == self.repo.lower()

    def installation_id(self, app: GitHubApp) -> int:
        """The delivery's installation, or the App's installation on the scope (asked once per container)."""
        if self.installation is not None:
            return self.installation
        return _installation_for(app, self.owner.lower(), self.repo.lower() if self.kind == "repo" else None)

    def token(self, app: GitHubApp) -> str:
        """An installation token for this scope (reused until five minutes before it expires)."""
        return app.installation_token(self.installation_id(app))


@cache
def _installation_for(app: GitHubApp, owner: str, repo: str | None) -> int:
    """An App's installation on an account does not move: asked once per container."""
    return app.installation_for(owner, repo)


def runner_name(session: SessionName) -> str:
    """``<first 30 characters of the base>-<expires>-<token>``: at most 64 characters.

    GitHub limits runner names to 64 characters; a session name may have 98.
    The expiry and token stay whole, so the collector can trace a runner back
    to its session and judge its expiry from the name alone.
    """
    if session.legacy:
        raise ValueError("runner names are made for current-form session names only")
    return f"{session.base[:RUNNER_BASE_CHARS]}-{format_expires(session.expires)}-{session.token}"


def sessions_of_runner_name(text: object, bases: Iterable[str]) -> list[SessionName]:
    """The session names of ``bases`` a runner name can stand for; ``[]`` for anything else.

    Two owned bases that share their first 30 characters both answer, so a
    caller can require every candidate to be deletable. Never raises.
    """
    if not isinstance(text, str) or len(text) > 64:
        return []
    match = _RUNNER_NAME.fullmatch(text)
    if match is None:
        return []
    sessions = []
    for base in dict.fromkeys(b for b in bases if isinstance(b, str)):
        if base[:RUNNER_BASE_CHARS] == match["prefix"]:
            session = SessionName.parse(f"{base}/{match['expires']}/{match['token']}")
            if session is not None:
                sessions.append(session)
    return sessions


def load_app(secret_json: str, api_url: str, **options: Unpack[AppOptions]) -> GitHubApp:
    """The App from its Secrets Manager secret, JSON ``{"app_id": "<id>", "private_key": "<PEM>"}``.

    Every problem is named at once; no message repeats the secret. A PEM
    whose line breaks were pasted as ``\\n`` is mended, a common slip when
    a key is put into JSON by hand. ``options`` go to ``GitHubApp``.
    """
    try:
        data = json.loads(secret_json)
    except (TypeError, ValueError):
        data = None
    if not isinstance(data, dict):
        raise AppSecretError('GitHub App secret must be JSON: {"app_id": "<id>", "private_key": "<PEM>"}')
    problems = []
    given_id = data.get("app_id")
    if isinstance(given_id, int) and not isinstance(given_id, bool) and given_id > 0:
        given_id = str(given_id)
    app_id: str | None = None
    if isinstance(given_id, str) and given_id.isascii() and given_id.isdigit() and len(given_id) <= 20:
        app_id = given_id
    else:
        problems.append('"app_id" must be the App\'s numeric id (a string or a number)')
    given_key = data.get("private_key")
    if isinstance(given_key, str) and "\\n" in given_key and "\n" not in given_key.strip():
        given_key = given_key.replace("\\n", "\n")
    key: str | None = None
    if isinstance(given_key, str) and all(mark in given_key for mark in ("-----BEGIN", "PRIVATE KEY-----", "-----END")):
        key = given_key
    else:
        problems.append('"private_key" must be the App\'s private key in PEM, as GitHub gives it for download')
    if app_id is None or key is None:  # exactly when there are problems
        raise AppSecretError("GitHub App secret: " + "; ".join(problems))
    return GitHubApp(api_url, app_id, key, **options)


def app_from_secret(secret_json: str, api_url: str, **options: Unpack[AppOptions]) -> GitHubApp | None:
    """``load_app``, or ``None`` while the secret is the stack's placeholder (an empty ``app_id``): no App yet."""
    try:
        data = json.loads(secret_json)
    except (TypeError, ValueError):
        data = None
    if isinstance(data, dict) and data.get("app_id") in ("", None) and not data.get("private_key"):
        return None
    return load_app(secret_json, api_url, **options)


def configured_app(
    settings: GitHubSettings, secretsmanager: SecretsManagerClient, max_age: int = 300
) -> GitHubApp | None:
    """The stack's GitHub App, or ``None`` when none is configured; what both functions call.

    The secret is read through Powertools Parameters (cached ``max_age``
    seconds, so a new key is picked up within five minutes), and one client
    is kept per secret value, so installation tokens are reused across
    invocations of a container.
    """
    if settings.app_secret_arn is None:
        return None
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    secret = _provider(SecretsProvider, secretsmanager).get(settings.app_secret_arn, max_age=max_age)
    return _app_of(secret, settings.api_url)


@cache
def _provider(provider: Any, client: Any) -> Any:
    return provider(boto3_client=client)


# The container's App's options: none in Lambda (the real clock, GitHub's one second between writes). The tests
# give it their fake GitHub's clock, on which waits pass at once and are recorded (tests/conftest.py).
CONTAINER_OPTIONS: AppOptions = {}


@cache
def _app_of(secret: str, api_url: str) -> GitHubApp | None:
    return app_from_secret(secret, api_url, **CONTAINER_OPTIONS)


def reset() -> None:
    """Forget the container's App and its installation tokens (tests: a new container)."""
    _app_of.cache_clear()
    _provider.cache_clear()
    _installation_for.cache_clear()


class GitHubApp:
    """A GitHub App: its JWT, installation tokens, and the runner calls made with them.

    ``max_wait`` bounds the seconds one call may spend waiting out rate
    limits and retries; ``write_interval`` spaces writes (GitHub asks for a
    second between them; token creation is exempt, as in Octokit's
    throttling). Safe to share between threads.
    """

    def __init__(
        self,
        api_url: str,
        app_id: str | int,
        private_key_pem: str,
        *,
        http: urllib3.PoolManager | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        max_wait: float = 10.0,
        retries: int = 2,
        write_interval: float = 1.0,
    ):
        self.api_url = api_url.rstrip("/")
        self.app_id = str(app_id)
        self._pem = private_key_pem
        self._key: RSAPrivateKey | None = None
        self._http = http
        self._clock, self._sleep = clock, sleep
        self.max_wait, self.retries, self.write_interval = max_wait, retries, write_interval
        self._lock = threading.Lock()
        self._tokens: dict[int, tuple[str, float]] = {}
        self._blocked: dict[str, float] = {}  # per credential: no request before this epoch second
        self._last_write = float("-inf")

    def __repr__(self) -> str:
        return f"GitHubApp(api_url={self.api_url!r}, app_id={self.app_id!r})"

    def __getstate__(self) -> NoReturn:
        raise TypeError("a GitHubApp holds secrets and is not pickled")

    # -- credentials ---------------------------------------------------------

    def _signing_key(self) -> RSAPrivateKey:
        if self._key is None:
            from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
            from cryptography.hazmat.primitives.serialization import load_pem_private_key

            try:
                key = load_pem_private_key(self._pem.encode(), password=None)
            except (ValueError, TypeError, AttributeError):
                raise AppSecretError("the GitHub App's private key is not a readable unencrypted PEM key") from None
            if not isinstance(key, RSAPrivateKey):
                raise AppSecretError("the GitHub App's private key must be an RSA key (GitHub signs with RS256)")
            self._key = key
        return self._key

    def app_jwt(self) -> str:
        """A JWT for the App itself (RS256): ``iat`` a minute back, ``exp`` nine minutes after ``iat``."""
        import jwt

        issued = int(self._clock()) - JWT_BACKDATE_SECONDS
        claims = {"iat": issued, "exp": issued + JWT_LIFETIME_SECONDS, "iss": self.app_id}
        return jwt.encode(claims, self._signing_key(), algorithm="RS256")

    def installation_token(self, installation_id: int) -> str:
        """A token for the installation, reused until 5 minutes before it expires."""
        installation_id = _positive(installation_id, "installation id")
        with self._lock:
            cached = self._tokens.get(installation_id)
        if cached and self._clock() < cached[1] - TOKEN_MARGIN_SECONDS:
            return cached[0]
        operation = "create-installation-token"
        answer = self._call(
            "POST",
            f"app/installations/{installation_id}/access_tokens",
            self.app_jwt(),
            operation,
            expect=(201,),
            paced=False,
        )
        data = answer.data if isinstance(answer.data, dict) else {}
        token, expires = data.get("token"), _epoch(data.get("expires_at"))
        if not isinstance(token, str) or not token or expires is None:
            raise GitHubError(answer.status, "bad_response", operation)
        with self._lock:
            self._tokens[installation_id] = (token, expires)
        return token

    def installation_for(self, owner: str, repo: str | None = None) -> int:
        """The App's installation on a repository, or on an organisation when ``repo`` is ``None``."""
        path = scope_root("repo" if repo is not None else "org", owner, repo)
        answer = self._call("GET", f"{path}/installation", self.app_jwt(), "get-installation")
        data = answer.data if isinstance(answer.data, dict) else {}
        try:
            return _positive(data.get("id"), "installation id")
        except ValueError:
            raise GitHubError(answer.status, "bad_response", "get-installation") from None

    def forget_tokens(self) -> None:
        """Drop every cached installation token (tests; a revoked installation)."""
        with self._lock:
            self._tokens.clear()

    # -- runners -------------------------------------------------------------

    def generate_jitconfig(
        self,
        token: str,
        scope: str,
        owner: str,
        repo: str | None,
        name: str,
        runner_group_id: int,
        labels: Iterable[str],
    ) -> Registration:
        """Register a just-in-time runner; its configuration is in the answer only."""
        root = scope_root(scope, owner, repo)
        labels = list(labels)
        if not isinstance(name, str) or not 1 <= len(name) <= 64:
            raise ValueError("runner name must be 1 to 64 characters")
        if not labels or not all(isinstance(label, str) and label for label in labels):
            raise ValueError("labels must be a non-empty list of non-empty strings")
        body = {
            "name": name,
            "runner_group_id": _positive(runner_group_id, "runner group id"),
            "labels": labels,
            "work_folder": WORK_FOLDER,
        }
        operation = "generate-jitconfig"
        answer = self._call("POST", f"{root}/actions/runners/generate-jitconfig", token, operation, body, (201,))
        data = answer.data if isinstance(answer.data, dict) else {}
        runner, config = data.get("runner"), data.get("encoded_jit_config")
        if not isinstance(runner, dict):
            runner = {}
        try:
            ident: int | None = _positive(runner.get("id"), "runner id")
        except ValueError:
            ident = None
        registered = runner.get("name")
        if ident is None or not isinstance(config, str) or not config or not isinstance(registered, str):
            raise GitHubError(answer.status, "bad_response", operation)
        return Registration(ident, registered, f"{root}/actions/runners/{ident}", config)

    def get_runner(self, token: str, path: str) -> Runner | None:
        """The registration at ``path``, or ``None`` when GitHub no longer has it."""
        _registration(path)
        answer = self._call("GET", path, token, "get-runner", missing_ok=True)
        if answer.status == 404:
            return None
        runner = _runner(answer.data, path.rsplit("/", 1)[0])
        if runner is None:
            raise GitHubError(answer.status, "bad_response", "get-runner")
        return runner

    def delete_runner(self, token: str, path: str) -> bool:
        """Delete a registration; ``False`` when it was already gone (done all the same)."""
        _registration(path)
        return self._call("DELETE", path, token, "delete-runner", expect=(204,), missing_ok=True).status != 404

    def list_runners(self, token: str, scope: str, owner: str, repo: str | None = None) -> list[Runner]:
        """Every registration of a repository or organisation, page by page.

        Follows ``Link: rel="next"`` while GitHub sends it, page numbers
        otherwise; a next link that leaves the API root is refused, so a
        token is never sent to another host.
        """
        root = scope_root(scope, owner, repo)
        base = f"{root}/actions/runners"
        runners: dict[int, Runner] = {}
        path = f"{base}?per_page={PER_PAGE}&page=1"
        for page in range(1, MAX_PAGES + 1):
            answer = self._call("GET", path, token, "list-runners")
            data = answer.data if isinstance(answer.data, dict) else {}
            batch, total = data.get("runners"), data.get("total_count")
            if not isinstance(batch, list) or not isinstance(total, int):
                raise GitHubError(answer.status, "bad_response", "list-runners")
            for item in batch:
                runner = _runner(item, base)
                if runner is None:
                    raise GitHubError(answer.status, "bad_response", "list-runners")
                runners[runner.id] = runner
            following = _next_link(answer.headers.get("link"))
            if following is not None:
                if not following.startswith(self.api_url + "/"):
                    raise GitHubError(answer.status, "bad_link", "list-runners")
                path = following[len(self.api_url) + 1 :]
            elif batch and len(runners) < total:
                path = f"{base}?per_page={PER_PAGE}&page={page + 1}"
            else:
                break
        return list(runners.values())

    # -- reconcile: lost deliveries, visible failures, re-runs -----------------

    def hook_deliveries(self, since: float, max_pages: int = MAX_PAGES) -> list[HookDelivery]:
        """The App webhook's deliveries since ``since`` (epoch seconds), newest first.

        GitHub lists them newest first, a page of up to 100 at a time, each
        page's ``Link: rel="next"`` carrying an opaque ``cursor``; paging
        stops at the first delivery older than ``since`` (an hour's listing
        costs a few requests, not GitHub's three days of history) or after
        ``max_pages`` (then exactly ``max_pages * PER_PAGE`` deliveries come
        back: the caller can tell the listing was cut). Only the App's JWT
        may list them. A next link that leaves the listing is refused, so the
        JWT is never sent elsewhere.
        """
        operation = "list-webhook-deliveries"
        base = "app/hook/deliveries"
        deliveries: dict[int, HookDelivery] = {}
        path = f"{base}?per_page={PER_PAGE}"
        credential, signed = self.app_jwt(), self._clock()
        for _ in range(max_pages):
            if self._clock() - signed > JWT_REUSE_SECONDS:
                credential, signed = self.app_jwt(), self._clock()
            answer = self._call("GET", path, credential, operation)
            if not isinstance(answer.data, list):
                raise GitHubError(answer.status, "bad_response", operation)
            reached = False
            for item in answer.data:
                delivery = _hook_delivery(item)
                if delivery is None:
                    raise GitHubError(answer.status, "bad_response", operation)
                if delivery.delivered_at < since:
                    reached = True
                    continue
                deliveries.setdefault(delivery.id, delivery)
            following = _next_link(answer.headers.get("link"))
            if reached or not answer.data or following is None:
                break
            if not following.startswith(f"{self.api_url}/{base}?"):
                raise GitHubError(answer.status, "bad_link", operation)
            path = following[len(self.api_url) + 1 :]
        return sorted(deliveries.values(), key=lambda d: (d.delivered_at, d.id), reverse=True)

    def redeliver(self, delivery_id: int) -> None:
        """Ask GitHub to deliver a delivery's event again (the App's JWT; GitHub answers 202).

        GitHub never retries a failed delivery by itself; the redelivery
        arrives later as a new delivery with the same ``guid``.
        """
        delivery_id = _positive(delivery_id, "delivery id")
        path = f"app/hook/deliveries/{delivery_id}/attempts"
        self._call("POST", path, self.app_jwt(), "redeliver-webhook-delivery", expect=(202,))

    def create_check_run(self, token: str, owner: str, repo: str, head_sha: str, title: str, summary: str) -> int:
        """Show a failed ``ec2-sessions`` check run on a commit; answers the check run's id.

        A job left without a session is otherwise silent until GitHub cancels
        it a day later; a check run is where the job's author looks. It is
        made completed with conclusion ``failure`` at once (GitHub requires a
        conclusion with that status). Needs the App's Checks write permission.
        """
        root = scope_root("repo", owner, repo)
        if not isinstance(head_sha, str) or not _HEAD_SHA.fullmatch(head_sha):
            raise ValueError("head_sha must be a commit's 40 or 64 hexadecimal characters")
        if not isinstance(title, str) or not title.strip():
            raise ValueError("the check run's title must be a non-empty string")
        if not isinstance(summary, str) or len(summary) > MAX_CHECK_TEXT:
            raise ValueError(f"the check run's summary must be a string of at most {MAX_CHECK_TEXT} characters")
        body = {
            "name": CHECK_RUN_NAME,
            "head_sha": head_sha.lower(),
            "status": "completed",
            "conclusion": "failure",
            "output": {"title": title, "summary": summary},
        }
        operation = "create-check-run"
        answer = self._call("POST", f"{root}/check-runs", token, operation, body, (201,))
        data = answer.data if isinstance(answer.data, dict) else {}
        try:
            return _positive(data.get("id"), "check run id")
        except ValueError:
            raise GitHubError(answer.status, "bad_response", operation) from None

    def workflow_run(self, token: str, owner: str, repo: str, run_id: int) -> WorkflowRun | None:
        """A workflow run's status, conclusion and attempt; ``None`` when GitHub has no such run.

        A re-run is asked for only once its run has ``completed``: GitHub
        refuses to re-run a run that is still going. GitHub answers 404 too
        when the token's installation does not cover the repository; either
        way there is nothing this App can re-run.
        """
        root = scope_root("repo", owner, repo)
        run_id = _positive(run_id, "workflow run id")
        operation = "get-workflow-run"
        answer = self._call("GET", f"{root}/actions/runs/{run_id}", token, operation, missing_ok=True)
        if answer.status == 404:
            return None
        run = _workflow_run(answer.data)
        if run is None or run.id != run_id:
            raise GitHubError(answer.status, "bad_response", operation)
        return run

    def rerun_failed_jobs(self, token: str, owner: str, repo: str, run_id: int) -> None:
        """Re-run a completed workflow run's failed jobs (and the jobs that depend on them).

        For a job that failed because its session was interrupted, not
        because of its own steps. GitHub answers 201; it refuses (403) a run
        that has not completed, which raises ``GitHubError`` like any refusal.
        Needs the App's Actions write permission.
        """
        root = scope_root("repo", owner, repo)
        run_id = _positive(run_id, "workflow run id")
        path = f"{root}/actions/runs/{run_id}/rerun-failed-jobs"
        self._call("POST", path, token, "rerun-failed-jobs", expect=(201,))

    # -- HTTP ----------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        credential: str,
        operation: str,
        body: dict[str, Any] | None = None,
        expect: tuple[int, ...] = (200,),
        *,
        missing_ok: bool = False,
        paced: bool = True,
    ) -> _Answer:
        """One request, with GitHub's rate-limit rules and a few retries of 5xx and lost connections.

        ``missing_ok``: a 404 is an answer (status 404, no data), not an error.
        """
        headers = {
            "Accept": MEDIA_TYPE,
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": USER_AGENT,
            "Authorization": f"Bearer {credential}",
        }
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        waited, failures, limited = 0.0, 0, 0
        while True:
            waited += self._wait_out_block(credential, operation, self.max_wait - waited)
            if paced and method != "GET":
                self._space_writes()
            try:
                response = (self._http or default_pool()).request(
                    method,
                    f"{self.api_url}/{path}",
                    body=payload,
                    headers=headers,
                    retries=False,
                    redirect=False,
                )
            except urllib3.exceptions.HTTPError:
                failures += 1
                waited += self._back_off(failures, waited, GitHubError(0, "unreachable", operation))
                continue
            self._note_limits(credential, response.headers)
            status = response.status
            if status in expect:
                return _Answer(status, response.headers, _json(response.data, status, operation))
            if status == 404 and missing_ok:
                return _Answer(status, response.headers, None)
            wait = self._rate_limit_wait(status, response.headers, response.data)
            if wait is not None:
                limited += 1
                if waited + wait > self.max_wait or limited > MAX_RATE_LIMIT_WAITS:
                    raise RateLimited(status, wait, operation)
                self._sleep(wait)
                waited += wait
                continue
            if status >= 500:
                failures += 1
                waited += self._back_off(failures, waited, GitHubError(status, "server_error", operation))
                continue
            if status == 401:
                self._drop_token(credential)
            raise GitHubError(status, _CODES.get(status, f"http_{status}"), operation)

    def _back_off(self, failures: int, waited: float, error: GitHubError) -> float:
        delay = float(2 ** (failures - 1))
        if failures > self.retries or waited + delay > self.max_wait:
            raise error
        self._sleep(delay)
        return delay

    def _rate_limit_wait(self, status: int, headers: Mapping[str, str], data: bytes) -> float | None:
        """Seconds GitHub asks for, when this answer is a rate limit; ``None`` otherwise."""
        if status not in (403, 429):
            return None
        retry_after = headers.get("retry-after")
        if retry_after is not None:
            return float(retry_after) if retry_after.strip().isdigit() else RETRY_AFTER_DEFAULT
        if headers.get("x-ratelimit-remaining") == "0":
            reset = headers.get("x-ratelimit-reset", "")
            if reset.strip().isdigit():
                return max(0.0, int(reset) - self._clock()) + 1.0
            return RETRY_AFTER_DEFAULT
        if status == 429 or b"secondary rate limit" in (data or b"").lower():
            return RETRY_AFTER_DEFAULT
        return None

    def _note_limits(self, credential: str, headers: Mapping[str, str]) -> None:
        """An answer that spent the credential's last request blocks it until the reset."""
        reset = headers.get("x-ratelimit-reset", "")
        if headers.get("x-ratelimit-remaining") == "0" and reset.strip().isdigit():
            with self._lock:
                self._blocked[credential] = float(reset)

    def _wait_out_block(self, credential: str, operation: str, budget: float) -> float:
        with self._lock:
            until = self._blocked.get(credential, 0.0)
        wait = until - self._clock()
        if wait <= 0:
            return 0.0
        if wait + 1.0 > budget:
            raise RateLimited(0, wait + 1.0, operation)
        self._sleep(wait + 1.0)
        with self._lock:
            self._blocked.pop(credential, None)
        return wait + 1.0

    def _space_writes(self) -> None:
        with self._lock:
            now = self._clock()
            due = max(now, self._last_write + self.write_interval)
            self._last_write = due
        if due > now:
            self._sleep(due - now)

    def _drop_token(self, credential: str) -> None:
        with self._lock:
            for installation, (token, _) in list(self._tokens.items()):
                if token == credential:
                    del self._tokens[installation]


def _positive(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**63:
        raise ValueError(f"{what} must be a positive whole number")
    return value


def _registration(path: object) -> None:
    if parse_registration_path(path) is None:
        raise ValueError("not a runner registration path (repos/O/R/actions/runners/N or orgs/O/actions/runners/N)")


def _runner(item: object, base: str) -> Runner | None:
    if not isinstance(item, dict):
        return None
    ident, name, status, busy = (item.get(k) for k in ("id", "name", "status", "busy"))
    if not (isinstance(ident, int) and not isinstance(ident, bool) and ident > 0):
        return None
    if not (isinstance(name, str) and isinstance(status, str) and isinstance(busy, bool)):
        return None
    return Runner(ident, name, status, busy, f"{base}/{ident}")


def _optional_id(value: object) -> tuple[bool, int | None]:
    """``(valid, id)`` of a nullable id field: a positive whole number, or null (or absent)."""
    if value is None:
        return True, None
    try:
        return True, _positive(value, "id")
    except ValueError:
        return False, None


def _hook_delivery(item: object) -> HookDelivery | None:
    """A delivery of GitHub's ``hook-delivery-item`` shape, or ``None`` when it is not one."""
    if not isinstance(item, dict):
        return None
    ident, guid, status_code, event = (item.get(k) for k in ("id", "guid", "status_code", "event"))
    action, redelivery, delivered_at = item.get("action"), item.get("redelivery"), _epoch(item.get("delivered_at"))
    (installation_ok, installation), (repository_ok, repository) = (
        _optional_id(item.get("installation_id")),
        _optional_id(item.get("repository_id")),
    )
    if not (isinstance(ident, int) and not isinstance(ident, bool) and ident > 0):
        return None
    if not (isinstance(status_code, int) and not isinstance(status_code, bool)):
        return None
    if not (isinstance(guid, str) and guid and isinstance(event, str) and isinstance(redelivery, bool)):
        return None
    if delivered_at is None or not (action is None or isinstance(action, str)):
        return None
    if not (installation_ok and repository_ok):
        return None
    return HookDelivery(ident, guid, delivered_at, status_code, event, action, redelivery, installation, repository)


def _workflow_run(data: object) -> WorkflowRun | None:
    """A run of GitHub's ``workflow-run`` shape (the fields used here), or ``None``."""
    if not isinstance(data, dict):
        return None
    ident, status, conclusion, attempt = (data.get(k) for k in ("id", "status", "conclusion", "run_attempt"))
    if not (isinstance(ident, int) and not isinstance(ident, bool) and ident > 0):
        return None
    if not all(value is None or isinstance(value, str) for value in (status, conclusion)):
        return None
    if attempt is not None and not (isinstance(attempt, int) and not isinstance(attempt, bool) and attempt > 0):
        return None
    return WorkflowRun(ident, status, conclusion, attempt)


def _json(raw: bytes, status: int, operation: str) -> object:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise GitHubError(status, "bad_response", operation) from None


def _epoch(text: object) -> float | None:
    """GitHub's ``2016-07-11T22:14:10Z`` as epoch seconds, or ``None``."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


def _next_link(header: str | None) -> str | None:
    if not header:
        return None
    match = _NEXT_LINK.search(header)
    return match[1] if match else None
