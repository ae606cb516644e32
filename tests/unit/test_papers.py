"""service/papers.py is the one table of the kinds of paper: everything that lists kinds
(the manifest schema, the template builder, `preview --template`, ops.verify) agrees with it,
and its rules keep personal data out of every public paper."""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
import threading
from pathlib import Path

import pytest

from service import cli, config, flush, manifest, papers, render, templates
from tools import make_templates

ROOT = Path(__file__).resolve().parents[2]


def test_the_manifest_schema_lists_exactly_the_roles_of_the_table():
    schema = json.loads((ROOT / "schemas" / "manifest.v1.schema.json").read_text())
    enum = schema["properties"]["documents"]["items"]["properties"]["role"]["enum"]
    assert enum == list(papers.ROLES)


def test_every_kind_has_a_template_builder_and_a_default_template():
    assert set(make_templates.BUILDERS) == set(papers.TEMPLATES)
    for name in papers.TEMPLATES:
        assert (ROOT / "templates" / "default" / f"{name}.docx").is_file(), name


def test_preview_offers_every_template_of_the_table():
    for name in papers.TEMPLATES:
        assert cli.parser().parse_args(["preview", "events.jsonl", "--template", name]).template == name
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["preview", "events.jsonl", "--template", "no_such_paper"])


def test_each_bundle_holds_the_papers_the_table_sends_it():
    assert papers.in_variant("bundle") == ("motion", "order", "lodged_record", "case_order", "proof_of_service")
    assert papers.in_variant("bundle_public") == ("motion", "order", "proof_of_service")
    assert [k.role for k in papers.leaders()] == ["motion", "order", "lodged_record", "case_order",
                                                  "proof_of_service"]
    parts = {k.role: k.filed_in for k in papers.KINDS if not k.leads}
    assert parts == {"declaration": "motion", "exhibit_public": "motion", "exhibit": "lodged_record"}
    assert {k.role: k.efiling_type for k in papers.leaders()} == {
        "motion": "lead_document", "order": "proposed_order", "lodged_record": "lodged_conditionally_under_seal",
        "case_order": "proposed_order", "proof_of_service": "proof_of_service"}


def test_the_table_refuses_a_public_paper_rendered_with_personal_data():
    leaky = dataclasses.replace(papers.BY_ROLE["exhibit_public"], public_context=False)
    assert any("public context" in p for p in papers.check((*papers.KINDS[:3], leaky)))
    sealed_in_public = dataclasses.replace(papers.BY_ROLE["exhibit"], filed_in="motion")
    assert any("public paper" in p for p in papers.check((papers.BY_ROLE["motion"], sealed_in_public)))
    orphan = dataclasses.replace(papers.BY_ROLE["exhibit"], filed_in="nowhere")
    assert any("not a paper" in p for p in papers.check((orphan,)))
    assert papers.check() == []


def test_kind_texts_are_filled_in_per_exhibit():
    k = papers.BY_ROLE["exhibit_public"]
    assert k.name("B") == "exhibit-b-public"
    assert k.text("footer", "B") == "EXHIBIT B (PUBLIC REDACTED VERSION)"
    assert k.text("bookmark", "B", "Dismissal and Sealing", 1) == \
        "Exhibit B: Cases for Dismissal and Sealing, 1 case (public redacted version)"
    assert papers.BY_ROLE["order"].text("title") == papers.BY_ROLE["order"].title


def plan(n=9, **settings):
    court = render.Court(ROOT / "templates", "LA")
    court.settings.update(settings)
    sb = templates.batch_of(templates._sample_decisions("LA", n))
    return sb, render.plan(sb, court, "0" * 32, 4)


def rows(doc):
    if "exhibit" in doc.context:
        return [r for chunk in doc.context["exhibit"]["chunks"] for r in chunk]
    return doc.context.get("cases", [])


def test_public_papers_get_rows_without_the_personal_fields():
    _, docs = plan(case_orders=True)
    assert [d.name for d in docs] == ["motion", "declaration", "exhibit-a-public", "exhibit-b-public",
                                      "exhibit-c-public", "order", "lodged-under-seal", "exhibit-a", "exhibit-b",
                                      "exhibit-c", "case-orders", "proof-of-service"]
    for d in docs:
        for row in rows(d):
            if d.kind.public_context:
                assert not set(papers.PERSONAL) & set(row), d.name
            else:
                assert set(papers.PERSONAL) <= set(row), d.name
    assert all(rows(d) for d in docs if d.kind.is_exhibit or d.kind.with_cases)
    served = next(d for d in docs if d.kind.lists_served).context["documents"]
    assert [x["role"] for x in served] == ["motion", "declaration", "exhibit_public", "exhibit_public",
                                           "exhibit_public", "order", "lodged_record", "exhibit", "exhibit", "exhibit",
                                           "case_order"]
    assert [x["confidential"] for x in served] == [False] * 6 + [True] * 5


def test_manifest_letters_come_from_the_sealed_exhibits_and_the_bundle_pages_from_the_bundle():
    sb, docs = plan()
    letters = manifest.exhibit_letters(sb, docs)
    assert set(letters.values()) == {"A", "B", "C"}
    m = {"documents": [{"role": "bundle_public", "pages": 3}, {"role": "bundle", "pages": 7},
                       {"role": "motion", "pages": 2}]}
    assert manifest.bundle_pages(m) == 7
    assert manifest.bundle_pages({"documents": [{"role": "motion", "pages": 2}]}) == 0


def test_motion_pages_are_bounded_and_shared_safely():
    cache = flush.MotionPages(size=4)
    assert cache.get(("LA",)) == 0

    def fill(t):
        for i in range(200):
            cache.put((f"{t}", str(i)), i)
            cache.get((f"{t}", str(i)))

    threads = [threading.Thread(target=fill, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(cache.items) == 4
    cache.put(("LA",), 5)
    assert cache.get(("LA",)) == 5


def test_a_template_error_keeps_its_cause_and_a_bug_propagates(tmp_path, monkeypatch):
    from docx import Document

    from service.errors import BatchFailed

    folder = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", folder)
    doc = Document()
    doc.add_paragraph("{{ filing.no_such_field }}")
    doc.save(folder / "default" / "order.docx")
    court = render.Court(folder, "LA")
    sb = templates.batch_of(templates._sample_decisions("LA", 2))
    order = next(d for d in render.plan(sb, court, "0" * 32, 4) if d.role == "order")
    with pytest.raises(BatchFailed) as caught:
        render.render(order, court, tmp_path / "out")
    assert caught.value.reason == "render_failed" and "order.docx" in caught.value.message
    assert caught.value.__cause__ is not None  # the worker can log the stack

    def bug(*args, **kwargs):
        raise AttributeError("a bug in reliefdocs")

    monkeypatch.setattr(render.docx_adapter, "save", bug)
    motion = next(d for d in render.plan(sb, court, "0" * 32, 4) if d.role == "motion")
    with pytest.raises(AttributeError):
        render.render(motion, court, tmp_path / "out")


def test_preview_of_a_switched_paper_plans_it(tmp_path, monkeypatch):
    """`preview --template case_order` turns on the court.json switch that adds the paper
    (papers.Kind.switch) and converts the whole filing (stopped here before LibreOffice)."""
    from tools import sample

    events = tmp_path / "events.jsonl"
    rng = random.Random(3)
    events.write_text("".join(json.dumps(sample.decision(rng, i, "LA", "PV", None), ensure_ascii=False) + "\n"
                              for i in range(3)), encoding="utf-8")
    seen = []

    class Stop(Exception):
        pass

    def papers_(docs, court, work, convert):
        seen.extend(d.role for d in docs)
        raise Stop

    monkeypatch.setattr(flush, "papers", papers_)
    settings = config.load({"RELIEFDOCS_TEMPLATES_DIR": str(ROOT / "templates")})
    with pytest.raises(Stop):
        templates.preview(settings, events, tmp_path / "out.pdf", "case_order")
    assert "case_order" in seen and "exhibit_public" in seen
