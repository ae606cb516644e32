"""Issue 16: composing bounded by the group's filing (service/lookahead.py), and the worker's
flow pausing the decisions partitions at the bound (service/flow.py)."""

from __future__ import annotations

import logging
import time

from kafka.structs import TopicPartition

from service.flow import Flow
from service.lookahead import Lookahead, workers_estimate


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class Offsets:
    """The group's committed offsets, as the admin client would read them."""

    def __init__(self):
        self.committed: dict[int, int] = {}
        self.down = False
        self.asked: list[list[int]] = []

    def __call__(self, parts):
        self.asked.append(parts)
        if self.down:
            raise ConnectionError("broker down")
        return {p: self.committed.get(p, -1) for p in parts}


def lookahead(ahead=24, workers=2, clock=None):
    offsets = Offsets()
    return Lookahead(ahead, lambda: workers, offsets, clock=clock or Clock()), offsets


def test_the_bound_is_work_items_per_worker_of_the_group():
    la, _ = lookahead(ahead=24, workers=2)
    assert la.limit() == 48
    assert workers_estimate(12, 6) == 2 and workers_estimate(12, 5) == 3 and workers_estimate(12, 12) == 1
    assert workers_estimate(12, 0) == 12  # a worker with no work partition: the group is at least that large


def test_nothing_is_bounded_before_the_committed_offsets_are_read():
    la, _ = lookahead()
    for offset in range(50):
        la.queued(offset % 4, offset)
    assert la.waiting() is None and not la.full()


def test_work_items_not_yet_committed_by_the_group_count_against_the_bound():
    la, offsets = lookahead(ahead=2, workers=2)  # limit 4
    la.refresh()
    assert la.waiting() == 0 and not la.full()
    la.queued(0, 0)
    la.queued(0, 1)
    la.queued(5, 2)  # items of another composer before it on partition 5 count too: they are filed first
    offsets.committed = {5: 0}
    la.refresh()
    assert offsets.asked[-1] == [0, 5]
    assert la.waiting() == 2 + 3 and la.full()
    offsets.committed = {0: 2, 5: 1}
    la.refresh()
    assert la.waiting() == 2 and not la.full()
    offsets.committed = {0: 2, 5: 3}
    la.refresh()
    assert la.waiting() == 0


def test_where_the_group_committed_nothing_the_count_starts_at_this_workers_first_item():
    """Not at 0: a work topic whose early records are deleted would count as a whole log, and
    a group that never commits (a misconfigured group id) would stop composing for good."""
    la, offsets = lookahead(ahead=3, workers=1)
    la.queued(2, 1000)
    la.queued(2, 1001)
    la.refresh()
    assert la.waiting() == 2 and not la.full()
    la.queued(2, 1002)
    la.refresh()
    assert la.full()
    offsets.committed = {2: 1002}
    la.refresh()
    assert la.waiting() == 1


def test_a_stale_reading_bounds_nothing_and_an_outage_is_logged_once(caplog):
    clock = Clock()
    la, offsets = lookahead(ahead=1, workers=1, clock=clock)
    la.queued(0, 9)
    la.refresh()
    assert la.full()
    offsets.down = True
    with caplog.at_level(logging.INFO, logger="reliefdocs.lookahead"):
        for _ in range(4):
            clock.now += 5
            la.refresh()
        assert la.waiting() is None and not la.full()  # 20 s without a reading: composing goes on
        offsets.down = False
        offsets.committed = {0: 10}
        la.refresh()
    assert la.waiting() == 0
    said = [r.getMessage() for r in caplog.records]
    assert said.count("could not read the work topic's committed offsets; composing is not bounded "
                      "until they are read again") == 1
    assert said[-1] == "work topic's committed offsets read again"
    assert [getattr(r, "error", None) for r in caplog.records] == ["ConnectionError", None]  # the class, never its text


def test_compose_ahead_0_is_no_bound_and_starts_no_thread():
    la, _ = lookahead(ahead=0)
    la.refresh()
    la.queued(0, 1000)
    la.refresh()
    assert not la.full()
    la.start(lambda parts: {})
    assert la.thread is None
    la.stop()


def test_the_thread_reads_until_stopped():
    la, offsets = lookahead()
    la.every = 0.01
    la.queued(3, 0)
    la.start(offsets)
    try:
        end = time.monotonic() + 10  # waits for a condition, with a deadline: the thread's first reading
        while not offsets.asked and time.monotonic() < end:
            la.stopped.wait(0.01)
        assert offsets.asked and offsets.asked[0] == [3]
    finally:
        la.stop()
    assert not la.thread.is_alive()


class Consumer:
    def __init__(self, assigned):
        self._assigned = set(assigned)
        self.paused: set = set()

    def assigned(self):
        return set(self._assigned)

    def flow(self, pause, resume, was_paused):  # as GroupConsumer.flow on kafka-python's pause and resume
        self.paused |= set(pause)
        if resume and (was_paused or self.paused):
            self.paused -= set(resume)


def test_the_flow_pauses_the_decisions_partitions_while_composing_is_ahead():
    decisions = {TopicPartition("decisions", p) for p in range(3)}
    work = {TopicPartition("work", p) for p in range(2)}
    consumer = Consumer(decisions | work)
    ahead = [False]
    flow = Flow(consumer, "decisions", lambda: 0, lambda: False, ahead_full=lambda: ahead[0])
    flow.apply()
    assert consumer.paused == set()
    ahead[0] = True
    flow.apply()
    assert consumer.paused == decisions  # the work partitions go on: filing is what drains it
    ahead[0] = False
    flow.apply()
    assert consumer.paused == set()


def test_the_committed_offsets_are_read_for_the_group_the_consumer_joins():
    """RELIEFDOCS_KAFKA_GROUP_ID overrides RELIEFDOCS_GROUP in the consumer (broker.consumer):
    reading another group's offsets would count nothing as filed, ever."""
    from service import broker, config

    assert broker.consumer_group(config.load({})) == "reliefdocs"
    assert broker.consumer_group(config.load({"RELIEFDOCS_GROUP": "g1"})) == "g1"
    assert broker.consumer_group(config.load({"RELIEFDOCS_GROUP": "g1", "RELIEFDOCS_KAFKA_GROUP_ID": "g2"})) == "g2"
