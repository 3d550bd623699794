"""Release sessions now, through the launcher's own judged release (a kept session is refused).

As the launcher's ``DELETE /sessions/...`` route does, a release gives the
session's live-session slots back and makes the GitHub job it was made for
pending again (the job had not started on it: the next reconcile pass gives
it a session of its own), both in the stack's table when the operator names
it (``IDEMPOTENCY_TABLE``).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

from errors import SessionKept, SessionNotFound
from session_naming import SessionName
from session_naming.resources import Clients
from session_naming.settings import LauncherSettings

from ec2_sessions import PROG, Refused
from ec2_sessions.summary import counts

if TYPE_CHECKING:
    from jobs import JobLedger
    from slots import Slots

    from ec2_sessions.pool import PoolRecords

# What the launcher's code reads of Lambda's environment, as the command runs it: its logger at warning
# level, and a namespace for the metric lines it prints (which go nowhere: no agent reads a shell's output).
LAUNCHER_ENV = {"POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_NAMESPACE": "ec2-sessions"}


@dataclass(frozen=True)
class StackTable:
    """The stack's DynamoDB table (its ``IdempotencyTableName`` output): live-session slots and CI jobs."""

    dynamodb: Any
    name: str

    def slots(self) -> Slots:
        from slots import Slots

        return Slots(self.dynamodb, self.name)

    def ledger(self) -> JobLedger:
        from jobs import JobLedger

        return JobLedger(self.dynamodb, self.name)

    def pools(self) -> PoolRecords:
        from ec2_sessions.pool import PoolRecords

        return PoolRecords(self.dynamodb, self.name)


def release(client: Clients, settings: LauncherSettings, name: SessionName, table: StackTable | None) -> dict[str, Any]:
    """The launcher's judged release, deleting in every region given (an operator may delete everywhere)."""
    release_session, sessions_job = _launcher()
    with launcher_environment(), contextlib.redirect_stdout(io.StringIO()):  # its metric lines go nowhere
        job = sessions_job(settings, name)  # read before the release: the tags go with the session
        try:
            report = release_session(
                client, settings, name, table.slots() if table else None, delete_regions=settings.regions
            )
        except SessionKept as kept:
            raise Refused(f"{kept}; or: {PROG} unkeep {name}") from None
        except SessionNotFound as missing:
            raise Refused(f"{missing}: check the name and --regions") from None
    if job is not None:
        pending = table.ledger().rebind("github", job, datetime.now(UTC)) if table else None
        report["github_job"] = {"id": job, "pending_again": pending}
    return report


def release_all(
    client: Clients, settings: LauncherSettings, names: Iterable[SessionName], table: StackTable | None, out: IO[str]
) -> tuple[int, int, int]:
    """Release each session, a line each; answer how many were released, refused, and released with failures."""
    released, refused, failed = 0, 0, 0
    for name in names:
        try:
            report = release(client, settings, name, table)
        except Refused as why:
            print(f"not released: {why}", file=out)
            refused += 1
            continue
        print(release_line(report), file=out)
        failed += bool(report["failed"])
        released += not report["failed"]
    return released, refused, failed


def release_line(report: Mapping[str, Any]) -> str:
    line = f"released {report['session']}: deleted {counts(report['deleted'])}"
    left = [f"{item['kind']} {item['id']} ({item['reason']})" for item in report["left_to_collector"] + report["kept"]]
    failed = [f"{item['kind']} {item['id']} ({item['error']})" for item in report["failed"]]
    if left:
        line += f"; left to the collector: {', '.join(left)}"
    if failed:
        line += f"; FAILED: {', '.join(failed)}"
    job = report.get("github_job")
    if job and job["pending_again"]:
        line += f"; GitHub job {job['id']} is pending again: the next reconcile pass gives it a session"
    elif job and job["pending_again"] is None:
        line += f"; GitHub job {job['id']} is not pending again: set IDEMPOTENCY_TABLE to the stack's table"
    return line


def _launcher() -> tuple[Any, Any]:
    """The launcher's ``release_session`` and ``sessions_job``, imported as the command runs them.

    Powertools' logger takes its level and its stream when it is made, at
    import: here at warning level, on standard error, so its warnings reach
    the operator whatever standard output holds later.
    """
    with launcher_environment(), contextlib.redirect_stdout(sys.stderr):
        from launch import release_session
        from sessions import sessions_job
    return release_session, sessions_job


@contextlib.contextmanager
def launcher_environment() -> Iterator[None]:
    """``LAUNCHER_ENV`` where the operator's environment does not say otherwise, put back afterwards."""
    from unittest import mock

    with mock.patch.dict(os.environ, {key: value for key, value in LAUNCHER_ENV.items() if key not in os.environ}):
        yield
