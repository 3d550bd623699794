"""The collector's side of EC2's request bucket: a burst, then calls spaced at the refill rate."""

from __future__ import annotations

import threading

import pytest
from pacing import Pacer


class Clock:
    """A clock that moves only when the pacer sleeps or the test says so."""

    def __init__(self):
        self.now = 0.0
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)


def test_the_burst_goes_at_once_then_each_call_waits_its_turn_at_the_refill_rate():
    clock = Clock()
    pacer = Pacer(rate=5, burst=50, clock=clock, sleep=clock.sleep)

    for _ in range(53):
        pacer.wait()

    assert clock.slept == pytest.approx([0.2, 0.4, 0.6])


def test_an_idle_bucket_refills_to_its_burst_and_no_further():
    clock = Clock()
    pacer = Pacer(rate=5, burst=10, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        pacer.wait()

    clock.now = 1.0  # five tokens back
    for _ in range(5):
        pacer.wait()
    assert clock.slept == []
    pacer.wait()
    assert clock.slept == [0.2]

    clock.now = 3600.0  # an hour idle still gives one burst only
    clock.slept.clear()
    for _ in range(11):
        pacer.wait()
    assert clock.slept == [0.2]


def test_callers_on_many_threads_get_distinct_turns():
    clock = Clock()
    pacer = Pacer(rate=10, burst=0, clock=clock, sleep=clock.sleep)
    threads = [threading.Thread(target=pacer.wait) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(clock.slept) == pytest.approx([0.1 * n for n in range(1, 21)])
