"""The behaviours the library adapters rely on, pinned against each library's public results:
an upgrade of docxtpl, python-docx or pypdf that changes one fails here first."""

from __future__ import annotations

import io
import zipfile
from datetime import datetime
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter

from service import docx_adapter, pypdf_adapter

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "templates" / "default" / "order.docx"


def test_template_class_patches_and_lists_as_docxtpl_does():
    from docxtpl import DocxTemplate

    kept = {}
    cls = docx_adapter.template_class(kept.get, lambda k, v: kept.setdefault(k, v))
    ours, theirs = cls(str(TEMPLATE)), DocxTemplate(str(TEMPLATE))
    ours.init_docx()
    theirs.init_docx()
    xml = theirs.get_xml()
    assert ours.patch_xml(xml) == theirs.patch_xml(xml) == ours.patch_xml(xml)  # second call from the cache
    plain = "<w:t>no special characters</w:t>"
    assert ours.resolve_listing(plain) == theirs.resolve_listing(plain)
    listed = "<w:t>a\tb\nc</w:t>"
    assert ours.resolve_listing(listed) == theirs.resolve_listing(listed)


def test_save_writes_what_python_docx_saves(tmp_path):
    from docx import Document

    stamp = datetime(2026, 1, 2)
    ours = tmp_path / "ours.docx"
    docx_adapter.save(Document(str(TEMPLATE)), ours, stamp)
    buf = io.BytesIO()
    Document(str(TEMPLATE)).save(buf)
    with zipfile.ZipFile(buf) as theirs, zipfile.ZipFile(ours) as mine:
        assert [i.filename for i in mine.infolist()] == [i.filename for i in theirs.infolist()]
        for info in mine.infolist():
            assert mine.read(info) == theirs.read(info.filename), info.filename
            assert info.date_time == (2026, 1, 2, 0, 0, 0)


def test_template_parts_name_body_headers_and_footers():
    names = [name for name, _ in docx_adapter.template_parts(TEMPLATE)]
    assert names[0] == "body" and all(n.endswith(".xml") for n in names[1:])


def test_file_id_is_written_as_set_and_live_objects_count_shrinks(tmp_path):
    from reportlab.pdfgen import canvas

    page = tmp_path / "page.pdf"
    c = canvas.Canvas(str(page))
    c.drawString(72, 720, "the same page twice")
    c.save()
    writer = PdfWriter()
    writer.append(str(page))
    writer.append(str(page))  # two copies of the page's font and resources
    pypdf_adapter.set_file_id(writer, "seed")
    before = pypdf_adapter.live_objects(writer)
    writer.compress_identical_objects(remove_duplicates=True, remove_unreferenced=True)
    assert pypdf_adapter.live_objects(writer) < before
    out = tmp_path / "x.pdf"
    with open(out, "wb") as f:
        writer.write(f)
    import hashlib

    ident = [x.original_bytes for x in PdfReader(str(out)).trailer["/ID"]]
    assert ident == [hashlib.md5(b"seed").digest()] * 2


W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def _table(grid: int, rows: list[list[int]]) -> str:
    """A body with one table: `grid` columns, each row a list of cells by the columns each spans."""
    cells = lambda row: "".join(f"<w:tc><w:tcPr><w:gridSpan w:val='{s}'/></w:tcPr><w:p/></w:tc>" if s > 1
                                else "<w:tc><w:p/></w:tc>" for s in row)
    return (f"<w:document xmlns:w='{W_NS}'><w:body><w:tbl><w:tblGrid>"
            + "".join("<w:gridCol w:w='1000'/>" for _ in range(grid)) + "</w:tblGrid>"
            + "".join(f"<w:tr>{cells(r)}</w:tr>" for r in rows) + "</w:tbl></w:body></w:document>")


@pytest.mark.parametrize("xml, fits", [
    (_table(2, [[1, 1], [1, 1]]), True),
    (_table(2, [[1, 1], [1, 1, 1]]), False),  # a row with more cells: fix_tables adds a column
    (_table(3, [[1, 1], [1, 1]]), False),  # fewer cells than columns: it removes one
    (_table(2, [[2], [1, 1]]), False),  # a cell spanning columns
    (_table(2, []), False),  # no rows: it removes every column
])
def test_fix_tables_is_skipped_only_where_docxtpl_changes_nothing(xml, fits):
    from docxtpl import DocxTemplate
    from lxml import etree

    cls = docx_adapter.template_class({}.get, lambda k, v: v)
    ours, theirs = cls(str(TEMPLATE)), DocxTemplate(str(TEMPLATE))
    assert docx_adapter.tables_fit(docx_adapter.parse_recovering(xml)) is fits
    assert etree.tostring(ours.fix_tables(xml)) == etree.tostring(theirs.fix_tables(xml))
    if fits:
        assert etree.tostring(theirs.fix_tables(xml)) == etree.tostring(docx_adapter.parse_recovering(xml))
