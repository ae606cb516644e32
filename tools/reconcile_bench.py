"""How long `reliefdocs reconcile` takes for a county: 58,000 decisions (the benchmark's size).

    python -m tools.reconcile_bench [--decisions 58000] [--no-kafka]

Writes 58,000 synthetic decisions (tools/sample.py; one in 13 not granted) in 116 bundles of
500 as manifests and ledger entries in a folder store, publishes the decisions to a local tansu
broker (tools/devstack.py) with the group's offsets committed at the end, and times what the
command does: read the topic and summarize each record, read the DLQ and the offsets, read every
manifest and ledger entry (concurrently), and the accounting. With --no-kafka the records are
summarized from memory instead of read from the broker.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from service import campaign, reconcile
from service.events import GRANTED
from service.store import FileStore
from tools import sample

PER_BUNDLE = 500


def synthesize(n: int, store: FileStore) -> list[tuple[str, bytes]]:
    """n decisions (court LA), their manifests and ledger entries; returns (key, value) records."""
    rng = random.Random(58)
    records, batch, bundle_no = [], [], 0
    for i in range(n):
        relief = rng.choice(["not_eligible", "review_required"]) if i % 13 == 12 else None
        e = sample.decision(rng, i, "LA", None, relief)
        records.append(("LA", json.dumps(e).encode()))
        if e["data"]["relief"] in GRANTED:
            batch.append(e["data"])
        if len(batch) == PER_BUNDLE or (i == n - 1 and batch):
            _store_bundle(store, f"{bundle_no:032x}", batch)
            bundle_no, batch = bundle_no + 1, []
    return records


def _store_bundle(store: FileStore, bundle_id: str, batch: list[dict]) -> None:
    rows = [{"decision_id": d["decision_id"], "case_number": d["case"]["number"], "relief": d["relief"],
             "exhibit": "A"} for d in batch]
    key = f"LA/LA-auto/{bundle_id}/manifest.json"
    manifest = {"bundle_id": bundle_id, "court_code": "LA", "batch_id": "LA-auto", "volume": 1,
                "created_at": "2026-11-24T10:00:00.000Z", "decisions": rows, "expected_count": None,
                "documents": [{"role": "exhibit", "key": key.replace("manifest.json", "exhibit-a.pdf"), "pages": 40,
                               "first_page": 9, "confidential": True}], "closed_by": "max_cases"}
    store.put_bytes(key, json.dumps(manifest).encode(), "application/json")
    entry = {"bundle_id": bundle_id, "court_code": "LA", "batch_id": "LA-auto", "volume": 1,
             "decisions": [d["decision_id"] for d in batch], "cases": [d["case"]["number"] for d in batch],
             "manifest": key}
    store.put_bytes(f"_ledger/LA/{bundle_id}.json", json.dumps(entry).encode(), "application/json")


def with_kafka(records: list[tuple[str, bytes]], folder: Path) -> tuple[float, reconcile.Accounting]:
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.structs import OffsetAndMetadata, TopicPartition

    from service import broker as brokers
    from service.config import load
    from tools import devstack

    b = devstack.Broker(log=folder / "broker.log").start()
    try:
        env = {"RELIEFDOCS_KAFKA_BOOTSTRAP_SERVERS": b.bootstrap, "RELIEFDOCS_STORAGE_URL": f"file://{folder}/store"}
        settings = load(env=env)
        admin = KafkaAdminClient(bootstrap_servers=b.bootstrap)
        admin.create_topics([NewTopic(t, 1, 1) for t in (settings.decisions_topic, settings.dlq_topic)])
        admin.close()
        prod = KafkaProducer(bootstrap_servers=b.bootstrap, acks="all", linger_ms=20, batch_size=512 * 1024)
        for key, value in records:
            prod.send(settings.decisions_topic, key=key.encode(), value=value)
        prod.flush()
        prod.close()
        c = brokers.consumer(settings, group_id=settings.group, client_id="bench", enable_auto_commit=False)
        c.commit({TopicPartition(settings.decisions_topic, 0): OffsetAndMetadata(len(records), "", -1)})
        c.close()
        start = time.monotonic()
        acc = campaign.gather(settings)
        return time.monotonic() - start, acc
    finally:
        b.stop()


def from_memory(records: list[tuple[str, bytes]], store: FileStore) -> tuple[float, reconcile.Accounting]:
    start = time.monotonic()
    reads = [reconcile.summarize(0, i, 0, k.encode(), v, []) for i, (k, v) in enumerate(records)]
    acc = reconcile.account(reads, [], {0: len(records)}, campaign.manifests(store), campaign.ledger_entries(store))
    return time.monotonic() - start, acc


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--decisions", type=int, default=58000)
    p.add_argument("--no-kafka", action="store_true")
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="reconcile-bench-") as tmp:
        folder = Path(tmp)
        store = FileStore(f"file://{folder}/store")
        records = synthesize(a.decisions, store)
        seconds, acc = from_memory(records, store) if a.no_kafka else with_kafka(records, folder)
    t = acc.total
    print(f"{a.decisions} decisions reconciled in {seconds:.1f} s ({'from memory' if a.no_kafka else 'from tansu'}): "
          f"received {t.received}, granted {t.granted}, filed {t.filed}, not filed {t.not_filed}, "
          f"problems {len(acc.problems)}")


if __name__ == "__main__":
    main()
