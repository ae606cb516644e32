"""Dead letters: a record the service cannot use goes to the DLQ topic, whatever its bytes.

- A dead letter carries the record's key, value and headers plus the contract's headers
  (reason, message, source topic, partition, offset). Texts are made safe first: a message
  never holds a lone surrogate or a control character, so building the headers cannot fail.
- A dead letter too large for the broker (the producer's `max_request_size`) keeps the
  contract's headers; the original record (key, value, headers) is stored in object storage
  under `_dlq/{topic}/{partition}/{offset}.json` and the header `reliefdocs.error.payload`
  points at it. Nothing is lost and nothing stops the partition.
- At least once: `settle()` says whether every dead letter sent so far is acknowledged by
  the broker (resending those that failed); the worker commits no offset past a dead letter
  before that. `settle()` is bounded: it never waits longer than its timeout.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

from kafka.errors import KafkaError, KafkaTimeoutError, MessageSizeTooLargeError

from service import broker
from service.batching import Record
from service.errors import Transient
from service.store import Store
from service.text import safe_text

log = logging.getLogger("reliefdocs.deadletters")
PAYLOAD_PREFIX = "_dlq"
OVERHEAD = 1024  # record framing and batch header, generously


def payload_key(r: Record) -> str:
    return f"{PAYLOAD_PREFIX}/{safe_text(r.topic, 249)}/{r.partition}/{r.offset}.json"


def record_size(key: bytes | None, value: bytes | None, headers) -> int:
    return (len(key or b"") + len(value or b"") + OVERHEAD
            + sum(len(k.encode("utf-8", "backslashreplace")) + len(v or b"") for k, v in headers or ()))


def stored_payload(r: Record) -> bytes:
    """The original record as one JSON object (bytes in base64), for `_dlq/`."""
    b64 = lambda b: None if b is None else base64.b64encode(b).decode("ascii")
    return json.dumps({"topic": r.topic, "partition": r.partition, "offset": r.offset, "timestamp_ms": r.timestamp_ms,
                       "key": b64(r.key), "value": b64(r.value),
                       "headers": [[safe_text(k, 1024), b64(v)] for k, v in r.headers or ()]}).encode("utf-8")


@dataclass
class _Pending:
    future: Any
    record: Record
    reason: str
    message: str
    offloaded: bool = False


class DeadLetters:
    def __init__(self, producer, topic: str, store: Store, max_request_size: int,
                 on_retry: Callable[[], None] = lambda: None, on_sent: Callable[[str], None] = lambda reason: None):
        self.producer = producer
        self.topic = topic
        self.store = store
        self.max_request_size = max_request_size
        self.on_retry = on_retry
        self.on_sent = on_sent
        self.pending: list[_Pending] = []

    def send(self, r: Record, reason: str, message: str) -> None:
        """Queue a dead letter. Never raises: what cannot be sent now (the broker, or the store
        for an oversized record, is down) is sent again by `settle`, which holds the commit."""
        message = safe_text(message, 2000)
        offload = record_size(r.key, r.value, r.headers) + len(message) > self.max_request_size
        p = _Pending(_Failed(), r, reason, message, offload)
        self.pending.append(p)
        try:
            self._send(p)
        except (KafkaError, Transient) as exc:
            self.on_retry()
            log.warning("dead letter not sent yet; will resend", extra={"partition": r.partition, "offset": r.offset,
                                                                        "error": type(exc).__name__})
        self.on_sent(reason)
        log.warning("record dead-lettered", extra={"reason": reason, "detail": message, "partition": r.partition,
                                                   "offset": r.offset, "payload_stored": p.offloaded})

    def _send(self, p: _Pending) -> None:
        r = p.record
        if p.offloaded:
            key = payload_key(r)
            self.store.put_bytes(key, stored_payload(r), "application/json")  # Transient propagates
            headers = broker.dead_letter_headers((), p.reason, p.message, r.topic, r.partition, r.offset)
            headers.append((broker.DLQ_PAYLOAD, self.store.uri(key).encode("utf-8")))
            small_key = r.key if r.key is not None and len(r.key) <= 1024 else None
            p.future = self.producer.send(self.topic, key=small_key, value=None, headers=headers)
            return
        headers = broker.dead_letter_headers(r.headers, p.reason, p.message, r.topic, r.partition, r.offset)
        try:
            p.future = self.producer.send(self.topic, key=r.key, value=r.value, headers=headers)
        except MessageSizeTooLargeError:
            p.offloaded = True
            self._send(p)

    def settle(self, timeout: float = 10.0) -> bool:
        """True once every dead letter sent so far is acknowledged. Failed ones are sent again
        (stored in `_dlq/` if the broker found them too large); waits at most `timeout`."""
        deadline = time.monotonic() + timeout
        still: list[_Pending] = []
        for p in self.pending:
            try:
                p.future.get(timeout=max(0.0, deadline - time.monotonic()))
            except MessageSizeTooLargeError:
                p.offloaded = True
                self._resend(p, still)
            except KafkaTimeoutError:
                if getattr(p.future, "is_done", True):
                    self._resend(p, still)  # the producer gave up on it
                else:
                    still.append(p)  # still on its way: wait for it next time
            except KafkaError as exc:
                log.warning("dead letter not acknowledged; resending", extra={
                    "partition": p.record.partition, "offset": p.record.offset, "error": type(exc).__name__})
                self._resend(p, still)
        self.pending = still
        return not still

    def _resend(self, p: _Pending, still: list[_Pending]) -> None:
        self.on_retry()
        try:
            self._send(p)
        except (KafkaError, Transient) as exc:
            log.warning("dead letter not sent again yet", extra={"partition": p.record.partition,
                                                                 "offset": p.record.offset,
                                                                 "error": type(exc).__name__})
            p.future = _Failed()
        still.append(p)


class _Failed:
    """A send that could not even be queued: fails at the next settle, which sends it again."""

    def get(self, timeout: float | None = None) -> None:
        raise KafkaError("not sent")
