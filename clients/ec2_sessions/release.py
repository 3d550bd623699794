"""Release sessions now, through the launcher's own judged release (a kept session is refused)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Mapping
from typing import IO, Any

from errors import SessionKept, SessionNotFound
from session_naming import SessionName
from session_naming.resources import Clients
from session_naming.settings import LauncherSettings

from ec2_sessions import PROG, Refused
from ec2_sessions.summary import counts


def release(client: Clients, settings: LauncherSettings, name: SessionName, slots: Any | None) -> dict[str, Any]:
    """The launcher's judged release, deleting in every region given (an operator may delete everywhere)."""
    try:
        with contextlib.redirect_stdout(sys.stderr):  # the release's metric lines are Lambda's, not the user's
            return launcher_release()(client, settings, name, slots, delete_regions=settings.regions)
    except SessionKept as kept:
        raise Refused(f"{kept}; or: {PROG} unkeep {name}") from None
    except SessionNotFound as missing:
        raise Refused(f"{missing}: check the name and --regions") from None


def release_all(
    client: Clients, settings: LauncherSettings, names: Iterable[SessionName], slots: Any | None, out: IO[str]
) -> tuple[int, int, int]:
    """Release each session, a line each; answer how many were released, refused, and released with failures."""
    released, refused, failed = 0, 0, 0
    for name in names:
        try:
            report = release(client, settings, name, slots)
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
    return line


def launcher_release():
    """The launcher's ``release_session``, its logger made at warning level (imported here, first, for that).

    The launcher logs JSON lines as Lambda does; the command shows only its
    warnings (on standard error), so standard output holds what it prints.
    The environment is put back: nothing else in the process sees the change.
    """
    from unittest import mock

    quiet = {"POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_NAMESPACE": "ec2-sessions"}
    with mock.patch.dict(os.environ, {key: value for key, value in quiet.items() if key not in os.environ}):
        from launch import release_session
    return release_session
