"""bundle.pad and bundle.same_pagination on small PDFs drawn here (no LibreOffice)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from pypdf import PdfReader

from service import bundle, papers
from service.render import Document
from tests.files import drawn_pdf as pdf


def exhibit(role: str, letter: str) -> Document:
    kind = papers.BY_ROLE[role]
    return Document(kind, kind.name(letter), "t", {"footer_title": kind.text("footer", letter)}, letter)


def test_the_shorter_version_of_each_exhibit_is_padded_with_marked_blank_pages(tmp_path):
    parts = [bundle.Part(exhibit("exhibit", "A"), pdf(tmp_path / "a.pdf", 3), 3),
             bundle.Part(exhibit("exhibit_public", "A"), pdf(tmp_path / "ap.pdf", 2), 2),
             bundle.Part(exhibit("exhibit", "B"), pdf(tmp_path / "b.pdf", 1), 1),
             bundle.Part(exhibit("exhibit_public", "B"), pdf(tmp_path / "bp.pdf", 2), 2)]
    out = bundle.same_pagination(parts, tmp_path / "padded")
    assert [p.pages for p in out] == [3, 3, 2, 2]
    assert [len(PdfReader(p.pdf).pages) for p in out] == [3, 3, 2, 2]
    assert out[0].pdf == parts[0].pdf and out[3].pdf == parts[3].pdf  # the longer ones are untouched
    blank = subprocess.run(["pdftotext", "-f", "3", "-l", "3", str(out[1].pdf), "-"], capture_output=True,
                           text=True, check=True).stdout
    assert "intentionally left blank" in blank and "EXHIBIT A (PUBLIC REDACTED VERSION)" in blank
    fonts = subprocess.run(["pdffonts", str(out[1].pdf)], capture_output=True, text=True, check=True).stdout
    assert "LiberationSerif" in fonts
