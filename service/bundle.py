"""Stage 5: converted parts -> the papers filed, and the two bundles (pypdf).

The parts of a batch (service/papers.py) are filed as papers, each its own PDF, its pages
numbered from 1 (CRC 3.1110(c); rule 2.109), the number stamped at the bottom centre above
the paper's footer title, each part of it bookmarked (an exhibit by its letter, 3.1110(f)):
- motion.pdf, the lead document: notice, memorandum, index of exhibits, declaration and the
  public redacted exhibits;
- order.pdf, the proposed order (3.1312); proof-of-service.pdf;
- lodged-under-seal.pdf, the record lodged conditionally under seal (2.551(d)): a cover page
  with the caption and the legend, then the complete exhibits; confidential;
- case-orders.pdf, where a court asks for them; confidential.
Then two bundles of those papers as they are, one top-level bookmark per paper:
- bundle.pdf, every paper: the office's complete review copy, confidential, never filed;
- bundle-public.pdf, the papers filed publicly.
Output is deterministic: metadata dates come from the batch, file identifiers from the
bundle id, so the same batch gives the same bytes.
"""

from __future__ import annotations

import functools
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


@functools.cache  # once per process: a stat per font candidate per paper showed in the profile
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


def _pdf_date(iso: str) -> str:
    digits = "".join(ch for ch in iso[:19] if ch.isdigit())
    return f"D:{digits}Z"


def _finish(writer: PdfWriter, seed: str, title: str, subject: str, author: str, created_at: str) -> None:
    writer.add_metadata({"/Title": title, "/Author": author, "/Subject": subject,
                         "/Creator": f"reliefdocs {__version__}", "/Producer": f"reliefdocs {__version__} (pypdf)",
                         "/CreationDate": _pdf_date(created_at), "/ModDate": _pdf_date(created_at)})
    set_file_id(writer, seed)


def _stamp(pages: list, first: int) -> None:
    """Number `pages` (a paper's pages, in its own writer) from `first`."""
    sizes = [(float(p.mediabox.width), float(p.mediabox.height)) for p in pages]
    overlay = _numbers(first, len(pages), sizes)
    for page, number in zip(pages, overlay.pages):
        page.merge_page(number)
        page.compress_content_streams()  # merging leaves the page's content uncompressed


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


def filed_papers(parts: list[Part]) -> list[list[Part]]:
    """The parts grouped into the papers they are filed in, in order of submission."""
    order = {k.role: i for i, k in enumerate(papers.leaders())}
    groups: dict[str, list[Part]] = {}
    for part in parts:
        groups.setdefault(part.doc.kind.filed_in, []).append(part)
    return [groups[role] for role in sorted(groups, key=lambda r: order[r])]


def _paper(chosen: list[Part], out_dir: Path, seed: str, label: str, author: str, created_at: str) -> Output:
    """One paper: its parts one after the other, numbered from 1, a bookmark each."""
    lead = papers.BY_ROLE[chosen[0].doc.kind.filed_in]
    leader = next((p for p in chosen if p.doc.kind is lead), chosen[0])
    writer = PdfWriter()
    first = 1
    for part in chosen:
        start = len(writer.pages)
        writer.append(str(part.pdf), import_outline=False)
        pages = list(writer.pages)[start:]  # once: pypdf walks the page tree again for each len() and step
        _stamp(pages, first)  # numbered here, in the paper's own writer: each part is parsed once
        writer.add_outline_item(title=part.doc.bookmark, page_number=first - 1)
        first += part.pages
    writer.page_mode = NameObject("/UseOutlines")
    _finish(writer, f"{seed}/{lead.name()}", leader.doc.title, label, author, created_at)
    _drop_duplicates(writer)
    path = out_dir / f"{lead.name()}.pdf"
    with open(path, "wb") as f:
        writer.write(f)
    return Output(lead.role, path.name, path, "application/pdf", first - 1, lead.confidential, 1)


def _variant(variant: papers.Variant, chosen: list[Output], titles: dict[str, str], out_dir: Path, seed: str,
             label: str, author: str, created_at: str) -> Output:
    """A bundle: the papers as filed (each numbered from its own page 1), one bookmark each."""
    writer = PdfWriter()
    first = 0
    for paper in chosen:
        writer.append(str(paper.path), import_outline=False)
        writer.add_outline_item(title=titles[paper.role], page_number=first)
        first += paper.pages or 0
    writer.page_mode = NameObject("/UseOutlines")
    _finish(writer, f"{seed}/{variant.file}", variant.title.format(label=label), label, author, created_at)
    _drop_duplicates(writer)
    path = out_dir / variant.file
    with open(path, "wb") as f:
        writer.write(f)
    return Output(variant.role, variant.file, path, "application/pdf", len(writer.pages), variant.confidential, 1)


def build(parts: list[Part], out_dir: Path, bundle_id: str, created_at: str, label: str, author: str) -> list[Output]:
    """Write each paper filed, then bundle.pdf and bundle-public.pdf, into out_dir: the bundles
    first in the outputs (papers.VARIANTS order), then the papers in order of submission."""
    out_dir.mkdir(parents=True, exist_ok=True)
    filed = [_paper(group, out_dir, bundle_id, label, author, created_at) for group in filed_papers(parts)]
    titles = {o.role: papers.BY_ROLE[o.role].bookmark for o in filed}
    bundles = []
    for variant in papers.VARIANTS:
        chosen = [o for o in filed if papers.BY_ROLE[o.role].goes_to(variant.role)]
        if not chosen or (bundles and len(chosen) == len(filed)):
            continue  # a public bundle holding every paper would only repeat the complete one
        bundles.append(_variant(variant, chosen, titles, out_dir, bundle_id, label, author, created_at))
    return bundles + filed
