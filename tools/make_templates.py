"""Generate the default DOCX templates in templates/default/ (`make templates`).

The generated files are committed: they are data that the office's legal staff may edit in
Word afterwards; this script is the starting point, kept so that the layout is reviewable as
code. Running it again gives the same bytes.

Form of papers (California Rules of Court, rules 2.100-2.119) for the motion, the orders and
the proof of service:

- US Letter; margins 1.25 in left, 0.6 in right, 1 in top and bottom (rule 2.107);
- Times New Roman 12 pt (rendered with the metric-compatible Liberation Serif; 2.104, 2.105);
- pleading paper (2.108): 28 numbered lines per page at an exact pitch of 23.1 pt (the 9 in
  between the top and bottom margins divided by 28); body text is double spaced on that pitch,
  blocks such as the attorney block and the caption are single spaced at half of it, so every
  line sits on or between the numbers. The numbers 1-28 and the rules (a double rule left of
  the text, a single rule right of it) are drawn in the page header, as on printed pleading
  paper, so they stay in place whatever the body holds (an ordinary Word text box and lines,
  which LibreOffice renders faithfully);
- the first page per rule 2.111: attorney block from line 1 (left half; the right half of lines
  1-7 is left blank for the clerk's stamp), the court's title on line 8, the caption box with
  the case number and the nature of the paper on its right;
- footer per rule 2.110: a rule and the paper's title in 10 pt, 0.2-0.5 in above the bottom
  edge. The page NUMBER is not in the DOCX: reliefdocs stamps consecutive numbers across the
  whole bundle (rule 3.1110) centred with the baseline 0.62 in above the bottom edge, so the
  band between 0.5 in and 1 in stays empty.

The exhibits (the case lists) are attachments, not pleading paper: US Letter portrait, table
text 10 pt, the same empty band at the bottom, "CONDITIONALLY UNDER SEAL" (or the public
redaction notice) plainly at the top of the first page (rules 2.550, 2.551).

Layout rules for template authors are in docs/templates.md.
"""

from __future__ import annotations

import datetime
import io
import re
import zipfile
from pathlib import Path

from docx import Document
from docx.enum.style import WD_STYLE_TYPE
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_LINE_SPACING
from docx.oxml import parse_xml
from docx.oxml.ns import nsdecls, qn
from docx.shared import Emu, Inches, Pt, RGBColor, Twips

from service import papers

OUT = Path(__file__).resolve().parent.parent / "templates" / "default"
FONT = "Times New Roman"
STAMP = datetime.datetime(2026, 1, 1)  # fixed document dates: the same script gives the same bytes

# -- the page ----------------------------------------------------------------------------------
PAGE_W, PAGE_H = Inches(8.5), Inches(11)
TOP, BOTTOM = Inches(1), Inches(1)
FOOTER_DISTANCE = Inches(0.2)  # footer rule and title sit 0.2-0.5 in above the bottom edge
PLEADING_LEFT, PLEADING_RIGHT = Inches(1.25), Inches(0.6)
EXHIBIT_LEFT, EXHIBIT_RIGHT, EXHIBIT_TOP = Inches(0.75), Inches(0.75), Inches(0.75)
LINES = 28  # numbered lines per pleading page
PITCH = Twips((PAGE_H - TOP - BOTTOM) // 635 // LINES)  # 462 twips = 23.1 pt: 28 lines in 9 in
HALF = Twips(PITCH.twips // 2)  # single spacing on pleading paper
TEXT_W = PAGE_W - PLEADING_LEFT - PLEADING_RIGHT  # 6.65 in
EXHIBIT_W = PAGE_W - EXHIBIT_LEFT - EXHIBIT_RIGHT  # 7 in

WPS = "http://schemas.microsoft.com/office/word/2010/wordprocessingShape"


def xml(fragment: str, *prefixes: str):
    """Parse an OOXML fragment with the usual namespace declarations (never with values in it)."""
    return parse_xml(fragment.replace("{ns}", nsdecls(*(prefixes or ("w",)))))


# Word rejects a document whose property elements are out of the schema's order (LibreOffice does
# not mind): every raw element goes in through put(), at its place in these sequences.
SCHEMA_ORDER = {
    "pPr": "pStyle keepNext keepLines pageBreakBefore framePr widowControl numPr suppressLineNumbers pBdr shd tabs "
           "suppressAutoHyphens kinsoku wordWrap overflowPunct topLinePunct autoSpaceDE autoSpaceDN bidi "
           "adjustRightInd snapToGrid spacing ind contextualSpacing mirrorIndents suppressOverlap jc textDirection "
           "textAlignment textboxTightWrap outlineLvl divId cnfStyle rPr sectPr pPrChange",
    "rPr": "rStyle rFonts b bCs i iCs caps smallCaps strike dstrike outline shadow emboss imprint noProof snapToGrid "
           "vanish webHidden color spacing w kern position sz szCs highlight u effect bdr shd fitText vertAlign rtl "
           "cs em lang eastAsianLayout specVanish oMath",
    "tblPr": "tblStyle tblpPr tblOverlap bidiVisual tblStyleRowBandSize tblStyleColBandSize tblW jc tblCellSpacing "
             "tblInd tblBorders shd tblLayout tblCellMar tblLook tblCaption tblDescription tblPrChange",
    "tcPr": "cnfStyle tcW gridSpan hMerge vMerge tcBorders shd noWrap tcMar textDirection tcFitText vAlign hideMark",
}
BORDER_SIDES = ("top", "left", "bottom", "right", "insideH", "insideV")  # the order inside *Borders


def put(parent, child) -> None:
    """Insert `child` into a pPr/rPr/tblPr/tcPr at its schema position, replacing one of the same name."""
    order = SCHEMA_ORDER[parent.tag.split("}")[1]].split()
    name = child.tag.split("}")[1]
    for old in parent.findall(child.tag):
        parent.remove(old)
    later = [el for el in parent if el.tag.split("}")[1] in order[order.index(name) + 1:]]
    if later:
        later[0].addprevious(child)
    else:
        parent.append(child)


# -- styles ------------------------------------------------------------------------------------
def add_style(doc, name: str, base: str = "Normal", *, size: float | None = None, bold: bool = False,
              align=None, line=None, rule=WD_LINE_SPACING.EXACTLY, indent=None, first=None,
              keep_next: bool = False, before=None, gallery: bool = True):
    """A named paragraph style, so that legal staff editing in Word find the layout in the gallery."""
    st = doc.styles.add_style(name, WD_STYLE_TYPE.PARAGRAPH)
    st.base_style = doc.styles[base]
    st.quick_style = gallery
    if size:
        st.font.size = Pt(size)
    st.font.bold = bold or None
    pf = st.paragraph_format
    if align is not None:
        pf.alignment = align
    if line is not None:
        pf.line_spacing_rule = rule
        pf.line_spacing = line
    if indent is not None:
        pf.left_indent = indent
    if first is not None:
        pf.first_line_indent = first
    if keep_next:
        pf.keep_with_next = True
    if before is not None:
        pf.space_before = before
    return st


def base_styles(doc, pleading: bool) -> None:
    """Times New Roman 12 pt everywhere (also for complex scripts), no space between paragraphs."""
    rpr = doc.styles.element.find(qn("w:docDefaults")).find(qn("w:rPrDefault")).find(qn("w:rPr"))
    fonts = rpr.find(qn("w:rFonts"))
    for attr in list(fonts.attrib):
        del fonts.attrib[attr]
    for attr in ("ascii", "hAnsi", "eastAsia", "cs"):
        fonts.set(qn(f"w:{attr}"), FONT)
    normal = doc.styles["Normal"]
    normal.font.name = FONT
    normal.font.size = Pt(12)
    normal.element.rPr.rFonts.set(qn("w:cs"), FONT)
    normal.element.rPr.rFonts.set(qn("w:eastAsia"), FONT)
    put(normal.element.rPr, xml('<w:szCs {ns} w:val="24"/>'))
    pf = normal.paragraph_format
    pf.space_before = pf.space_after = Pt(0)
    pf.widow_control = False
    if pleading:
        pf.line_spacing_rule = WD_LINE_SPACING.EXACTLY
        pf.line_spacing = HALF  # "single" on pleading paper: half a numbered line
        add_style(doc, "Pleading Body", line=PITCH, align=WD_ALIGN_PARAGRAPH.JUSTIFY, first=Inches(0.5))
        add_style(doc, "Pleading Item", line=PITCH, indent=Inches(1.0), first=Inches(-0.5))
        add_style(doc, "Pleading Numbered", line=PITCH, align=WD_ALIGN_PARAGRAPH.JUSTIFY,
                  first=Inches(0.5)).paragraph_format.tab_stops.add_tab_stop(Inches(1.0))
        add_style(doc, "Pleading Indented", line=PITCH, align=WD_ALIGN_PARAGRAPH.JUSTIFY, indent=Inches(0.5))
        add_style(doc, "Pleading Heading", line=PITCH, align=WD_ALIGN_PARAGRAPH.CENTER, bold=True, keep_next=True)
        add_style(doc, "Pleading Subheading", line=PITCH, bold=True, keep_next=True, indent=Inches(0.5),
                  first=Inches(-0.5))
        add_style(doc, "Pleading Double", line=PITCH).paragraph_format.tab_stops.add_tab_stop(Inches(3.4))
        add_style(doc, "Court Title", line=PITCH, align=WD_ALIGN_PARAGRAPH.CENTER, bold=True)
        add_style(doc, "Signature Block", indent=Inches(3.4), keep_next=True)
        add_style(doc, "Ruler Number", line=PITCH, align=WD_ALIGN_PARAGRAPH.RIGHT, gallery=False)
        add_style(doc, "Table Text", line=HALF)
    else:
        pf.line_spacing_rule = WD_LINE_SPACING.SINGLE
        add_style(doc, "Exhibit Banner", size=16, bold=True, align=WD_ALIGN_PARAGRAPH.CENTER,
                  line=Pt(20), rule=WD_LINE_SPACING.AT_LEAST)
        add_style(doc, "Exhibit Title", size=12, bold=True, align=WD_ALIGN_PARAGRAPH.CENTER, before=Pt(6))
        add_style(doc, "Exhibit Note", size=10, align=WD_ALIGN_PARAGRAPH.CENTER)
        add_style(doc, "Table Text", size=9, line=Pt(11), rule=WD_LINE_SPACING.AT_LEAST)
        add_style(doc, "Table Heading", "Table Text", bold=True)
        add_style(doc, "Running Head", size=9, align=WD_ALIGN_PARAGRAPH.RIGHT)
    add_style(doc, "Footer Title", size=10, align=WD_ALIGN_PARAGRAPH.CENTER, line=Pt(11))
    # a paragraph holding only a {%p %} tag: docxtpl removes it, so it never takes space in a filed paper;
    # small and grey so that it is readable but unobtrusive in Word
    tag_style = add_style(doc, "Template Tag", size=8, line=Pt(10), rule=WD_LINE_SPACING.AT_LEAST)
    tag_style.font.color.rgb = RGBColor(0x80, 0x80, 0x80)
    add_style(doc, "Spacer", size=1, line=Pt(1), gallery=False)  # an empty paragraph that must take (almost) no space


# -- paragraphs --------------------------------------------------------------------------------
def _fill(p, text: str, bold: bool, align, indent, first=None, keep_next: bool = False):
    if text:
        p.add_run(text).bold = bold or None
    if align is not None:
        p.alignment = align
    if indent is not None:
        p.paragraph_format.left_indent = indent
    if first is not None:
        p.paragraph_format.first_line_indent = first
    if keep_next:
        p.paragraph_format.keep_with_next = True
    return p


def para(container, text: str = "", style: str | None = None, *, bold: bool = False, align=None,
         indent=None, first=None, keep_next: bool = False):
    return _fill(container.add_paragraph(style=style), text, bold, align, indent, first, keep_next)


def tag(container, text: str):
    """A paragraph holding only a docxtpl `{%p ... %}` tag: docxtpl replaces the whole paragraph."""
    return para(container, text, "Template Tag")


def first_cell_paragraph(cell, text: str = "", style: str | None = None, *, bold: bool = False, align=None,
                         indent=None):
    """Fill the paragraph every new cell already has (add more with para())."""
    p = cell.paragraphs[0]
    if style:
        p.style = style
    return _fill(p, text, bold, align, indent)


def page_break_before(p) -> None:
    p.paragraph_format.page_break_before = True


# -- tables ------------------------------------------------------------------------------------
def borders(table, **sides) -> None:
    """Table borders: side=(val, eighths of a point), for top, left, bottom, right, insideH, insideV."""
    parts = "".join(f'<w:{s} w:val="nil"/>' if sides[s][0] == "nil" else
                    f'<w:{s} w:val="{sides[s][0]}" w:sz="{sides[s][1]}" w:space="0" w:color="auto"/>'
                    for s in BORDER_SIDES if s in sides)
    put(table._tbl.tblPr, xml(f"<w:tblBorders {{ns}}>{parts}</w:tblBorders>"))


NO_BORDERS = {s: ("nil", 0) for s in ("top", "left", "bottom", "right", "insideH", "insideV")}
GRID = {s: ("single", 4) for s in ("top", "left", "bottom", "right", "insideH", "insideV")}


def cell_borders(cell, **sides) -> None:
    parts = "".join(f'<w:{s} w:val="{sides[s][0]}" w:sz="{sides[s][1]}" w:space="0" w:color="auto"/>'
                    for s in BORDER_SIDES if s in sides)
    put(cell._tc.get_or_add_tcPr(), xml(f"<w:tcBorders {{ns}}>{parts}</w:tcBorders>"))


CELL_SIDE = Inches(0.08)  # default left/right cell margin


def cell_margins(table, left=CELL_SIDE, right=CELL_SIDE, top=0, bottom=0) -> None:
    left, right, top, bottom = (Emu(x) for x in (left, right, top, bottom))
    put(table._tbl.tblPr, xml(f'<w:tblCellMar {{ns}}><w:top w:w="{top.twips}" w:type="dxa"/>'
                     f'<w:left w:w="{left.twips}" w:type="dxa"/><w:bottom w:w="{bottom.twips}" w:type="dxa"/>'
                     f'<w:right w:w="{right.twips}" w:type="dxa"/></w:tblCellMar>'))


def new_table(container, widths: list, rows: int = 1, *, grid: bool = False, indent=0):
    """A fixed-layout table with the given column widths (EMU lengths), flush with the text margin."""
    t = container.add_table(rows=rows, cols=len(widths))
    t.alignment = WD_TABLE_ALIGNMENT.LEFT
    t.autofit = False  # w:tblLayout fixed
    tblPr = t._tbl.tblPr
    put(tblPr, xml(f'<w:tblW {{ns}} w:w="{sum(Emu(w).twips for w in widths)}" w:type="dxa"/>'))
    put(tblPr, xml(f'<w:tblInd {{ns}} w:w="{Emu(indent).twips}" w:type="dxa"/>'))
    borders(t, **(GRID if grid else NO_BORDERS))
    for gc, w in zip(t._tbl.tblGrid.findall(qn("w:gridCol")), widths):
        gc.set(qn("w:w"), str(Emu(w).twips))
    for row in t.rows:
        for c, w in zip(row.cells, widths):
            c.width = w
    return t


def row_props(row, *, header: bool = False, cant_split: bool = True, height=None, rule: str = "atLeast") -> None:
    trPr = row._tr.get_or_add_trPr()
    if cant_split:
        trPr.append(xml("<w:cantSplit {ns}/>"))
    if height is not None:
        trPr.append(xml(f'<w:trHeight {{ns}} w:val="{height.twips}" w:hRule="{rule}"/>'))
    if header:
        trPr.append(xml("<w:tblHeader {ns}/>"))


def shade(cell, fill: str = "E7E6E6") -> None:
    put(cell._tc.get_or_add_tcPr(), xml(f'<w:shd {{ns}} w:val="clear" w:color="auto" w:fill="{fill}"/>'))


def loop_rows(table, loop: str, fields: list[str], style: str) -> None:
    """Three rows for docxtpl: `{%tr for ... %}`, the repeated row, `{%tr endfor %}`."""
    first_cell_paragraph(table.add_row().cells[0], "{%tr " + loop + " %}", style)
    row = table.add_row()
    row_props(row)
    for c, f in zip(row.cells, fields):
        first_cell_paragraph(c, f, style)
    first_cell_paragraph(table.add_row().cells[0], "{%tr endfor %}", style)


# -- the page frame: sections, pleading paper, footer ------------------------------------------
def section_setup(doc, pleading: bool) -> None:
    s = doc.sections[0]
    s.page_width, s.page_height = PAGE_W, PAGE_H
    s.top_margin = TOP if pleading else EXHIBIT_TOP
    s.bottom_margin = BOTTOM
    s.left_margin = PLEADING_LEFT if pleading else EXHIBIT_LEFT
    s.right_margin = PLEADING_RIGHT if pleading else EXHIBIT_RIGHT
    s.header_distance = Inches(0.5 if pleading else 0.4)
    s.footer_distance = FOOTER_DISTANCE
    s.gutter = 0


def _anchor(shape_id: int, name: str, x, y, cx, cy, body: str, behind: bool = True) -> str:
    """A DrawingML shape anchored to the page (wrap none), for the header's pleading paper."""
    return (
        f'<w:r {nsdecls("w", "wp", "a")} xmlns:wps="{WPS}"><w:drawing>'
        f'<wp:anchor distT="0" distB="0" distL="0" distR="0" simplePos="0" relativeHeight="{shape_id}" '
        f'behindDoc="{1 if behind else 0}" locked="1" layoutInCell="1" allowOverlap="1">'
        '<wp:simplePos x="0" y="0"/>'
        f'<wp:positionH relativeFrom="page"><wp:posOffset>{int(x)}</wp:posOffset></wp:positionH>'
        f'<wp:positionV relativeFrom="page"><wp:posOffset>{int(y)}</wp:posOffset></wp:positionV>'
        f'<wp:extent cx="{int(cx)}" cy="{int(cy)}"/><wp:effectExtent l="0" t="0" r="0" b="0"/><wp:wrapNone/>'
        f'<wp:docPr id="{shape_id}" name="{name}"/><wp:cNvGraphicFramePr/>'
        '<a:graphic><a:graphicData uri="http://schemas.microsoft.com/office/word/2010/wordprocessingShape">'
        f'{body}</a:graphicData></a:graphic></wp:anchor></w:drawing></w:r>'
    )


def _line(cx, cy, width_emu: int = 6350) -> str:
    return (f'<wps:wsp><wps:cNvSpPr/><wps:spPr><a:xfrm><a:off x="0" y="0"/><a:ext cx="{int(cx)}" cy="{int(cy)}"/>'
            '</a:xfrm><a:prstGeom prst="line"><a:avLst/></a:prstGeom>'
            f'<a:ln w="{width_emu}"><a:solidFill><a:srgbClr val="000000"/></a:solidFill></a:ln></wps:spPr>'
            '<wps:bodyPr/></wps:wsp>')


def _ruler_box(cx, cy) -> str:
    """A text box holding the numbers 1..LINES, one per pleading line."""
    numbers = "".join(f'<w:p><w:pPr><w:pStyle w:val="RulerNumber"/></w:pPr><w:r><w:t>{n}</w:t></w:r></w:p>'
                      for n in range(1, LINES + 1))
    return (f'<wps:wsp><wps:cNvSpPr txBox="1"/><wps:spPr><a:xfrm><a:off x="0" y="0"/>'
            f'<a:ext cx="{int(cx)}" cy="{int(cy)}"/></a:xfrm><a:prstGeom prst="rect"><a:avLst/></a:prstGeom>'
            '<a:noFill/><a:ln><a:noFill/></a:ln></wps:spPr>'
            f'<wps:txbx><w:txbxContent>{numbers}</w:txbxContent></wps:txbx>'
            '<wps:bodyPr rot="0" vert="horz" wrap="square" lIns="0" tIns="0" rIns="0" bIns="0" anchor="t" '
            'anchorCtr="0"><a:noAutofit/></wps:bodyPr></wps:wsp>')


def pleading_paper(doc) -> None:
    """Line numbers 1..28 in the left margin and the rules, drawn in the page header."""
    header = doc.sections[0].header
    header.is_linked_to_previous = False
    p = header.paragraphs[0]
    p.style = doc.styles["Spacer"]
    rule_left = PLEADING_LEFT - Inches(0.12)  # double rule just left of the text
    rule_right = PAGE_W - PLEADING_RIGHT + Inches(0.08)
    box_w = Inches(0.45)
    shapes = [
        _anchor(101, "Pleading line numbers", rule_left - Inches(0.1) - box_w, TOP, box_w, PITCH * LINES,
                _ruler_box(box_w, PITCH * LINES)),
        _anchor(102, "Pleading rule left 1", rule_left - Pt(2), 0, 0, PAGE_H, _line(0, PAGE_H)),
        _anchor(103, "Pleading rule left 2", rule_left, 0, 0, PAGE_H, _line(0, PAGE_H)),
        _anchor(104, "Pleading rule right", rule_right, 0, 0, PAGE_H, _line(0, PAGE_H)),
    ]
    for s in shapes:
        p._p.append(parse_xml(s))


def footer(doc, text: str, first_page_too: bool = False) -> None:
    """CRC 2.110: a rule and the paper's title, below the band where the page number is stamped."""
    s = doc.sections[0]
    targets = [s.footer] + ([s.first_page_footer] if first_page_too else [])
    for f in targets:
        f.is_linked_to_previous = False
        p = f.paragraphs[0]
        p.style = doc.styles["Footer Title"]
        p.add_run(text)
        put(p._p.get_or_add_pPr(),
            xml('<w:pBdr {ns}><w:top w:val="single" w:sz="6" w:space="2" w:color="auto"/></w:pBdr>'))


# -- the first page of a pleading (CRC 2.111) ---------------------------------------------------
BLOCK_LINES = 7  # the attorney block and the caption box each take 7 numbered lines (more if they overflow)


def on_the_line(p) -> None:
    """Half a line before the first single-spaced line of a block, so that it sits on a number."""
    p.paragraph_format.space_before = HALF


def attorney_block(doc) -> None:
    """Lines 1-7: the attorney block in the left half; the right half stays blank for the clerk."""
    t = new_table(doc, [Inches(3.75), TEXT_W - Inches(3.75)])
    row_props(t.rows[0], height=Twips(PITCH.twips * BLOCK_LINES))
    cell = t.rows[0].cells[0]
    on_the_line(first_cell_paragraph(cell, "{{ office.signer.name }} (SBN {{ office.signer.bar_number }})"))
    for text in ("{{ office.signer.title }}", "{{ office.attorney }}, {{ office.attorney_title }}",
                 "{{ office.name }}"):
        para(cell, text)
    tag(cell, "{%p for line in office.address_lines %}")
    para(cell, "{{ line }}")
    tag(cell, "{%p endfor %}")
    para(cell, "Telephone: {{ office.phone }}")
    para(cell, "Email: {{ office.email }}")
    para(cell, "")
    para(cell, "Attorneys for Plaintiff,")
    para(cell, "The People of the State of California")
    # the right cell stays empty: the space for the clerk's filing stamp (CRC 2.111(2))


def court_title(doc) -> None:
    """Line 8, just below 3 1/3 in from the top (CRC 2.111(3)): the title of the court."""
    para(doc, "{{ court.name|upper }}", "Court Title")
    para(doc, "", "Pleading Double")


def caption(doc, defendants: str, case_number: str, lines: int) -> None:
    """From line 10: the case title on the left, boxed; on the right the case number, the batch and
    the nature of the paper (its title, in bold).

    The row is at least `lines` numbered lines high, so that the body below stays on the numbers
    whatever the caption holds (only a caption longer than that pushes it half a line down)."""
    left_w = Inches(3.4)
    t = new_table(doc, [left_w, TEXT_W - left_w])
    row_props(t.rows[0], height=Twips(PITCH.twips * lines))
    left, right = t.rows[0].cells
    cell_borders(left, right=("single", 6), bottom=("single", 6))
    on_the_line(first_cell_paragraph(left, "{{ caption.plaintiff }},", "Table Text"))
    for text, indent in (("", None), ("Plaintiff,", Inches(1.75)), ("", None), ("v.", Inches(0.5)), ("", None),
                         (defendants + ",", None), ("", None), ("Defendants.", Inches(1.75))):
        para(left, text, "Table Text", indent=indent)
    first = first_cell_paragraph(right, "", "Table Text", indent=Inches(0.15))
    on_the_line(first)
    first.add_run("Case No.: ")
    first.add_run(case_number)
    for text, bold in (("{{ caption.batch_label }}", False), ("{{ title }}", True)):
        para(right, "", "Table Text", indent=Inches(0.15))
        para(right, text, "Table Text", indent=Inches(0.15), bold=bold)


def first_page(doc, defendants: str = "{{ caption.defendants }}", case_number: str = "{{ caption.case_number }}",
               caption_lines: int = BLOCK_LINES) -> None:
    attorney_block(doc)
    court_title(doc)
    caption(doc, defendants, case_number, caption_lines)


def body(doc, text: str, keep_next: bool = False):
    return para(doc, text, "Pleading Body", keep_next=keep_next)


def heading(doc, text: str):
    return para(doc, text, "Pleading Heading")


def subheading(doc, text: str):
    return para(doc, text, "Pleading Subheading")


def item(doc, text: str):
    """A list entry with a hanging number: `1.<tab>text`."""
    return para(doc, text, "Pleading Item")


def numbered(doc, text: str):
    """A numbered paragraph of an order: `1.<tab>text`, the text wrapping to the margin."""
    return para(doc, text, "Pleading Numbered")


def indented(doc, text: str):
    return para(doc, text, "Pleading Indented")


def signature(doc, dated: str, lines: list[str]) -> None:
    """Date on the left, the signature block in the right half; kept on one page."""
    para(doc, "", "Pleading Double", keep_next=True)
    para(doc, dated, "Pleading Double", keep_next=True)
    for i, text in enumerate(lines):
        p = para(doc, text, "Signature Block")
        p.paragraph_format.keep_with_next = i < len(lines) - 1


def judge_signature(doc) -> None:
    """The date and the judge's signature line on one line, the title under the line."""
    para(doc, "", "Pleading Double", keep_next=True)
    para(doc, "Dated: ____________________\t______________________________", "Pleading Double", keep_next=True)
    para(doc, "Judge of the Superior Court", "Signature Block")


def pleading():
    doc = Document()
    base_styles(doc, pleading=True)
    section_setup(doc, pleading=True)
    pleading_paper(doc)
    footer(doc, "{{ footer_title|default(title) }}")
    for p in list(doc.paragraphs):  # start from an empty body
        p._p.getparent().remove(p._p)
    return doc


def finish(doc) -> None:
    """The body must end with a paragraph (Word needs one after a closing table)."""
    para(doc, "", "Spacer")


# -- the papers ---------------------------------------------------------------------------------
# Every sentence of law below was checked against the source named for it in docs/templates.md
# ("Where each sentence of law comes from"); citations are in California style and only those
# listed in service/papers.py CITATIONS (tests/unit/test_citations.py).
HS_8 = "Health & Saf. Code, \u00a7 11361.8"
HS_9 = "Health & Saf. Code, \u00a7 11361.9"
HS_BOTH = "Health & Saf. Code, \u00a7\u00a7 11361.8, 11361.9"


def hearing_block(doc) -> None:
    """The hearing, from court.json `hearing` (date, time, department), or the statement that
    none is requested (court.json `hearing` absent or null)."""
    tag(doc, "{%p if court.hearing %}")
    body(doc, "PLEASE TAKE NOTICE that on {{ court.hearing.date }} at {{ court.hearing.time }}, or as soon "
              "thereafter as the matter may be heard, in Department {{ court.hearing.department }} of the above-"
              "entitled Court, the People of the State of California, by {{ office.attorney }}, "
              "{{ office.attorney_title }}, will move, and hereby move, the Court for the orders described below.")
    tag(doc, "{%p else %}")
    body(doc, "PLEASE TAKE NOTICE that the People of the State of California, by {{ office.attorney }}, "
              "{{ office.attorney_title }}, move the Court for the orders described below. The People do not "
              "challenge the relief in any of the cases listed and request no hearing; they ask the Court to "
              "decide the motion on the papers{% if court.department %} in Department {{ court.department }}"
              "{% endif %}.")
    tag(doc, "{%p endif %}")


def motion():
    doc = pleading()
    first_page(doc)
    body(doc, "TO THE COURT, TO ALL PARTIES AND TO THEIR ATTORNEYS OF RECORD:")
    hearing_block(doc)
    body(doc, "The People move for an order granting, under Health and Safety Code sections 11361.8 and "
              "11361.9, the relief stated for each exhibit in every case it lists ({{ filing.case_count }} "
              "case{{ '' if filing.case_count == 1 else 's' }}, {{ counts.convictions }} "
              "count{{ '' if counts.convictions == 1 else 's' }} of conviction in all), and for an order sealing "
              "the complete exhibits, which are lodged conditionally under seal (Cal. Rules of Court, rule "
              "2.551(b)(1)). The exhibits are:", keep_next=True)
    tag(doc, "{%p for r in reliefs %}")
    indented(doc, "Exhibit {{ r.letter }}, {{ r.title }}: {{ r.count }} case{{ '' if r.count == 1 else 's' }}, "
                  "in each of which the People ask the Court to {{ r.action }} (" + HS_BOTH + ").")
    tag(doc, "{%p endfor %}")
    body(doc, "The motion is based on this notice, the memorandum of points and authorities, the declaration "
              "of {{ office.declaration.declarant.name }} and the exhibits filed with it, the record lodged "
              "conditionally under seal, the records of the Court, and any further matter the Court may "
              "consider.")

    heading(doc, "MEMORANDUM OF POINTS AND AUTHORITIES")
    subheading(doc, "I.\tTHE STATUTES")
    body(doc, "The Control, Regulate and Tax Adult Use of Marijuana Act (Proposition 64), approved by the voters "
              "on November 8, 2016, allows a person convicted of a cannabis offense for which a lesser offense or "
              "no offense would now be imposed to petition for the recall or dismissal of the sentence, the "
              "dismissal and sealing of the conviction, or the redesignation of the conviction (" + HS_8 + ").")
    body(doc, "Assembly Bill No. 1793 (Stats. 2018, ch. 993) added section 11361.9, under which the Department "
              "of Justice was to review the state summary criminal history information database, identify the "
              "past convictions potentially eligible for that relief, and notify the prosecution of the cases in "
              "its jurisdiction; the prosecution was to review them by July 1, 2020, and decide whether to "
              "challenge the relief (" + HS_9 + ").")
    body(doc, "Assembly Bill No. 1706 (Stats. 2022, ch. 387) amended section 11361.9: where the prosecution did "
              "not challenge the relief by July 1, 2020, the court must issue an order recalling or dismissing "
              "the sentence, dismissing and sealing, or redesignating the conviction, no later than March 1, "
              "2023, update its records and notify the Department of Justice, which must update the state summary "
              "criminal history information database (" + HS_9 + ").")
    subheading(doc, "II.\tEACH CASE LISTED IS ONE THE STATUTE COVERS")
    body(doc, "The declaration filed with this motion states how the cases were identified and reviewed. In "
              "each case listed, the People do not challenge the relief stated for its exhibit: dismissal and "
              "sealing, redesignation of a felony conviction as a misdemeanor, or redesignation of a misdemeanor "
              "conviction as an infraction. The People therefore ask the Court to order that relief in each case "
              "(" + HS_BOTH + ").")
    subheading(doc, "III.\tTHE COMPLETE EXHIBITS SHOULD BE SEALED")
    body(doc, "A record may be filed under seal only by court order, on a motion accompanied by a memorandum and "
              "a declaration containing facts sufficient to justify the sealing (Cal. Rules of Court, rule "
              "2.551(a), (b)(1)). The complete exhibits identify each defendant by name, date of birth and "
              "criminal identification and information (CII) number. The Court may seal them if it expressly "
              "finds that an overriding interest overcomes the right of public access and supports sealing, that "
              "a substantial probability exists that the interest will be prejudiced if the record is not sealed, "
              "that the proposed sealing is narrowly tailored and that no less restrictive means exist (Cal. "
              "Rules of Court, rule 2.550(d)). The privacy of the persons whose convictions are dismissed and "
              "sealed or redesignated is such an interest: filing their names with their convictions publicly "
              "would defeat the relief. The sealing is narrowly tailored: only the complete exhibits are lodged "
              "conditionally under seal; the public redacted exhibits filed with this motion list every case, "
              "count, statute, level, disposition date and relief, and omit only the name, date of birth and CII "
              "number.")
    subheading(doc, "IV.\tCONCLUSION")
    body(doc, "The People respectfully ask the Court to grant the relief stated in each exhibit for every case "
              "listed in it, to order the complete exhibits sealed, and to sign the proposed order submitted with "
              "this motion.", keep_next=True)  # the signature page keeps some text (never a page of its own)
    signature(doc, "Dated: {{ filing.date }}",
              ["Respectfully submitted,", "", "{{ office.attorney }}", "{{ office.attorney_title }}", "", "",
               "By: ______________________________", "{{ office.signer.name }}", "{{ office.signer.title }}"])
    index_of_exhibits(doc)
    finish(doc)
    return doc


def declaration():
    """The declaration CRC 2.551(b)(1) requires: where the list came from, the criteria, the counts
    of the batch, the exhibits authenticated, the facts that support sealing; unsigned."""
    doc = pleading()
    first_page(doc)
    body(doc, "I, {{ office.declaration.declarant.name }}, declare:")
    numbered(doc, "1.\tI am {{ office.declaration.declarant.title }} of the {{ office.name }}. I have personal "
                  "knowledge of the facts stated in this declaration, and if called as a witness I could and "
                  "would testify competently to them.")
    numbered(doc, "2.\tThe cases listed in the exhibits to this motion were identified from the following "
                  "sources:")
    tag(doc, "{%p for src in office.declaration.sources %}")
    indented(doc, "({{ 'abcdefghij'[loop.index0] }}) {{ src.description }}{% if src.date %} ({{ src.date }})"
                  "{% endif %}.")
    tag(doc, "{%p endfor %}")
    numbered(doc, "3.\tEach case was reviewed against the following criteria:")
    tag(doc, "{%p for c in office.declaration.criteria %}")
    indented(doc, "({{ 'abcdefghij'[loop.index0] }}) {{ c }}")
    tag(doc, "{%p endfor %}")
    numbered(doc, "4.\tThis filing ({{ caption.batch_label }}) lists {{ filing.case_count }} "
                  "case{{ '' if filing.case_count == 1 else 's' }} and {{ counts.convictions }} "
                  "count{{ '' if counts.convictions == 1 else 's' }} of conviction. By relief: "
                  "{% for r in reliefs %}{{ r.title }}, {{ r.count }} case{{ '' if r.count == 1 else 's' }} "
                  "(Exhibit {{ r.letter }}){{ '; ' if not loop.last else '.' }}{% endfor %} By level of the "
                  "count: {% for l in counts.levels %}{{ l.level }}, {{ l.count }}"
                  "{{ '; ' if not loop.last else '.' }}{% endfor %}"
                  "{% if counts.identified_by %} By how the case was identified: {% for i in counts.identified_by %}"
                  "{{ i.label }}, {{ i.count }}{{ '; ' if not loop.last else '.' }}{% endfor %}{% endif %}"
                  "{% if office.declaration.excluded %} {{ office.declaration.excluded }}{% endif %}")
    numbered(doc, "5.\tThe exhibits are true and correct copies of the lists of those cases prepared from the "
                  "records of the {{ office.name }}. The complete exhibits, lodged conditionally under seal, give "
                  "each defendant\u2019s name, date of birth and CII number; the public redacted exhibits filed "
                  "with the motion are the same lists without those three items.")
    numbered(doc, "6.\tThe complete exhibits name persons whose cannabis convictions the motion asks the Court "
                  "to dismiss and seal or to redesignate, beside the date of birth and CII number of each. Filed "
                  "publicly, they would disclose each person\u2019s criminal history, including convictions "
                  "the motion asks the Court to seal. The public redacted exhibits omit only those three items.")
    body(doc, "I declare under penalty of perjury under the laws of the State of California that the foregoing "
              "is true and correct. Executed on ____________________, at ____________________, California.",
         keep_next=True)
    signature(doc, "", ["______________________________", "{{ office.declaration.declarant.name }}"])
    finish(doc)
    return doc


def lodged_record():
    """The first page of the record lodged conditionally under seal (CRC 2.551(d)): the full
    caption, the legend, and what the record holds; the complete exhibits follow it."""
    doc = pleading()
    first_page(doc)
    banner = para(doc, "CONDITIONALLY UNDER SEAL", "Court Title")
    box = "".join(f'<w:{side} w:val="single" w:sz="18" w:space="4" w:color="auto"/>'
                  for side in ("top", "left", "bottom", "right"))
    put(banner._p.get_or_add_pPr(), xml(f"<w:pBdr {{ns}}>{box}</w:pBdr>"))
    banner.paragraph_format.left_indent = banner.paragraph_format.right_indent = Inches(1.5)
    para(doc, "", "Pleading Double")
    body(doc, "This record is lodged conditionally under seal with the notice of motion and motion for relief "
              "and to seal filed with it (Cal. Rules of Court, rules 2.550(b)(3), 2.551(b)(1)). It is not to be "
              "filed or opened to public inspection unless the Court so orders. It holds the complete exhibits to "
              "the motion, which give the name, date of birth and CII number of each defendant:", keep_next=True)
    tag(doc, "{%p for r in reliefs %}")
    indented(doc, "Exhibit {{ r.letter }}, {{ r.title }}: {{ r.count }} case{{ '' if r.count == 1 else 's' }}.")
    tag(doc, "{%p endfor %}")
    body(doc, "The public redacted version of each exhibit is filed with the motion.")
    finish(doc)
    return doc


def index_of_exhibits(doc) -> None:
    """CRC 3.1110(f), on a page of its own at the end of the motion: each exhibit's letter,
    description, number of cases and the page of this paper (the motion with its declaration and
    public redacted exhibits, numbered from 1) where it begins (`r.page`, filled in once the other
    documents' pages are known; the paper's bookmarks lead to each exhibit too)."""
    page_break_before(heading(doc, "INDEX OF EXHIBITS"))
    widths = [Inches(0.8), TEXT_W - Inches(0.8) - Inches(0.8) - Inches(0.8), Inches(0.8), Inches(0.8)]
    t = new_table(doc, widths, grid=True)
    cell_margins(t, top=Twips(HALF.twips // 4), bottom=Twips(HALF.twips // 4))
    row_props(t.rows[0], header=True)
    for c, text in zip(t.rows[0].cells, ("Exhibit", "Description", "Cases", "Page")):
        first_cell_paragraph(c, text, "Table Text", bold=True, align=WD_ALIGN_PARAGRAPH.CENTER)
    description = ("Cases for {{ r.title }}: public redacted version, attached (the complete exhibit is lodged "
                   "conditionally under seal)")
    loop_rows(t, "for r in reliefs", ["{{ r.letter }}", description, "{{ r.count }}", "{{ r.page }}"], "Table Text")
    data = t.rows[2].cells
    for i in (0, 2, 3):
        data[i].paragraphs[0].alignment = WD_ALIGN_PARAGRAPH.CENTER


ORDER_BY_RELIEF = [  # (condition, what the order says for each case of that exhibit): the statute's words
    ("if r.code == 'dismiss_and_seal'", "the conviction is dismissed and sealed"),
    ("elif r.code == 'reduce_to_misdemeanor'", "the felony conviction is redesignated as a misdemeanor"),
    ("elif r.code == 'redesignate_infraction'", "the misdemeanor conviction is redesignated as an infraction"),
    ("else", "the Court orders the relief requested: to {{ r.action }}"),
]


def order():
    doc = pleading()
    first_page(doc)
    body(doc, "The motion of the People of the State of California for relief under Health and Safety Code "
              "sections 11361.8 and 11361.9 in each case listed in the exhibits to the motion "
              "({{ filing.case_count }} case{{ '' if filing.case_count == 1 else 's' }}; {{ caption.batch_label }}), "
              "and to seal the complete exhibits lodged conditionally under seal, came before the Court. The "
              "Court has read and considered the motion, the memorandum of points and authorities, the "
              "declaration and the exhibits. The People do not challenge the relief in any of the cases listed. "
              "Good cause appearing,")
    body(doc, "IT IS ORDERED:")
    tag(doc, "{%p for r in reliefs %}")
    for condition, wording in ORDER_BY_RELIEF:
        tag(doc, "{%p " + condition + " %}")
        numbered(doc, "{{ loop.index }}.\tExhibit {{ r.letter }}, {{ r.title }}. In each case listed in Exhibit "
                      "{{ r.letter }} ({{ r.count }} case{{ '' if r.count == 1 else 's' }}), " + wording +
                      " (" + HS_BOTH + ").")
    tag(doc, "{%p endif %}")
    tag(doc, "{%p endfor %}")
    numbered(doc, "{{ reliefs|length + 1 }}.\tThe clerk shall update the records of the Court in each case listed "
                  "in the exhibits to reflect this order and shall notify the Department of Justice (" + HS_9 + ").")
    numbered(doc, "{{ reliefs|length + 2 }}.\tThe Court finds that the privacy of the persons identified in the "
                  "complete exhibits, whose convictions this order dismisses and seals or redesignates, is an "
                  "overriding interest that overcomes the right of public access to the complete exhibits and "
                  "supports sealing them; that a substantial probability exists that this interest will be "
                  "prejudiced if they are not sealed; that the sealing is narrowly tailored; and that no less "
                  "restrictive means exist (Cal. Rules of Court, rule 2.550(d)). These findings rest on the "
                  "following facts: the complete exhibits give each person\u2019s name, date of birth and CII "
                  "number beside the convictions this order dismisses and seals or redesignates, and the public "
                  "redacted exhibits list every case without those three items (Cal. Rules of Court, rule "
                  "2.550(e)(1)). The complete exhibits lodged conditionally under seal shall be filed under seal; "
                  "nothing else is sealed by this paragraph.")
    body(doc, "IT IS SO ORDERED.", keep_next=True)
    judge_signature(doc)
    finish(doc)
    return doc


def proof_of_service():
    doc = pleading()
    first_page(doc)
    body(doc, "I, {{ service.server.name }}, declare:")
    body(doc, "I am over the age of eighteen years and not a party to this action. I am employed by the "
              "{{ office.name }} as {{ service.server.title }}. My business address is "
              "{{ office.address_lines|join(', ') }}.")
    body(doc, "On {{ service.date or '____________________' }}, I served the following documents:",
         keep_next=True)
    tag(doc, "{%p for d in documents %}")
    item(doc, "{{ loop.index }}.\t{{ d.title }}{% if d.confidential %} (complete version, lodged conditionally "
              "under seal){% endif %}")
    tag(doc, "{%p endfor %}")
    body(doc, "on the persons listed below, by the method stated for each. A person marked \u201ccomplete and "
              "public versions\u201d was served every document listed; a person marked \u201cpublic redacted "
              "version only\u201d was served the documents not lodged under seal, whose exhibits are the public "
              "redacted versions (Cal. Rules of Court, rule 2.551(b)(2)):", keep_next=True)
    service_list(doc)
    body(doc, "I declare under penalty of perjury under the laws of the State of California that the foregoing "
              "is true and correct. Executed on {{ service.date or '____________________' }}, at "
              "{{ service.place or '____________________' }}, California.", keep_next=True)
    signature(doc, "", ["______________________________", "{{ service.server.name }}"])
    finish(doc)
    return doc


def service_list(doc) -> None:
    """One table row per person served, each at least 4 numbered lines high: up to 8 single-spaced
    lines, so that the text after the list stays on the numbers."""
    t = new_table(doc, [TEXT_W - Inches(1.0)], indent=Inches(1.0))
    cell_margins(t, left=Twips(0), right=Twips(0))
    first_cell_paragraph(t.rows[0].cells[0], "{%tr for party in service.parties %}", "Template Tag")
    row = t.add_row()
    row_props(row, height=Twips(PITCH.twips * 4))
    cell = row.cells[0]
    on_the_line(first_cell_paragraph(cell, "{{ party.name }}"))
    tag(cell, "{%p if party.title %}")
    para(cell, "{{ party.title }}")
    tag(cell, "{%p endif %}")
    tag(cell, "{%p for line in party.address_lines %}")
    para(cell, "{{ line }}")
    tag(cell, "{%p endfor %}")
    tag(cell, "{%p if party.email %}")
    para(cell, "Email: {{ party.email }}")
    tag(cell, "{%p endif %}")
    para(cell, "Method of service: {{ party.method }}; {{ 'complete and public versions' if party.complete "
               "else 'public redacted version only' }}")
    first_cell_paragraph(t.add_row().cells[0], "{%tr endfor %}", "Template Tag")


CASE_ORDER_BY_RELIEF = [
    ("if case.relief == 'dismiss_and_seal'", "The conviction is dismissed and sealed"),
    ("elif case.relief == 'reduce_to_misdemeanor'", "The felony conviction is redesignated as a misdemeanor"),
    ("elif case.relief == 'redesignate_infraction'", "The misdemeanor conviction is redesignated as an infraction"),
    ("else", "The motion is granted: {{ case.relief_title }}"),
]


def case_order():
    """One order per case, each on its own page(s); `cases` holds the rows."""
    doc = pleading()
    tag(doc, "{%p for case in cases %}")
    tag(doc, "{%p if not loop.first %}")
    page_break_before(para(doc, "", "Spacer"))  # each case's order starts on a new page
    tag(doc, "{%p endif %}")
    # a shorter caption box (6 lines) so that an order fits on one page
    first_page(doc, defendants="{{ case.name }}", case_number="{{ case.case_number }}", caption_lines=6)
    body(doc, "On the People\u2019s motion under Health and Safety Code sections 11361.8 and 11361.9, the relief "
              "not being challenged in this case, and good cause appearing, IT IS ORDERED as to the conviction "
              "in this case under {{ case.statutes }} (disposition {{ case.disposition_date }}):")
    for condition, wording in CASE_ORDER_BY_RELIEF:
        tag(doc, "{%p " + condition + " %}")
        numbered(doc, "1.\t" + wording + " (" + HS_BOTH + ").")
    tag(doc, "{%p endif %}")
    numbered(doc, "2.\tThe clerk shall update the records of the Court and notify the Department of Justice "
                  "(" + HS_9 + ").")
    body(doc, "IT IS SO ORDERED.", keep_next=True)
    judge_signature(doc)
    tag(doc, "{%p endfor %}")
    finish(doc)
    return doc


# -- the exhibits -------------------------------------------------------------------------------
SEALED_COLUMNS = [("#", 0.35, "n"), ("Case number", 0.75, "case_number"), ("Ct.", 0.4, "count"),
                  ("Defendant name", 1.0, "name"), ("Date of birth", 0.75, "date_of_birth"), ("CII", 0.75, "cii"),
                  ("Statute", 0.8, "statute"), ("Level", 0.85, "level"), ("Disposition date", 0.75, "disposition_date"),
                  ("Identified by", 0.6, "identified_by")]
PUBLIC_COLUMNS = [("#", 0.45, "n"), ("Case number", 1.0, "case_number"), ("Count", 0.5, "count"),
                  ("Statute", 0.9, "statute"), ("Level", 0.9, "level"), ("Disposition date", 0.85, "disposition_date"),
                  ("Identified by", 0.9, "identified_by"), ("Basis as decided upstream", 1.5, "legal_basis")]


SEALED_NOTICE = ("CONDITIONALLY UNDER SEAL",
                 ("Lodged conditionally under seal (Cal. Rules of Court, rules 2.550, 2.551). Contains the names, "
                  "dates of birth and CII numbers of the defendants: not to be examined without a court order."))
PUBLIC_NOTICE = ("PUBLIC REDACTED VERSION",
                 ("Public \u2014 redacts material from the conditionally sealed record. The defendants\u2019 names, "
                  "dates of birth and CII numbers are omitted; the complete exhibit is lodged conditionally under "
                  "seal (Cal. Rules of Court, rules 2.550, 2.551)."))


def attachment(running_head: str):
    """An exhibit's document: letter portrait, no pleading paper; a running head from page 2, the
    footer (rule and title) on every page, the page-number band left free as on the papers."""
    doc = Document()
    base_styles(doc, pleading=False)
    section_setup(doc, pleading=False)
    for p in list(doc.paragraphs):  # start from an empty body
        p._p.getparent().remove(p._p)
    s = doc.sections[0]
    s.different_first_page_header_footer = True  # page 1 carries the notice in full instead
    s.first_page_header.is_linked_to_previous = False  # an empty header on page 1
    head = s.header.paragraphs[0]
    head.style = doc.styles["Running Head"]
    head.add_run(running_head)
    footer(doc, "{{ footer_title|default(title) }}", first_page_too=True)
    return doc


def exhibit_cover(doc, notice: tuple[str, str]) -> None:
    """The top of page 1: the sealing notice, boxed, then the exhibit's letter, title and case."""
    banner = para(doc, notice[0], "Exhibit Banner")
    box = "".join(f'<w:{side} w:val="single" w:sz="18" w:space="4" w:color="auto"/>'
                  for side in ("top", "left", "bottom", "right"))
    put(banner._p.get_or_add_pPr(), xml(f"<w:pBdr {{ns}}>{box}</w:pBdr>"))
    banner.paragraph_format.left_indent = banner.paragraph_format.right_indent = Inches(1.25)
    para(doc, notice[1], "Exhibit Note").paragraph_format.space_before = Pt(6)
    para(doc, "EXHIBIT {{ exhibit.letter }}", "Exhibit Banner").paragraph_format.space_before = Pt(14)
    para(doc, "{{ exhibit.title }}", "Exhibit Title")
    para(doc, "{{ exhibit.count }} case{{ '' if exhibit.count == 1 else 's' }}, {{ exhibit.counts }} "
              "count{{ '' if exhibit.counts == 1 else 's' }} of conviction, one row per count. Relief in each: "
              "{{ exhibit.relief }} (Health & Saf. Code, \u00a7\u00a7 11361.8, 11361.9).", "Exhibit Note")
    lines = ("{{ court.name }}", "{{ caption.plaintiff }} v. {{ caption.defendants }}",
             "Case No. {{ caption.case_number }} \u2014 {{ caption.batch_label }}")
    for i, text in enumerate(lines):
        p = para(doc, text, "Exhibit Note")
        p.paragraph_format.space_before = Pt(8) if i == 0 else None
    p.paragraph_format.space_after = Pt(10)


def case_table(doc, columns: list[tuple[str, float, str]]) -> None:
    """One table per chunk of rows (LibreOffice lays out one very long table in more than linear
    time); the tables follow each other with nothing between them, so they read as one. Each has
    its heading row, repeated at the top of every page."""
    widths = [Inches(w) for _, w, _ in columns]
    assert abs(sum(widths) - EXHIBIT_W) < Inches(0.01), "the columns fill the width between the margins"
    tag(doc, "{%p for chunk in exhibit.chunks %}")
    t = new_table(doc, widths, grid=True)
    cell_margins(t, left=Inches(0.05), right=Inches(0.05), top=Twips(20), bottom=Twips(20))
    row_props(t.rows[0], header=True)
    for c, (title, _, _) in zip(t.rows[0].cells, columns):
        first_cell_paragraph(c, title, "Table Heading")
        shade(c)
    loop_rows(t, "for row in chunk", ["{{ row." + field + " }}" for _, _, field in columns], "Table Text")
    tag(doc, "{%p endfor %}")


def exhibit(public: bool):
    notice = PUBLIC_NOTICE if public else SEALED_NOTICE
    doc = attachment("Exhibit {{ exhibit.letter }}: {{ exhibit.title }} \u2014 " + notice[0])
    exhibit_cover(doc, notice)
    case_table(doc, PUBLIC_COLUMNS if public else SEALED_COLUMNS)
    finish(doc)
    return doc


# -- output -------------------------------------------------------------------------------------
def save(doc, name: str, path: Path) -> None:
    """Fixed metadata and zip entry dates, so that the same script gives the same bytes."""
    cp = doc.core_properties
    cp.author = cp.last_modified_by = "reliefdocs"
    cp.title = name
    cp.subject = "reliefdocs template"
    cp.comments = "Template for reliefdocs; edit in Word; check with `reliefdocs templates check` (docs/templates.md)"
    cp.keywords = ""
    cp.created = cp.modified = cp.last_printed = STAMP
    cp.revision = 1
    buf = io.BytesIO()
    doc.save(buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as z:
        entries = slim_styles([(i.filename, z.read(i.filename)) for i in z.infolist()])
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for filename, data in entries:
            info = zipfile.ZipInfo(filename, date_time=STAMP.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, data)
    path.write_bytes(out.getvalue())


def slim_styles(entries: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """Keep only the styles a template uses (with the defaults and what they are based on) and
    drop stylesWithEffects.xml. python-docx's blank document carries 178 styles (353 KB) and a
    438 KB stylesWithEffects.xml that every rendered document repeated: LibreOffice read them all
    for every document (measured: 1.88 s -> 1.54 s per 500-case batch, same pages and text), and
    docxtpl parsed them on every render. Word adds built-in styles back when an author uses one."""
    from lxml import etree

    w = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    files = dict(entries)
    text = b"".join(data for name, data in entries
                    if name.startswith("word/") and name.endswith(".xml") and "styles" not in name.lower())
    used = {v.decode() for v in re.findall(rb'w:(?:pStyle|rStyle|tblStyle|numStyleLink|styleLink) w:val="([^"]+)"', text)}
    root = etree.fromstring(files["word/styles.xml"])
    styles = {e.get(f"{{{w}}}styleId"): e for e in root.findall(f"{{{w}}}style")}
    keep = {sid for sid, e in styles.items() if e.get(f"{{{w}}}default") in ("1", "true")} | used
    grew = True
    while grew:  # what a kept style is based on, links to or is followed by
        grew = False
        for sid in list(keep):
            e = styles.get(sid)
            for tag in ("basedOn", "next", "link"):
                ref = e.find(f"{{{w}}}{tag}") if e is not None else None
                if ref is not None and ref.get(f"{{{w}}}val") not in keep:
                    keep.add(ref.get(f"{{{w}}}val"))
                    grew = True
    for sid, e in styles.items():
        if sid not in keep:
            root.remove(e)
    latent = root.find(f"{{{w}}}latentStyles")
    if latent is not None:
        root.remove(latent)
    out = []
    for name, data in entries:
        if name == "word/stylesWithEffects.xml":
            continue
        if name == "word/styles.xml":
            data = etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)
        if name in ("word/_rels/document.xml.rels", "[Content_Types].xml"):
            data = re.sub(rb"<(Relationship|Override)[^>]*stylesWithEffects[^>]*/>", b"", data)
        out.append((name, data))
    return out


BUILDERS = {  # one per kind of paper (service/papers.py): tests/unit/test_papers.py keeps them equal
    "motion": motion,
    "declaration": declaration,
    "lodged_record": lodged_record,
    "order": order,
    "exhibit": lambda: exhibit(public=False),
    "exhibit_public": lambda: exhibit(public=True),
    "proof_of_service": proof_of_service,
    "case_order": case_order,
}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    missing = [name for name in papers.TEMPLATES if name not in BUILDERS]
    if missing:
        raise SystemExit(f"no builder for the templates {', '.join(missing)} (service/papers.py lists them)")
    for name in papers.TEMPLATES:
        save(BUILDERS[name](), name, OUT / f"{name}.docx")
        print(f"wrote templates/default/{name}.docx")


if __name__ == "__main__":
    main()
