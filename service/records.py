"""One record through validation and batching: it ends in an open batch, not filed, or in the
DLQ, whatever its bytes (issue 12). Nothing raised while handling a record escapes: a precise
reason where one is known (`Rejected`), `internal_error` with the exception's class otherwise
(the log has the stack); a dependency that failed (`Transient`, the ledger's store) makes the
record be read again. Sealed batches are handed to `submit`.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from service import events
from service.batching import Batcher, Outcome, Record, SealedBatch
from service.deadletters import DeadLetters
from service.errors import Rejected, Transient
from service.metrics import Metrics
from service.render import Courts

log = logging.getLogger("reliefdocs.records")


def record_of(rec: Any) -> Record:
    """A kafka-python ConsumerRecord as the service keeps it."""
    return Record(rec.topic, rec.partition, rec.offset, rec.timestamp, rec.key, rec.value, tuple(rec.headers or ()))


class RecordHandler:
    def __init__(self, schemas: events.Schemas, limits: events.Limits, courts: Courts, batcher: Batcher,
                 dead_letters: DeadLetters, metrics: Metrics, submit: Callable[[SealedBatch], None]):
        self.schemas = schemas
        self.limits = limits
        self.courts = courts
        self.batcher = batcher
        self.dead_letters = dead_letters
        self.metrics = metrics
        self.submit = submit

    def handle(self, rec: Any) -> bool:
        """False: a dependency failed; the record must be read again."""
        r = record_of(rec)
        try:
            self._handle(r)
            return True
        except Transient as exc:
            self.metrics.retried(exc.dependency)
            log.warning("dependency unavailable while handling a record; will re-read",
                        extra={"partition": r.partition, "offset": r.offset, "error": str(exc)})
            return False
        except Rejected as rej:
            if rej.reason == "internal_error":  # validation itself failed: keep the stack for the developer
                log.error("validation failed unexpectedly", extra={"partition": r.partition, "offset": r.offset},
                          exc_info=rej.__cause__)
            return self.reject(r, rej.reason, rej.message)
        except Exception as exc:  # a bug, or input nobody foresaw: the record goes, the worker stays
            log.error("record could not be handled; dead-lettering it",
                      extra={"partition": r.partition, "offset": r.offset, "error": type(exc).__name__},
                      exc_info=exc)
            return self.reject(r, "internal_error", f"{type(exc).__name__} while handling the record")

    def _handle(self, r: Record) -> None:
        started = time.perf_counter()
        try:
            event = events.parse(r.key, r.value, r.headers, self.schemas, self.limits)
            self.courts.check(event.court_code)
        finally:
            self.metrics.stage.labels("validate").observe(time.perf_counter() - started)
        validated = time.perf_counter()
        outcome, sealed = self.batcher.add(r, event)
        self.metrics.stage.labels("batch").observe(time.perf_counter() - validated)
        decision = isinstance(event, events.Decision)
        self.metrics.records.labels("decision" if decision else "batch_closed", outcome).inc()
        if decision and outcome in (Outcome.DUPLICATE, Outcome.ALREADY_FILED):
            log.info("duplicate decision skipped", extra={"decision_id": event.decision_id, "outcome": outcome,
                                                          "court": event.court_code})
        if decision and outcome == Outcome.NOT_FILED:
            self.metrics.not_filed.labels(event.relief).inc()
        for sb in sealed:
            self.submit(sb)

    def reject(self, r: Record, reason: str, message: str) -> bool:
        """Dead-letter one record (sent, or resent until acknowledged before any commit past it)."""
        self.dead_letters.send(r, reason, message)
        self.batcher.skip(r)
        self.metrics.records.labels("unusable", "dead_lettered").inc()
        return True
