"""What the launcher remembers of CI jobs, in the stack's DynamoDB table, for at least three days.

A job's end can reach the launcher before the request that makes its session
(GitHub delivers ``completed`` and ``queued`` in any order; a GitLab job can
be cancelled while its script is creating). So a job that ends is recorded
as over, sessions or not, and every create for a job checks that record
after making its resources: either the create sees the job over and
releases what it made, or it finished before the end was recorded, and the
release that follows the record finds all of it by tag. GitHub jobs are also
claimed, so one job gets one session however many ``queued`` deliveries come.

A GitHub job not yet running sits in the table's sparse index ``due`` (the
queue it is ``awaiting`` and the epoch second ``due_at`` it may next be tried): claimed and
being made (due when its lease lapses: a crash mid-create is retried),
pending after a failed create, served but not started (due when its session
expires: a session gone before its job started leaves the job pending
again), waiting for its failure to be reported on GitHub, or waiting for its
interrupted run to be re-run. The reconcile pass reads that index with a
query, never the whole table; a started or ended job leaves it.

A job waiting for a deployment's reviewer is remembered as ``waiting`` (for
30 days, as long as GitHub lets it wait) and gets no session; its approved
``queued`` takes it, and its clock (``clock_from``: the check run after 15
minutes, the retries, the giving up after a day) starts at the approval.

The states: ``waiting`` → ``creating`` → ``created`` → ``running`` →
``over``, with ``pending`` (a create failed, or the session went before the
job started) back to ``creating``, ``unmatched`` (no profile) and
``dropped`` (a day without a session, or no longer allowed).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from botocore.exceptions import ClientError
from errors import JobBusy, JobOver

# GitHub redelivers for three days; a day more covers clocks and operators.
REMEMBER = timedelta(days=4)
WAIT_FOR_APPROVAL = timedelta(days=30)  # GitHub lets a job wait 30 days for an environment's reviewer
# Longer than the launcher's Lambda timeout (60 s): a claim older than this has no creator left.
CLAIM_LEASE = timedelta(minutes=2)
INDEX = "due"
# The index's queues: jobs to make a session for, failures to tell, runs to re-run, sessions made but not started.
PENDING, REPORT, RERUN, SERVED = "pending", "report", "rerun", "served"
WATERMARK = {"id": {"S": "pass#deliveries"}}  # where the last whole listing of the App's deliveries began
EVERY_PASS_FOR = timedelta(hours=1)  # a pending job is tried on every pass for its first hour,
SLOWER_RETRY = timedelta(minutes=15)  # then at most every 15 minutes,
GIVE_UP_AFTER = timedelta(hours=24)  # until it is a day old (GitHub cancels it then)
REPORT_TRIES = 5  # a check run GitHub keeps failing is tried this many times, one a pass


@contextmanager
def _unless_beaten() -> Iterator[None]:
    """A conditional write whose condition no longer holds (another writer was first) is no error here."""
    try:
        yield
    except ClientError as error:
        if not _conditional(error):
            raise


def _conditional(error: ClientError) -> bool:
    return error.response["Error"]["Code"] == "ConditionalCheckFailedException"


def clock_of(item: dict) -> datetime | None:
    """When a job's clock started, if not at its ``created_at``: the approval of a job that waited for one."""
    if "clock_from" not in item:
        return None
    return datetime.fromtimestamp(int(item["clock_from"]["N"]), UTC)


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

    def claim(self, system: str, job: str, now: datetime, delivery: dict | None = None) -> dict | None:
        """Claim the job's one session: ``None`` to go ahead, or the answer its session already got.

        Raises ``JobOver`` when the job has ended, ``JobBusy`` while another
        delivery is creating. A claim is a lease: one whose creator died
        (a Lambda timeout runs no clean-up) is taken over once it has lapsed,
        so the job is not stuck for days; what the dead create made is tagged
        with the job, and the job's end releases it with the rest. A pending
        job (a create failed) is taken at once, and so is a job that waited
        for its approval (its clock starts now). ``delivery`` is what a retry
        needs of the ``queued`` delivery; while the job waits it is in the
        index, due when the lease lapses.
        """
        lease = {"N": str(int((now + CLAIM_LEASE).timestamp()))}
        item = {
            **self._key(system, job),
            "state": {"S": "creating"},
            "lease": lease,
            "expiration": self._expiration(now),
        }
        if delivery is not None:
            item |= {"delivery": {"S": json.dumps(delivery)}, "awaiting": {"S": PENDING}, "due_at": lease}
        with _unless_beaten():
            self._db.put_item(TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(id)")
            return None
        current = self._read(system, job)
        state = current.get("state", {}).get("S")
        if state in ("over", "dropped"):
            raise JobOver(f"{system} job {job} is over: no session is made for it")
        if state in ("created", "running") and "answer" in current:  # served (and maybe started already)
            return json.loads(current["answer"]["S"])
        if state == "waiting" and delivery is not None and self._approve(system, job, now, delivery):
            return None
        if self.take(system, job, now):
            return None
        raise JobBusy(f"{system} job {job}'s session is being made right now: retry in a few seconds")

    def wait(self, system: str, job: str, delivery: dict, now: datetime) -> None:
        """The job waits for a deployment's reviewer: remembered, with no session, until its approved ``queued``.

        A job the ledger already knows (served, over, or a waiting delivery
        that comes late) is left as it is.
        """
        with _unless_beaten():
            self._db.put_item(
                TableName=self._table,
                Item={
                    **self._key(system, job),
                    "state": {"S": "waiting"},
                    "delivery": {"S": json.dumps(delivery)},
                    "expiration": {"N": str(int((now + WAIT_FOR_APPROVAL).timestamp()))},
                },
                ConditionExpression="attribute_not_exists(id)",
            )

    def is_waiting(self, system: str, job: str) -> bool:
        return self._read(system, job).get("state", {}).get("S") == "waiting"

    def _approve(self, system: str, job: str, now: datetime, delivery: dict) -> bool:
        """The waiting job was approved: claimed now, its clock starting now (``False``: someone else took it)."""
        lease = {"N": str(int((now + CLAIM_LEASE).timestamp()))}
        with _unless_beaten():
            self._db.update_item(
                TableName=self._table,
                Key=self._key(system, job),
                UpdateExpression="SET #state = :creating, lease = :lease, due_at = :lease, awaiting = :queue, "
                "delivery = :delivery, clock_from = :now, expiration = :expiration",
                ConditionExpression="#state = :waiting",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":creating": {"S": "creating"},
                    ":waiting": {"S": "waiting"},
                    ":lease": lease,
                    ":queue": {"S": PENDING},
                    ":delivery": {"S": json.dumps(delivery)},
                    ":now": {"N": str(int(now.timestamp()))},
                    ":expiration": self._expiration(now),
                },
            )
            return True
        return False

    def clock_from(self, system: str, job: str) -> datetime | None:
        """When the job's clock started, if not at its ``created_at``: its approval."""
        return clock_of(self._read(system, job))

    def take(self, system: str, job: str, now: datetime) -> bool:
        """Take a pending (or unmatched) job, or one whose claim has lapsed, to create its session now.

        ``False`` when it is none of those: served, over, or being made right now.
        """
        lease = {"N": str(int((now + CLAIM_LEASE).timestamp()))}
        with _unless_beaten():
            self._db.update_item(
                TableName=self._table,
                Key=self._key(system, job),
                # In the pending queue, due when the lease lapses: a create that dies is tried again.
                UpdateExpression="SET #state = :creating, lease = :lease, due_at = :lease, awaiting = :queue",
                # An unmatched job whose profile now exists (a redelivery after the fix) is served too.
                ConditionExpression="#state IN (:pending, :unmatched) OR (#state = :creating AND lease < :now)",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":lease": lease,
                    ":creating": {"S": "creating"},
                    ":pending": {"S": "pending"},
                    ":unmatched": {"S": "unmatched"},
                    ":now": {"N": str(int(now.timestamp()))},
                    ":queue": {"S": PENDING},
                },
            )
            return True
        return False

    def settle(self, system: str, job: str, answer: dict, expires: datetime | None = None) -> None:
        """Record the claimed job's session; ``JobOver`` if the job ended meanwhile (release what was made).

        Until the job starts it waits in the index for the session's
        ``expires``: a job still queued then has lost its session to the
        collector and is pending again (``gone``).
        """
        served = ""
        values = {
            ":created": {"S": "created"},
            ":creating": {"S": "creating"},
            ":answer": {"S": json.dumps(answer)},
        }
        if expires is not None:
            served = ", awaiting = :served, due_at = :expires"
            values |= {":served": {"S": SERVED}, ":expires": {"N": str(int(expires.timestamp()))}}
        try:
            self._db.update_item(
                TableName=self._table,
                Key=self._key(system, job),
                UpdateExpression=f"SET #state = :created, answer = :answer{served} REMOVE reason"
                + ("" if served else ", awaiting, due_at"),
                ConditionExpression="#state = :creating",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if not _conditional(error):
                raise
        else:
            return
        # Its runner may have taken it before this create answered (a hot pool's starts within a second): the
        # job runs, and its session is recorded all the same. Only an ended job's session is released.
        with _unless_beaten():
            self._db.update_item(
                TableName=self._table,
                Key=self._key(system, job),
                UpdateExpression="SET answer = :answer",
                ConditionExpression="#state = :running",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={":answer": values[":answer"], ":running": {"S": "running"}},
            )
            return
        raise JobOver(f"{system} job {job} ended while its session was made")

    def pend(self, system: str, job: str, reason: str, now: datetime, since: datetime | None) -> None:
        """A claimed create failed: the job waits in the index for the next pass (or a redelivery).

        Tried on every pass while the job is under an hour old (``since``: its
        ``created_at``, or its approval), then at most every 15 minutes; a job
        that ended meanwhile stays over.
        """
        age = now - since if since is not None else timedelta(0)
        due = now if age < EVERY_PASS_FOR else now + SLOWER_RETRY
        with _unless_beaten():
            self._db.update_item(
                TableName=self._table,
                Key=self._key(system, job),
                UpdateExpression="SET #state = :pending, awaiting = :queue, due_at = :due, reason = :reason "
                "ADD attempts :one",
                ConditionExpression="#state = :creating",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":pending": {"S": "pending"},
                    ":creating": {"S": "creating"},
                    ":queue": {"S": PENDING},
                    ":due": {"N": str(int(due.timestamp()))},
                    ":reason": {"S": reason},
                    ":one": {"N": "1"},
                },
            )

    def unserved(self, system: str, job: str, delivery: dict, reason: str, now: datetime) -> None:
        """A job refused for a reason only its user can fix (no profile): its failure is reported, once.

        A job that waited for its approval is refused as one the ledger never saw (its clock starts now).
        """
        with _unless_beaten():
            self._db.put_item(
                TableName=self._table,
                Item={
                    **self._key(system, job),
                    "state": {"S": "unmatched"},
                    "reason": {"S": reason},
                    "delivery": {"S": json.dumps(delivery)},
                    "awaiting": {"S": REPORT},
                    "due_at": {"N": str(int(now.timestamp()))},
                    "clock_from": {"N": str(int(now.timestamp()))},
                    "expiration": self._expiration(now),
                },
                ConditionExpression="attribute_not_exists(id) OR #state = :waiting",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={":waiting": {"S": "waiting"}},
            )

    def due(self, queue: str, now: datetime, limit: int = 100, start: dict | None = None) -> tuple[list[dict], dict]:
        """One page of the queue's items due by ``now``, oldest due first, and where the next page starts."""
        request: dict = {
            "TableName": self._table,
            "IndexName": INDEX,
            "KeyConditionExpression": "awaiting = :queue AND due_at <= :now",
            "ExpressionAttributeValues": {":queue": {"S": queue}, ":now": {"N": str(int(now.timestamp()))}},
            "Limit": limit,
        }
        if start:
            request["ExclusiveStartKey"] = start
        page = self._db.query(**request)
        return page.get("Items", []), page.get("LastEvaluatedKey") or {}

    def defer(self, item: dict, queue: str, due: datetime) -> None:
        """Move an item's next turn in ``queue`` to ``due`` (a run not completed yet; a job reported)."""
        self._db.update_item(
            TableName=self._table,
            Key={"id": item["id"]},
            UpdateExpression="SET awaiting = :queue, due_at = :due",
            ConditionExpression="attribute_exists(id)",
            ExpressionAttributeValues={":queue": {"S": queue}, ":due": {"N": str(int(due.timestamp()))}},
        )

    def leave_index(self, item: dict, state: str | None = None) -> bool:
        """Done with the item's queue (dropped after a day; reported; re-run): only if it is still in the queue it
        was read from (a delivery or an ``in_progress`` may have moved it meanwhile), and, to set ``state``, still
        in the state it was read in. ``False`` when it had moved."""
        request: dict = {
            "UpdateExpression": "REMOVE awaiting, due_at",
            "ConditionExpression": "awaiting = :queue",
            "ExpressionAttributeValues": {":queue": item["awaiting"]},
        }
        if state is not None:
            request["UpdateExpression"] = "SET #state = :state REMOVE awaiting, due_at"
            request["ConditionExpression"] += " AND #state = :read"
            request["ExpressionAttributeNames"] = {"#state": "state"}
            request["ExpressionAttributeValues"] |= {":state": {"S": state}, ":read": item.get("state", {"S": ""})}
        with _unless_beaten():
            self._db.update_item(TableName=self._table, Key={"id": item["id"]}, **request)
            return True
        return False

    def report_failed(self, item: dict, *, final: bool) -> None:
        """The check run could not be made: tried again on a later pass, unless GitHub refused it for good
        (``final``) or it failed five times; then the job's failure stays marked as told (it never will be)."""
        update = self._db.update_item(
            TableName=self._table,
            Key={"id": item["id"]},
            UpdateExpression="ADD report_failures :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="UPDATED_NEW",
        )
        failures = int(update["Attributes"]["report_failures"]["N"])
        if not final and failures < REPORT_TRIES:
            self.unreport(item)

    def report_once(self, item: dict) -> bool:
        """Mark the job's failure reported; ``False`` when it already was (one check run per job)."""
        with _unless_beaten():
            self._db.update_item(
                TableName=self._table,
                Key={"id": item["id"]},
                UpdateExpression="SET reported = :yes",
                ConditionExpression="attribute_not_exists(reported)",
                ExpressionAttributeValues={":yes": {"BOOL": True}},
            )
            return True
        return False

    def unreport(self, item: dict) -> None:
        """The check run could not be made: the job's failure is still to be reported."""
        self._db.update_item(TableName=self._table, Key={"id": item["id"]}, UpdateExpression="REMOVE reported")

    def listed_since(self) -> datetime | None:
        """Where the last whole listing of the App's deliveries began (``None``: never listed)."""
        item = self._db.get_item(TableName=self._table, Key=WATERMARK, ConsistentRead=True).get("Item", {})
        return datetime.fromtimestamp(int(item["at"]["N"]), UTC) if "at" in item else None

    def listed(self, began: datetime, now: datetime) -> None:
        """A listing that began at ``began`` went to its end: the next one need not look further back."""
        stamp = {"N": str(int(began.timestamp()))}
        with _unless_beaten():
            self._db.put_item(
                TableName=self._table,
                Item={**WATERMARK, "at": stamp, "expiration": self._expiration(now)},
                ConditionExpression="attribute_not_exists(id) OR #at < :at",
                ExpressionAttributeNames={"#at": "at"},
                ExpressionAttributeValues={":at": stamp},
            )

    def remember_once(self, key: str, now: datetime) -> bool:
        """Record a one-off action (a redelivery of a ``guid``); ``False`` when it was done before."""
        with _unless_beaten():
            self._db.put_item(
                TableName=self._table,
                Item={"id": {"S": key}, "expiration": self._expiration(now)},
                ConditionExpression="attribute_not_exists(id)",
            )
            return True
        return False

    def retry(self, item: dict, queue: str, due: datetime, most: int) -> bool:
        """Put the item (back) in ``queue`` at ``due`` unless it has failed ``most`` times (``False``: given up)."""
        with _unless_beaten():
            self._db.update_item(
                TableName=self._table,
                Key={"id": item["id"]},
                UpdateExpression="SET awaiting = :queue, due_at = :due ADD tries :one",
                ConditionExpression="attribute_exists(id) AND (attribute_not_exists(tries) OR tries < :most)",
                ExpressionAttributeValues={
                    ":queue": {"S": queue},
                    ":due": {"N": str(int(due.timestamp()))},
                    ":one": {"N": "1"},
                    ":most": {"N": str(most - 1)},
                },
            )
            return True
        return False

    def forget(self, key: str) -> None:
        """The one-off action failed after all (a redelivery GitHub did not take): a later pass does it again."""
        self._db.delete_item(TableName=self._table, Key={"id": {"S": key}})

    def running(self, system: str, job: str) -> None:
        """The job has started (on some runner): it waits for nothing, and no other job's start re-pends it."""
        with _unless_beaten():
            self._db.update_item(
                TableName=self._table,
                Key=self._key(system, job),
                UpdateExpression="SET #state = :running REMOVE awaiting, due_at",
                ConditionExpression="attribute_exists(id) AND #state <> :over",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={":running": {"S": "running"}, ":over": {"S": "over"}},
            )

    def rebind(self, system: str, job: str, now: datetime, reason: str = "runner_taken") -> bool:
        """Job A lost its session before it started (another job took its runner, the session was released,
        taken back by spot, or expired): A is pending again, at once (unless it started or is over)."""
        with _unless_beaten():
            self._db.update_item(
                TableName=self._table,
                Key=self._key(system, job),
                UpdateExpression=(
                    "SET #state = :pending, awaiting = :queue, due_at = :due, reason = :reason REMOVE answer"
                ),
                ConditionExpression="#state = :created AND attribute_exists(delivery)",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":pending": {"S": "pending"},
                    ":created": {"S": "created"},
                    ":queue": {"S": PENDING},
                    ":due": {"N": str(int(now.timestamp()))},
                    ":reason": {"S": reason},
                },
            )
            return True
        return False

    def end(self, system: str, job: str, now: datetime, rerun: dict | None = None) -> None:
        """Record that the job is over; from now on no create for it keeps what it makes.

        A job whose session was interrupted and that ended failed (``rerun``:
        its repository and run) waits in the index for its run to complete,
        to be re-run once: the marker ``rerun`` is written only if absent, so
        however many ``completed`` deliveries come, one re-run is queued.
        """
        over = {
            "TableName": self._table,
            "Key": self._key(system, job),
            "ExpressionAttributeNames": {"#state": "state"},
            "ExpressionAttributeValues": {":over": {"S": "over"}, ":expiration": self._expiration(now)},
        }
        try:  # out of every queue, unless a re-run is queued already (then it stays in that one)
            self._db.update_item(
                **over,
                UpdateExpression="SET #state = :over, expiration = :expiration REMOVE answer, awaiting, due_at",
                ConditionExpression="attribute_not_exists(run)",
            )
        except ClientError as error:
            if not _conditional(error):
                raise
            self._db.update_item(**over, UpdateExpression="SET #state = :over, expiration = :expiration REMOVE answer")
        if rerun is None:
            return
        with _unless_beaten():
            self._db.update_item(
                TableName=self._table,
                Key=self._key(system, job),
                UpdateExpression="SET run = :run, awaiting = :queue, due_at = :due",
                ConditionExpression="attribute_not_exists(run)",
                ExpressionAttributeValues={
                    ":run": {"S": json.dumps(rerun)},
                    ":queue": {"S": RERUN},
                    ":due": {"N": str(int(now.timestamp()))},
                },
            )

    def mark_interrupted(self, system: str, job: str, now: datetime) -> None:
        """The job's session was taken back (spot): its run is re-run once it completes failed.

        A job the table does not know (its queued was never seen) is left
        alone: nothing waits on it here.
        """
        with _unless_beaten():
            self._db.update_item(
                TableName=self._table,
                Key=self._key(system, job),
                UpdateExpression="SET interrupted = :now",
                ConditionExpression="attribute_exists(id)",
                ExpressionAttributeValues={":now": {"N": str(int(now.timestamp()))}},
            )

    def was_interrupted(self, system: str, job: str) -> bool:
        return "interrupted" in self._read(system, job)

    def is_over(self, system: str, job: str) -> bool:
        return self._read(system, job).get("state", {}).get("S") == "over"

    def check_not_over(self, system: str, job: str) -> None:
        """``JobOver`` if the job has ended (GitLab jobs may make several sessions, so they are not claimed)."""
        if self.is_over(system, job):
            raise JobOver(f"{system} job {job} is over: no session is made for it")
