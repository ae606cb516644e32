"""The campaign's accounting (service/reconcile.py): every category, from plain values."""

import json

from service import broker
from service.dlq import DeadLetter
from service.reconcile import Bundle, Letter, Read, account, bundle_of, letter_of, summarize


def dec(off, did, relief="dismiss_and_seal", court="LA", batch=None, part=0, **kw):
    return Read(part, off, 1_700_000_000_000, court, "decision", did, relief, batch, ("felony",), **kw)


def bundle(bid, *ids, court="LA", batch="b"):
    return Bundle(bid, court, batch, 1, "2026-11-24T10:00:00.000Z", f"{court}/{batch}/{bid}/manifest.json",
                  tuple((i, "dismiss_and_seal", "A") for i in ids))


def kinds(acc):
    return sorted((p.kind, p.decision_id) for p in acc.problems)


def test_filed_pending_and_not_filed_add_up():
    reads = [dec(0, "a"), dec(1, "b"), dec(2, "n", relief="not_eligible"), dec(3, "r", relief="review_required"),
             dec(4, "c")]
    acc = account(reads, [], {0: 4}, [bundle("B1", "a", "b")], [{"bundle_id": "B1", "decisions": ["a", "b"]}])
    t = acc.total
    assert (t.received, t.granted, t.filed, t.pending, t.not_filed, t.missing) == (5, 3, 2, 1, 2, 0)
    assert acc.ok and acc.pending[0]["decision_id"] == "c"
    assert acc.reliefs[("LA", "not_eligible")]["not_filed"] == 1
    assert acc.levels["felony"]["filed"] == 2
    assert acc.filed_at["2026-11-24T10"] == 2


def test_nothing_committed_means_everything_unfiled_is_pending():
    acc = account([dec(0, "a")], [], {0: None}, [], [])
    assert acc.ok and acc.total.pending == 1


def test_granted_committed_past_and_unfiled_is_missing_naming_the_ledger_bundle():
    acc = account([dec(0, "a"), dec(1, "b")], [], {0: 2}, [bundle("B1", "b")],
                  [{"bundle_id": "B0", "court_code": "LA", "decisions": ["a"]}, {"bundle_id": "B1", "decisions": ["b"]}])
    assert kinds(acc) == [("missing", "a")] and not acc.ok
    assert acc.problems[0].detail["ledger_bundle"] == "B0" and "B0" in acc.problems[0].detail["why"]
    assert acc.total.missing == 1 and acc.courts["LA"].missing == 1
    assert acc.to_json()["courts"]["LA"]["problems"] == {"missing": ["a"]}
    assert any(w["kind"] == "ledger_without_manifest" and w["bundle_id"] == "B0" for w in acc.warnings)


def test_committed_past_but_queued_on_the_work_topic_is_pending_not_missing():
    """Issue 16: the decisions topic is committed once a batch is a work item; until a worker files
    it, its work marker (`_work/`) says where its decisions are."""
    acc = account([dec(0, "a"), dec(1, "b")], [], {0: 2}, [], [], queued={"a": "B7"})
    assert kinds(acc) == [("missing", "b")]
    assert acc.total.pending == 1 and acc.pending[0]["decision_id"] == "a" and acc.pending[0]["queued_in"] == "B7"


def test_filed_twice_is_doubled():
    acc = account([dec(0, "a")], [], {0: 1}, [bundle("B1", "a"), bundle("B2", "a", batch="c")], [])
    assert kinds(acc) == [("doubled", "a")] and acc.total.filed == 1 and acc.total.doubled == 1
    assert acc.problems[0].detail["bundles"] == ["B1", "B2"]


def test_filed_but_not_granted_and_filed_but_never_received():
    acc = account([dec(0, "n", relief="not_eligible")], [], {0: 1}, [bundle("B1", "n", "ghost")], [])
    assert kinds(acc) == [("filed_not_granted", "ghost"), ("filed_not_granted", "n")]


def test_in_a_time_range_decisions_filed_outside_it_are_not_problems():
    acc = account([dec(5, "a")], [], {0: 6}, [bundle("B1", "a", "older")], [], complete=False)
    assert acc.ok and acc.outside_range == 1


def test_duplicates_are_counted_once():
    acc = account([dec(0, "a"), dec(1, "a"), dec(2, "a")], [], {0: 3}, [bundle("B1", "a")], [])
    t = acc.total
    assert (t.received, t.granted, t.filed, t.duplicates) == (3, 1, 1, 2) and acc.ok


def letter(origin, source, reason="schema_violation", did=None, batch=None):
    return Letter(origin, source, reason, "data.convictions: missing", "LA", did, batch)


def test_dead_letters_count_distinct_origins_and_their_records_are_not_decisions():
    reads = [dec(0, "a"), Read(0, 1, 0, "LA", "unreadable"), dec(2, "bad"), dec(3, "bad2")]
    letters = [letter("t:0:1", (0, 1), "invalid_json"), letter("t:0:1", None, "invalid_json"),  # a copy
               letter("t:0:2", (0, 2), did="bad"), letter("t:0:3", (0, 3), "conflicting_duplicate", did="bad2")]
    acc = account(reads, letters, {0: 4}, [bundle("B1", "a")], [])
    t = acc.total
    assert acc.ok, acc.problems
    assert (t.received, t.granted, t.filed, t.dead_lettered, t.rejected_records) == (4, 1, 1, 3, 3)
    j = acc.to_json()["dead_letters"]
    assert j["invalid_json"]["records"] == 1 and j["schema_violation"]["decision_ids"] == ["bad"]


def test_a_dead_letter_replayed_and_accepted_is_no_longer_dead():
    reads = [dec(0, "x"), dec(7, "x", replay_of="t:0:0")]
    acc = account(reads, [letter("t:0:0", (0, 0), did="x")], {0: 8}, [bundle("B1", "x")], [])
    assert acc.ok and acc.total.dead_lettered == 0 and acc.total.replayed == 1 and acc.total.filed == 1


def test_an_unreadable_record_not_dead_lettered_is_unaccounted_once_committed():
    acc = account([Read(0, 0, 0, "LA", "unreadable"), Read(0, 1, 0, "LA", "unreadable")], [], {0: 1}, [], [])
    assert kinds(acc) == [("unaccounted", None)] and acc.problems[0].detail["position"] == "0:0"
    assert acc.pending == [{"decision_id": None, "court": "LA", "position": "0:1"}]


def closed(off, batch, n, court="LA", own=False):
    return Read(0, off, 0, court, "closed", batch_id=batch, expected_count=n, own_marker=own)


def test_expected_count_absent_is_a_problem_exceeded_a_warning_markers_ignored():
    reads = [dec(0, "a", batch="A"), dec(1, "n", relief="not_eligible", batch="A"), closed(2, "A", 3),
             dec(3, "b", batch="B"), dec(4, "c", batch="B"), closed(5, "B", 1), closed(6, "C", 9, own=True),
             dec(7, "d", batch="D"), closed(8, "D", 2)]
    letters = [letter("t:0:9", None, did="e", batch="D")]  # dead-lettered decisions were received too
    acc = account(reads, letters, {0: 10}, [bundle("B1", "a", "b", "c", "d")], [])
    assert kinds(acc) == [("expected_absent", None)]
    assert acc.problems[0].detail == {"batch_id": "A", "expected": 3, "received": 2, "absent": 1}
    assert acc.total.expected_mismatch == 2 and acc.total.received == 5  # markers are not received
    assert [w["kind"] for w in acc.warnings if w["kind"].startswith("expected")] == ["expected_exceeded"]
    assert {b["batch_id"] for b in acc.batches} == {"A", "B"}


def test_a_manifest_without_its_ledger_entry_is_a_warning():
    acc = account([dec(0, "a")], [], {0: 1}, [bundle("B1", "a")], [])
    assert acc.ok and acc.warnings == [{"kind": "manifest_without_ledger", "bundle_id": "B1",
                                        "why": "stored; its notification or ledger entry may not be written yet"}]


def test_summarize_reads_both_modes_and_never_raises():
    data = {"decision_id": "d1", "court": {"code": "SF"}, "relief": "not_eligible", "batch_id": "X",
            "convictions": [{"level": "misdemeanor"}], "defendant": {"first_name": "Secret"}}
    ce = {"specversion": "1.0", "type": "relief.eligibility.decided.v1", "data": data}
    r = summarize(1, 5, 9, b"SF", json.dumps(ce).encode(), [])
    assert (r.kind, r.decision_id, r.court, r.relief, r.batch_id, r.levels) == (
        "decision", "d1", "SF", "not_eligible", "X", ("misdemeanor",))
    assert "Secret" not in repr(r)
    binary = summarize(1, 6, 9, b"SF", json.dumps(data).encode(),
                       [("ce_specversion", b"1.0"), ("ce_type", b"relief.eligibility.decided.v1"),
                        ("reliefdocs.replay.of", b"t:1:2")])
    assert binary.decision_id == "d1" and binary.replay_of == "t:1:2"
    for value in (None, b"{", b"[]", b"\xff", json.dumps({"type": "x", "data": 3}).encode()):
        assert summarize(0, 0, 0, None, value, []).kind == "unreadable"
    marker = {"specversion": "1.0", "type": "relief.batch.closed.v1", "source": "urn:reliefdocs:worker",
              "data": {"court_code": "SF", "batch_id": "X", "volume": 1}}
    m = summarize(0, 0, 0, b"SF", json.dumps(marker).encode(), [])
    assert m.kind == "closed" and m.own_marker and m.expected_count is None


def test_letter_of_takes_the_source_position_and_decision_id():
    value = json.dumps({"specversion": "1.0", "type": "relief.eligibility.decided.v1",
                        "data": {"decision_id": "d9", "court": {"code": "LA"}, "batch_id": "B"}}).encode()
    headers = [(broker.DLQ_REASON, b"schema_violation"), (broker.DLQ_TOPIC, b"t"), (broker.DLQ_PARTITION, b"2"),
               (broker.DLQ_OFFSET, b"40")]
    d = DeadLetter(0, 7, b"LA", value, tuple(headers), "schema_violation", "m", "t", "t:2:40", 0)
    assert letter_of(d, "t") == Letter("t:2:40", (2, 40), "schema_violation", "m", "LA", "d9", "B", "0:7")
    assert letter_of(d, "other").source is None


def test_bundle_of_is_defensive():
    m = {"bundle_id": "B", "court_code": "LA", "batch_id": "x", "volume": 2, "created_at": "2026-11-24T10:00:00Z",
         "decisions": [{"decision_id": "a", "case_number": "LA1", "relief": "dismiss_and_seal", "exhibit": "A"}],
         "documents": [], "efiling": [{"key": "k"}], "expected_count": None}
    b = bundle_of(m, "LA/x/B/manifest.json")
    assert b.decisions == (("a", "dismiss_and_seal", "A"),) and b.volume == 2
    assert bundle_of({"bundle_id": "B"}, "k") is None and bundle_of(None, "k") is None and bundle_of([], "k") is None


def test_time_range_flags():
    import pytest

    from service.campaign import Range, parse_time
    from service.errors import ConfigError

    assert parse_time("--since", "2026-11-24").isoformat() == "2026-11-24T00:00:00+00:00"
    assert parse_time("--until", "2026-11-24T08:00:00Z").hour == 8 and parse_time("--since", None) is None
    with pytest.raises(ConfigError) as e:
        parse_time("--since", "yesterday")
    assert e.value.setting == "--since" and "ISO 8601" in str(e.value)
    assert Range().complete and not Range(since=parse_time("--since", "2026-11-24")).complete
