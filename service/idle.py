"""When an `--exit-when-idle` worker may exit, and what it is still waiting for.

It exits 0 once its partitions are read to the end, every batch it opened is filed, every
dead letter acknowledged, nothing new came for `idle` seconds, and the group's assignment
has been stable for longer than a session timeout: a member that died without leaving the
group keeps its partitions until its session times out, and a worker that left before that
could leave them to nobody (the chaos test found this). Pure: the worker fills in a `State`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger("reliefdocs.idle")


@dataclass(frozen=True)
class State:
    now: float
    started: float
    joined: bool
    rebalancing: bool
    filing: bool  # batches being filed
    open_batches: bool
    dead_letters_pending: bool
    caught_up: Callable[[], bool]  # asks the broker: only called when nothing else blocks
    last_activity: float
    last_rebalance: float


def blockers(s: State, idle: float, session_timeout: float) -> list[str]:
    """What keeps the worker from exiting now; empty: it may exit."""
    if not s.joined and s.now - s.started < idle + 30:
        return ["a first assignment from the consumer group"]
    if s.rebalancing:
        return ["a rebalance to complete"]
    waiting = [what for what, pending in (("batches being filed", s.filing),
                                          ("open batches to be sealed", s.open_batches),
                                          ("dead letters to be acknowledged", s.dead_letters_pending)) if pending]
    if not waiting and not s.caught_up():
        waiting.append("its partitions to be read to the end")
    if s.now - s.last_activity < idle:
        waiting.append(f"{idle:g} s without new records")
    if s.now - s.last_rebalance < session_timeout + 3.0:
        waiting.append("the group's assignment to be stable for a session timeout")
    return waiting


class IdleExit:
    """The rule above, plus two things about leaving: the group's leader leaves only after a
    grace (see assignment.leader_aware for the broker bug that makes it wait, issue 19), and an
    idle worker never waits without limit: past `timeout` without progress it gives up (exit 3),
    saying what it was waiting for."""

    def __init__(self, idle: float | None, timeout: float, session_timeout: float, leader_grace: float,
                 state: Callable[[], State], leads: Callable[[], bool], clock: Callable[[], float] = time.monotonic):
        self.idle = idle
        self.timeout = timeout
        self.session_timeout = session_timeout
        self.leader_grace = leader_grace
        self.state = state
        self.leads = leads
        self.clock = clock
        self.exit_after: float | None = None

    def blockers(self) -> list[str]:
        return blockers(self.state(), self.idle, self.session_timeout)

    def done(self) -> bool:
        if self.idle is None:
            return False
        if self.blockers():
            self.exit_after = None
            return False
        if not self.leads():
            return True
        now = self.clock()
        if self.exit_after is None:
            self.exit_after = now + self.leader_grace
            log.info("idle; this worker leads the group, so it leaves after a grace",
                     extra={"grace_seconds": self.leader_grace})
        return now >= self.exit_after

    def given_up(self, last_activity: float) -> bool:
        if self.idle is None:
            return False
        stalled = self.clock() - last_activity
        if stalled < self.timeout:
            return False
        log.error("gave up waiting to exit idle", extra={"waited_seconds": round(stalled),
                                                         "waiting_for": self.blockers() or ["nothing"]})
        return True
