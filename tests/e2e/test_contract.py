"""The contract, section by section, on a real broker, S3 API and LibreOffice.

One run of a worker over a mixed stream (several courts, both content modes, explicit and
implicit batches, volumes, duplicates, decisions that are not filed, every kind of bad
record, a court whose template is broken); each test checks one promise of the contract
from outside, through S3 and the topics only."""

from __future__ import annotations

import hashlib
import os
import json
import random
import re
import shutil

import pytest
from docx import Document

from tests.e2e.conftest import ROOT, Env, pdf_text
from tools import sample

HOSTILE = [("O'Brien & <Sons>", 'D"Angelo'), ("{{ 7*7 }}", "{% if true %}Evaluated{% endif %}"),
           ("محمد", "عبد الله"), ("Zoë 🌿", "Brontë-Łukasz"), ("{_{ x }_}", "</w:t><w:p>")]


def decision(n, court, batch_id, relief=None, name=None, decision_id=None):
    ev = sample.decision(random.Random(n), n, court, batch_id, relief or "dismiss_and_seal")
    if name:
        ev["data"]["defendant"].update(first_name=name[0], last_name=name[1])
    if decision_id:
        ev["data"]["decision_id"] = decision_id
    return ev


def broken_templates(tmp) -> str:
    folder = tmp / "templates"
    shutil.copytree(os.environ.get("RELIEFDOCS_TEMPLATES_DIR") or ROOT / "templates", folder)
    (folder / "courts" / "BAD").mkdir(parents=True)
    doc = Document()
    doc.add_paragraph("{{ filing.no_such_field.deeper }}")
    doc.save(folder / "courts" / "BAD" / "motion.docx")
    return str(folder)


BAD_RECORDS = {
    "invalid_json": (b"LA", b"{not json"),
    "invalid_cloudevent": (b"LA", json.dumps({"hello": "world"}).encode()),
    "unsupported_type": (b"LA", json.dumps({"specversion": "1.0", "id": "u1", "source": "s", "type": "com.example.nope",
                                            "data": {}}).encode()),
    "schema_violation": (b"SF", json.dumps({"specversion": "1.0", "id": "s1", "source": "s",
                                            "type": "relief.eligibility.decided.v1",
                                            "data": {"decision_id": "bad-schema"}}).encode()),
}


@pytest.fixture(scope="module")
def run(services, tmp_path_factory):
    broker, s3 = services
    tmp = tmp_path_factory.mktemp("contract")
    w = Env(broker, s3, tmp, settings={"RELIEFDOCS_BATCH_MAX_CASES": "6", "RELIEFDOCS_BATCH_LINGER_SECONDS": "600",
                                       "RELIEFDOCS_TEMPLATES_DIR": broken_templates(tmp)})
    la = [decision(i, "LA", "LA-A", name=HOSTILE[i % len(HOSTILE)] if i < len(HOSTILE) else None,
                   relief=["dismiss_and_seal", "reduce_to_misdemeanor", "redesignate_infraction"][i % 3])
          for i in range(8)]
    sd = [decision(100 + i, "SD", "SD-A") for i in range(3)]
    sd_dup = decision(200, "SD", "SD-A", decision_id=sd[0]["data"]["decision_id"])  # same decision_id again
    sd_not = [decision(101 + 10, "SD", "SD-A", relief="not_eligible"),
              decision(102 + 10, "SD", "SD-A", relief="review_required")]
    bad_court = [decision(300 + i, "SD", "BAD-A") for i in range(2)]
    for ev in bad_court:
        ev["data"]["court"]["code"] = "BAD"
    mismatch = decision(400, "SD", "SD-A")  # valid, but keyed LA while its court is SD
    w.publish(la + [sample.closed("LA", "LA-A", 9)])
    sf = [decision(500 + i, "SF", None) for i in range(4)]
    w.publish(sf, binary=True)
    w.publish(sd + [sd_dup] + sd_not + [sample.closed("SD", "SD-A", 3)])
    w.publish(bad_court + [sample.closed("BAD", "BAD-A", 2)])
    w.publish(list(BAD_RECORDS.values()) + [(b"LA", json.dumps(mismatch).encode())])
    rc = w.run_worker(idle=2)
    yield w, rc, {"LA": la, "SD": sd, "SF": sf, "BAD": bad_court, "mismatch": mismatch}
    w.stop()


def test_worker_exits_0_when_idle(run):
    w, rc, _ = run
    assert rc == 0, w.log()


def test_every_granted_decision_filed_exactly_once(run):
    w, _, sent = run
    filed = w.filed()
    expected = {e["data"]["decision_id"] for e in sent["LA"] + sent["SD"] + sent["SF"]}
    assert set(filed) == expected
    assert all(len(b) == 1 for b in filed.values()), {k: v for k, v in filed.items() if len(v) > 1}


def test_batches_volumes_and_closing(run):
    w, _, sent = run
    got = sorted((m["court_code"], m["batch_id"], m["volume"], len(m["decisions"]), m["closed_by"])
                 for m in w.manifests())
    sf = [g for g in got if g[0] == "SF"]
    assert [g for g in got if g[0] != "SF"] == [("LA", "LA-A", 1, 6, "max_cases"), ("LA", "LA-A", 2, 2, "upstream"),
                                                ("SD", "SD-A", 1, 3, "upstream")]
    assert len(sf) == 1 and re.fullmatch(r"SF-auto-\d{8}-p\d+-o\d+", sf[0][1])
    assert sf[0][2:] == (1, len(sent["SF"]), "idle")
    la2 = next(m for m in w.manifests() if m["court_code"] == "LA" and m["volume"] == 2)
    assert la2["expected_count"] == 9  # recorded, not fatal


def test_manifest_checksums_match_stored_objects(run):
    w, _, _ = run
    for m in w.manifests():
        roles = {d["role"] for d in m["documents"]}
        assert {"bundle", "motion", "order", "lodged_record", "proof_of_service"} <= roles
        assert [p["key"] for p in m["efiling"]] == [d["key"] for d in m["documents"] if d["media_type"] ==
                                                     "application/pdf" and not d["role"].startswith("bundle")]
        assert any(d["role"] == "order" and d["key"].endswith(".docx") for d in m["documents"])
        for d in m["documents"]:
            body = w.get("filings/" + d["key"])
            assert hashlib.sha256(body).hexdigest() == d["sha256"] and len(body) == d["bytes"], d["key"]
            assert d["key"].startswith(f"{m['court_code']}/{m['batch_id']}/{m['bundle_id']}/")
            if d["media_type"] == "application/pdf":
                from pypdf import PdfReader
                import io
                assert len(PdfReader(io.BytesIO(body)).pages) == d["pages"]


def test_bundle_is_bookmarked_per_paper(run):
    import io

    from pypdf import PdfReader

    w, _, _ = run
    for m in w.manifests():
        bundle = next(d for d in m["documents"] if d["role"] == "bundle")
        reader = PdfReader(io.BytesIO(w.get("filings/" + bundle["key"])))
        titles = [o.title for o in reader.outline]
        parts = [d for d in m["documents"] if d["role"] in ("motion", "order", "lodged_record", "proof_of_service")
                 and d["media_type"] == "application/pdf"]
        assert len(titles) == len(parts) == len(m["efiling"])
        assert sum(d["pages"] for d in parts) == bundle["pages"]
        lodged = next(d for d in parts if d["role"] == "lodged_record")
        exhibits = [o.title for o in PdfReader(io.BytesIO(w.get("filings/" + lodged["key"]))).outline]
        assert any(t.startswith("Exhibit A") for t in exhibits)


def test_one_notification_per_bundle_after_storage(run):
    w, _, _ = run
    manifests = {m["bundle_id"]: m for m in w.manifests()}
    notes = w.records(w.notifications)
    events = [json.loads(r.value) for r in notes]
    assert sorted(e["id"] for e in events) == sorted(manifests)
    for rec, e in zip(notes, events):
        assert e["type"] == "relief.filing.bundle.ready.v1" and e["specversion"] == "1.0"
        assert rec.key.decode() == e["data"]["court_code"]
        m = manifests[e["id"]]
        assert e["data"]["case_count"] == len(m["decisions"])
        assert [(p["type"], p["pages"], p["confidential"]) for p in e["data"]["efiling"]] == \
            [(p["type"], p["pages"], p["confidential"]) for p in m["efiling"]]
        assert [p["uri"] for p in e["data"]["efiling"]] == [f"s3://{w.bucket}/filings/{p['key']}" for p in m["efiling"]]
        assert e["data"]["manifest_uri"] == f"s3://{w.bucket}/filings/{m['court_code']}/{m['batch_id']}/{e['id']}/manifest.json"
        # what it announces is stored as announced (no clock compared: S3's and the broker's differ)
        assert json.loads(w.get(e["data"]["manifest_uri"].split("/", 3)[3]))["bundle_id"] == e["id"]
        for d in e["data"]["documents"]:
            body = w.get(d["uri"].split("/", 3)[3])
            assert (hashlib.sha256(body).hexdigest(), len(body)) == (d["sha256"], d["bytes"]), d["uri"]


def test_notification_matches_schema(run, schemas):
    w, _, _ = run
    for rec in w.records(w.notifications):
        e = json.loads(rec.value)
        assert not list(schemas.envelope.iter_errors(e))
        assert not list(schemas.by_type["relief.filing.bundle.ready.v1"].iter_errors(e["data"]))


def test_every_bad_record_in_dlq_unchanged_with_reason(run):
    w, _, sent = run
    dead = w.records(w.dlq)
    by_value = {r.value: r for r in dead}
    for reason, (key, value) in BAD_RECORDS.items():
        r = by_value[value]
        h = dict(r.headers)
        assert r.key == key and h["reliefdocs.error.reason"].decode() == reason
        assert h["reliefdocs.source.topic"].decode() == w.decisions
        assert int(h["reliefdocs.source.offset"]) >= 0 and int(h["reliefdocs.source.partition"]) >= 0
        assert h["reliefdocs.error.message"]
    mismatch = by_value[json.dumps(sent["mismatch"]).encode()]
    assert dict(mismatch.headers)["reliefdocs.error.reason"] == b"key_mismatch"


def test_render_failure_dead_letters_whole_batch_only(run):
    w, _, sent = run
    dead = [r for r in w.records(w.dlq) if dict(r.headers)["reliefdocs.error.reason"] == b"render_failed"]
    assert sorted(json.loads(r.value)["data"]["decision_id"] for r in dead) == sorted(
        e["data"]["decision_id"] for e in sent["BAD"])
    assert all(r.key == b"BAD" for r in dead)
    assert not any(m["court_code"] == "BAD" for m in w.manifests())


def test_dlq_messages_carry_no_personal_data(run):
    w, _, sent = run
    personal = {v for e in sent["LA"] + sent["BAD"] for v in (e["data"]["defendant"]["last_name"],
                                                              e["data"]["defendant"]["date_of_birth"],
                                                              e["data"]["defendant"]["cii"])}
    for r in w.records(w.dlq):
        message = dict(r.headers)["reliefdocs.error.message"].decode()
        assert not any(p in message for p in personal if len(p) > 3)


def test_hostile_names_printed_literally(run):
    w, _, sent = run
    texts = ""
    for m in w.manifests():
        if m["court_code"] != "LA":
            continue
        bundle = next(d for d in m["documents"] if d["role"] == "bundle")
        texts += pdf_text(w.get("filings/" + bundle["key"]), w.tmp)
    # pdftotext gives right-to-left words in visual order between bidi marks: compare words
    plain = re.sub("[\u202a-\u202e\u2066-\u2069]", "", texts)
    squashed = re.sub(r"\s+", "", plain)
    for first, last in HOSTILE:
        for word in (first + " " + last).split():
            assert word in squashed, word
    # printed as typed, so nothing was evaluated: "{{ 7*7 }}" is there, not "49"
    assert "{{7*7}}" in squashed and "{%iftrue%}Evaluated{%endif%}" in squashed


def test_public_bundle_has_no_personal_data(run):
    w, _, sent = run
    for m in w.manifests():
        public = [d for d in m["documents"] if not d.get("confidential")]
        assert any(d["role"] == "bundle_public" for d in public)
        text = "".join(pdf_text(w.get("filings/" + d["key"]), w.tmp) for d in public
                       if d["media_type"] == "application/pdf")
        for e in sent["LA"] + sent["SD"]:
            if e["data"]["court"]["code"] != m["court_code"]:
                continue
            d = e["data"]["defendant"]
            assert d["cii"] not in text
            dob = d["date_of_birth"]
            assert f"{dob[5:7]}/{dob[8:10]}/{dob[:4]}" not in text


def test_second_run_files_nothing_new(run):
    w, _, _ = run
    before = sorted(m["bundle_id"] for m in w.manifests())
    assert w.run_worker(idle=2) == 0
    assert sorted(m["bundle_id"] for m in w.manifests()) == before
