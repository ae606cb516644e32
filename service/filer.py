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
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable

from service import events, workqueue
from service.batching import Record, SealedBatch, summary
from service.deadletters import DeadLetters
from service.errors import BatchFailed, Transient
from service.flush import Abandoned, Filing, bundle_id_of, file_batch
from service.ledger import StoreLedger, marker_key
from service.metrics import Metrics
from service.outcomes import Outcomes
from service.pool import FilingPool
from service.retry import Backoff
from service.workqueue import WorkItem

log = logging.getLogger("reliefdocs.filer")


@dataclass(frozen=True)
class Result:
    """How a work item ended: filed (manifest), skipped (done before), or failed. A failure
    dead-letters `records`: the batch's, or the work record itself when the batch is lost."""

    sb: SealedBatch | None
    manifest: dict[str, Any] | None = None
    failure: BatchFailed | None = None
    records: tuple[Record, ...] = ()
    count_mismatch: bool = False  # a batch-closed expected_count that differs from what is filed


class FileWork:
    """One work item, on a pool thread. Raises only Abandoned (the worker is stopping): whatever
    else happens ends as a Result, so that its work record is always settled."""

    def __init__(self, filing: Filing, ledger: StoreLedger, schemas: events.Schemas, limits: events.Limits,
                 retry: Callable[[Callable[[], Any], str], Any]):
        self.filing = filing
        self.ledger = ledger
        self.schemas = schemas
        self.limits = limits
        self.retry = retry

    def __call__(self, item: WorkItem) -> Result:
        started = time.perf_counter()
        try:
            return self._run(item)
        except Abandoned:
            raise
        except Exception as exc:  # the store refused our own state for good, or a bug: the item ends
            log.error("work item failed", extra={"bundle_id": item.bundle_id, "error": type(exc).__name__},
                      exc_info=exc)
            failure = BatchFailed(exc.reason, f"work item {item.bundle_id} ({item.batch}): {exc.message}") if isinstance(
                exc, BatchFailed) else BatchFailed("internal_error", f"{type(exc).__name__} while taking work item "
                                                                     f"{item.bundle_id} ({item.batch})")
            return Result(None, failure=failure, records=(item.record,))
        finally:
            self.filing.stage_timer("flush", time.perf_counter() - started)

    def _run(self, item: WorkItem) -> Result:
        raw = self.retry(lambda: self.filing.store.get(item.batch), "store")
        if raw is None:
            return self._missing(item)
        if hashlib.sha256(raw).hexdigest() != item.sha256:  # queued again since (its bundle id is checked below)
            log.info("batch object rewritten since this work item was queued", extra={"bundle_id": item.bundle_id})
        try:
            loaded = workqueue.load(raw)
        except workqueue.Unreadable as exc:
            return self._lost(item, str(exc), (item.record,))
        if (loaded.doc["court_code"], loaded.doc["bundle_id"]) != (item.court_code, item.bundle_id):
            return self._lost(item, "the batch object is another bundle's than its work record names", (item.record,))
        try:
            sb = workqueue.decode(loaded, self.schemas, self.limits, bundle_id_of)
        except workqueue.Unreadable as exc:
            return self._lost(item, str(exc), loaded.records)
        try:
            return self._file(item, sb)
        except (Abandoned, KeyboardInterrupt):
            raise
        except BatchFailed as exc:
            failure = exc
        except Exception as exc:  # a bug: the batch's records are dead-lettered, the worker stays
            log.error("filing failed unexpectedly", extra={**summary(sb), "error": type(exc).__name__}, exc_info=exc)
            failure = BatchFailed("internal_error", f"{type(exc).__name__} while filing the batch")
        return self._failed(item, sb, failure)

    def _failed(self, item: WorkItem, sb: SealedBatch, failure: BatchFailed) -> Result:
        """The batch is marked failed (its decisions free again) and its records go to the DLQ. If the
        store refuses the mark, they still go, and the message says what holds their decisions."""
        try:
            self.retry(lambda: self.ledger.failed(sb, item.bundle_id, item.queued_at), "ledger")
        except BatchFailed as exc:
            marker = marker_key(sb.court_code, item.bundle_id)
            log.error("failed batch not marked failed; its decisions stay taken",
                      extra={**summary(sb), "bundle_id": item.bundle_id, "key": marker, "error": exc.message})
            failure = BatchFailed(failure.reason, f"{failure.message}; its decisions stay taken until {marker} "
                                                  f"is removed ({exc.message})")
        return Result(sb, failure=failure, records=sb.records)

    def _file(self, item: WorkItem, sb: SealedBatch) -> Result:
        if self.retry(lambda: self.ledger.is_recorded(sb.court_code, item.bundle_id), "ledger"):
            log.info("bundle filed before; work item cleaned up", extra={**summary(sb), "bundle_id": item.bundle_id})
            self._clean(item)
            return Result(sb)
        manifest = self._file_batch(sb)
        self._clean(item)  # filed: nothing after this line may fail the item
        return Result(sb, manifest, count_mismatch=self._mismatch(sb))

    def _file_batch(self, sb: SealedBatch) -> dict[str, Any]:
        """file_batch, again after an outage it did not retry itself (the work folder's disk, say):
        filing is idempotent, and an outage is retried, never dead-lettered."""
        n = 0
        while True:
            try:
                return file_batch(sb, self.filing)
            except Transient as exc:
                n += 1
                self.filing.on_retry(exc.dependency)
                wait = Backoff(base=0.5, cap=self.filing.retry_max_seconds).wait(n)
                log.warning("filing interrupted by an outage; filing the batch again", extra={
                    **summary(sb), "dependency": exc.dependency, "error": str(exc), "wait_seconds": round(wait, 2)})
                if self.filing.stopping.wait(wait):
                    raise Abandoned("filing") from None

    def _clean(self, item: WorkItem) -> None:
        """After the ledger entry: the marker, then the batch object. A leftover is harmless (the
        entry wins over the marker), so a store that will not delete is logged, never fatal."""
        try:
            self.retry(lambda: self.ledger.unmark(item.court_code, item.bundle_id), "store")
            self.retry(lambda: self.filing.store.delete(item.batch), "store")
        except (Transient, BatchFailed) as exc:
            log.warning("work item not cleaned up; _work/ keeps it", extra={"bundle_id": item.bundle_id,
                                                                            "error": str(exc)})

    def _mismatch(self, sb: SealedBatch) -> bool:
        if sb.expected_count is None:
            return False
        try:
            return sb.expected_count != self.ledger.filed_count(sb.court_code, sb.batch_id)
        except Transient as exc:  # only a metric depends on it
            log.warning("expected count not checked", extra={"court": sb.court_code, "error": str(exc)})
            return False

    def _missing(self, item: WorkItem) -> Result:
        """No batch object: cleaned up after it was filed, or lost (removed by hand, or by a
        lifecycle rule): then its decisions are freed, so that sending them again files them."""
        if self.retry(lambda: self.ledger.is_recorded(item.court_code, item.bundle_id), "ledger"):
            log.info("work item already done", extra={"bundle_id": item.bundle_id, "court": item.court_code})
            return Result(None)
        if self.retry(lambda: self.ledger.marker(item.court_code, item.bundle_id), "ledger") == "failed":
            return Result(None)  # failed before: its records went to the DLQ then
        return self._lost(item, f"its batch object {item.batch} is missing", (item.record,))

    def _lost(self, item: WorkItem, why: str, records: tuple[Record, ...]) -> Result:
        """The batch cannot be read back: its records (or, if even they are lost, the work record)
        go to the DLQ and its decisions are freed (a failed marker)."""
        log.error("work item unreadable; dead-lettering what it holds", extra={
            "bundle_id": item.bundle_id, "court": item.court_code, "key": item.batch, "error": why,
            "records": len(records)})
        self.retry(lambda: self.ledger.fail_bundle(item.court_code, item.bundle_id, item.queued_at), "ledger")
        return Result(None, failure=BatchFailed("internal_error", f"work item {item.bundle_id} unreadable: {why}"),
                      records=records)


class Filer:
    def __init__(self, size: int, file: Callable[[WorkItem], Result], outcomes: Outcomes,
                 dead_letters: DeadLetters, metrics: Metrics):
        self.size = size
        self.pool = FilingPool(size, file, name=lambda item: item.name)
        self.outcomes = outcomes
        self.dead_letters = dead_letters
        self.metrics = metrics
        self.backlog: deque[WorkItem] = deque()
        # partition -> offset -> the item taken there (None once settled), in offset order
        self.unsettled: dict[int, dict[int, WorkItem | None]] = {}
        self.position: dict[int, int] = {}  # partition -> next offset to read
        self.stopped = False  # shutting down: nothing more is started

    # -- partitions -----------------------------------------------------------------------
    def assign(self, partition: int) -> None:
        self.revoke(partition)
        self.unsettled[partition] = {}

    def revoke(self, partition: int) -> None:
        """Forget a partition: what was not settled is filed again by its next owner."""
        self.unsettled.pop(partition, None)
        self.position.pop(partition, None)
        self.drop({partition})

    def drop(self, partitions: set[int]) -> None:
        """Not started, and never to be by this worker (revoked partitions): first thing on a revocation."""
        self.backlog = deque(i for i in self.backlog if i.partition not in partitions)

    def stop(self) -> None:
        self.stopped = True
        self.backlog.clear()

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
        self.unsettled.setdefault(rec.partition, {})[rec.offset] = item
        self.backlog.append(item)
        self.start()

    def start(self) -> None:
        """Start what the pool has room for, in order; never two items of one bundle at once (a
        work item queued twice): the second waits, then finds the first's work done."""
        if self.stopped:
            return
        running = {i.bundle_id for i in self.pool.batches()}
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
        if isinstance(exc, Abandoned):
            return  # stopping: left unsettled, so uncommitted; the next owner files it
        result: Result = fut.result() if exc is None else Result(None, failure=BatchFailed(
            "internal_error", f"{type(exc).__name__} while taking work item {item.bundle_id}"), records=(item.record,))
        # this very item, not one taken again at the same offset after a rebalance
        owned = self.unsettled.get(item.partition, {}).get(item.offset) is item
        if result.failure is not None:
            if owned:
                for r in result.records:
                    self.dead_letters.send(r, result.failure.reason, result.failure.message)
            if result.sb is not None:
                self.outcomes.failed(result.sb, result.failure, owned=False)  # logged and counted; sent above
            self.metrics.work.labels("failed" if result.sb is not None else "unreadable").inc()
        elif result.manifest is not None:
            self.outcomes.filed(result.sb, result.manifest, result.count_mismatch)
            self.metrics.work.labels("filed").inc()
        else:
            self.metrics.work.labels("skipped").inc()
        if owned:
            self.unsettled[item.partition][item.offset] = None

    # -- offsets --------------------------------------------------------------------------
    def committable(self) -> dict[int, int]:
        """partition -> offset to commit: the first item not yet settled, or the position."""
        out = {}
        for p, offsets in self.unsettled.items():
            while offsets and next(iter(offsets.values())) is None:
                offsets.pop(next(iter(offsets)))
            if offsets:
                out[p] = next(iter(offsets))
            elif p in self.position:
                out[p] = self.position[p]
        return out
