"""The worker's Kafka edge (service/consumer.py) against the real broker: a partition paused
and resumed is read on to its end, whatever the other partitions did meanwhile.

kafka-python 3.0 keeps aside the rest of a paused partition's fetched records and gives them
back on resume only if no other partition's records were read meanwhile; otherwise it never
fetches that partition again. The worker pauses partitions all the time (the filer full, the
composer ahead of filing: service/flow.py), so a court's partition stopped for good, found by
issue 16's look-ahead bound. GroupConsumer.poll takes all that is fetched: nothing is kept aside."""

from __future__ import annotations

import time

from kafka import KafkaProducer, TopicPartition

from service import config
from service.assignment import Assignment
from service.consumer import GroupConsumer
from service.membership import Membership
from tests.helpers import wait_for

N = 3000


class Watch:
    """What the consumer tells the loop's watchdog; nothing watches here."""

    def entering(self, call: str) -> None:
        pass

    def left(self) -> None:
        pass


def test_a_paused_partition_is_read_to_its_end_after_others_were_read(world):
    prod = KafkaProducer(bootstrap_servers=world.broker.bootstrap, acks="all", linger_ms=20)
    for i in range(N):
        for p in (0, 1):
            prod.send(world.decisions, value=b"x" * 200, partition=p)
    prod.flush()
    prod.close()
    settings = config.load({**world.env, "RELIEFDOCS_ROLES": "compose", "RELIEFDOCS_KAFKA_MAX_POLL_RECORDS": "10"})
    consumer = GroupConsumer(settings, Assignment(Membership(30.0)), Watch())
    consumer.subscribe()
    read = {0: 0, 1: 0, 2: 0}
    p0, p1 = TopicPartition(world.decisions, 0), TopicPartition(world.decisions, 1)

    def poll() -> dict:
        for tp, recs in consumer.poll(200).items():
            read[tp.partition] += len(recs)
        return read

    try:
        wait_for(lambda: poll()[0] > 0, timeout=60, every=0.01, what="records of partition 0")
        consumer.flow({p0}, set(), False)  # partition 0 paused, with the rest of its records fetched
        wait_for(lambda: poll()[1] == N, timeout=60, every=0.01, what="partition 1 read to its end")
        before = read[0]
        consumer.flow(set(), {p0, p1}, True)
        wait_for(lambda: poll()[0] == N, timeout=60, every=0.01,
                 what=f"partition 0 read on after its resume (stuck at {before} of {N})")
        end = time.monotonic() + 2
        while time.monotonic() < end:  # and nothing read twice
            poll()
        assert read == {0: N, 1: N, 2: 0}
    finally:
        consumer.close()


def test_group_offsets_reads_what_the_group_committed(world):
    """The look-ahead bound's reading (service/broker.GroupOffsets): -1 where nothing is committed."""
    from kafka import KafkaConsumer
    from kafka.structs import OffsetAndMetadata

    from service import broker

    group = f"g-offsets-{world.name}"
    settings = config.load(world.env)
    offsets = broker.GroupOffsets(broker.admin(settings), group, world.decisions)
    try:
        assert offsets([0, 1, 2]) == {0: -1, 1: -1, 2: -1}
        c = KafkaConsumer(bootstrap_servers=world.broker.bootstrap, group_id=group, enable_auto_commit=False)
        tp = TopicPartition(world.decisions, 1)
        c.assign([tp])
        c.commit({tp: OffsetAndMetadata(7, "", -1)})
        c.close()
        assert offsets([0, 1, 2]) == {0: -1, 1: 7, 2: -1}
        assert offsets([1]) == {1: 7}
    finally:
        offsets.close()
