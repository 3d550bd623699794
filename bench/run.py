"""ec2-sessions benchmarks: ``make bench`` or ``python bench/run.py``.

Each row a ratio or a figure against a baseline taken in the same run (the
machines are small and noisy, absolute times mean little), with its target,
``pass`` or ``FAIL``; the run exits 1 when any target is missed.

- ``sweep``: the sweep against EC2's request-bucket floor and against the
  original ec2test algorithm (``sweep_bench.py``);
- ``fleet`` (or ``launcher``): a create with an instance through EC2 Fleet
  against its critical path, and a spot-first create with spot exhausted
  against that path plus one more ``CreateFleet``, with its fleet-call count
  (``launcher_bench.py``, rows ``launcher: fleet create ...`` and
  ``launcher: spot fallback ...``);
- ``burst``: 100 signed ``queued`` deliveries through 10 launcher containers
  (processes) with the fake GitHub App, under exact caps: one session per
  job, token mints, GitHub calls per job, p95 against p50
  (``burst_bench.py``, rows ``burst: ...``);
- ``reconcile``: the reconcile pass over 1,000 job records with 10 pending
  (items read, GitHub calls per pass), and at 500 pending within a time
  budget, resumed by the next pass (``reconcile_bench.py``, rows
  ``reconcile: ...``);
- ``github``: a ``queued`` delivery with a JIT runner against its critical
  path, and a cold start's answer against GitHub's 10 s (``github_bench.py``);
- ``pool``: warm pools: a claim of a hot and of a stopped instance against
  its critical path, queued → running modelled with EC2's published steps,
  AWS calls of an upkeep with nothing to do, 50 jobs against a pool of 10
  through 5 containers (``pool_bench.py``, rows ``pool: ...``);
- ``scale``: the collector's memory and time at EC2's default quotas;
- ``cold``: the handlers' cold start against ``import boto3``.

Prints a table and the details behind it. Everything runs against moto
servers on loopback with fake credentials and a fake GitHub; no real AWS
account or GitHub is reached. The default run takes about 6 minutes on 2
cores, ``pool`` 40 s of it (``--quick``: about 3.5).
"""

from __future__ import annotations

import argparse
import sys
import time

from paths import PATHS

for _path in reversed(PATHS):  # the import path, set once (paths.py)
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import aws  # noqa: E402
from aws import PATIENT, factory, use_fake_environment  # noqa: E402
from report import table  # noqa: E402
from throttle import Model  # noqa: E402

from tools.moto_server import MotoServer  # noqa: E402

REGIONS = ("us-east-1", "us-west-2")
MEASURES = ("sweep", "fleet", "burst", "reconcile", "github", "pool", "scale", "cold")  # --only's names, in run order


def arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scale",
        type=float,
        default=8.0,
        help="speed-up of the bucket refill rates (default 8; default run about 5.5 min on 2 cores)",
    )
    parser.add_argument("--aws", action="store_true", help="AWS's real refill rates (same as --scale 1)")
    parser.add_argument("--quick", action="store_true", help="a third of the sessions, a tenth of the scale case")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="per-call round trip of the model")
    parser.add_argument(
        "--only",
        choices=(*MEASURES, "launcher"),
        action="append",
        help="run only these measures (repeatable; launcher is fleet's old name)",
    )
    args = parser.parse_args(argv)
    if args.aws:
        args.scale = 1.0
    return args


def main(argv=None) -> int:
    args = arguments(argv)
    only = {"fleet" if name == "launcher" else name for name in args.only or MEASURES}
    started = time.perf_counter()

    def log(message):
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", flush=True)

    rows, details = [], []
    # Each server in a process of its own: the collector's timed work must not share their GIL.
    servers = [MotoServer(child=True, indexed_tags=True) for _ in range(3)]
    with servers[0] as moto, servers[1] as moto_a, servers[2] as moto_b:
        use_fake_environment(moto.url)
        aws.ENDPOINTS.update(dict(zip(REGIONS, (moto_a.url, moto_b.url), strict=True)))
        model = Model(scale=args.scale, latency=args.latency_ms / 1000)
        patient = factory(config=PATIENT)
        if "sweep" in only:
            import sweep_bench

            sessions = 100 if args.quick else 300
            more, text = sweep_bench.measure(model, patient, REGIONS, sessions, sessions, 200, log)
            rows += more
            details += text
            moto_a.reset()
            moto_b.reset()
        if "fleet" in only:
            import launcher_bench

            more, text = launcher_bench.measure(args.latency_ms / 1000, 7 if args.quick else 15, log)
            rows += more
            details += text
        if "burst" in only:
            import burst_bench

            more, text = burst_bench.measure(args.latency_ms / 1000, log)
            rows += more
            details += text
        if "reconcile" in only:
            import reconcile_bench

            more, text = reconcile_bench.measure(args.latency_ms / 1000, log)
            rows += more
            details += text
        if "github" in only:
            import github_bench

            more, text = github_bench.measure(args.latency_ms / 1000, 5 if args.quick else 11, log)
            rows += more
            details += text
        if "pool" in only:
            import pool_bench

            more, text = pool_bench.measure(args.latency_ms / 1000, 5 if args.quick else 11, log)
            rows += more
            details += text
        if "scale" in only:
            import scale

            # EC2's default quotas per region; --quick a tenth of them.
            keys, groups = (500, 250) if args.quick else (5000, 2500)
            more, text = scale.measure(patient, moto.url, keys, groups, log)
            rows += more
            details += text
        if "cold" in only:
            import coldstart

            more, text = coldstart.measure(15, log)
            rows += more
            details += text
    print()
    print(f"bucket scale {args.scale:g}x, latency {args.latency_ms:g} ms")
    print(table(rows))
    print()
    print("\n".join(details))
    failed = [row.measure for row in rows if row.ok is False]
    log(
        f"done: {len(rows) - len(failed)} of {len(rows)} rows pass or report"
        + (f"; FAILED: {failed}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
