"""Launcher handler: one resolver, one request path, one error path.

Every request goes through two middlewares before its route: the first
reads the raw bytes (bounded in size) and checks the route's signature
schemes before anything is parsed or any AWS resource is touched; the second
answers a repeated delivery id with the first answer. Routes parse their
body, call the domain, answer. Domain and HTTP errors map to status codes
in ``refused``; anything else is a 500 whose only detail, an error code,
goes to the log.
"""

from __future__ import annotations

import threading
import time
import warnings
from datetime import UTC, datetime
from functools import cache

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import LambdaFunctionUrlResolver, Response, content_types
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext
from errors import DomainError, JobBusy, JobOver, LaunchFailed, SessionKept, SessionNotFound, TooManySessions
from http_errors import BadRequest, HttpError, NotFound
from request import Request, delivery_key, read_request, routable
from session_naming import clients
from session_naming.settings import LauncherSettings, load_launcher
from signatures import SecretNotBase64, authenticate

SECRET_MAX_AGE_SECONDS = 300  # a rotated secret is picked up within five minutes
SCHEMES = {"/github": ("github",), "/gitlab": ("gitlab", "standard")}  # every other route: github or standard
# Domain refusals as HTTP: status and stable error code.
STATUS: dict[type[DomainError], tuple[int, str]] = {
    SessionNotFound: (404, "not_found"),
    SessionKept: (409, "kept"),
    JobOver: (409, "job_over"),
    JobBusy: (409, "conflict"),
    TooManySessions: (429, "too_many_sessions"),
}
UNROUTABLE = "ec2SessionsUnroutable"  # marks the stand-in for an event the resolver cannot route

logger = Logger()
metrics = Metrics()
_invocation = threading.local()  # ``event`` and ``context`` of this thread's invocation (see ``current``)
# Refusals publish their own metric (with a status dimension); an invocation with nothing else is normal.
warnings.filterwarnings("ignore", "No application metrics to publish", UserWarning)
app = LambdaFunctionUrlResolver()


@cache
def _secrets(client):
    from aws_lambda_powertools.utilities.parameters import SecretsProvider  # imported on first request only

    return SecretsProvider(boto3_client=client)


def webhook_secret(settings: LauncherSettings) -> str:
    client = clients.client("secretsmanager", settings.region)
    return _secrets(client).get(settings.webhook_secret_arn, max_age=SECRET_MAX_AGE_SECONDS)


def current() -> tuple[LauncherSettings, Request]:
    """The settings and this request's raw bytes, read from the event this invocation received.

    Not ``decoded_body``: it decodes base64 to text, so a binary body would fail
    before its signature could be checked, and signatures cover bytes. Not
    ``app.current_event`` either: Powertools keeps it on the resolver's class,
    shared by every thread of the process; Lambda runs one request per
    container, but the tests run concurrent containers as threads.
    """
    settings = load_launcher()
    return settings, read_request(_invocation.event, settings.max_body_bytes)


def authenticated(app: LambdaFunctionUrlResolver, next_middleware: NextMiddleware) -> Response:
    if _invocation.event.get(UNROUTABLE):
        raise BadRequest("event must be a Lambda Function URL request: requestContext.http.method, rawPath, headers")
    settings, request = current()
    logger.append_keys(delivery=delivery_key(request.method, request.path, request.headers))
    schemes = SCHEMES.get(request.path, ("github", "standard"))
    try:
        authenticate(request.headers, request.body, webhook_secret(settings), schemes, time.time())
    except SecretNotBase64:
        logger.warning("configuration: the webhook secret is not base64, so Standard Webhooks cannot verify")
        raise
    return next_middleware(app)


def once(app: LambdaFunctionUrlResolver, next_middleware: NextMiddleware) -> Response:
    settings, request = current()
    key = delivery_key(request.method, request.path, request.headers)
    if key is None:
        return next_middleware(app)
    from once import answer_once

    def produce() -> dict:
        try:
            response = next_middleware(app)
        except (TooManySessions, JobBusy):
            raise  # "try again later": not the answer a retry of this delivery must get
        except (HttpError, DomainError) as error:
            response = refused(error)
        return {"status": response.status_code, "body": response.body}

    stored = answer_once(key, request.body, _invocation.context, produce)
    return json_response(stored["status"], stored["body"])


app.use(middlewares=[authenticated, once])


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    if routable(event):  # a Function URL's stage is always $default; the resolver strips any other from the path
        event = {**event, "requestContext": {**event["requestContext"], "stage": "$default"}}
    else:  # the resolver needs a method and a path; the middleware answers the 400
        event = {"rawPath": "/", "requestContext": {"http": {"method": "GET"}, "stage": "$default"}, UNROUTABLE: True}
    _invocation.event, _invocation.context = event, context
    return app.resolve(event, context)


@app.post("/sessions")
def post_session() -> Response:
    from sessions import create

    settings, request = current()
    return created(create(settings, request.body, datetime.now(UTC)))


@app.delete("/sessions/<base>/<expires>/<token>")
def delete_session(base: str, expires: str, token: str) -> Response:
    from sessions import release

    settings, request = current()
    return released(release(settings, f"{base}/{expires}/{token}", request.body))


@app.post("/github")
def github() -> Response:
    from github_jobs import handle

    settings, request = current()
    status, answer = handle(settings, request.headers.get("x-github-event", ""), request.body, datetime.now(UTC))
    if status == 201:
        return created(answer)
    if "released" in answer:
        metrics.add_metric(name="SessionsReleased", unit=MetricUnit.Count, value=len(answer["released"]))
    return json_response(status, answer)


@app.post("/gitlab")
def gitlab() -> Response:
    from gitlab_jobs import handle

    settings, request = current()
    status, answer = handle(settings, request.headers.get("x-gitlab-event", ""), request.body, datetime.now(UTC))
    if "released" in answer:
        metrics.add_metric(name="SessionsReleased", unit=MetricUnit.Count, value=len(answer["released"]))
    return json_response(status, answer)


def created(answer: dict) -> Response:
    logger.append_keys(session=answer["session"])
    logger.info("session created", extra={"instances": len(answer["instances"])})
    metrics.add_metric(name="SessionsCreated", unit=MetricUnit.Count, value=1)
    return json_response(201, answer)


def released(answer: dict) -> Response:
    logger.append_keys(session=answer["session"])
    logger.info("session released", extra={"deleted": answer["deleted"]})
    metrics.add_metric(name="SessionsReleased", unit=MetricUnit.Count, value=1)
    return json_response(200, answer)


@app.exception_handler([HttpError, DomainError])
def refused(error: HttpError | DomainError) -> Response:
    if isinstance(error, HttpError):
        status, code, message = error.status, error.code, error.message
    else:
        (status, code), message = STATUS[type(error)], str(error)
    logger.info("request refused", extra={"status": status, "error": code})
    with single_metric(name="RequestsRefused", unit=MetricUnit.Count, value=1) as metric:
        metric.add_dimension(name="status", value=str(status))
    return json_response(status, {"error": code, "message": message})


@app.exception_handler(LaunchFailed)
def launch_failed(error: LaunchFailed) -> Response:
    logger.error("create failed and was rolled back", extra={"error": error.code, "left_to_collector": error.left})
    metrics.add_metric(name="CreatesFailed", unit=MetricUnit.Count, value=1)
    return json_response(
        500,
        {
            "error": "internal",
            "message": "the session could not be created; what it made is deleted or left to the collector",
        },
    )


@app.exception_handler(Exception)
def unexpected(error: Exception) -> Response:
    from session_naming.resources import error_code
    from session_naming.settings import ConfigError

    if isinstance(error, ConfigError):
        logger.error("configuration error", extra={"problem": str(error)})
    else:
        logger.error("unexpected failure", extra={"error": error_code(error)})
    return json_response(500, {"error": "internal", "message": "internal error; see the launcher's logs"})


@app.not_found
def no_route(_: Exception) -> Response:
    raise NotFound("routes: POST /sessions, DELETE /sessions/{base}/{expires}/{token}, POST /github, POST /gitlab")


def json_response(status: int, body: dict) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)
