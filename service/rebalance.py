"""What the worker does when its group moves partitions, or when it finds itself out of the
group (issue 19), on the worker's loop.

- Revoked: the batches being queued and the work items being filed of those partitions may
  finish first (their markers and ledger entries then exist before anyone re-reads the
  partitions, and their offsets can be committed), what is done is committed, and the open
  batches are dropped, never committed: the next owner rebuilds them from the log (and files
  again the work items not settled).
- Assigned: start clean; every assigned partition is read again from its committed offset
  (GroupConsumer.reset_positions).
- Out of the group past the rejoin bound, or the client closed under a blocked loop by the
  watchdog: rejoin with a new consumer. Still blocked after twice the bound: liveness fails,
  and an `--exit-when-idle` job exits 3.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Callable

from service.assignment import Assignment
from service.batching import Batcher
from service.consumer import GroupConsumer
from service.filer import Filer
from service.ledger import StoreLedger
from service.membership import LoopWatch
from service.metrics import Metrics
from service.pool import FilingPool

log = logging.getLogger("reliefdocs.rebalance")


class Rebalancer:
    def __init__(self, assignment: Assignment, consumer: GroupConsumer, batcher: Batcher, ledger: StoreLedger,
                 pool: FilingPool, filer: Filer, metrics: Metrics, stopping: threading.Event,
                 revoke_wait: float, reap: Callable[[], None], commit: Callable[[], None],
                 forget: Callable[[Any], None], active: Callable[[], None], decisions_topic: str):
        self.assignment = assignment
        self.filer = filer
        self.decisions_topic = decisions_topic
        self.consumer = consumer
        self.batcher = batcher
        self.ledger = ledger
        self.pool = pool
        self.metrics = metrics
        self.stopping = stopping
        self.revoke_wait = revoke_wait
        self.reap = reap  # hand finished filings back (they may release offsets)
        self.commit = commit  # commit what is filed, now
        self.forget = forget  # the worker's own per-partition state (flow, committed offsets)
        self.active = active  # an assignment counts as activity
        self.watch: LoopWatch | None = None
        self.exit_when_stuck = False

    def apply(self) -> None:
        self.assignment.apply(self.on_revoke, self.on_assign)
        if self.assignment.completed:  # in the group, even with no partition to own: ready
            self.assignment.completed = False
            self.assignment.joined = self.metrics.joined = True

    def _split(self, tps: set) -> tuple[set[int], set[int]]:
        """(decisions partitions, work partitions)"""
        decisions = {tp.partition for tp in tps if tp.topic == self.decisions_topic}
        return decisions, {tp.partition for tp in tps if tp.topic != self.decisions_topic}

    def on_revoke(self, revoked: set) -> None:
        parts, work = self._split(revoked)
        log.info("partitions revoked", extra={"partitions": sorted(parts), "work_partitions": sorted(work)})
        self.filer.drop(work)  # not started: the next owner takes them; only running ones are waited for
        deadline = time.monotonic() + self.revoke_wait
        while (self.pool.busy(parts) or self.filer.busy(work)) and time.monotonic() < deadline:
            if self.watch is not None:
                self.watch.turned()
            self.stopping.wait(0.1)
            self.reap()
        try:
            self.commit()
        except Exception as exc:  # the group has moved on: the next owner re-reads a little more
            log.info("commit on revoke not accepted", extra={"error": type(exc).__name__})
        for tp in revoked:
            if tp.topic == self.decisions_topic:
                self.batcher.revoke(tp.partition)
            else:
                self.filer.revoke(tp.partition)  # its items not settled are filed again by the next owner
            self.forget(tp)
            self.metrics.forget_partition(tp.topic, tp.partition)  # no stale lag series after a rebalance
        self.ledger.forget()

    def on_assign(self, assigned: set) -> None:
        self.metrics.joined = True
        parts, work = self._split(assigned)
        log.info("partitions assigned", extra={"partitions": sorted(parts), "work_partitions": sorted(work)})
        for p in parts:
            self.batcher.revoke(p)  # start clean, whatever was read before
            self.batcher.assign(p)
        for p in work:
            self.filer.assign(p)
        self.ledger.forget()
        self.active()

    def rejoin_if_needed(self) -> None:
        if self.consumer.broken or self.assignment.membership.lost():
            self.rejoin()

    def rejoin(self) -> None:
        """Out of the group past the bound, or the client was closed under a blocked loop."""
        cause = "loop_blocked" if self.consumer.broken else "no_assignment"
        log.error("not in the consumer group; rejoining with a new consumer",
                  extra={"cause": cause, "out_of_group_seconds": round(self.assignment.membership.out_for(), 1)})
        self.metrics.rejoins.labels(cause).inc()
        self.metrics.joined = False  # not ready until assigned again
        self.apply()
        if self.assignment.owned:
            self.on_revoke(set(self.assignment.owned))
            self.assignment.owned.clear()
        self.consumer.renew()
        self.assignment.last_rebalance = time.monotonic()  # not activity: a worker that never gets back in gives up

    def unblock(self, why: str) -> None:
        """Watchdog thread: the loop is stuck, most likely inside the Kafka client (issue 19)."""
        log.error("worker loop stuck; closing the Kafka consumer to free it", extra={"why": why})
        self.consumer.unblock()

    def give_up(self, why: str) -> None:
        """Watchdog thread: still stuck. Liveness turns false (Kubernetes restarts the pod); an
        --exit-when-idle job exits 3 instead of waiting forever."""
        self.metrics.dead = why
        log.critical("worker loop cannot recover", extra={"why": why})
        if self.exit_when_stuck:
            logging.shutdown()
            os._exit(3)
