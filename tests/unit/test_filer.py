"""Issue 16, the filer's side (service/filer.py): one work item filed, skipped or failed on a pool
thread (FileWork), and the loop's bookkeeping of work items (Filer): order, backlog, settling,
dead letters and what may be committed."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from types import SimpleNamespace

import pytest

from service import filer as filer_module
from service.batching import Record
from service.errors import BatchFailed, Permanent, Transient
from service.filer import FileWork, Filer, Result
from service.flush import Abandoned, bundle_id_of
from service.flush import retry as flush_retry
from service.metrics import Metrics
from service.workqueue import Queue, encode, work_item
from tests.helpers import LIMITS, TODAY, sealed_batch, wait_for


class FakeStore:
    def __init__(self):
        self.objects: dict[str, bytes] = {}
        self.calls: list[tuple[str, str]] = []

    def put_bytes(self, key, data, media_type, create_only=False):
        self.objects[key] = data

    def get(self, key):
        self.calls.append(("get", key))
        return self.objects.get(key)

    def delete(self, key):
        self.calls.append(("delete", key))
        self.objects.pop(key, None)


class Sent:
    def get(self, timeout):
        return None


class FakeProducer:
    def __init__(self):
        self.sent = []

    def partitions_for(self, topic):
        return {0, 1, 2}

    def send(self, topic, key, value, headers, partition=None):
        self.sent.append(Record(topic, 0, len(self.sent), 0, key, value, tuple(headers)))
        return Sent()


class FakeLedger:
    def __init__(self, recorded=False):
        self.recorded = recorded
        self.calls: list[tuple] = []

    def reserve(self, sb, bundle_id, queued_at=None):
        self.calls.append(("reserve", bundle_id))

    def is_recorded(self, court, bundle_id):
        self.calls.append(("is_recorded", court, bundle_id))
        return self.recorded

    def failed(self, sb, bundle_id, queued_at=None):
        self.calls.append(("failed", bundle_id))

    def unmark(self, court, bundle_id):
        self.calls.append(("unmark", court, bundle_id))

    def marker(self, court, bundle_id):
        self.calls.append(("marker", court, bundle_id))
        return None

    def fail_bundle(self, court, bundle_id, queued_at=None):
        self.calls.append(("fail_bundle", court, bundle_id))

    def filed_count(self, court, batch_id):
        return 3  # what sealed_batch() expects


def passing(f, what):
    return f()


@pytest.fixture
def queued(schemas):
    """A batch queued as the composer queues it: (sb, its work item, the store, the ledger, FileWork)."""
    store, producer, ledger = FakeStore(), FakeProducer(), FakeLedger()
    sb = sealed_batch(schemas)
    Queue(store, producer, "work", ledger, bundle_id_of, passing, today=lambda: TODAY)(sb)
    item = work_item(producer.sent[0])
    ledger.calls.clear()
    work = FileWork(SimpleNamespace(store=store, stage_timer=lambda stage, seconds: None), ledger, schemas, LIMITS,
                    passing)
    return SimpleNamespace(sb=sb, item=item, store=store, ledger=ledger, work=work)


@pytest.fixture
def file_batch(monkeypatch):
    """service.filer.file_batch replaced: returns a manifest, or raises what `raises` holds."""
    calls, raises = [], []

    def fake(sb, filing):
        calls.append(sb)
        if raises:
            raise raises[0]
        return {"bundle_id": bundle_id_of(sb)}

    monkeypatch.setattr(filer_module, "file_batch", fake)
    return SimpleNamespace(calls=calls, raises=raises)


def test_an_item_is_filed_then_its_marker_and_batch_object_removed(queued, file_batch):
    result = queued.work(queued.item)
    assert result == Result(queued.sb, {"bundle_id": queued.item.bundle_id})
    assert file_batch.calls == [queued.sb]
    assert queued.ledger.calls[-1] == ("unmark", "LA", queued.item.bundle_id)
    assert queued.store.calls[-1] == ("delete", queued.item.batch) and queued.item.batch not in queued.store.objects


def test_an_item_whose_batch_object_is_gone_and_whose_bundle_is_recorded_was_done_before(queued, file_batch):
    del queued.store.objects[queued.item.batch]
    queued.ledger.recorded = True
    assert queued.work(queued.item) == Result(None)
    assert file_batch.calls == [] and ("fail_bundle", "LA", queued.item.bundle_id) not in queued.ledger.calls


def test_an_item_whose_batch_object_is_lost_dead_letters_its_work_record_and_frees_its_decisions(queued, file_batch):
    del queued.store.objects[queued.item.batch]  # removed by hand or by a lifecycle rule, never filed
    result = queued.work(queued.item)
    assert result.sb is None and result.records == (queued.item.record,) and "missing" in result.failure.message
    assert file_batch.calls == [] and queued.ledger.calls[-1] == ("fail_bundle", "LA", queued.item.bundle_id)


def test_a_batch_object_rewritten_since_it_was_queued_is_filed_when_it_is_the_same_bundle(queued, file_batch):
    queued.store.objects[queued.item.batch] += b" "  # queued again (another read_on): the digest differs
    result = queued.work(queued.item)
    assert result.failure is None and result.sb == queued.sb and file_batch.calls == [queued.sb]


def test_a_bundle_recorded_before_is_not_filed_again_only_cleaned_up(queued, file_batch):
    queued.ledger.recorded = True
    result = queued.work(queued.item)
    assert result == Result(queued.sb)  # skipped
    assert file_batch.calls == []
    assert ("unmark", "LA", queued.item.bundle_id) in queued.ledger.calls
    assert queued.item.batch not in queued.store.objects


def test_a_batch_that_cannot_be_filed_is_marked_failed_and_kept(queued, file_batch):
    failure = BatchFailed("template_error", "the template does not render")
    file_batch.raises.append(failure)
    result = queued.work(queued.item)
    assert result.sb == queued.sb and result.failure is failure and result.manifest is None
    assert queued.ledger.calls[-1] == ("failed", queued.item.bundle_id)
    assert queued.item.batch in queued.store.objects  # read again after a crash: dead-lettered again


def test_an_outage_the_filing_did_not_retry_itself_is_retried_never_dead_lettered(queued, monkeypatch):
    """A Transient outside file_batch's own retries (render writing to a full disk, say): the batch is
    filed again after a backoff, not failed; its records never reach the DLQ."""
    retried, calls = [], []
    queued.work.filing.retry_max_seconds = 0.01
    queued.work.filing.on_retry = retried.append
    queued.work.filing.stopping = threading.Event()

    def fake(sb, filing):
        calls.append(sb)
        if len(calls) == 1:
            raise Transient("disk", "writing a document")
        return {"bundle_id": bundle_id_of(sb)}

    monkeypatch.setattr(filer_module, "file_batch", fake)
    result = queued.work(queued.item)
    assert result.failure is None and result.manifest is not None and retried == ["disk"] and len(calls) == 2
    assert ("failed", queued.item.bundle_id) not in queued.ledger.calls


def test_a_bug_while_filing_is_an_internal_error_of_the_batch(queued, file_batch):
    file_batch.raises.append(KeyError("a value that must not be logged"))
    result = queued.work(queued.item)
    assert result.sb == queued.sb and result.failure.reason == "internal_error"
    assert "KeyError" in result.failure.message and "must not" not in result.failure.message
    assert queued.ledger.calls[-1] == ("failed", queued.item.bundle_id)


def test_abandoned_at_shutdown_propagates_and_marks_nothing(queued, file_batch):
    file_batch.raises.append(Abandoned("store"))
    with pytest.raises(Abandoned):
        queued.work(queued.item)
    assert ("failed", queued.item.bundle_id) not in queued.ledger.calls
    assert queued.item.batch in queued.store.objects


def test_a_work_record_naming_another_bundles_batch_is_unreadable(queued, file_batch):
    other = sealed_batch_of(queued, batch_id="LA-B2")
    queued.store.objects[queued.item.batch] = other  # the right key, another bundle's batch (digest matched below)
    item = dataclasses.replace(queued.item, sha256=hashlib.sha256(other).hexdigest())
    result = queued.work(item)
    assert result.sb is None and "another bundle" in result.failure.message and result.records == (item.record,)
    assert file_batch.calls == [] and item.batch in queued.store.objects
    assert queued.ledger.calls == [("fail_bundle", "LA", item.bundle_id)]  # its own batch is lost: decisions freed


def sealed_batch_of(queued, batch_id):
    sb = sealed_batch(queued.work.schemas, batch_id=batch_id)
    return encode(sb, bundle_id_of(sb), TODAY)


# -- a store that refuses (Permanent), through the worker's own retry (service/flush.py) --------

class Refusing(FakeStore):
    def __init__(self, store, refuse):
        super().__init__()
        self.objects, self.refuse = store.objects, refuse

    def get(self, key):
        if "get" in self.refuse:
            raise Permanent("s3", "get x.batch.json", "AccessDenied")
        return super().get(key)

    def delete(self, key):
        if "delete" in self.refuse:
            raise Permanent("s3", "delete x.batch.json", "AccessDenied")
        super().delete(key)


class RefusingLedger(FakeLedger):
    def failed(self, sb, bundle_id, queued_at=None):
        raise Permanent("s3", "put x.json", "AccessDenied")


def refusing(queued, *refuse, ledger=None) -> FileWork:
    filing = SimpleNamespace(store=Refusing(queued.store, refuse), retry_max_seconds=1.0, on_ok=lambda dep: None,
                             on_retry=lambda dep: None, stopping=threading.Event(),
                             stage_timer=lambda stage, seconds: None)
    return FileWork(filing, ledger or queued.ledger, queued.work.schemas, LIMITS,
                    lambda f, what: flush_retry(f, what, filing))


def test_a_store_that_refuses_the_batch_object_dead_letters_the_work_record_not_holds_it(queued, file_batch):
    result = refusing(queued, "get")(queued.item)  # raised before: the item never settled, its offset held
    assert result.sb is None and result.failure.reason == "store_failed"
    assert "AccessDenied" in result.failure.message and queued.item.batch in result.failure.message
    assert file_batch.calls == []


def test_a_filed_bundle_whose_clean_up_is_refused_is_still_filed(queued, file_batch):
    """Before: the refusal was a BatchFailed of the batch, so a filed and notified bundle was marked
    failed and its records dead-lettered."""
    result = refusing(queued, "delete")(queued.item)
    assert result == Result(queued.sb, {"bundle_id": queued.item.bundle_id})
    assert ("failed", queued.item.bundle_id) not in queued.ledger.calls


def test_a_failed_batch_whose_mark_is_refused_still_dead_letters_its_records(queued, file_batch):
    file_batch.raises.append(BatchFailed("template_error", "the template does not render"))
    result = refusing(queued, ledger=RefusingLedger())(queued.item)  # raised before: never settled
    assert result.sb == queued.sb and result.failure.reason == "template_error"
    assert f"stay taken until _work/LA/{queued.item.bundle_id}.json is removed" in result.failure.message


# -- Filer: the loop's side ------------------------------------------------------------------------

class Files:
    """The filing callable of a Filer: each item waits until the test releases it."""

    def __init__(self):
        self.gates: dict[int, threading.Event] = {}
        self.results: dict[int, Result] = {}  # offset -> what its filing returns
        self.started: list[int] = []

    def gate(self, item) -> threading.Event:
        return self.gates.setdefault(id(item), threading.Event())

    def __call__(self, item):
        self.started.append(item.offset)
        if not self.gate(item).wait(10):
            raise AssertionError("never released")
        return self.results.get(item.offset, Result(None))

    def release(self, filer: Filer, partition: int, offset: int) -> None:
        for item in filer.pool.batches():
            if (item.partition, item.offset) == (partition, offset):
                self.gate(item).set()


class Outcomes:
    def __init__(self):
        self.calls = []

    def filed(self, sb, manifest, count_mismatch=False):
        self.calls.append(("filed", sb))

    def failed(self, sb, failure, owned):
        self.calls.append(("failed", sb, failure.reason, owned))


class DeadLetters:
    def __init__(self):
        self.sent = []

    def send(self, rec, reason, message):
        self.sent.append((rec.partition, rec.offset, reason))


def work_rec(partition: int, offset: int, value: bytes | None = None) -> Record:
    if value is None:
        value = json.dumps({"format": 1, "bundle_id": f"{offset:032x}", "court_code": "LA",
                            "batch": f"_work/LA/{offset:032x}.batch.json", "sha256": "0" * 64}).encode()
    return Record("reliefdocs.filing.work", partition, offset, 0, b"k", value)


@pytest.fixture
def filer():
    files = Files()
    f = Filer(2, files, Outcomes(), DeadLetters(), Metrics())
    f.files = files
    for p in (0, 1):
        f.assign(p)
    yield f
    for g in files.gates.values():  # no thread left waiting
        g.set()


def settle(f: Filer, partition: int, offset: int) -> None:
    f.files.release(f, partition, offset)
    wait_for(lambda: f.reap(), timeout=10, every=0.01, what=f"item {partition}/{offset} settled")


def in_flight(f: Filer) -> set[tuple[int, int]]:
    return {(i.partition, i.offset) for i in f.pool.batches()}


def test_items_start_in_order_at_most_size_at_once_the_rest_wait(filer):
    for off in range(10, 14):
        filer.take(work_rec(0, off))
    assert in_flight(filer) == {(0, 10), (0, 11)}
    assert [i.offset for i in filer.backlog] == [12, 13]
    assert filer.full() and filer.working() and len(filer) == 4
    assert filer.busy({0}) and not filer.busy({1})
    settle(filer, 0, 11)
    assert in_flight(filer) == {(0, 10), (0, 12)} and [i.offset for i in filer.backlog] == [13]


def test_a_partition_is_committable_up_to_its_first_item_not_settled(filer):
    for off in range(10, 14):
        filer.take(work_rec(0, off))
    filer.take(work_rec(1, 3))
    assert filer.committable() == {0: 10, 1: 3}
    settle(filer, 0, 11)  # out of order: 10 still holds the partition
    assert filer.committable()[0] == 10
    settle(filer, 0, 10)
    assert filer.committable()[0] == 12
    settle(filer, 0, 12)
    settle(filer, 0, 13)
    assert filer.committable()[0] == 14  # all settled: the position
    assert filer.committable()[1] == 3


def test_outcomes_and_metrics_of_settled_items(filer):
    filer.files.results.update({10: Result("sb10", {"documents": []}),
                                11: Result("sb11", failure=BatchFailed("template_error", "x")),
                                12: Result(None, failure=BatchFailed("internal_error", "work item unreadable"),
                                           records=(work_rec(0, 12),))})
    for off in (10, 11, 12, 13):
        filer.take(work_rec(0, off))
    for off in (10, 11, 12, 13):
        settle(filer, 0, off)
    # the filer dead-letters a failed item's records itself (Result.records); outcomes only logs and counts
    assert filer.outcomes.calls == [("filed", "sb10"), ("failed", "sb11", "template_error", False)]
    assert filer.dead_letters.sent == [(0, 12, "internal_error")]  # the work record itself
    work = lambda outcome: filer.metrics.registry.get_sample_value("reliefdocs_work_items_total",  # noqa: E731
                                                                   {"outcome": outcome})
    assert [work(o) for o in ("filed", "failed", "unreadable", "skipped")] == [1, 1, 1, 1]
    assert filer.committable() == {0: 14}


def test_revoke_drops_the_partitions_backlog_and_its_unsettled_items(filer):
    for off in (10, 11, 12):
        filer.take(work_rec(1, off))
    filer.take(work_rec(0, 5))
    assert [(i.partition, i.offset) for i in filer.backlog] == [(1, 12), (0, 5)]
    filer.revoke(1)
    assert [(i.partition, i.offset) for i in filer.backlog] == [(0, 5)]
    assert filer.committable() == {0: 5}


def test_an_unreadable_work_record_is_dead_lettered_and_does_not_hold_the_offset(filer):
    filer.take(work_rec(0, 7, b"{not a work item"))
    assert filer.dead_letters.sent == [(0, 7, "internal_error")]
    assert not filer.working() and filer.committable() == {0: 8}
    filer.take(work_rec(0, 8))
    filer.take(work_rec(0, 9, b"[]"))
    assert filer.committable() == {0: 8}  # the item before it still holds the partition
    settle(filer, 0, 8)
    assert filer.committable() == {0: 10}


def test_a_result_after_its_partition_was_revoked_is_neither_dead_lettered_nor_committed(filer):
    filer.files.results.update({5: Result(None, failure=BatchFailed("internal_error", "unreadable")),
                                6: Result("sb6", failure=BatchFailed("template_error", "x"))})
    filer.take(work_rec(0, 5))
    filer.take(work_rec(0, 6))
    filer.revoke(0)
    settle(filer, 0, 5)
    settle(filer, 0, 6)
    assert filer.dead_letters.sent == []
    assert filer.outcomes.calls == [("failed", "sb6", "template_error", False)]  # logged and counted, not sent
    assert 0 not in filer.committable()


def test_a_result_from_before_a_partition_came_back_settles_nothing_of_the_new_reading(filer):
    """Eager rebalances revoke and give back the same partitions; a filing that outlived the revoke
    must not settle (or reorder) the offsets its partition's new reading takes."""
    filer.take(work_rec(0, 7))
    filer.revoke(0)
    filer.assign(0)
    for off in (3, 4):  # read again from the committed offset
        filer.take(work_rec(0, off))
    settle(filer, 0, 7)  # the old filing of 7 ends now
    for off in (5, 6, 7):
        filer.take(work_rec(0, off))
    settle(filer, 0, 3)
    settle(filer, 0, 4)
    assert filer.committable() == {0: 5}  # 5, 6 and the new 7 are not settled
