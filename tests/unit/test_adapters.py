"""The behaviours the library adapters rely on, pinned against each library's public results:
an upgrade of docxtpl, python-docx or pypdf that changes one fails here first."""

from __future__ import annotations

import io
import zipfile
from datetime import datetime
from pathlib import Path

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
