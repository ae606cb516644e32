"""Time closes batches through the log: a batch that lingered, or the open batches of an idle
`--exit-when-idle` worker, get a `relief.batch.closed.v1` marker published to the decisions
topic (keyed by court, carrying the volume it closes); the batch is sealed when the marker is
read back, at its place in the log. A marker for a volume no longer open is ignored, so two
workers (or a restarted one) may both publish one harmlessly.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from service import broker, events
from service.batching import Batcher, OpenBatch
from service.errors import Transient
from service.metrics import Metrics

log = logging.getLogger("reliefdocs.markers")
SOURCE = "urn:reliefdocs:worker"


class BatchMarkers:
    def __init__(self, producer: Any, topic: str, batcher: Batcher, metrics: Metrics, linger_seconds: float,
                 clock: Callable[[], float] = time.monotonic):
        self.producer = producer
        self.topic = topic
        self.batcher = batcher
        self.metrics = metrics
        self.linger_seconds = linger_seconds
        self.clock = clock
        self.last = float("-inf")

    def publish(self, ob: OpenBatch, reason: str) -> None:
        data = {"court_code": ob.court_code, "batch_id": ob.batch_id, "reason": reason, "volume": ob.volume}
        event_id = f"reliefdocs-close-{ob.court_code}-{ob.batch_id}-v{ob.volume}-{reason}"
        event = events.cloudevent(events.BATCH_CLOSED, event_id, SOURCE,
                                  time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), data)
        fields = {"court": ob.court_code, "batch_id": ob.batch_id, "volume": ob.volume, "reason": reason}
        try:
            broker.send_json(self.producer, self.topic, ob.court_code, event)
        except Transient as exc:
            self.metrics.retried("broker")
            log.warning("batch marker not published; will retry", extra={**fields, "error": str(exc)})
            return
        ob.marker_sent = reason
        self.metrics.markers.labels(reason).inc()
        log.info("batch marker published", extra=fields)

    def tick(self, idle: Callable[[], bool]) -> None:
        """At most once a second: close lingering batches, and, when `idle()` says the worker has
        nothing more to read, every open batch."""
        now = self.clock()
        if now - self.last < 1.0:
            return
        self.last = now
        for ob in self.batcher.lingering(self.linger_seconds):
            self.publish(ob, "linger")
        if self.batcher.open_batches() and idle():
            for ob in self.batcher.open_batches():
                if ob.marker_sent is None:
                    self.publish(ob, "idle")
