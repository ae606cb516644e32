"""`make run`: the main job on embedded local services, end to end, then a short summary.

Starts a local Kafka-protocol broker and a local object store (SeaweedFS, data in the run's
folder, the worker's credentials limited to the bucket's prefix), publishes synthetic decisions for
two courts (one explicit batch with its batch-closed event, one court batched by the
service, a few bad records), runs `reliefdocs worker --exit-when-idle`, prints what was
filed, copies the bundle PDFs to ./out/ so a person can open them, and stops what it started.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer

from tools import devstack, sample

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "out"


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="reliefdocs-run-"))
    broker = devstack.Broker(log=tmp / "broker.log").start()
    s3, scoped = devstack.object_store(tmp, "reliefdocs")  # data in tmp/s3; the worker's keys stop at filings/
    try:
        env = {**os.environ, **s3.env(), **scoped.env(), "RELIEFDOCS_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
               "RELIEFDOCS_STORAGE_URL": "s3://reliefdocs/filings", "RELIEFDOCS_KAFKA_SESSION_TIMEOUT_MS": "6000",
               "RELIEFDOCS_KAFKA_HEARTBEAT_INTERVAL_MS": "1000", "RELIEFDOCS_BATCH_LINGER_SECONDS": "30",
               "RELIEFDOCS_WORK_DIR": str(tmp / "work")}
        events = sample.generate(80, ["LA", "SF"])
        path = tmp / "decisions.jsonl"
        path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events), encoding="utf-8")
        exe = str(Path(sys.executable).parent / "reliefdocs")
        print(f"== publishing {len(events)} sample events (2 courts) and 2 malformed records")
        subprocess.run([exe, "publish", str(path)], env=env, check=True)
        prod = KafkaProducer(bootstrap_servers=broker.bootstrap)
        prod.send("eligibility.decided", key=b"LA", value=b"{not json")
        prod.send("eligibility.decided", key=b"SF", value=json.dumps({"specversion": "1.0", "id": "x", "source": "s",
                                                                    "type": "relief.eligibility.decided.v1",
                                                                    "data": {"decision_id": "bad-1"}}).encode())
        prod.flush()
        prod.close()
        print("== running: reliefdocs worker --exit-when-idle 5 (logs in", tmp / "worker.log", ")")
        t = time.monotonic()
        with open(tmp / "worker.log", "wb") as log:
            rc = subprocess.run([exe, "worker", "--exit-when-idle", "5"], env=env, stderr=log).returncode
        print(f"   worker exited {rc} after {time.monotonic() - t:.1f} s")
        summarize(s3, broker)
        return rc
    finally:
        broker.stop()
        s3.stop()


def summarize(s3: devstack.S3, broker: devstack.Broker) -> None:
    client = s3.client()
    keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket="reliefdocs", Prefix="filings/")
            for o in page.get("Contents", [])]
    manifests = [json.loads(client.get_object(Bucket="reliefdocs", Key=k)["Body"].read())
                 for k in keys if k.endswith("/manifest.json")]
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    print(f"== {len(manifests)} bundles, {sum(len(m['decisions']) for m in manifests)} cases filed")
    for m in sorted(manifests, key=lambda m: (m["court_code"], m["batch_id"], m["volume"])):
        bundle = next(d for d in m["documents"] if d["role"] == "bundle")
        local = OUT / f"{m['court_code']}-{m['batch_id']}-v{m['volume']}.pdf"
        client.download_file("reliefdocs", "filings/" + bundle["key"], str(local))
        public = next((d for d in m["documents"] if d["role"] == "bundle_public"), None)
        if public:
            client.download_file("reliefdocs", "filings/" + public["key"], str(local.with_suffix(".public.pdf")))
        print(f"   {m['court_code']:4} {m['batch_id']:32} vol {m['volume']}  {len(m['decisions']):4} cases  "
              f"{bundle['pages']:4} pages  closed by {m.get('closed_by')}  -> {local.relative_to(ROOT)}")
        papers = local.with_suffix("")  # the papers as filed, each numbered from 1, in order of submission
        papers.mkdir()
        for n, paper in enumerate(m.get("efiling", []), 1):
            name = f"{n}-{paper['key'].rsplit('/', 1)[1]}"
            client.download_file("reliefdocs", "filings/" + paper["key"], str(papers / name))
            print(f"        {n}. {paper['type']:32} {paper['pages']:4} pages  "
                  f"{'CONFIDENTIAL ' if paper['confidential'] else ''}-> {(papers / name).relative_to(ROOT)}")
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=3000)
    c.subscribe(["filing.bundle.ready", "eligibility.decided.dlq"])
    notes, dead = 0, []
    for rec in c:
        if rec.topic == "filing.bundle.ready":
            notes += 1
        else:
            dead.append(dict(rec.headers).get("reliefdocs.error.reason", b"?").decode())
    c.close()
    print(f"== {notes} notifications on filing.bundle.ready; {len(dead)} dead letters: {', '.join(sorted(dead))}")
    print(f"== open the PDFs in {OUT}/")


if __name__ == "__main__":
    raise SystemExit(main())
