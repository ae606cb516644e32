"""Is this worker in its consumer group, and is its loop turning? (Issue 19.)

A worker whose partitions were revoked must get an assignment back (possibly empty) when the
group's rebalance completes. One that never does silently stops filing its courts, and an
`--exit-when-idle` job never ends. Two things are watched, with one bound, the rejoin
timeout (RELIEFDOCS_REJOIN_TIMEOUT_SECONDS):

- `Membership`: the time since the worker subscribed or had its partitions revoked without
  an assignment since. Past the bound the loop rejoins with a new consumer.
- `LoopWatch`: the time since the worker's loop last turned. kafka-python 3.0.12 can block
  inside `KafkaConsumer.poll` without honouring its timeout (seen: waiting for the group
  coordinator after a rebalance); then nothing on the loop's thread can act, so a watchdog
  thread closes the consumer, which fails the blocked call, and the loop rejoins. If the loop
  still does not turn after twice the bound, the worker is reported dead (`/healthz` 503) and
  an `--exit-when-idle` job exits non-zero, saying what it was waiting for. Each turn also
  calls `on_turn` (the liveness heartbeat, service/metrics.py): wherever the loop turns,
  including the waits of a revocation and of shutdown, the process is alive.

Both are pure bookkeeping on a clock, so they are unit-tested without a broker.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

log = logging.getLogger("reliefdocs.membership")


class Membership:
    """Fed by the rebalance listener (any thread), asked by the loop."""

    def __init__(self, rejoin_timeout: float, clock: Callable[[], float] = time.monotonic):
        self.rejoin_timeout = rejoin_timeout
        self.clock = clock
        self.waiting_since: float | None = clock()  # subscribed, no assignment yet

    def subscribed(self) -> None:
        self.waiting_since = self.clock()

    def revoked(self) -> None:
        if self.waiting_since is None:
            self.waiting_since = self.clock()

    def assigned(self) -> None:
        self.waiting_since = None

    def out_for(self) -> float:
        """Seconds without an assignment since a subscription or a revocation (0: in the group)."""
        since = self.waiting_since
        return 0.0 if since is None else max(0.0, self.clock() - since)

    def lost(self) -> bool:
        return self.out_for() > self.rejoin_timeout


class LoopWatch:
    """Fed by the loop (`turned`, `entering`/`left` around a blocking client call), watched by
    a daemon thread that calls `unblock` once when the loop has not turned for the bound, and
    `give_up` once when it still has not after twice the bound."""

    def __init__(self, bound: float, unblock: Callable[[str], None], give_up: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic, on_turn: Callable[[], None] = lambda: None):
        self.bound = bound
        self.on_turn = on_turn
        self.unblock = unblock
        self.give_up = give_up
        self.clock = clock
        self.last_turn = clock()
        self.inside: str | None = None  # the blocking call the loop is in, if any
        self.unblocked = False
        self.gave_up = False
        self._stop = threading.Event()

    def turned(self) -> None:
        self.last_turn = self.clock()
        self.unblocked = False
        self.on_turn()

    def entering(self, call: str) -> None:
        self.inside = call

    def left(self) -> None:
        self.inside = None

    def stalled_for(self) -> float:
        return max(0.0, self.clock() - self.last_turn)

    def check(self) -> None:
        """One look (the watchdog thread calls it every second)."""
        stalled = self.stalled_for()
        where = self.inside or "the worker's loop"
        if stalled > self.bound and not self.unblocked:
            self.unblocked = True
            self.unblock(f"the loop has not turned for {stalled:.0f} s, blocked in {where}")
        if stalled > 2 * self.bound and not self.gave_up:
            self.gave_up = True
            self.give_up(f"the loop has not turned for {stalled:.0f} s, blocked in {where}, "
                         "and closing the Kafka consumer did not free it")

    def start(self) -> threading.Thread:
        def run() -> None:
            while not self._stop.wait(1.0):
                try:
                    self.check()
                except Exception:  # the watchdog must outlive whatever it calls
                    log.exception("watchdog check failed")

        t = threading.Thread(target=run, name="loop-watchdog", daemon=True)
        t.start()
        return t

    def stop(self) -> None:
        self._stop.set()
