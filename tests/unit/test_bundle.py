"""bundle.build on small PDFs drawn here (no LibreOffice): the parts are filed as papers, each
numbered from its own page 1 and bookmarked per part; the bundles hold the papers as filed."""

from __future__ import annotations

import subprocess
from pathlib import Path

from pypdf import PdfReader

from service import bundle, papers
from service.render import Document
from tests.files import drawn_pdf as pdf


def doc(role: str, letter: str | None = None) -> Document:
    kind = papers.BY_ROLE[role]
    return Document(kind, kind.name(letter), kind.text("title", letter, "Dismissal and Sealing", 2),
                    {"footer_title": kind.text("footer", letter)}, letter,
                    kind.text("bookmark", letter, "Dismissal and Sealing", 2))


def parts(tmp_path: Path) -> list[bundle.Part]:
    made = [("motion", None, 3), ("declaration", None, 2), ("exhibit_public", "A", 2), ("exhibit_public", "B", 1),
            ("order", None, 2), ("lodged_record", None, 1), ("exhibit", "A", 3), ("exhibit", "B", 1),
            ("proof_of_service", None, 2)]
    return [bundle.Part(doc(role, letter), pdf(tmp_path / f"{role}{letter or ''}.pdf", n), n)
            for role, letter, n in made]


def numbers(path: Path) -> list[int]:
    """The page number stamped at the bottom of each page."""
    out = []
    for i in range(len(PdfReader(str(path)).pages)):
        text = subprocess.run(["pdftotext", "-f", str(i + 1), "-l", str(i + 1), "-y", "700", "-H", "92", "-W", "612",
                               str(path), "-"], capture_output=True, text=True, check=True).stdout
        out.append(int(text.split()[-1]))
    return out


def test_each_paper_is_numbered_from_1_and_bookmarked_per_part(tmp_path):
    outputs = bundle.build(parts(tmp_path), tmp_path / "out", "b" * 32, "2026-11-24T00:00:00Z", "label", "office")
    assert [(o.role, o.name, o.pages, o.confidential) for o in outputs] == [
        ("bundle", "bundle.pdf", 17, True), ("bundle_public", "bundle-public.pdf", 12, False),
        ("motion", "motion.pdf", 8, False), ("order", "order.pdf", 2, False),
        ("lodged_record", "lodged-under-seal.pdf", 5, True), ("proof_of_service", "proof-of-service.pdf", 2, False)]
    by_role = {o.role: o for o in outputs}
    assert numbers(by_role["motion"].path) == list(range(1, 9))
    assert numbers(by_role["lodged_record"].path) == [1, 2, 3, 4, 5]
    assert numbers(by_role["bundle"].path) == [*range(1, 9), 1, 2, 1, 2, 3, 4, 5, 1, 2]
    motion = PdfReader(str(by_role["motion"].path))
    assert [b.title for b in motion.outline] == [
        papers.BY_ROLE["motion"].bookmark, papers.BY_ROLE["declaration"].bookmark,
        "Exhibit A: Cases for Dismissal and Sealing, 2 cases (public redacted version)",
        "Exhibit B: Cases for Dismissal and Sealing, 2 cases (public redacted version)"]
    assert [motion.get_destination_page_number(b) for b in motion.outline] == [0, 3, 5, 7]
    public = PdfReader(str(by_role["bundle_public"].path))
    assert [b.title for b in public.outline] == [papers.BY_ROLE[r].bookmark for r in papers.in_variant("bundle_public")]
    complete = PdfReader(str(by_role["bundle"].path))
    assert [b.title for b in complete.outline] == [papers.BY_ROLE[r].bookmark for r in papers.in_variant("bundle")
                                                   if r != "case_order"]


def test_the_same_parts_give_the_same_bytes(tmp_path):
    first = bundle.build(parts(tmp_path), tmp_path / "one", "b" * 32, "2026-11-24T00:00:00Z", "label", "office")
    again = bundle.build(parts(tmp_path), tmp_path / "two", "b" * 32, "2026-11-24T00:00:00Z", "label", "office")
    assert [o.path.read_bytes() for o in first] == [o.path.read_bytes() for o in again]
