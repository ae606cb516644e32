"""Filing one sealed batch: render -> convert -> bundle -> store -> notify -> ledger.

This is the pipeline for one batch, run on a worker thread while the consumer keeps
polling. Every step is safe to repeat: the bundle id and object keys come from the batch's
content, objects are written whole, the manifest is written last, the notification is
derived from the stored manifest, and the ledger entry comes after the notification. So a
crash anywhere means the batch is rebuilt from the log into the same bundle, and at worst
the same notification is sent again (same id).

Dependencies that fail (S3, the broker, LibreOffice) are retried with capped exponential
backoff and full jitter (service/retry.py) until they answer or the worker stops; a batch
that no retry can fix (a template error, a document LibreOffice cannot convert after several
attempts, an object the store refuses for good) is BatchFailed, and the worker dead-letters
its records.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar
from urllib.parse import quote

from service import bundle, combine, notify, render
from service import manifest as manifests
from service.batching import SealedBatch, summary
from service.broker import send_json
from service.convert import Converter
from service.errors import BatchFailed, Permanent, Transient
from service.ledger import StoreLedger
from service.retry import Backoff
from service.store import Store, sha256_file

log = logging.getLogger("reliefdocs.flush")
T = TypeVar("T")
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
CONVERT_ATTEMPTS = 5


class Abandoned(Exception):
    """The worker is stopping: the batch was left unfiled and uncommitted."""


class MotionPages:
    """The last motion's length, per court, template and set of exhibits: the first guess of
    the next motion's length (papers()). Shared by the filing threads, so locked, and bounded
    (a key per court and combination of reliefs: a handful; templates edited on disk add more)."""

    def __init__(self, size: int = 256):
        self.size, self.lock = size, threading.Lock()
        self.items: OrderedDict[tuple[str, ...], int] = OrderedDict()

    def get(self, key: tuple[str, ...]) -> int:
        with self.lock:
            if key not in self.items:
                return 0
            self.items.move_to_end(key)
            return self.items[key]

    def put(self, key: tuple[str, ...], pages: int) -> None:
        with self.lock:
            self.items[key] = pages
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)




@dataclass
class Filing:
    """What a flush needs from the worker: the edges and the settings."""

    store: Store
    ledger: StoreLedger
    converter: Converter
    producer: Any  # KafkaProducer
    notifications_topic: str
    templates_dir: Path
    work_dir: Path
    chunk_rows: int
    retry_max_seconds: float
    stopping: threading.Event
    on_retry: Callable[[str], None] = lambda dependency: None
    on_ok: Callable[[str], None] = lambda dependency: None
    stage_timer: Callable[[str, float], None] = lambda stage, seconds: None
    motion_pages: MotionPages = field(default_factory=MotionPages)

    @classmethod
    def of(cls, s: Any, store: Store, ledger: StoreLedger, converter: Converter, producer: Any, work_dir: Path,
           stopping: threading.Event, metrics: Any) -> "Filing":
        """From the worker's settings (s) and parts; outcomes reported to its metrics."""
        return cls(store=store, ledger=ledger, converter=converter, producer=producer,
                   notifications_topic=s.notifications_topic, templates_dir=Path(s.templates_dir), work_dir=work_dir,
                   chunk_rows=s.exhibit_chunk_rows, retry_max_seconds=s.retry_max_seconds, stopping=stopping,
                   on_retry=metrics.retried, on_ok=metrics.answered,
                   stage_timer=lambda stage, sec: metrics.stage.labels(stage).observe(sec))


def bundle_id_of(sb: SealedBatch) -> str:
    """Derived from what the bundle files: the same batch always gets the same id and keys."""
    ident = json.dumps([sb.court_code, sb.batch_id, sb.volume, [d.decision_id for d in sb.decisions]],
                       ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(ident.encode("utf-8")).hexdigest()[:32]


FOLDER_BUDGET = 200  # bytes of a batch's folder name; a key is at most ~330 bytes past the prefix


def folder_of(sb: SealedBatch, bundle_id: str) -> str:
    """{court}/{batch folder}/{bundle_id}. The batch folder is the batch_id percent-encoded
    (characters other than letters, digits and . _ - ~: a slash cannot add a folder level);
    if that is only dots (`.`, `..` would name this folder or its parent) or longer than
    FOLDER_BUDGET bytes (S3 keys hold 1,024 bytes, file names 255), it is `_h-` and the first
    32 hex digits of the SHA-256 of the batch_id. The manifest carries the batch_id as sent."""
    return f"{sb.court_code}/{batch_folder(sb.batch_id)}/{bundle_id}"


def batch_folder(batch_id: str) -> str:
    quoted = quote(batch_id.encode("utf-8", "surrogatepass"), safe="")
    if len(quoted.encode("ascii")) > FOLDER_BUDGET or not quoted.strip("."):
        return "_h-" + hashlib.sha256(batch_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return quoted


def retry(f: Callable[[], T], what: str, filing: Filing, attempts: int | None = None) -> T:
    """f() until it answers: a Transient failure is retried after a jittered, capped backoff
    (Abandoned if the worker stops meanwhile; raised again after `attempts` failures); a
    Permanent refusal of the store is not retried: the batch fails as `store_failed`."""
    backoff = Backoff(base=0.5, cap=filing.retry_max_seconds, attempts=attempts)
    n, failed = 0, ""
    while True:
        try:
            result = f()
            if n:
                filing.on_ok(failed)
            return result
        except Permanent as exc:
            if n:
                filing.on_ok(failed)  # it answered, with a refusal
            log.error("refused by the object store", extra={"stage": what, "dependency": exc.dependency,
                                                            "operation": exc.operation, "code": exc.code})
            raise BatchFailed("store_failed", f"{exc.operation} refused by the object store: {exc.code}") from None
        except Transient as exc:
            failed = exc.dependency
            n += 1
            filing.on_retry(exc.dependency)
            if backoff.exhausted(n):
                raise
            wait = backoff.wait(n)
            log.warning("retrying", extra={"stage": what, "dependency": exc.dependency, "attempt": n,
                                           "error": str(exc), "wait_seconds": round(wait, 2)})
            if filing.stopping.wait(wait):
                raise Abandoned(what) from None


def _timed(filing: Filing, stage: str, f: Callable[[], T]) -> T:
    t = time.perf_counter()
    result = f()
    filing.stage_timer(stage, time.perf_counter() - t)
    return result


def papers(docs: list[render.Document], court: render.Court, work: Path,
           convert: Callable[..., list[Path]],
           timed: Callable[[str, Callable[[], Any]], Any] = lambda stage, f: f(),
           motion_pages: MotionPages | None = None) -> list[tuple[render.Document, Path, bundle.Part]]:
    """Render and convert a batch's documents: (document, DOCX, converted PDF) in filing order.

    The motion's index of exhibits gives the page where each exhibit begins in the paper the
    motion leads (CRC 3.1110: the motion, the declaration and the public redacted exhibits,
    numbered from 1), which depends on the motion's own length. So the other documents are made
    first (converted as one document per group, sealed and public: convert_together), and the
    motion is rendered last with
    the pages it would have if it is as long as the last motion of the same court and
    exhibits; if it comes out longer or shorter it is rendered and converted again with its
    real length. The result depends only on the batch, never on that guess."""
    motion = next((d for d in docs if d.role == "motion"), None)
    motion_pages = motion_pages or MotionPages()
    rest = [d for d in docs if d is not motion]
    docx = {d.name: p for d, p in zip(rest, timed("render", lambda: [render.render(d, court, work / "docx")
                                                                      for d in rest]))}
    made = timed("convert", lambda: convert_together(rest, list(docx.values()), work, convert)) if rest else []
    parts = {p.doc.name: p for p in made}
    if motion is not None:
        key = (court.code, str(court.template_path(motion.template)), *(r["code"] for r in motion.context["reliefs"]))
        length = motion_pages.get(key)
        for _ in range(4):
            _exhibit_pages(motion, [d for d in rest if d.kind.filed_in == motion.kind.filed_in], parts, length)
            path = timed("render", lambda: render.render(motion, court, work / "docx"))
            pdf = timed("convert", lambda: convert([path], work / "pdf"))[0]
            pages = bundle.page_count(pdf)
            if pages == length:
                break
            length = pages
        else:
            raise BatchFailed("render_failed", "the motion's length changes with the page numbers of its index")
        motion_pages.put(key, length)
        docx[motion.name], parts[motion.name] = path, bundle.Part(motion, pdf, pages)
    return [(d, docx[d.name], parts[d.name]) for d in docs]


def convert_together(docs: list[render.Document], docx: list[Path], work: Path,
                     convert: Callable[..., list[Path]]) -> list[bundle.Part]:
    """Convert documents in as few LibreOffice calls as safe: the confidential ones as ONE
    document, the others as another, each cut into one PDF per document (service/combine.py:
    each font is then embedded once for the group). Never a sealed paper and a public one in
    the same conversion: the font subsets a conversion embeds hold every character it printed,
    so a public PDF would carry the glyphs (and the ToUnicode map) of sealed names. A long
    document (combine.is_long) is converted on its own, and documents that cannot be combined
    one by one, in a further call."""
    parts: dict[int, bundle.Part] = {}
    for group, name in ((True, "confidential"), (False, "public")):
        chosen = [i for i, (d, p) in enumerate(zip(docs, docx)) if d.confidential == group and not combine.is_long(p)]
        if len(chosen) > 1:
            parts.update(_convert_combined(docs, docx, chosen, work, name, convert))
    rest = [i for i in range(len(docx)) if i not in parts]
    if rest:
        for i, pdf in zip(rest, convert([docx[i] for i in rest], work / "pdf")):
            parts[i] = bundle.Part(docs[i], pdf, bundle.page_count(pdf))
    return [parts[i] for i in range(len(docx))]


def _convert_combined(docs: list[render.Document], docx: list[Path], chosen: list[int], work: Path, group: str,
                      convert: Callable[..., list[Path]]) -> dict[int, bundle.Part]:
    """The chosen documents combined, converted in one call and cut again; {} if they cannot be."""
    folder = work / "combined" / group
    one = folder / "documents.docx"
    try:
        combine.combine([docx[i] for i in chosen], one)
        (pdf,) = convert([one], folder, destinations=True)
        outs = [work / "pdf" / f"{docs[i].name}.pdf" for i in chosen]
        return {i: bundle.Part(docs[i], out, pages) for i, out, pages in zip(chosen, outs, combine.split(pdf, outs))}
    except (combine.NotCombinable, ValueError) as exc:
        log.warning("documents converted one by one", extra={"group": group, "reason": str(exc)})
        return {}


def _exhibit_pages(motion: render.Document, after: list[render.Document], parts: dict[str, bundle.Part],
                   motion_pages: int) -> None:
    """Fill in reliefs[].page, where each exhibit begins, for a motion of motion_pages pages."""
    first, starts = motion_pages + 1, {}
    for d in after:
        if d.kind.is_exhibit:
            starts.setdefault(d.letter, first)
        first += parts[d.name].pages
    for r in motion.context["reliefs"]:
        r["page"] = starts.get(r["letter"])


def file_batch(sb: SealedBatch, filing: Filing) -> dict[str, Any]:
    """File one batch; returns its manifest. Raises BatchFailed or Abandoned."""
    bundle_id = bundle_id_of(sb)
    folder = folder_of(sb, bundle_id)
    manifest_key = f"{folder}/manifest.json"
    fields = {**summary(sb), "bundle_id": bundle_id}
    stored = retry(lambda: filing.store.get(manifest_key), "store", filing)
    if stored is not None:
        manifest = json.loads(stored)
        if retry(lambda: filing.ledger.is_recorded(sb.court_code, bundle_id), "ledger", filing):
            log.info("bundle already filed and notified", extra=fields)  # a work item taken twice
            return manifest
        log.info("bundle already stored; notifying again", extra=fields)
    else:
        manifest = _make_and_store(sb, filing, bundle_id, folder, manifest_key)
    if filing.stopping.is_set():
        raise Abandoned("before notify")  # stored but not committed: the next owner notifies
    event = notify.event(manifest, manifest_key, filing.store)
    _timed(filing, "notify", lambda: retry(
        lambda: send_json(filing.producer, filing.notifications_topic, sb.court_code, event), "notify", filing))
    retry(lambda: filing.ledger.record(sb, bundle_id), "ledger", filing)
    log.info("bundle filed", extra={**fields, "pages": manifests.bundle_pages(manifest)})
    return manifest


def _outputs(sb: SealedBatch, court: render.Court, made: list[tuple[render.Document, Path, bundle.Part]],
             out: Path, bundle_id: str) -> list[bundle.Output]:
    """The objects to store: the bundles and each paper's PDF (bundle.build), and the DOCX of
    the papers stored as DOCX too (papers.Kind.formats)."""
    author = court.settings["office"].get("name", "reliefdocs")
    label = f"{court.settings.get('short_name', sb.court_code)} batch {sb.batch_id}, volume {sb.volume}"
    outputs = bundle.build([part for _, _, part in made], out, bundle_id, sb.created_at, label, author)
    outputs += [bundle.Output(d.role, p.name, p, DOCX, None, d.confidential)
                for d, p, _ in made if "docx" in d.kind.formats]
    return outputs


def _make_and_store(sb: SealedBatch, filing: Filing, bundle_id: str, folder: str, manifest_key: str) -> dict[str, Any]:
    work = filing.work_dir / bundle_id
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        court = render.Court(filing.templates_dir, sb.court_code)
        docs = render.plan(sb, court, bundle_id, filing.chunk_rows)

        def convert(docx: list[Path], out: Path, destinations: bool = False) -> list[Path]:
            try:
                return retry(lambda: filing.converter.convert(docx, out, destinations), "convert", filing,
                             attempts=CONVERT_ATTEMPTS)
            except Transient as exc:
                raise BatchFailed("convert_failed", f"LibreOffice failed {CONVERT_ATTEMPTS} times: {exc}") from None

        made = papers(docs, court, work, convert, lambda stage, f: _timed(filing, stage, f), filing.motion_pages)
        outputs = _timed(filing, "merge", lambda: _outputs(sb, court, made, work / "out", bundle_id))
        stored: list[dict[str, Any]] = []

        def put_all() -> None:
            for o in outputs:
                digest = sha256_file(o.path)
                key = f"{folder}/{o.name}"
                retry(lambda: filing.store.put_file(key, o.path, o.media_type, digest, create_only=True),
                      "store", filing)
                stored.append(manifests.entry(o, key, digest))

        _timed(filing, "store", put_all)
        manifest = manifests.build(sb, bundle_id, docs, stored, render.template_digests(court, docs))
        body = manifests.encode(manifest)
        _timed(filing, "store", lambda: retry(
            lambda: filing.store.put_bytes(manifest_key, body, "application/json", create_only=True), "store",
            filing))
        return manifest
    finally:
        shutil.rmtree(work, ignore_errors=True)
