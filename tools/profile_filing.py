"""Our Python's CPU in filing one bundle, by stage, and where it goes (issue 16).

    .venv/bin/python -m tools.profile_filing [--cases 500] [--runs 3] [--top 25] [--digests FILE]

A fixed one-court batch (`--cases` decisions of court LA, tools/sample.py, seed by decision)
is filed as the service files it (flush.papers: render, combine, convert, cut; flush._outputs:
stamp, merge, bookmarks) in this process, without broker or store. LibreOffice's work is not
ours: each DOCX is converted once by a real warm LibreOffice and its PDF kept in a cache by the
DOCX's SHA-256 (`--cache`, kept between runs), so the measured runs convert nothing and the
outputs depend on our code only. The first run is a warm-up (imports, compiled templates,
the motion's length); then `--runs` runs are timed (thread CPU per stage, the minimum) and one
more runs under cProfile. It prints the CPU per bundle and per decision by stage, the top
functions by cumulative and by own time, and the SHA-256 of every output object (`--digests`
writes them as JSON, to compare before and after a change: the same batch must give the same
bytes).
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import json
import pstats
import random
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
STAGES = {  # module attribute -> stage; flush calls each through its module, so wrapping it counts it
    ("render", "plan"): "render", ("render", "render"): "render",
    ("combine", "combine"): "combine+cut", ("combine", "split"): "combine+cut",
    ("combine", "is_long"): "combine+cut", ("bundle", "page_count"): "combine+cut",
    ("bundle", "build"): "stamp+merge",
}


def sealed_batch(cases: int) -> Any:
    """`cases` valid decisions of one court, parsed as the worker parses them, sealed as one batch."""
    from service import events
    from service.batching import Record, SealedBatch
    from service.events import Schemas
    from tools import sample

    schemas, limits = Schemas(ROOT / "schemas"), events.Limits()
    today = __import__("datetime").date(2026, 12, 2)
    records = tuple(Record("eligibility.decided", 0, i, 1_700_000_000_000 + i, b"LA",
                           json.dumps(sample.decision(random.Random(i), i, "LA", "LA-PROFILE",
                                                      hostile=i % 9 == 0), ensure_ascii=False).encode(), ())
                    for i in range(1, cases + 1))
    decisions = tuple(events.parse(r.key, r.value, r.headers, schemas, limits, today=today) for r in records)
    return SealedBatch("LA", "LA-PROFILE", 1, 0, 1, cases + 1, 1_700_000_999_999, "upstream", decisions, records,
                       expected_count=cases)


class CachedConverter:
    """A real warm LibreOffice behind a cache of PDFs by DOCX digest: each DOCX converted once."""

    def __init__(self, cache: Path, work: Path):
        self.cache, self.work, self.lo, self.converted = cache, work, None, 0
        cache.mkdir(parents=True, exist_ok=True)

    def convert(self, docx: list[Path], out_dir: Path, destinations: bool = False) -> list[Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        keys = [self.key(p, destinations) for p in docx]
        missing = [p for p, k in zip(docx, keys) if not (self.cache / f"{k}.pdf").is_file()]
        if missing:
            made = self._libreoffice().convert(missing, self.work / "lo-out", destinations)
            for p, pdf in zip(missing, made):
                shutil.copyfile(pdf, self.cache / f"{keys[docx.index(p)]}.pdf")
            self.converted += len(missing)
        outs = [out_dir / f"{p.stem}.pdf" for p in docx]
        for k, out in zip(keys, outs):
            shutil.copyfile(self.cache / f"{k}.pdf", out)
        return outs

    @staticmethod
    def key(docx: Path, destinations: bool) -> str:
        """The DOCX's content (entries and their bytes, not the zip's dates: python-docx dates
        the combined DOCX it saves now)."""
        import zipfile

        digest = hashlib.sha256(bytes([destinations]))
        with zipfile.ZipFile(docx) as z:
            for name in z.namelist():
                digest.update(name.encode() + b"\0" + hashlib.sha256(z.read(name)).digest())
        return digest.hexdigest()

    def _libreoffice(self) -> Any:
        if self.lo is None:
            from service.convert import libreoffice

            self.lo = libreoffice("soffice", self.work / "lo", 1, 600, "warm")
        return self.lo

    def close(self) -> None:
        if self.lo is not None:
            self.lo.close()


class StageClock:
    """Thread CPU seconds per stage, by wrapping the stage functions where flush calls them."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = defaultdict(float)
        self.saved: list[tuple[Any, str, Callable]] = []

    def install(self) -> None:
        from service import bundle, combine, render

        modules = {"render": render, "combine": combine, "bundle": bundle}
        for (mod, name), stage in STAGES.items():
            original = getattr(modules[mod], name)
            self.saved.append((modules[mod], name, original))
            setattr(modules[mod], name, self._timed(stage, original))

    def _timed(self, stage: str, f: Callable) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t = time.thread_time()
            try:
                return f(*args, **kwargs)
            finally:
                self.cpu[stage] += time.thread_time() - t
        return timed

    def uninstall(self) -> None:
        for module, name, original in self.saved:
            setattr(module, name, original)


def file_once(sb: Any, work: Path, converter: CachedConverter, motion_pages: Any,
              profiler: cProfile.Profile | None = None) -> tuple[dict[str, float], dict[str, str]]:
    """One filing of the batch in `work`: (thread CPU per stage, with `convert` and `total`;
    the SHA-256 of every output object by name)."""
    from service import flush, render

    shutil.rmtree(work, ignore_errors=True)
    clock = StageClock()
    convert_cpu = [0.0]

    def convert(docx: list[Path], out: Path, destinations: bool = False) -> list[Path]:
        if profiler:
            profiler.disable()
        t = time.thread_time()
        try:
            return converter.convert(docx, out, destinations)
        finally:
            convert_cpu[0] += time.thread_time() - t
            if profiler:
                profiler.enable()

    clock.install()
    start = time.thread_time()
    try:
        if profiler:
            profiler.enable()
        bundle_id = flush.bundle_id_of(sb)
        court = render.Court(ROOT / "templates", sb.court_code)
        docs = render.plan(sb, court, bundle_id, 200)
        made = flush.papers(docs, court, work, convert, motion_pages=motion_pages)
        outputs = flush._outputs(sb, court, made, work / "out", bundle_id)
    finally:
        if profiler:
            profiler.disable()
        clock.uninstall()
    cpu = dict(clock.cpu)
    cpu["convert"] = convert_cpu[0]
    cpu["total"] = time.thread_time() - start - convert_cpu[0]
    return cpu, {o.name: hashlib.sha256(o.path.read_bytes()).hexdigest() for o in outputs}


def top(profiler: cProfile.Profile, key: str, n: int) -> str:
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(key).print_stats(n)
    return "\n".join(line for line in out.getvalue().splitlines() if line.strip())[-(n + 2) * 200:]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=500)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "reliefdocs-profile-cache")
    ap.add_argument("--digests", type=Path, help="write the outputs' SHA-256 here (JSON)")
    ap.add_argument("--no-profile", action="store_true", help="only the timed runs")
    args = ap.parse_args(argv)
    from service import flush

    sb = sealed_batch(args.cases)
    with tempfile.TemporaryDirectory(prefix="reliefdocs-profile-") as tmp:
        converter = CachedConverter(args.cache, Path(tmp))
        motion_pages = flush.MotionPages()
        try:
            _, digests = file_once(sb, Path(tmp) / "work", converter, motion_pages)  # warm-up
            runs = []
            for _ in range(args.runs):
                cpu, again = file_once(sb, Path(tmp) / "work", converter, motion_pages)
                if again != digests:
                    print("OUTPUTS DIFFER between runs:", sorted(k for k in again if again[k] != digests.get(k)))
                    return 1
                runs.append(cpu)
            profiler = None if args.no_profile else cProfile.Profile()
            if profiler:
                file_once(sb, Path(tmp) / "work", converter, motion_pages, profiler)
        finally:
            converter.close()
    report(runs, args.cases, digests, profiler, args.top, converter.converted)
    if args.digests:
        args.digests.write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")
    return 0


def report(runs: list[dict[str, float]], cases: int, digests: dict[str, str], profiler: cProfile.Profile | None,
           n: int, converted: int) -> None:
    print(f"one bundle of {cases} decisions (court LA), {len(runs)} timed runs, thread CPU, minimum of the runs "
          f"({converted} documents converted by LibreOffice into the cache this time)")
    stages = ["render", "combine+cut", "stamp+merge"]
    best = {s: min(r.get(s, 0.0) for r in runs) for s in [*stages, "convert", "total"]}
    other = min(r["total"] - sum(r.get(s, 0.0) for s in stages) for r in runs)
    for s in [*stages, "other (plan glue, flush)", "total (ours)", "convert (our side of the cache)"]:
        v = {"other (plan glue, flush)": other, "total (ours)": best["total"],
             "convert (our side of the cache)": best["convert"]}.get(s, best.get(s))
        print(f"  {s:32s} {v:7.3f} s per bundle  {1000 * v / cases:7.3f} ms per decision")
    print("  runs (total):", ", ".join(f"{r['total']:.3f}" for r in runs))
    print("outputs:")
    for name, digest in sorted(digests.items()):
        print(f"  {digest}  {name}")
    if profiler:
        print(f"\ntop {n} by cumulative time (cProfile, convert excluded):")
        print(top(profiler, "cumulative", n))
        print(f"\ntop {n} by own time:")
        print(top(profiler, "tottime", n))


if __name__ == "__main__":
    sys.exit(main())
