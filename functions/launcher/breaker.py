"""A per-profile circuit breaker for spot: after a run of interruptions, ``spot-first`` goes on demand a while.

Spot capacity that is taken back once tends to be taken back again: a job
that is interrupted three times in half an hour has lost more than on-demand
would have cost. Each interruption is an entry of the stack's job table item
``spot#<profile>``; once a profile has ``SPOT_BREAKER_INTERRUPTIONS`` of
them within 30 minutes, its ``spot-first`` launches skip spot for the next
30 minutes. The item expires by itself (TTL), so nothing cleans it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from botocore.exceptions import ClientError

WINDOW = timedelta(minutes=30)
OPEN_FOR = timedelta(minutes=30)


class SpotBreaker:
    def __init__(self, dynamodb, table: str, threshold: int):
        self._db, self._table, self.threshold = dynamodb, table, threshold

    @staticmethod
    def _key(profile: str) -> dict:
        return {"id": {"S": f"spot#{profile}"}}

    def record(self, profile: str, now: datetime, instance: str) -> bool:
        """Count an interruption of ``instance`` once (EventBridge may deliver a warning again); answer whether
        the breaker is open now (it opens on the threshold's one)."""
        stamp = int(now.timestamp())
        try:
            item = self._db.update_item(
                TableName=self._table,
                Key=self._key(profile),
                UpdateExpression="SET #times = list_append(if_not_exists(#times, :none), :now), "
                "expiration = :expiration ADD instances :instance",
                ConditionExpression="attribute_not_exists(instances) OR NOT contains(instances, :id)",
                ExpressionAttributeNames={"#times": "times"},
                ExpressionAttributeValues={
                    ":none": {"L": []},
                    ":now": {"L": [{"N": str(stamp)}]},
                    ":expiration": {"N": str(int((now + WINDOW + OPEN_FOR).timestamp()))},
                    ":instance": {"SS": [instance]},
                    ":id": {"S": instance},
                },
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return self.is_open(profile, now)  # counted already
        recent = [int(t["N"]) for t in item["times"]["L"] if int(t["N"]) > (now - WINDOW).timestamp()]
        if len(recent) < self.threshold:
            return self._open_until(item) > now.timestamp()
        self._db.update_item(
            TableName=self._table,
            Key=self._key(profile),
            UpdateExpression="SET open_until = :until, #times = :recent",
            ExpressionAttributeNames={"#times": "times"},
            ExpressionAttributeValues={
                ":until": {"N": str(int((now + OPEN_FOR).timestamp()))},
                ":recent": {"L": [{"N": str(t)} for t in recent]},
            },
        )
        return True

    def is_open(self, profile: str, now: datetime) -> bool:
        item = self._db.get_item(TableName=self._table, Key=self._key(profile)).get("Item", {})
        return self._open_until(item) > now.timestamp()

    def checker(self, now: datetime) -> Callable[[str], bool]:
        """``is_open`` at ``now``, as a create asks it (only for a ``spot-first`` profile, only when it launches)."""
        return lambda profile: self.is_open(profile, now)

    @staticmethod
    def _open_until(item: dict) -> float:
        return float(item.get("open_until", {}).get("N", "0"))
