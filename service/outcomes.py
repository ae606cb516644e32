"""What happens when a batch is queued, or its filing ends, on the consumer's thread.

Queued (service/workqueue.py): the batch stops holding its decisions partition's offset.
Filed (service/filer.py): counted (bundles, decisions, pages, bytes; a batch-closed
`expected_count` that differs from what the ledger holds for the batch). Failed: every record
of the batch goes to the DLQ with the batch's reason (`render_failed`, `convert_failed`,
`store_failed`, or `internal_error` for a bug, logged with its stack). Abandoned at shutdown:
nothing, it stays uncommitted.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future
from typing import Any

from service.batching import Batcher, SealedBatch, summary
from service.deadletters import DeadLetters
from service.errors import BatchFailed
from service.flush import Abandoned
from service.manifest import bundle_pages
from service.metrics import Metrics
from service.render import Courts

log = logging.getLogger("reliefdocs.outcomes")


class Outcomes:
    def __init__(self, metrics: Metrics, courts: Courts, batcher: Batcher, dead_letters: DeadLetters):
        self.metrics = metrics
        self.courts = courts
        self.batcher = batcher
        self.dead_letters = dead_letters

    def queued(self, sb: SealedBatch, fut: Future) -> None:
        """The composer's side: the batch is a work item now (or could not be made one: a bug,
        and its records are dead-lettered); either way it no longer holds its partition's offset."""
        exc = fut.exception()
        if isinstance(exc, Abandoned):
            return  # shutting down: left uncommitted
        owned = self.batcher.owns(sb)
        if exc is None:
            self.metrics.work.labels("queued").inc()
            log.info("batch queued for filing", extra={**summary(sb), "bundle_id": fut.result()})
        else:
            self.failed(sb, exc, owned)
        if owned:
            self.batcher.done(sb)

    def filed(self, sb: SealedBatch, manifest: dict[str, Any], count_mismatch: bool = False) -> None:
        court = self.courts.label(sb.court_code)
        self.metrics.bundles.labels(court).inc()
        self.metrics.filed.labels(court).inc(len(sb.decisions))
        self.metrics.pages.inc(bundle_pages(manifest) or 0)
        self.metrics.bytes.inc(sum(d["bytes"] for d in manifest["documents"]))
        self.metrics.progress.set(time.time())
        if count_mismatch:
            self.metrics.count_mismatch.inc()

    def failed(self, sb: SealedBatch, exc: BaseException, owned: bool) -> None:
        reason, message = ((exc.reason, exc.message) if isinstance(exc, BatchFailed)
                           else ("internal_error", f"{type(exc).__name__} while filing the batch"))
        log.error("batch failed; dead-lettering its records", extra={**summary(sb), "reason": reason, "detail": message},
                  exc_info=exc.__cause__ if isinstance(exc, BatchFailed) else exc)  # a template error's own stack
        self.metrics.batches_failed.labels(reason).inc()
        if owned:
            for r in sb.records:
                self.dead_letters.send(r, reason, f"{message} (batch {sb.batch_id} volume {sb.volume})")
