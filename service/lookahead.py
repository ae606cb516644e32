"""How far composing may run ahead of filing (issue 16).

A composer reads its courts' decisions far faster than the group files them: a 500-case
batch is composed and queued in about 0.1 s and filed in seconds of a core. Unbounded, a
worker that finds a county's backlog queues the whole county on the work topic at once, and
two things follow:

- the composing is front-loaded: it takes the run's first seconds of CPU, which the first
  filings need (a 58,000-decision county: every batch queued in the first 40 s of 260);
- a work item is bound to its work partition, hence to one worker, from the moment it is
  queued: on machines of unequal speed, the slowest worker's share sets the campaign's end,
  while the others have nothing left to take.

So a worker that composes and files (RELIEFDOCS_ROLES=compose,file, the default) pauses its
decisions partitions while the work items it queued that the group has not yet filed number
`limit()` or more:

    limit = compose_ahead x workers

`workers` is estimated from this worker's share of the work partitions (12 partitions of which
6 are ours: 2 workers). The default, 24 items a worker, is more than a worker files at once
(`converters + 1`, service/pool.py), so no filer waits for work, and more than the KEDA work
trigger's 20 items a worker (deploy/k8s/scaledobject.yaml), so that a filing backlog still asks
for one more worker while composers wait at their bound. Smaller values bound more tightly and
hide the backlog from that trigger (it stays on the decisions topic, where the other trigger
counts decisions, not batches).

"Filed" is what the group committed on the work topic: a work partition is committed up to its
first item not yet settled (filed, skipped or dead-lettered), so one slow item holds back the
count of those behind it until it is settled. Where the group has committed nothing yet, the
count starts at this worker's first item there. The committed offsets are read every second,
through an admin client made at start, on a thread of its own, so a slow broker never blocks the
worker's loop. A reading older than STALE_SECONDS bounds nothing: the worker then composes as it
did before this bound existed; an outage can slow composing, never stop it for good.

With split roles (compose and file in separate groups, docs/deploy.md) the composer's group
never commits the work topic, so there is no bound there (`compose_ahead` is ignored).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Callable

log = logging.getLogger("reliefdocs.lookahead")
STALE_SECONDS = 15.0
EVERY_SECONDS = 1.0


def workers_estimate(partitions: int, owned: int) -> int:
    """How many workers file, from this worker's share of the work partitions (the group
    assigns them evenly); a worker with none: as many as there are partitions."""
    return max(1, math.ceil(partitions / owned)) if owned > 0 else max(1, partitions)


class Lookahead:
    """The work items this worker queued and the group has not yet committed, against a limit.

    `queued(partition, offset)` is told of each work record the broker acknowledged (from the
    queue's pool threads); `refresh()` reads the group's committed offsets of those partitions
    (`fetch`, on this class's own thread); `full()` is asked on the worker's loop."""

    def __init__(self, compose_ahead: int, workers: Callable[[], int],
                 fetch: Callable[[list[int]], dict[int, int]] | None = None,
                 clock: Callable[[], float] = time.monotonic, every: float = EVERY_SECONDS,
                 stale: float = STALE_SECONDS):
        self.compose_ahead = compose_ahead
        self.workers = workers
        self.fetch = fetch  # partitions -> the group's committed offsets (-1: none); given at start()
        self.clock = clock
        self.every = every
        self.stale = stale
        self.lock = threading.Lock()
        self.ends: dict[int, int] = {}  # work partition -> offset after the last item this worker queued there
        self.firsts: dict[int, int] = {}  # work partition -> the first item this worker queued there
        self.committed: dict[int, int] = {}  # work partition -> the group's committed offset, as last read
        self.read_at = float("-inf")
        self.failing = False
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None

    # -- what it is told and asked ------------------------------------------------------------
    def queued(self, partition: int, offset: int) -> None:
        with self.lock:
            self.ends[partition] = max(self.ends.get(partition, 0), offset + 1)
            self.firsts[partition] = min(self.firsts.get(partition, offset), offset)

    def waiting(self) -> int | None:
        """Work items queued by this worker (and those before them) not yet committed by the
        group; None when the committed offsets were not read within STALE_SECONDS."""
        with self.lock:
            if self.clock() - self.read_at > self.stale:
                return None
            return sum(max(0, end - self.committed.get(p, self.firsts[p])) for p, end in self.ends.items())

    def limit(self) -> int:
        return self.compose_ahead * self.workers()

    def full(self) -> bool:
        if self.compose_ahead <= 0:
            return False
        waiting = self.waiting()
        return waiting is not None and waiting >= self.limit()

    # -- reading the group's committed offsets ---------------------------------------------------
    def refresh(self) -> None:
        with self.lock:
            parts = sorted(self.ends)
        if not parts or self.fetch is None:
            with self.lock:
                self.read_at = self.clock()  # nothing queued: nothing waits
            return
        try:
            committed = self.fetch(parts)
        except Exception as exc:  # a broker outage: the reading goes stale, and bounds nothing
            if not self.failing:
                log.warning("could not read the work topic's committed offsets; composing is not bounded "
                            "until they are read again", extra={"error": type(exc).__name__})
            self.failing = True
            return
        if self.failing:
            log.info("work topic's committed offsets read again")
        self.failing = False
        with self.lock:
            self.committed.update({p: o for p, o in committed.items() if o >= 0})
            self.read_at = self.clock()

    def start(self, fetch: Callable[[list[int]], dict[int, int]]) -> None:
        self.fetch = fetch
        if self.compose_ahead <= 0 or self.thread is not None:
            return
        self.thread = threading.Thread(target=self._run, name="lookahead", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.wait(self.every):
            self.refresh()

    def stop(self) -> None:
        """Bounded (a reading under way is abandoned: the thread is a daemon, its client closed next)."""
        self.stopped.set()
        if self.thread is not None:
            self.thread.join(timeout=1)
