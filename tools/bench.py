"""`make bench`: a synthetic county run, broker to S3, measured against LibreOffice alone.

1. Publishes BENCH_DECISIONS decisions (default 58,000): one large court (LA, 85 %) in a few
   explicit batches closed by batch-closed events, plus small courts batched by the service.
2. Runs BENCH_WORKERS workers (default 2, one per core) with --exit-when-idle and measures
   wall time from their start to the last bundle stored, decisions/s, pages/s, peak memory
   of each worker process and of LibreOffice, and per-stage times from the workers' metrics.
3. Reference, in the same run: LibreOffice alone converting the same documents (the DOCX
   files of every batch, one `soffice` call per batch, as many processes at once as the
   workers had converters), and a single LibreOffice PDF of one batch's pages for the
   size-per-page comparison.
4. Scale-out: the same job at BENCH_SCALE_DECISIONS (default 10 % of the run) with 1 worker
   and with 2 workers.
Writes bench-results/latest.json and adds a line to the README's benchmark history.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tools import devstack, sample

ROOT = Path(__file__).resolve().parent.parent
EXE = str(Path(sys.executable).parent / "reliefdocs")


def county(n: int, seed: int = 58) -> list[dict]:
    """85 % one large court in explicit batches of about 5,000; the rest small courts, implicit."""
    import random

    rng = random.Random(seed)
    big = int(n * 0.85)
    small_courts = ["SF", "SD", "ALA"]
    out, closes = [], {}
    per_batch = 5000
    for i in range(n):
        if i < big:
            batch = f"LA-2026-11-24-{i // per_batch:03d}"
            out.append(sample.decision(rng, i, "LA", batch))
            closes[batch] = closes.get(batch, 0) + 1
        else:
            out.append(sample.decision(rng, i, small_courts[i % 3], None))
        if i < big and (i + 1) % per_batch == 0 or i == big - 1:
            b = f"LA-2026-11-24-{i // per_batch:03d}"
            out.append(sample.closed("LA", b, closes[b]))
    return out


class Sampler(threading.Thread):
    """Peak RSS of the worker processes and of their LibreOffice children, and their metrics."""

    def __init__(self, pids: list[int], ports: list[int]):
        super().__init__(daemon=True)
        self.pids, self.ports = pids, ports
        self.peak_worker = 0
        self.peak_soffice = 0
        self.metrics: dict[int, str] = {}
        self.history: list[tuple[float, float]] = []  # (monotonic time, decisions filed by all workers)
        self.stop = threading.Event()

    @staticmethod
    def rss(pid: int) -> int:
        try:
            for line in open(f"/proc/{pid}/status"):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak_worker = max([self.peak_worker] + [self.rss(p) for p in self.pids])
            soffice = subprocess.run(["pgrep", "-f", "soffice.bin"], capture_output=True, text=True).stdout.split()
            self.peak_soffice = max([self.peak_soffice] + [self.rss(int(p)) for p in soffice])
            for port in self.ports:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                        self.metrics[port] = r.read().decode()
                except OSError:
                    pass
            self.history.append((time.monotonic(), filed(self.metrics.values())))
            self.stop.wait(0.5)


def filed(texts) -> float:
    return sum(float(x) for t in texts for x in re.findall(r"reliefdocs_decisions_filed_total\{[^}]*\} (\S+)", t))


def stage_seconds(texts: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for t in texts:
        for m in re.finditer(r'reliefdocs_stage_duration_seconds_sum\{stage="(\w+)"\} (\S+)', t):
            out[m.group(1)] = out.get(m.group(1), 0) + float(m.group(2))
    return {k: round(v, 1) for k, v in out.items()}


def run_job(events: list[dict], workers: int, tmp: Path, label: str) -> dict:
    broker = devstack.Broker(log=tmp / f"{label}-broker.log").start()
    s3 = devstack.S3(log=tmp / f"{label}-s3.log").start()
    try:
        s3.create_bucket("bench")
        env = {**os.environ, **s3.env(), "RELIEFDOCS_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
               "RELIEFDOCS_STORAGE_URL": "s3://bench/filings", "RELIEFDOCS_KAFKA_SESSION_TIMEOUT_MS": "6000",
               "RELIEFDOCS_KAFKA_HEARTBEAT_INTERVAL_MS": "1000", "RELIEFDOCS_LOG_LEVEL": "WARNING",
               "RELIEFDOCS_WORK_DIR": str(tmp / f"{label}-work")}
        from kafka.admin import KafkaAdminClient, NewTopic

        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        admin.create_topics([NewTopic(t, 4, 1) for t in ("eligibility.decided", "filing.bundle.ready",
                                                         "eligibility.decided.dlq")])
        admin.close()
        path = tmp / f"{label}.jsonl"
        path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events), encoding="utf-8")
        t = time.monotonic()
        subprocess.run([EXE, "publish", str(path)], env=env, check=True, stdout=subprocess.DEVNULL)
        publish_s = time.monotonic() - t
        ports: list[int] = []
        while len(ports) < workers:  # distinct: the OS may hand the same free port out twice
            port = devstack.free_port()
            if port not in ports:
                ports.append(port)
        idle = 5
        t0 = time.monotonic()
        procs = [subprocess.Popen([EXE, "worker", "--exit-when-idle", str(idle)],
                                  env={**env, "RELIEFDOCS_METRICS_PORT": str(port)},
                                  stderr=open(tmp / f"{label}-worker{i}.log", "wb")) for i, port in enumerate(ports)]
        sampler = Sampler([p.pid for p in procs], ports)
        sampler.start()
        while any(p.poll() is None for p in procs):
            time.sleep(0.5)
        exit_s = time.monotonic() - t0
        sampler.stop.set()
        sampler.join()
        texts = list(sampler.metrics.values())
        total = filed(texts)
        # wall time: from the workers' start to the moment the last decision was filed
        done_at = next((t for t, n in sampler.history if n >= total), time.monotonic())
        pages = sum(float(x) for t in texts for x in re.findall(r"^reliefdocs_pages_written_total (\S+)$", t, re.M))
        bundles = sum(float(x) for t in texts for x in re.findall(r"reliefdocs_bundles_stored_total\{[^}]*\} (\S+)", t))
        wall = max(0.1, done_at - t0)
        checked = check_store(s3, events)
        return {**checked, "workers": workers, "decisions_published": sum(1 for e in events if e["type"].endswith("decided.v1")),
                "decisions_filed": int(total), "bundles": int(bundles), "pages": int(pages),
                "publish_seconds": round(publish_s, 1), "wall_seconds": round(wall, 1),
                "process_exit_seconds": round(exit_s, 1), "idle_wait_seconds": idle,
                "decisions_per_second": round(total / wall, 1), "pages_per_second": round(pages / wall, 1),
                "peak_worker_rss_mib": round(sampler.peak_worker / 2**20),
                "peak_libreoffice_rss_mib": round(sampler.peak_soffice / 2**20),
                "stage_seconds_summed_over_threads": stage_seconds(texts),
                "rc": [p.returncode for p in procs]}
    finally:
        broker.stop()
        s3.stop()


def check_store(s3: devstack.S3, events: list[dict]) -> dict:
    """From S3 alone: bytes per page of the complete bundles, and every granted decision in
    exactly one bundle (the benchmark never trades a guarantee for speed)."""
    import boto3

    c = boto3.client("s3", endpoint_url=s3.endpoint, aws_access_key_id="local", aws_secret_access_key="local",
                     region_name="us-east-1")
    size = pages = 0
    seen: dict[str, int] = {}
    for page in c.get_paginator("list_objects_v2").paginate(Bucket="bench", Prefix="filings/"):
        for o in page.get("Contents", []):
            if o["Key"].endswith("manifest.json"):
                m = json.loads(c.get_object(Bucket="bench", Key=o["Key"])["Body"].read())
                b = next(d for d in m["documents"] if d["role"] == "bundle")
                size, pages = size + b["bytes"], pages + b["pages"]
                for d in m["decisions"]:
                    seen[d["decision_id"]] = seen.get(d["decision_id"], 0) + 1
    granted = {e["data"]["decision_id"] for e in events if e["type"].endswith("decided.v1")
               and e["data"]["relief"] in ("dismiss_and_seal", "reduce_to_misdemeanor", "redesignate_infraction")}
    return {"bundle_bytes_per_page": round(size / pages) if pages else 0,
            "granted_missing": len(granted - set(seen)), "filed_twice": sum(1 for n in seen.values() if n > 1),
            "filed_not_granted": len(set(seen) - granted)}


def reference(events: list[dict], batches: int, converters: int, tmp: Path) -> dict:
    """LibreOffice alone: the same documents, one soffice call per batch, `converters` at once."""
    from service import render
    from service.convert import LibreOffice
    from service.templates import batch_of
    from service.events import Decision

    decided = [e["data"] for e in events if e["type"].endswith("decided.v1") and e["data"]["relief"] in
               ("dismiss_and_seal", "reduce_to_misdemeanor", "redesignate_infraction")]
    size = max(1, len(decided) // max(1, batches))
    work = tmp / "reference"
    court = render.Court(os.environ.get("RELIEFDOCS_TEMPLATES_DIR") or ROOT / "templates", "LA")
    sets = []
    for i in range(batches):
        chunk = decided[i * size:(i + 1) * size] or decided[:size]
        sb = batch_of([Decision(d["decision_id"], "LA", "REF", d["relief"], d) for d in chunk])
        docs = render.plan(sb, court, f"ref{i}", 200)
        sets.append([render.render(d, court, work / f"b{i}" / "docx") for d in docs])
    lo = LibreOffice("soffice", work, converters, 1800)
    t = time.monotonic()
    with ThreadPoolExecutor(converters) as pool:
        pdfs = list(pool.map(lambda i: lo.convert(sets[i], work / f"b{i}" / "pdf"), range(len(sets))))
    wall = time.monotonic() - t
    from pypdf import PdfReader

    pages = sum(len(PdfReader(str(p)).pages) for group in pdfs for p in group)
    # one LibreOffice PDF of one batch's pages, for bytes per page
    one = pdfs[0]
    single_bytes = sum(p.stat().st_size for p in one)
    single_pages = sum(len(PdfReader(str(p)).pages) for p in one)
    return {"batches": len(sets), "pages": pages, "wall_seconds": round(wall, 1),
            "pages_per_second": round(pages / wall, 1),
            "libreoffice_bytes_per_page": round(single_bytes / single_pages)}


def main() -> int:
    n = int(os.environ.get("BENCH_DECISIONS", "58000"))
    workers = int(os.environ.get("BENCH_WORKERS", "2"))
    scale_n = int(os.environ.get("BENCH_SCALE_DECISIONS", str(max(1000, n // 10))))
    tmp = Path(tempfile.mkdtemp(prefix="reliefdocs-bench-"))
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, {round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB, {platform.python_implementation()} {platform.python_version()}"
    print(f"== reliefdocs bench: {n} decisions, {workers} workers; machine: {machine}; scratch {tmp}")
    events = county(n)
    main_run = run_job(events, workers, tmp, "county")
    print(json.dumps(main_run, indent=2))
    ref = reference(events, main_run["bundles"] or 1, 2, tmp)
    print("== LibreOffice alone:", json.dumps(ref))
    scale = {}
    for w in (1, 2):
        r = run_job(county(scale_n, seed=7), w, tmp, f"scale{w}")
        scale[w] = {"wall_seconds": r["wall_seconds"], "decisions_per_second": r["decisions_per_second"],
                    "rc": r["rc"], "granted_missing": r["granted_missing"], "filed_twice": r["filed_twice"]}
        print(f"== scale-out, {w} worker(s), {scale_n} decisions:", json.dumps(scale[w]))
    result = {"date": time.strftime("%Y-%m-%d"), "machine": machine, "run": main_run, "libreoffice_alone": ref,
              "ratio_to_libreoffice": round(main_run["wall_seconds"] / max(0.1, ref["wall_seconds"]), 2),
              "scale_out": {"decisions": scale_n, "1_worker": scale[1], "2_workers": scale[2],
                            "speedup": round(scale[1]["wall_seconds"] / max(0.1, scale[2]["wall_seconds"]), 2)}}
    result["bundle_size_per_page_ratio"] = round(main_run["bundle_bytes_per_page"] /
                                                 max(1, ref["libreoffice_bytes_per_page"]), 2)
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(result, indent=2))
    line = (f"| {result['date']} | {machine} | {n} | {main_run['wall_seconds']} s | "
            f"{main_run['decisions_per_second']} | {main_run['pages_per_second']} | {result['ratio_to_libreoffice']}x | "
            f"{main_run['peak_worker_rss_mib']} MiB | {result['scale_out']['speedup']}x |")
    print("== summary:", line)
    shutil.rmtree(tmp, ignore_errors=True)
    ok = all(rc == 0 for rc in main_run["rc"]) and not (main_run["granted_missing"] or main_run["filed_twice"]
                                                        or main_run["filed_not_granted"])
    ok = ok and all(all(rc == 0 for rc in r["rc"]) and not (r["granted_missing"] or r["filed_twice"])
                    for r in scale.values())
    if not ok:
        print("== FAILED: exit codes or exactly-once check (see granted_missing, filed_twice); "
              "not added to the README's history")
        return 1
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    marker = "<!-- bench-history -->"
    if marker in text:
        readme.write_text(text.replace(marker, marker + "\n" + line), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
