"""The ledger of filed decisions: which decision ids are already in a stored bundle.

One small JSON object per bundle under `{prefix}/_ledger/{court}/{bundle_id}.json`, written
after the bundle's manifest and notification. A worker loads a court's entries the first
time it meets the court (one LIST and one GET per bundle), then keeps them in memory and
adds its own. It is what makes the same decision_id, published again later, filed once; and
what lets a restarted worker skip the decisions of bundles it already filed. Each entry also
keeps every decision's content digest and source offset, so that the same decision_id sent
again with different content is told apart from a redelivery (`conflicting_duplicate`), and
every decision's case number and the bundle's manifest key: the index `reliefdocs find` reads
(service/find.py) instead of the PDFs.

`_ledger/` is the service's own state: consumers of bundles ignore it (court codes never
start with an underscore).

An entry that is not what this module wrote (not JSON, or without its fields) is rebuilt from
the bundle's manifest, which holds the same facts and is written before the entry: skipping
it could file its decisions a second time, failing would stop the court. The manifest is
found by the bundle id the entry's key names (`{court}/*/{bundle_id}/manifest.json`). No
manifest: no bundle was completed, so the entry filed nothing and is skipped. A manifest as
unreadable as the entry, or a store that refuses to be read, stops loading the court's
entries (Transient "ledger": the worker reads the record again, with backoff) until an
operator repairs it (docs/runbook.md); decisions are never filed twice meanwhile.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Callable

from service.batching import Filed, SealedBatch
from service.errors import Permanent, Transient
from service.store import Store

PREFIX = "_ledger"
log = logging.getLogger("reliefdocs.ledger")


def case_number(data: dict) -> str | None:
    case = data.get("case")
    return case.get("number") if isinstance(case, dict) and isinstance(case.get("number"), str) else None


def entry_of(raw: bytes, bundle_id: str) -> dict | None:
    """A ledger entry as written by record(), or None if raw is not one (for this bundle)."""
    try:
        e = json.loads(raw)
        ok = (isinstance(e, dict) and e.get("bundle_id") == bundle_id and isinstance(e.get("batch_id"), str)
              and isinstance(e.get("volume"), int) and isinstance(e.get("decisions"), list)
              and all(isinstance(d, str) for d in e["decisions"]))
    except (ValueError, RecursionError):
        return None
    return e if ok else None


def entry_from_manifest(raw: bytes, court: str, bundle_id: str) -> dict | None:
    """The ledger entry a stored manifest stands for, or None if it is not a manifest of this bundle."""
    try:
        m = json.loads(raw)
        entry = {"bundle_id": m["bundle_id"], "court_code": m["court_code"], "batch_id": m["batch_id"],
                 "volume": m["volume"], "decisions": [d["decision_id"] for d in m["decisions"]]}
    except (ValueError, RecursionError, KeyError, TypeError):
        return None
    if entry["court_code"] != court:
        return None
    return entry_of(json.dumps(entry).encode(), bundle_id)


class StoreLedger:
    def __init__(self, store: Store, on_corrupt: Callable[[str], None] = lambda outcome: None):
        self.store = store
        self.on_corrupt = on_corrupt  # called with "rebuilt", "skipped" or "unreadable" per unreadable entry
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
        try:
            for entry in self._entries(court):
                self._merge(ids, vols, bundles, entry)
        except Permanent as exc:  # our own state unreadable: wait for it rather than guess
            raise Transient("ledger", f"{exc.operation} refused by the object store: {exc.code}") from None
        with self._lock:
            self._courts.setdefault(court, ids)
            self._volumes.setdefault(court, vols)
            self._bundles.setdefault(court, bundles)
            return self._courts[court]

    def _entries(self, court: str) -> list[dict]:
        entries, corrupt = [], []
        for key in self.store.list(f"{PREFIX}/{court}/"):
            if not key.endswith(".json"):
                continue
            raw = self.store.get(key)
            if raw is None:
                continue
            bundle_id = key.rsplit("/", 1)[-1][: -len(".json")]
            entry = entry_of(raw, bundle_id)
            if entry is None:
                log.warning("ledger entry unreadable; rebuilding it from the bundle's manifest", extra={"key": key})
                corrupt.append((key, bundle_id))
            else:
                entries.append(entry)
        if corrupt:
            entries += self._rebuild(court, corrupt)
        return entries

    def _rebuild(self, court: str, corrupt: list[tuple[str, str]]) -> list[dict]:
        """Entries from the manifests of the bundles whose entries are unreadable (see the module's doc)."""
        wanted = {bundle_id: key for key, bundle_id in corrupt}
        manifests = {}
        for k in self.store.list(f"{court}/"):
            parts = k.split("/")
            if parts[-1] == "manifest.json" and len(parts) >= 2 and parts[-2] in wanted:
                manifests[parts[-2]] = k
        rebuilt = []
        for bundle_id, key in wanted.items():
            if bundle_id not in manifests:
                log.warning("ledger entry skipped: its bundle has no manifest, so it filed nothing",
                            extra={"key": key})
                self.on_corrupt("skipped")
                continue
            raw = self.store.get(manifests[bundle_id])
            entry = entry_from_manifest(raw, court, bundle_id) if raw is not None else None
            if entry is None:
                self.on_corrupt("unreadable")
                raise Transient("ledger", f"{key} and its bundle's manifest are unreadable; repair the entry")
            self.on_corrupt("rebuilt")
            self._repair(key, entry)
            rebuilt.append(entry)
        return rebuilt

    def _repair(self, key: str, entry: dict) -> None:
        """Write the rebuilt entry back; if the store will not, it is rebuilt again next time."""
        try:
            self.store.put_bytes(key, json.dumps(entry, sort_keys=True).encode(), "application/json")
            log.info("ledger entry rebuilt from the bundle's manifest", extra={"key": key})
        except (Transient, Permanent) as exc:
            log.warning("rebuilt ledger entry not written back", extra={"key": key, "error": str(exc)})

    @staticmethod
    def _merge(ids: dict[str, Filed], vols: dict[str, set[int]], bundles: dict[str, set[str]], entry: dict) -> None:
        n = len(entry["decisions"])
        same_length = lambda xs: xs if isinstance(xs, list) and len(xs) == n else [None] * n
        digests = same_length(entry.get("digests"))  # entries written before digests were kept have none
        offsets = same_length(entry.get("offsets"))
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
        """After the bundle is stored and notified: its decisions, with their digests and offsets, and
        (for `reliefdocs find`) their case numbers and the bundle's manifest key."""
        from service.flush import folder_of  # flush imports this module

        court = sb.court_code
        entry = {"bundle_id": bundle_id, "court_code": court, "batch_id": sb.batch_id, "volume": sb.volume,
                 "decisions": [d.decision_id for d in sb.decisions], "digests": [d.digest for d in sb.decisions],
                 "partition": sb.partition, "offsets": [r.offset for r in sb.records],
                 "cases": [case_number(d.data) for d in sb.decisions],
                 "manifest": f"{folder_of(sb, bundle_id)}/manifest.json"}
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
