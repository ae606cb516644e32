"""Helpers shared by the unit and the end-to-end tests: the repository root, waiting for a
condition with a deadline, encoding an event, a sealed batch of valid decisions, and a ledger kept
in memory."""

from __future__ import annotations

import json
import random
import time
from datetime import datetime, timezone
from pathlib import Path

from service import events
from service.batching import Filed, Record, SealedBatch
from tools import sample

ROOT = Path(__file__).resolve().parent.parent


def wait_for(predicate, timeout: float = 120, every: float = 0.5, what: str = ""):
    """predicate()'s first truthy value; AssertionError naming `what` if none comes before timeout."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= end:
            raise AssertionError(f"condition not met within {timeout} s: {what or predicate}")
        time.sleep(every)


def encode(ev) -> bytes:
    return json.dumps(ev, ensure_ascii=False).encode("utf-8")


class FakeLedger:
    """service.ledger's answers (filed decisions, volumes of a batch) from memory."""

    def __init__(self):
        self.ids = {}
        self.vols = {}

    def filed(self, court, decision_id):
        return self.ids.get((court, decision_id))

    def volumes(self, court, batch_id):
        return self.vols.get((court, batch_id), set())

    def record(self, sb):
        for d in sb.decisions:
            self.ids[(d.court_code, d.decision_id)] = Filed("bundle", d.digest, sb.partition, 0)
        self.vols.setdefault((sb.court_code, sb.batch_id), set()).add(sb.volume)


TODAY = datetime.now(timezone.utc).date()
LIMITS = events.Limits()
HEADERS = (("content-type", b"application/cloudevents+json"), ("x-trace", b"\x00\xff raw"), ("x-empty", None))


def sealed_batch(schemas, n: int = 3, court: str = "LA", batch_id: str = "LA-B1", headers=HEADERS) -> SealedBatch:
    """A batch as the batcher seals it: its records as read (partition 4, offsets 101...), and the
    decisions parsed from them (tools/sample.py)."""
    records = tuple(Record("eligibility.decided", 4, 100 + i, 1_700_000_000_000 + i, court.encode(),
                           encode(sample.decision(random.Random(i), i, court, batch_id)), headers)
                    for i in range(1, n + 1))
    decisions = tuple(events.parse(r.key, r.value, r.headers, schemas, LIMITS, today=TODAY) for r in records)
    return SealedBatch(court, batch_id, 2, 4, records[0].offset, records[-1].offset + 1, 1_700_000_000_999,
                       "upstream", decisions, records, expected_count=n)
