"""Measure 1: the sweep against the EC2 bucket floor, against ec2test, and two regions against one.

The floor is what the mutating bucket allows: a region's EC2 deletions
minus the burst, at the refill rate (regions have their own buckets and run
in parallel, so the slowest region sets it). The target is on the floor
plus one minimal listing of the account measured in the same run through
the same model: moto's describes of hundreds of tagged resources take
seconds (quadratic), where AWS's take a fraction of one, and no sweep can
delete what it has not listed. The ratio to the bare floor is printed too.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from account import BASE, check, in_parallel, seed_expired, seed_region, swept
from aws import NO_RETRY, factory
from ec2test import collect_garbage
from report import Row
from session_naming import SESSION_TAG
from session_naming.settings import load_collector
from sweep import sweep
from throttle import MUTATING

from tests.support.seed import inventory

# One EC2 call deletes one resource of each of these kinds.
EC2_DELETES = {
    "key_pair": "DeleteKeyPair",
    "volume": "DeleteVolume",
    "snapshot": "DeleteSnapshot",
    "address": "ReleaseAddress",
    "security_group": "DeleteSecurityGroup",
}


def minimum_calls(regions, listing: Counter) -> Counter:
    """The fewest calls a correct sweep can make: ``listing`` (one minimal listing of
    the account, counted as the server pages it), one in-use check per 200 due
    groups, one delete per expired EC2 resource and one per ten parameters."""
    need = Counter(listing)
    for r in regions:
        need["DescribeNetworkInterfaces"] += math.ceil(len(r.expired["security_group"]) / 200)
        need["DeleteParameters"] += math.ceil(len(r.expired["parameter"]) / 10)
        for kind, operation in EC2_DELETES.items():
            need[operation] += len(r.expired[kind])
    return +need


def floor_seconds(regions, scale: float) -> float:
    burst, rate = MUTATING
    deletions = [sum(len(r.expired[kind]) for kind in EC2_DELETES) for r in regions]
    return max(max(0, d - burst) for d in deletions) / (rate * scale)


def minimal_listing(model, regions) -> tuple[float, Counter]:
    """What any correct sweep must read, regions in parallel, at the largest page sizes:
    one listing of each kind, and the parameters' tags (SSM's listing shows none, and
    rule 6 holds parameters to the tag rules: the tagging API, a hundred a page).
    Answers its time and its calls by operation."""

    def region(name):
        ec2, ssm, tagging = clients("ec2", name), clients("ssm", name), clients("resourcegroupstaggingapi", name)
        pattern = [f"{BASE}/*"]
        by_tag = [{"Name": f"tag:{SESSION_TAG}", "Values": pattern}]
        available = [*by_tag, {"Name": "status", "Values": ["available"]}]
        ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": pattern}])
        ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": pattern}])
        ec2.describe_volumes(Filters=available)
        ec2.describe_network_interfaces(Filters=available)
        ec2.describe_images(Owners=["self"], Filters=by_tag)
        ec2.describe_snapshots(OwnerIds=["self"], Filters=by_tag)
        ec2.describe_addresses(Filters=by_tag)
        ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": pattern}])
        ec2.describe_launch_templates(Filters=[{"Name": "launch-template-name", "Values": pattern}])  # a crash's
        by_name = {"Key": "Name", "Option": "BeginsWith", "Values": [f"/{BASE}/"]}
        pages = [
            ssm.get_paginator("describe_parameters").paginate(
                ParameterFilters=[by_name], PaginationConfig={"PageSize": 50}
            ),
            tagging.get_paginator("get_resources").paginate(
                ResourceTypeFilters=["ssm:parameter"], PaginationConfig={"PageSize": 100}
            ),
        ]
        for paginator in pages:
            for _ in paginator:
                pass

    model.reset()
    clients = factory(model)
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(regions)) as pool:
        list(pool.map(region, [r.name for r in regions]))
    return time.perf_counter() - start, model.calls()


def run_sweep(model, regions) -> dict:
    model.reset()
    clients = factory(model)
    # The collector paces itself to EC2's bucket; the model's refill is ``scale`` times AWS's.
    _, rate = MUTATING
    settings = load_collector(
        {
            "REGIONS": ",".join(r.name for r in regions),
            "SESSION_BASES": BASE,
            "MAX_DELETIONS": "100000",
            "EC2_DELETE_RATE": str(max(1, round(rate * model.scale))),
        }
    )
    start = time.perf_counter()
    summary = sweep(clients, settings, now=datetime.now(UTC), time_left=lambda: 900.0, dry_run=False)
    wall = time.perf_counter() - start
    return {
        "wall": wall,
        "summary": summary,
        "calls": model.calls(),
        "throttled": +model.throttled,
        "attempts": sum(model.attempts.values()),
    }


def measure(model, patient, names, expired, live, foreign, log) -> tuple[list[Row], list[str]]:
    now = datetime.now(UTC)
    log(f"seeding {len(names)} regions: {expired} expired + {live} live sessions, {foreign} foreign resources each")
    start = time.perf_counter()
    regions = in_parallel(lambda n: seed_region(patient, n, expired, live, foreign, now), names)
    log(f"  seeded in {time.perf_counter() - start:.1f}s")
    rows, details = [], []

    def reseed(some):
        for r in some:
            swept(r)
        in_parallel(lambda r: seed_expired(patient, r, expired, now), some)

    floor = floor_seconds(regions, model.scale)
    listing, listing_calls = minimal_listing(model, regions)
    need = minimum_calls(regions, listing_calls)
    log(f"sweep of {len(regions)} regions (bucket floor {floor:.1f}s + listing {listing:.1f}s)")
    both = run_sweep(model, regions)
    problems = [f"2 regions: {p}" for r in regions for p in check(patient, r)]
    reseed(regions[:1])
    log(f"sweep of one region ({regions[0].name})")
    one = run_sweep(model, regions[:1])
    problems += [f"1 region: {p}" for p in check(patient, regions[0])]
    failed = both["summary"]["totals"]["failed"] + one["summary"]["totals"]["failed"]

    details.append("sweep, two regions: calls by operation (reached the server / minimum / throttled attempts)")
    ops = sorted(set(need) | set(both["calls"]) | set(both["throttled"]))
    for op in ops:
        details.append(f"  {op:28} {both['calls'][op]:6} {need[op]:6} {both['throttled'][op]:6}")
    extra = [f"{op} {both['calls'][op] - need[op]:+d}" for op in ops if both["calls"][op] != need[op]]
    if extra:
        details.append("  differs from the minimum: " + ", ".join(extra))
    total_need, total_made = sum(need.values()), sum(both["calls"].values())
    rows.append(
        Row(
            "sweep: API calls (2 regions)",
            f"{total_made} (min {total_need})",
            "= minimum",
            total_made / total_need,
            total_made == total_need,
        )
    )
    rows.append(
        Row(
            "sweep: deletes all expired, nothing else",
            f"{failed} failed, {len(problems)} problems",
            "0, 0",
            None,
            not problems and not failed,
        )
    )
    details += [f"  correctness: {p}" for p in problems]
    baseline = floor + listing
    rows.append(
        Row(
            "sweep: wall vs bucket floor + listing",
            f"{both['wall']:.1f}s vs {baseline:.1f}s",
            "<= 1.15x",
            both["wall"] / baseline,
            both["wall"] <= 1.15 * baseline,
        )
    )
    details.append(
        f"  wall {both['wall']:.1f}s = {both['wall'] / floor:.2f}x the bare bucket floor {floor:.1f}s; "
        f"one minimal listing of both regions took {listing:.1f}s"
    )
    throttled = sum(both["throttled"].values())
    share = throttled / both["attempts"]
    rows.append(
        Row(
            "sweep: throttled share of attempts",
            f"{throttled}/{both['attempts']} = {share:.1%}",
            "< 2%",
            None,
            share < 0.02,
        )
    )
    rows.append(
        Row(
            "sweep: 2 regions vs 1 region",
            f"{both['wall']:.1f}s vs {one['wall']:.1f}s",
            "<= 1.10x",
            both["wall"] / one["wall"],
            both["wall"] <= 1.10 * one["wall"],
        )
    )
    reseed(regions[:1])
    regions = regions[:1]

    log(f"ec2test algorithm on the same account, {regions[0].name} (sequential, no retry)")
    model.reset()
    clients = factory(model, NO_RETRY)
    start = time.perf_counter()
    results = [collect_garbage(clients, r.name, (BASE,), now) for r in regions]
    wall = time.perf_counter() - start
    failures = sum((res["failures"] for res in results), Counter())
    due = sum(len(r.expired[k]) for r in regions for k in r.expired)
    left = sum(len(r.expired[k] & have[k]) for r in regions for have in [inventory(patient, r.name)] for k in r.expired)
    casualties = sum(len(r.keep[k] - have[k]) for r in regions for have in [inventory(patient, r.name)] for k in r.keep)
    rows.append(
        Row("ec2test: wall vs sweep (1 region)", f"{wall:.1f}s vs {one['wall']:.1f}s", "report", wall / one["wall"])
    )
    rows.append(Row("ec2test: expired left behind", f"{left}/{due} ({sum(failures.values())} failed calls)", "report"))
    rows.append(Row("ec2test: deleted what must stay", f"{casualties} (keep-tagged, untagged legacy)", "report"))
    details.append(
        f"ec2test: failures by code {dict(failures)}; deleted {dict(sum((r['deleted'] for r in results), Counter()))}"
    )
    return rows, details
