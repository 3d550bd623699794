"""What the reliability run counted, for the one-line summary at its end.

Every number here is incremented by the tests as they observe it: examples
by each hypothesis example actually run, faults by each injection that fired,
wrongful deletions and leaks by the invariant checks that compare the
account with the model (before they assert, so a failure is counted too).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class Tally:
    examples: int = 0
    faults: int = 0
    wrongful_deletions: int = 0
    leaked: int = 0
    checks: int = 0  # invariant checks that looked at an account
    pool_claims: int = 0  # jobs served from a warm pool (the jobs model)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def line(self) -> str:
        return (
            f"reliability: {self.examples} examples run, {self.faults} faults injected, "
            f"{self.wrongful_deletions} wrongful deletions, {self.leaked} leaked resources after the final sweep "
            f"({self.checks} account checks, {self.pool_claims} jobs served from a warm pool)"
        )


TALLY = Tally()
