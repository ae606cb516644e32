"""The work topic's side of the worker: queued batches filed by whichever worker owns their work
partition (issue 16; the format and the guarantees are in service/workqueue.py).

`FileWork` files one work item on a pool thread: the batch read back from object storage,
checked, filed by `flush.file_batch`, then cleaned up; a batch that cannot be filed is marked
failed in the ledger. `Filer` is its loop side: work records taken in offset order, at most
`size` filed at once (more wait in a backlog; the worker pauses its work partitions while the
backlog is not empty), each outcome settled on the loop's thread (metrics, dead letters), and a
partition committed up to its first item not yet settled. An item abandoned at shutdown, or of
a partition revoked before it ended, is not settled: the partition's next owner files it again.
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable

from service import events, workqueue
from service.batching import Record, SealedBatch, summary
from service.deadletters import DeadLetters
from service.errors import BatchFailed
from service.flush import Abandoned, Filing, bundle_id_of, file_batch
from service.ledger import StoreLedger
from service.metrics import Metrics
from service.outcomes import Outcomes
from service.pool import FilingPool
from service.workqueue import WorkItem

log = logging.getLogger("reliefdocs.filer")


@dataclass(frozen=True)
class Result:
    """How a work item ended: filed (manifest), skipped (done before), or failed."""

    sb: SealedBatch | None
    manifest: dict[str, Any] | None = None
    failure: BatchFailed | None = None


class FileWork:
    """One work item, on a pool thread. Raises only Abandoned (the worker is stopping)."""

    def __init__(self, filing: Filing, ledger: StoreLedger, schemas: events.Schemas, limits: events.Limits,
                 retry: Callable[[Callable[[], Any], str], Any]):
        self.filing = filing
        self.ledger = ledger
        self.schemas = schemas
        self.limits = limits
        self.retry = retry

    def __call__(self, item: WorkItem) -> Result:
        raw = self.retry(lambda: self.filing.store.get(item.batch), "store")
        if raw is None:  # cleaned up after it was filed (or after it failed): nothing left to do
            log.info("work item already done", extra={"bundle_id": item.bundle_id, "court": item.court_code})
            return Result(None)
        try:
            if hashlib.sha256(raw).hexdigest() != item.sha256:
                raise workqueue.Unreadable("the batch object is not the one queued (digest differs)")
            sb = workqueue.decode(raw, self.schemas, self.limits, bundle_id_of)
        except Exception as exc:  # Unreadable, Rejected, or a bug: our own state must never stop the worker
            return self._unreadable(item, exc)
        try:
            return self._file(item, sb)
        except Abandoned:
            raise
        except BatchFailed as exc:
            failure = exc
        except Exception as exc:  # a bug: the batch's records are dead-lettered, the worker stays
            log.error("filing failed unexpectedly", extra={**summary(sb), "error": type(exc).__name__}, exc_info=exc)
            failure = BatchFailed("internal_error", f"{type(exc).__name__} while filing the batch")
        self.retry(lambda: self.ledger.failed(sb, item.bundle_id), "ledger")
        return Result(sb, failure=failure)

    def _file(self, item: WorkItem, sb: SealedBatch) -> Result:
        if self.retry(lambda: self.ledger.is_recorded(sb.court_code, item.bundle_id), "ledger"):
            log.info("bundle filed before; work item cleaned up", extra={**summary(sb), "bundle_id": item.bundle_id})
            self._clean(item)
            return Result(sb)
        manifest = file_batch(sb, self.filing)
        self._clean(item)
        return Result(sb, manifest)

    def _clean(self, item: WorkItem) -> None:
        """After the ledger entry: the marker, then the batch object (a leftover is harmless)."""
        self.retry(lambda: self.ledger.unmark(item.court_code, item.bundle_id), "store")
        self.retry(lambda: self.filing.store.delete(item.batch), "store")

    def _unreadable(self, item: WorkItem, exc: Exception) -> Result:
        reason = str(exc) if isinstance(exc, workqueue.Unreadable) else type(exc).__name__
        log.error("work item unreadable; its work record is dead-lettered and its batch object kept",
                  extra={"bundle_id": item.bundle_id, "court": item.court_code, "key": item.batch, "error": reason})
        return Result(None, failure=BatchFailed("internal_error", f"work item {item.bundle_id} unreadable: {reason}; "
                                                                  f"its batch is kept at {item.batch}"))


class Filer:
    def __init__(self, size: int, file: Callable[[WorkItem], Result], outcomes: Outcomes,
                 dead_letters: DeadLetters, metrics: Metrics):
        self.size = size
        self.pool = FilingPool(size, file, name=lambda item: item.name)
        self.outcomes = outcomes
        self.dead_letters = dead_letters
        self.metrics = metrics
        self.backlog: deque[WorkItem] = deque()
        self.unsettled: dict[int, dict[int, bool]] = {}  # partition -> offset -> settled, in offset order
        self.position: dict[int, int] = {}  # partition -> next offset to read

    # -- partitions -----------------------------------------------------------------------
    def assign(self, partition: int) -> None:
        self.revoke(partition)
        self.unsettled[partition] = {}

    def revoke(self, partition: int) -> None:
        """Forget a partition: what was not settled is filed again by its next owner."""
        self.unsettled.pop(partition, None)
        self.position.pop(partition, None)
        self.backlog = deque(i for i in self.backlog if i.partition != partition)

    def busy(self, partitions: set[int]) -> bool:
        return any(item.partition in partitions for item in self.pool.batches())

    # -- records --------------------------------------------------------------------------
    def take(self, rec: Record) -> None:
        self.position[rec.partition] = rec.offset + 1
        item = workqueue.work_item(rec)
        if item is None:
            log.error("work record unreadable; dead-lettering it", extra={"partition": rec.partition,
                                                                          "offset": rec.offset})
            self.dead_letters.send(rec, "internal_error", "work record unreadable (not a work item of format "
                                                          f"{workqueue.FORMAT})")
            self.metrics.work.labels("unreadable").inc()
            return
        self.unsettled.setdefault(rec.partition, {})[rec.offset] = False
        self.backlog.append(item)
        self.start()

    def start(self) -> None:
        """Start what the backlog holds, in order, as far as the pool has room; an item whose bundle
        is being filed already (the same batch queued twice: service/workqueue.py) waits for that
        filing to end, then finds it done: two filings of one bundle would share a work folder."""
        running = {item.bundle_id for item in self.pool.batches()}
        waiting: deque[WorkItem] = deque()
        while self.backlog and len(self.pool) < self.size:
            item = self.backlog.popleft()
            if item.bundle_id in running:
                waiting.append(item)
                continue
            running.add(item.bundle_id)
            self.pool.submit(item)
        self.backlog.extendleft(reversed(waiting))

    def full(self) -> bool:
        return bool(self.backlog) or len(self.pool) >= self.size

    def working(self) -> bool:
        return bool(self.backlog) or bool(len(self.pool))

    def __len__(self) -> int:
        return len(self.backlog) + len(self.pool)

    # -- outcomes -------------------------------------------------------------------------
    def reap(self) -> int:
        done = self.pool.done()
        for item, fut in done:
            self._settle(item, fut)
        self.start()
        return len(done)

    def _settle(self, item: WorkItem, fut: Future) -> None:
        exc = fut.exception()
        if exc is not None:  # Abandoned (stopping): left unsettled, so uncommitted
            if not isinstance(exc, Abandoned):
                log.error("filing thread failed", extra={"bundle_id": item.bundle_id}, exc_info=exc)
            return
        owned = item.partition in self.unsettled
        result: Result = fut.result()
        if result.failure is not None and result.sb is None:
            if owned:
                self.dead_letters.send(item.record, result.failure.reason, result.failure.message)
            self.metrics.work.labels("unreadable").inc()
        elif result.failure is not None:
            self.outcomes.failed(result.sb, result.failure, owned)
            self.metrics.work.labels("failed").inc()
        elif result.manifest is not None:
            self.outcomes.filed(result.sb, result.manifest)
            self.metrics.work.labels("filed").inc()
        else:
            self.metrics.work.labels("skipped").inc()
        if owned:
            self.unsettled[item.partition][item.offset] = True

    # -- offsets --------------------------------------------------------------------------
    def committable(self) -> dict[int, int]:
        """partition -> offset to commit: the first item not yet settled, or the position."""
        out = {}
        for p, offsets in self.unsettled.items():
            while offsets and next(iter(offsets.values())):
                offsets.pop(next(iter(offsets)))
            if offsets:
                out[p] = next(iter(offsets))
            elif p in self.position:
                out[p] = self.position[p]
        return out
