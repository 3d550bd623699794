"""The sweep: delete every expired session resource of the owned bases, and nothing else.

Plain functions that take their clients, settings and clock, so tests hand
in moto-backed clients and a fixed time. Regions sweep in parallel (EC2
throttles each region separately); inside a region a small pool deletes
concurrently, paced to EC2's request bucket, with botocore's adaptive retry
mode for when something else spends it too.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from pacing import EC2_BURST, Pacer
from session_naming.resources import (
    IMAGES,
    ORDER,
    SECURITY_GROUPS,
    SNAPSHOTS,
    Clients,
    Found,
    InUse,
    Kind,
    Verdicts,
    error_code,
    groups_in_use,
    judge,
    kept_sessions,
)
from session_naming.settings import CollectorSettings
from session_naming.tags import GITHUB_RUNNER_TAG

if TYPE_CHECKING:
    from session_naming.github import GitHubApp

# Stop while this much Lambda time is left: enough to log and answer.
TIME_RESERVE_SECONDS = 10.0
# CloudWatch Logs takes events of at most 256 KB; the log line wraps the summary in
# Powertools' own keys, which this leaves ample room for.
LOG_BUDGET_BYTES = 200_000
# Entries a list keeps in the logged summary, tried in turn until it fits.
LOG_LIST_CAPS = (100, 10, 1, 0)


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


KIND_NAMES = tuple(kind.name for kind in ORDER)


@dataclass
class KindReport:
    deleted: list[str] = field(default_factory=list)
    kept: list[dict[str, str | None]] = field(default_factory=list)  # {"name", "reason"}
    failed: list[dict[str, str | None]] = field(default_factory=list)  # {"name", "error"}


class Record(Protocol):
    """What a region's sweep does with each outcome: ``record(found, outcome, detail)``."""

    def __call__(self, found: Found, outcome: str, detail: str | None = None) -> None: ...


class RegionReport(dict[str, KindReport]):
    """``{kind: KindReport}`` for one region; appends are thread-safe."""

    def __init__(self, kinds: tuple[str, ...] = KIND_NAMES):
        super().__init__({kind: KindReport() for kind in kinds})
        self._lock = threading.Lock()
        # What the GitHub part needs from the listing: False when it could not be listed whole.
        self.complete = False
        self.runner_paths: dict[str, str] = {}  # session -> registration path its resources are tagged with
        self.kept_sessions: set[str] = set()
        self.live_sessions: set[str] = set()
        self.removed_gib: dict[str, float] = {}  # kind -> GiB of the volumes and snapshots deleted

    def record(self, found: Found, outcome: str, detail: str | None = None) -> None:
        report = self[found.kind]
        with self._lock:
            if outcome == "deleted":
                report.deleted.append(found.name)
                gib = (found.facts or {}).get("gib")
                if isinstance(gib, int | float):
                    self.removed_gib[found.kind] = self.removed_gib.get(found.kind, 0) + gib
            elif outcome == "kept":
                report.kept.append({"name": found.name, "reason": detail})
            else:
                report.failed.append({"name": found.name, "error": detail})


def sweep(
    clients: Clients,
    settings: CollectorSettings,
    now: datetime,
    time_left: Callable[[], float],
    dry_run: bool,
    on_outcome: Callable[[str, Found, str, str | None], None] = lambda *_: None,
    github: Callable[[], GitHubApp | None] | None = None,
) -> dict[str, Any]:
    """Sweep every configured region, then GitHub's runner registrations; answer the JSON summary.

    ``github`` gives the GitHub App (or ``None``: none configured). Its
    registrations are judged with what every region's listing showed (a
    session kept or live in any region keeps its registration), so they are
    swept only when every region was listed whole. They are reported as the
    kind ``github_runner`` of a region of their own, ``github``.
    """
    # A worker waits for EC2's pacer before it takes from the budget, at most
    # one turn per worker in flight: the time reserve covers that wait too.
    paced = settings.concurrency / settings.ec2_delete_rate
    budget = Budget(settings.max_deletions, time_left, TIME_RESERVE_SECONDS + paced)
    with ThreadPoolExecutor(max_workers=len(settings.regions)) as pool:
        listed = {region: pool.submit(list_region, clients, region, settings) for region in settings.regions}
        listings = {region: future.result() for region, future in listed.items()}
        kept_anywhere = set().union(*(kept_sessions(listing.everything)[0] for listing in listings.values()))
        unlisted = [region for region, listing in listings.items() if listing.failure is not None]
        work = {
            region: pool.submit(
                sweep_region,
                clients,
                region,
                settings,
                now,
                budget,
                dry_run,
                on_outcome,
                listing,
                kept_anywhere,
                unlisted,
            )
            for region, listing in listings.items()
        }
        reports = {region: future.result() for region, future in work.items()}
    if github is not None:
        reports[GITHUB] = sweep_github(github, settings, now, budget, dry_run, list(reports.values()))
    return summarise(reports, budget.cut_short, dry_run, settings.max_deletions)


GITHUB = "github"


def sweep_github(
    github: Callable[[], GitHubApp | None],
    settings: CollectorSettings,
    now: datetime,
    budget: Budget,
    dry_run: bool,
    regions: list[RegionReport],
) -> RegionReport:
    """The registrations of expired sessions, deleted within the same budget; failures are reported, never raised."""
    from runners import KIND, sweep_registrations

    report = RegionReport(kinds=(KIND,))
    if not all(region.complete for region in regions):
        report[KIND].failed.append({"name": "<github>", "error": "a region could not be listed: nothing judged"})
        return report
    try:
        app = github()
        if app is None:
            return report
        outcomes = sweep_registrations(
            app,
            settings.github,
            settings.session_bases,
            now,
            settings.grace,
            tagged={name: path for region in regions for name, path in region.runner_paths.items()},
            kept=set().union(*(region.kept_sessions for region in regions)),
            live=set().union(*(region.live_sessions for region in regions)),
            dry_run=dry_run,
            take_budget=budget.take,
        )
    except Exception as error:  # GitHub or the App's secret: this part's failure, never the sweep's
        report[KIND].failed.append({"name": "<github>", "error": error_code(error)})
        return report
    for name, outcome, detail in outcomes:
        kind_report = report[KIND]
        if outcome == "deleted":
            kind_report.deleted.append(name)
        elif outcome == "kept":
            kind_report.kept.append({"name": name, "reason": detail})
        else:
            kind_report.failed.append({"name": name, "error": detail})
    return report


@dataclass
class Listing:
    """One region's listing of every kind, to its end, or the failure that stopped it."""

    by_kind: dict[str, list[Found]] = field(default_factory=dict)
    failure: tuple[str, str] | None = None  # (kind, error code)

    @property
    def everything(self) -> list[Found]:
        return [found for founds in self.by_kind.values() for found in founds]


def list_region(clients: Clients, region: str, settings: CollectorSettings) -> Listing:
    """Every kind of the owned bases in ``region``, each listed to its end, before anything is judged.

    Listing first has two reasons. Page tokens may be positions (moto's
    DescribeParameters tokens are), so deleting while paging would skip
    whatever moves up a page. And a session is kept if any of its resources,
    in any swept region, is tagged keep, which only every whole listing can
    tell. Only small ``Found`` records are held; descriptions come one page
    at a time.
    """
    patterns = [f"{base}/*" for base in settings.session_bases]
    listing = Listing()
    for kind in ORDER:
        try:
            listing.by_kind[kind.name] = kind.listing(clients, region, patterns)
        except Exception as error:  # cannot prove what is kept: the sweep deletes nothing anywhere
            listing.failure = (kind.name, error_code(error))
            break
    return listing


def sweep_region(
    clients: Clients,
    region: str,
    settings: CollectorSettings,
    now: datetime,
    budget: Budget,
    dry_run: bool,
    on_outcome: Callable[[str, Found, str, str | None], None],
    listing: Listing,
    kept_anywhere: set[str],
    unlisted: list[str],
) -> RegionReport:
    """Judge this region's listing with the sessions every region keeps, then delete in ORDER.

    If any region could not be listed, no region deletes anything this run:
    a session kept there is not provably unkept here. Judging is per
    resource: one that cannot be judged (any exception) is reported failed
    and the others are swept.
    """
    report = RegionReport()
    gone: set[str] = set()  # identifiers deleted (or, in a dry run, that would be) this run

    def record(found: Found, outcome: str, detail: str | None = None) -> None:
        if outcome == "deleted":
            gone.add(found.ident)
        report.record(found, outcome, detail)
        on_outcome(region, found, outcome, detail)

    if listing.failure is not None:
        failed_kind, code = listing.failure
        report[failed_kind].failed.append({"name": f"<listing {region}>", "error": code})
        return report
    if unlisted:  # reported by those regions' own reports
        return report
    listed = listing.by_kind
    everything = listing.everything
    verdicts = judge(everything, settings.session_bases, settings.sweep_untagged, kept_anywhere)
    _note_for_github(report, everything, verdicts, now, settings)
    for found, reason in verdicts.kept:
        record(found, "kept", reason)
    for found, code in verdicts.failed:
        record(found, "failed", code)
    due: dict[str, list[Found]] = {kind.name: [] for kind in ORDER}
    for found in verdicts.deletable:
        try:
            session = found.session
            assert session is not None  # judge finds deletable only what parses
            expired = session.is_expired(now, settings.grace)
        except Exception as error:  # rule 8: one resource's arithmetic is that resource's problem
            record(found, "failed", error_code(error))
            continue
        if not expired:
            record(found, "kept", "not-expired")
        elif found.in_use:  # associated when listed: no mutating call spent on it
            record(found, "kept", "in-use")
        else:
            due[found.kind].append(found)

    # Each region has its own EC2 bucket. Leaving in it as many tokens as
    # calls can be in flight means a call delayed on the way never finds it empty.
    pacer = Pacer(settings.ec2_delete_rate, burst=EC2_BURST - settings.concurrency)
    with ThreadPoolExecutor(max_workers=settings.concurrency) as pool:
        for kind in ORDER:
            client = kind.client(clients, region)
            todo = due[kind.name]
            if kind is SECURITY_GROUPS and todo:
                try:
                    busy = groups_in_use(client, [found.ident for found in todo])
                except Exception as error:  # unknown attachments: keep every group this run
                    busy = {found.ident for found in todo}
                    report[kind.name].failed.append({"name": f"<in-use check {region}>", "error": error_code(error)})
                todo = _keep_busy(todo, busy, record)
            if kind is SNAPSHOTS and todo:
                # An AMI listed and not deregistered this run still holds its snapshots.
                held = {s for image in listed[IMAGES.name] if image.ident not in gone for s in image.uses}
                todo = _keep_busy(todo, held, record)
            pace = pacer.wait if kind.service == "ec2" else None
            chunks = [todo[start : start + kind.batch] for start in range(0, len(todo), kind.batch)]
            work = [pool.submit(_delete, kind, client, chunk, dry_run, record, budget, pace) for chunk in chunks]
            for future in work:
                future.result()
            if budget.cut_short:
                return report
    return report


def _note_for_github(
    report: RegionReport, everything: list[Found], verdicts: Verdicts, now: datetime, settings: CollectorSettings
) -> None:
    """What the registration sweep must know of this region: tagged paths, kept and live sessions."""
    report.complete = True
    for found in everything:
        session = found.session
        if session is None:
            continue
        path = (found.tags or {}).get(GITHUB_RUNNER_TAG)
        if path:
            report.runner_paths[str(session)] = path
        try:
            if not session.is_expired(now, settings.grace):
                report.live_sessions.add(str(session))
        except OverflowError:
            report.live_sessions.add(str(session))
    report.kept_sessions |= {found.name for found, reason in verdicts.kept if reason == "keep-tag"}


def _keep_busy(due: list[Found], busy: set[str], record: Record) -> list[Found]:
    """Record the busy ones kept ``in-use`` (retried next run); answer the rest."""
    for found in due:
        if found.ident in busy:
            record(found, "kept", "in-use")
    return [found for found in due if found.ident not in busy]


def _delete[C](
    kind: Kind[C],
    client: C,
    chunk: list[Found],
    dry_run: bool,
    record: Record,
    budget: Budget,
    pace: Callable[[], None] | None,
) -> None:
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


def _delete_together[C](kind: Kind[C], client: C, chunk: list[Found], record: Record) -> list[Found]:
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


def summarise(
    reports: dict[str, RegionReport], cut_short: str | None, dry_run: bool, max_deletions: int | None = None
) -> dict[str, Any]:
    """The run in one JSON object: totals, what it removed (to price it), and every region's kinds."""
    totals = {"deleted": 0, "kept": 0, "failed": 0}
    regions: dict[str, dict[str, dict[str, Any]]] = {}
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
    removed = {
        "volume_gib": sum(r.removed_gib.get("volume", 0) for r in reports.values()),
        "snapshot_gib": sum(r.removed_gib.get("snapshot", 0) for r in reports.values()),
        "addresses": sum(len(r["address"].deleted) for r in reports.values() if "address" in r),
    }
    summary: dict[str, Any] = {
        "dry_run": dry_run,
        "cut_short": cut_short,
        "totals": totals,
        "removed": removed,
        "regions": regions,
    }
    if max_deletions is not None:
        summary["budget_left"] = max(0, max_deletions - totals["deleted"])
    return summary


def summary_for_log(summary: dict[str, Any], budget: int = LOG_BUDGET_BYTES) -> dict[str, Any]:
    """The summary as one CloudWatch log event can hold it, whatever MAX_DELETIONS is.

    A summary that fits goes whole. Otherwise every list keeps its first
    entries (100, else 10, 1 or none: the first that fits) and its report
    says how many it left out under ``"more"``; totals and every region and
    kind stay. The lists are bounded by the regions swept (a few dozen), so
    the last cap always fits. The handler's result keeps the whole summary,
    and each deletion has its own log line.
    """
    if _json_bytes(summary) <= budget:
        return summary
    for cap in LOG_LIST_CAPS:
        cut = _cut(summary, cap)
        if _json_bytes(cut) <= budget:
            break
    return cut


def _cut(summary: dict[str, Any], cap: int) -> dict[str, Any]:
    regions: dict[str, dict[str, dict[str, Any]]] = {}
    for region, kinds in summary["regions"].items():
        regions[region] = {}
        for kind, report in kinds.items():
            lists = {outcome: entries[:cap] for outcome, entries in report.items() if outcome != "more"}
            more = {outcome: len(report[outcome]) - cap for outcome in lists if len(report[outcome]) > cap}
            regions[region][kind] = {**lists, "more": more} if more else lists
    return {**summary, "regions": regions, "lists_cut_to": cap}


def _json_bytes(value: object) -> int:
    """Its size as Powertools writes it: compact JSON, non-ASCII escaped (the larger spelling)."""
    return len(json.dumps(value, separators=(",", ":"), default=str))
