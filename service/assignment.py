"""The worker's partitions as the group assigns them, applied on the worker's loop.

kafka-python 3 calls the rebalance listener on its network thread, possibly while the loop
is handling records, and a commit from there never completes. So the listener only records
the event (and tells `Membership` the worker is in or out of its group); the loop applies
the events in order at a safe point (`apply`), through the worker's `on_revoke` and
`on_assign`. Every newly assigned partition is read again from its committed offset, even
one this worker owned before: kafka-python keeps the old fetch position, but the batches read
since the committed offset were dropped on revocation (`reset_needed`).
"""

from __future__ import annotations

import queue
import time
from typing import Callable

from kafka import ConsumerRebalanceListener
from kafka.coordinator.assignors.abstract import AbstractPartitionAssignor

from service.membership import Membership


class Assignment:
    def __init__(self, membership: Membership, clock: Callable[[], float] = time.monotonic,
                 incremental: bool = False):
        self.membership = membership
        # cooperative-sticky (RELIEFDOCS_ASSIGNOR): a revocation moves some partitions and keeps the
        # others, and no assignment follows unless partitions are added: the worker stays in its group.
        self.incremental = incremental
        self.clock = clock
        self.events: queue.Queue = queue.Queue()
        self.owned: set = set()  # TopicPartitions, as the loop has applied them
        self.reset_needed: set = set()  # assigned, not yet sought to their committed offsets
        self.rebalancing = False
        self.joined = False
        self.completed = False  # a join completed since the loop last looked (any protocol, any assignment)
        self.last_rebalance = clock()

    def join_completed(self) -> None:
        """The assignor's hook (kafka-python's network thread): a join completed, with whatever
        assignment, even none. Under cooperative-sticky the listener hears only of partitions
        added or revoked, so a member left with no partitions would otherwise never count as in
        its group (rejoining over and over, never ready)."""
        self.membership.assigned()
        self.completed = True

    def listener(self) -> ConsumerRebalanceListener:
        assignment = self

        class Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked):
                assignment.revoked(revoked, left=not assignment.incremental)

            def on_partitions_assigned(self, assigned):
                assignment.membership.assigned()
                assignment.events.put(("assigned", set(assigned)))

            def on_partitions_lost(self, lost):
                assignment.revoked(lost, left=True)

        return Listener()

    def revoked(self, tps, left: bool = True) -> None:
        """Partitions revoked or lost (from the listener): the loop drops their open batches.
        `left`: the worker is out of its group until an assignment comes (eager rebalances)."""
        if left:
            self.rebalancing = True
            self.membership.revoked()
        self.events.put(("revoked", set(tps)))

    def apply(self, on_revoke: Callable[[set], None], on_assign: Callable[[set], None]) -> None:
        """Apply the queued events in order (on the loop's thread)."""
        while True:
            try:
                kind, tps = self.events.get_nowait()
            except queue.Empty:
                return
            self.last_rebalance = self.clock()
            if kind == "revoked":
                on_revoke(tps)
                self.owned -= tps
                self.reset_needed -= tps
            else:
                self.joined = True
                on_assign(tps)
                self.owned |= tps
                self.reset_needed |= tps
                self.rebalancing = not self.events.empty()

    def settled(self) -> bool:
        return not (self.rebalancing or self.reset_needed or not self.events.empty())

    def by_topic(self) -> dict[str, set[int]]:
        """topic -> the partitions owned"""
        out: dict[str, set[int]] = {}
        for tp in self.owned:
            out.setdefault(tp.topic, set()).add(tp.partition)
        return out

    def clear(self) -> None:
        """A new consumer: whatever the old one queued no longer applies."""
        self.completed = False
        while not self.events.empty():
            self.events.get_nowait()
        self.reset_needed.clear()
        self.rebalancing = False


def leader_aware(base: type, joined: Callable[[], None] = lambda: None) -> AbstractPartitionAssignor:
    """An instance of kafka-python's assignor `base`, noting whether this member led the
    group's last assignment (only the leader's assignor computes one). Same protocol name:
    members of any version agree on it.

    Why (issue 19): the local broker, tansu 0.6.0, keeps a leader that leaves while its group
    is re-forming (`Forming::leave` never clears the leader, unlike `Formed::leave` and
    eviction), and the group never completes a rebalance again. It happens when a follower
    leaves and the leader leaves within a few seconds, as `--exit-when-idle` workers do. So the
    worker that led the last generation waits a grace before leaving (idle exit), and stays if
    a rebalance starts meanwhile. Apache Kafka clears the leader; there this only delays one
    worker's exit by a few seconds."""

    class LeaderAware(base):
        def __init__(self) -> None:
            super().__init__()
            self.computing = False
            self.leader = False

        def assign(self, cluster, members):
            self.computing = True
            return super().assign(cluster, members)

        def on_assignment(self, assignment, generation) -> None:
            self.leader, self.computing = self.computing, False
            super().on_assignment(assignment, generation)
            joined()  # every member, every completed join (Assignment.join_completed)

    LeaderAware.__name__ = LeaderAware.__qualname__ = f"LeaderAware{base.__name__}"
    return LeaderAware()
