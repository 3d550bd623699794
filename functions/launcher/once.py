"""Exactly-once answers for redelivered webhooks, with Powertools Idempotency.

The key is the caller's delivery id (``X-GitHub-Delivery`` or
``X-Request-Id``) and the route, never the body: two CI jobs may send the
same body and must get two sessions. A request without either header is
never de-duplicated. The body's hash is the validation key, so a delivery id
reused for a different body is refused rather than answered with another
request's session. Only successes are stored: an error (a 4xx raised by the
domain, a rolled-back create) deletes the record, so a retry runs afresh.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import cache

from session_naming import clients
from webhook import Conflict, Request

# GitHub lets an operator redeliver a webhook for days; a day covers the
# longest session (MAX_LIFETIME_MINUTES tops out at 1440 by default).
REMEMBER_SECONDS = 24 * 60 * 60


def delivery_id(request: Request) -> str | None:
    return request.headers.get("x-github-delivery") or request.headers.get("x-request-id") or None


@cache
def _persistence(table: str, dynamodb):
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig

    store = DynamoDBPersistenceLayer(table_name=table, boto3_client=dynamodb)
    config = IdempotencyConfig(
        event_key_jmespath="key",
        payload_validation_jmespath="body_sha256",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=REMEMBER_SECONDS,
    )
    return store, config


def answer_once(request: Request, table: str, region: str, context, produce: Callable[[], dict]) -> dict:
    """``produce()``, or the answer it gave the first time this delivery was seen."""
    key = delivery_id(request)
    if key is None:
        return produce()
    from aws_lambda_powertools.utilities.idempotency import idempotent_function
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyValidationError,
    )

    store, config = _persistence(table, clients.client("dynamodb", region))
    config.register_lambda_context(context)

    @idempotent_function(
        data_keyword_argument="delivery",
        persistence_store=store,
        config=config,
        key_prefix=f"{request.method} {request.path}",
    )
    def run(delivery: dict) -> dict:
        return produce()

    try:
        return run(delivery={"key": key, "body_sha256": hashlib.sha256(request.body).hexdigest()})
    except IdempotencyAlreadyInProgressError:
        raise Conflict("this delivery id is being handled right now: retry in a few seconds") from None
    except IdempotencyValidationError:
        raise Conflict("this delivery id was already used for a different body: send a fresh id") from None
