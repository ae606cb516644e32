"""What an e-filing clerk accepts (issue 14), without LibreOffice: the efiling list of the
manifest, the declaration's counts, the court settings for caption, hearing and service, the
citations, and no personal data in any public context."""

from __future__ import annotations

from pathlib import Path

from service import citations, manifest, papers, render, templates

ROOT = Path(__file__).resolve().parents[2]


def plan(n=9, **settings):
    court = render.Court(ROOT / "templates", "LA")
    court.settings.update(settings)
    sb = templates.batch_of(templates._sample_decisions("LA", n))
    return sb, render.plan(sb, court, "0" * 32, 4)


def stored(role, name, pages, confidential, media="application/pdf"):
    return {"role": role, "key": f"LA/b/x/{name}", "media_type": media, "sha256": "0" * 64, "bytes": 1,
            "pages": pages, "confidential": confidential, "first_page": 1}


def test_the_efiling_list_is_the_papers_in_order_of_submission_never_the_bundles():
    _, docs = plan()
    objects = [stored("bundle", "bundle.pdf", 20, True), stored("bundle_public", "bundle-public.pdf", 14, False),
               stored("motion", "motion.pdf", 9, False), stored("order", "order.pdf", 2, False),
               stored("lodged_record", "lodged-under-seal.pdf", 5, True),
               stored("proof_of_service", "proof-of-service.pdf", 2, False),
               stored("order", "order.docx", None, False, "application/vnd.openxmlformats-officedocument."
                                                            "wordprocessingml.document")]
    listed = manifest.efiling(docs, objects)
    assert [(p["type"], p["key"].rsplit("/", 1)[1], p["pages"], p["confidential"]) for p in listed] == [
        ("lead_document", "motion.pdf", 9, False), ("proposed_order", "order.pdf", 2, False),
        ("lodged_conditionally_under_seal", "lodged-under-seal.pdf", 5, True),
        ("proof_of_service", "proof-of-service.pdf", 2, False)]
    assert listed[1]["editable_key"] == "LA/b/x/order.docx" and all(p["first_page"] == 1 for p in listed)
    assert listed[0]["title"] == papers.BY_ROLE["motion"].title


def test_the_declaration_counts_come_from_the_batch():
    sb = templates.batch_of(templates._sample_decisions("LA", 6))
    sb.decisions[0].data["convictions"].append({"statute": "HS 11360(a)", "level": "misdemeanor"})
    for d, how in zip(sb.decisions, ("doj_list", "county_search", "doj_list", "additive")):
        d.data["identified_by"] = how
    counts = render.counts(sb)
    assert counts["cases"] == 6 and counts["convictions"] == 7
    assert counts["levels"] == [{"level": "felony", "count": 6}, {"level": "misdemeanor", "count": 1}]
    assert [(i["source"], i["count"]) for i in counts["identified_by"]] == [
        ("doj_list", 2), ("county_search", 1), ("additive", 1)]


def test_exhibits_have_a_row_per_count_and_the_public_rows_no_personal_fields():
    _, docs = plan()  # the sample has one count per case
    for d in docs:
        if d.kind.is_exhibit:
            rows = [r for chunk in d.context["exhibit"]["chunks"] for r in chunk]
            assert d.context["exhibit"]["counts"] == len(rows) == d.context["exhibit"]["count"]
            assert [r["n"] for r in rows] == list(range(1, len(rows) + 1))
            assert all({"count", "statute", "level", "identified_by"} <= set(r) for r in rows)
            assert bool(set(papers.PERSONAL) & set(rows[0])) == d.kind.confidential
    for d in docs:
        if not d.kind.confidential:
            assert not set(papers.PERSONAL) & {k for r in d.context.get("cases", []) for k in r}


def test_court_settings_give_the_caption_the_hearing_and_the_service_blanks():
    _, docs = plan()
    ctx = docs[0].context
    assert ctx["caption"]["case_number"].startswith("Various (see Exhibit A")
    assert ctx["court"]["hearing"] is None and ctx["court"]["department"] == ""
    assert ctx["service"]["date"] == ""  # never invented: the server fills it in (court.json may set it)
    assert all("complete" in p for p in ctx["service"]["parties"])
    hearing = {"date": "January 5, 2027", "time": "8:30 a.m.", "department": "100"}
    _, docs = plan(case_number="26-MISC-0001", department="100", hearing=hearing,
                   service={"date": "December 1, 2026", "parties": [{"name": "PD", "method": "email", "complete": 1}]})
    ctx = docs[0].context
    assert ctx["caption"]["case_number"] == "26-MISC-0001" and ctx["court"]["hearing"] == hearing
    assert ctx["service"]["date"] == "December 1, 2026" and ctx["service"]["parties"][0]["complete"] is True


def test_the_declaration_settings_come_from_office_json_with_blanks_when_absent():
    _, docs = plan()
    declaration = docs[0].context["office"]["declaration"]
    assert declaration["declarant"]["name"] and declaration["sources"] and declaration["criteria"]
    _, docs = plan(office={"name": "Office"})
    assert docs[0].context["office"]["declaration"]["declarant"]["name"].startswith("____")


def test_citations_are_read_out_of_pleading_text_without_the_line_numbers():
    page = ("12   to seal (Cal. Rules of Court, rule\n13   2.550(d)). The relief (Health & Saf. Code, §§\n"
            " 4   11361.8, 11361.9).\n")
    assert citations.find(page) == ["Cal. Rules of Court, rule 2.550(d)", "Health & Saf. Code, §§ 11361.8, 11361.9"]
    assert set(citations.find(page)) <= set(citations.CITATIONS)
    assert citations.find("(HS 11361.8(e))") == []


def test_a_case_with_two_counts_gives_two_rows_each_with_its_own_statute_and_level():
    data = templates._sample_decisions("LA", 1)[0].data
    data = {**data, "convictions": [{"statute": "HS 11359", "level": "felony", "disposition_date": "1999-01-02"},
                                     {"statute": "HS 11357(b)", "level": "misdemeanor"}]}
    rows = render.count_rows(5, data)
    assert [(r["n"], r["count"], r["statute"], r["level"], r["disposition_date"]) for r in rows] == [
        (5, 1, "HS 11359", "felony", "01/02/1999"), (6, 2, "HS 11357(b)", "misdemeanor", "")]
    assert {r["case_number"] for r in rows} == {data["case"]["number"]}
