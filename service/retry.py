"""One backoff policy for every retry loop: capped exponential backoff with full jitter.

The n-th retry waits a random time between 0 and min(cap, base * 2**(n-1)) seconds ("full
jitter", as the AWS SDKs do), so that workers retrying the same outage do not retry in step.
With `attempts`, the n-th failure is the last one allowed once n reaches it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Backoff:
    base: float = 0.5
    cap: float = 30.0
    attempts: int | None = None  # None: retry until the dependency answers (or the worker stops)
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def ceiling(self, n: int) -> float:
        """The longest wait before the n-th retry (n >= 1)."""
        return min(self.cap, self.base * 2 ** min(max(n - 1, 0), 62))

    def wait(self, n: int) -> float:
        """How long to wait before the n-th retry: uniform in [0, ceiling(n)]."""
        return self.rng.uniform(0, self.ceiling(n))

    def exhausted(self, n: int) -> bool:
        """True when n failures are all that `attempts` allows."""
        return self.attempts is not None and n >= self.attempts
