"""The EC2 throttling and latency model: one botocore event hook, in one place.

``Model.install(client)`` registers a single ``before-send`` handler on a
boto3 client. For every HTTP attempt it:

1. counts the attempt by operation (retries included, so throttling shows);
2. sleeps a fixed per-call latency (default 20 ms), the round trip a real
   region costs and moto on loopback does not;
3. for EC2 only, takes a token from the region's bucket: mutating calls
   (anything not Describe*/Get*/List*) 50 burst refilled at 5 a second,
   non-mutating 100 burst at 20 a second, as EC2 documents. An empty bucket
   answers ``RequestLimitExceeded`` (HTTP 503) without reaching the server;
   botocore parses and retries it exactly as a real one.

Buckets are per region and shared by every client installed on the same
model, as AWS's are per account and region. ``scale`` multiplies the refill
rates so a run takes about a minute instead of ten; burst sizes stay AWS's.
SSM gets the latency but no bucket (its limits are separate and looser).
"""

from __future__ import annotations

import threading
import time
from collections import Counter

from tests.support.responses import error_response

MUTATING = (50, 5.0)  # burst, refill per second
NON_MUTATING = (100, 20.0)
READ_PREFIXES = ("Describe", "Get", "List")


class Bucket:
    # The collector's pacing.Pacer is a token bucket too; this one stays apart on
    # purpose: the model of AWS must not share code with what it measures.
    def __init__(self, burst: int, rate: float):
        self.burst, self.rate = burst, rate
        self.tokens, self.stamp = float(burst), time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1:
                self.tokens -= 1
                return True
            return False


class Model:
    def __init__(self, scale: float = 1.0, latency: float = 0.020, throttle: bool = True):
        self.scale, self.latency, self.throttle = scale, latency, throttle
        self._buckets: dict[tuple[str, bool], Bucket] = {}
        self._lock = threading.Lock()
        self.attempts: Counter[str] = Counter()
        self.throttled: Counter[str] = Counter()

    def reset(self) -> None:
        """Full buckets and zero counters: each scenario starts from a rested account."""
        with self._lock:
            self._buckets.clear()
            self.attempts.clear()
            self.throttled.clear()

    def bucket(self, region: str, mutating: bool) -> Bucket:
        with self._lock:
            key = (region, mutating)
            if key not in self._buckets:
                burst, rate = MUTATING if mutating else NON_MUTATING
                self._buckets[key] = Bucket(burst, rate * self.scale)
            return self._buckets[key]

    def install(self, client) -> None:
        service = client.meta.service_model.service_name
        region = client.meta.region_name

        def before_send(request, event_name, **_):
            operation = event_name.rsplit(".", 1)[-1]
            with self._lock:
                self.attempts[operation] += 1
            if self.latency:
                time.sleep(self.latency)
            if self.throttle and service == "ec2":
                mutating = not operation.startswith(READ_PREFIXES)
                if not self.bucket(region, mutating).take():
                    with self._lock:
                        self.throttled[operation] += 1
                    return error_response(client, "RequestLimitExceeded", "Request limit exceeded.", 503)
            return None

        client.meta.events.register("before-send", before_send)

    def calls(self) -> Counter[str]:
        """Attempts that reached the server (not throttled), by operation."""
        with self._lock:
            return self.attempts - self.throttled
