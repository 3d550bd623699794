"""Exactly-once answers for signed requests, with Powertools Idempotency, as its documentation shows.

The key is the caller's delivery id (``request.delivery_key``), never the
body: two CI jobs may send the same body and must get two sessions, and a
request without an id is never de-duplicated. The body's hash is the
validation key: an id reused for a different body is refused. Every
answer but a failure or a "try again later" (429, a job busy elsewhere) is
stored, a refusal included, so a replay acts at most once; those others
delete the record and a retry runs afresh.
Records live at least three days (GitHub redelivers for three).

Imported only when a request carries an id: the idempotency module alone
costs about 100 ms of cold start.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from http_errors import Conflict
from session_naming import clients
from session_naming.settings import load_launcher

REMEMBER_SECONDS = 4 * 24 * 60 * 60

config = IdempotencyConfig(
    event_key_jmespath="key",
    payload_validation_jmespath="body_sha256",
    raise_on_no_idempotency_key=True,
    expires_after_seconds=REMEMBER_SECONDS,
)
_settings = load_launcher()
persistence = DynamoDBPersistenceLayer(
    table_name=_settings.idempotency_table, boto3_client=clients.client("dynamodb", _settings.region)
)


@idempotent_function(data_keyword_argument="delivery", config=config, persistence_store=persistence)
def _answer(delivery: dict, produce: Callable[[], dict]) -> dict:
    return produce()


def answer_once(key: str, body: bytes, context, produce: Callable[[], dict]) -> dict:
    """``produce()``, or the answer it gave the first time this delivery was seen."""
    config.register_lambda_context(context)
    try:
        return _answer(delivery={"key": key, "body_sha256": hashlib.sha256(body).hexdigest()}, produce=produce)
    except IdempotencyAlreadyInProgressError:
        raise Conflict("this delivery id is being handled right now: retry in a few seconds") from None
    except IdempotencyValidationError:
        raise Conflict("this delivery id was already used for a different body: send a fresh id") from None
