"""EC2's request bucket, kept on the collector's side.

EC2 gives each account and region a burst of 50 mutating calls refilled at
5 a second. botocore's adaptive retry mode learns a send rate only once it
has been throttled, and starts from the rate it measured just before: the
benchmark (bench/) showed a sweep that had spent the burst crawl at
2 to 4 deletions a second for several seconds. Spending tokens at EC2's
documented pace from the first call never meets the throttle while the
collector has the bucket to itself; when something else shares it (the
launcher, other tools), the throttle still comes and adaptive retries take
over.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

EC2_BURST = 50


class Pacer:
    """A token bucket: ``wait()`` returns when a call may go, in the order callers arrived."""

    def __init__(
        self,
        rate: float,
        burst: int = EC2_BURST,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._rate, self._burst = rate, burst
        self._clock, self._sleep = clock, sleep
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = threading.Lock()

    def wait(self) -> None:
        # A caller that finds the bucket empty reserves the next token (the
        # count goes negative) and sleeps outside the lock until it is due.
        with self._lock:
            now = self._clock()
            self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now
            self._tokens -= 1
            delay = -self._tokens / self._rate if self._tokens < 0 else 0.0
        if delay:
            self._sleep(delay)
