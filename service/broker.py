"""The Kafka edge: clients built from the settings, topic creation, and the few produce
calls the service makes (dead letters, batch markers, notifications).

Nothing above this module imports kafka-python, except the worker's consumer loop.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from service.config import Settings
from service.errors import Transient
from service.text import safe_text

log = logging.getLogger("reliefdocs.broker")

DLQ_REASON = "reliefdocs.error.reason"
DLQ_MESSAGE = "reliefdocs.error.message"
DLQ_TOPIC = "reliefdocs.source.topic"
DLQ_PARTITION = "reliefdocs.source.partition"
DLQ_OFFSET = "reliefdocs.source.offset"
DLQ_PAYLOAD = "reliefdocs.error.payload"  # where an oversized record was stored (its URI)
OUR_HEADERS = (DLQ_REASON, DLQ_MESSAGE, DLQ_TOPIC, DLQ_PARTITION, DLQ_OFFSET)  # on every dead letter
# A replayed dead letter carries one mark: the position it was first read from, "topic:partition:offset",
# and how many times it was replayed. They are not OUR_HEADERS: a replay refused again keeps them in the DLQ.
REPLAY_OF = "reliefdocs.replay.of"
REPLAY_COUNT = "reliefdocs.replay.count"
REPLAY_HEADERS = (REPLAY_OF, REPLAY_COUNT, "reliefdocs.replayed.from")  # the last: written by earlier versions


# How long a send may block the caller when the broker is unreachable (kafka-python's default is
# 60 s): the worker's loop sends batch markers and dead letters, and must beat well within
# metrics.LIVENESS_SECONDS. RELIEFDOCS_KAFKA_MAX_BLOCK_MS overrides it.
MAX_BLOCK_MS = 10000


def producer(settings: Settings, **overrides: Any) -> KafkaProducer:
    cfg = {"acks": "all", "enable_idempotence": True, "linger_ms": 5, "retries": 2147483647,
           "max_in_flight_requests_per_connection": 5, "max_block_ms": MAX_BLOCK_MS}
    cfg.update(settings.kafka_client("producer"))
    cfg.update(overrides)
    return KafkaProducer(**cfg)


def max_request_size(settings: Settings) -> int:
    """The largest request the producer sends (a dead letter over it is stored in object storage)."""
    return int(settings.kafka.get("max_request_size", KafkaProducer.DEFAULT_CONFIG["max_request_size"]))


def assignors(name: str) -> list:
    """RELIEFDOCS_ASSIGNOR as kafka-python's partition_assignment_strategy (classes; the worker
    passes one leader-aware instance of it instead: service/assignment.py)."""
    from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
    from kafka.coordinator.assignors.range import RangePartitionAssignor
    from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

    return [{"range": RangePartitionAssignor, "roundrobin": RoundRobinPartitionAssignor,
             "cooperative-sticky": CooperativeStickyAssignor}[name]]


def consumer(settings: Settings, **overrides: Any) -> KafkaConsumer:
    cfg = {"group_id": settings.group, "enable_auto_commit": False, "auto_offset_reset": "earliest",
           "max_poll_records": 500, "client_id": "reliefdocs"}
    if "assignor" in settings.values:
        cfg["partition_assignment_strategy"] = assignors(settings.assignor)
    cfg.update(settings.kafka_client("consumer"))
    cfg.update(overrides)
    return KafkaConsumer(**cfg)


def admin(settings: Settings) -> KafkaAdminClient:
    return KafkaAdminClient(**settings.kafka_client("admin"))


def consumer_group(settings: Settings) -> str:
    """The group the worker's consumer joins: RELIEFDOCS_GROUP, unless RELIEFDOCS_KAFKA_GROUP_ID
    overrides it (consumer() applies the Kafka settings last)."""
    return str(settings.kafka_client("consumer").get("group_id") or settings.group)


class GroupOffsets:
    """A group's committed offsets of some partitions of one topic, through an admin client
    made once (at the worker's start, while the broker answers: a client that fails to start
    leaves a thread behind, so none is made during an outage; the one made reconnects)."""

    def __init__(self, client: KafkaAdminClient, group: str, topic: str):
        self.client = client
        self.group = group
        self.topic = topic

    def __call__(self, parts: list[int]) -> dict[int, int]:
        """partition -> committed offset, -1 where the group committed none. Raises what the client raises."""
        found = self.client.list_group_offsets({self.group: [TopicPartition(self.topic, p) for p in parts]})
        return {tp.partition: (-1 if om is None else om.offset) for tp, om in found.get(self.group, {}).items()
                if tp.topic == self.topic}

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:
            pass


def partitions(prod: KafkaProducer, topic: str) -> int:
    """How many partitions `topic` has (Transient until the producer's metadata knows)."""
    try:
        found = prod.partitions_for(topic)
    except KafkaError as exc:
        raise Transient("kafka", f"partitions of {topic}: {type(exc).__name__}") from exc
    if not found:
        raise Transient("kafka", f"partitions of {topic}: not known yet")
    return len(found)


def group_timeouts(settings: Settings) -> tuple[float, float]:
    """(session timeout, heartbeat interval) of the workers' consumer, in seconds."""
    get = lambda key: settings.kafka.get(key, KafkaConsumer.DEFAULT_CONFIG[key]) / 1000  # noqa: E731
    return get("session_timeout_ms"), get("heartbeat_interval_ms")


def close_producer(prod: KafkaProducer, timeout: float) -> None:
    """Flush what is queued and close, within `timeout` each; a broker gone by now is not an error."""
    try:
        prod.flush(timeout=timeout)
        prod.close(timeout=timeout)
    except Exception as exc:
        log.warning("producer not closed cleanly", extra={"error": type(exc).__name__})


def ensure_topics(settings: Settings, topics: dict[str, int], create: bool = True) -> None:
    """Create missing topics {name: partitions} (a convenience for local runs, RELIEFDOCS_CREATE_TOPICS); with
    `create` off, a missing topic is Transient: waited for, as production creates them ahead."""
    try:
        client = admin(settings)
    except KafkaError as exc:
        raise Transient("kafka", f"admin client: {type(exc).__name__}") from exc
    try:
        existing = set(client.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing and not create:
            raise Transient("kafka", "missing topics (RELIEFDOCS_CREATE_TOPICS is off): " + ", ".join(missing))
        if missing:
            try:
                client.create_topics([NewTopic(t, topics[t], 1) for t in missing])
                log.info("created topics", extra={"topics": missing})
            except TopicAlreadyExistsError:
                pass
    except KafkaError as exc:
        log.warning("could not create topics", extra={"error": type(exc).__name__})
    finally:
        client.close()


def send_json(prod: KafkaProducer, topic: str, key: str, event: dict[str, Any], timeout: float = 30.0,
              content_type: bytes = b"application/cloudevents+json", partition: int | None = None) -> str:
    """Send one JSON record (by default a structured-mode CloudEvent) and wait for the broker's
    acknowledgement; returns where it was written, "partition:offset"."""
    value = json.dumps(event, ensure_ascii=False, sort_keys=True).encode("utf-8")
    try:
        md = prod.send(topic, key=key.encode("utf-8"), value=value, partition=partition,
                       headers=[("content-type", content_type)]).get(timeout=timeout)
    except KafkaError as exc:
        raise Transient("kafka", f"send to {topic}: {type(exc).__name__}") from exc
    return f"{getattr(md, 'partition', '-')}:{getattr(md, 'offset', '-')}"


def dead_letter_headers(original: tuple, reason: str, message: str, topic: str, partition: int,
                        offset: int) -> list[tuple[str, bytes]]:
    """The original headers (minus ours, if a dead letter is dead-lettered again) plus the reason.
    Texts are escaped first (service.text): building the headers never fails on what a record holds."""
    kept = [(k, v) for k, v in (original or ()) if k not in OUR_HEADERS and k != DLQ_PAYLOAD]
    return kept + [(DLQ_REASON, safe_text(reason, 64).encode()), (DLQ_MESSAGE, safe_text(message, 2000).encode("utf-8")),
                   (DLQ_TOPIC, safe_text(topic, 249).encode("utf-8")), (DLQ_PARTITION, str(partition).encode()),
                   (DLQ_OFFSET, str(offset).encode())]


def replay_headers(original: tuple, origin: str, count: int) -> list[tuple[str, bytes]]:
    """The original headers minus the DLQ's and any earlier replay mark, plus one replay mark
    (replaced, never stacked)."""
    kept = [(k, v) for k, v in (original or ()) if k not in OUR_HEADERS and k not in REPLAY_HEADERS and k != DLQ_PAYLOAD]
    return kept + [(REPLAY_OF, origin.encode()), (REPLAY_COUNT, str(count).encode())]
