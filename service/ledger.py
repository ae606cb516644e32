"""The ledger of filed decisions: which decision ids are already in a stored bundle.

One small JSON object per bundle under `{prefix}/_ledger/{court}/{bundle_id}.json`, written
after the bundle's manifest and notification. A worker loads a court's entries the first
time it meets the court (one LIST and one GET per bundle), then keeps them in memory and
adds its own. It is what makes the same decision_id, published again later, filed once; and
what lets a restarted worker skip the decisions of bundles it already filed. Each entry also
keeps every decision's content digest and source offset, so that the same decision_id sent
again with different content is told apart from a redelivery (`conflicting_duplicate`).

`_ledger/` is the service's own state: consumers of bundles ignore it (court codes never
start with an underscore).
"""

from __future__ import annotations

import json
import threading

from service.batching import Filed, SealedBatch
from service.store import Store

PREFIX = "_ledger"


class StoreLedger:
    def __init__(self, store: Store):
        self.store = store
        self._lock = threading.Lock()
        self._courts: dict[str, dict[str, Filed]] = {}  # court -> decision_id -> where and what was filed
        self._volumes: dict[str, dict[str, set[int]]] = {}  # court -> batch_id -> volumes
        self._bundles: dict[str, dict[str, set[str]]] = {}  # court -> batch_id -> bundle ids

    def _court(self, court: str) -> dict[str, Filed]:
        with self._lock:
            if court in self._courts:
                return self._courts[court]
        ids: dict[str, Filed] = {}
        vols: dict[str, set[int]] = {}
        bundles: dict[str, set[str]] = {}
        for key in self.store.list(f"{PREFIX}/{court}/"):
            if not key.endswith(".json"):
                continue
            raw = self.store.get(key)
            if raw is None:
                continue
            entry = json.loads(raw)
            self._merge(ids, vols, bundles, entry)
        with self._lock:
            self._courts.setdefault(court, ids)
            self._volumes.setdefault(court, vols)
            self._bundles.setdefault(court, bundles)
            return self._courts[court]

    @staticmethod
    def _merge(ids: dict[str, Filed], vols: dict[str, set[int]], bundles: dict[str, set[str]], entry: dict) -> None:
        n = len(entry["decisions"])
        digests = entry.get("digests") or [None] * n  # entries written before digests were kept have none
        offsets = entry.get("offsets") or [None] * n
        for d, digest, offset in zip(entry["decisions"], digests, offsets):
            ids.setdefault(d, Filed(entry["bundle_id"], digest, entry.get("partition"), offset))
        vols.setdefault(entry["batch_id"], set()).add(int(entry["volume"]))
        bundles.setdefault(entry["batch_id"], set()).add(entry["bundle_id"])

    def filed(self, court: str, decision_id: str) -> Filed | None:
        return self._court(court).get(decision_id)

    def filed_count(self, court: str, batch_id: str) -> int:
        """Decisions filed for a batch so far, all volumes."""
        ids = self._court(court)
        with self._lock:
            bundles = self._bundles.get(court, {}).get(batch_id, set())
            return sum(1 for f in ids.values() if f.bundle_id in bundles)

    def volumes(self, court: str, batch_id: str) -> set[int]:
        self._court(court)
        with self._lock:
            return set(self._volumes.get(court, {}).get(batch_id, set()))

    def record(self, sb: SealedBatch, bundle_id: str) -> None:
        """After the bundle is stored and notified: its decisions, with their digests and offsets."""
        court = sb.court_code
        entry = {"bundle_id": bundle_id, "court_code": court, "batch_id": sb.batch_id, "volume": sb.volume,
                 "decisions": [d.decision_id for d in sb.decisions], "digests": [d.digest for d in sb.decisions],
                 "partition": sb.partition, "offsets": [r.offset for r in sb.records]}
        self.store.put_bytes(f"{PREFIX}/{court}/{bundle_id}.json",
                             json.dumps(entry, sort_keys=True).encode(), "application/json")
        self._court(court)
        with self._lock:
            self._merge(self._courts[court], self._volumes[court], self._bundles[court], entry)

    def forget(self, court: str | None = None) -> None:
        """Drop cached entries (after a rebalance another worker may have filed more)."""
        with self._lock:
            if court is None:
                self._courts.clear()
                self._volumes.clear()
                self._bundles.clear()
            else:
                self._courts.pop(court, None)
                self._volumes.pop(court, None)
                self._bundles.pop(court, None)
