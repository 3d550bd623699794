"""The seeded account: expired, live and foreign look-alike sessions per region.

Seeded once through the moto server's API (moto's describes of many tagged
resources slow down quadratically, so re-seeding the whole account per
scenario would cost more than the scenarios); after a sweep only the
expired sessions, the ones a sweep deletes, are made again.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tests.support.seed import inventory, name_expiring, seed

BASE = "ec2-test-runner"
SESSION_KINDS = ("parameter", "key_pair", "security_group")
# What a session's tests leave behind, found by its session tag alone: every LEFT_EVERY-th session has one of each.
LEFT = ("volume", "snapshot", "address")
LEFT_EVERY = 4
KINDS = (*SESSION_KINDS, *LEFT)
DAY = timedelta(days=1)


@dataclass
class Region:
    """What one region holds, by kind: the names a sweep must delete and must keep."""

    name: str
    expired: dict[str, set[str]] = field(default_factory=lambda: {k: set() for k in KINDS})
    keep: dict[str, set[str]] = field(default_factory=lambda: {k: set() for k in KINDS})

    def add(self, ids: dict, name: str, into: dict) -> None:
        for kind in ids:
            into[kind].add(name)


def _sequential(jobs) -> list:
    """One region's creates in turn: moto races on concurrent creates in one region (HTTP 500)."""
    return [job() for job in jobs]


def in_parallel(function, items) -> list:
    """Regions have separate moto backends, so they can be seeded side by side."""
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        return list(pool.map(function, items))


def kinds_of(i: int) -> tuple[str, ...]:
    """The i-th session's kinds: its own three, and for every LEFT_EVERY-th what its tests left."""
    return KINDS if i % LEFT_EVERY == 0 else SESSION_KINDS


def seed_expired(clients, region: Region, count: int, now: datetime) -> None:
    names = [name_expiring(BASE, -DAY, now) for _ in range(count)]
    made = _sequential([lambda i=i, n=n: seed(clients, region.name, n, kinds_of(i)) for i, n in enumerate(names)])
    for ids, name in zip(made, names, strict=True):
        region.add(ids, name, region.expired)


def seed_region(clients, name: str, expired: int, live: int, foreign: int, now: datetime) -> Region:
    """``foreign`` look-alikes, a quarter each: another base's expired sessions
    (a key pair; every LEFT_EVERY-th also a volume), malformed names under our
    base, expired sessions tagged keep (a group; every LEFT_EVERY-th also an
    Elastic IP), and expired untagged (legacy) groups. None of them may be
    touched."""
    region = Region(name)
    seed_expired(clients, region, expired, now)
    jobs = []
    for i in range(live):
        n = name_expiring(BASE, DAY, now)
        jobs.append((lambda i=i, n=n: seed(clients, name, n, kinds_of(i)), n))
    quarter = foreign // 4
    for i in range(quarter):
        other = name_expiring("other-runner", -DAY, now)
        more = ("volume",) if i % LEFT_EVERY == 0 else ()
        jobs.append((lambda n=other, more=more: seed(clients, name, n, ("key_pair", *more)), other))
        bad = f"{BASE}/not-a-session/{i:08x}"
        jobs.append((lambda n=bad: seed(clients, name, n, ("key_pair",), tagged=False), bad))
        kept = name_expiring(BASE, -DAY, now)
        more = ("address",) if i % LEFT_EVERY == 0 else ()
        jobs.append((lambda n=kept, more=more: seed(clients, name, n, ("security_group", *more), keep=True), kept))
        legacy = name_expiring(BASE, -DAY, now)
        jobs.append((lambda n=legacy: seed(clients, name, n, ("security_group",), tagged=False), legacy))
    for ids, (_, n) in zip(_sequential([job for job, _ in jobs]), jobs, strict=True):
        region.add(ids, n, region.keep)
    return region


def check(clients, region: Region, deleted: bool = True) -> list[str]:
    """What is wrong with the region after a sweep: a survivor or a casualty."""
    have = inventory(clients, region.name)
    problems = []
    for kind in KINDS:
        gone = region.keep[kind] - have[kind]
        if gone:
            problems.append(f"{region.name}: {len(gone)} {kind} that must stay were deleted")
        left = region.expired[kind] & have[kind]
        if deleted and left:
            problems.append(f"{region.name}: {len(left)} expired {kind} were left")
    return problems


def swept(region: Region) -> None:
    """The expired sessions are gone: forget them (reseed with ``seed_expired``)."""
    for kind in KINDS:
        region.expired[kind].clear()
