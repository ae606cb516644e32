"""Stage 2b: sealed batches as work items, so that any worker of the group files any court's
batches (issue 16).

Composing a batch stays with the worker that reads its court's partition, in log order; filing
it (render, convert, bundle, store, notify) is work for whichever worker owns the work item:

1. the batch itself (its records as read: bytes, headers, positions) is written to object
   storage, `_work/{court}/{bundle_id}.batch.json`;
2. a small work record, key = bundle id, is sent to the work topic (the partition: `spread`)
   and acknowledged;
3. the ledger's marker `_work/{court}/{bundle_id}.json` says its decisions are taken
   (service/ledger.py), and only then does the batch stop holding the decisions topic's offset.

A crash before 3 leaves the decisions uncommitted: the batch is composed again, into the same
bundle id, and a second work record for it finds the first one's work done (below).

The filer reads the batch back, parses its records again (the same parser, on the date the
composer read them: the same decisions), checks that they make the same bundle id, and files
it. A work item is idempotent by bundle id: an item whose bundle's ledger entry exists was
filed and notified, and is only cleaned up; one whose manifest exists is notified again; one
whose batch object is gone was filed (or failed) and cleaned up already. After the ledger
entry is written, the marker and the batch object are removed. A batch that cannot be filed
is marked failed (its decisions free again) and its records dead-lettered; its batch object
is kept, so that a work item read again after a crash dead-letters them again rather than
losing them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import time
import zlib
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Callable

from service import events
from service.batching import Record, SealedBatch
from service.broker import partitions, send_json
from service.errors import Rejected
from service.ledger import WORK, StoreLedger

log = logging.getLogger("reliefdocs.workqueue")
FORMAT = 1
MEDIA_TYPE = "application/json"


def batch_key(court: str, bundle_id: str) -> str:
    return f"{WORK}/{court}/{bundle_id}.batch.json"


def _b64(raw: bytes | None) -> str | None:
    return None if raw is None else base64.b64encode(raw).decode("ascii")


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text, validate=True)


def encode(sb: SealedBatch, bundle_id: str, read_on: date) -> bytes:
    """The batch as the filer needs it: its records' bytes and positions, and how it was sealed."""
    doc = {"format": FORMAT, "bundle_id": bundle_id, "court_code": sb.court_code, "batch_id": sb.batch_id,
           "volume": sb.volume, "partition": sb.partition, "first_offset": sb.first_offset,
           "closing_offset": sb.closing_offset, "closing_timestamp_ms": sb.closing_timestamp_ms,
           "closed_by": sb.closed_by, "expected_count": sb.expected_count, "read_on": read_on.isoformat(),
           "records": [{"topic": r.topic, "partition": r.partition, "offset": r.offset,
                        "timestamp_ms": r.timestamp_ms, "key": _b64(r.key), "value": _b64(r.value),
                        "headers": [[k, _b64(v)] for k, v in r.headers]} for r in sb.records]}
    return json.dumps(doc, ensure_ascii=True, separators=(",", ":")).encode("ascii")


class Unreadable(Exception):
    """A batch object that is not what encode() wrote: a message naming what is wrong, no data."""


@dataclass(frozen=True)
class Loaded:
    """A batch object read back: its fields, and its records as they were read from the log."""

    doc: dict[str, Any]
    records: tuple[Record, ...]


def load(raw: bytes) -> Loaded:
    """Unreadable if it is not what encode() wrote."""
    try:
        doc = json.loads(raw)
        if doc.get("format") != FORMAT:
            raise Unreadable(f"format {doc.get('format')!r}, this worker reads {FORMAT}")
        records = tuple(Record(r["topic"], int(r["partition"]), int(r["offset"]), int(r["timestamp_ms"]),
                               _unb64(r["key"]), _unb64(r["value"]),
                               tuple((str(k), _unb64(v)) for k, v in r["headers"])) for r in doc["records"])
        for name in ("court_code", "batch_id", "bundle_id", "closed_by"):
            if not isinstance(doc[name], str):
                raise Unreadable(f"{name} is not text")
        for name in ("volume", "partition", "first_offset", "closing_offset", "closing_timestamp_ms"):
            if not isinstance(doc[name], int):
                raise Unreadable(f"{name} is not a number")
        date.fromisoformat(doc["read_on"])
    except Unreadable:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise Unreadable(f"batch object unreadable ({type(exc).__name__})") from None
    return Loaded(doc, records)


def decode(loaded: Loaded, schemas: events.Schemas, limits: events.Limits,
           bundle_id_of: Callable[[SealedBatch], str]) -> SealedBatch:
    """The sealed batch again: its records parsed as the composer parsed them (on the same date).
    Unreadable if a record no longer passes (schemas or limits changed meanwhile), or if the
    decisions do not make the bundle id the batch was queued under."""
    doc, records = loaded.doc, loaded.records
    read_on = date.fromisoformat(doc["read_on"])
    decisions = []
    for r in records:
        try:
            event = events.parse(r.key, r.value, r.headers, schemas, limits, today=read_on)
        except Rejected as exc:  # parsed when sealed: the schemas changed since, or the object did
            raise Unreadable(f"record at offset {r.offset} no longer parses ({exc.reason})") from None
        if not isinstance(event, events.Decision):
            raise Unreadable(f"record at offset {r.offset} is not a decision")
        decisions.append(event)
    expected = doc.get("expected_count")
    sb = SealedBatch(court_code=doc["court_code"], batch_id=doc["batch_id"], volume=doc["volume"],
                     partition=doc["partition"], first_offset=doc["first_offset"],
                     closing_offset=doc["closing_offset"], closing_timestamp_ms=doc["closing_timestamp_ms"],
                     closed_by=doc["closed_by"], decisions=tuple(decisions), records=records,
                     expected_count=expected if isinstance(expected, int) else None)
    if bundle_id_of(sb) != doc["bundle_id"]:
        raise Unreadable("its decisions do not make the bundle id it was queued under")
    return sb


def spread(court: str, batch_id: str, volume: int, partitions: int) -> int:
    """The work partition of a batch's volume: the volumes of one batch (a county's motion of
    thousands of cases) go round the partitions with a stride near 0.618 of their number, so
    consecutive volumes land on different workers whether the group assigns partitions in
    ranges or round robin; the first volume's place comes from the batch's name. The same volume
    always goes to the same partition: a work item queued twice (a composer that crashed before
    committing) is filed once, after the first, by the same worker."""
    stride = max(1, round(partitions * 0.618))
    while math.gcd(stride, partitions) != 1:
        stride += 1
    start = zlib.crc32(f"{court}\0{batch_id}".encode("utf-8", "surrogatepass"))
    return (start + stride * (volume - 1)) % partitions


def work_record(sb: SealedBatch, bundle_id: str, body: bytes) -> dict[str, Any]:
    """The work topic's record value: where the batch is, and a digest to check it by."""
    return {"format": FORMAT, "bundle_id": bundle_id, "court_code": sb.court_code, "batch_id": sb.batch_id,
            "volume": sb.volume, "cases": len(sb.decisions), "batch": batch_key(sb.court_code, bundle_id),
            "sha256": hashlib.sha256(body).hexdigest()}


@dataclass(frozen=True)
class WorkItem:
    """One record of the work topic, as the filer takes it."""

    partition: int
    offset: int
    bundle_id: str
    court_code: str
    batch: str  # the batch object's key
    sha256: str
    record: Record  # for the DLQ, if the item itself is unusable

    @property
    def name(self) -> str:
        return f"file-{self.court_code}-{self.bundle_id[:8]}"

    @property
    def queued_at(self) -> str:
        """Where its record is: "partition:offset" (what a failed marker names)."""
        return f"{self.partition}:{self.offset}"


def work_item(rec: Record) -> WorkItem | None:
    """The work record's fields, or None if it is not one this worker can read."""
    try:
        v = json.loads(rec.value or b"")
        if v.get("format") != FORMAT:
            return None
        item = WorkItem(rec.partition, rec.offset, str(v["bundle_id"]), str(v["court_code"]), str(v["batch"]),
                        str(v["sha256"]), rec)
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None
    return item if item.batch == batch_key(item.court_code, item.bundle_id) else None  # no other object is touched


class Queue:
    """The composer's side: a sealed batch made a work item (steps 1-3 above). Runs on a pool
    thread; `retry(f, what)` retries what fails Transient (the worker's one backoff policy)."""

    def __init__(self, store: Any, producer: Any, topic: str, ledger: StoreLedger,
                 bundle_id_of: Callable[[SealedBatch], str], retry: Callable[[Callable[[], Any], str], Any],
                 today: Callable[[], date] = lambda: datetime.now(timezone.utc).date(),
                 timer: Callable[[str, float], None] = lambda stage, seconds: None,
                 queued: Callable[[int, int], None] = lambda partition, offset: None):
        self.store = store
        self.producer = producer
        self.topic = topic
        self.ledger = ledger
        self.bundle_id_of = bundle_id_of
        self.retry = retry
        self.today = today
        self.timer = timer
        self.queued = queued  # told where each work record was written (service/lookahead.py)
        self.partitions: int | None = None  # of the work topic, asked once

    def _partition(self, sb: SealedBatch) -> int:
        if self.partitions is None:
            self.partitions = partitions(self.producer, self.topic)
        return spread(sb.court_code, sb.batch_id, sb.volume, self.partitions)

    def __call__(self, sb: SealedBatch) -> str:
        started = time.perf_counter()
        bundle_id = self.bundle_id_of(sb)
        body = encode(sb, bundle_id, self.today())
        key = batch_key(sb.court_code, bundle_id)
        self.retry(lambda: self.store.put_bytes(key, body, MEDIA_TYPE), "queue")
        record = work_record(sb, bundle_id, body)
        queued_at = self.retry(lambda: send_json(self.producer, self.topic, bundle_id, record,
                                                 content_type=b"application/json", partition=self._partition(sb)),
                               "queue")
        partition, _, offset = queued_at.partition(":")
        if partition.isdigit() and offset.isdigit():
            self.queued(int(partition), int(offset))
        self.retry(lambda: self.ledger.reserve(sb, bundle_id, queued_at), "queue")
        self.timer("queue", time.perf_counter() - started)
        return bundle_id
