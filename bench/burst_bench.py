"""Measure 6: a burst of 100 ``queued`` GitHub jobs through 10 launcher containers at once, under exact caps.

Each container is a process of its own (as a Lambda container is: its own
interpreter, clients, cached GitHub App and installation tokens), loads the
launcher's handler with ``tools.lambda_runtime.load_handler``, puts the
latency model on its clients (20 ms per AWS call, as long per GitHub call)
and answers one signed ``POST /github`` delivery at a time, taking the next
from a shared queue as soon as it is free, as Lambda routes to a free
container. Each container is warm from a ``ping`` (handler and GitHub code
imported, webhook secret read) but has no installation token yet.

Two profiles split the jobs half and half, ``small`` (``max_live`` 45) and
``large`` (``max_live`` 20), under ``MAX_LIVE_SESSIONS`` 60, so both kinds of
cap refuse some jobs (``429``, the job left pending for the reconcile
pass): ``large`` fills its 20, and ``small`` meets the base's 60 first. Capacity is there for all. Checked:

- every job answered ``201`` has exactly one session (key pairs tagged
  ``ec2-sessions:github-job`` with its id), every refused one none and a
  pending record;
- live sessions never exceed either cap: the ``201`` answers and the
  instances per profile at the end, and instances sampled during the burst;
- installation tokens minted: at most one per container;
- GitHub calls per job: at most one, beside the mints;
- the ``201`` answers' p95 at most twice their p50.

GitHub's one-second spacing of writes is left out (``write_interval = 0``,
as in the GitHub bench): with it, each container registers at most one
runner a second. EC2's request buckets are left out too (each container's
model would have buckets of its own, where AWS has one per account).
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import statistics
import sys
import threading
import time
from collections import Counter
from contextlib import redirect_stdout

from report import Row

REGION = "sa-east-1"  # its own: no other measure's key pairs, instances or slots
CONTAINERS, JOBS = 10, 100
MAX_LIVE, SMALL_MAX, LARGE_MAX = 60, 45, 20
FIRST_JOB = 7_000_000


def container(env: dict, latency: float, ready, go, deliveries, results) -> None:
    """One launcher container: load the handler, warm it on a ping, then answer deliveries until ``None``."""
    os.environ.update(env)
    sys.stdout = io.StringIO()  # the handler's metrics (EMF) print here
    from session_naming import clients
    from session_naming import github as github_module
    from session_naming.settings import load_launcher
    from throttle import Model

    from tests.support.deliveries import github_event
    from tools.lambda_context import LambdaContext
    from tools.lambda_runtime import load_handler

    region = env["AWS_REGION"]  # the stack's: this bench's, or the pool bench's
    handler = load_handler("launcher")
    model = Model(latency=latency, throttle=False)
    for service in ("ec2", "ssm", "dynamodb", "secretsmanager"):
        model.install(clients.client(service, region))
    pool = CountingPool(latency)
    github_module.default_pool = lambda: pool
    ping = github_event({"zen": "Keep it logically awesome.", "hook_id": 1}, f"ping-{os.getpid()}", event="ping")
    warm = handler.lambda_handler(ping, LambdaContext(timeout_seconds=30))
    settings = load_launcher()
    app = github_module.configured_app(settings.github, clients.client("secretsmanager", region))
    app.write_interval = 0.0
    ready.put(warm["statusCode"])
    go.wait()
    answered = []
    while (item := deliveries.get()) is not None:
        job, event = item
        start = time.perf_counter()
        response = handler.lambda_handler(event, LambdaContext(timeout_seconds=30))
        seconds = time.perf_counter() - start
        body = json.loads(response["body"])
        answered.append(
            {"job": job, "status": response["statusCode"], "seconds": seconds, "body": body, "first": not answered}
        )
    results.put({"pid": os.getpid(), "answered": answered, "github": dict(pool.operations), "aws": model.attempts})


class CountingPool:
    """The GitHub bench's slow pool, counting this container's requests by kind."""

    def __init__(self, latency: float):
        from github_bench import SlowPool

        self._pool = SlowPool(latency)
        self.operations: Counter[str] = Counter()

    def request(self, method, url, *args, **kwargs):
        kind = "token" if url.endswith("/access_tokens") else url.rsplit("/", 1)[-1] if method == "POST" else method
        self.operations[kind] += 1
        return self._pool.request(method, url, *args, **kwargs)


def launcher_env(look, fake, region: str, profiles: dict, max_live: int, app: str) -> dict[str, str]:
    """The launcher's stack in ``region`` (its webhook secret the one deliveries are signed with, its table) and its
    environment: ``profiles``, ``MAX_LIVE_SESSIONS``, the fake's App (secret ``app``) on all of Codertocat's repos."""
    from tests.support.function_url import SECRET
    from tools.local_stack import make_launcher_stack

    return {
        **make_launcher_stack(look, SECRET, region),
        "MAX_LIVE_SESSIONS": str(max_live),
        "PROFILES": json.dumps(profiles),
        "GITHUB_APP_SECRET_ARN": fake.app_secret(look("secretsmanager", region), app),
        "GITHUB_API_URL": fake.url,
        "GITHUB_REPOSITORIES": "codertocat/*",
        "POWERTOOLS_LOG_LEVEL": "ERROR",
    }


def start_containers(env: dict, latency: float, count: int):
    """``count`` launcher containers, each warm from its ping: ``(workers, go, deliveries, results)``.

    Put ``(job, event)`` on ``deliveries`` and one ``None`` per container, set ``go``, then take one result
    per container from ``results``.
    """
    spawn = multiprocessing.get_context("spawn")
    ready, results, deliveries, go = spawn.Queue(), spawn.Queue(), spawn.Queue(), spawn.Event()
    workers = [
        spawn.Process(target=container, args=(env, latency, ready, go, deliveries, results), daemon=True)
        for _ in range(count)
    ]
    for worker in workers:
        worker.start()
    pings = {ready.get(timeout=120) for _ in workers}
    assert pings == {200}, f"a container's ping was answered {pings}"
    return workers, go, deliveries, results


def let_go(workers, go, results, sampler: Sampler) -> tuple[list[dict], float]:
    """The burst: the containers and the sampler go at once; each container's results, and the seconds it took."""
    started = time.perf_counter()
    with redirect_stdout(io.StringIO()):
        go.set()
        sampler.start()
        done = [results.get(timeout=300) for _ in workers]
        seconds = time.perf_counter() - started
        sampler.stop()
    for worker in workers:
        worker.join(timeout=30)
    return done, seconds


def measure(latency: float, log) -> tuple[list[Row], list[str]]:
    from aws import factory
    from session_naming import GITHUB_JOB_TAG, PROFILE_TAG

    from tests.support.deliveries import github_event, workflow_job
    from tests.support.github_fake import GitHubFake
    from tests.support.stack import make_launch_template

    log(f"burst: {JOBS} queued deliveries through {CONTAINERS} launcher containers (processes), caps 45, 20 under 60")
    started = time.perf_counter()
    with GitHubFake() as fake:
        fake.install("Codertocat")
        look = factory()
        template = make_launch_template(look, REGION)
        profiles = {
            "small": {"labels": ["ec2-session"], "launch_template_id": template, "max_live": SMALL_MAX},
            "large": {"labels": ["ec2-session", "large"], "launch_template_id": template, "max_live": LARGE_MAX},
        }
        env = launcher_env(look, fake, REGION, profiles, MAX_LIVE, "bench-burst-app")
        workers, go, deliveries, results = start_containers(env, latency, CONTAINERS)
        labels = {}
        for i in range(JOBS):
            job = FIRST_JOB + i
            labels[job] = ["self-hosted", "linux", "ec2-session"] + (["large"] if i % 2 else [])
            payload = workflow_job("queued", job, labels=labels[job])
            deliveries.put((job, github_event(payload, f"burst-{job}")))
        for _ in workers:
            deliveries.put(None)
        log(f"burst: {CONTAINERS} containers warm in {time.perf_counter() - started:.1f} s; go")
        fake.calls.clear(), fake.counts.clear()
        sampler = Sampler(look("ec2", REGION), PROFILE_TAG)
        done, burst_seconds = let_go(workers, go, results, sampler)
        seen = dict(fake.counts)

        answered = [a for d in done for a in d["answered"]]
        by_job = {a["job"]: a for a in answered}
        statuses = Counter(a["status"] for a in answered)
        created = [a for a in answered if a["status"] == 201]
        per_profile = Counter(a["body"]["instances"][0]["profile"] for a in created)
        ec2 = look("ec2", REGION)
        tagged = Counter()
        for key in ec2.describe_key_pairs(Filters=[{"Name": "tag-key", "Values": [GITHUB_JOB_TAG]}])["KeyPairs"]:
            tags = {t["Key"]: t["Value"] for t in key.get("Tags", ())}
            tagged[int(tags[GITHUB_JOB_TAG])] += 1
        db, table = look("dynamodb", REGION), env["IDEMPOTENCY_TABLE"]

        def state(job: int) -> str:
            item = db.get_item(TableName=table, Key={"id": {"S": f"job#github#{job}"}}, ConsistentRead=True)
            return item.get("Item", {}).get("state", {}).get("S", "none")

        wrong = [
            job
            for job in labels
            if job not in by_job
            or tagged[job] != (1 if by_job[job]["status"] == 201 else 0)
            or (by_job[job]["status"] != 201 and state(job) != "pending")
        ]
        instances = live_instances(ec2, PROFILE_TAG)
        caps_ok = (
            len(created) <= MAX_LIVE
            and per_profile["small"] <= SMALL_MAX
            and per_profile["large"] <= LARGE_MAX
            and sum(instances.values()) <= MAX_LIVE
            and instances["small"] <= SMALL_MAX
            and instances["large"] <= LARGE_MAX
            and sampler.peak_total <= MAX_LIVE
            and sampler.peak["small"] <= SMALL_MAX
            and sampler.peak["large"] <= LARGE_MAX
        )
        mints = seen.get("create-installation-token", 0)
        github_calls = sum(seen.values()) - mints
        seconds = sorted(a["seconds"] for a in created)
        p50, p95 = statistics.median(seconds), seconds[max(0, round(0.95 * len(seconds)) - 1)]
        refused = sorted(a["seconds"] for a in answered if a["status"] != 201)
    total = time.perf_counter() - started
    rows = [
        Row(
            "burst: one session per job (100 queued, 10 containers)",
            f"{len(created)} x 201, {sum(v for k, v in statuses.items() if k != 201)} refused "
            f"({dict(sorted(statuses.items()))}); {len(wrong)} jobs wrong",
            "0 wrong",
            None,
            not wrong and len(answered) == JOBS,
        ),
        Row(
            f"burst: exact caps ({MAX_LIVE} live; small {SMALL_MAX}, large {LARGE_MAX})",
            f"{len(created)} live ({dict(sorted(per_profile.items()))}); instances {dict(sorted(instances.items()))}, "
            f"peak sampled {sampler.peak_total}",
            "never over",
            None,
            caps_ok,
        ),
        Row(
            "burst: installation-token mints",
            f"{mints} for {CONTAINERS} containers",
            "<= 1 per container",
            None,
            mints <= CONTAINERS,
        ),
        Row(
            "burst: GitHub calls per job, beside the mints",
            f"{github_calls / JOBS:.2f} ({github_calls} for {JOBS} jobs: {dict(sorted(seen.items()))})",
            "<= 1",
            github_calls / JOBS,
            github_calls <= JOBS,
        ),
        Row(
            "burst: create p95 against p50",
            f"p95 {p95 * 1000:.0f} ms vs p50 {p50 * 1000:.0f} ms ({len(created)} creates)",
            "<= 2x",
            p95 / p50,
            p95 <= 2 * p50,
        ),
    ]
    per_container = [(len(d["answered"]), d["github"]) for d in done]
    aws_calls = sum((Counter(d["aws"]) for d in done), Counter())
    firsts = sorted(a["seconds"] for a in answered if a["first"])
    per_delivery = {op: round(n / JOBS, 2) for op, n in sorted(aws_calls.items())}
    details = [
        f"burst: {JOBS} deliveries answered in {burst_seconds:.1f} s ({total:.1f} s with the containers' start)",
        f"burst: 201 seconds min {seconds[0]:.2f} p50 {p50:.2f} p95 {p95:.2f} max {seconds[-1]:.2f}; "
        + (f"refused p50 {statistics.median(refused):.2f} max {refused[-1]:.2f}" if refused else "none refused"),
        f"burst: each container's first answer (its token minted) p50 {statistics.median(firsts):.2f} s, "
        f"max {firsts[-1]:.2f} s",
        f"burst: per container (deliveries, GitHub requests by kind) {per_container}",
        f"burst: AWS calls per delivery {per_delivery}",
        f"burst: live instances sampled {sampler.samples} times, peak {dict(sampler.peak)}",
    ]
    if wrong:
        details.append(f"burst: jobs wrong {[(j, tagged[j], by_job.get(j, {}).get('status')) for j in wrong[:10]]}")
    return rows, details


def live_instances(ec2, profile_tag: str, states: tuple[str, ...] = ("pending", "running")) -> Counter:
    """Instances of the region in ``states`` (pending or running), by profile."""
    found: Counter = Counter()
    filters = [
        {"Name": "instance-state-name", "Values": list(states)},
        {"Name": "tag-key", "Values": [profile_tag]},
    ]
    for page in ec2.get_paginator("describe_instances").paginate(Filters=filters):
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                tags = {t["Key"]: t["Value"] for t in instance.get("Tags", ())}
                found[tags[profile_tag]] += 1
    return found


class Sampler(threading.Thread):
    """Live instances by profile, read over and over while the burst runs; the peaks."""

    def __init__(self, ec2, profile_tag: str, states: tuple[str, ...] = ("pending", "running")):
        super().__init__(daemon=True)
        self.ec2, self.tag, self.states = ec2, profile_tag, states
        self.peak: Counter = Counter()
        self.peak_total, self.samples = 0, 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            counts = live_instances(self.ec2, self.tag, self.states)
            self.samples += 1
            self.peak_total = max(self.peak_total, sum(counts.values()))
            for profile, n in counts.items():
                self.peak[profile] = max(self.peak[profile], n)
            self._halt.wait(0.25)

    def stop(self) -> None:
        self._halt.set()
        self.join()
