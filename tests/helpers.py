"""Helpers shared by the unit and the end-to-end tests: the repository root, waiting for a
condition with a deadline, encoding an event, and a ledger kept in memory."""

from __future__ import annotations

import json
import time
from pathlib import Path

from service.batching import Filed

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
