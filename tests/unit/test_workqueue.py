"""Issue 16, the composer's side: a sealed batch written as a work item (service/workqueue.py) and
read back by the filer as the same batch; anything else is Unreadable, never another error."""

from __future__ import annotations

import json
from datetime import date

import pytest

from service.batching import Record, SealedBatch
from service.errors import Transient
from service.flush import bundle_id_of
from service import workqueue
from service.workqueue import Queue, Unreadable, batch_key, encode, work_item, work_record
from tests.helpers import HEADERS, LIMITS, TODAY, sealed_batch


def decode(raw, schemas, limits, bundle_id_of):
    """load + decode, as the filer reads a batch object."""
    return workqueue.decode(workqueue.load(raw), schemas, limits, bundle_id_of)


def test_a_batch_read_back_is_the_batch_queued(schemas):
    sb = sealed_batch(schemas)
    bundle_id = bundle_id_of(sb)
    back = decode(encode(sb, bundle_id, TODAY), schemas, LIMITS, bundle_id_of)
    assert back == sb
    assert (back.decisions, back.records, back.expected_count, back.created_at) == \
           (sb.decisions, sb.records, sb.expected_count, sb.created_at)
    assert bundle_id_of(back) == bundle_id
    assert back.records[0].headers == HEADERS  # bytes that are not UTF-8, and a header without a value


def test_a_batch_without_an_expected_count_and_without_headers(schemas):
    sb = sealed_batch(schemas, n=1, headers=())
    sb = SealedBatch(**{**sb.__dict__, "expected_count": None, "closed_by": "max_cases"})
    assert decode(encode(sb, bundle_id_of(sb), TODAY), schemas, LIMITS, bundle_id_of) == sb


def test_the_filer_parses_on_the_day_the_composer_read(schemas):
    """A decision read on day D is filed whatever day the filer runs: `read_on` travels with the batch."""
    sb = sealed_batch(schemas, n=1)
    doc = json.loads(encode(sb, bundle_id_of(sb), date(2031, 5, 6)))
    assert doc["read_on"] == "2031-05-06"


def reencoded(sb: SealedBatch, change) -> bytes:
    doc = json.loads(encode(sb, bundle_id_of(sb), TODAY))
    change(doc)
    return json.dumps(doc).encode()


@pytest.mark.parametrize("raw,says", [
    (b"\x00garbage", "unreadable"),
    (b"{", "unreadable"),
    (b"[]", "unreadable"),
    (b'"text"', "unreadable"),
    (b"[" * 50_000, "unreadable"),
    (b'{"format": 2}', "format 2"),
    (b'{"format": 1}', "unreadable (KeyError)"),
])
def test_junk_is_unreadable(schemas, raw, says):
    with pytest.raises(Unreadable) as info:
        decode(raw, schemas, LIMITS, bundle_id_of)
    assert says in str(info.value)


@pytest.mark.parametrize("change,says", [
    (lambda d: d.update(format=0), "format 0"),
    (lambda d: d.update(bundle_id="f" * 32), "bundle id"),
    (lambda d: d.update(volume=d["volume"] + 1), "bundle id"),  # another volume: another bundle
    (lambda d: d["records"].pop(), "bundle id"),
    (lambda d: d.update(read_on="yesterday"), "ValueError"),
    (lambda d: d["records"][0].update(value="not base64!"), "unreadable (Error)"),  # binascii.Error
    (lambda d: d["records"][0].update(offset="x"), "ValueError"),
    (lambda d: d["records"][0].update(headers=[["a"]]), "ValueError"),
    (lambda d: d["records"][0].update(value=None), "record at offset 101 no longer parses (invalid_json)"),
    (lambda d: d["records"][0].update(key=None), "record at offset 101 no longer parses (key_mismatch)"),
])
def test_a_batch_object_that_is_not_what_was_queued_is_unreadable(schemas, change, says):
    sb = sealed_batch(schemas)
    with pytest.raises(Unreadable) as info:
        decode(reencoded(sb, change), schemas, LIMITS, bundle_id_of)
    assert says in str(info.value)


def test_no_personal_data_in_the_message(schemas):
    sb = sealed_batch(schemas, n=1)
    name = sb.decisions[0].data["defendant"]["last_name"]
    with pytest.raises(Unreadable) as info:
        decode(reencoded(sb, lambda d: d.update(bundle_id="0" * 32)), schemas, LIMITS, bundle_id_of)
    assert name not in str(info.value)


def work_rec(value, partition=1, offset=7) -> Record:
    return Record("reliefdocs.filing.work", partition, offset, 0, b"k", value)


def test_a_work_record_names_the_batch_and_its_digest(schemas):
    sb = sealed_batch(schemas)
    bundle_id = bundle_id_of(sb)
    body = encode(sb, bundle_id, TODAY)
    item = work_item(work_rec(json.dumps(work_record(sb, bundle_id, body)).encode()))
    assert (item.partition, item.offset, item.bundle_id, item.court_code) == (1, 7, bundle_id, "LA")
    assert item.batch == batch_key("LA", bundle_id) == f"_work/LA/{bundle_id}.batch.json"
    assert item.name == f"file-LA-{bundle_id[:8]}"


@pytest.mark.parametrize("value", [None, b"", b"\xff", b"{", b"[]", b'"x"', b"1", b"[" * 50_000,
                                   b'{"format": 2, "bundle_id": "a"}',
                                   b'{"format": 1, "bundle_id": "a", "court_code": "LA"}',
                                   b'{"format": 1, "bundle_id": "a", "court_code": "LA", "sha256": "0", '
                                   b'"batch": "_ledger/LA/a.json"}'])  # only its own batch object is touched
def test_junk_is_not_a_work_item(value):
    assert work_item(work_rec(value)) is None


# -- Queue: the batch object, then the work record, then the marker ------------------------------

class FakeStore:
    def __init__(self, calls, failures=0):
        self.calls, self.failures, self.objects = calls, failures, {}

    def put_bytes(self, key, data, media_type):
        self.calls.append(("put", key))
        if self.failures:
            self.failures -= 1
            raise Transient("s3", "put x: SlowDown")
        self.objects[key] = data


class Sent:
    def __init__(self, partition=None, offset=None):
        self.partition, self.offset = partition, offset

    def get(self, timeout):
        if self.partition is None:
            return None
        return type("RecordMetadata", (), {"partition": self.partition, "offset": self.offset})()


class FakeProducer:
    def __init__(self, calls):
        self.calls, self.sent = calls, []

    def partitions_for(self, topic):
        return {0, 1, 2}

    def send(self, topic, key, value, headers, partition=None):
        self.calls.append(("send", topic, key))
        self.sent.append((topic, key, value, headers))
        return Sent(partition, 40 + len(self.sent))


class FakeLedger:
    def __init__(self, calls):
        self.calls = calls

    def reserve(self, sb, bundle_id, queued_at=None):
        self.calls.append(("reserve", bundle_id))


def retrying(calls):
    def retry(f, what):
        while True:
            try:
                return f()
            except Transient:
                calls.append(("retry", what))

    return retry


def test_queue_writes_the_batch_then_sends_the_record_then_reserves(schemas):
    calls = []
    store, producer = FakeStore(calls), FakeProducer(calls)
    sb = sealed_batch(schemas)
    queue = Queue(store, producer, "work", FakeLedger(calls), bundle_id_of, retrying(calls), today=lambda: TODAY)
    bundle_id = queue(sb)
    assert bundle_id == bundle_id_of(sb)
    key = batch_key("LA", bundle_id)
    assert calls == [("put", key), ("send", "work", bundle_id.encode()), ("reserve", bundle_id)]
    topic, _, value, headers = producer.sent[0]
    item = work_item(work_rec(value))
    assert item.bundle_id == bundle_id and item.batch == key
    assert headers == [("content-type", b"application/json")]
    assert decode(store.objects[key], schemas, LIMITS, bundle_id_of) == sb


def test_queue_retries_a_store_outage_through_the_retry_callable(schemas):
    calls = []
    store = FakeStore(calls, failures=2)
    queue = Queue(store, FakeProducer(calls), "work", FakeLedger(calls), bundle_id_of, retrying(calls),
                  today=lambda: TODAY)
    bundle_id = queue(sealed_batch(schemas))
    key = batch_key("LA", bundle_id)
    assert calls == [("put", key), ("retry", "queue"), ("put", key), ("retry", "queue"), ("put", key),
                     ("send", "work", bundle_id.encode()), ("reserve", bundle_id)]


def test_queue_tells_where_each_work_record_was_written(schemas):
    """The look-ahead bound (service/lookahead.py) counts from the offsets the broker acknowledged."""
    calls, told = [], []
    queue = Queue(FakeStore(calls), FakeProducer(calls), "work", FakeLedger(calls), bundle_id_of, retrying(calls),
                  today=lambda: TODAY, queued=lambda partition, offset: told.append((partition, offset)))
    sb = sealed_batch(schemas)
    queue(sb)
    assert told == [(workqueue.spread(sb.court_code, sb.batch_id, sb.volume, 3), 41)]
