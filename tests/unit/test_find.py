"""`reliefdocs find`'s answers (service/find.py), from plain ledger entries, manifests and records."""

from service.find import describe, lookup, manifest_key, placed, unfiled
from service.reconcile import Letter, Read

ENTRY = {"bundle_id": "B1", "court_code": "LA", "batch_id": "x/y", "volume": 1, "decisions": ["a", "b"],
         "cases": ["LA1", "LA2"], "manifest": "LA/x%2Fy/B1/manifest.json"}
OLD = {"bundle_id": "B0", "court_code": "LA", "batch_id": "x/y", "volume": 1, "decisions": ["z"]}
MANIFEST = {"decisions": [{"decision_id": "b", "relief": "reduce_to_misdemeanor", "exhibit": "B"}],
            "documents": [{"role": "exhibit", "key": "LA/x%2Fy/B1/exhibit-b.pdf", "first_page": 14, "pages": 3},
                          {"role": "exhibit_public", "key": "LA/x%2Fy/B1/exhibit-b-public.pdf", "first_page": 14}]}


def test_lookup_by_id_or_case_number_and_entries_without_case_numbers():
    assert lookup([ENTRY, OLD], "b", None) == [(ENTRY, "b")]
    assert lookup([ENTRY, OLD], None, "LA1") == [(ENTRY, "a")]
    assert lookup([ENTRY, OLD], "z", None) == [(OLD, "z")] and lookup([OLD], None, "LA1") == []
    assert manifest_key(ENTRY) == ENTRY["manifest"] and manifest_key(OLD) == "LA/x%2Fy/B0/manifest.json"


def test_placed_names_the_exhibit_paper_and_its_first_page():
    a = placed(ENTRY, "b", MANIFEST, "s3://bk/LA/x%2Fy/B1/manifest.json", True)
    assert (a["status"], a["exhibit"], a["paper"], a["first_page"], a["announced"]) == (
        "filed", "B", "LA/x%2Fy/B1/exhibit-b.pdf", 14, True)
    text = describe(a)
    assert "filed in bundle B1" in text and "begins on page 14 of bundle.pdf" in text and "row's own page" in text
    gone = placed(ENTRY, "b", None, "s3://bk/m", None)
    assert gone["status"] == "missing" and "manifest is not stored" in describe(gone)


def rd(off, did, relief="dismiss_and_seal", batch="LA-A"):
    return Read(0, off, 0, "LA", "decision", did, relief, batch)


def test_unfiled_says_why():
    reads = [rd(0, "n", "not_eligible"), rd(1, "p"), rd(2, "m"), rd(3, "d")]
    letters = [Letter("t:0:3", (0, 3), "schema_violation", "data.convictions: missing", "LA", "d", None, "1:7")]
    assert unfiled("n", reads, letters, {0: 3})["why"] == "relief is not_eligible: counted, never filed"
    pending = unfiled("p", reads, letters, {0: 1})
    assert pending["status"] == "pending" and "LA-A" in pending["why"]
    assert unfiled("m", reads, letters, {0: 3})["status"] == "missing"
    queued = unfiled("m", reads, letters, {0: 3}, {"m": "B9"})  # committed past, its batch on the work topic
    assert queued["status"] == "pending" and queued["queued_in"] == "B9" and "B9" in queued["why"]
    dead = unfiled("d", reads, letters, {0: 4})
    assert (dead["status"], dead["reason"], dead["dlq_position"]) == ("dead_lettered", "schema_violation", "1:7")
    assert "dead-lettered: schema_violation (data.convictions: missing)" in describe(dead)
    assert unfiled("q", reads, letters, {0: 4})["status"] == "not_found"
