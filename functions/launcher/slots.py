"""An exact cap on live sessions per base, kept in the stack's DynamoDB table.

Counting key pairs cannot be exact: two creates that count at once both see
room for one more. Here each base (and each capped profile) has one item
listing its live sessions and their expiries; a create adds itself to every
pool it needs in one transaction conditioned on each item's version, so of
two racers for the last slot exactly one wins and the other reads again.
Expired entries are dropped on every write (the collector removes their
resources; no clean-up call is needed), and a release gives its slot back.
A launcher that dies mid-create holds its slot until the session's expiry,
as its tagged resources do.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import datetime

from botocore.exceptions import ClientError
from errors import TooManySessions
from session_naming import SessionName

ATTEMPTS = 50  # twenty racers at one slot settle in a few rounds; fifty is far beyond that


class Slots:
    def __init__(self, dynamodb, table: str, sleep: Callable[[float], None] = time.sleep):
        self._db, self._table, self._sleep = dynamodb, table, sleep

    @staticmethod
    def _key(pool: str) -> dict:
        return {"id": {"S": f"slots#{pool}"}}

    def hold(self, name: SessionName, now: datetime, pools: list[tuple[str | None, int]]) -> None:
        """Hold a slot for ``name`` in every pool of ``pools`` (``None``: its base's; else a profile's), or none.

        One transaction writes every pool, each conditioned on the version it
        read, so racers for the last slots settle exactly: a create never
        holds its base's slot while it waits for its profile's (ten racers
        for three slots make three sessions, not one). ``TooManySessions``
        names the pool that is full.
        """
        keys = [self._pool(name, profile) for profile, _ in pools]
        for _ in range(ATTEMPTS):
            read = self._db.transact_get_items(
                TransactItems=[{"Get": {"TableName": self._table, "Key": self._key(pool)}} for pool, _ in keys]
            )["Responses"]
            writes = []
            for (pool, what), (profile, limit), answer in zip(keys, pools, read, strict=True):
                item = answer.get("Item") or {}
                version = int(item.get("version", {}).get("N", "0"))
                live = {
                    session: expires
                    for session, expires in item.get("sessions", {}).get("M", {}).items()
                    if int(expires["N"]) > now.timestamp()
                }
                if len(live) >= limit:
                    cap = "max_live" if profile else "MAX_LIVE_SESSIONS"
                    raise TooManySessions(f"{what} has {limit} live sessions ({cap}): release one first")
                live[str(name)] = {"N": str(int(name.expires.timestamp()))}
                writes.append(
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": {**self._key(pool), "sessions": {"M": live}, "version": {"N": str(version + 1)}},
                            "ConditionExpression": "attribute_not_exists(id) OR version = :seen",
                            "ExpressionAttributeValues": {":seen": {"N": str(version)}},
                        }
                    }
                )
            try:
                self._db.transact_write_items(TransactItems=writes)
                return
            except ClientError as error:
                if error.response["Error"]["Code"] not in ("TransactionCanceledException", "TransactionConflict"):
                    raise
            self._sleep(random.uniform(0.005, 0.05))  # noqa: S311 (jitter, not a secret)
        raise TooManySessions(f"{' and '.join(what for _, what in keys)} contended right now: retry in a few seconds")

    @staticmethod
    def _pool(name: SessionName, profile: str | None) -> tuple[str, str]:
        """A pool's key and how a refusal names it: the base's, or ``profile#<name>`` beside it."""
        return (f"profile#{profile}", f"profile {profile}") if profile else (name.base, f"base {name.base}")

    def live(self, base: str, now: datetime) -> int:
        """How many live sessions hold a slot of ``base`` (the dashboard's live sessions)."""
        item = self._db.get_item(TableName=self._table, Key=self._key(base), ConsistentRead=True).get("Item", {})
        held = item.get("sessions", {}).get("M", {}).values()
        return sum(1 for expires in held if int(expires["N"]) > now.timestamp())

    def give_back(self, name: SessionName, profile: str | None = None) -> None:
        """Free ``name``'s slot (a release or a rolled-back create); a pool never written is fine."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=self._key(f"profile#{profile}" if profile else name.base),
                UpdateExpression="REMOVE sessions.#name ADD version :one",
                ConditionExpression="attribute_exists(id)",
                ExpressionAttributeNames={"#name": str(name)},
                ExpressionAttributeValues={":one": {"N": "1"}},
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
