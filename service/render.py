"""Stage 3: a sealed batch becomes DOCX documents, filled from templates with docxtpl.

Templates are data (templates/default/*.docx, overridable per court in
templates/courts/<CODE>/). They run in a sandboxed Jinja environment with autoescaping and
strict undefined variables. Every value from an event is printed literally: XML characters
are escaped, braces are written as character references (docxtpl rewrites `{_{` into `{{`
after rendering, which would otherwise change what a name says), and line breaks and tabs
inside a value become spaces. Values are never evaluated: Jinja only evaluates the template.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from service import papers
from service import docx_adapter
from service.batching import SealedBatch
from service.errors import BatchFailed, Rejected, Transient
from service.papers import Kind

RELIEFS = {  # named as Health & Saf. Code, section 11361.8 names them (docs/templates.md)
    "dismiss_and_seal": {"title": "Dismissal and Sealing",
                         "action": "dismiss and seal the conviction"},
    "reduce_to_misdemeanor": {"title": "Redesignation as a Misdemeanor",
                              "action": "redesignate the felony conviction as a misdemeanor"},
    "redesignate_infraction": {"title": "Redesignation as an Infraction",
                               "action": "redesignate the misdemeanor conviction as an infraction"},
}
IDENTIFIED_BY = {  # the decision's optional identified_by, as the declaration counts it
    "doj_list": "on the Department of Justice's list (Health & Saf. Code, \u00a7 11361.9)",
    "county_search": "by the office's own search of county records",
    "additive": "by both",
}
DECLARATION = {"declarant": {"name": "____________________", "title": "____________________"},
               "sources": [], "criteria": [], "excluded": ""}
COURT_TZ = ZoneInfo("America/Los_Angeles")
_SPACE = re.compile(r"[\r\n\t\f\v\a]+")


# braces and % as character references; with the five characters markupsafe.escape() replaces
# (& < > " ') in one pass: the same text as escape() followed by the three replacements
_BRACES = str.maketrans({"{": "&#123;", "}": "&#125;", "%": "&#37;"})
_ESCAPE_AND_BRACES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "'": "&#39;",
                                    "{": "&#123;", "}": "&#125;", "%": "&#37;"})


def _literal(value: Any) -> Any:
    """Jinja `finalize`: make every printed value literal text in the DOCX XML."""
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, Markup):  # already escaped (e.g. the output of |join under autoescape)
        return Markup(str(value).translate(_BRACES))
    text = str(value)
    if not text.isprintable():  # _SPACE's characters are all unprintable: most values skip the regex
        text = _SPACE.sub(" ", text)
    return Markup(text.translate(_ESCAPE_AND_BRACES))


def environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(autoescape=True, undefined=StrictUndefined, finalize=_literal)


class _Bounded:
    """A small thread-safe LRU map (templates edited on disk must not grow it forever)."""

    def __init__(self, size: int):
        self.size, self.items, self.lock = size, OrderedDict(), threading.Lock()

    def get(self, key: Any) -> Any:
        with self.lock:
            value = self.items.get(key)
            if value is not None:
                self.items.move_to_end(key)
            return value

    def put(self, key: Any, value: Any) -> Any:
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return value


class _RenderEnvironment(SandboxedEnvironment):
    """The environment render() uses: the same settings as environment(), and every template
    source compiled once. docxtpl compiles each part of each template (body, headers, footers,
    core properties) on every render; the same source always compiles to the same template, so
    keeping it changes no output byte. Rendering a compiled Jinja template is thread-safe."""

    def __init__(self) -> None:
        super().__init__(autoescape=True, undefined=StrictUndefined, finalize=_literal)
        self._compiled = _Bounded(256)

    def from_string(self, source: Any, globals: Any = None, template_class: Any = None) -> Any:
        if globals is not None or template_class is not None or not isinstance(source, str):
            return super().from_string(source, globals, template_class)
        return self._compiled.get(source) or self._compiled.put(source, super().from_string(source))


_PATCHED = _Bounded(256)
_BUILD = threading.Lock()  # the environment below is built once, by the first render of any thread
_ENV: _RenderEnvironment | None = None


def _render_environment() -> _RenderEnvironment:
    global _ENV
    with _BUILD:
        if _ENV is None:
            _ENV = _RenderEnvironment()
        return _ENV


def _template_class() -> Any:
    return docx_adapter.template_class(_PATCHED.get, _PATCHED.put)


@dataclass(frozen=True)
class Document:
    """One paper of a batch: its kind (service/papers.py) and what is filled into its template."""

    kind: Kind
    name: str  # file stem: motion, order, exhibit-a, exhibit-a-public, ...
    title: str
    context: dict[str, Any]
    letter: str | None = None  # the exhibit letter of a per_exhibit paper
    bookmark: str = ""

    @property
    def role(self) -> str:
        return self.kind.role

    @property
    def template(self) -> str:
        return self.kind.template

    @property
    def confidential(self) -> bool:
        return self.kind.confidential


class Courts:
    """Which court codes this service files for: those with a folder templates/courts/<CODE>/.
    A code without one is `unknown_court` (dead-lettered), unless the operator allows filing
    it with the default court's settings (RELIEFDOCS_ALLOW_DEFAULT_COURT)."""

    RECHECK_SECONDS = 10.0  # a folder added (or removed) while the worker runs is seen this late at most

    def __init__(self, templates_dir: str | Path, allow_default: bool = False,
                 clock: Callable[[], float] = time.monotonic):
        self.root = Path(templates_dir) / "courts"
        self.allow_default = allow_default
        self.clock = clock
        self._seen: dict[str, tuple[bool, float]] = {}  # code -> (has a folder, when looked)

    def known(self, code: str) -> bool:
        """Asked for every record: the answer is kept for RECHECK_SECONDS (a stat per record was
        7 % of a composing worker's CPU in the statewide bench)."""
        now = self.clock()
        seen = self._seen.get(code)
        if seen is None or now - seen[1] >= self.RECHECK_SECONDS:
            if len(self._seen) > 10_000:  # codes are bounded in practice; junk codes must not grow this
                self._seen.clear()
            seen = self._seen[code] = (not code.startswith("_") and (self.root / code).is_dir(), now)
        return seen[0]

    def check(self, code: str) -> None:
        if not self.known(code) and not self.allow_default:
            raise Rejected("unknown_court", f"court code {code} has no templates folder (templates/courts/{code}/); "
                                            "add one, or set RELIEFDOCS_ALLOW_DEFAULT_COURT=true to file it with the "
                                            "default court's settings")

    def label(self, code: str) -> str:
        """A metric label: the code of a known court, `_default` for any other (labels stay bounded)."""
        return code if self.known(code) else "_default"


class Court:
    """A court's settings and templates: templates/courts/<CODE>/ over templates/courts/_default/."""

    def __init__(self, templates_dir: str | Path, code: str):
        self.root = Path(templates_dir)
        self.code = code
        self.settings = self._settings()

    def _settings(self) -> dict[str, Any]:
        office = json.loads((self.root / "office.json").read_text(encoding="utf-8"))
        merged = json.loads((self.root / "courts" / "_default" / "court.json").read_text(encoding="utf-8"))
        own = self.root / "courts" / self.code / "court.json"
        if own.is_file():
            merged.update(json.loads(own.read_text(encoding="utf-8")))
        merged["office"] = {**office, **merged.get("office", {})}
        return merged

    def template_path(self, name: str) -> Path:
        own = self.root / "courts" / self.code / f"{name}.docx"
        return own if own.is_file() else self.root / "default" / f"{name}.docx"

    @property
    def documents(self) -> list[str]:
        """The papers this court files (template names, as court.json lists them)."""
        return list(self.settings.get("documents", papers.default_documents()))

    def kinds(self) -> list[Kind]:
        """The kinds of paper this court files, in filing order: those court.json lists, and
        those whose switch (e.g. case_orders) it turns on."""
        wanted = {k.role for k in papers.KINDS
                  if k.template in self.documents or (k.switch and self.settings.get(k.switch))}
        wanted |= {papers.BY_ROLE[role].filed_in for role in wanted}  # a part is filed in its paper
        return [k for k in papers.KINDS if k.role in wanted]


def _us_date(iso: str | None) -> str:
    if not iso:
        return ""
    try:
        return date.fromisoformat(iso).strftime("%m/%d/%Y")
    except ValueError:
        return iso


def person_name(defendant: dict[str, Any]) -> str:
    given = " ".join(x for x in (defendant.get("first_name"), defendant.get("middle_name")) if x)
    name = f"{defendant['last_name']}, {given}"
    return f"{name}, {defendant['suffix']}" if defendant.get("suffix") else name


FOUND_BY = {"doj_list": "DOJ list", "county_search": "County search", "additive": "Both"}  # the exhibits' column


def count_rows(n: int, data: dict[str, Any]) -> list[dict[str, Any]]:
    """An exhibit's rows for one case: one per count of conviction (`n` numbers the rows across
    the batch's exhibit), each with the case's fields and its own statute, level and date."""
    case = case_row(0, data)
    return [{**case, "n": n + i, "count": i + 1, "statute": c["statute"], "level": c["level"],
             "disposition_date": _us_date(c.get("disposition_date"))}
            for i, c in enumerate(data["convictions"])]


def case_row(n: int, data: dict[str, Any]) -> dict[str, Any]:
    convictions = data["convictions"]
    return {
        "n": n,
        "decision_id": data["decision_id"],
        "case_number": data["case"]["number"],
        "name": person_name(data["defendant"]),
        "date_of_birth": _us_date(data["defendant"].get("date_of_birth")),
        "cii": data["defendant"].get("cii") or "",
        "statutes": "; ".join(c["statute"] for c in convictions),
        "levels": "; ".join(c["level"] for c in convictions),
        "disposition_date": "; ".join(dict.fromkeys(_us_date(c.get("disposition_date")) for c in convictions
                                                     if c.get("disposition_date"))),
        "relief": data["relief"],
        "relief_title": RELIEFS[data["relief"]]["title"],
        "legal_basis": ", ".join(data["legal_basis"]),
        "identified_by": FOUND_BY.get(data.get("identified_by") or "", ""),
    }


def _letters(n: int) -> list[str]:
    return [chr(ord("A") + i) for i in range(n)]


def _and_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def filing_date(sb: SealedBatch) -> date:
    return datetime.fromtimestamp(sb.closing_timestamp_ms / 1000, tz=COURT_TZ).date()


def public_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row for a paper with a public context: the personal fields are not there at all, so a
    template that asks for one fails (StrictUndefined) instead of printing it."""
    return {k: v for k, v in row.items() if k not in papers.PERSONAL}


def _rows_for(kind: Kind, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [public_row(r) for r in rows] if kind.public_context else rows


def _reliefs(sb: SealedBatch) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """The reliefs present (with their exhibit letters) and each one's rows, numbered across the batch."""
    by_relief: dict[str, list[dict[str, Any]]] = {code: [] for code in RELIEFS}
    for d in sb.decisions:
        by_relief[d.relief].append(d.data)
    present = [code for code in RELIEFS if by_relief[code]]
    letters = dict(zip(present, _letters(len(present))))
    reliefs = [{"code": code, "letter": letters[code], "title": RELIEFS[code]["title"],
                "action": RELIEFS[code]["action"], "count": len(by_relief[code]),
                "legal_basis": sorted({b for x in by_relief[code] for b in x["legal_basis"]}),
                "page": None} for code in present]  # page: where the exhibit begins, for the motion's index
    rows: dict[str, list[dict[str, Any]]] = {}
    for code in present:
        rows[code] = []
        for data in by_relief[code]:
            rows[code] += count_rows(len(rows[code]) + 1, data)
    return reliefs, rows


def counts(sb: SealedBatch) -> dict[str, Any]:
    """What the declaration counts: the counts of conviction, by level, and the cases by how they
    were identified (only when a decision says so)."""
    levels: dict[str, int] = {}
    found: dict[str, int] = {}
    for d in sb.decisions:
        for c in d.data["convictions"]:
            levels[c["level"]] = levels.get(c["level"], 0) + 1
        if d.data.get("identified_by"):
            found[d.data["identified_by"]] = found.get(d.data["identified_by"], 0) + 1
    return {"cases": len(sb.decisions), "convictions": sum(levels.values()),
            "levels": [{"level": k, "count": v} for k, v in sorted(levels.items())],
            "identified_by": [{"source": k, "label": IDENTIFIED_BY.get(k, k), "count": found[k]}
                              for k in IDENTIFIED_BY if k in found]}


def _service(settings: dict[str, Any]) -> dict[str, Any]:
    """The service list: the date, place and signature are left blank for the person who serves
    unless court.json gives them (never invented); each party gets the complete version too only
    when `complete` is true (CRC 2.551(b)(2))."""
    given = settings.get("service", {})
    parties = [{"title": "", "email": "", "address_lines": [], **p, "complete": bool(p.get("complete"))}
               for p in given.get("parties", [])]
    return {"date": "", "place": "", "server": {"name": "", "title": ""}, **given, "parties": parties}


def _base_context(sb: SealedBatch, court: Court, bundle_id: str, reliefs: list[dict[str, Any]]) -> dict[str, Any]:
    first = sb.decisions[0].data
    exhibit_names = _and_list([f"Exhibit {r['letter']}" for r in reliefs])
    fdate = filing_date(sb)
    settings = court.settings
    office = {**settings["office"], "declaration": {**DECLARATION, **settings["office"].get("declaration", {})}}
    return {
        "office": office,
        "counts": counts(sb),
        "court": {"code": sb.court_code, "name": first["court"]["name"], "county": first["court"]["county"],
                  "department": settings.get("department") or "", "hearing": settings.get("hearing") or None},
        "filing": {"batch_id": sb.batch_id, "volume": sb.volume, "bundle_id": bundle_id,
                   "date": fdate.strftime("%B %-d, %Y"), "date_iso": fdate.isoformat(), "case_count": len(sb.decisions)},
        "caption": {"plaintiff": "THE PEOPLE OF THE STATE OF CALIFORNIA",
                    "defendants": f"DEFENDANTS LISTED IN {exhibit_names.upper()}",
                    "case_number": settings.get("case_number") or f"Various (see {exhibit_names})",
                    "batch_label": f"Batch {sb.batch_id}, Volume {sb.volume}"},
        "reliefs": reliefs,
        "legal_basis": sorted({b for d in sb.decisions for b in d.data["legal_basis"]}),
        "service": _service(settings),
    }


def _exhibit_paper(kind: Kind, relief: dict[str, Any], rows: list[dict[str, Any]], base: dict[str, Any],
                   chunk_rows: int) -> Document:
    letter, count = relief["letter"], relief["count"]
    mine = _rows_for(kind, rows)
    exhibit = {"letter": letter, "title": f"Cases for {relief['title']}", "code": relief["code"], "count": count,
               "counts": len(mine), "relief": relief["title"],
               "chunks": [mine[i:i + chunk_rows] for i in range(0, len(mine), chunk_rows)]}
    title = kind.text("title", letter, relief["title"], count)
    context = {**base, "title": title, "footer_title": kind.text("footer", letter, relief["title"], count),
               "exhibit": exhibit}
    return Document(kind, kind.name(letter), title, context, letter,
                    kind.text("bookmark", letter, relief["title"], count))


def _paper(kind: Kind, base: dict[str, Any], cases: list[dict[str, Any]]) -> Document:
    context = {**base, "title": kind.title, "footer_title": kind.footer}
    if kind.with_cases:
        context["cases"] = _rows_for(kind, cases)
    return Document(kind, kind.name(), kind.title, context, None, kind.bookmark)


def plan(sb: SealedBatch, court: Court, bundle_id: str, chunk_rows: int) -> list[Document]:
    """The papers of a batch, in filing order (papers.KINDS), each with its full template
    context. Papers made per exhibit come exhibit by exhibit (A, A public, B, B public, ...)."""
    reliefs, rows = _reliefs(sb)
    base = _base_context(sb, court, bundle_id, reliefs)
    kinds = court.kinds()
    docs: list[Document] = []
    i = 0
    while i < len(kinds):
        if not kinds[i].per_exhibit:
            docs.append(_paper(kinds[i], base, [case_row(n + 1, d.data) for n, d in enumerate(sb.decisions)]
                               if kinds[i].with_cases else []))
            i += 1
            continue
        j = i
        while j < len(kinds) and kinds[j].per_exhibit:
            j += 1
        docs += [_exhibit_paper(k, r, rows[r["code"]], base, chunk_rows) for r in reliefs for k in kinds[i:j]]
        i = j
    served = [{"role": d.role, "title": d.title, "confidential": d.kind.confidential} for d in docs
              if not d.kind.lists_served]
    every = [{"role": d.role, "title": d.title, "confidential": d.kind.confidential} for d in docs]
    for d in docs:
        d.context["documents"] = served if d.kind.lists_served else every
    return docs


def template_digests(court: Court, docs: list[Document]) -> list[dict[str, str]]:
    seen: dict[str, str] = {}
    for d in docs:
        if d.template not in seen:
            p = court.template_path(d.template)
            seen[d.template] = hashlib.sha256(p.read_bytes()).hexdigest()
    return [{"name": k, "sha256": v} for k, v in sorted(seen.items())]


def _template_errors() -> tuple[type[BaseException], ...]:
    """What a template (not this code) can cause: a Jinja error (syntax, an undefined variable
    under StrictUndefined), a file that is not a DOCX, XML the template's tags broke."""
    import zipfile

    from docx.opc.exceptions import PackageNotFoundError
    from lxml.etree import XMLSyntaxError

    return TemplateError, KeyError, XMLSyntaxError, zipfile.BadZipFile, PackageNotFoundError


def render(doc: Document, court: Court, out_dir: Path) -> Path:
    """Fill one template. A template's error is a BatchFailed (no retry can fix it), its cause
    kept; any other exception is a bug and propagates as it is."""
    path = court.template_path(doc.template)
    if not path.is_file():
        raise BatchFailed("render_failed", f"template {doc.template}.docx is missing for court {court.code}")
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{doc.name}.docx"
    try:
        tpl = _template_class()(str(path))
        tpl.render(doc.context, jinja_env=_render_environment(), autoescape=True)
    except TemplateError as exc:
        raise BatchFailed("render_failed", f"template {doc.template}.docx: {type(exc).__name__}: "
                                           f"{_safe_template_error(exc)}") from exc
    except _template_errors() as exc:  # a broken DOCX, bad XML produced by a template, ...
        raise BatchFailed("render_failed", f"template {doc.template}.docx: {type(exc).__name__}") from exc
    except OSError as exc:  # the disk, not the template
        raise Transient("disk", f"reading {path.name}: {exc.strerror}") from exc
    core = tpl.docx.core_properties
    core.title, core.author, core.subject = doc.title[:250], "reliefdocs", f"Batch {doc.context['filing']['batch_id']}"
    stamp = datetime.fromisoformat(doc.context["filing"]["date_iso"])
    core.created = core.modified = stamp
    core.last_printed = stamp
    core.revision = 1
    try:
        docx_adapter.save(tpl.docx, out, stamp)
    except OSError as exc:  # the disk, not the template
        raise Transient("disk", f"writing {out.name}: {exc.strerror}") from exc
    return out


def _safe_template_error(exc: TemplateError) -> str:
    """Template errors name variables and template lines, not event values; keep it short anyway."""
    msg = str(exc.message or "")[:200]
    return msg + (f" (template line {exc.lineno})" if getattr(exc, "lineno", None) else "")
