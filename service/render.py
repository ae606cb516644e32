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
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup, escape

from service.batching import SealedBatch
from service.errors import BatchFailed, Rejected, Transient

RELIEFS = {
    "dismiss_and_seal": {"title": "Dismissal and Sealing",
                         "action": "dismiss the conviction and seal the record of it"},
    "reduce_to_misdemeanor": {"title": "Reduction to Misdemeanor",
                              "action": "reduce the felony conviction to a misdemeanor"},
    "redesignate_infraction": {"title": "Redesignation as Infraction",
                               "action": "redesignate the misdemeanor conviction as an infraction"},
}
FOOTERS = {
    "motion": "NOTICE OF MOTION AND MOTION FOR RELIEF (HS 11361.8, 11361.9)",
    "order": "[PROPOSED] ORDER GRANTING RELIEF (HS 11361.8, 11361.9)",
    "proof_of_service": "PROOF OF SERVICE",
    "case_order": "[PROPOSED] ORDER GRANTING RELIEF (HS 11361.8, 11361.9)",
}
TITLES = {
    "motion": "NOTICE OF MOTION AND MOTION FOR RELIEF UNDER HEALTH AND SAFETY CODE SECTIONS 11361.8 AND 11361.9; "
              "MEMORANDUM OF POINTS AND AUTHORITIES",
    "order": "[PROPOSED] ORDER GRANTING RELIEF UNDER HEALTH AND SAFETY CODE SECTIONS 11361.8 AND 11361.9",
    "proof_of_service": "PROOF OF SERVICE",
    "case_order": "[PROPOSED] ORDER GRANTING RELIEF IN AN INDIVIDUAL CASE",
}
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
    return Markup(_SPACE.sub(" ", str(value)).translate(_ESCAPE_AND_BRACES))


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


_ENV: _RenderEnvironment | None = None
_PATCHED = _Bounded(256)
_TEMPLATE_CLASS: Any = None


def _render_environment() -> _RenderEnvironment:
    global _ENV
    if _ENV is None:
        _ENV = _RenderEnvironment()
    return _ENV


def _template_class() -> Any:
    """DocxTemplate with two results kept: docxtpl's regex patching of a template part (a pure
    function of the part's XML, so kept by that XML), and its `resolve_listing` pass skipped
    when the rendered XML holds none of the four characters it rewrites (tab, BEL, newline,
    form feed: then every substitution it makes gives back the text it matched)."""
    global _TEMPLATE_CLASS
    if _TEMPLATE_CLASS is None:
        from docxtpl import DocxTemplate

        class Template(DocxTemplate):
            def patch_xml(self, src_xml: str) -> str:
                return _PATCHED.get(src_xml) or _PATCHED.put(src_xml, super().patch_xml(src_xml))

            def resolve_listing(self, xml: str) -> str:
                if "\t" in xml or "\a" in xml or "\n" in xml or "\f" in xml:
                    return super().resolve_listing(xml)
                return xml

        _TEMPLATE_CLASS = Template
    return _TEMPLATE_CLASS


@dataclass(frozen=True)
class Document:
    role: str  # motion, order, exhibit, exhibit_public, proof_of_service, case_order
    name: str  # file stem: motion, order, exhibit-a, exhibit-a-public, ...
    title: str
    template: str  # template name (file stem)
    context: dict[str, Any]
    confidential: bool = False
    letter: str | None = None


class Courts:
    """Which court codes this service files for: those with a folder templates/courts/<CODE>/.
    A code without one is `unknown_court` (dead-lettered), unless the operator allows filing
    it with the default court's settings (RELIEFDOCS_ALLOW_DEFAULT_COURT)."""

    def __init__(self, templates_dir: str | Path, allow_default: bool = False):
        self.root = Path(templates_dir) / "courts"
        self.allow_default = allow_default

    def known(self, code: str) -> bool:
        return not code.startswith("_") and (self.root / code).is_dir()

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
        return list(self.settings.get("documents", ["motion", "order", "exhibit", "exhibit_public", "proof_of_service"]))


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
    }


def _letters(n: int) -> list[str]:
    return [chr(ord("A") + i) for i in range(n)]


def _and_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def filing_date(sb: SealedBatch) -> date:
    return datetime.fromtimestamp(sb.closing_timestamp_ms / 1000, tz=COURT_TZ).date()


def plan(sb: SealedBatch, court: Court, bundle_id: str, chunk_rows: int) -> list[Document]:
    """The documents of a batch, in filing order, each with its full template context."""
    first = sb.decisions[0].data
    by_relief: dict[str, list[dict[str, Any]]] = {code: [] for code in RELIEFS}
    for d in sb.decisions:
        by_relief[d.relief].append(d.data)
    present = [code for code in RELIEFS if by_relief[code]]
    letters = dict(zip(present, _letters(len(present))))
    reliefs = [{"code": code, "letter": letters[code], "title": RELIEFS[code]["title"],
                "action": RELIEFS[code]["action"], "count": len(by_relief[code]),
                "legal_basis": sorted({b for x in by_relief[code] for b in x["legal_basis"]}),
                "page": None} for code in present]  # page: where the exhibit begins, for the motion's index
    exhibit_names = _and_list([f"Exhibit {letters[c]}" for c in present])
    fdate = filing_date(sb)
    settings = court.settings
    base = {
        "office": settings["office"],
        "court": {"code": sb.court_code, "name": first["court"]["name"], "county": first["court"]["county"]},
        "filing": {"batch_id": sb.batch_id, "volume": sb.volume, "bundle_id": bundle_id,
                   "date": fdate.strftime("%B %-d, %Y"), "date_iso": fdate.isoformat(), "case_count": len(sb.decisions)},
        "caption": {"plaintiff": "THE PEOPLE OF THE STATE OF CALIFORNIA",
                    "defendants": f"DEFENDANTS LISTED IN {exhibit_names.upper()}",
                    "case_number": f"Various (see {exhibit_names})",
                    "batch_label": f"Batch {sb.batch_id}, Volume {sb.volume}"},
        "reliefs": reliefs,
        "legal_basis": sorted({b for d in sb.decisions for b in d.data["legal_basis"]}),
        "service": {"place": first["court"]["county"], **settings.get("service", {}),
                    "date": fdate.strftime("%B %-d, %Y")},
    }
    wanted = court.documents
    docs: list[Document] = []

    def add(role: str, name: str, title: str, template: str, extra: dict[str, Any] | None = None,
            confidential: bool = False, letter: str | None = None) -> None:
        footer = FOOTERS.get(role) or (f"EXHIBIT {letter}" + (" (PUBLIC REDACTED VERSION)" if role == "exhibit_public"
                                                              else " (CONDITIONALLY UNDER SEAL)"))
        docs.append(Document(role, name, title, template,
                             {**base, "title": title, "footer_title": footer, **(extra or {})}, confidential, letter))

    if "motion" in wanted:
        add("motion", "motion", TITLES["motion"], "motion")
    if "order" in wanted:
        add("order", "order", TITLES["order"], "order")
    n = 0
    for r in reliefs:
        rows = []
        for data in by_relief[r["code"]]:
            n += 1
            rows.append(case_row(n, data))
        chunks = [rows[i:i + chunk_rows] for i in range(0, len(rows), chunk_rows)]
        exhibit = {"letter": r["letter"], "title": f"Cases for {r['title']}", "code": r["code"], "count": r["count"],
                   "chunks": chunks}
        letter = r["letter"].lower()
        title = f"EXHIBIT {r['letter']}: CASES FOR {r['title'].upper()}"
        if "exhibit" in wanted:
            add("exhibit", f"exhibit-{letter}", title, "exhibit", {"exhibit": exhibit}, confidential=True, letter=r["letter"])
        if "exhibit_public" in wanted:
            add("exhibit_public", f"exhibit-{letter}-public", title + " (PUBLIC REDACTED VERSION)", "exhibit_public",
                {"exhibit": exhibit}, letter=r["letter"])
    if settings.get("case_orders") and "case_order" not in wanted:
        wanted = [*wanted, "case_order"]
    if "case_order" in wanted:
        rows = [case_row(i + 1, d.data) for i, d in enumerate(sb.decisions)]
        add("case_order", "case-orders", TITLES["case_order"], "case_order", {"cases": rows}, confidential=True)
    if "proof_of_service" in wanted:
        served = [{"role": d.role, "title": d.title} for d in docs if d.role != "exhibit_public"]
        add("proof_of_service", "proof-of-service", TITLES["proof_of_service"], "proof_of_service",
            {"documents": served})
    for d in docs:
        d.context.setdefault("documents", [{"role": x.role, "title": x.title} for x in docs])
    return docs


def template_digests(court: Court, docs: list[Document]) -> list[dict[str, str]]:
    seen: dict[str, str] = {}
    for d in docs:
        if d.template not in seen:
            p = court.template_path(d.template)
            seen[d.template] = hashlib.sha256(p.read_bytes()).hexdigest()
    return [{"name": k, "sha256": v} for k, v in sorted(seen.items())]


def render(doc: Document, court: Court, out_dir: Path) -> Path:
    """Fill one template. A template error is a BatchFailed (no retry can fix it)."""
    path = court.template_path(doc.template)
    if not path.is_file():
        raise BatchFailed("render_failed", f"template {doc.template}.docx is missing for court {court.code}")
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{doc.name}.docx"
    try:
        tpl = _template_class()(str(path))
        tpl.render(doc.context, jinja_env=_render_environment(), autoescape=True)
        core = tpl.docx.core_properties
        core.title, core.author, core.subject = doc.title[:250], "reliefdocs", f"Batch {doc.context['filing']['batch_id']}"
        stamp = datetime.fromisoformat(doc.context["filing"]["date_iso"])
        core.created = core.modified = stamp
        core.last_printed = stamp
        core.revision = 1
        _save(tpl.docx, out, stamp)
    except TemplateError as exc:
        raise BatchFailed("render_failed", f"template {doc.template}.docx: {type(exc).__name__}: "
                                           f"{_safe_template_error(exc)}") from None
    except OSError as exc:  # the disk, not the template
        raise Transient("disk", f"writing {out.name}: {exc.strerror}") from None
    except Exception as exc:  # a broken DOCX, bad XML produced by a template, ...
        raise BatchFailed("render_failed", f"template {doc.template}.docx: {type(exc).__name__}") from None
    return out


def _save(document: Any, path: Path, stamp: datetime) -> None:
    """python-docx's save, written straight into the normalised zip (same entries, order and
    bytes as `document.save()` followed by `_normalize_zip`, compressed once instead of twice)."""
    from docx.opc.pkgwriter import PackageWriter

    package = document.part.package
    for part in package.parts:
        part.before_marshal()

    class Entries:
        def __init__(self) -> None:
            self.items: list[tuple[str, bytes]] = []

        def write(self, pack_uri: Any, blob: bytes) -> None:
            self.items.append((pack_uri.membername, blob))

    entries = Entries()
    parts = package.parts
    PackageWriter._write_content_types_stream(entries, parts)
    PackageWriter._write_pkg_rels(entries, package.rels)
    PackageWriter._write_parts(entries, parts)
    _write_zip(path, entries.items, stamp)


def _write_zip(path: Path, entries: list[tuple[str, bytes]], stamp: datetime) -> None:
    import zipfile

    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(stamp.year, stamp.month, stamp.day, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, data)
    tmp.replace(path)


def _normalize_zip(path: Path, stamp: datetime) -> None:
    """Give every zip entry the same date and order, so the same batch gives the same DOCX bytes."""
    import zipfile

    with zipfile.ZipFile(path) as z:
        entries = [(i.filename, z.read(i.filename)) for i in z.infolist()]
    _write_zip(path, entries, stamp)


def _safe_template_error(exc: TemplateError) -> str:
    """Template errors name variables and template lines, not event values; keep it short anyway."""
    msg = str(exc.message or "")[:200]
    return msg + (f" (template line {exc.lineno})" if getattr(exc, "lineno", None) else "")
