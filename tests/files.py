"""Small files the tests make: PDFs drawn with reportlab, DOCX files with one part changed."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from reportlab.pdfgen import canvas


def drawn_pdf(path: Path, pages: int) -> Path:
    """A letter-size PDF whose pages say "row page 1", "row page 2", ..."""
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=(612, 792))
    for i in range(pages):
        c.drawString(72, 700, f"row page {i + 1}")
        c.showPage()
    c.save()
    path.write_bytes(buf.getvalue())
    return path


def rewrite_part(src: Path, dst: Path, name: str, change) -> Path:
    """A copy of the DOCX (any zip) src at dst with the part `name` passed through change(bytes)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = zin.read(item)
            zout.writestr(item, change(data) if item.filename == name else data)
    return dst
