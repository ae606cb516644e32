"""The edges of `reliefdocs reconcile` and `report`: read the decisions topic (whole, or a time
range), the DLQ, the group's committed offsets, the stored manifests and the ledger, and hand them
to the pure accounting (service/reconcile.py). Manifests and ledger entries are read
concurrently; a progress bar shows on a terminal. Printed text is escaped (safe_text)."""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from kafka.structs import TopicPartition

from service import broker, dlq, reconcile
from service.config import Settings
from service.errors import ConfigError
from service.ledger import PREFIX as LEDGER
from service.ledger import WORK
from service.ops import Progress
from service.reconcile import Accounting, Bundle
from service.text import safe_text

READERS = 16  # concurrent GETs of manifests and ledger entries


@dataclass(frozen=True)
class Range:
    """Which records of the decisions topic: all (both None), or by log time."""

    since: datetime | None = None
    until: datetime | None = None

    @property
    def complete(self) -> bool:
        return self.since is None and self.until is None


def parse_time(flag: str, text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(flag, "must be an ISO 8601 date or time (2026-11-24 or 2026-11-24T08:00:00Z)") from None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


# -- the decisions topic ---------------------------------------------------------------------
def _bounds(c, tps: list, rng: Range) -> tuple[dict, dict]:
    """Per partition: the first offset to read and the offset to stop at."""
    begin = c.beginning_offsets(tps, timeout_ms=10000)
    end = c.end_offsets(tps, timeout_ms=10000)
    def at(t: datetime | None, default: dict) -> dict:
        if t is None:
            return dict(default)
        found = c.offsets_for_times({tp: int(t.timestamp() * 1000) for tp in tps}, timeout_ms=10000)
        return {tp: (found[tp].offset if found.get(tp) else end[tp]) for tp in tps}
    return at(rng.since, begin), at(rng.until, {tp: None for tp in tps})


def read_decisions(settings: Settings, rng: Range = Range(), out=sys.stderr) -> list[reconcile.Read]:
    """The decisions topic from its start (or `since`) to its current end (or `until`), summarized."""
    c = broker.consumer(settings, group_id=None, client_id="reliefdocs-reconcile", enable_auto_commit=False,
                        max_partition_fetch_bytes=8 * 1024 * 1024)
    reads: list[reconcile.Read] = []
    try:
        tps = [TopicPartition(settings.decisions_topic, p) for p in sorted(c.partitions_for_topic(settings.decisions_topic) or [])]
        if not tps:
            return reads
        c.assign(tps)
        start, stop = _bounds(c, tps, rng)
        ends = c.end_offsets(tps, timeout_ms=10000)
        for tp in tps:
            c.seek(tp, start[tp])
        progress = Progress(sum(max(0, (stop[tp] or ends[tp]) - start[tp]) for tp in tps), "decisions read", out)
        quiet = 0
        while quiet < 3:
            batch = c.poll(timeout_ms=700, max_records=5000)
            quiet = 0 if batch else quiet + 1
            for tp, recs in batch.items():
                kept = [r for r in recs if stop[tp] is None or r.offset < stop[tp]]
                reads += [reconcile.summarize(r.partition, r.offset, r.timestamp, r.key, r.value, r.headers)
                          for r in kept]
                progress.step(len(kept))
            if all(_done(c, tp, stop[tp]) for tp in tps):
                break
        progress.done()
    finally:
        c.close()
    reads.sort(key=lambda r: (r.partition, r.offset))
    return reads


def _done(c, tp, stop: int | None) -> bool:
    position, high = c.position(tp), c.highwater(tp)
    if stop is not None and position >= stop:
        return True
    return high is not None and position >= high


def committed(settings: Settings) -> dict[int, int | None]:
    """The workers' group's committed offset per partition of the decisions topic."""
    c = broker.consumer(settings, group_id=settings.group, client_id="reliefdocs-reconcile-offsets",
                        enable_auto_commit=False)
    try:
        parts = sorted(c.partitions_for_topic(settings.decisions_topic) or [])
        return {p: c.committed(TopicPartition(settings.decisions_topic, p), timeout_ms=10000) for p in parts}
    finally:
        c.close()


def letters(settings: Settings) -> list[reconcile.Letter]:
    return [reconcile.letter_of(d, settings.decisions_topic) for d in dlq.read(settings)]


# -- the store -------------------------------------------------------------------------------
def _get_all(store, keys: list[str], parse: Callable[[bytes, str], Any], what: str, out=sys.stderr) -> list:
    progress = Progress(len(keys), what, out)
    found = []

    def one(key: str):
        raw = store.get(key)
        return None if raw is None else parse(raw, key)

    with ThreadPoolExecutor(READERS) as pool:
        for item in pool.map(one, keys):
            progress.step()
            if item is not None:
                found.append(item)
    progress.done()
    return found


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def manifests(store, out=sys.stderr) -> list[Bundle]:
    """Every stored manifest (`{court}/{batch}/{bundle}/manifest.json`), read concurrently."""
    keys = [k for k in store.list("") if k.endswith("/manifest.json") and not k.startswith("_")]
    return _get_all(store, keys, lambda raw, key: reconcile.bundle_of(_json(raw), key), "manifests read", out)


def ledger_entries(store, out=sys.stderr) -> list[dict]:
    """Every ledger entry (`_ledger/{court}/{bundle_id}.json`), read concurrently."""
    keys = [k for k in store.list(f"{LEDGER}/") if k.endswith(".json")]

    def parse(raw: bytes, key: str) -> dict | None:
        e = _json(raw)
        return e if isinstance(e, dict) and isinstance(e.get("decisions"), list) else None

    return _get_all(store, keys, parse, "ledger entries read", out)


def queued(store, out=sys.stderr) -> dict[str, str]:
    """decision id -> bundle id, of every batch queued and not filed yet (its `_work/` marker
    says "sealed")."""
    keys = [k for k in store.list(f"{WORK}/") if k.endswith(".json") and k.rsplit("/", 1)[-1].count(".") == 1]

    def parse(raw: bytes, key: str) -> dict | None:
        m = _json(raw)
        return m if isinstance(m, dict) and m.get("state") == "sealed" and isinstance(m.get("decisions"), list) else None

    return {d: m.get("bundle_id") for m in _get_all(store, keys, parse, "work markers read", out)
            for d in m["decisions"]}


def gather(settings: Settings, rng: Range = Range(), out=sys.stderr) -> Accounting:
    from service.store import open_store

    store = open_store(settings)
    offsets = committed(settings)  # before the topic: a record read after this is never wrongly "missing"
    reads = read_decisions(settings, rng, out)
    dead = letters(settings)
    waiting = queued(store, out)  # before the manifests: a batch filed meanwhile is seen filed
    return reconcile.account(reads, dead, offsets, manifests(store, out), ledger_entries(store, out), rng.complete,
                             waiting)


# -- the commands ----------------------------------------------------------------------------
def reconcile_command(settings: Settings, as_json: bool, rng: Range = Range(), out=sys.stdout) -> int:
    acc = gather(settings, rng)
    if as_json:
        print(json.dumps(acc.to_json(), indent=2, sort_keys=False), file=out)
    else:
        print_text(acc, out)
    return 0 if acc.ok else 1


def print_text(acc: Accounting, out) -> None:
    t = acc.total
    scope = "the whole decisions topic" if acc.complete else "a time range of the decisions topic"
    print(f"reconciled {scope}: {t.received} decision records received, {t.granted} granted = {t.filed} filed "
          f"+ {t.pending} pending + {t.missing} missing; {t.not_filed} not eligible or review required; "
          f"{t.dead_lettered} dead-lettered records; {t.duplicates} duplicates; {t.replayed} replayed", file=out)
    print(f"{'COURT':<10} {'RECEIVED':>9} {'GRANTED':>8} {'FILED':>7} {'PENDING':>8} {'NOT FILED':>9} "
          f"{'DLQ':>5} {'MISSING':>8} {'DOUBLED':>8} {'EXPECTED':>8}", file=out)
    for court, c in sorted(acc.courts.items()):
        print(f"{safe_text(court, 10):<10} {c.received:>9} {c.granted:>8} {c.filed:>7} {c.pending:>8} "
              f"{c.not_filed:>9} {c.dead_lettered:>5} {c.missing:>8} {c.doubled:>8} {c.expected_mismatch:>8}", file=out)
    for reason, r in reconcile.dead_letters(acc.dead.values()).items():
        print(f"dead-lettered {safe_text(reason, 60)}: {r['records']} record(s) "
              f"{safe_text(' '.join(r['decision_ids'][:10]), 400)}", file=out)
    for w in acc.warnings:
        print("WARNING " + safe_text(json.dumps(w, ensure_ascii=True), 400), file=out)
    for p in acc.problems:
        detail = ", ".join(f"{k} {v}" for k, v in p.detail.items() if v is not None)
        print(f"{p.kind.upper()} {safe_text(p.decision_id or '-', 130)} court {safe_text(p.court, 40)}: "
              f"{safe_text(detail, 400)}", file=out)
    print("OK: every decision is accounted for" if acc.ok else
          f"FAILED: {len(acc.problems)} problem(s): " + ", ".join(
              f"{n} {k}" for k, n in sorted({p.kind: sum(1 for q in acc.problems if q.kind == p.kind)
                                             for p in acc.problems}.items())), file=out)


def report_command(settings: Settings, path, rng: Range = Range(), out=sys.stdout) -> int:
    from service import report

    acc = gather(settings, rng)
    path.write_text(report.html_page(acc), encoding="utf-8")
    print(f"wrote {path} ({'no problem' if acc.ok else f'{len(acc.problems)} problem(s)'})", file=out)
    return 0 if acc.ok else 1
