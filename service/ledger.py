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

A decision is taken from the moment its batch is sealed and queued on the work topic (issue
16), not only once filed: the worker that queues it writes a marker `_work/{court}/{bundle_id}.json`
(the same fields, `"state": "sealed"`) after the work record is acknowledged, and loading a
court reads the markers (first: a batch filed meanwhile has its entry written before its
marker is removed) as well as the entries. A pending decision sent again is skipped like a
filed one. Whether it is still pending is checked again in the store before it is trusted
(at most every RECHECK_SECONDS per bundle): a batch that failed is marked `"state": "failed"`
(its records are in the DLQ) and its decisions are free again, so a replay of them is filed.

`_ledger/` and `_work/` are the service's own state: consumers of bundles ignore it (court codes never
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
import time
from typing import Callable

from service.batching import Filed, SealedBatch
from service.errors import Permanent, Transient
from service.store import Store

PREFIX = "_ledger"
WORK = "_work"
RECHECK_SECONDS = 5.0
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


def entry_key(court: str, bundle_id: str) -> str:
    return f"{PREFIX}/{court}/{bundle_id}.json"


def marker_key(court: str, bundle_id: str) -> str:
    return f"{WORK}/{court}/{bundle_id}.json"


def batch_entry(sb: SealedBatch, bundle_id: str) -> dict:
    """What a ledger entry and a work marker say of a batch's decisions."""
    return {"bundle_id": bundle_id, "court_code": sb.court_code, "batch_id": sb.batch_id, "volume": sb.volume,
            "decisions": [d.decision_id for d in sb.decisions], "digests": [d.digest for d in sb.decisions],
            "partition": sb.partition, "offsets": [r.offset for r in sb.records]}


def marker_state(raw: bytes | None, bundle_id: str) -> str | None:
    """"sealed" or "failed" for a readable marker of this bundle, else None."""
    entry = entry_of(raw, bundle_id) if raw is not None else None
    return entry.get("state") if entry is not None and entry.get("state") in ("sealed", "failed") else None


class CourtReader:
    """One court's state as the store holds it: its ledger entries (an unreadable one rebuilt from
    its bundle's manifest, see the module's doc) and its work markers."""

    def __init__(self, store: Store, on_corrupt: Callable[[str], None]):
        self.store = store
        self.on_corrupt = on_corrupt

    def read(self, court: str) -> tuple[list[dict], list[dict]]:
        """(entries, markers); the markers listed first: a batch filed meanwhile has its entry
        written before its marker is removed, so it is seen in one or the other."""
        markers = self._markers(court)
        return self._entries(court), markers

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

    def _markers(self, court: str) -> list[dict]:
        """The work markers of batches queued for filing ("sealed") or failed (volumes only)."""
        out = []
        for key in self.store.list(f"{WORK}/{court}/"):
            name = key.rsplit("/", 1)[-1]
            if not name.endswith(".json") or name.count(".") != 1:
                continue  # {bundle_id}.batch.json: the batch itself (service/workqueue.py)
            raw = self.store.get(key)
            state = marker_state(raw, name[: -len(".json")])
            if state is None:
                if raw is not None:
                    log.warning("work marker unreadable; ignored", extra={"key": key})
                continue
            out.append(json.loads(raw))
        return out

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


class StoreLedger:
    def __init__(self, store: Store, on_corrupt: Callable[[str], None] = lambda outcome: None,
                 clock: Callable[[], float] = time.monotonic):
        self.store = store
        # on_corrupt: called with "rebuilt", "skipped" or "unreadable" per unreadable entry (by the reader)
        self.reader = CourtReader(store, on_corrupt)
        self.clock = clock
        self._checked: dict[str, float] = {}  # bundle id -> when its marker was last seen "sealed"
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
            entries, markers = self.reader.read(court)
            for entry in entries:
                self._merge(ids, vols, bundles, entry)
            for entry in markers:
                self._merge(ids, vols, bundles, entry, pending=entry["state"] == "sealed")
        except Permanent as exc:  # our own state unreadable: wait for it rather than guess
            raise Transient("ledger", f"{exc.operation} refused by the object store: {exc.code}") from None
        with self._lock:
            self._courts.setdefault(court, ids)
            self._volumes.setdefault(court, vols)
            self._bundles.setdefault(court, bundles)
            return self._courts[court]

    @staticmethod
    def _merge(ids: dict[str, Filed], vols: dict[str, set[int]], bundles: dict[str, set[str]], entry: dict,
               pending: bool = False, replace: bool = False) -> None:
        vols.setdefault(entry["batch_id"], set()).add(int(entry["volume"]))  # a failed batch's volume stays used
        if entry.get("state") == "failed":
            return
        n = len(entry["decisions"])
        same_length = lambda xs: xs if isinstance(xs, list) and len(xs) == n else [None] * n
        digests = same_length(entry.get("digests"))  # entries written before digests were kept have none
        offsets = same_length(entry.get("offsets"))
        for d, digest, offset in zip(entry["decisions"], digests, offsets):
            f = Filed(entry["bundle_id"], digest, entry.get("partition"), offset, pending)
            if replace and (d not in ids or ids[d].bundle_id == f.bundle_id):
                ids[d] = f
            else:
                ids.setdefault(d, f)
        bundles.setdefault(entry["batch_id"], set()).add(entry["bundle_id"])

    def filed(self, court: str, decision_id: str) -> Filed | None:
        """Where the decision was filed, or is queued to be (pending); None if it is free."""
        f = self._court(court).get(decision_id)
        if f is None or not f.pending:
            return f
        return self._recheck(court, f)

    def _recheck(self, court: str, f: Filed) -> Filed | None:
        """A pending decision: still queued, filed since, or its batch failed (free again)? The
        marker first: a filed batch's entry is written before its marker is removed."""
        last = self._checked.get(f.bundle_id)
        if last is not None and self.clock() - last < RECHECK_SECONDS:
            return f
        try:
            state = self.marker(court, f.bundle_id)
            recorded = state != "sealed" and self.is_recorded(court, f.bundle_id)  # filed, whatever a marker says
        except Permanent as exc:  # as when loading: our own state unreadable, wait for it rather than guess
            raise Transient("ledger", f"{exc.operation} refused by the object store: {exc.code}") from None
        if state == "sealed":
            self._checked[f.bundle_id] = self.clock()
            return f
        if recorded:
            self._set_pending(court, f.bundle_id, False)
            return f._replace(pending=False)
        self.release(court, f.bundle_id)
        return None

    def marker(self, court: str, bundle_id: str) -> str | None:
        """The work marker's state ("sealed", "failed"), or None if there is none (or unreadable)."""
        return marker_state(self.store.get(marker_key(court, bundle_id)), bundle_id)

    def _set_pending(self, court: str, bundle_id: str, pending: bool) -> None:
        with self._lock:
            ids = self._courts.get(court, {})
            for d, f in list(ids.items()):
                if f.bundle_id == bundle_id:
                    ids[d] = f._replace(pending=pending)

    def release(self, court: str, bundle_id: str) -> None:
        """A queued batch failed: its decisions are free again (its volume stays used)."""
        self._checked.pop(bundle_id, None)
        with self._lock:
            ids = self._courts.get(court, {})
            for d in [d for d, f in ids.items() if f.bundle_id == bundle_id and f.pending]:
                del ids[d]

    def reserve(self, sb: SealedBatch, bundle_id: str, queued_at: str | None = None) -> None:
        """After the batch's work record (at `queued_at`, "partition:offset") is acknowledged: its
        decisions are taken, for every worker. Unless a filer was quicker: a bundle filed already
        needs no marker, and one that failed from this very work record stays failed (its records
        are in the DLQ; a failed marker of an earlier queueing is replaced)."""
        court = sb.court_code
        if self.is_recorded(court, bundle_id):  # taken, for good: this worker's cache must know it
            self._merge_loaded(court, batch_entry(sb, bundle_id), replace=True)
            return
        raw = self.store.get(marker_key(court, bundle_id))
        if marker_state(raw, bundle_id) == "failed" and queued_at is not None and json.loads(raw).get(
                "queued_at") == queued_at:
            self.release(court, bundle_id)
            return
        entry = {**batch_entry(sb, bundle_id), "state": "sealed", "queued_at": queued_at}
        self.store.put_bytes(marker_key(court, bundle_id), json.dumps(entry, sort_keys=True).encode(),
                             "application/json")
        self._merge_loaded(court, entry, pending=True)
        self._checked[bundle_id] = self.clock()

    def _merge_loaded(self, court: str, entry: dict, pending: bool = False, replace: bool = False) -> None:
        """An entry or marker just written, into the court's loaded state. Called on filing threads: if
        a rebalance forgot the court meanwhile, it is loaded again from the store, this one included."""
        self._court(court)
        with self._lock:
            if court in self._courts:
                self._merge(self._courts[court], self._volumes[court], self._bundles[court], entry, pending, replace)

    def failed(self, sb: SealedBatch, bundle_id: str, queued_at: str | None = None) -> None:
        """The batch queued at `queued_at` could not be filed (its records go to the DLQ): its
        decisions are free again. Never for a bundle whose entry is written: that one is filed."""
        self._fail(sb.court_code, bundle_id, {**batch_entry(sb, bundle_id), "state": "failed",
                                              "queued_at": queued_at})

    def fail_bundle(self, court: str, bundle_id: str, queued_at: str | None = None) -> None:
        """failed() for a batch that cannot be read back: its volume is not known, its decisions are."""
        self._fail(court, bundle_id, {"bundle_id": bundle_id, "court_code": court, "batch_id": "", "volume": 0,
                                      "decisions": [], "state": "failed", "queued_at": queued_at})

    def _fail(self, court: str, bundle_id: str, entry: dict) -> None:
        if self.is_recorded(court, bundle_id):
            return
        self.store.put_bytes(marker_key(court, bundle_id), json.dumps(entry, sort_keys=True).encode(),
                             "application/json")
        self.release(court, bundle_id)

    def unmark(self, court: str, bundle_id: str) -> None:
        """The batch is filed and its entry written: its marker is no longer needed."""
        self.store.delete(marker_key(court, bundle_id))
        self._checked.pop(bundle_id, None)

    def is_recorded(self, court: str, bundle_id: str) -> bool:
        """Is the bundle's entry written (so it is stored and its notification sent)?"""
        return self.store.exists(entry_key(court, bundle_id))

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
        entry = {**batch_entry(sb, bundle_id), "cases": [case_number(d.data) for d in sb.decisions],
                 "manifest": f"{folder_of(sb, bundle_id)}/manifest.json"}
        self.store.put_bytes(entry_key(court, bundle_id), json.dumps(entry, sort_keys=True).encode(),
                             "application/json")
        self._merge_loaded(court, entry, replace=True)

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
