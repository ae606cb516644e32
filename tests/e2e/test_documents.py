"""The produced PDFs, checked as a clerk's e-filing system would: letter pages, numbered lines,
each paper filed numbered from its own page 1 (the e-filing list naming them), a bookmark per
paper and exhibit, the lodged record's first page, the declaration's counts, the citations,
fonts embedded, searchable text, metadata, and the same bytes when the same batch is filed twice.
Runs the real pipeline (docxtpl, LibreOffice, pypdf) into a folder store."""

from __future__ import annotations

import random
import re
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest
from pypdf import PdfReader

from service import citations, flush, papers
from service.batching import Record, SealedBatch
from service.convert import libreoffice
from service.events import Decision
from service.ledger import StoreLedger
from service.store import FileStore
from tests.e2e.conftest import ROOT
from tests.files import rewrite_part
from tools import sample


class NullProducer:
    def send(self, *args, **kwargs):
        class Done:
            def get(self, timeout=None):
                return None

        return Done()


# characters that only one defendant's name and CII use: no public paper may carry them, not
# even as a glyph of an embedded font subset (Ǯ from DejaVu, the others from Liberation Serif)
MARKERS = "Ǯǯŧŋ"


def batch(n=90, court="LA") -> SealedBatch:
    rng = random.Random(5)
    ds = []
    for i in range(n):
        d = sample.decision(rng, i, court, "LA-DOCS", None, hostile=i % 10 == 3)["data"]
        if i == 0:
            d["defendant"].update(first_name="Ŧŋ", last_name="Ǯǯ", cii="ZQXǮŧ")
        ds.append(Decision(d["decision_id"], court, "LA-DOCS", d["relief"], d))
    return SealedBatch(court, "LA-DOCS", 1, 0, 0, n, 1795564800000, "upstream", tuple(ds),
                       tuple(Record("t", 0, i, 0) for i in range(n)))


def file_once(tmp: Path, sb: SealedBatch) -> tuple[dict, Path]:
    store = FileStore(f"file://{tmp}/store")
    filing = flush.Filing(store=store, ledger=StoreLedger(store), converter=libreoffice("soffice", tmp, 1, 600, "cold"),
                          producer=NullProducer(), notifications_topic="n", templates_dir=ROOT / "templates",
                          work_dir=tmp / "work", chunk_rows=40, retry_max_seconds=1, stopping=threading.Event())
    manifest = flush.file_batch(sb, filing)
    return manifest, tmp / "store"


@pytest.fixture(scope="module")
def filed(tmp_path_factory):
    sb = batch()
    a = file_once(tmp_path_factory.mktemp("a"), sb)
    b = file_once(tmp_path_factory.mktemp("b"), sb)
    return sb, a, b


def doc(manifest, role, media="application/pdf"):
    return next(d for d in manifest["documents"] if d["role"] == role and d["media_type"] == media)


def text(path: Path, *args) -> str:
    return subprocess.run(["pdftotext", *args, str(path), "-"], capture_output=True, text=True, check=True).stdout


def test_same_batch_gives_the_same_bytes(filed):
    _, (ma, _), (mb, _) = filed
    assert [(d["key"], d["sha256"]) for d in ma["documents"]] == [(d["key"], d["sha256"]) for d in mb["documents"]]


def test_letter_size_pages(filed):
    _, (m, store), _ = filed
    for d in m["documents"]:
        if d["media_type"] == "application/pdf":
            for page in PdfReader(store / d["key"]).pages:
                assert (round(float(page.mediabox.width)), round(float(page.mediabox.height))) == (612, 792)


def stamped(pdf: Path, page: int) -> list[str]:
    """The page number stamped 0.62 in above the bottom edge: only that band is read."""
    return text(pdf, "-f", str(page), "-l", str(page), "-x", "0", "-y", "725", "-W", "612", "-H", "25").split()


def test_each_paper_filed_is_numbered_from_1_and_the_efiling_list_names_the_stored_papers(filed):
    _, (m, store), _ = filed
    pdfs = {d["key"]: d for d in m["documents"] if d["media_type"] == "application/pdf"}
    assert [p["type"] for p in m["efiling"]] == ["lead_document", "proposed_order",
                                                 "lodged_conditionally_under_seal", "proof_of_service"]
    assert [p["role"] for p in m["efiling"]] == ["motion", "order", "lodged_record", "proof_of_service"]
    assert [p["confidential"] for p in m["efiling"]] == [False, False, True, False]
    for paper in m["efiling"]:
        stored = pdfs[paper["key"]]
        pages = len(PdfReader(store / paper["key"]).pages)
        assert paper["pages"] == stored["pages"] == pages and paper["confidential"] == stored["confidential"]
        assert paper["first_page"] == stored["first_page"] == 1
        assert [stamped(store / paper["key"], i) for i in range(1, pages + 1)] == [[str(i)] for i in
                                                                                   range(1, pages + 1)], paper["key"]
    assert m["efiling"][1]["editable_key"].endswith("/order.docx")
    assert m["efiling"][1]["editable_key"] in {d["key"] for d in m["documents"]}
    bundle = store / doc(m, "bundle")["key"]  # the review copy: every paper as filed, one after the other
    assert len(PdfReader(bundle).pages) == sum(p["pages"] for p in m["efiling"])


def test_the_lodged_record_begins_with_the_caption_and_the_legend(filed):
    sb, (m, store), _ = filed
    lodged = store / doc(m, "lodged_record")["key"]
    first = text(lodged, "-f", "1", "-l", "1")
    for expected in ("CONDITIONALLY UNDER SEAL", "SUPERIOR COURT OF CALIFORNIA", "THE PEOPLE OF THE STATE OF",
                     "Plaintiff,", "Defendants.", "Case No.:", "RECORD LODGED", "SBN"):
        assert expected in first, expected
    assert doc(m, "lodged_record")["confidential"]
    titles = [o.title for o in PdfReader(lodged).outline]
    assert titles[0] == "Record Lodged Conditionally Under Seal"
    assert len(titles) == 1 + len({d.relief for d in sb.decisions})
    assert all(t.endswith("(conditionally under seal)") for t in titles[1:])


def test_the_declaration_counts_the_batch(filed):
    sb, (m, store), _ = filed
    motion = citations.prose(text(store / doc(m, "motion")["key"], "-layout"))
    assert "I declare under penalty of perjury" in motion
    convictions = sum(len(d.data["convictions"]) for d in sb.decisions)
    assert f"lists {len(sb.decisions)} cases and {convictions} counts of conviction" in motion
    for relief, title in (("dismiss_and_seal", "Dismissal and Sealing"),
                          ("reduce_to_misdemeanor", "Redesignation as a Misdemeanor"),
                          ("redesignate_infraction", "Redesignation as an Infraction")):
        n = sum(d.relief == relief for d in sb.decisions)
        if n:
            assert re.search(rf"{title}, {n} cases? \(Exhibit [A-C]\)", motion), title
    for level in {c["level"] for d in sb.decisions for c in d.data["convictions"]}:
        n = sum(c["level"] == level for d in sb.decisions for c in d.data["convictions"])
        assert f"{level}, {n}" in motion, level


def test_every_citation_of_the_motion_and_order_is_a_checked_one(filed):
    _, (m, store), _ = filed
    for role in ("motion", "order"):
        body = text(store / doc(m, role)["key"], "-layout")
        found = citations.find(body)
        assert found and set(found) <= set(citations.CITATIONS), (role, set(found) - set(citations.CITATIONS))
        argument = body[:body.index("INDEX OF EXHIBITS")] if role == "motion" else body  # not the exhibits' data
        assert "HS 11361" not in argument and "REDUCED" not in argument


def test_line_numbers_in_the_left_margin(filed):
    _, (m, store), _ = filed
    first_page = text(store / doc(m, "motion")["key"], "-f", "1", "-l", "1", "-x", "0", "-y", "0", "-W", "85",
                      "-H", "792")
    numbers = [int(x) for x in first_page.split() if x.isdigit()]
    assert numbers[:20] == list(range(1, 21)), numbers


def test_bookmark_per_paper_and_exhibit(filed):
    sb, (m, store), _ = filed
    titles = [o.title for o in PdfReader(store / doc(m, "bundle")["key"]).outline]
    assert titles == ["Notice of Motion and Motion; Memorandum of Points and Authorities; Index of Exhibits",
                      "[Proposed] Order", "Record Lodged Conditionally Under Seal", "Proof of Service"]
    reliefs = {d.relief for d in sb.decisions}
    motion = [o.title for o in PdfReader(store / doc(m, "motion")["key"]).outline]
    exhibits = [t for t in motion if t.startswith("Exhibit ")]
    assert motion[1] == "Declaration in Support of the Motion" and len(exhibits) == len(reliefs)
    assert all(re.match(r"Exhibit [A-C]: Cases for .+, \d+ cases? \(public redacted version\)", t) for t in exhibits)


def test_fonts_embedded_and_text_searchable(filed):
    _, (m, store), _ = filed
    bundle = store / doc(m, "bundle")["key"]
    fonts = subprocess.run(["pdffonts", str(bundle)], capture_output=True, text=True, check=True).stdout.splitlines()[2:]
    assert fonts and all(line.split()[-5] == "yes" for line in fonts), fonts
    body = text(bundle)
    assert "PLEASE TAKE NOTICE" in body and "CONDITIONALLY UNDER SEAL" in body and "IT IS SO ORDERED" in body


def test_metadata(filed):
    _, (m, store), _ = filed
    meta = PdfReader(store / doc(m, "bundle")["key"]).metadata
    assert "LA-DOCS" in meta.title and meta.author and meta.subject
    assert meta.creation_date.year == 2026


def test_first_page_per_crc_2111(filed):
    _, (m, store), _ = filed
    first = text(store / doc(m, "motion")["key"], "-f", "1", "-l", "1")
    for expected in ("SBN", "Attorneys for Plaintiff", "SUPERIOR COURT OF CALIFORNIA", "THE PEOPLE OF THE STATE OF",
                     "Case No.:", "NOTICE OF MOTION AND MOTION"):
        assert expected in first, expected
    footer = text(store / doc(m, "motion")["key"], "-f", "1", "-l", "1", "-x", "0", "-y", "755", "-W", "612",
                  "-H", "37")
    assert "NOTICE OF MOTION" in footer


def test_order_editable_docx_and_manifest_schema(filed, schemas):
    _, (m, store), _ = filed
    from docx import Document

    d = Document(store / doc(m, "order", "application/vnd.openxmlformats-officedocument.wordprocessingml.document")["key"])
    assert any("IT IS SO ORDERED" in p.text for p in d.paragraphs)
    validator = schemas.validator("manifest.v1")
    assert not list(validator.iter_errors(m))


def test_public_versions_have_no_personal_data(filed):
    sb, (m, store), _ = filed
    public = "".join(text(store / d["key"]) for d in m["documents"]
                     if not d["confidential"] and d["media_type"] == "application/pdf")
    from docx import Document

    for d in m["documents"]:  # and the editable order
        if not d["confidential"] and d["media_type"] != "application/pdf" and d["key"].endswith(".docx"):
            public += "\n".join(p.text for p in Document(store / d["key"]).paragraphs)
    for dd in sb.decisions:
        person = dd.data["defendant"]
        assert person["cii"] not in public and (person.get("date_of_birth") or "-") not in public
        assert person["last_name"] not in public or len(person["last_name"]) < 4
    sealed = text(store / doc(m, "lodged_record")["key"])
    assert "CONDITIONALLY UNDER SEAL" in sealed and sb.decisions[5].data["case"]["number"] in sealed


def test_index_of_exhibits_gives_the_page_each_exhibit_begins_on_in_the_motion(filed):
    _, (m, store), _ = filed
    motion = text(store / doc(m, "motion")["key"], "-layout")
    index = motion[motion.index("INDEX OF EXHIBITS"):]
    # a row: letter, description, number of cases, page ("A   Cases for Dismissal ... 144   7")
    rows = {letter: int(page) for letter, _, page in
            re.findall(r"\b([A-C]) {2,}Cases for .*? (\d+) +(\d+)\s*$", index, re.M)}
    lodged = PdfReader(store / doc(m, "lodged_record")["key"])
    assert len(rows) == len(lodged.outline) - 1, index
    reader = PdfReader(store / doc(m, "motion")["key"])
    starts = {o.title[len("Exhibit ")]: reader.get_destination_page_number(o) + 1
              for o in reader.outline if o.title.startswith("Exhibit ")}
    assert starts == rows, (starts, rows)
    for letter, page in rows.items():  # the page printed on the exhibit's first page is the index's
        assert stamped(store / doc(m, "motion")["key"], page) == [str(page)]


def font_programs(pdf: Path) -> set[str]:
    """Digests of the embedded font programs (FontFile2/3) a PDF's pages use."""
    import hashlib

    found = set()
    for page in PdfReader(pdf).pages:
        fonts = page.get("/Resources", {}).get_object().get("/Font", {})
        for ref in fonts.values():
            font = ref.get_object()
            for f in [font, *(d.get_object() for d in font.get("/DescendantFonts", []))]:
                desc = f.get("/FontDescriptor")
                if desc is None:
                    continue
                for key in ("/FontFile", "/FontFile2", "/FontFile3"):
                    if key in desc.get_object():
                        found.add(hashlib.sha256(desc.get_object()[key].get_object().get_data()).hexdigest())
    return found


def test_the_bundle_embeds_the_fonts_of_three_conversions_not_one_per_document(filed):
    """The sealed papers are converted in one LibreOffice call as one document, the public ones
    (but the motion) in another (service/combine.py), so each group carries the same font
    programs, which the bundle keeps once; no font program is shared by a sealed and a public paper."""
    _, (m, store), _ = filed
    alone = {(d["role"], d["key"]): font_programs(store / d["key"]) for d in m["documents"]
             if d["media_type"] == "application/pdf" and not d["role"].startswith("bundle")}
    motion = next(fonts for (role, _), fonts in alone.items() if role == "motion")
    sealed = [fonts for (role, _), fonts in alone.items() if papers.BY_ROLE[role].confidential]
    public = [fonts for (role, _), fonts in alone.items() if role != "motion" and not papers.BY_ROLE[role].confidential]
    assert sealed and public
    assert all(fonts == sealed[0] for fonts in sealed), "the sealed documents differ in their fonts"
    assert all(fonts == public[0] for fonts in public), "the public documents after the motion differ in their fonts"
    stamp = sealed[0] & public[0]  # the page numbers' font, drawn by reportlab on every paper
    assert len(stamp) <= 1 and not (sealed[0] - stamp) & (public[0] - stamp)
    bundle_fonts = font_programs(store / doc(m, "bundle")["key"])
    assert bundle_fonts == motion | sealed[0] | public[0]
    assert font_programs(store / doc(m, "bundle_public")["key"]) == motion | public[0]
    assert len(bundle_fonts) <= 3 * 4 + 1  # three conversions of at most 4 fonts, and the page numbers' font
    # and one font dictionary per font program: pdffonts lists each font once
    listed = subprocess.run(["pdffonts", str(store / doc(m, "bundle")["key"])], capture_output=True, text=True,
                            check=True).stdout.splitlines()[2:]
    assert len(listed) == len(bundle_fonts), listed


def cmap_chars(data: bytes) -> set[str]:
    """Every character a ToUnicode CMap maps a glyph to (bfchar and bfrange entries)."""
    text = data.decode("latin-1")
    chars: set[str] = set()

    def utf16(hexdigits: str) -> str:
        return bytes.fromhex(hexdigits).decode("utf-16-be", errors="replace")

    for block in re.findall(r"beginbfchar(.*?)endbfchar", text, re.S):
        for _, dst in re.findall(r"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
            chars |= set(utf16(dst))
    for block in re.findall(r"beginbfrange(.*?)endbfrange", text, re.S):
        for lo, hi, dst, array in re.findall(
                r"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*(?:<([0-9A-Fa-f]+)>|\[([^\]]*)\])", block):
            if array:
                chars |= {c for item in re.findall(r"<([0-9A-Fa-f]+)>", array) for c in utf16(item)}
                continue
            first = utf16(dst)
            for k in range(int(hi, 16) - int(lo, 16) + 1):
                chars |= set(first[:-1] + chr(ord(first[-1]) + k))
    return chars


def font_chars(pdf: Path) -> set[str]:
    """The characters of the ToUnicode maps of every font a PDF's pages (and their forms) use."""
    found: set[str] = set()

    def walk(resources, seen):
        resources = resources.get_object() if resources is not None else {}
        for ref in resources.get("/Font", {}).values():
            cmap = ref.get_object().get("/ToUnicode")
            if cmap is not None:
                found.update(cmap_chars(cmap.get_object().get_data()))
        for ref in resources.get("/XObject", {}).values():
            xobject = ref.get_object()
            if id(xobject) not in seen and xobject.get("/Subtype") == "/Form":
                seen.add(id(xobject))
                walk(xobject.get("/Resources"), seen)

    for page in PdfReader(pdf).pages:
        walk(page.get("/Resources"), set())
    return found


def public_docx_chars(sb: SealedBatch, m: dict) -> str:
    """Every character the public papers print on their own: their rendered DOCX text."""
    import zipfile

    from service import render

    court = render.Court(ROOT / "templates", sb.court_code)
    out = ""
    with tempfile.TemporaryDirectory() as tmp:
        for d in render.plan(sb, court, m["bundle_id"], 40):
            if not d.confidential:
                with zipfile.ZipFile(render.render(d, court, Path(tmp))) as z:
                    out += "".join(re.sub(r"<[^>]+>", "", z.read(n).decode()) for n in z.namelist()
                                   if n.startswith("word/") and n.endswith(".xml"))
    return out


def test_no_public_pdf_carries_a_character_only_sealed_rows_use(filed):
    """Not in the text, nor in the ToUnicode map of an embedded font subset: sealed and public
    papers are never converted together (a combined conversion embeds one subset of each font
    holding every character it printed, names included)."""
    sb, (m, store), _ = filed
    personal = "".join(f"{render_name(d.data)}{d.data['defendant'].get('cii') or ''}" for d in sb.decisions)
    # not ASCII: the page numbers' font (reportlab) maps all of ASCII in every PDF, whatever it prints
    only_sealed = {c for c in personal if ord(c) > 127} - set(public_docx_chars(sb, m)) - {"\u00a0"}
    assert set(MARKERS) <= only_sealed and len(only_sealed) > len(MARKERS)  # the hostile names' too
    sealed = set().union(*(font_chars(store / d["key"]) | set(text(store / d["key"])) for d in m["documents"]
                           if d["role"] == "lodged_record" and d["media_type"] == "application/pdf"))
    assert set(MARKERS) <= sealed, "the sealed exhibits must print the markers, or this test sees nothing"
    public = [d for d in m["documents"] if not d["confidential"] and d["media_type"] == "application/pdf"]
    assert {d["role"] for d in public} == {"bundle_public", "motion", "order", "proof_of_service"}
    assert not [p for p in m["efiling"] if not p["confidential"] and p["key"] not in {d["key"] for d in public}]
    for d in public:
        pdf = store / d["key"]
        assert not only_sealed & set(text(pdf)), (d["role"], sorted(only_sealed & set(text(pdf))))
        assert not only_sealed & font_chars(pdf), (d["role"], sorted(only_sealed & font_chars(pdf)))


def render_name(data: dict) -> str:
    from service import render

    return render.person_name(data["defendant"])


def pixels(pdf: Path, tmp: Path) -> list[bytes]:
    tmp.mkdir(parents=True, exist_ok=True)
    subprocess.run(["pdftoppm", "-r", "30", "-gray", str(pdf), str(tmp / "p")], check=True)
    return [p.read_bytes() for p in sorted(tmp.glob("p-*.pgm"), key=lambda p: int(p.stem.split("-")[1]))]


def test_documents_converted_together_print_as_they_do_alone(tmp_path):
    """The combined conversion must not change a single page: same page count and the same
    pixels (at 30 dpi) for each document as when LibreOffice converts it alone. And documents
    that cannot be combined (here: one with numbering of its own) are converted one by one."""
    from service import combine, render

    sb = batch(n=120)
    court = render.Court(ROOT / "templates", sb.court_code)
    docs = [d for d in render.plan(sb, court, "b" * 32, 40) if d.role != "motion"]
    docx = [render.render(d, court, tmp_path / "docx") for d in docs]
    lo = libreoffice("soffice", tmp_path, 1, 600)
    try:
        together = flush.convert_together(docs, docx, tmp_path / "together", lo.convert)
        assert (tmp_path / "together" / "combined" / "confidential" / "documents.pdf").is_file()
        assert (tmp_path / "together" / "combined" / "public" / "documents.pdf").is_file()
        alone = lo.convert(docx, tmp_path / "alone")
        odd = tmp_path / "odd" / docx[-1].name
        odd.parent.mkdir()
        rewrite_part(docx[-1], odd, "word/numbering.xml", lambda xml: xml.replace(b"</w:numbering>",
                     b'<w:num w:numId="99"><w:abstractNumId w:val="0"/></w:num></w:numbering>'))
        with pytest.raises(combine.NotCombinable, match="numbering"):
            combine.combine([docx[0], odd], tmp_path / "never.docx")
        fallback = flush.convert_together(docs[:1] + docs[-1:], [docx[0], odd], tmp_path / "fallback", lo.convert)
        assert not (tmp_path / "fallback" / "combined" / "public" / "documents.pdf").exists()
        assert [p.pages for p in fallback] == [together[0].pages, together[-1].pages]
    finally:
        lo.close()
    assert len(docs) >= 6
    for d, part, pdf in zip(docs, together, alone):
        assert part.pages == len(PdfReader(pdf).pages), d.name
        assert pixels(part.pdf, tmp_path / "px" / d.name / "t") == pixels(pdf, tmp_path / "px" / d.name / "a"), d.name

