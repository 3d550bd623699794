"""Measure 4: a dry-run sweep of one region at EC2's default quotas, in a collector process of its own.

The collector runs as Lambda would run it: a fresh interpreter importing
``app`` and calling ``lambda_handler({"dry_run": true})``; it reports its
own wall time and peak RSS, the number Lambda's memory size must cover.
Peak RSS is ``VmHWM`` from /proc: Linux carries ``ru_maxrss`` over fork and
exec, so a child of this (large) process would report the parent's peak.
No throttling model: this is about listing and classification.
The baseline for time is the bare listing (one describe of each kind) made
in this process on the same account; the RSS target is absolute.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime

from account import BASE, DAY
from aws import fake_environment
from paths import ROOT
from report import Row

from tests.support.seed import name_expiring, seed

REGION = "ap-southeast-2"
CHILD = """
import json, sys, time
import app
from tools.lambda_context import LambdaContext
context = LambdaContext(
    function_name="collector",
    memory_limit_in_mb=128,
    invoked_function_arn="arn:aws:lambda:{region}:123456789012:function:collector",
    timeout_seconds=900,
)
start = time.perf_counter()
summary = app.lambda_handler({{"dry_run": True}}, context)
seconds = time.perf_counter() - start
rss = {hwm}
print("RESULT " + json.dumps({{"seconds": seconds, "rss_mb": rss, "totals": summary["totals"]}}))
"""

# What any Python collector needs before it lists anything: boto3 and its EC2 and SSM models.
FLOOR = """
import boto3
boto3.client("ec2", region_name="{region}"), boto3.client("ssm", region_name="{region}")
print("RESULT", {hwm})
"""

HWM = "next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')) / 1024"


def measure(clients, endpoint: str, keys: int, groups: int, log) -> tuple[list[Row], list[str]]:
    now = datetime.now(UTC)
    log(f"scale: seeding {REGION} with {keys} key pairs and {groups} security groups (tagged, half expired)")
    start = time.perf_counter()
    for i in range(keys):
        kinds = ("key_pair", "security_group") if i < groups else ("key_pair",)
        seed(clients, REGION, name_expiring(BASE, -DAY if i % 2 else DAY, now), kinds)
    log(f"  seeded in {time.perf_counter() - start:.1f}s; bare listing, then the collector process")
    ec2 = clients("ec2", REGION)
    start = time.perf_counter()
    ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [f"{BASE}/*"]}])
    ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [f"{BASE}/*"]}])
    listing = time.perf_counter() - start
    env = fake_environment(endpoint)
    env.update(
        PYTHONPATH=f"{ROOT / 'functions/collector'}:{ROOT / 'layers/session_naming'}:{ROOT}",
        REGIONS=REGION,
        SESSION_BASES=BASE,
        MAX_DELETIONS="100000",
    )

    def child(script: str) -> str:
        """Run ``script`` in a fresh interpreter (its own peak RSS); answer its stdout."""
        command = [sys.executable, "-c", script.format(region=REGION, hwm=HWM)]
        return subprocess.run(command, env=env, cwd="/", capture_output=True, text=True, check=True).stdout

    result = json.loads(next(line for line in child(CHILD).splitlines() if line.startswith("RESULT "))[7:])
    floor_mb = float(child(FLOOR).split("RESULT")[-1])
    size = f"{keys} keys, {groups} groups"
    return [
        Row(
            f"scale: dry-run sweep vs bare listing ({size})",
            f"{result['seconds']:.1f}s vs {listing:.1f}s",
            "report",
            result["seconds"] / listing,
        ),
        Row(
            "scale: collector peak RSS",
            f"{result['rss_mb']:.0f} MB (boto3+ec2+ssm clients alone {floor_mb:.0f} MB)",
            "< 128 MB",
            result["rss_mb"] / floor_mb,
            result["rss_mb"] < 128,
        ),
    ], [f"scale: dry-run totals {result['totals']} ({size})"]
