"""Stage 5: PDFs -> the court-filing bundle (pypdf), stamped, bookmarked, with its manifest.

Two bundles are made from one batch:
- bundle.pdf, the complete filing as the court receives it, exhibits naming people included
  (lodged conditionally under seal, CRC 2.550-2.551);
- bundle-public.pdf, the same papers with the public redacted exhibits.

Pages are numbered consecutively across each bundle (CRC 3.1110), the number stamped at the
bottom centre above the paper's footer title; every document, and every exhibit by its
letter, has a bookmark. Each document is also kept on its own, stamped with the numbers it
has in the bundle. Output is deterministic: metadata dates come from the batch, file
identifiers from the bundle id, so the same batch gives the same bytes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from pypdf import PdfReader, PdfWriter
from pypdf.generic import NameObject

from service import __version__
from service import papers
from service.pypdf_adapter import live_objects, set_file_id
from service.render import Document

PAGE_NUMBER_BASELINE_PT = 45  # 0.62 in above the bottom edge; templates keep this band free
# where the exhibit templates draw their footer (measured on LibreOffice's output), for blank pages
FOOTER_RULE_PT, FOOTER_TITLE_BASELINE_PT, FOOTER_MARGIN_PT = 28, 17, 54
BLANK_NOTE = ("The complete exhibit and its public redacted version have the same page numbers;",
              "the shorter of the two ends with blank pages.")
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/liberation2/LiberationSerif-Regular.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf",
)


@dataclass(frozen=True)
class Part:
    """One converted document on its way into the bundle."""

    doc: Document
    pdf: Path
    pages: int


@dataclass(frozen=True)
class Output:
    role: str
    name: str  # file name in the bundle folder
    path: Path
    media_type: str
    pages: int | None
    confidential: bool
    first_page: int | None = None


def page_count(pdf: Path) -> int:
    return len(PdfReader(str(pdf)).pages)


def _font() -> str:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    for path in FONT_CANDIDATES:
        if Path(path).is_file():
            if "PageNumberSerif" not in pdfmetrics.getRegisteredFontNames():
                pdfmetrics.registerFont(TTFont("PageNumberSerif", path))
            return "PageNumberSerif"
    return "Times-Roman"


def _numbers(first: int, count: int, sizes: list[tuple[float, float]]) -> PdfReader:
    """A PDF of `count` transparent pages each carrying only its page number."""
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    font = _font()
    c = canvas.Canvas(buf, invariant=1, pageCompression=1, initialFontName=font, initialFontSize=12)
    for i in range(count):
        w, h = sizes[i]
        c.setPageSize((w, h))
        c.setFont(font, 12)
        c.drawCentredString(w / 2, PAGE_NUMBER_BASELINE_PT, str(first + i))
        c.showPage()
    c.save()
    buf.seek(0)
    return PdfReader(buf)


def pad(part: Part, pages: int, out: Path) -> Part:
    """part's PDF followed by blank pages up to `pages` pages in all.

    An exhibit's complete version (lodged conditionally under seal) and its public redacted
    version must have the same pages, so that the index of exhibits and a citation of a page
    are right in both bundles: the shorter of the two is padded with pages that say they are
    blank on purpose, each with the document's footer rule and title."""
    missing = pages - part.pages
    if missing <= 0:
        return part
    from reportlab.pdfgen import canvas

    writer = PdfWriter(clone_from=str(part.pdf))
    w, h = float(writer.pages[-1].mediabox.width), float(writer.pages[-1].mediabox.height)
    buf = io.BytesIO()
    font = _font()
    c = canvas.Canvas(buf, invariant=1, pageCompression=1, initialFontName=font, initialFontSize=12)
    footer = part.doc.context.get("footer_title") or part.doc.title
    for _ in range(missing):
        c.setPageSize((w, h))
        c.setFont(font, 12)
        c.drawCentredString(w / 2, h / 2 + 9, "This page is intentionally left blank.")
        c.setFont(font, 10)
        for i, line in enumerate(BLANK_NOTE):
            c.drawCentredString(w / 2, h / 2 - 9 - 13 * i, line)
        c.setLineWidth(0.75)  # the footer of the templates (CRC 2.110): a rule, then the paper's title
        c.line(FOOTER_MARGIN_PT, FOOTER_RULE_PT, w - FOOTER_MARGIN_PT, FOOTER_RULE_PT)
        c.drawCentredString(w / 2, FOOTER_TITLE_BASELINE_PT, footer)
        c.showPage()
    c.save()
    buf.seek(0)
    for page in PdfReader(buf).pages:
        writer.add_page(page)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as f:
        writer.write(f)
    return Part(part.doc, out, pages)


def same_pagination(parts: list[Part], out_dir: Path) -> list[Part]:
    """Pad each exhibit's shorter version (complete or public redacted) to the other's length."""
    longest: dict[str, int] = {}
    for p in parts:
        if p.doc.kind.is_exhibit:
            longest[p.doc.letter] = max(longest.get(p.doc.letter, 0), p.pages)
    return [pad(p, longest[p.doc.letter], out_dir / f"{p.doc.name}.pdf") if p.doc.kind.is_exhibit else p
            for p in parts]


def _pdf_date(iso: str) -> str:
    digits = "".join(ch for ch in iso[:19] if ch.isdigit())
    return f"D:{digits}Z"


def _finish(writer: PdfWriter, seed: str, title: str, subject: str, author: str, created_at: str) -> None:
    writer.add_metadata({"/Title": title, "/Author": author, "/Subject": subject,
                         "/Creator": f"reliefdocs {__version__}", "/Producer": f"reliefdocs {__version__} (pypdf)",
                         "/CreationDate": _pdf_date(created_at), "/ModDate": _pdf_date(created_at)})
    set_file_id(writer, seed)


def _stamp(part: Part, first: int, path: Path, seed: str, label: str, author: str, created_at: str) -> None:
    """Write part.pdf to path with its pages numbered from `first` and one bookmark."""
    writer = PdfWriter(clone_from=str(part.pdf))
    sizes = [(float(p.mediabox.width), float(p.mediabox.height)) for p in writer.pages]
    overlay = _numbers(first, len(writer.pages), sizes)
    for page, number in zip(writer.pages, overlay.pages):
        page.merge_page(number)
        page.compress_content_streams()  # merging leaves the page's content uncompressed
    writer.add_outline_item(title=part.doc.bookmark, page_number=0)
    _finish(writer, seed, part.doc.title, label, author, created_at)
    writer.compress_identical_objects(remove_duplicates=True, remove_unreferenced=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        writer.write(f)


def _drop_duplicates(writer: PdfWriter, passes: int = 8) -> None:
    """Keep one copy of identical objects. The documents converted together carry the same
    fonts, but as copies: one pass merges the font programs, the next the descriptors that now
    point to the same program, then the font dictionaries, then the resources; so merge until a
    pass finds nothing more."""
    for _ in range(passes):
        before = live_objects(writer)
        writer.compress_identical_objects(remove_duplicates=True, remove_unreferenced=True)
        if live_objects(writer) == before:
            break


def build(parts: list[Part], out_dir: Path, bundle_id: str, created_at: str, label: str, author: str) -> list[Output]:
    """Write bundle.pdf, bundle-public.pdf and each stamped document into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs: list[Output] = []
    bundles = 0  # the bundles come first in the outputs, in papers.VARIANTS order
    written: set[str] = set()
    stamped: dict[tuple[str, int], Path] = {}  # (document, first page) -> its stamped PDF
    complete: set[str] = set()
    for variant in papers.VARIANTS:
        chosen = [p for p in parts if p.doc.kind.goes_to(variant.role)]
        if not chosen or (complete and {p.doc.name for p in chosen} <= complete):
            continue  # a public bundle with no redacted paper would only repeat the complete one's papers
        complete |= {p.doc.name for p in chosen}
        writer = PdfWriter()
        first = 1
        for part in chosen:
            path = stamped.get((part.doc.name, first))
            if path is None:  # documents at the same pages in both bundles are stamped once
                path = out_dir / variant.role / f"{part.doc.name}.pdf"
                _stamp(part, first, path, f"{bundle_id}/{part.doc.name}", label, author, created_at)
                if part.doc.name not in written and part.doc.kind.goes_to(papers.ALONE):
                    # each document alone, with the numbers it has in the first bundle holding it
                    single = out_dir / path.name
                    path.replace(single)
                    path = single
                    outputs.append(Output(part.doc.role, single.name, single, "application/pdf", part.pages,
                                          part.doc.confidential, first))
                    written.add(part.doc.name)
                stamped[(part.doc.name, first)] = path
            writer.append(str(path), import_outline=False)
            writer.add_outline_item(title=part.doc.bookmark, page_number=first - 1)
            first += part.pages
        writer.page_mode = NameObject("/UseOutlines")
        _finish(writer, f"{bundle_id}/{variant.file}", variant.title.format(label=label), label, author, created_at)
        _drop_duplicates(writer)
        path = out_dir / variant.file
        with open(path, "wb") as f:
            writer.write(f)
        outputs.insert(bundles, Output(variant.role, variant.file, path, "application/pdf",
                                       len(writer.pages), variant.confidential, 1))
        bundles += 1
    return outputs
