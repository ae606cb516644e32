"""`reliefdocs templates check` passes on the shipped templates and catches the mistakes it
is for."""

import io
import shutil
from pathlib import Path

from docx import Document

from service import config, templates
from tests.files import rewrite_part

ROOT = Path(__file__).resolve().parents[2]


def settings(folder):
    return config.load({"RELIEFDOCS_TEMPLATES_DIR": str(folder)})


def test_shipped_templates_pass():
    out = io.StringIO()
    assert templates.check(settings(ROOT / "templates"), out=out) == 0, out.getvalue()


def test_unknown_variable_and_missing_template_are_reported(tmp_path):
    folder = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", folder)
    (folder / "courts" / "XY").mkdir()
    (folder / "courts" / "XY" / "court.json").write_text('{"documents": ["motion", "no_such_paper"]}')
    doc = Document()
    doc.add_paragraph("{{ defendant_name }} and {{ filing.batch_idd }}")
    doc.save(folder / "courts" / "XY" / "motion.docx")
    out = io.StringIO()
    assert templates.check(settings(folder), out=out) == 1
    text = out.getvalue()
    assert "uses 'defendant_name'" in text
    assert "needs template no_such_paper.docx" in text


def test_syntax_error_is_reported(tmp_path):
    folder = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", folder)
    doc = Document()
    doc.add_paragraph("{% for x in reliefs %}")
    doc.save(folder / "default" / "order.docx")
    out = io.StringIO()
    assert templates.check(settings(folder), out=out) == 1
    assert "order.docx: does not compile" in out.getvalue()


def test_shipped_templates_are_converted_as_one_and_an_odd_override_is_noted(tmp_path):
    out = io.StringIO()
    assert templates.check(settings(ROOT / "templates"), out=out) == 0
    assert "NOTE" not in out.getvalue()
    folder = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", folder)
    (folder / "courts" / "XY").mkdir()
    (folder / "courts" / "XY" / "court.json").write_text("{}")
    doc = Document(folder / "default" / "proof_of_service.docx")
    doc.settings.odd_and_even_pages_header_footer = True  # settings of its own
    doc.save(folder / "courts" / "XY" / "proof_of_service.docx")
    out = io.StringIO()
    assert templates.check(settings(folder), out=out) == 0, out.getvalue()
    assert "NOTE courts/XY: documents will be converted one at a time" in out.getvalue()
    assert "settings" in out.getvalue()


def test_a_public_template_asking_for_a_name_fails_the_check_and_other_courts_are_still_checked(tmp_path):
    """Redaction by data: the public papers' rows have no name, date of birth or CII at all,
    so a court's exhibit_public that prints one is a problem naming the court and template,
    and the courts after it are still rendered and checked."""
    folder = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", folder)
    for code, field in (("AA", "name"), ("ZZ", "cii")):
        (folder / "courts" / code).mkdir()
        (folder / "courts" / code / "court.json").write_text("{}")
        rewrite_part(folder / "default" / "exhibit_public.docx", folder / "courts" / code / "exhibit_public.docx",
                     "word/document.xml", lambda xml, f=field: xml.replace(b"row.case_number", f"row.{f}".encode()))
    out = io.StringIO()
    assert templates.check(settings(folder), out=out) == 1
    text = out.getvalue()
    assert "FAIL courts/AA: template exhibit_public.docx: UndefinedError" in text and "'name'" in text, text
    assert "FAIL courts/ZZ: template exhibit_public.docx: UndefinedError" in text and "'cii'" in text, text
    assert "courts/LA" not in text and "2 problems" in text
