"""Launcher handler: one request path, one error path.

``answer`` reads the request (raw bytes, bounded in size), checks the
signature schemes its path accepts before anything is parsed or any AWS
resource is touched, finds its route, answers a repeated delivery id with
the first answer, and only then runs the route, which parses its body,
calls the domain and answers. Domain and HTTP errors map to status codes
in ``refused``; anything else is a 500 whose only detail, an error code,
goes to the log.

Four routes are a table here, not Powertools' event handler, whose import
alone would take the launcher's whole cold-start budget (README,
Performance). Logger, Metrics, Parameters and Idempotency stay Powertools'.
"""

from __future__ import annotations

import json
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext
from errors import (
    NO_PROFILE,
    DomainError,
    JobBusy,
    JobOver,
    LaunchFailed,
    NoCapacity,
    SessionKept,
    SessionNotFound,
    TooManySessions,
)
from http_errors import HttpError, NotFound
from interruption import is_interruption
from request import Request, delivery_key, read_request
from session_naming import clients
from session_naming.settings import LauncherSettings, load_launcher
from signatures import SecretNotBase64, authenticate

SECRET_MAX_AGE_SECONDS = 300  # a rotated secret is picked up within five minutes
SCHEMES = {"/github": ("github",), "/gitlab": ("gitlab", "standard")}  # every other path: github or standard
# Domain refusals as HTTP: status and stable error code.
STATUS: dict[type[DomainError], tuple[int, str]] = {
    SessionNotFound: (404, "not_found"),
    SessionKept: (409, "kept"),
    JobOver: (409, "job_over"),
    JobBusy: (409, "conflict"),
    TooManySessions: (429, "too_many_sessions"),
    NoCapacity: (503, "no_capacity"),
}
RETRY_AFTER_SECONDS = 60  # a 503 for capacity: EC2's pools refill within minutes
TRY_LATER = (TooManySessions, JobBusy, NoCapacity)  # "try again later": never stored as a delivery's answer

logger = Logger()
metrics = Metrics()
# Refusals publish their own metric (with a status dimension); an invocation with nothing else is normal.
warnings.filterwarnings("ignore", "No application metrics to publish", UserWarning)


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Route:
    """``method`` and a full-match ``path`` pattern; ``run`` gets the pattern's named groups as keywords."""

    method: str
    path: re.Pattern[str]
    run: Callable[..., Answer]


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    """A Function URL request; or, told apart by their shapes, a spot interruption or the reconcile schedule."""
    if is_interruption(event):
        from interruption import handle

        return handle(load_launcher(), event, datetime.now(UTC))
    if is_scheduled(event, "pool"):
        from pool_upkeep import upkeep

        return upkeep(load_launcher(), datetime.now(UTC), lambda: context.get_remaining_time_in_millis() / 1000)
    if is_scheduled(event, "reconcile"):
        from reconcile import reconcile

        try:
            return reconcile(load_launcher(), datetime.now(UTC), lambda: context.get_remaining_time_in_millis() / 1000)
        except Exception:
            count("ReconcileFailures")  # the pass itself failed (one job's failure never does): alarmed
            raise
    try:
        result = answer(event, context)
    except (HttpError, DomainError) as error:
        result = refused(error)
    except LaunchFailed as error:
        result = launch_failed(error)
    except Exception as error:  # noqa: BLE001 - the one 500, with an error code in the log and nothing in the answer
        result = unexpected(error)
    body = json.dumps(result.body, separators=(",", ":"))
    return {
        "statusCode": result.status,
        "headers": {"Content-Type": "application/json", **result.headers},
        "body": body,
    }


def is_scheduled(event: object, work: str) -> bool:
    """A schedule's event (a Scheduled Event) for ``work``: the reconcile pass (the default) or the pools'
    upkeep (``detail.pass``). Told from a Function URL request by its shape."""
    if not isinstance(event, dict) or event.get("detail-type") != "Scheduled Event" or "requestContext" in event:
        return False
    detail = event.get("detail")
    asked = detail.get("pass", "reconcile") if isinstance(detail, dict) else "reconcile"
    return asked == work


def answer(event: object, context: LambdaContext) -> Answer:
    settings = load_launcher()
    request = read_request(event, settings.max_body_bytes)
    key = delivery_key(request)
    logger.append_keys(delivery=key)
    # A trailing slash names the same route's schemes: a hook sent to /gitlab/ with the right token is
    # told its path is wrong (404), not its secret (401).
    schemes = SCHEMES.get(request.path.rstrip("/"), ("github", "standard"))
    try:
        authenticate(request.headers, request.body, webhook_secret(settings), schemes, time.time())
    except SecretNotBase64:
        logger.warning("configuration: the webhook secret is not base64, so Standard Webhooks cannot verify")
        raise
    route, arguments = find_route(request)
    if key is None:
        return route.run(settings, request, **arguments)
    from once import answer_once  # imported only when a request carries an id: its import is about 100 ms

    def produce() -> dict:
        try:
            result = route.run(settings, request, **arguments)
        except TRY_LATER:
            raise  # "try again later": not the answer a retry of this delivery must get
        except (HttpError, DomainError) as error:
            result = refused(error)
        return {"status": result.status, "body": result.body}

    stored = answer_once(key, request.body, context, produce)
    return Answer(stored["status"], stored["body"])


def find_route(request: Request) -> tuple[Route, dict[str, str]]:
    for route in ROUTES:
        match = route.path.fullmatch(request.path)
        if match and route.method == request.method:
            return route, match.groupdict()
    raise NotFound("routes: POST /sessions, DELETE /sessions/{base}/{expires}/{token}, POST /github, POST /gitlab")


@cache
def _secrets(client):
    from aws_lambda_powertools.utilities.parameters import SecretsProvider  # imported on first request only

    return SecretsProvider(boto3_client=client)


def webhook_secret(settings: LauncherSettings) -> str:
    client = clients.client("secretsmanager", settings.region)
    return _secrets(client).get(settings.webhook_secret_arn, max_age=SECRET_MAX_AGE_SECONDS)


def post_session(settings: LauncherSettings, request: Request) -> Answer:
    from sessions import create

    return created(create(settings, request.body, datetime.now(UTC)))


def delete_session(settings: LauncherSettings, request: Request, name: str) -> Answer:
    from sessions import release

    return released(release(settings, name, request.body))


def github(settings: LauncherSettings, request: Request) -> Answer:
    from github_jobs import handle

    status, body = handle(settings, request.headers.get("x-github-event", ""), request.body, datetime.now(UTC))
    if status == 201:
        return created(body)
    return job_answer(status, body)


def gitlab(settings: LauncherSettings, request: Request) -> Answer:
    from gitlab_jobs import handle

    return job_answer(*handle(settings, request.headers.get("x-gitlab-event", ""), request.body, datetime.now(UTC)))


ROUTES = (
    Route("POST", re.compile("/sessions"), post_session),
    Route("DELETE", re.compile("/sessions/(?P<name>[^/]+/[^/]+/[^/]+)"), delete_session),
    Route("POST", re.compile("/github"), github),
    Route("POST", re.compile("/gitlab"), gitlab),
)


def created(body: dict) -> Answer:
    logger.append_keys(session=body["session"])
    profile = body["instances"][0]["profile"] if body["instances"] else NO_PROFILE
    logger.info("session created", extra={"instances": body["instances"], "profile": profile})
    count("SessionsCreated", base=body["session"].split("/", 1)[0], profile=profile)
    return Answer(201, body)


def released(body: dict) -> Answer:
    logger.append_keys(session=body["session"])
    logger.info("session released", extra={"deleted": body["deleted"]})
    count("SessionsReleased", base=body["session"].split("/", 1)[0])
    return Answer(200, body)


def job_answer(status: int, body: dict) -> Answer:
    for name in body.get("released", ()):
        logger.info("session released", extra={"session": name})
        count("SessionsReleased", base=name.split("/", 1)[0])
    return Answer(status, body)


def count(name: str, value: float = 1, **dimensions: str) -> None:
    """One metric with its own dimensions (Powertools adds ``service``), as the dashboard charts it."""
    with single_metric(name=name, unit=MetricUnit.Count, value=value) as metric:
        for key, dimension in dimensions.items():
            metric.add_dimension(name=key, value=dimension)


def refused(error: HttpError | DomainError) -> Answer:
    if isinstance(error, HttpError):
        status, code, message = error.status, error.code, error.message
    else:
        (status, code), message = STATUS[type(error)], str(error)
    logger.info("request refused", extra={"status": status, "error": code})
    count("RequestsRefused", status=str(status))
    if isinstance(error, NoCapacity):
        count("CapacityExhausted", profile=error.profile)
        return Answer(status, {"error": code, "message": message}, {"Retry-After": str(RETRY_AFTER_SECONDS)})
    return Answer(status, {"error": code, "message": message})


def launch_failed(error: LaunchFailed) -> Answer:
    logger.error(
        "create failed and was rolled back",
        extra={"error": error.code, "left_to_collector": error.left, "profile": error.profile},
    )
    count("CreatesFailed", base=error.base, profile=error.profile)
    message = "the session could not be created; what it made is deleted or left to the collector"
    return Answer(500, {"error": "internal", "message": message})


def unexpected(error: Exception) -> Answer:
    from session_naming.resources import error_code
    from session_naming.settings import ConfigError

    if isinstance(error, ConfigError):
        logger.error("configuration error", extra={"problem": str(error)})
    else:
        logger.error("unexpected failure", extra={"error": error_code(error)})
    return Answer(500, {"error": "internal", "message": "internal error; see the launcher's logs"})
