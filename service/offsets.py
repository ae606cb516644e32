"""The commit policy: which offsets may be committed, and when.

A partition is committed up to the first record of its oldest batch not yet filed (the
batcher says which offset that is), only for partitions this worker owns, only forward, at
most once a second unless forced, and never past a dead letter the broker has not
acknowledged (the caller settles those first). Pure bookkeeping: the commit itself is the
caller's, through the consumer.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

log = logging.getLogger("reliefdocs.offsets")


class CommitPolicy:
    """One topic's committed offsets: what may be committed now (owned, only forward), and what was."""

    def __init__(self) -> None:
        self.committed: dict[int, int] = {}  # partition -> offset committed

    def offsets(self, committable: dict[int, int], owned: set[int]) -> dict[int, int]:
        """partition -> offset to commit now: owned, and past what was committed."""
        return {p: off for p, off in committable.items() if p in owned and off > self.committed.get(p, -1)}

    def done(self, offsets: dict[int, int]) -> None:
        self.committed.update(offsets)

    def forget(self, partition: int) -> None:
        self.committed.pop(partition, None)

    def get(self, partition: int) -> int | None:
        return self.committed.get(partition)


class Committer:
    """One commit request for both topics (issue 16): the decisions topic up to the oldest batch
    not yet queued (from the batcher), the work topic up to the first work item not yet settled
    (from the filer); each through its own CommitPolicy; at most once per `interval` unless
    forced; never past a dead letter the broker has not acknowledged (`settle` first)."""

    def __init__(self, topics: list[str], committable: Callable[[], dict[str, dict[int, int]]],
                 owned: Callable[[], dict[str, set[int]]], settle: Callable[[float], bool],
                 send: Callable[[dict[str, dict[int, int]]], None], metrics: Any,
                 interval: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.policies = {topic: CommitPolicy() for topic in topics}
        self.committable = committable
        self.owned = owned
        self.settle = settle
        self.send = send
        self.metrics = metrics
        self.interval = interval
        self.clock = clock
        self.last = float("-inf")

    def due(self, force: bool = False) -> bool:
        now = self.clock()
        if not force and now - self.last < self.interval:
            return False
        self.last = now
        return True

    def forget(self, topic: str, partition: int) -> None:
        """A revoked partition: committed again in full if it comes back."""
        if topic in self.policies:
            self.policies[topic].forget(partition)

    def __call__(self, force: bool = False, settle_seconds: float = 10.0) -> None:
        if not self.due(force) or not self.settle(settle_seconds):
            return
        owned, wanted = self.owned(), self.committable()
        offsets = {topic: self.policies[topic].offsets(parts, owned.get(topic, set()))
                   for topic, parts in wanted.items()}
        offsets = {topic: parts for topic, parts in offsets.items() if parts}
        if not offsets:
            return
        try:
            self.send(offsets)
        except Exception as exc:  # KafkaError: tried again at a next turn
            self.metrics.retried("broker")
            log.warning("offset commit failed; will retry", extra={"error": type(exc).__name__})
            return
        self.metrics.answered("broker")
        log.debug("committed", extra={"offsets": offsets})
        for topic, parts in offsets.items():
            self.policies[topic].done(parts)
