"""Generate the default DOCX templates in templates/default/ (`make templates`).

The generated files are committed: they are data that the office's legal staff may edit in
Word afterwards (this script is only the starting point, kept so the layout is reviewable
as code). Layout follows the California Rules of Court, form of papers (rules 2.100-2.119):
letter size; margins 1.25 in left and 0.6 in right (rule 2.107 asks at least 1 in and 0.5 in);
Times New Roman 12 pt (rendered with the metric-compatible Liberation Serif); body double
spaced at exactly 24 pt with line numbers in the left margin, restarting on each page
(rule 2.108); a left double rule and a right single rule as on pleading paper; the first
page with the attorney block, court title, caption and case number (rule 2.111); a footer
with a rule and the paper's title (rule 2.110). The page number is not in the DOCX: reliefdocs
stamps consecutive numbers across the whole bundle (rule 3.1110) at 0.62 in above the bottom
edge, between the body and the footer title.
"""

from __future__ import annotations

from pathlib import Path

from docx import Document
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_LINE_SPACING
from docx.oxml import parse_xml
from docx.oxml.ns import nsdecls, qn
from docx.shared import Inches, Pt

OUT = Path(__file__).resolve().parent.parent / "templates" / "default"
FONT = "Times New Roman"


# -- page and paragraph helpers ------------------------------------------------------------
def new_document(pleading: bool) -> Document:
    doc = Document()
    st = doc.styles["Normal"]
    st.font.name = FONT
    st.font.size = Pt(12)
    st.element.rPr.rFonts.set(qn("w:eastAsia"), FONT)
    st.element.rPr.rFonts.set(qn("w:cs"), FONT)
    pf = st.paragraph_format
    pf.space_before = pf.space_after = Pt(0)
    pf.line_spacing_rule = WD_LINE_SPACING.EXACTLY
    pf.line_spacing = Pt(24 if pleading else 14)
    s = doc.sections[0]
    s.page_width, s.page_height = Inches(8.5), Inches(11)
    s.left_margin = Inches(1.25 if pleading else 1.0)
    s.right_margin = Inches(0.6 if pleading else 0.75)
    s.top_margin = Inches(1.0)
    s.bottom_margin = Inches(1.0)
    s.footer_distance = Inches(0.2)
    s.header_distance = Inches(0.4)
    sect = s._sectPr
    if pleading:
        sect.append(parse_xml(f'<w:lnNumType {nsdecls("w")} w:countBy="1" w:restart="newPage" w:distance="288"/>'))
        sect.append(parse_xml(
            f'<w:pgBorders {nsdecls("w")} w:offsetFrom="text">'
            '<w:left w:val="double" w:sz="4" w:space="6" w:color="auto"/>'
            '<w:right w:val="single" w:sz="4" w:space="6" w:color="auto"/></w:pgBorders>'))
    return doc


def para(doc_or_cell, text: str = "", bold: bool = False, align=None, size: float | None = None,
         single: bool = False, underline: bool = False, indent: float | None = None, first: float | None = None,
         keep_next: bool = False, italic: bool = False, caps: bool = False):
    p = doc_or_cell.add_paragraph()
    if text:
        r = p.add_run(text)
        r.bold, r.underline, r.italic = bold, underline, italic
        r.font.all_caps = caps
        if size:
            r.font.size = Pt(size)
    if align is not None:
        p.alignment = align
    pf = p.paragraph_format
    if single:
        pf.line_spacing_rule = WD_LINE_SPACING.EXACTLY
        pf.line_spacing = Pt(12 if not size else max(size + 2, 10))
    if indent is not None:
        pf.left_indent = Inches(indent)
    if first is not None:
        pf.first_line_indent = Inches(first)
    if keep_next:
        pf.keep_with_next = True
    return p


def suppress_line_numbers(p) -> None:
    p._p.get_or_add_pPr().append(parse_xml(f'<w:suppressLineNumbers {nsdecls("w")}/>'))


def tag(doc_or_cell, text: str):
    """A paragraph holding only a docxtpl {%p ... %} tag (docxtpl removes the paragraph)."""
    return para(doc_or_cell, text, single=True)


def footer(doc: Document, text: str) -> None:
    f = doc.sections[0].footer
    p = f.paragraphs[0]
    p.text = ""
    r = p.add_run(text)
    r.font.size = Pt(10)
    r.font.name = FONT
    p.alignment = WD_ALIGN_PARAGRAPH.CENTER
    pf = p.paragraph_format
    pf.line_spacing_rule = WD_LINE_SPACING.EXACTLY
    pf.line_spacing = Pt(11)
    pf.space_before = pf.space_after = Pt(0)
    p._p.get_or_add_pPr().append(parse_xml(
        f'<w:pBdr {nsdecls("w")}><w:top w:val="single" w:sz="6" w:space="1" w:color="auto"/></w:pBdr>'))


def no_borders(table) -> None:
    tblPr = table._tbl.tblPr
    tblPr.append(parse_xml(
        f'<w:tblBorders {nsdecls("w")}><w:top w:val="nil"/><w:left w:val="nil"/><w:bottom w:val="nil"/>'
        '<w:right w:val="nil"/><w:insideH w:val="nil"/><w:insideV w:val="nil"/></w:tblBorders>'))


def cell_border(cell, **sides) -> None:
    tcPr = cell._tc.get_or_add_tcPr()
    xml = "".join(f'<w:{side} w:val="{val}" w:sz="6" w:space="0" w:color="auto"/>' for side, val in sides.items())
    tcPr.append(parse_xml(f'<w:tcBorders {nsdecls("w")}>{xml}</w:tcBorders>'))


def set_widths(table, widths: list[float]) -> None:
    table.autofit = False
    grid = table._tbl.tblGrid
    for gc, w in zip(grid.findall(qn("w:gridCol")), widths):
        gc.set(qn("w:w"), str(int(w * 1440)))
    for row in table.rows:
        for c, w in zip(row.cells, widths):
            c.width = Inches(w)


# -- the first page (CRC 2.111) ------------------------------------------------------------
def attorney_block(doc: Document) -> None:
    for text in ("{{ office.signer.name }} (SBN {{ office.signer.bar_number }})", "{{ office.signer.title }}",
                 "{{ office.attorney }}, {{ office.attorney_title }}", "{{ office.name }}"):
        para(doc, text, single=True)
    tag(doc, "{%p for line in office.address_lines %}")
    para(doc, "{{ line }}", single=True)
    tag(doc, "{%p endfor %}")
    para(doc, "Telephone: {{ office.phone }}", single=True)
    para(doc, "Email: {{ office.email }}", single=True)
    para(doc, "", single=True)
    para(doc, "Attorneys for Plaintiff,", single=True)
    para(doc, "The People of the State of California", single=True)
    para(doc, "")
    para(doc, "")


def caption(doc: Document, left_name: str, case_number: str, title: str, extra: str | None = None) -> None:
    para(doc, "{{ court.name|upper }}", bold=True, align=WD_ALIGN_PARAGRAPH.CENTER, keep_next=True)
    para(doc, "", single=True)
    t = doc.add_table(rows=1, cols=2)
    no_borders(t)
    t.alignment = WD_TABLE_ALIGNMENT.LEFT
    set_widths(t, [3.3, 3.25])
    left, right = t.rows[0].cells
    cell_border(left, right="single", bottom="single")
    left.paragraphs[0].text = "{{ caption.plaintiff }},"
    for text in ("", "Plaintiff,", "", "v.", "", f"{left_name},", "", "Defendants."):
        p = para(left, text, single=True, indent=0.5 if text in ("Plaintiff,", "Defendants.") else None)
    for p in left.paragraphs:
        p.paragraph_format.line_spacing_rule = WD_LINE_SPACING.EXACTLY
        p.paragraph_format.line_spacing = Pt(14)
    right.paragraphs[0].text = f"Case No.: {case_number}"
    for text, bold in (("", False), (extra or "{{ caption.batch_label }}", False), ("", False), (title, True)):
        para(right, text, bold=bold, single=True, indent=0.15)
    right.paragraphs[0].paragraph_format.left_indent = Inches(0.15)
    for p in right.paragraphs:
        p.paragraph_format.line_spacing_rule = WD_LINE_SPACING.EXACTLY
        p.paragraph_format.line_spacing = Pt(14)
    para(doc, "")


def heading(doc: Document, text: str) -> None:
    para(doc, text, bold=True, align=WD_ALIGN_PARAGRAPH.CENTER, keep_next=True)


def body(doc: Document, text: str, indent: bool = True):
    p = para(doc, text, first=0.5 if indent else None)
    p.alignment = WD_ALIGN_PARAGRAPH.JUSTIFY
    return p


def signature(doc: Document, dated: str, lines: list[str]) -> None:
    para(doc, "")
    para(doc, dated)
    for text in lines:
        para(doc, text, single=True, indent=3.2)


# -- the documents -------------------------------------------------------------------------
def motion() -> Document:
    doc = new_document(pleading=True)
    attorney_block(doc)
    caption(doc, "{{ caption.defendants }}", "{{ caption.case_number }}", "{{ title }}")
    body(doc, "TO THE COURT AND TO ALL PARTIES AND THEIR ATTORNEYS OF RECORD:")
    body(doc, "PLEASE TAKE NOTICE that the People of the State of California move the Court, under Health and "
              "Safety Code sections 11361.8 and 11361.9, for an order granting the relief stated below in each of "
              "the {{ filing.case_count }} cases listed in {{ caption.case_number|replace('Various (see ', '')|replace(')', '') }}, "
              "filed with this motion:")
    tag(doc, "{%p for r in reliefs %}")
    body(doc, "Exhibit {{ r.letter }}: {{ r.count }} case{{ '' if r.count == 1 else 's' }} in which the People ask "
              "the Court to {{ r.action }} ({{ r.title }}; {{ r.legal_basis|join(', ') }}).", indent=False) \
        .paragraph_format.left_indent = Inches(0.5)
    tag(doc, "{%p endfor %}")
    body(doc, "The motion is based on this notice, the memorandum of points and authorities below, the exhibits, "
              "the records of the Court and of the Department of Justice, and any argument the Court permits.")
    heading(doc, "MEMORANDUM OF POINTS AND AUTHORITIES")
    heading(doc, "I. INTRODUCTION")
    body(doc, "Proposition 64, the Control, Regulate and Tax Adult Use of Marijuana Act, reduced or eliminated "
              "criminal penalties for many cannabis offenses. Health and Safety Code section 11361.8 allows a person "
              "convicted of such an offense to ask that the conviction be dismissed and sealed, reduced, or "
              "redesignated. Assembly Bill 1793 (Stats. 2018, ch. 993) added section 11361.9, which makes that relief "
              "automatic: the Department of Justice identifies past convictions that may qualify, the prosecution "
              "reviews them, and where the prosecution does not challenge the recall or dismissal of a sentence, "
              "the Court shall reduce or dismiss the conviction.")
    heading(doc, "II. HOW THE CASES WERE IDENTIFIED")
    body(doc, "The cases in the exhibits were identified from the records provided by the Department of Justice "
              "under section 11361.9, subdivision (a), and from the records of the Office of the District Attorney "
              "and of this Court for the County of {{ court.county }}. Each case was reviewed individually. In every "
              "case listed, the People have determined that the conviction is eligible for the relief shown and do "
              "not challenge that relief.")
    heading(doc, "III. THE COURT SHOULD GRANT THE RELIEF LISTED")
    body(doc, "Under section 11361.9, subdivision (e), when the prosecution does not challenge the recall or "
              "dismissal of a sentence, the Court shall reduce or dismiss the conviction under section 11361.8. The "
              "People do not challenge relief in any of the {{ filing.case_count }} cases listed. The relief asked "
              "for in each exhibit follows the statute: dismissal and sealing of convictions for conduct that is no "
              "longer a crime; reduction to a misdemeanor of felony convictions for conduct that is now a "
              "misdemeanor; and redesignation as an infraction of misdemeanor convictions for conduct that is now an "
              "infraction. The legal basis relied on is {{ legal_basis|join(', ') }}.")
    heading(doc, "IV. THE EXHIBITS NAMING DEFENDANTS ARE LODGED UNDER SEAL")
    body(doc, "The exhibits identify defendants by name, date of birth and criminal identification and information "
              "(CII) number. Because sealing is part of the relief sought, the complete exhibits are lodged "
              "conditionally under seal under California Rules of Court, rules 2.550 and 2.551, and public versions "
              "identifying each case without personal information are filed with this motion.")
    heading(doc, "V. CONCLUSION")
    body(doc, "The People respectfully ask the Court to grant the relief listed in each exhibit and to sign the "
              "proposed order filed with this motion.")
    heading(doc, "INDEX OF EXHIBITS")
    t = doc.add_table(rows=1, cols=3)
    t.style = "Table Grid"
    set_widths(t, [1.0, 4.35, 1.2])
    for c, text in zip(t.rows[0].cells, ("Exhibit", "Description", "Cases")):
        c.paragraphs[0].text = text
        c.paragraphs[0].runs[0].bold = True
    row = t.add_row().cells
    row[0].paragraphs[0].text = "{%tr for r in reliefs %}"
    row = t.add_row().cells
    for c, text in zip(row, ("{{ r.letter }}", "Cases for {{ r.title }} ({{ r.legal_basis|join(', ') }}); "
                                               "complete version lodged conditionally under seal, public "
                                               "redacted version filed", "{{ r.count }}")):
        c.paragraphs[0].text = text
    row = t.add_row().cells
    row[0].paragraphs[0].text = "{%tr endfor %}"
    for r in t.rows:
        for c in r.cells:
            for p in c.paragraphs:
                p.paragraph_format.line_spacing = Pt(14)
    signature(doc, "Dated: {{ filing.date }}", ["Respectfully submitted,", "", "{{ office.attorney }}",
                                                  "{{ office.attorney_title }}", "", "",
                                                  "By: ______________________________", "{{ office.signer.name }}",
                                                  "{{ office.signer.title }}"])
    footer(doc, "{{ footer_title }}")
    return doc


def order() -> Document:
    doc = new_document(pleading=True)
    attorney_block(doc)
    caption(doc, "{{ caption.defendants }}", "{{ caption.case_number }}", "{{ title }}")
    body(doc, "The Court has read and considered the motion of the People of the State of California for relief "
              "under Health and Safety Code sections 11361.8 and 11361.9 in the {{ filing.case_count }} cases listed "
              "in the exhibits to the motion. The prosecution does not challenge the relief in any of those cases. "
              "Good cause appearing, IT IS ORDERED:")
    tag(doc, "{%p for r in reliefs %}")
    body(doc, "{{ loop.index }}. In each of the {{ r.count }} case{{ '' if r.count == 1 else 's' }} listed in "
              "Exhibit {{ r.letter }} ({{ r.title }}), the motion is GRANTED, and the Court orders the clerk to "
              "{{ r.action }}, under {{ r.legal_basis|join(', ') }}.")
    tag(doc, "{%p endfor %}")
    tag(doc, "{%p if reliefs|selectattr('code', 'equalto', 'dismiss_and_seal')|list %}")
    body(doc, "{{ reliefs|length + 1 }}. The records of each conviction dismissed under this order, including the "
              "records of arrest and court records, are ordered sealed under Health and Safety Code section 11361.8, "
              "and the proceedings shall be deemed not to have occurred.")
    tag(doc, "{%p endif %}")
    body(doc, "The clerk shall update the records of the Court in each case and report the disposition of each "
              "case to the Department of Justice as required by Health and Safety Code section 11361.9 and Penal "
              "Code section 13151. The complete exhibits remain lodged conditionally under seal; the public redacted "
              "exhibits are filed.")
    body(doc, "IT IS SO ORDERED.")
    signature(doc, "Dated: ____________________", ["", "_________________________________",
                                                     "Judge of the Superior Court"])
    footer(doc, "{{ footer_title }}")
    return doc


def exhibit(public: bool) -> Document:
    doc = new_document(pleading=False)
    para(doc, "EXHIBIT {{ exhibit.letter }}", bold=True, align=WD_ALIGN_PARAGRAPH.CENTER, size=16)
    if public:
        para(doc, "PUBLIC REDACTED VERSION", bold=True, align=WD_ALIGN_PARAGRAPH.CENTER)
    else:
        p = para(doc, "CONDITIONALLY UNDER SEAL", bold=True, align=WD_ALIGN_PARAGRAPH.CENTER, size=14)
        p._p.get_or_add_pPr().append(parse_xml(
            f'<w:pBdr {nsdecls("w")}><w:top w:val="single" w:sz="12" w:space="2" w:color="auto"/>'
            '<w:bottom w:val="single" w:sz="12" w:space="2" w:color="auto"/></w:pBdr>'))
        para(doc, "Lodged conditionally under seal (Cal. Rules of Court, rules 2.550, 2.551)",
             align=WD_ALIGN_PARAGRAPH.CENTER, size=10, single=True)
    para(doc, "{{ exhibit.title }}", bold=True, align=WD_ALIGN_PARAGRAPH.CENTER)
    para(doc, "{{ court.name }}. {{ caption.batch_label }}. {{ exhibit.count }} case{{ '' if exhibit.count == 1 else 's' }}.",
         align=WD_ALIGN_PARAGRAPH.CENTER, size=11, single=True)
    if public:
        para(doc, "Defendants' names, dates of birth and CII numbers are redacted from this public version. The "
                  "complete exhibit is lodged conditionally under seal (Cal. Rules of Court, rules 2.550, 2.551).",
             size=10, single=True, italic=True)
        cols = [("#", 0.45), ("Case number", 1.35), ("Statute(s)", 2.0), ("Level", 1.3), ("Disposition date", 1.65)]
        fields = ["n", "case_number", "statutes", "levels", "disposition_date"]
    else:
        cols = [("#", 0.4), ("Case number", 1.0), ("Defendant", 1.75), ("Date of birth", 0.9), ("CII", 0.9),
                ("Statute(s)", 0.9), ("Disposition", 0.9)]
        fields = ["n", "case_number", "name", "date_of_birth", "cii", "statutes", "disposition_date"]
    para(doc, "", single=True)
    tag(doc, "{%p for chunk in exhibit.chunks %}")
    t = doc.add_table(rows=1, cols=len(cols))
    t.style = "Table Grid"
    set_widths(t, [w for _, w in cols])
    hdr = t.rows[0]
    hdr._tr.get_or_add_trPr().append(parse_xml(f'<w:tblHeader {nsdecls("w")}/>'))
    for c, (text, _) in zip(hdr.cells, cols):
        c.paragraphs[0].text = text
        c.paragraphs[0].runs[0].bold = True
    row = t.add_row().cells
    row[0].paragraphs[0].text = "{%tr for row in chunk %}"
    row = t.add_row()
    row._tr.get_or_add_trPr().append(parse_xml(f'<w:cantSplit {nsdecls("w")}/>'))
    for c, f in zip(row.cells, fields):
        c.paragraphs[0].text = "{{ row.%s }}" % f
    row = t.add_row().cells
    row[0].paragraphs[0].text = "{%tr endfor %}"
    for r in t.rows:
        for c in r.cells:
            for p in c.paragraphs:
                p.paragraph_format.line_spacing = Pt(12)
                for run in p.runs:
                    run.font.size = Pt(10)
    tag(doc, "{%p endfor %}")
    footer(doc, "{{ footer_title }}")
    return doc


def proof_of_service() -> Document:
    doc = new_document(pleading=True)
    attorney_block(doc)
    caption(doc, "{{ caption.defendants }}", "{{ caption.case_number }}", "{{ title }}")
    body(doc, "I, {{ service.server.name }}, declare: I am over the age of eighteen years and not a party to this "
              "action. I am employed by the {{ office.name }}, {{ office.address_lines|join(', ') }}, as "
              "{{ service.server.title }}.")
    body(doc, "On {{ service.date }}, I served the following documents:")
    tag(doc, "{%p for d in documents %}")
    p = body(doc, "{{ d.title }}", indent=False)
    p.paragraph_format.left_indent = Inches(0.5)
    tag(doc, "{%p endfor %}")
    body(doc, "on the following parties, by the method stated for each:")
    tag(doc, "{%p for party in service.parties %}")
    for text in ("{{ party.name }}{{ ', ' + party.title if party.title else '' }}",
                 "{{ party.address_lines|join(', ') }}", "{{ party.email }}", "By {{ party.method }}."):
        para(doc, text, indent=0.5, single=True)
    para(doc, "", single=True)
    tag(doc, "{%p endfor %}")
    body(doc, "The exhibits lodged conditionally under seal were served only as permitted by California Rules of "
              "Court, rule 2.551; the public redacted exhibits were served on all parties.")
    body(doc, "I declare under penalty of perjury under the laws of the State of California that the foregoing is "
              "true and correct. Executed on {{ service.date }}, at {{ service.place }}, California.")
    signature(doc, "", ["_________________________________", "{{ service.server.name }}"])
    footer(doc, "{{ footer_title }}")
    return doc


def case_order() -> Document:
    doc = new_document(pleading=True)
    tag(doc, "{%p for case in cases %}")
    attorney_block(doc)
    caption(doc, "{{ case.name }}", "{{ case.case_number }}", "{{ title }}", extra="{{ caption.batch_label }}")
    body(doc, "The Court has considered the motion of the People under Health and Safety Code sections 11361.8 and "
              "11361.9 in this case. The prosecution does not challenge the relief. Good cause appearing, IT IS "
              "ORDERED that the motion is GRANTED as to the conviction under {{ case.statutes }} "
              "(disposition {{ case.disposition_date }}): {{ case.relief_title }}, under {{ case.legal_basis }}.")
    tag(doc, "{%p if case.relief == 'dismiss_and_seal' %}")
    body(doc, "The records of the conviction, including the records of arrest and court records, are ordered sealed.")
    tag(doc, "{%p endif %}")
    body(doc, "The clerk shall update the records of the Court and report the disposition to the Department of "
              "Justice. IT IS SO ORDERED.")
    signature(doc, "Dated: ____________________", ["", "_________________________________",
                                                     "Judge of the Superior Court"])
    tag(doc, "{%p if not loop.last %}")
    p = doc.add_paragraph()
    p.add_run().add_break(__import__("docx").enum.text.WD_BREAK.PAGE)
    tag(doc, "{%p endif %}")
    tag(doc, "{%p endfor %}")
    footer(doc, "{{ footer_title }}")
    return doc


def _fixed(doc: Document, title: str) -> Document:
    cp = doc.core_properties
    cp.author = "reliefdocs"
    cp.title = title
    cp.comments = "reliefdocs template; edit in Word; check with `reliefdocs templates check`"
    cp.last_modified_by = "reliefdocs"
    import datetime

    cp.created = cp.modified = datetime.datetime(2026, 1, 1)
    cp.revision = 1
    return doc


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    docs = {"motion": motion(), "order": order(), "exhibit": exhibit(public=False),
            "exhibit_public": exhibit(public=True), "proof_of_service": proof_of_service(),
            "case_order": case_order()}
    for name, doc in docs.items():
        _fixed(doc, name).save(OUT / f"{name}.docx")
        print(f"wrote templates/default/{name}.docx")


if __name__ == "__main__":
    main()
