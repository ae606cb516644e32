"""`make bench`: a synthetic county run, broker to S3, measured against LibreOffice alone.

1. Publishes BENCH_DECISIONS decisions (default 58,000): one large court (LA, 85 %) in a few
   explicit batches closed by batch-closed events, plus small courts batched by the service.
2. Runs BENCH_WORKERS workers (default 2, one per core) with --exit-when-idle and measures
   wall time from their start to the last bundle stored, decisions/s, pages/s, peak memory
   of each worker process and of LibreOffice, per-stage times from the workers' metrics, and
   the CPU seconds of the workers, their LibreOffice processes, the broker and the S3 server
   (what the run costs the machine: on a machine whose cores LibreOffice alone keeps busy,
   the wall time cannot be under the run's CPU divided by the cores).
3. References, in the same run, LibreOffice alone converting the same documents (rendered with
   the service's code, not timed): (a) THE reference, the fastest LibreOffice does those pages:
   warm processes, as many as the workers keep (BENCH_WORKERS x RELIEFDOCS_CONVERTERS), each
   batch's documents combined as the service combines them (service/combine.py; the motion
   alone), so the run's ratio to it is what the service adds; (b) the old one, printed beside
   it: a cold `soffice` start per batch converting its documents one by one, 2 at once
   (BENCH_COLD_REFERENCE=0 skips it: it takes about as long as the run; bench-statewide does).
4. Size per page: the largest stored bundle against ONE LibreOffice PDF of the same pages (the
   bundle's documents rebuilt from the log, combined into one DOCX, converted once), and
   against the sum of LibreOffice's per-document PDFs of those documents ("size_per_page").
5. Exhibit rows sweep ("exhibit_sweep"): exhibits of BENCH_SWEEP_ROWS rows (default
   1000,4000,16000; 0 or empty skips it), rendered with the service's own code and
   RELIEFDOCS_EXHIBIT_CHUNK_ROWS and converted by one warm LibreOffice, timing render and
   convert: the rows as the service files them (documents of at most RELIEFDOCS_BATCH_MAX_CASES
   rows), where milliseconds per row should not grow with the rows; the rows in ONE document
   (up to BENCH_SWEEP_ONE_DOCUMENT_MAX rows, default 4000), where they do; and that document as
   one un-chunked table (up to BENCH_SWEEP_UNCHUNKED_MAX rows, default 4000; 0 skips it).
6. Scale-out: a ONE-court county of BENCH_SCALE_DECISIONS (default 12,000, at most the run's
   size, or 10 % of the run if more; 0 skips it),
   and a mixed county of as many, each 1 worker pinned to one core against 2 workers pinned to
   a core each (os.sched_setaffinity, inherited by their LibreOffice processes). A court's
   decisions are composed by one worker; its sealed batches are filed by any (the work topic).
7. Statewide: BENCH_COUNTIES=58 (make bench-statewide: 227,650 decisions) spreads the decisions
   over LA (about 25 %, explicit batches) and 57 synthetic courts (C01..C57, weight 1/k,
   batched by the service), each given a templates folder in a scratch copy of templates/ (as
   production has one per court; RELIEFDOCS_ALLOW_DEFAULT_COURT stays off, so a forgotten court
   would be dead-lettered and fail the exactly-once check). Every run prints the decisions per
   second in each tenth of the run and the last tenth against the first, and peak worker RSS.
Writes bench-results/latest.json (BENCH_RESULTS_FILE to write elsewhere) and adds a line to the
benchmark history in docs/performance.md (never to the README) when the exactly-once check
passes, unless BENCH_NO_HISTORY=1 (for trial runs at a small size).
"""

from __future__ import annotations

import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tools import devstack, proctree, sample

ROOT = Path(__file__).resolve().parent.parent
HISTORY_PAGE = ROOT / "docs" / "performance.md"  # the only page a run writes to
HISTORY_MARKER = "<!-- bench-history: the table below; newest line first -->"
EXE = str(Path(sys.executable).parent / "reliefdocs")


def county(n: int, seed: int = 58, share: float = 0.85) -> list[dict]:
    """`share` (85 %) one large court in explicit batches of about 5,000; the rest small courts,
    implicit. share=1.0 is a one-court county."""
    import random

    rng = random.Random(seed)
    big = int(n * share)
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


STATEWIDE_LA_SHARE = 0.25  # Los Angeles' share of the state's decisions (about its share of the population)


def statewide_courts(counties: int) -> list[str]:
    """LA and counties-1 synthetic court codes (C01, C02, ...)."""
    return ["LA", *(f"C{k:02d}" for k in range(1, counties))]


def statewide(n: int, counties: int = 58, seed: int = 58) -> list[dict]:
    """n decisions over `counties` courts: LA about 25 % in explicit batches of about 5,000, the
    other (synthetic) courts the rest, the k-th with weight 1/k (a few large, many small),
    batched by the service."""
    import random

    rng = random.Random(seed)
    others = statewide_courts(counties)[1:]
    for code in others:  # sample.decision names the court from sample.COURTS
        sample.COURTS.setdefault(code, (f"Superior Court of California, County {code}", f"County {code}"))
    weights = [1 / k for k in range(1, len(others) + 1)]
    scale = (1 - STATEWIDE_LA_SHARE) / sum(weights)
    codes = ["LA", *others]
    shares = [STATEWIDE_LA_SHARE, *(w * scale for w in weights)]
    out, la = [], 0
    per_batch = 5000
    for i, code in enumerate(rng.choices(codes, shares, k=n)):
        if code == "LA":
            batch = f"LA-2026-11-24-{la // per_batch:03d}"
            out.append(sample.decision(rng, i, "LA", batch))
            la += 1
            if la % per_batch == 0:
                out.append(sample.closed("LA", batch, per_batch))
        else:
            out.append(sample.decision(rng, i, code, None))
    if la % per_batch:
        out.append(sample.closed("LA", f"LA-2026-11-24-{la // per_batch:03d}", la % per_batch))
    return out


def court_templates(codes: list[str], tmp: Path) -> Path:
    """A copy of templates/ with a folder (court.json) for each court code that has none: the
    worker files only courts with a templates folder, as in production (no
    RELIEFDOCS_ALLOW_DEFAULT_COURT: a court the bench forgot is dead-lettered and the
    exactly-once check fails)."""
    root = tmp / "templates"
    shutil.copytree(ROOT / "templates", root, dirs_exist_ok=True)
    for code in codes:
        folder = root / "courts" / code
        if not folder.is_dir():
            folder.mkdir(parents=True)
            (folder / "court.json").write_text(json.dumps({"short_name": f"County {code}", "case_orders": False}),
                                               encoding="utf-8")
    return root


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (all its threads), 0 if it is gone."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


class CpuMeter:
    """CPU seconds used by groups of processes while it runs: sampled, so a process that ends
    between two samples loses at most its last interval. Processes running before the meter
    starts (the broker, the S3 server) count only what they use after."""

    def __init__(self, fixed: dict[str, int]):
        self.fixed = fixed
        self.base = {pid: cpu_seconds(pid) for pid in fixed.values()}
        self.seen: dict[int, tuple[str, float]] = {}

    def sample(self, groups: dict[str, list[int]]) -> None:
        for group, pids in [*((g, [p]) for g, p in self.fixed.items()), *groups.items()]:
            for pid in pids:
                used = cpu_seconds(pid) - self.base.get(pid, 0.0)
                if used > self.seen.get(pid, (group, 0.0))[1]:
                    self.seen[pid] = (group, used)

    def totals(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for group, used in self.seen.values():
            out[group] = out.get(group, 0.0) + used
        return {g: round(v, 1) for g, v in sorted(out.items())}


class Sampler(threading.Thread):
    """Peak RSS of the worker processes and of their LibreOffice children, their metrics, and
    the CPU time of workers, LibreOffice, the broker and the S3 server."""

    def __init__(self, pids: list[int], ports: list[int], fixed: dict[str, int] | None = None):
        super().__init__(daemon=True)
        self.pids, self.ports = pids, ports
        self.cpu = CpuMeter(fixed or {})
        self.peak_soffice = 0
        self.metrics: dict[int, str] = {}
        self.history: list[tuple[float, float]] = []  # (monotonic time, decisions filed by all workers)
        self.rss_history: list[tuple[float, int]] = []  # (monotonic time, the largest worker RSS then)
        self.stop = threading.Event()

    @property
    def peak_worker(self) -> int:
        return max((r for _, r in self.rss_history), default=0)

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
            self.rss_history.append((time.monotonic(), max([0] + [self.rss(p) for p in self.pids])))
            started = [d for pid in self.pids for d in proctree.descendants(pid)]  # guards, bridges, LibreOffice
            soffice = [d.pid for d in started if d.name == "soffice.bin"]
            self.peak_soffice = max([self.peak_soffice] + [self.rss(p) for p in soffice])
            self.cpu.sample({"workers": self.pids, "libreoffice": [d.pid for d in started]})
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


def per_stage(seconds: dict[str, float], decisions: float, pages: float) -> dict[str, dict]:
    """Each stage's seconds (summed over the threads that ran it) and the decisions and pages
    per second it would sustain on its own at that cost (validate and batch are per record,
    so they have no pages of their own; flush is the whole filing of a batch)."""
    out = {}
    for stage, s in seconds.items():
        out[stage] = {"seconds": s, "decisions_per_second": round(decisions / s) if s else None,
                      "pages_per_second": round(pages / s, 1) if s and stage not in ("validate", "batch") else None}
    return out


def pinned(core: int):
    """A Popen preexec_fn: the worker on one core, and so every process it starts (LibreOffice
    inherits the affinity)."""
    cores = sorted(os.sched_getaffinity(0))
    return lambda: os.sched_setaffinity(0, {cores[core % len(cores)]})


def over_time(history: list[tuple[float, float]], t0: float, done_at: float,
              rss: list[tuple[float, int]] | None = None) -> dict:
    """Decisions per second in each tenth of the run (from the sampled count of decisions filed),
    and the last tenth against the first: a run that slows as it goes (memory, a growing
    state) shows it there; with `rss`, the largest worker RSS in each tenth (MiB): a state that
    grows with the run shows there."""
    wall = max(0.1, done_at - t0)

    def filed_at(t: float) -> float:
        return max([n for at, n in history if at <= t], default=0.0)

    tenths = [round((filed_at(t0 + wall * (k + 1) / 10) - filed_at(t0 + wall * k / 10)) / (wall / 10), 1)
              for k in range(10)]
    out = {"decisions_per_second_by_tenth": tenths,
           "last_to_first_tenth": round(tenths[-1] / tenths[0], 2) if tenths[0] else None}
    if rss is not None:
        out["peak_worker_rss_mib_by_tenth"] = [
            round(max([r for at, r in rss if t0 + wall * k / 10 <= at < t0 + wall * (k + 1) / 10], default=0) / 2**20)
            for k in range(10)]
    return out


def run_job(events: list[dict], workers: int, tmp: Path, label: str, env_extra: dict | None = None,
            pin: bool = False) -> dict:
    """The events published, then `workers` workers until idle (with pin, worker i and its
    LibreOffice processes on core i)."""
    broker = devstack.Broker(log=tmp / f"{label}-broker.log").start()
    s3, scoped = devstack.object_store(tmp / f"{label}-store", "bench", log=tmp / f"{label}-s3.log")
    try:
        env = {**os.environ, **s3.env(), **scoped.env(), "RELIEFDOCS_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
               "RELIEFDOCS_STORAGE_URL": "s3://bench/filings", "RELIEFDOCS_KAFKA_SESSION_TIMEOUT_MS": "6000",
               "RELIEFDOCS_KAFKA_HEARTBEAT_INTERVAL_MS": "1000", "RELIEFDOCS_LOG_LEVEL": "WARNING",
               "RELIEFDOCS_WORK_DIR": str(tmp / f"{label}-work"), **(env_extra or {})}
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
                                  stderr=open(tmp / f"{label}-worker{i}.log", "wb"),
                                  preexec_fn=pinned(i) if pin else None) for i, port in enumerate(ports)]
        sampler = Sampler([p.pid for p in procs], ports, {"broker": broker.proc.pid, "s3 server": s3.proc.pid})
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
        checked = check_store(s3, events, tmp / f"{label}-largest-bundle")
        return {**checked, "workers": workers, "decisions_published": sum(1 for e in events if e["type"].endswith("decided.v1")),
                "decisions_filed": int(total), "bundles": int(bundles), "pages": int(pages),
                "publish_seconds": round(publish_s, 1), "wall_seconds": round(wall, 1),
                "process_exit_seconds": round(exit_s, 1), "idle_wait_seconds": idle,
                "decisions_per_second": round(total / wall, 1), "pages_per_second": round(pages / wall, 1),
                "peak_worker_rss_mib": round(sampler.peak_worker / 2**20),
                "throughput_over_time": over_time(sampler.history, t0, done_at, sampler.rss_history), "pinned": pin,
                "peak_libreoffice_rss_mib": round(sampler.peak_soffice / 2**20),
                "stage_seconds_summed_over_threads": stage_seconds(texts),
                "per_stage": per_stage(stage_seconds(texts), total, pages),
                "cpu_seconds": sampler.cpu.totals(),
                "rc": [p.returncode for p in procs]}
    finally:
        broker.stop()
        s3.stop()


def check_store(s3: devstack.S3, events: list[dict], keep: Path | None = None) -> dict:
    """From S3 alone: bytes per page of the complete bundles, and every granted decision in
    exactly one bundle (the benchmark never trades a guarantee for speed). With `keep`, the
    largest bundle (most pages) and its manifest are copied there for the size comparison."""
    c = s3.client()
    size = pages = 0
    seen: dict[str, int] = {}
    largest: tuple[int, str, dict] | None = None
    for page in c.get_paginator("list_objects_v2").paginate(Bucket="bench", Prefix="filings/"):
        for o in page.get("Contents", []):
            if o["Key"].endswith("manifest.json"):
                m = json.loads(c.get_object(Bucket="bench", Key=o["Key"])["Body"].read())
                b = next(d for d in m["documents"] if d["role"] == "bundle")
                size, pages = size + b["bytes"], pages + b["pages"]
                if largest is None or b["pages"] > largest[0]:  # the manifest's keys are under the store's prefix
                    largest = (b["pages"], o["Key"][:-len("manifest.json")] + b["key"].rsplit("/", 1)[-1], m)
                for d in m["decisions"]:
                    seen[d["decision_id"]] = seen.get(d["decision_id"], 0) + 1
    granted = {e["data"]["decision_id"] for e in events if e["type"].endswith("decided.v1")
               and e["data"]["relief"] in ("dismiss_and_seal", "reduce_to_misdemeanor", "redesignate_infraction")}
    if keep is not None and largest is not None:
        keep.mkdir(parents=True, exist_ok=True)
        with open(keep / "bundle.pdf", "wb") as f:
            shutil.copyfileobj(c.get_object(Bucket="bench", Key=largest[1])["Body"], f)
        (keep / "manifest.json").write_text(json.dumps(largest[2]), encoding="utf-8")
    return {"bundle_bytes_per_page": round(size / pages) if pages else 0,
            "granted_missing": len(granted - set(seen)), "filed_twice": sum(1 for n in seen.values() if n > 1),
            "filed_not_granted": len(set(seen) - granted)}


def reference_batches(events: list[dict], batches: int, work: Path) -> list[list[tuple]]:
    """The documents LibreOffice converts in the references: the granted decisions cut into
    `batches` batches of the large court, each planned and rendered with the service's code
    (the motion without its index's page numbers: the same pages): per batch, a list of
    (render.Document, DOCX path)."""
    from service import render
    from service.events import Decision
    from service.templates import batch_of

    decided = [e["data"] for e in events if e["type"].endswith("decided.v1") and e["data"]["relief"] in
               ("dismiss_and_seal", "reduce_to_misdemeanor", "redesignate_infraction")]
    size = max(1, len(decided) // max(1, batches))
    court = render.Court(os.environ.get("RELIEFDOCS_TEMPLATES_DIR") or ROOT / "templates", "LA")
    sets = []
    for i in range(batches):
        chunk = decided[i * size:(i + 1) * size] or decided[:size]
        sb = batch_of([Decision(d["decision_id"], "LA", "REF", d["relief"], d) for d in chunk])
        docs = render.plan(sb, court, f"ref{i}", _settings().exhibit_chunk_rows)
        sets.append([(d, render.render(d, court, work / f"b{i}" / "docx")) for d in docs])
    return sets


def reference(events: list[dict], batches: int, converters: int, tmp: Path) -> dict:
    """The old reference, LibreOffice cold and one by one: the same documents, one soffice start
    per batch converting its documents one by one, `converters` batches at once."""
    from service.convert import libreoffice

    work = tmp / "reference"
    sets = [[p for _, p in batch] for batch in reference_batches(events, batches, work)]
    lo = libreoffice("soffice", work, converters, 1800, "cold")  # one soffice per call, our child
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.monotonic()
    with ThreadPoolExecutor(converters) as pool:
        pdfs = list(pool.map(lambda i: lo.convert(sets[i], work / f"b{i}" / "pdf"), range(len(sets))))
    wall = time.monotonic() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # every soffice waited for: exact
    lo_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    from pypdf import PdfReader

    pages = sum(len(PdfReader(str(p)).pages) for group in pdfs for p in group)
    # bytes per page of LibreOffice's per-document PDFs of one batch (every document, the public
    # exhibits too); the bundle comparison itself is size_per_page()
    one = pdfs[0]
    per_doc_bytes = sum(p.stat().st_size for p in one)
    per_doc_pages = sum(len(PdfReader(str(p)).pages) for p in one)
    shutil.rmtree(work, ignore_errors=True)
    return {"batches": len(sets), "pages": pages, "wall_seconds": round(wall, 1),
            "cpu_seconds": {"libreoffice": round(lo_cpu, 1)},
            "pages_per_second": round(pages / wall, 1),
            "per_document_pdfs_bytes_per_page": round(per_doc_bytes / per_doc_pages)}


def service_conversions(batch: list[tuple], work: Path) -> list[tuple[list[Path], bool]]:
    """A batch's documents as the service hands them to LibreOffice (flush.papers and
    convert_together): the sealed papers combined into ONE DOCX, the public ones into another
    (service/combine.py), long or uncombinable documents together in one call, the motion
    alone. Each: (DOCX files of one call, named destinations wanted)."""
    from service import combine

    rest = [(d, p) for d, p in batch if d.role != "motion"]
    calls, alone = [], []
    for group, name in ((True, "confidential"), (False, "public")):
        chosen = [p for d, p in rest if d.confidential == group and not combine.is_long(p)]
        one = work / "combined" / name / "documents.docx"
        try:
            combine.combine(chosen, one)
            calls.append(([one], True))
        except combine.NotCombinable:
            alone += chosen
    alone += [p for _, p in rest if combine.is_long(p)]
    if alone:
        calls.append((alone, False))
    return calls + [([p], False) for d, p in batch if d.role == "motion"]


def descendants_cpu() -> dict[int, float]:
    return {p.pid: cpu_seconds(p.pid) for p in proctree.descendants(os.getpid())}


def reference_warm(events: list[dict], batches: int, slots: int, tmp: Path) -> dict:
    """The honest reference, the fastest LibreOffice does the same pages: `slots` warm LibreOffice
    processes (as many as the workers keep: workers x RELIEFDOCS_CONVERTERS), each batch's
    documents combined as the service combines them (service_conversions, made before the
    clock starts), the batches converted `slots` at a time. Only LibreOffice's work is timed,
    so the run's ratio to it is what the service adds."""
    from service.convert import libreoffice

    settings = _settings()
    work = tmp / "reference-warm"
    prepared = reference_batches(events, batches, work)
    calls = [service_conversions(batch, work / f"b{i}") for i, batch in enumerate(prepared)]
    lo = libreoffice(settings.soffice, work / "lo", slots, 1800, mode=settings.libreoffice_mode,
                     python=settings.libreoffice_python)
    try:
        small = [p for d, p in prepared[0] if d.role == "proof_of_service"] or [prepared[0][0][1]]
        with ThreadPoolExecutor(slots) as pool:  # every process started and warmed up before the clock
            list(pool.map(lambda k: lo.convert(small, work / "warm-up" / str(k)), range(slots)))
        before = descendants_cpu()
        t = time.monotonic()

        def convert(i: int) -> list[Path]:
            return [pdf for k, (docx, marks) in enumerate(calls[i])
                    for pdf in lo.convert(docx, work / f"b{i}" / "pdf" / str(k), marks)]

        with ThreadPoolExecutor(slots) as pool:
            pdfs = list(pool.map(convert, range(len(calls))))
        wall = time.monotonic() - t
        after = descendants_cpu()
    finally:
        lo.close()
    from pypdf import PdfReader

    pages = sum(len(PdfReader(str(p)).pages) for group in pdfs for p in group)
    cpu = sum(max(0.0, used - before.get(pid, 0.0)) for pid, used in after.items())
    shutil.rmtree(work, ignore_errors=True)
    return {"batches": len(calls), "processes": slots, "conversions": sum(len(c) for c in calls), "pages": pages,
            "wall_seconds": round(wall, 1), "cpu_seconds": {"libreoffice": round(cpu, 1)},
            "pages_per_second": round(pages / wall, 1)}


def size_per_page(kept: Path, events: list[dict], tmp: Path) -> dict:
    """The issue's size target: a bundle's bytes per page against a single LibreOffice PDF of
    the same pages. The bundle is the largest one the run stored; its batch is rebuilt from the
    log (the decisions in the manifest's order, its court, batch, volume and closing time give
    the same bundle id and the same DOCX files), and the documents of the complete bundle
    (everything but the public exhibits) are combined into ONE DOCX that LibreOffice converts
    into ONE PDF: that is the fair baseline, because a single PDF embeds each font once. (The
    service converts everything but the motion that way, service/combine.py, and the motion
    on its own, so a bundle carries the fonts of two conversions.) The sum of LibreOffice's
    per-document PDFs of the same documents (each with its own fonts: a lenient baseline) is
    reported too."""
    from datetime import datetime

    from pypdf import PdfReader

    from service import combine, flush, render
    from service.batching import Record, SealedBatch
    from service.convert import libreoffice
    from service.events import Decision
    from service.flush import bundle_id_of

    m = json.loads((kept / "manifest.json").read_text(encoding="utf-8"))
    data = {e["data"]["decision_id"]: e["data"] for e in events if e["type"].endswith("decided.v1")}
    ds = [Decision(d["decision_id"], m["court_code"], m["batch_id"], d["relief"], data[d["decision_id"]])
          for d in m["decisions"]]
    closing_ms = round(datetime.fromisoformat(m["created_at"].replace("Z", "+00:00")).timestamp() * 1000)
    sb = SealedBatch(m["court_code"], m["batch_id"], m["volume"], 0, 0, len(ds), closing_ms, m["closed_by"],
                     tuple(ds), tuple(Record("bench", 0, i, 0) for i in range(len(ds))))
    if bundle_id_of(sb) != m["bundle_id"]:
        raise RuntimeError("the rebuilt batch does not give the stored bundle id")
    court = render.Court(os.environ.get("RELIEFDOCS_TEMPLATES_DIR") or ROOT / "templates", sb.court_code)
    chunk_rows = _settings().exhibit_chunk_rows
    work = tmp / "size"
    planned = render.plan(sb, court, m["bundle_id"], chunk_rows)
    lo = libreoffice("soffice", work, 1, 1800, "cold")
    try:
        if hasattr(flush, "papers"):  # the DOCX files exactly as the worker made them (the motion's index pages)
            made = [(d, p) for d, p, _ in flush.papers(planned, court, work, lo.convert)]
        else:
            made = [(d, render.render(d, court, work / "docx")) for d in planned]
        docs = [d for d, _ in made if d.role != "exhibit_public"]
        docx = [p for d, p in made if d.role != "exhibit_public"]
        combined = work / "combined" / "bundle-as-one.docx"
        combined.parent.mkdir(parents=True, exist_ok=True)
        combine.combine(docx, combined)
        separate = lo.convert(docx, work / "separate")
        (single,) = lo.convert([combined], work / "single")
    finally:
        lo.close()
    bundle_pdf = kept / "bundle.pdf"
    ours = {"bytes": bundle_pdf.stat().st_size, "pages": len(PdfReader(str(bundle_pdf)).pages)}
    one = {"bytes": single.stat().st_size, "pages": len(PdfReader(str(single)).pages)}
    per_doc = {"bytes": sum(p.stat().st_size for p in separate),
               "pages": sum(len(PdfReader(str(p)).pages) for p in separate)}
    for x in (ours, one, per_doc):
        x["bytes_per_page"] = round(x["bytes"] / max(1, x["pages"]))
    return {"bundle_id": m["bundle_id"], "decisions": len(ds), "documents": [d.name for d in docs],
            "bundle": ours, "single_libreoffice_pdf": one, "per_document_libreoffice_pdfs": per_doc,
            "ratio_to_single_libreoffice_pdf": round(ours["bytes_per_page"] / max(1, one["bytes_per_page"]), 2),
            "ratio_to_per_document_libreoffice_pdfs": round(ours["bytes_per_page"] / max(1, per_doc["bytes_per_page"]), 2)}


def _settings():
    from service import config

    return config.load(required=())


def exhibit_sweep(rows_list: list[int], one_document_max: int, unchunked_max: int, tmp: Path) -> dict:
    """Exhibit time against its number of rows, with the service's own code: render.plan and
    render.render with the configured chunk rows (RELIEFDOCS_EXHIBIT_CHUNK_ROWS), converted by
    one warm LibreOffice (one slot, started and warmed up before the clock starts). Every
    decision gets the same relief, so a batch of N decisions has one sealed exhibit of N rows.
    For each N:
    - "as_filed": the N rows as the service files them, in batches of RELIEFDOCS_BATCH_MAX_CASES
      decisions, so ceil(N / max_cases) exhibit documents, converted together;
    - "one_document": the N rows in ONE exhibit document (its tables cut at the chunk rows), for
      N up to `one_document_max` (LibreOffice's time per row grows with the document's length);
    then the largest such N (at most `unchunked_max`) as ONE table, against the same rows cut
    into tables."""
    import random

    from pypdf import PdfReader

    from service import render
    from service.batching import Record, SealedBatch
    from service.convert import WarmLibreOffice, libreoffice
    from service.events import Decision

    settings = _settings()
    chunk_rows, max_cases = settings.exhibit_chunk_rows, settings.batch_max_cases
    court = render.Court(settings.templates_dir, "LA")
    work = tmp / "sweep"
    lo = libreoffice(settings.soffice, work, 1, 3600, mode=settings.libreoffice_mode,
                     python=settings.libreoffice_python)

    def batch(first: int, n: int, label: str) -> SealedBatch:
        rng = random.Random(first)
        ds = []
        for i in range(first, first + n):
            d = sample.decision(rng, i, "LA", label, "dismiss_and_seal")["data"]
            ds.append(Decision(d["decision_id"], "LA", label, d["relief"], d))
        return SealedBatch("LA", label, 1, 0, 0, n, 1795564800000, "upstream", tuple(ds),
                           tuple(Record("bench", 0, i, 0) for i in range(n)))

    def measure(n: int, per_document: int, chunk: int, label: str) -> dict:
        sizes = [min(per_document, n - i) for i in range(0, n, per_document)]
        docs = [next(d for d in render.plan(batch(i * per_document, size, f"{label}-{i}"), court, f"{label}{i}", chunk)
                     if d.role == "exhibit") for i, size in enumerate(sizes)]
        t = time.perf_counter()
        docx = [render.render(doc, court, work / label / "docx" / str(i)) for i, doc in enumerate(docs)]
        render_s = time.perf_counter() - t
        t = time.perf_counter()
        pdfs = [lo.convert([p], work / label / "pdf" / str(i)) for i, p in enumerate(docx)] if len(docx) > 1 \
            else [lo.convert(docx, work / label / "pdf")]
        convert_s = time.perf_counter() - t
        pages = sum(len(PdfReader(str(p)).pages) for group in pdfs for p in group)
        shutil.rmtree(work / label, ignore_errors=True)
        return {"rows": n, "documents": len(docs), "chunk_rows": chunk, "tables": sum(-(-x // chunk) for x in sizes),
                "pages": pages, "render_seconds": round(render_s, 2), "convert_seconds": round(convert_s, 2),
                "ms_per_row": round((render_s + convert_s) * 1000 / n, 2),
                "convert_ms_per_row": round(convert_s * 1000 / n, 2)}

    def ratio(rows: list[dict]) -> dict:
        if len(rows) < 2:
            return {}
        first, last = rows[0], rows[-1]
        return {"ms_per_row_ratio_largest_to_smallest": round(last["ms_per_row"] / max(0.01, first["ms_per_row"]), 2),
                "convert_ms_per_row_ratio_largest_to_smallest":
                    round(last["convert_ms_per_row"] / max(0.01, first["convert_ms_per_row"]), 2)}

    try:
        measure(50, 50, chunk_rows, "warm-up")  # LibreOffice's start and first layout are not a row's cost
        out: dict = {"chunk_rows": chunk_rows, "batch_max_cases": max_cases,
                     "libreoffice_mode": "warm" if isinstance(lo, WarmLibreOffice) else "cold"}
        filed = []
        for n in rows_list:
            filed.append(measure(n, max_cases, chunk_rows, f"filed{n}"))
            print("    as filed:", json.dumps(filed[-1]))
        out["as_filed"] = {"rows": filed, **ratio(filed)}
        one = []
        for n in [r for r in rows_list if r <= one_document_max]:
            one.append(measure(n, n, chunk_rows, f"one{n}"))
            print("    one document:", json.dumps(one[-1]))
        out["one_document"] = {"rows": one, **ratio(one)}
        n = max([r for r in rows_list if r <= min(one_document_max, unchunked_max)], default=0)
        if n > chunk_rows:
            same = next(r for r in one if r["rows"] == n)
            table = measure(n, n, n, f"table{n}")
            print("    one table:", json.dumps(table))
            out["unchunked"] = {"rows": n, "chunked": same, "one_table": table,
                                "convert_ratio_one_table_to_chunked": round(
                                    table["convert_seconds"] / max(0.01, same["convert_seconds"]), 2)}
        return out
    finally:
        lo.close()
        shutil.rmtree(work, ignore_errors=True)


def print_sweep(sweep: dict) -> None:
    print(f"== exhibit rows sweep (tables of {sweep['chunk_rows']} rows, LibreOffice {sweep['libreoffice_mode']}, "
          f"one slot)")
    print(f"   {'':20} {'rows':>7} {'docs':>5} {'tables':>6} {'pages':>6} {'render s':>9} {'convert s':>10} {'ms/row':>7}")
    for key, title in (("as_filed", f"as filed (<={sweep['batch_max_cases']}/doc)"), ("one_document", "one document")):
        for r in sweep[key]["rows"]:
            print(f"   {title:20} {r['rows']:>7} {r['documents']:>5} {r['tables']:>6} {r['pages']:>6} "
                  f"{r['render_seconds']:>9} {r['convert_seconds']:>10} {r['ms_per_row']:>7}")
            title = ""
        if "ms_per_row_ratio_largest_to_smallest" in sweep[key]:
            print(f"   {'':20} ms per row, largest / smallest: {sweep[key]['ms_per_row_ratio_largest_to_smallest']} "
                  f"(convert alone {sweep[key]['convert_ms_per_row_ratio_largest_to_smallest']}; linear = about 1)")
    if "unchunked" in sweep:
        u = sweep["unchunked"]
        print(f"   {u['rows']} rows in one document as ONE table: convert {u['one_table']['convert_seconds']} s, against "
              f"{u['chunked']['convert_seconds']} s in tables of {sweep['chunk_rows']} "
              f"({u['convert_ratio_one_table_to_chunked']}x)")


def ratio(run: dict, ref: dict) -> float:
    return round(run["wall_seconds"] / max(0.1, ref["wall_seconds"]), 2)


def print_over_time(run: dict) -> None:
    t = run["throughput_over_time"]
    print(f"== throughput over time (decisions/s in each tenth of the run): {t['decisions_per_second_by_tenth']}; "
          f"last tenth / first: {t['last_to_first_tenth']}; peak worker RSS {run['peak_worker_rss_mib']} MiB")
    if "peak_worker_rss_mib_by_tenth" in t:
        print(f"== the largest worker RSS in each tenth of the run (MiB): {t['peak_worker_rss_mib_by_tenth']}")


def print_cpu(run: dict, warm: dict, cold: dict | None) -> None:
    """Where the run's CPU goes: our Python (the workers) against LibreOffice, per bundle and per decision."""
    cpu = run["cpu_seconds"]
    total = sum(cpu.values())
    py = cpu.get("workers", 0.0)
    print(f"== CPU seconds: the run {total:.1f} (" + ", ".join(f"{k} {v}" for k, v in cpu.items())
          + f"); LibreOffice alone warm {warm['cpu_seconds']['libreoffice']}, "
          f"cold {cold['cpu_seconds']['libreoffice'] if cold else '-'}; "
          f"on {os.cpu_count()} CPUs the run's CPU alone needs {total / (os.cpu_count() or 1):.1f} s")
    print(f"== our Python (the worker processes): {py} CPU s, {100 * py / max(0.1, total):.0f} % of the run's CPU; "
          f"{py / max(1, run['bundles']):.2f} s per bundle, {1000 * py / max(1, run['decisions_filed']):.2f} ms per "
          f"decision filed")


def scale_out(n: int, tmp: Path, share: float) -> dict:
    """1 worker pinned to one core against 2 workers pinned to a core each (worker i and its
    LibreOffice on core i), on a county of n decisions (share=1.0: one court). Both runs are
    checked exactly once from the object store."""
    if n <= 0:
        return {}
    what = "one court" if share >= 1.0 else f"mixed county ({round(100 * share)} % one court)"
    runs = {}
    for w in (1, 2):
        r = run_job(county(n, seed=7, share=share), w, tmp, f"scale{w}-{round(100 * share)}", pin=True)
        runs[w] = {"wall_seconds": r["wall_seconds"], "decisions_per_second": r["decisions_per_second"],
                   "rc": r["rc"], "granted_missing": r["granted_missing"], "filed_twice": r["filed_twice"],
                   "bundles": r["bundles"]}
        print(f"== scale-out, {what}, {w} worker(s) each pinned to its own core, {n} decisions:", json.dumps(runs[w]))
    speedup = round(runs[1]["wall_seconds"] / max(0.1, runs[2]["wall_seconds"]), 2)
    print(f"== 2 workers on 2 cores vs 1 on 1 core, {what}: {speedup}x (a court's decisions are composed by one "
          f"worker; its batches are filed by both, through the work topic)")
    return {"1_worker": runs[1], "2_workers": runs[2], "speedup": speedup}


def main() -> int:
    n = int(os.environ.get("BENCH_DECISIONS", "58000"))
    workers = int(os.environ.get("BENCH_WORKERS", "2"))
    # 0: no scale-out run; by default 12,000 (24 volumes: the fixed start of a run weighs little) or 10 %
    scale_n = int(os.environ.get("BENCH_SCALE_DECISIONS", str(max(1000, min(n, 12000), n // 10))))
    sweep_rows = [int(x) for x in os.environ.get("BENCH_SWEEP_ROWS", "1000,4000,16000").split(",")
                  if x.strip() and int(x) > 0]
    one_document_max = int(os.environ.get("BENCH_SWEEP_ONE_DOCUMENT_MAX", "4000"))
    unchunked_max = int(os.environ.get("BENCH_SWEEP_UNCHUNKED_MAX", "4000"))
    no_history = os.environ.get("BENCH_NO_HISTORY", "") not in ("", "0")
    counties = int(os.environ.get("BENCH_COUNTIES", "1"))  # 58: statewide (make bench-statewide)
    # 0: skip the cold, one-by-one reference (it takes about as long as the run itself)
    cold_reference = os.environ.get("BENCH_COLD_REFERENCE", "1") not in ("", "0")
    results_file = Path(os.environ.get("BENCH_RESULTS_FILE") or ROOT / "bench-results" / "latest.json")
    tmp = Path(tempfile.mkdtemp(prefix="reliefdocs-bench-"))
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, {round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB, {platform.python_implementation()} {platform.python_version()}"
    print(f"== reliefdocs bench: {n} decisions, {counties} count{'ies' if counties > 1 else 'y'}, {workers} workers; "
          f"machine: {machine}; load average {os.getloadavg()[0]:.1f}; scratch {tmp}")
    env_extra = {}
    if counties > 1:
        events = statewide(n, counties)
        env_extra["RELIEFDOCS_TEMPLATES_DIR"] = str(court_templates(statewide_courts(counties), tmp))
    else:
        events = county(n)
    main_run = run_job(events, workers, tmp, "county", env_extra)
    print(json.dumps(main_run, indent=2))
    print_over_time(main_run)
    print("== per stage (seconds summed over the threads that ran it; what the stage alone would sustain)")
    print(f"   {'stage':<10}{'seconds':>9}{'decisions/s':>13}{'pages/s':>9}")
    for stage, f in main_run["per_stage"].items():
        print(f"   {stage:<10}{f['seconds']:>9}{f['decisions_per_second'] or '-':>13}{f['pages_per_second'] or '-':>9}")
    slots = workers * _settings().converters
    warm = reference_warm(events, main_run["bundles"] or 1, slots, tmp)
    print(f"== LibreOffice alone, warm and combined as the service converts ({slots} processes, the reference):",
          json.dumps(warm))
    ref = reference(events, main_run["bundles"] or 1, 2, tmp) if cold_reference else None
    if ref:
        print("== LibreOffice alone, cold and one by one (the old reference):", json.dumps(ref))
    print(f"== the run {main_run['wall_seconds']} s: {ratio(main_run, warm)}x LibreOffice warm and combined "
          f"({warm['wall_seconds']} s)" + (f", {ratio(main_run, ref)}x LibreOffice cold and one by one "
                                           f"({ref['wall_seconds']} s)" if ref else " (BENCH_COLD_REFERENCE=0: no cold reference)"))
    print_cpu(main_run, warm, ref)
    size = None
    if (tmp / "county-largest-bundle" / "manifest.json").is_file():
        size = size_per_page(tmp / "county-largest-bundle", events, tmp)
        print(f"== size per page, bundle {size['bundle_id']} ({size['decisions']} decisions): "
              f"{size['bundle']['bytes_per_page']} bytes/page in {size['bundle']['pages']} pages; ONE LibreOffice PDF "
              f"of the same documents {size['single_libreoffice_pdf']['bytes_per_page']} bytes/page in "
              f"{size['single_libreoffice_pdf']['pages']} pages ({size['ratio_to_single_libreoffice_pdf']}x); "
              f"LibreOffice's per-document PDFs {size['per_document_libreoffice_pdfs']['bytes_per_page']} "
              f"({size['ratio_to_per_document_libreoffice_pdfs']}x)")
    sweep = None
    if sweep_rows:
        sweep = exhibit_sweep(sweep_rows, one_document_max, unchunked_max, tmp)
        print_sweep(sweep)
    scale, scale_mixed = scale_out(scale_n, tmp, share=1.0), scale_out(scale_n, tmp, share=0.85)
    result = {"date": time.strftime("%Y-%m-%d"), "machine": machine, "load_average_at_start": os.getloadavg()[0],
              "counties": counties, "run": main_run, "libreoffice_alone": warm, "libreoffice_alone_cold": ref,
              "ratio_to_libreoffice": ratio(main_run, warm), "ratio_to_libreoffice_cold": ratio(main_run, ref) if ref else None,
              "scale_out": {"decisions": scale_n, "one_court": True, "pinned": True, **scale} if scale else None,
              "scale_out_mixed": {"decisions": scale_n, "one_court": False, "pinned": True, **scale_mixed}
              if scale_mixed else None,
              "size_per_page": size, "exhibit_sweep": sweep}
    # the size target: the largest bundle against ONE LibreOffice PDF of the same pages
    result["bundle_size_per_page_ratio"] = size["ratio_to_single_libreoffice_pdf"] if size else None
    results_file.parent.mkdir(parents=True, exist_ok=True)
    results_file.write_text(json.dumps(result, indent=2))
    speedup = f"{result['scale_out']['speedup']}x" if scale else "-"
    line = (f"| {result['date']} | {machine} | {n} | {main_run['wall_seconds']} s | "
            f"{main_run['decisions_per_second']} | {main_run['pages_per_second']} | {result['ratio_to_libreoffice']}x warm, "
            f"{str(result['ratio_to_libreoffice_cold']) + 'x' if ref else 'no'} cold | "
            f"{main_run['peak_worker_rss_mib']} MiB | {speedup} |")
    print("== summary:", line)
    shutil.rmtree(tmp, ignore_errors=True)
    ok = all(rc == 0 for rc in main_run["rc"]) and not (main_run["granted_missing"] or main_run["filed_twice"]
                                                        or main_run["filed_not_granted"])
    ok = ok and all(all(rc == 0 for rc in r["rc"]) and not (r["granted_missing"] or r["filed_twice"])
                    for runs in (scale, scale_mixed) for key, r in runs.items() if key != "speedup")
    if not ok:
        print("== FAILED: exit codes or exactly-once check (see granted_missing, filed_twice); "
              "not added to the history in docs/performance.md")
        return 1
    if no_history:
        print(f"== BENCH_NO_HISTORY set: not added to the history; results in {results_file}")
        return 0
    if not add_history_line(line):
        print(f"== {HISTORY_PAGE} has no {HISTORY_MARKER!r}: the line was not added; results in {results_file}")
        return 1
    print(f"== added to the history in {HISTORY_PAGE.relative_to(ROOT)}")
    return 0


def add_history_line(line: str, page: Path = HISTORY_PAGE) -> bool:
    """Put `line` first in the table under HISTORY_MARKER (after its header and separator
    lines, so that it stays in the table). False if the page has no marker."""
    text = page.read_text(encoding="utf-8")
    at = text.find(HISTORY_MARKER)
    if at < 0:
        return False
    rule = text.index("| --- |", at)
    end = text.index("\n", rule) + 1
    page.write_text(text[:end] + line + "\n" + text[end:], encoding="utf-8")
    return True


if __name__ == "__main__":
    raise SystemExit(main())
