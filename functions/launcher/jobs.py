"""What the launcher remembers of CI jobs, in the stack's DynamoDB table, for at least three days.

A job's end can reach the launcher before the request that makes its session
(GitHub delivers ``completed`` and ``queued`` in any order; a GitLab job can
be cancelled while its script is creating). So a job that ends is recorded
as over, sessions or not, and every create for a job checks that record
after making its resources: either the create sees the job over and
releases what it made, or it finished before the end was recorded, and the
release that follows the record finds all of it by tag. GitHub jobs are also
claimed, so one job gets one session however many ``queued`` deliveries come.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from botocore.exceptions import ClientError
from errors import JobBusy, JobOver

# GitHub redelivers for three days; a day more covers clocks and operators.
REMEMBER = timedelta(days=4)
# Longer than the launcher's Lambda timeout (30 s): a claim older than this has no creator left.
CLAIM_LEASE = timedelta(minutes=2)


def _conditional(error: ClientError) -> bool:
    return error.response["Error"]["Code"] == "ConditionalCheckFailedException"


class JobLedger:
    def __init__(self, dynamodb, table: str):
        self._db, self._table = dynamodb, table

    @staticmethod
    def _key(system: str, job: str) -> dict:
        return {"id": {"S": f"job#{system}#{job}"}}

    def _expiration(self, now: datetime) -> dict:
        return {"N": str(int((now + REMEMBER).timestamp()))}

    def _read(self, system: str, job: str) -> dict:
        return self._db.get_item(TableName=self._table, Key=self._key(system, job), ConsistentRead=True).get("Item", {})

    def claim(self, system: str, job: str, now: datetime) -> dict | None:
        """Claim the job's one session: ``None`` to go ahead, or the answer its session already got.

        Raises ``JobOver`` when the job has ended, ``JobBusy`` while another
        delivery is creating. A claim is a lease: one whose creator died
        (a Lambda timeout runs no clean-up) is taken over once it has lapsed,
        so the job is not stuck for days; what the dead create made is tagged
        with the job, and the job's end releases it with the rest.
        """
        lease = {"N": str(int((now + CLAIM_LEASE).timestamp()))}
        try:
            self._db.put_item(
                TableName=self._table,
                Item={
                    **self._key(system, job),
                    "state": {"S": "creating"},
                    "lease": lease,
                    "expiration": self._expiration(now),
                },
                ConditionExpression="attribute_not_exists(id)",
            )
            return None
        except ClientError as error:
            if not _conditional(error):
                raise
        item = self._read(system, job)
        state = item.get("state", {}).get("S")
        if state == "over":
            raise JobOver(f"{system} job {job} is over: no session is made for it")
        if state == "created":
            return json.loads(item["answer"]["S"])
        try:  # a lapsed claim is taken over; a live one makes this delivery wait
            self._db.update_item(
                TableName=self._table,
                Key=self._key(system, job),
                UpdateExpression="SET lease = :lease",
                ConditionExpression="#state = :creating AND lease < :now",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":lease": lease,
                    ":creating": {"S": "creating"},
                    ":now": {"N": str(int(now.timestamp()))},
                },
            )
            return None
        except ClientError as error:
            if not _conditional(error):
                raise
        raise JobBusy(f"{system} job {job}'s session is being made right now: retry in a few seconds")

    def settle(self, system: str, job: str, answer: dict) -> None:
        """Record the claimed job's session; ``JobOver`` if the job ended meanwhile (release what was made)."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=self._key(system, job),
                UpdateExpression="SET #state = :created, answer = :answer",
                ConditionExpression="#state = :creating",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":created": {"S": "created"},
                    ":creating": {"S": "creating"},
                    ":answer": {"S": json.dumps(answer)},
                },
            )
        except ClientError as error:
            if _conditional(error):
                raise JobOver(f"{system} job {job} ended while its session was being made") from None
            raise

    def abandon(self, system: str, job: str) -> None:
        """A claimed create failed: free the claim so a redelivery may try again (unless the job is over)."""
        try:
            self._db.delete_item(
                TableName=self._table,
                Key=self._key(system, job),
                ConditionExpression="#state = :creating",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={":creating": {"S": "creating"}},
            )
        except ClientError as error:
            if not _conditional(error):
                raise

    def end(self, system: str, job: str, now: datetime) -> None:
        """Record that the job is over; from now on no create for it keeps what it makes."""
        self._db.update_item(
            TableName=self._table,
            Key=self._key(system, job),
            UpdateExpression="SET #state = :over, expiration = :expiration REMOVE answer",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={":over": {"S": "over"}, ":expiration": self._expiration(now)},
        )

    def is_over(self, system: str, job: str) -> bool:
        return self._read(system, job).get("state", {}).get("S") == "over"

    def check_not_over(self, system: str, job: str) -> None:
        """``JobOver`` if the job has ended (GitLab jobs may make several sessions, so they are not claimed)."""
        if self.is_over(system, job):
            raise JobOver(f"{system} job {job} is over: no session is made for it")
