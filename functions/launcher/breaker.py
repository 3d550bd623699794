"""A per-profile circuit breaker for spot: after a run of interruptions, ``spot-first`` goes on demand a while.

Spot capacity that is taken back once tends to be taken back again: a job
that is interrupted three times in half an hour has lost more than on-demand
would have cost. Each interruption of the last 30 minutes is an entry of the stack's job table
item ``spot#<profile>``; once a profile has ``SPOT_BREAKER_INTERRUPTIONS`` of
them within 30 minutes, its ``spot-first`` launches skip spot for the next
30 minutes. The item expires by itself (TTL), so nothing cleans it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from botocore.exceptions import ClientError

WINDOW = timedelta(minutes=30)
OPEN_FOR = timedelta(minutes=30)
ATTEMPTS = 20  # interruptions of one profile at one instant settle in a few rounds


class SpotBreaker:
    def __init__(self, dynamodb, table: str, threshold: int):
        self._db, self._table, self.threshold = dynamodb, table, threshold

    @staticmethod
    def _key(profile: str) -> dict:
        return {"id": {"S": f"spot#{profile}"}}

    def record(self, profile: str, now: datetime, instance: str) -> bool:
        """Count an interruption of ``instance`` once (EventBridge may deliver a warning again); answer whether
        the breaker is open now (it opens on the threshold's one).

        The item holds only the interruptions of the last 30 minutes (``window``:
        instance → epoch second), pruned on every write, so it never grows with
        interruptions that come half an hour apart. Writes are conditioned on
        the version read: two warnings at once both count.
        """
        stamp = int(now.timestamp())
        for _ in range(ATTEMPTS):
            item = self._db.get_item(TableName=self._table, Key=self._key(profile), ConsistentRead=True).get("Item", {})
            window = {
                ident: int(seen["N"])
                for ident, seen in item.get("window", {}).get("M", {}).items()
                if int(seen["N"]) > (now - WINDOW).timestamp()
            }
            if instance in window:
                return self._open_until(item) > stamp  # counted already
            window[instance] = stamp
            open_until = self._open_until(item)
            if len(window) >= self.threshold:
                open_until = max(open_until, (now + OPEN_FOR).timestamp())
            version = int(item.get("version", {}).get("N", "0"))
            try:
                self._db.put_item(
                    TableName=self._table,
                    Item={
                        **self._key(profile),
                        "window": {"M": {ident: {"N": str(seen)} for ident, seen in window.items()}},
                        "open_until": {"N": str(int(open_until))},
                        "version": {"N": str(version + 1)},
                        "expiration": {"N": str(int((now + WINDOW + OPEN_FOR).timestamp()))},
                    },
                    ConditionExpression="attribute_not_exists(id) OR version = :seen",
                    ExpressionAttributeValues={":seen": {"N": str(version)}},
                )
            except ClientError as error:
                if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
                continue
            return open_until > stamp
        raise RuntimeError("the spot breaker's item is contended beyond reason")

    def is_open(self, profile: str, now: datetime) -> bool:
        item = self._db.get_item(TableName=self._table, Key=self._key(profile)).get("Item", {})
        return self._open_until(item) > now.timestamp()

    def checker(self, now: datetime) -> Callable[[str], bool]:
        """``is_open`` at ``now``, as a create asks it (only for a ``spot-first`` profile, only when it launches)."""
        return lambda profile: self.is_open(profile, now)

    @staticmethod
    def _open_until(item: dict) -> float:
        return float(item.get("open_until", {}).get("N", "0"))
