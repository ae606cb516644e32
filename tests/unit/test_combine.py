"""service/combine.py without LibreOffice: the combined DOCX (one section per document, a mark
on each document's first paragraph, each from a new page, styles kept apart) and the split of
a PDF at its named destinations."""

from __future__ import annotations

from pathlib import Path

import pytest
from docx import Document
from docx.oxml.ns import qn

from service import combine
from tests.files import drawn_pdf, rewrite_part
from tests.helpers import ROOT

TEMPLATES = ROOT / "templates" / "default"


def test_one_section_per_document_each_marked_and_starting_a_page(tmp_path):
    paths = [TEMPLATES / f"{name}.docx" for name in ("order", "exhibit", "exhibit_public", "proof_of_service")]
    combine.combine(paths, tmp_path / "one.docx")
    one = Document(str(tmp_path / "one.docx"))
    body = one.element.body
    sections = list(body.iter(qn("w:sectPr")))
    assert len(sections) == len(paths)
    assert all(s.find(qn("w:type")).get(qn("w:val")) == "nextPage" for s in sections[1:])
    marks = [b.get(qn("w:name")) for b in body.iter(qn("w:bookmarkStart")) if b.get(qn("w:name")).startswith(combine.MARK)]
    assert marks == [f"{combine.MARK}{k}" for k in range(len(paths))]
    ids = [b.get(qn("w:id")) for b in body.iter(qn("w:bookmarkStart"))]
    assert len(ids) == len(set(ids))
    # every section keeps its own header and footer (the ruler, the footer title)
    assert all(s.find(qn("w:footerReference")) is not None for s in sections)
    # a style the exhibit defines differently from the order is kept apart, not overwritten
    style_ids = [s.get(qn("w:styleId")) for s in one.styles.element.findall(qn("w:style"))]
    assert len(style_ids) == len(set(style_ids))
    text = "\n".join(p.text for p in one.paragraphs)
    for original in paths:
        first = next(p.text for p in Document(str(original)).paragraphs if p.text.strip())
        assert first in text


def test_documents_that_would_print_differently_are_not_combined(tmp_path):
    order = TEMPLATES / "order.docx"
    with pytest.raises(combine.NotCombinable, match="one document"):
        combine.combine([order], tmp_path / "x.docx")
    odd = rewrite_part(order, tmp_path / "odd.docx", "word/settings.xml",
                       lambda xml: xml.replace(b"</w:settings>", b"<w:evenAndOddHeaders/></w:settings>"))
    with pytest.raises(combine.NotCombinable, match="settings"):
        combine.combine([order, odd], tmp_path / "x.docx")
    linked = rewrite_part(order, tmp_path / "linked.docx", "word/_rels/document.xml.rels",
                          lambda xml: xml.replace(b"</Relationships>", b'<Relationship Id="rId99" Type="http://'
                                                  b'schemas.openxmlformats.org/officeDocument/2006/relationships/'
                                                  b'hyperlink" Target="https://example.org" TargetMode="External"/>'
                                                  b'</Relationships>'))
    with pytest.raises(combine.NotCombinable, match="hyperlink"):
        combine.combine([order, linked], tmp_path / "x.docx")
    assert not (tmp_path / "x.docx").exists()


def marked_pdf(path: Path, pages: int, marks: dict[int, int]) -> Path:
    """A PDF with named destinations MARK{k} on the given pages, as LibreOffice writes them."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(drawn_pdf(path, pages)))
    for k, page in marks.items():
        writer.add_named_destination(f"{combine.MARK}{k}", page)
    with open(path, "wb") as f:
        writer.write(f)
    return path


def test_split_cuts_at_the_marks(tmp_path):
    pdf = marked_pdf(tmp_path / "one.pdf", 7, {0: 0, 1: 2, 2: 6})
    outs = [tmp_path / f"{k}.pdf" for k in range(3)]
    assert combine.split(pdf, outs) == [2, 4, 1]
    from pypdf import PdfReader

    assert "page 3" in PdfReader(outs[1]).pages[0].extract_text()
    with pytest.raises(ValueError, match="no mark for document 4"):
        combine.split(pdf, outs + [tmp_path / "3.pdf"])
    with pytest.raises(ValueError, match="not in order"):
        combine.split(marked_pdf(tmp_path / "bad.pdf", 4, {0: 0, 1: 3, 2: 1}), outs)


def test_sealed_and_public_papers_are_converted_apart_and_a_long_one_alone(tmp_path):
    """flush.convert_together: the short confidential documents in one combined call, the short
    public ones in another (named destinations asked for: never a sealed and a public paper in
    the same conversion, whose font subsets would carry the sealed names' glyphs to the public
    PDF), and the long one (per-case orders of a large batch) in a call of its own."""
    from service import flush, papers
    from service.render import Document as Paper

    long_doc = Document(str(TEMPLATES / "case_order.docx"))
    for _ in range(1000):  # about 1.4 MB of XML
        long_doc.add_paragraph("In the matter of case number 000000, the conviction is dismissed. " * 20)
    long_doc.save(str(tmp_path / "case-orders.docx"))
    docx = [TEMPLATES / "order.docx", TEMPLATES / "exhibit.docx", TEMPLATES / "exhibit_public.docx",
            tmp_path / "case-orders.docx", TEMPLATES / "exhibit.docx", TEMPLATES / "proof_of_service.docx"]
    assert [combine.is_long(p) for p in docx] == [False, False, False, True, False, False]
    papers_ = [Paper(papers.BY_ROLE[role], name, name, {}) for role, name in
               (("order", "order"), ("exhibit", "exhibit-a"), ("exhibit_public", "exhibit-a-public"),
                ("case_order", "case-orders"), ("exhibit", "exhibit-b"), ("proof_of_service", "proof-of-service"))]
    calls = []

    def convert(paths, out, destinations=False):
        calls.append(([str(p.relative_to(tmp_path)) for p in paths], destinations))
        out.mkdir(parents=True, exist_ok=True)
        if destinations:  # a combined document: 2 + 3 (+ 1) pages, marked as LibreOffice marks them
            return [marked_pdf(out / "documents.pdf", 6, {0: 0, 1: 2, 2: 5})]
        return [marked_pdf(out / f"{p.stem}.pdf", 4, {}) for p in paths]

    parts = flush.convert_together(papers_, docx, tmp_path / "work", convert)
    assert calls == [(["work/combined/confidential/documents.docx"], True),
                     (["work/combined/public/documents.docx"], True), (["case-orders.docx"], False)]
    assert [(p.doc.name, p.pages) for p in parts] == [("order", 2), ("exhibit-a", 2), ("exhibit-a-public", 3),
                                                      ("case-orders", 4), ("exhibit-b", 4),
                                                      ("proof-of-service", 1)]


def test_a_document_with_its_own_default_styles_keeps_them(tmp_path):
    """The exhibits define Normal differently from the order: their unstyled paragraphs and
    tables must keep their own look, and the combined document has one default per kind."""
    from docx.shared import Pt

    first, second = Document(), Document()
    first.add_paragraph("first")
    second.styles["Normal"].font.size = Pt(9)
    table_normal = next(st for st in second.styles.element.findall(qn("w:style"))
                        if st.get(qn("w:styleId")) == "TableNormal")
    table_pr = table_normal.find(qn("w:tblPr"))
    table_pr.append(table_pr.makeelement(qn("w:tblInd"), {qn("w:w"): "720", qn("w:type"): "dxa"}))
    second.add_paragraph("second, unstyled")
    second.add_table(rows=1, cols=1)
    second.tables[0].style = None
    first.save(str(tmp_path / "first.docx"))
    second.save(str(tmp_path / "second.docx"))
    combine.combine([tmp_path / "first.docx", tmp_path / "second.docx"], tmp_path / "one.docx")
    one = Document(str(tmp_path / "one.docx"))
    styles = one.styles.element.findall(qn("w:style"))
    for kind in ("paragraph", "table"):
        assert sum(1 for s in styles if s.get(qn("w:type")) == kind and s.get(qn("w:default")) in ("1", "true")) == 1
    by_text = {p.text: p for p in one.paragraphs}
    assert by_text["first"].style.style_id == "Normal"
    assert by_text["second, unstyled"].style.style_id == "NormalDoc1"
    assert one.styles["Normal (document 2)"].font.size == Pt(9)
    table = one.element.body.find(f".//{qn('w:tbl')}")
    assert table.find(f"{qn('w:tblPr')}/{qn('w:tblStyle')}").get(qn("w:val")) == "TableNormalDoc1"
