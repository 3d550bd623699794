"""Launcher handler: read and authenticate the request, route it, answer JSON.

Nothing is parsed and no resource is touched before the signature over the
raw body checks out. Domain errors map to the status codes of DESIGN.md; any
other failure is a generic 500 whose details go to the log as an error code.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import LambdaFunctionUrlResolver, Response, content_types
from launch import LaunchFailed, create_session, find_github_session, release_session
from once import answer_once
from session_naming import GITHUB_JOB_TAG, SessionName, clients
from session_naming.settings import ConfigError, load_launcher
from webhook import HttpError, NotFound, read_request, verify_signature

SECRET_MAX_AGE_SECONDS = 300  # a rotated secret is picked up within five minutes

logger = Logger()
app = LambdaFunctionUrlResolver()


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event, context):
    try:
        settings = load_launcher()
        request = read_request(event, settings.max_body_bytes)
        verify_signature(request.body, request.headers.get("x-hub-signature-256"), webhook_secret(settings))
    except HttpError as error:
        logger.info("request refused", extra={"status": error.status, "error": error.code})
        return http_answer(error.status, error.body())
    except ConfigError as error:
        logger.error("configuration error", extra={"problem": str(error)})
        return http_answer(500, {"error": "internal", "message": "the launcher is misconfigured; see its logs"})
    app.append_context(settings=settings, request=request, lambda_context=context)
    return app.resolve(event, context)


@cache
def _secrets(client):
    from aws_lambda_powertools.utilities.parameters import SecretsProvider  # imported on first request only

    return SecretsProvider(boto3_client=client)


def webhook_secret(settings) -> str:
    client = clients.client("secretsmanager", settings.region)
    return _secrets(client).get(settings.webhook_secret_arn, max_age=SECRET_MAX_AGE_SECONDS)


def once(produce):
    ctx = app.context
    return answer_once(
        ctx["request"], ctx["settings"].idempotency_table, ctx["settings"].region, ctx["lambda_context"], produce
    )


@app.post("/sessions")
def post_session():
    from payloads import session_request

    settings = app.context["settings"]
    base, lifetime, body = session_request(app.context["request"].body, settings)
    answer = once(
        lambda: create_session(
            clients.client,
            settings,
            base,
            lifetime,
            datetime.now(UTC),
            public_key=body.public_key,
            ingress_cidrs=tuple(body.ingress_cidrs),
            instance=body.instance,
        )
    )
    return created(answer)


@app.delete("/sessions/<base>/<expires>/<token>")
def delete_session(base: str, expires: str, token: str):
    settings = app.context["settings"]
    name = SessionName.parse(f"{base}/{expires}/{token}")
    if name is None or name.base not in settings.session_bases:
        raise NotFound(f"{base}/{expires}/{token} is not a session of this stack")
    return released(once(lambda: release_session(clients.client, settings, name)))


@app.post("/github")
def github():
    from payloads import WorkflowJobDelivery, parse_body

    settings, request = app.context["settings"], app.context["request"]
    event = request.headers.get("x-github-event", "")
    if event == "ping":
        return json_response(200, {"ok": True})
    if event != "workflow_job":
        return json_response(202, {"ignored": f"event {event!r:.40}"})
    delivery = parse_body(request.body, WorkflowJobDelivery)
    job = delivery.workflow_job
    if settings.github_label not in job.labels:
        return json_response(202, {"ignored": f"job has no {settings.github_label!r} label"})
    if delivery.action == "queued":
        answer = once(
            lambda: create_session(
                clients.client,
                settings,
                settings.session_bases[0],
                settings.default_lifetime,
                datetime.now(UTC),
                instance=bool(settings.launch_template_id),
                extra_tags={GITHUB_JOB_TAG: str(job.id)},
            )
        )
        return created(answer)
    if delivery.action == "completed":
        name = find_github_session(clients.client, settings, job.id)
        if name is None:
            raise NotFound(f"no session for workflow job {job.id}")
        return released(once(lambda: release_session(clients.client, settings, name)))
    return json_response(202, {"ignored": f"action {delivery.action!r:.40}"})


def created(answer: dict) -> Response:
    logger.info("session created", extra={"session": answer["session"], "instances": len(answer["instances"])})
    return json_response(201, answer)


def released(answer: dict) -> Response:
    logger.info("session released", extra={"session": answer["session"], "deleted": answer["deleted"]})
    return json_response(200, answer)


@app.exception_handler(HttpError)
def refused(error: HttpError):
    logger.info("request refused", extra={"status": error.status, "error": error.code})
    return json_response(error.status, error.body())


@app.exception_handler(LaunchFailed)
def launch_failed(error: LaunchFailed):
    logger.error("create failed and was rolled back", extra={"error": error.code, "left_to_collector": error.left})
    return json_response(
        500,
        {
            "error": "internal",
            "message": "the session could not be created; what it made is deleted or left to the collector",
        },
    )


@app.exception_handler(Exception)
def unexpected(error: Exception):
    from session_naming.resources import error_code

    logger.error("unexpected failure", extra={"error": error_code(error)})
    return json_response(500, {"error": "internal", "message": "internal error; see the launcher's logs"})


@app.not_found
def no_route(_):
    return json_response(
        404, {"error": "not_found", "message": "routes: POST /sessions, DELETE /sessions/{name}, POST /github"}
    )


def json_response(status: int, body: dict) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


def http_answer(status: int, body: dict) -> dict:
    """A Function URL answer built without the resolver (the request never reached a route)."""
    import json

    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}
