"""ec2-sessions benchmarks: ``make bench`` or ``python bench/run.py``.

Four measures, each a ratio against a baseline taken in the same run (the
machines are small and noisy, absolute times mean little): the sweep against
EC2's request-bucket floor and against the original ec2test algorithm, the
handlers' cold start against ``import boto3``, the launcher against its
critical path, and the collector's memory at EC2's default quotas. Prints a
table and exits 1 when a target is missed. Everything runs against a moto
server on loopback with fake credentials; no real AWS account is reached.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The import path, set once: layer, both functions, the repository (tests.support), bench.
PATHS = [
    ROOT / "layers/session_naming",
    ROOT / "functions/collector",
    ROOT / "functions/launcher",
    ROOT,
    ROOT / "bench",
]
for _path in reversed(PATHS):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import aws  # noqa: E402
from aws import PATIENT, factory, use_fake_environment  # noqa: E402
from report import table  # noqa: E402
from throttle import Model  # noqa: E402

from tools.moto_server import MotoServer  # noqa: E402

REGIONS = ("us-east-1", "us-west-2")


def arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scale",
        type=float,
        default=8.0,
        help="speed-up of the bucket refill rates (default 8; default run about 4.5 min on 2 cores)",
    )
    parser.add_argument("--aws", action="store_true", help="AWS's real refill rates (same as --scale 1)")
    parser.add_argument("--quick", action="store_true", help="a third of the sessions, a tenth of the scale case")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="per-call round trip of the model")
    parser.add_argument(
        "--only",
        choices=("sweep", "cold", "launcher", "github", "scale", "reconcile", "burst"),
        action="append",
        help="run only these measures (repeatable)",
    )
    args = parser.parse_args(argv)
    if args.aws:
        args.scale = 1.0
    return args


def main(argv=None) -> int:
    args = arguments(argv)
    only = set(args.only or ("sweep", "cold", "launcher", "github", "scale"))
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
        if "launcher" in only:
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
