"""Stage 2: decisions grouped into filing batches; the log decides when a batch is filed.

A filing batch is (court code, batch_id, volume). Decisions without batch_id are batched
per court under a batch id named after the court, the date and the log position of the
batch's first decision; such a batch has one volume (when full, the next decision opens a
new implicit batch). Its composition depends only on the
order of records in the decisions topic and on the ledger of decisions already filed, never
on a clock, so a worker that restarts from the committed offsets rebuilds the same batches,
and a bundle made again has the same id and keys. A batch is sealed when:

- a relief.batch.closed.v1 event for it is read (upstream's, or the service's own marker);
- it reaches `max_cases` decisions (sealed at that record; the rest opens the next volume);

Time-based filing (linger, idle, shutdown) never seals directly: the worker publishes a
batch-closed marker carrying the volume it closes, and the batch is sealed when the marker
is read back, at its place in the log. A marker for a volume that is no longer open is
ignored, so two workers (or a restarted one) may both publish markers harmlessly.

Offsets: a partition may be committed up to the first record of its oldest batch that is
not yet filed (open or being flushed); two courts can share a partition.

This module does no I/O: the ledger is given to it as an object with `filed(court, id)` and
`volumes(court, batch_id)`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple, Protocol

from service.errors import Rejected
from service.events import BatchClosed, Decision


class Filed(NamedTuple):
    """Where a decision was filed, and what it said then (None where an old entry did not say)."""

    bundle_id: str
    digest: str | None = None
    partition: int | None = None
    offset: int | None = None
    pending: bool = False  # sealed and queued on the work topic, not filed yet: taken all the same


class Ledger(Protocol):
    def filed(self, court_code: str, decision_id: str) -> Filed | None: ...

    def volumes(self, court_code: str, batch_id: str) -> set[int]: ...


@dataclass(frozen=True)
class Record:
    """Where a record came from, and its bytes (kept for the DLQ if its batch cannot render)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None = None
    value: bytes | None = None
    headers: tuple = ()


@dataclass
class OpenBatch:
    court_code: str
    batch_id: str
    volume: int
    partition: int
    implicit: bool
    first_offset: int
    opened_at: float  # monotonic, for linger only: never decides composition
    decisions: list[Decision] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    marker_sent: str | None = None  # reason of the marker already published for it

    @property
    def key(self) -> tuple[str, str]:
        return (self.court_code, self.batch_id)


@dataclass(frozen=True)
class SealedBatch:
    """A batch ready to be filed. Everything in it comes from the log."""

    court_code: str
    batch_id: str
    volume: int
    partition: int
    first_offset: int
    closing_offset: int
    closing_timestamp_ms: int
    closed_by: str  # upstream, max_cases, linger, idle, shutdown
    decisions: tuple[Decision, ...]
    records: tuple[Record, ...]
    expected_count: int | None = None

    @property
    def created_at(self) -> str:
        """The log time of the record that closed the batch: the same on every rebuild."""
        ts = log_time(self.closing_timestamp_ms)
        return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


@dataclass
class _Partition:
    position: int | None = None  # next offset to read
    open: dict[tuple[str, str], OpenBatch] = field(default_factory=dict)
    implicit: dict[str, str] = field(default_factory=dict)  # court -> current implicit batch id
    flushing: dict[tuple[str, str, int], SealedBatch] = field(default_factory=dict)


class Outcome:
    """What `add` did with a record, for metrics and logs."""

    ADDED = "added"
    DUPLICATE = "duplicate"
    ALREADY_FILED = "already_filed"
    NOT_FILED = "not_filed"
    CLOSED = "closed"
    STALE_MARKER = "stale_marker"
    EMPTY_CLOSE = "empty_close"


def _conflict(d: Decision, earlier: Filed, rec: Record, in_ledger: bool) -> str:
    where = (f"filed in bundle {earlier.bundle_id}" if in_ledger else "read") + (
        f" from partition {earlier.partition} offset {earlier.offset}" if earlier.partition is not None else "")
    return (f"decision_id {d.decision_id} was already {where} with different content; this record (partition "
            f"{rec.partition} offset {rec.offset}) is not filed: send a correction under a new decision_id")


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_LAST_MS = (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=timezone.utc) - _EPOCH) // timedelta(milliseconds=1)


def log_time(timestamp_ms: int) -> datetime:
    """A record's log time. Kafka's -1 ("no timestamp"), a negative or an absurd timestamp is read
    as the nearest of 1970-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z: never an error, and
    the same on every rebuild."""
    ms = min(max(int(timestamp_ms), 0), _LAST_MS)
    return _EPOCH + timedelta(milliseconds=ms)


def implicit_batch_id(court_code: str, rec: Record) -> str:
    day = log_time(rec.timestamp_ms).strftime("%Y%m%d")
    return f"{court_code}-auto-{day}-p{rec.partition}-o{rec.offset}"


class Batcher:
    def __init__(self, max_cases: int, ledger: Ledger, clock=time.monotonic):
        self.max_cases = max_cases
        self.ledger = ledger
        self.clock = clock
        self.parts: dict[int, _Partition] = {}
        self._pending_ids: dict[tuple[str, str], Filed] = {}  # (court, decision_id) -> where it was read

    # -- partitions -----------------------------------------------------------------------
    def assign(self, partition: int) -> None:
        self.parts.setdefault(partition, _Partition())

    def revoke(self, partition: int) -> None:
        """Forget a partition: its open batches were never committed, the next owner rebuilds them."""
        self.parts.pop(partition, None)
        self._pending_ids = {k: p for k, p in self._pending_ids.items() if p.partition != partition}

    # -- records --------------------------------------------------------------------------
    def skip(self, rec: Record) -> None:
        """A record fully handled outside batching (dead-lettered): it no longer holds the offset."""
        self._advance(rec)

    def add(self, rec: Record, event: Decision | BatchClosed) -> tuple[str, list[SealedBatch]]:
        part = self.parts.setdefault(rec.partition, _Partition())
        if isinstance(event, BatchClosed):
            self._advance(rec)
            return self._close(part, rec, event)
        d = event
        # The ledger may have to be read (I/O that can fail): ask it before changing any state,
        # so that a record that raised Transient can simply be read again.
        key = (d.court_code, d.decision_id)
        pending = self._pending_ids.get(key)
        filed = None if pending else self.ledger.filed(d.court_code, d.decision_id)
        self._advance(rec)
        earlier = pending or filed
        if earlier is not None and earlier.digest is not None and earlier.digest != d.digest:
            raise Rejected("conflicting_duplicate", _conflict(d, earlier, rec, pending is None))
        if not d.granted:
            return Outcome.NOT_FILED, []
        if pending:
            return Outcome.DUPLICATE, []
        if filed:
            return Outcome.ALREADY_FILED, []
        if d.batch_id is not None:
            batch_id, implicit = d.batch_id, False
        else:
            batch_id = part.implicit.get(d.court_code) or implicit_batch_id(d.court_code, rec)
            part.implicit[d.court_code] = batch_id
            implicit = True
        ob = part.open.get((d.court_code, batch_id))
        if ob is None:
            ob = OpenBatch(court_code=d.court_code, batch_id=batch_id, volume=self._next_volume(d.court_code, batch_id),
                           partition=rec.partition, implicit=implicit, first_offset=rec.offset, opened_at=self.clock())
            part.open[ob.key] = ob
        ob.decisions.append(d)
        ob.records.append(rec)
        self._pending_ids[key] = Filed("", d.digest, rec.partition, rec.offset)
        if len(ob.decisions) >= self.max_cases:
            return Outcome.ADDED, [self._seal(part, ob, rec, "max_cases", None)]
        return Outcome.ADDED, []

    def _close(self, part: _Partition, rec: Record, ev: BatchClosed) -> tuple[str, list[SealedBatch]]:
        ob = part.open.get((ev.court_code, ev.batch_id))
        if ob is None:
            return Outcome.EMPTY_CLOSE, []
        if ev.volume is not None and ev.volume != ob.volume:
            return Outcome.STALE_MARKER, []
        return Outcome.CLOSED, [self._seal(part, ob, rec, ev.reason, ev.expected_count)]

    def _seal(self, part: _Partition, ob: OpenBatch, rec: Record, closed_by: str, expected: int | None) -> SealedBatch:
        del part.open[ob.key]
        if ob.implicit and part.implicit.get(ob.court_code) == ob.batch_id:
            # The next implicit decision opens a new batch id, named after its own offset. (Continuing
            # as volume 2 would not be deterministic: a worker that restarts after volume 1 was committed
            # could not know the batch id that volume 2 was meant to continue.)
            del part.implicit[ob.court_code]
        sb = SealedBatch(court_code=ob.court_code, batch_id=ob.batch_id, volume=ob.volume, partition=ob.partition,
                         first_offset=ob.first_offset, closing_offset=rec.offset,
                         closing_timestamp_ms=rec.timestamp_ms, closed_by=closed_by,
                         decisions=tuple(ob.decisions), records=tuple(ob.records), expected_count=expected)
        part.flushing[(sb.court_code, sb.batch_id, sb.volume)] = sb
        return sb

    def _advance(self, rec: Record) -> None:
        part = self.parts.setdefault(rec.partition, _Partition())
        if part.position is None or rec.offset + 1 > part.position:
            part.position = rec.offset + 1

    def _next_volume(self, court: str, batch_id: str) -> int:
        used = set(self.ledger.volumes(court, batch_id))
        for part in self.parts.values():
            used |= {k[2] for k in part.flushing if k[0] == court and k[1] == batch_id}
            used |= {ob.volume for ob in part.open.values() if ob.key == (court, batch_id)}
        v = 1
        while v in used:
            v += 1
        return v

    # -- flushes --------------------------------------------------------------------------
    def done(self, sb: SealedBatch) -> None:
        """The batch is filed (or dead-lettered): it no longer holds its partition's offset."""
        part = self.parts.get(sb.partition)
        key = (sb.court_code, sb.batch_id, sb.volume)
        if part is not None and part.flushing.get(key) is sb:
            del part.flushing[key]
            for d in sb.decisions:
                self._pending_ids.pop((d.court_code, d.decision_id), None)

    def owns(self, sb: SealedBatch) -> bool:
        """Is this very batch (not one rebuilt after a rebalance) still held by its partition?"""
        part = self.parts.get(sb.partition)
        return part is not None and part.flushing.get((sb.court_code, sb.batch_id, sb.volume)) is sb

    # -- time-based boundaries (the worker turns these into markers in the log) -------------
    def lingering(self, linger_seconds: float) -> list[OpenBatch]:
        now = self.clock()
        return [ob for part in self.parts.values() for ob in part.open.values()
                if ob.marker_sent is None and now - ob.opened_at >= linger_seconds]

    def open_batches(self) -> list[OpenBatch]:
        return [ob for part in self.parts.values() for ob in part.open.values()]

    def flushing(self) -> list[SealedBatch]:
        return [sb for part in self.parts.values() for sb in part.flushing.values()]

    # -- offsets --------------------------------------------------------------------------
    def committable(self) -> dict[int, int]:
        """partition -> the offset that may be committed: nothing before it is still unfiled."""
        out: dict[int, int] = {}
        for p, part in self.parts.items():
            if part.position is None:
                continue
            held = [ob.first_offset for ob in part.open.values()] + [sb.first_offset for sb in part.flushing.values()]
            out[p] = min([part.position, *held])
        return out


def summary(sb: SealedBatch) -> dict[str, Any]:
    """Log fields of a batch: ids and counts only, never personal data."""
    return {"court": sb.court_code, "batch_id": sb.batch_id, "volume": sb.volume, "cases": len(sb.decisions),
            "closed_by": sb.closed_by, "partition": sb.partition, "first_offset": sb.first_offset,
            "closing_offset": sb.closing_offset}
