"""Stage 4, converting a bundle at once: its DOCX files -> one DOCX -> one PDF -> each document's pages.

Every PDF LibreOffice writes embeds its own subsets of the fonts it uses, and subsets of the
same font made for different documents differ, so merging per-document PDFs keeps them all:
in a 23-page bundle, 15 font subsets made 62 % of the bytes. So the documents of a bundle
are combined into ONE DOCX, each document its own section with its own page setup, headers
and footers (the pleading ruler, the footer title) and a bookmark on its first paragraph;
LibreOffice converts it once, turning the bookmarks into named destinations; the PDF is cut
at those destinations into one PDF per document. Every part then carries the same font
objects, which the bundle stores once. LibreOffice lays out each section as it lays out
the document alone (checked page by page in tests/e2e/test_documents.py).

Sealed and public papers are never combined into the same DOCX (flush.convert_together makes
one group of each): a font subset holds every character its conversion printed, and its
ToUnicode map lists them, so a public PDF cut from a combined conversion would carry the
glyphs of the sealed names.

A long document (is_long) is converted on its own. Documents that cannot be combined without
changing how they print (a template with images, hyperlinks, footnotes, or numbering, theme,
settings or defaults of its own) are converted one by one, as before: NotCombinable says
why, and the caller logs it.
"""

from __future__ import annotations

from copy import deepcopy
from functools import cache
from pathlib import Path
from typing import Any

_NS = {"w": "http://schemas.openxmlformats.org/wordprocessingml/2006/main"}
MARK = "reliefdocspart"  # named destinations: letters and digits only (LibreOffice escapes the rest)
_SHARED = ("numbering", "settings", "fontTable", "theme", "webSettings")
# stylesWithEffects: Word 2010's copy of the styles, which LibreOffice does not read
_ALLOWED = {"styles", "stylesWithEffects", "header", "footer", "customXml", *_SHARED}


LONG_DOCUMENT_XML_BYTES = 1_000_000


def is_long(path: Path) -> bool:
    """A document to convert on its own: LibreOffice's time per page grows with a document's
    length (the exhibit rows sweep of `make bench`), so joining a long document (the per-case
    orders of a large batch: 2.9 MB of XML, 500 pages) to the others slows them all (1.11x for a
    500-case batch), while its own font set is a small share of its bytes. The exhibits of a
    500-case batch are 0.1-0.3 MB each."""
    import zipfile

    with zipfile.ZipFile(path) as z:
        return z.getinfo("word/document.xml").file_size > LONG_DOCUMENT_XML_BYTES


def _rel_kind(reltype: str) -> str:
    return reltype.rsplit("/", 1)[-1]


class NotCombinable(Exception):
    """These documents cannot be converted as one without changing how they print."""


def _check(doc, path: Path, shared: dict[str, bytes] | None) -> dict[str, bytes]:
    """The parts every combined document must share, or NotCombinable saying what differs."""
    from docx.oxml.ns import qn

    parts: dict[str, bytes] = {}
    for rel in doc.part.rels.values():
        kind = _rel_kind(rel.reltype)
        if rel.is_external or kind not in _ALLOWED:
            raise NotCombinable(f"{path.name} has a {kind} relationship")
        if kind in ("header", "footer") and rel.target_part.rels:
            raise NotCombinable(f"{path.name}: a {kind} with its own relationships")
        if kind in _SHARED:
            parts[kind] = rel.target_part.blob
    defaults = doc.styles.element.find(qn("w:docDefaults"))
    parts["docDefaults"] = b"" if defaults is None else _xml(defaults)
    if next(doc.element.body.iter(qn("w:p")), None) is None:
        raise NotCombinable(f"{path.name} has no paragraph to mark")
    if shared is not None and parts != shared:
        differ = sorted(k for k in set(parts) | set(shared) if parts.get(k) != shared.get(k))
        raise NotCombinable(f"{path.name} differs from the first document in {', '.join(differ)}")
    return parts


def _defaults(styles) -> dict[str, str | None]:
    """The default paragraph and table style ids among these w:style elements."""
    from docx.oxml.ns import qn

    found: dict[str, str | None] = {"paragraph": None, "table": None}
    for st in styles:
        kind = st.get(qn("w:type"))
        if kind in found and found[kind] is None and st.get(qn("w:default")) in ("1", "true"):
            found[kind] = st.get(qn("w:styleId"))
    return found


def _xml(element) -> bytes:
    from lxml import etree

    return etree.tostring(element)


def combine(paths: list[Path], out: Path) -> None:
    """One DOCX holding the documents in order, each from a new page as its own section(s),
    with the bookmark MARK{k} on document k's first paragraph.

    Styles: a later document's style that the first lacks is copied; one that the first
    defines differently (the exhibits' own Normal and TableText, say), or that is based on
    such a style, is copied under a new id and name, and that document's paragraphs, runs and
    tables (body, headers, footers) are pointed at the copy, paragraphs and tables without a
    style at its own defaults. Numbering, fonts, theme, settings and document defaults must be
    the same in all: NotCombinable says which differ (or what else keeps them apart), before
    anything is written."""
    from docx import Document

    if len(paths) < 2:
        raise NotCombinable("one document")
    master = Document(str(paths[0]))
    combined = _Combined(master, _check(master, paths[0], None))
    for k, path in enumerate(paths[1:], start=1):
        doc = Document(str(path))
        _check(doc, path, combined.shared)
        combined.append(doc, k)
    out.parent.mkdir(parents=True, exist_ok=True)
    master.save(str(out))


@cache
def _qn(tag: str) -> str:
    """python-docx's qualified name of a tag, computed once per tag (restyle asks for it per element)."""
    from docx.oxml.ns import qn

    return qn(tag)


class _Combined:
    """The first document, growing as the others are appended (see combine)."""

    STYLE_REFS = ("w:pStyle", "w:rStyle", "w:tblStyle")

    def __init__(self, master: Any, shared: Any):
        self.master = master
        self.shared = shared
        self.body = master.element.body
        self.styles = master.styles.element
        self.mine = {s.get(_qn("w:styleId")): _xml(s) for s in self.styles.findall(_qn("w:style"))}
        self.defaults = _defaults(self.styles.findall(_qn("w:style")))
        self.parts = 0  # headers and footers copied so far
        self.mark(self.body, 0)

    @staticmethod
    def mark(root: Any, k: int) -> None:
        qn = _qn
        p = next(root.iter(qn("w:p")))
        ppr = p.find(qn("w:pPr"))
        at = 0 if ppr is None else list(p).index(ppr) + 1
        ident = str(900_000_000 + k)  # far above the ids Word and docxtpl give
        p.insert(at, p.makeelement(qn("w:bookmarkStart"), {qn("w:id"): ident, qn("w:name"): f"{MARK}{k}"}))
        p.insert(at + 1, p.makeelement(qn("w:bookmarkEnd"), {qn("w:id"): ident}))

    @staticmethod
    def starts_a_page(elements: list) -> None:
        """The document's first section begins on a new page, numbered as if alone."""
        qn = _qn
        for e in elements:  # a section ends with a paragraph's sectPr, the last with the body's
            sect = e if e.tag == qn("w:sectPr") else e.find(f"{qn('w:pPr')}/{qn('w:sectPr')}")
            if sect is None:
                continue
            kind = sect.find(qn("w:type"))
            if kind is None:
                kind = sect.makeelement(qn("w:type"), {})
                sect.insert(0, kind)
            kind.set(qn("w:val"), "nextPage")
            return

    def end_section(self) -> None:
        """The body's last sectPr ends the section so far: move it into the last paragraph."""
        qn, body = _qn, self.body
        sect = body.find(qn("w:sectPr"))
        body.remove(sect)
        last = body[-1] if len(body) else None
        if last is None or last.tag != qn("w:p"):
            last = body.makeelement(qn("w:p"), {})
            body.append(last)
        ppr = last.find(qn("w:pPr"))
        if ppr is None:
            ppr = last.makeelement(qn("w:pPr"), {})
            last.insert(0, ppr)
        ppr.append(sect)

    def styles_of(self, theirs: dict, k: int) -> tuple[dict, dict]:
        """Document k's styles merged in: (its renamed style ids, the default styles its
        unstyled paragraphs and tables must be given explicitly)."""
        qn, mine = _qn, self.mine
        renamed = {sid for sid, st in theirs.items() if sid in mine and mine[sid] != _xml(st)}
        grew = True
        while grew:  # a style based on a renamed one is renamed too
            based = {sid for sid, st in theirs.items() if sid in mine and sid not in renamed
                     and st.find(qn("w:basedOn")) is not None and st.find(qn("w:basedOn")).get(qn("w:val")) in renamed}
            grew = bool(based)
            renamed |= based
        new_id = {sid: f"{sid}Doc{k}" for sid in renamed}
        # paragraphs and tables without a style take the document's default style: where that
        # is not the combined document's default, they are given it explicitly
        own = {kind: new_id.get(sid, sid) for kind, sid in _defaults(theirs.values()).items()}
        explicit = {kind: sid for kind, sid in own.items() if sid is not None and sid != self.defaults.get(kind)}
        for sid, st in theirs.items():
            if sid in mine and sid not in renamed:
                continue
            st = self.copied_style(st, new_id, k)
            self.styles.append(st)
            self.mine[st.get(qn("w:styleId"))] = _xml(st)  # as it serializes in place
        return new_id, explicit

    def copied_style(self, st: Any, new_id: dict, k: int) -> Any:
        qn = _qn
        sid = st.get(qn("w:styleId"))
        st = deepcopy(st)
        st.attrib.pop(qn("w:default"), None)  # the first document's defaults stay the defaults
        if sid in new_id:
            st.set(qn("w:styleId"), new_id[sid])
            name = st.find(qn("w:name"))
            if name is not None:
                name.set(qn("w:val"), f"{name.get(qn('w:val'))} (document {k + 1})")
        for tag in ("w:basedOn", "w:next", "w:link"):
            ref = st.find(qn(tag))
            if ref is not None and ref.get(qn("w:val")) in new_id:
                ref.set(qn("w:val"), new_id[ref.get(qn("w:val"))])
        return st

    @staticmethod
    def restyle(root: Any, new_id: dict, explicit: dict) -> None:
        qn = _qn
        val = qn("w:val")
        if new_id:
            for ref in root.iter(*map(qn, _Combined.STYLE_REFS)):
                sid = ref.get(val)
                if sid in new_id:
                    ref.set(val, new_id[sid])
        for kind, (tag, props, ref_tag) in (("paragraph", ("w:p", "w:pPr", "w:pStyle")),
                                            ("table", ("w:tbl", "w:tblPr", "w:tblStyle"))):
            if kind not in explicit:
                continue
            unstyled = _unstyled(tag, props, ref_tag)(root)
            tag, props, ref_tag, sid = qn(tag), qn(props), qn(ref_tag), explicit[kind]
            for element in unstyled:  # chosen by XPath in C: most paragraphs have a style already
                pr = element.find(props)
                if pr is None:
                    pr = element.makeelement(props, {})
                    element.insert(0, pr)
                pr.insert(0, pr.makeelement(ref_tag, {val: sid}))

    def append(self, doc: Any, k: int) -> None:
        qn = _qn
        theirs = {s.get(qn("w:styleId")): s for s in doc.styles.element.findall(qn("w:style"))}
        new_id, explicit = self.styles_of(theirs, k)
        # copies: lxml moves a copy into another document ~20x faster than the original element
        elements = [deepcopy(e) for e in doc.element.body]
        for e in elements:
            for b in e.iter(qn("w:bookmarkStart"), qn("w:bookmarkEnd")):
                if (b.get(qn("w:id")) or "").isdigit():  # keep bookmark ids unique across documents
                    b.set(qn("w:id"), str(int(b.get(qn("w:id"))) + 100_000 * k))
        self.mark(next(e for e in elements if next(e.iter(qn("w:p")), None) is not None), k)
        self.starts_a_page(elements)
        for e in elements:
            self.restyle(e, new_id, explicit)
            self.copy_headers_and_footers(doc, e, new_id, explicit)
        self.end_section()
        for e in elements:
            self.body.append(e)

    def copy_headers_and_footers(self, doc: Any, element: Any, new_id: dict, explicit: dict) -> None:
        from docx.opc.packuri import PackURI
        from docx.opc.part import Part
        from docx.oxml import parse_xml

        qn, rid = _qn, _qn("r:id")
        for ref in [*element.iter(qn("w:headerReference")), *element.iter(qn("w:footerReference"))]:
            source = doc.part.rels[ref.get(rid)]
            self.parts += 1
            kind = "header" if ref.tag == qn("w:headerReference") else "footer"
            xml = parse_xml(source.target_part.blob)
            self.restyle(xml, new_id, explicit)
            part = Part(PackURI(f"/word/{kind}{100 + self.parts}.xml"), source.target_part.content_type,
                        _xml_document(xml), self.master.part.package)
            ref.set(rid, self.master.part.relate_to(part, source.reltype))


@cache
def _unstyled(tag: str, props: str, ref_tag: str) -> Any:
    """An XPath: the `tag` elements (the root too) whose first `props` has no `ref_tag`, in document order."""
    from lxml import etree

    return etree.XPath(f"descendant-or-self::{tag}[not({props}[1]/{ref_tag})]", namespaces=_NS)


def _xml_document(element) -> bytes:
    from lxml import etree

    return etree.tostring(element, xml_declaration=True, encoding="UTF-8", standalone=True)


def split(pdf: Path, outs: list[Path]) -> list[int]:
    """Cut the combined PDF at the named destinations MARK0, MARK1, ... into outs (one PDF per
    document, in order); returns each part's page count. A missing or out-of-order mark is a
    ValueError: the caller converts the documents one by one instead."""
    from pypdf import PdfReader, PdfWriter

    reader = PdfReader(str(pdf))
    dests = reader.named_destinations
    starts = []
    for k in range(len(outs)):
        dest = dests.get(f"/{MARK}{k}") or dests.get(f"{MARK}{k}")
        if dest is None:
            raise ValueError(f"the combined PDF has no mark for document {k + 1}")
        starts.append(reader.get_destination_page_number(dest))
    ends = [*starts[1:], len(reader.pages)]
    if starts[0] != 0 or any(b <= a for a, b in zip(starts, ends)):
        raise ValueError(f"the combined PDF's document marks are not in order: pages {starts}")
    for path, first, end in zip(outs, starts, ends):
        writer = PdfWriter()
        for i in range(first, end):
            writer.add_page(reader.pages[i])
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            writer.write(f)
    return [end - first for first, end in zip(starts, ends)]
