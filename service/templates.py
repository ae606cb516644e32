"""Tools for template authors: `reliefdocs templates check` and `reliefdocs preview`.

check:
- every DOCX template (templates/default/ and each court's overrides) compiles in the same
  sandboxed environment the worker uses;
- every top-level variable a template uses is part of the documented context
  (docs/templates.md), and rendering it with a sample batch that fills every field raises no
  undefined-variable error (so `{{ case.middle_nme }}` is caught before a run, not during);
- every court folder has every template its court.json asks for (its own or the default);
- NOTE (not a failure) where a court's documents cannot be converted as one (service/combine.py).

preview: render one template (or the whole bundle) from a JSON-lines file of sample events
into a PDF a person can open.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
from pathlib import Path

from jinja2 import TemplateError, meta

from service import combine, papers, render
from service.batching import Record, SealedBatch
from service.config import Settings
from service.errors import BatchFailed
from service import docx_adapter
from service.events import Decision, Schemas, parse

CONTEXT_KEYS = {"office", "court", "filing", "caption", "reliefs", "legal_basis", "service", "title", "documents",
                "exhibit", "cases", "footer_title", "counts"}


def _template_source(path: Path) -> list[tuple[str, str]]:
    """The Jinja source of each part of a DOCX template (body, headers, footers), as docxtpl sees it."""
    return docx_adapter.template_parts(path)


def _sample_decisions(court: str, n: int) -> list[Decision]:
    reliefs = ["dismiss_and_seal", "reduce_to_misdemeanor", "redesignate_infraction"]
    rng = random.Random(1)
    out = []
    for i in range(n):
        data = {
            "decision_id": f"sample-{i}", "decided_at": "2026-11-20T17:03:00Z",
            "court": {"code": court, "name": "Superior Court of California, County of Sample", "county": "Sample"},
            "case": {"number": f"SA{100000 + i}", "filed_on": "1994-02-01"},
            "defendant": {"first_name": "Sample", "middle_name": "Q", "last_name": f"Person{i}", "suffix": "Jr.",
                          "date_of_birth": "1970-01-01", "cii": f"A{rng.randrange(10**7, 10**8)}"},
            "convictions": [{"statute": "HS 11357(a)", "level": "felony", "disposition_date": "1994-03-02"}],
            "relief": reliefs[i % 3], "legal_basis": ["HS 11361.9"], "batch_id": "SAMPLE-1",
        }
        out.append(Decision(data["decision_id"], court, "SAMPLE-1", data["relief"], data))
    return out


def batch_of(decisions: list[Decision]) -> SealedBatch:
    first = decisions[0]
    return SealedBatch(court_code=first.court_code, batch_id=first.batch_id or f"{first.court_code}-preview",
                       volume=1, partition=0, first_offset=0, closing_offset=len(decisions),
                       closing_timestamp_ms=1795564800000, closed_by="upstream", decisions=tuple(decisions),
                       records=tuple(Record("preview", 0, i, 0) for i in range(len(decisions))))


def _courts(root: Path) -> list[str]:
    folder = root / "courts"
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name != "_default") if folder.is_dir() else []


def check(settings: Settings, out=sys.stdout) -> int:
    root = Path(settings.templates_dir)
    problems: list[str] = []
    notes: list[str] = []  # worth knowing, not wrong
    files = sorted((root / "default").glob("*.docx")) + sorted((root / "courts").glob("*/*.docx"))
    if not files:
        problems.append(f"{root}: no templates found")
    compiled = {path: _compile_problems(path, root) for path in files}
    problems += [p for found in compiled.values() for p in found]
    for code in ["_default", *_courts(root)]:
        court = render.Court(root, "SAMPLE" if code == "_default" else code)
        own = _missing(court, code)
        # a court whose templates do not compile or are missing is not rendered: that would only repeat it
        broken = own or any(compiled.get(court.template_path(k.template)) for k in papers.KINDS)
        problems += own
        if not broken:
            found, note = _render_problems(court, code, settings.exhibit_chunk_rows)
            problems += found
            notes += note
    for p in problems:
        print(f"FAIL {p}", file=out)
    for n in notes:
        print(f"NOTE {n}", file=out)
    print(f"templates check: {len(files)} templates, {len(_courts(root)) + 1} court settings, "
          f"{len(problems)} problem{'s' if len(problems) != 1 else ''}", file=out)
    return 1 if problems else 0


def _compile_problems(path: Path, root: Path) -> list[str]:
    """The template compiles in the worker's environment and uses only documented variables."""
    rel = path.relative_to(root)
    env = render.environment()
    problems = []
    try:
        for part, source in _template_source(path):
            ast = env.parse(source)
            unknown = meta.find_undeclared_variables(ast) - CONTEXT_KEYS
            for name in sorted(unknown):
                problems.append(f"{rel} ({part}): uses '{name}', which is not in the template context")
    except TemplateError as exc:
        problems.append(f"{rel}: does not compile: {exc.message} (line {getattr(exc, 'lineno', '?')})")
    except Exception as exc:
        problems.append(f"{rel}: cannot be read as a DOCX template ({type(exc).__name__})")
    return problems


def _missing(court: render.Court, code: str) -> list[str]:
    names = court.documents + [k.template for k in court.kinds() if k.template not in court.documents]
    return [f"courts/{code}: needs template {name}.docx, which is missing"
            for name in names if not court.template_path(name).is_file()]


def _render_problems(court: render.Court, code: str, chunk_rows: int) -> tuple[list[str], list[str]]:
    """Render every paper of the court (and those its switches would add, where the template
    exists) from a sample batch, each from the context the worker gives it: a public paper's
    rows have no name, date of birth or CII, so a public template asking for one fails here."""
    problems, notes = [], []
    sb = batch_of(_sample_decisions(court.code, 9))
    docs = render.plan(sb, court, "0" * 32, chunk_rows)
    for kind in papers.KINDS:
        if kind.switch and kind not in {d.kind for d in docs} and court.template_path(kind.template).is_file():
            docs += [d for d in render.plan(sb, _switched_on(court, kind.switch), "0" * 32, 200) if d.kind == kind]
    with tempfile.TemporaryDirectory() as tmp:
        made = []
        for d in docs:
            try:
                made.append((d, render.render(d, court, Path(tmp) / "docx")))
            except BatchFailed as exc:
                problems.append(f"courts/{code}: {exc.message}")
        for group in (True, False):  # as flush.convert_together converts them: sealed and public apart
            together = [p for d, p in made if d.role != "motion" and d.confidential == group]
            try:
                if len(together) > 1:
                    combine.combine(together, Path(tmp) / "combined.docx")
            except combine.NotCombinable as exc:
                notes.append(f"courts/{code}: documents will be converted one at a time, not as one "
                             f"(bigger bundles, a font set per document): {exc}")
    return list(dict.fromkeys(problems)), notes  # a per-exhibit template fails once per exhibit: say it once


def _switched_on(court: render.Court, switch: str) -> render.Court:
    c = render.Court(court.root, court.code)
    c.settings = {**c.settings, switch: True}
    return c


def preview(settings: Settings, events_file: Path, out_pdf: Path, template: str | None = None,
            out=sys.stdout) -> int:
    """Render a PDF from sample events: one template, or the whole bundle."""
    from service import bundle
    from service import flush
    from service.convert import libreoffice

    schemas = Schemas(settings.schemas_dir)
    decisions = []
    for n, line in enumerate(events_file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        ev = json.loads(line)
        if ev.get("type") != "relief.eligibility.decided.v1":
            continue
        d = parse(ev["data"]["court"]["code"].encode(), line.encode(), [], schemas)
        if d.granted:
            decisions.append(d)
    if not decisions:
        print(f"{events_file}: no granted decisions to preview", file=sys.stderr)
        return 1
    decisions = [d for d in decisions if d.court_code == decisions[0].court_code]  # one court's papers
    sb = batch_of(decisions)
    court = render.Court(settings.templates_dir, sb.court_code)
    kind = papers.BY_TEMPLATE.get(template or "")
    if kind is not None and kind.switch:
        court = _switched_on(court, kind.switch)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        docs = render.plan(sb, court, "preview", settings.exhibit_chunk_rows)
        if template and not any(d.template == template for d in docs):
            print(f"template {template} is not used by court {sb.court_code}", file=sys.stderr)
            return 1
        # the whole bundle even for one template: the motion's index and every page number depend on it
        lo = libreoffice(settings.soffice, work, 1, settings.convert_timeout_seconds, "cold")
        parts = [part for _, _, part in flush.papers(docs, court, work, lo.convert)]
        outputs = bundle.build(parts, work / "out", "preview", sb.created_at, f"Preview {sb.batch_id}", "reliefdocs")
        wanted = next((d for d in docs if d.template == template), None)
        chosen = outputs[0] if wanted is None else next(o for o in outputs if o.name == f"{wanted.name}.pdf")
        out_pdf.write_bytes(chosen.path.read_bytes())
    print(f"wrote {out_pdf} ({chosen.pages} pages, {len(decisions)} decisions)", file=out)
    return 0
