"""The Kafka edge of the worker's loop: the group consumer behind a small interface.

Everything the loop asks of Kafka goes through `GroupConsumer`: poll, commit, seek back,
pause and resume, "am I read to the end", lag, and rejoining the group with a new client
(issue 19). Offsets are plain `{topic: {partition: offset}}` dicts (the decisions topic and the work
topic, issue 16); the kafka-python types stay in here. A fake with the same methods drives the worker in unit
tests.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition

from service import broker
from service.assignment import Assignment, leader_aware
from service.config import Settings
from service.membership import LoopWatch

log = logging.getLogger("reliefdocs.consumer")


def close_quietly(client: Any) -> None:
    try:
        client.close(autocommit=False, timeout_ms=5000)
    except Exception as exc:
        log.warning("consumer close failed", extra={"error": type(exc).__name__})


TAKE_ALL = 2**31 - 1  # records a poll may return: all that is fetched (GroupConsumer.poll)


class GroupConsumer:
    def __init__(self, settings: Settings, assignment: Assignment, watch: LoopWatch):
        self.settings = settings
        # the decisions topic to compose batches, the work topic to file them (RELIEFDOCS_ROLES)
        self.topics = [t for role, t in (("compose", settings.decisions_topic), ("file", settings.work_topic))
                       if role in settings.roles]
        self.assignment = assignment
        self.watch = watch
        self.client = None
        self.broken = False  # closed under the loop by the watchdog: rejoin
        # did this member lead the last assignment? (issue 19)
        self.assignor = leader_aware(broker.assignors(settings.assignor)[0], joined=assignment.join_completed)

    # -- membership ---------------------------------------------------------------------------
    def subscribe(self) -> None:
        self.assignor.leader = False
        self.client = broker.consumer(self.settings, partition_assignment_strategy=[self.assignor])
        self.client.subscribe(self.topics, listener=self.assignment.listener())
        self.assignment.membership.subscribed()

    def renew(self) -> None:
        """Leave the old client behind (closed on a daemon thread, in case closing hangs too)
        and join the group again with a new one."""
        old, self.broken = self.client, False
        self.assignment.clear()
        closing = threading.Thread(target=close_quietly, args=(old,), name="consumer-close", daemon=True)
        closing.start()
        closing.join(10)
        self.subscribe()

    def unblock(self) -> None:
        """From the watchdog thread: fail whatever call the loop is blocked in."""
        self.broken = True
        threading.Thread(target=close_quietly, args=(self.client,), name="consumer-unblock", daemon=True).start()

    def close(self) -> None:
        close_quietly(self.client)

    def leads(self) -> bool:
        """Did this member compute the group's last assignment (is it the leader)?"""
        return self.assignor.leader

    # -- reading ------------------------------------------------------------------------------
    def poll(self, timeout_ms: int) -> dict:
        """Every record fetched so far (at most the fetch sizes: max_partition_fetch_bytes a
        partition), never part of a partition's fetched records. kafka-python 3.0 keeps the rest
        of a partition's records aside when that partition is paused, and gives them back on
        resume only if no other partition's records were read meanwhile; otherwise the partition
        is never fetched again (seen with 3.0.12: a court's partition resumed at offset 5,501 of
        55,101 and never read, docs/testing.md). Taking all that is fetched leaves nothing aside."""
        self.watch.entering("KafkaConsumer.poll")
        try:
            return self.client.poll(timeout_ms=timeout_ms, max_records=TAKE_ALL)
        finally:
            self.watch.left()

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.client.seek(tp, offset)

    def reset_positions(self, polled: dict) -> dict:
        """Seek newly assigned partitions to their committed offsets, dropping what this poll
        returned for them. kafka-python keeps the fetch position of a partition that comes back
        to the same member, but the batches read since the committed offset were dropped on
        revocation: reading on from the old position would lose them."""
        needed = self.assignment.reset_needed
        if not needed:
            return polled
        dropped, done = set(needed), set()
        for tp in list(needed):
            if tp not in self.client.assignment():
                done.add(tp)
                continue
            try:
                committed = self.client.committed(tp, timeout_ms=10000)
            except KafkaError as exc:
                log.warning("committed offset not available yet; will retry",
                            extra={"partition": tp.partition, "error": type(exc).__name__})
                continue
            if committed is None:
                self.client.seek_to_beginning(tp)
            else:
                self.client.seek(tp, committed)
            done.add(tp)
        needed -= done
        return {tp: recs for tp, recs in polled.items() if tp not in dropped}

    def caught_up(self) -> bool:
        """Every assigned partition read to its high watermark (as fetches report it: right on
        both Apache Kafka and the local broker, whose end_offsets differ)."""
        for tp in self.client.assignment():
            hw = self.client.highwater(tp)
            if hw is None:
                return False
            try:
                if self.client.position(tp, timeout_ms=2000) < hw:
                    return False
            except KafkaError:
                return False
        return True

    def lag(self, topic: str, committed: dict[int, int]) -> dict[int, int]:
        """partition -> records after the committed offset (or the position), assigned ones of `topic`."""
        out = {}
        for tp in self.client.assignment():
            if tp.topic != topic:
                continue
            hw = self.client.highwater(tp)
            if hw is None:
                continue
            done = committed.get(tp.partition)
            if done is None:
                try:
                    done = self.client.position(tp, timeout_ms=1000)
                except KafkaError:
                    continue
            out[tp.partition] = max(0, hw - done)
        return out

    # -- offsets and flow ---------------------------------------------------------------------
    def commit(self, offsets: dict[str, dict[int, int]]) -> None:
        """topic -> partition -> offset, in one request. Raises KafkaError if the group did not accept it."""
        self.client.commit({TopicPartition(topic, p): OffsetAndMetadata(o, "", -1)
                            for topic, parts in offsets.items() for p, o in parts.items()}, timeout_ms=10000)

    def assigned(self) -> set:
        return set(self.client.assignment())

    def flow(self, pause: set, resume: set, was_paused: bool) -> None:
        if pause:
            self.client.pause(*pause)
        if resume and (was_paused or self.client.paused()):
            self.client.resume(*resume)
