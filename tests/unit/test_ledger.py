"""The ledger of filed decisions over a fake store: an unreadable entry is rebuilt from its
bundle's manifest (never skipped while a bundle exists, never raised out of batcher.add as
anything but Transient)."""

import json
import logging

import pytest

from service.errors import Permanent, Transient
from service.ledger import StoreLedger


class FakeStore:
    def __init__(self, objects=None, refuse=None):
        self.objects: dict[str, bytes] = dict(objects or {})
        self.refuse = refuse  # an exception raised by every call
        self.reads: list[str] = []

    def _check(self):
        if self.refuse:
            raise self.refuse

    def put_bytes(self, key, data, media_type):
        self._check()
        self.objects[key] = data

    def get(self, key):
        self._check()
        self.reads.append(key)
        return self.objects.get(key)

    def exists(self, key):
        self._check()
        return key in self.objects

    def delete(self, key):
        self._check()
        self.objects.pop(key, None)

    def list(self, prefix):
        self._check()
        return iter(sorted(k for k in self.objects if k.startswith(prefix)))


B1, B2 = "a" * 32, "b" * 32


def entry(bundle_id, batch_id, decisions, volume=1):
    return json.dumps({"bundle_id": bundle_id, "court_code": "SD", "batch_id": batch_id, "volume": volume,
                       "decisions": decisions}).encode()


def manifest(bundle_id, batch_id, decisions, volume=1):
    return json.dumps({"bundle_id": bundle_id, "court_code": "SD", "batch_id": batch_id, "volume": volume,
                       "decisions": [{"decision_id": d, "case_number": "X"} for d in decisions]}).encode()


def ledger_with(objects, outcomes):
    return StoreLedger(FakeStore(objects), on_corrupt=outcomes.append)


@pytest.mark.parametrize("corrupt", [b"\x00not json", b"[]", b'{"bundle_id": "x"}', b"{", b'"text"',
                                     json.dumps({"bundle_id": B2, "batch_id": "B", "volume": 1,
                                                 "decisions": [1, 2]}).encode()])
def test_a_corrupt_entry_is_rebuilt_from_the_manifest(corrupt, caplog):
    outcomes = []
    objects = {f"_ledger/SD/{B1}.json": entry(B1, "B", ["d1", "d2"]),
               f"_ledger/SD/{B2}.json": corrupt,
               f"SD/B/{B2}/manifest.json": manifest(B2, "B", ["d3", "d4"], volume=2)}
    ledger = ledger_with(objects, outcomes)
    with caplog.at_level(logging.WARNING, logger="reliefdocs.ledger"):
        assert ledger.filed("SD", "d3") and ledger.filed("SD", "d1")
    assert ledger.filed("SD", "d4").bundle_id == B2
    assert ledger.volumes("SD", "B") == {1, 2}
    assert ledger.filed_count("SD", "B") == 4
    assert outcomes == ["rebuilt"]
    assert json.loads(ledger.store.objects[f"_ledger/SD/{B2}.json"])["decisions"] == ["d3", "d4"]  # repaired
    keys = [r.key for r in caplog.records if hasattr(r, "key")]
    assert f"_ledger/SD/{B2}.json" in keys and "not json" not in caplog.text


def test_a_hashed_folder_is_found_too():
    outcomes = []
    objects = {f"_ledger/SD/{B2}.json": b"garbage", f"SD/_h-0123/{B2}/manifest.json": manifest(B2, "..", ["d9"])}
    assert ledger_with(objects, outcomes).filed("SD", "d9")


def test_a_corrupt_entry_without_a_bundle_is_skipped():
    outcomes = []
    objects = {f"_ledger/SD/{B1}.json": entry(B1, "B", ["d1"]), f"_ledger/SD/{B2}.json": b"garbage",
               f"SD/B/{B2}/bundle.pdf": b"%PDF"}  # no manifest: the bundle was never completed
    ledger = ledger_with(objects, outcomes)
    assert ledger.filed("SD", "d1") and not ledger.filed("SD", "d3")
    assert outcomes == ["skipped"]


def test_entry_and_manifest_both_unreadable_stop_the_court():
    outcomes = []
    objects = {f"_ledger/SD/{B2}.json": b"garbage", f"SD/B/{B2}/manifest.json": b"also garbage"}
    ledger = ledger_with(objects, outcomes)
    with pytest.raises(Transient) as info:
        ledger.filed("SD", "d1")
    assert info.value.dependency == "ledger" and outcomes == ["unreadable"]
    assert "garbage" not in str(info.value)


def test_a_manifest_of_another_court_is_not_used():
    objects = {f"_ledger/SD/{B2}.json": b"garbage",
               f"SD/B/{B2}/manifest.json": manifest(B2, "B", ["d1"]).replace(b'"SD"', b'"LA"')}
    with pytest.raises(Transient):
        ledger_with(objects, []).filed("SD", "d1")


def test_a_store_that_refuses_the_ledger_is_waited_for():
    ledger = StoreLedger(FakeStore(refuse=Permanent("s3", "list SD", "AccessDenied")))
    with pytest.raises(Transient) as info:
        ledger.filed("SD", "d1")
    assert info.value.dependency == "ledger" and "AccessDenied" in str(info.value)


def test_a_rebuilt_entry_that_cannot_be_written_back_is_still_used():
    outcomes = []
    store = FakeStore({f"_ledger/SD/{B2}.json": b"garbage", f"SD/B/{B2}/manifest.json": manifest(B2, "B", ["d1"])})
    original = store.put_bytes

    def refuse(*args):
        raise Permanent("s3", "put x", "AccessDenied")

    store.put_bytes = refuse
    ledger = StoreLedger(store, on_corrupt=outcomes.append)
    assert ledger.filed("SD", "d1") and outcomes == ["rebuilt"]
    store.put_bytes = original


def test_record_then_reload():
    from service.batching import Record, SealedBatch
    from service.events import Decision

    store = FakeStore()
    decisions = tuple(Decision(d, "SD", "B", "dismiss_and_seal", {"decision_id": d}) for d in ("d1", "d2"))
    sb = SealedBatch("SD", "B", 1, 2, 10, 12, 0, "upstream", decisions, (Record("t", 2, 10, 0), Record("t", 2, 11, 0)))
    StoreLedger(store).record(sb, B1)
    fresh = StoreLedger(store)
    assert fresh.volumes("SD", "B") == {1}
    filed = fresh.filed("SD", "d2")
    assert (filed.bundle_id, filed.digest, filed.partition, filed.offset) == (B1, decisions[1].digest, 2, 11)


def test_record_keeps_case_numbers_and_the_manifest_key_for_find():
    from service.batching import Record, SealedBatch
    from service.events import Decision

    store = FakeStore()
    decisions = (Decision("d1", "SD", "B/1", "dismiss_and_seal", {"decision_id": "d1", "case": {"number": "SD1"}}),
                 Decision("d2", "SD", "B/1", "dismiss_and_seal", {"decision_id": "d2"}))
    sb = SealedBatch("SD", "B/1", 1, 0, 0, 2, 0, "upstream", decisions, (Record("t", 0, 0, 0), Record("t", 0, 1, 0)))
    StoreLedger(store).record(sb, B1)
    e = json.loads(store.objects[f"_ledger/SD/{B1}.json"])
    assert e["cases"] == ["SD1", None] and e["manifest"] == f"SD/B%2F1/{B1}/manifest.json"
    assert e["decisions"] == ["d1", "d2"] and len(e["digests"]) == 2  # the earlier fields are kept


# -- issue 16: decisions taken from the moment their batch is queued (work markers) ---------------

class Clock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


def queued_batch(volume=1, decisions=("d1", "d2")):
    from service.batching import Record, SealedBatch
    from service.events import Decision

    ds = tuple(Decision(d, "SD", "B", "dismiss_and_seal", {"decision_id": d}) for d in decisions)
    records = tuple(Record("t", 2, 10 + i, 0) for i in range(len(ds)))
    return SealedBatch("SD", "B", volume, 2, 10, 10 + len(ds), 0, "upstream", ds, records)


def marker(bundle_id, state, batch_id="B", decisions=("d1", "d2"), volume=1):
    return json.dumps({"bundle_id": bundle_id, "court_code": "SD", "batch_id": batch_id, "volume": volume,
                       "decisions": list(decisions), "state": state}).encode()


MARKER = f"_work/SD/{B1}.json"


def reserved(clock=None):
    store = FakeStore()
    ledger = StoreLedger(store, clock=clock or Clock())
    ledger.reserve(queued_batch(), B1)
    return store, ledger


def test_reserve_writes_the_marker_and_takes_the_decisions():
    store, ledger = reserved()
    m = json.loads(store.objects[MARKER])
    assert m["state"] == "sealed" and m["decisions"] == ["d1", "d2"] and m["offsets"] == [10, 11]
    f = ledger.filed("SD", "d1")
    assert f.pending and f.bundle_id == B1 and (f.partition, f.offset) == (2, 10)
    assert ledger.volumes("SD", "B") == {1}
    assert not ledger.filed("SD", "d3")


def test_a_pending_decision_is_read_again_at_most_every_recheck_seconds():
    from service.ledger import RECHECK_SECONDS

    clock = Clock()
    store, ledger = reserved(clock)
    store.objects[MARKER] = marker(B1, "failed")  # another worker failed it meanwhile
    clock.t += RECHECK_SECONDS - 0.1
    store.reads.clear()
    assert ledger.filed("SD", "d1").pending and MARKER not in store.reads  # trusted, not read again yet
    clock.t += 0.1
    assert ledger.filed("SD", "d1") is None and MARKER in store.reads  # failed: free again
    assert ledger.filed("SD", "d2") is None  # released with its batch, not read again
    assert ledger.volumes("SD", "B") == {1}  # the volume stays used


def test_a_marker_still_sealed_keeps_the_decision_pending_for_another_interval():
    from service.ledger import RECHECK_SECONDS

    clock = Clock()
    store, ledger = reserved(clock)
    clock.t += RECHECK_SECONDS
    store.reads.clear()
    assert ledger.filed("SD", "d1").pending and store.reads == [MARKER]
    clock.t += RECHECK_SECONDS / 2
    assert ledger.filed("SD", "d1").pending and store.reads == [MARKER]  # not read a second time


def test_a_marker_gone_with_an_entry_written_is_filed():
    from service.ledger import RECHECK_SECONDS

    clock = Clock()
    store, ledger = reserved(clock)
    store.objects[f"_ledger/SD/{B1}.json"] = entry(B1, "B", ["d1", "d2"])  # filed by another worker,
    del store.objects[MARKER]  # which then removed the marker
    clock.t += RECHECK_SECONDS
    f = ledger.filed("SD", "d1")
    assert f.bundle_id == B1 and not f.pending
    store.reads.clear()
    assert not ledger.filed("SD", "d2").pending and store.reads == []  # the whole bundle: no more rechecks


def test_a_marker_gone_without_an_entry_frees_the_decisions():
    from service.ledger import RECHECK_SECONDS

    clock = Clock()
    store, ledger = reserved(clock)
    del store.objects[MARKER]
    clock.t += RECHECK_SECONDS
    assert ledger.filed("SD", "d1") is None and ledger.filed("SD", "d2") is None
    assert ledger.volumes("SD", "B") == {1}


def test_loading_a_court_an_entry_wins_over_a_marker_of_the_same_bundle():
    objects = {f"_ledger/SD/{B1}.json": entry(B1, "B", ["d1", "d2"]), MARKER: marker(B1, "sealed")}
    f = StoreLedger(FakeStore(objects)).filed("SD", "d1")
    assert f.bundle_id == B1 and not f.pending


def test_loading_a_court_reads_sealed_and_failed_markers_and_skips_batch_objects():
    objects = {MARKER: marker(B1, "sealed"),
               f"_work/SD/{B2}.json": marker(B2, "failed", batch_id="C", decisions=("d3",), volume=4),
               f"_work/SD/{B2}.batch.json": b"{}",  # the batch itself, not a marker
               "_work/SD/junk.json": b"junk"}
    store = FakeStore(objects)
    ledger = StoreLedger(store)
    assert ledger.filed("SD", "d1").pending
    assert ledger.filed("SD", "d3") is None and ledger.volumes("SD", "C") == {4}  # failed: volume used, decision free
    assert f"_work/SD/{B2}.batch.json" not in store.reads


def test_a_failed_batch_frees_its_decisions_and_keeps_its_volume():
    store, ledger = reserved()
    ledger.failed(queued_batch(), B1)
    assert json.loads(store.objects[MARKER])["state"] == "failed"
    assert ledger.filed("SD", "d1") is None and ledger.volumes("SD", "B") == {1}
    fresh = StoreLedger(store)
    assert fresh.filed("SD", "d1") is None and fresh.volumes("SD", "B") == {1}


def test_record_after_reserve_files_the_decisions_and_unmark_removes_the_marker():
    store, ledger = reserved()
    ledger.record(queued_batch(), B1)
    assert not ledger.filed("SD", "d1").pending and not ledger.filed("SD", "d2").pending
    assert ledger.is_recorded("SD", B1) and not ledger.is_recorded("SD", B2)
    ledger.unmark("SD", B1)
    assert MARKER not in store.objects
    fresh = StoreLedger(store)
    assert not fresh.filed("SD", "d1").pending and fresh.filed_count("SD", "B") == 2


def test_a_store_that_refuses_a_recheck_is_waited_for_not_a_bug():
    """Before: the Permanent left filed() as itself, and the record handler dead-lettered the decision
    being read as an internal error."""
    from service.ledger import RECHECK_SECONDS

    clock = Clock()
    store, ledger = reserved(clock)
    clock.t += RECHECK_SECONDS
    store.refuse = Permanent("s3", "get x.json", "AccessDenied")
    with pytest.raises(Transient) as info:
        ledger.filed("SD", "d1")
    assert info.value.dependency == "ledger" and "AccessDenied" in str(info.value)
    store.refuse = None
    assert ledger.filed("SD", "d1").pending


@pytest.mark.parametrize("write", ["reserve", "record"])
def test_a_court_forgotten_by_a_rebalance_while_a_thread_writes_is_loaded_again(write):
    """reserve() and record() run on pool threads, forget() on the loop's: before, a forget between
    loading the court and merging the new entry was a KeyError, and the batch failed."""
    store = FakeStore()
    ledger = StoreLedger(store)
    load = ledger._court

    def loaded_then_forgotten(court):
        ids = load(court)
        ledger.forget()
        return ids

    ledger._court = loaded_then_forgotten
    getattr(ledger, write)(queued_batch(), B1)
    del ledger._court
    f = ledger.filed("SD", "d1")
    assert f.bundle_id == B1 and f.pending == (write == "reserve")


def test_reserve_after_a_filer_was_quicker():
    """The filer may file or fail a work item before its composer writes the marker: a filed bundle
    gets no marker; a failure of this very work record stays (its records are in the DLQ), while a
    failed marker of an earlier queueing (a DLQ replay making the same bundle) is replaced."""
    store = FakeStore({f"_ledger/SD/{B1}.json": entry(B1, "B", ["d1", "d2"])})
    ledger = StoreLedger(store, clock=Clock())
    ledger.forget()
    ledger.reserve(queued_batch(), B1, "3:7")
    assert MARKER not in store.objects and not ledger.filed("SD", "d1").pending

    failed_here = json.dumps({**json.loads(marker(B1, "failed")), "queued_at": "3:7"}).encode()
    store = FakeStore({MARKER: failed_here})
    ledger = StoreLedger(store, clock=Clock())
    ledger.reserve(queued_batch(), B1, "3:7")
    assert store.objects[MARKER] == failed_here and ledger.filed("SD", "d1") is None

    store = FakeStore({MARKER: json.dumps({**json.loads(marker(B1, "failed")), "queued_at": "3:2"}).encode()})
    ledger = StoreLedger(store, clock=Clock())
    ledger.reserve(queued_batch(), B1, "3:7")
    assert json.loads(store.objects[MARKER])["state"] == "sealed" and ledger.filed("SD", "d1").pending
