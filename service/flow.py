"""What the worker's loop lets in, and what it reports of it, each turn.

- Backpressure: the decisions partitions pause while sealed batches wait to be queued, or
  while the work items this worker queued run too far ahead of the group's filing
  (service/lookahead.py); a partition whose record met a failed dependency is read again
  after a jittered delay (retry.Backoff); the work partitions pause while the filer has a
  backlog, so that a worker takes only the work items it can start and leaves the rest to the
  group's other workers.
- Gauges: open batches, work in flight, LibreOffice processes, and every 5 s the lag and the
  unread backlog of each topic's assigned partitions (the scaling signal).
"""

from __future__ import annotations

import time
from typing import Any, Callable

from service.retry import Backoff

QUEUE_WAITING = 4  # sealed batches waiting to be queued before the decisions partitions pause
GAUGE_SECONDS = 5.0


class Flow:
    def __init__(self, consumer: Any, decisions_topic: str, queue_waiting: Callable[[], int],
                 filer_full: Callable[[], bool], clock: Callable[[], float] = time.monotonic,
                 ahead_full: Callable[[], bool] = lambda: False):
        self.consumer = consumer
        self.decisions_topic = decisions_topic
        self.queue_waiting = queue_waiting
        self.filer_full = filer_full
        self.ahead_full = ahead_full
        self.clock = clock
        self.reread = Backoff(base=1.0, cap=2.0)
        self.backoff_until: dict[Any, float] = {}  # partition -> read again after (a dependency failed)
        self.paused = False
        self.last_gauges = float("-inf")

    def read_again_later(self, tp: Any) -> None:
        self.backoff_until[tp] = self.clock() + self.reread.wait(2)

    def forget(self, tp: Any) -> None:
        self.backoff_until.pop(tp, None)
        self.paused = False

    def apply(self) -> None:
        assigned = self.consumer.assigned()
        decisions = {tp for tp in assigned if tp.topic == self.decisions_topic}
        now = self.clock()
        self.backoff_until = {tp: until for tp, until in self.backoff_until.items() if until > now}
        behind = self.queue_waiting() >= QUEUE_WAITING or self.ahead_full()
        pause = set(decisions) if behind else set(self.backoff_until) & decisions
        if self.filer_full():
            pause |= assigned - decisions
        self.consumer.flow(pause, assigned - pause, self.paused)
        self.paused = bool(pause)

    def lags(self, metrics: Any, committed: dict[str, dict[int, int]], assigned: int) -> None:
        """Every GAUGE_SECONDS: per topic and partition, the lag (from the committed offset) and the
        unread backlog (from the position)."""
        now = self.clock()
        if now - self.last_gauges < GAUGE_SECONDS:
            return
        self.last_gauges = now
        for topic, done in committed.items():
            metrics.partitions(topic, assigned, lag=self.consumer.lag(topic, done), unread=self.consumer.lag(topic, {}))
