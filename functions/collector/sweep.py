"""The sweep: delete every expired session resource of the owned bases, and nothing else.

Plain functions that take their clients, settings and clock, so tests hand
in moto-backed clients and a fixed time. Regions sweep in parallel (EC2
throttles each region separately); inside a region a small pool deletes
concurrently, paced to EC2's request bucket, with botocore's adaptive retry
mode for when something else spends it too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from pacing import EC2_BURST, Pacer
from session_naming.resources import (
    ORDER,
    PARAMETERS,
    SECURITY_GROUPS,
    Found,
    InUse,
    error_code,
    groups_in_use,
    kept_sessions,
    refusal,
)
from session_naming.settings import CollectorSettings

# Stop while this much Lambda time is left: enough to log and answer.
TIME_RESERVE_SECONDS = 10.0


class Budget:
    """Deletions and time left for this run, shared by every region's threads."""

    def __init__(self, max_deletions: int, time_left: Callable[[], float], reserve: float = TIME_RESERVE_SECONDS):
        self._left = max_deletions
        self._time_left, self._reserve = time_left, reserve
        self._lock = threading.Lock()
        self.cut_short: str | None = None

    def take(self) -> bool:
        with self._lock:
            if self.cut_short is None and self._left <= 0:
                self.cut_short = "max-deletions"
            elif self.cut_short is None and self._time_left() < self._reserve:
                self.cut_short = "time"
            if self.cut_short:
                return False
            self._left -= 1
            return True


@dataclass
class KindReport:
    deleted: list[str] = field(default_factory=list)
    kept: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)


class RegionReport(dict):
    """``{kind: KindReport}`` for one region; appends are thread-safe."""

    def __init__(self):
        super().__init__({kind.name: KindReport() for kind in ORDER})
        self._lock = threading.Lock()

    def record(self, found: Found, outcome: str, detail: str | None = None) -> None:
        report = self[found.kind]
        with self._lock:
            if outcome == "deleted":
                report.deleted.append(found.name)
            elif outcome == "kept":
                report.kept.append({"name": found.name, "reason": detail})
            else:
                report.failed.append({"name": found.name, "error": detail})


def sweep(
    clients: Callable[[str, str], object],
    settings: CollectorSettings,
    now: datetime,
    time_left: Callable[[], float],
    dry_run: bool,
    on_outcome: Callable[[str, Found, str, str | None], None] = lambda *_: None,
) -> dict:
    """Sweep every configured region; answer the JSON summary of DESIGN.md."""
    # A worker waits for EC2's pacer before it takes from the budget, at most
    # one turn per worker in flight: the time reserve covers that wait too.
    paced = settings.concurrency / settings.ec2_delete_rate
    budget = Budget(settings.max_deletions, time_left, TIME_RESERVE_SECONDS + paced)
    with ThreadPoolExecutor(max_workers=len(settings.regions)) as pool:
        work = {
            region: pool.submit(sweep_region, clients, region, settings, now, budget, dry_run, on_outcome)
            for region in settings.regions
        }
        reports = {region: future.result() for region, future in work.items()}
    return summarise(reports, budget.cut_short, dry_run)


def sweep_region(clients, region, settings, now, budget, dry_run, on_outcome) -> RegionReport:
    """List every kind to its end, then delete in ORDER.

    Listing first has two reasons. Page tokens may be positions (moto's
    DescribeParameters tokens are), so deleting while paging would skip
    whatever moves up a page. And a session is kept if any of its resources
    is tagged keep, which only the whole listing can tell: if any kind
    cannot be listed, nothing in the region is deleted this run. Only small
    ``Found`` records are held; descriptions come one page at a time.
    """
    report = RegionReport()

    def record(found: Found, outcome: str, detail: str | None = None):
        report.record(found, outcome, detail)
        on_outcome(region, found, outcome, detail)

    patterns = [f"{base}/*" for base in settings.session_bases]
    listed: dict[str, list[Found]] = {}
    try:
        for kind in ORDER:
            listed[kind.name] = [
                found for page in kind.pages(clients(kind.service, region), patterns) for found in page
            ]
        kept = kept_sessions(
            (found for founds in listed.values() for found in founds), clients("ssm", region), patterns
        )
    except Exception as error:  # cannot prove what is kept: report it, delete nothing here, sweep the others
        failed_kind = next((kind.name for kind in ORDER if kind.name not in listed), PARAMETERS.name)
        report[failed_kind].failed.append({"name": f"<listing {region}>", "error": error_code(error)})
        return report

    def judge(found: Found) -> str | None:
        """Why ``found`` is kept, or ``None`` when it is due."""
        reason = refusal(found, settings.session_bases, settings.sweep_untagged)
        if reason is None and found.name in kept:
            reason = "keep-tag"
        if reason is None and not found.session.is_expired(now, settings.grace):
            reason = "not-expired"
        return reason

    # Each region has its own EC2 bucket. Leaving in it as many tokens as
    # calls can be in flight means a call delayed on the way never finds it empty.
    pacer = Pacer(settings.ec2_delete_rate, burst=EC2_BURST - settings.concurrency)
    with ThreadPoolExecutor(max_workers=settings.concurrency) as pool:
        for kind in ORDER:
            client = clients(kind.service, region)
            due = []
            for found in listed[kind.name]:
                reason = judge(found)
                if reason:
                    record(found, "kept", reason)
                else:
                    due.append(found)
            if kind is SECURITY_GROUPS and due:
                try:
                    busy = groups_in_use(client, [found.ident for found in due])
                except Exception as error:  # unknown attachments: keep every group this run
                    busy = {found.ident for found in due}
                    report[kind.name].failed.append({"name": f"<in-use check {region}>", "error": error_code(error)})
                for found in (f for f in due if f.ident in busy):
                    record(found, "kept", "in-use")
                due = [found for found in due if found.ident not in busy]
            pace = pacer.wait if kind.service == "ec2" else None
            chunks = [due[start : start + kind.batch] for start in range(0, len(due), kind.batch)]
            work = [pool.submit(_delete, kind, client, chunk, dry_run, record, budget, pace) for chunk in chunks]
            for future in work:
                future.result()
            if budget.cut_short:
                return report
    return report


def _delete(kind, client, chunk: list[Found], dry_run: bool, record, budget: Budget, pace) -> None:
    """Delete one resource, or up to ``kind.batch`` in one call; failures are recorded, never raised.

    The budget is taken after the pacer's wait, as the call is about to go:
    a queue paced at EC2's rate can outlast the Lambda time left.
    """
    if budget.cut_short:  # the run is over: wait for no token it will not use
        return
    if pace and not dry_run:
        pace()
    chunk = [found for found in chunk if budget.take()]
    if dry_run:
        for found in chunk:
            record(found, "deleted")
        return
    if len(chunk) > 1:
        chunk = _delete_together(kind, client, chunk, record)
    for found in chunk:
        try:
            kind.delete_quietly(client, found)
        except InUse:
            record(found, "kept", "in-use")
        except Exception as error:
            record(found, "failed", error_code(error))
        else:
            record(found, "deleted")


def _delete_together(kind, client, chunk: list[Found], record) -> list[Found]:
    """One call for the chunk; answers what it did not delete, to be asked one by one.

    A batch names what it could not delete without saying why (or fails
    whole when one name is refused); only a call of its own tells "already
    gone" (done) from "refused" (failed).
    """
    try:
        done = kind.delete_batch(client, chunk)
    except Exception:
        return chunk
    for found in chunk:
        if found.ident in done:
            record(found, "deleted")
    return [found for found in chunk if found.ident not in done]


def summarise(reports: dict[str, RegionReport], cut_short: str | None, dry_run: bool) -> dict:
    totals = {"deleted": 0, "kept": 0, "failed": 0}
    regions = {}
    for region, report in reports.items():
        regions[region] = {}
        for kind, kind_report in report.items():
            regions[region][kind] = {
                "deleted": sorted(kind_report.deleted),
                "kept": sorted(kind_report.kept, key=lambda k: (k["reason"], k["name"])),
                "failed": sorted(kind_report.failed, key=lambda f: f["name"]),
            }
            for outcome in totals:
                totals[outcome] += len(getattr(kind_report, outcome))
    return {"dry_run": dry_run, "cut_short": cut_short, "totals": totals, "regions": regions}
