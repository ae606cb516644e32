"""The commit policy: which offsets may be committed, and when.

A partition is committed up to the first record of its oldest batch not yet filed (the
batcher says which offset that is), only for partitions this worker owns, only forward, at
most once a second unless forced, and never past a dead letter the broker has not
acknowledged (the caller settles those first). Pure bookkeeping: the commit itself is the
caller's, through the consumer.
"""

from __future__ import annotations

import time
from typing import Callable


class CommitPolicy:
    def __init__(self, interval: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self.clock = clock
        self.committed: dict[int, int] = {}  # partition -> offset committed
        self.last = float("-inf")

    def due(self, force: bool = False) -> bool:
        now = self.clock()
        if not force and now - self.last < self.interval:
            return False
        self.last = now
        return True

    def offsets(self, committable: dict[int, int], owned: set[int]) -> dict[int, int]:
        """partition -> offset to commit now: owned, and past what was committed."""
        return {p: off for p, off in committable.items() if p in owned and off > self.committed.get(p, -1)}

    def done(self, offsets: dict[int, int]) -> None:
        self.committed.update(offsets)

    def forget(self, partition: int) -> None:
        self.committed.pop(partition, None)

    def get(self, partition: int) -> int | None:
        return self.committed.get(partition)
