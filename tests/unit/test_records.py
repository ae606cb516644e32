"""The worker's per-record path (Worker.handle) with a fake producer and a folder store: no
record, whatever its bytes, headers, key or timestamp, raises out of it; every record ends
filed (in an open batch), not filed, or dead-lettered; good decisions around a poison record
are still batched."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from service import broker, config
from service.deadletters import PAYLOAD_PREFIX
from tests.helpers import encode


@dataclass
class KafkaRecord:
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list


class Sent:
    def __init__(self, fail=None):
        self.fail = fail

    def get(self, timeout=None):
        if self.fail:
            raise self.fail
        return None

    is_done = True


class FakeProducer:
    def __init__(self):
        self.sent = []

    def send(self, topic, key=None, value=None, headers=None):
        self.sent.append((topic, key, value, headers))
        return Sent()


class Parts:
    """The per-record path as the worker wires it, over a folder store and a fake producer."""

    def __init__(self, tmp_path, **env):
        from service.batching import Batcher
        from service.deadletters import DeadLetters
        from service.events import Limits, Schemas
        from service.ledger import StoreLedger
        from service.metrics import Metrics
        from service.records import RecordHandler
        from service.render import Courts
        from service.store import open_store

        settings = config.load({"RELIEFDOCS_STORAGE_URL": f"file://{tmp_path}/store", **env})
        self.metrics = Metrics()
        self.store = open_store(settings)
        self.ledger = StoreLedger(self.store)
        self.batcher = Batcher(settings.batch_max_cases, self.ledger)
        self.courts = Courts(settings.templates_dir, settings.allow_default_court)
        self.producer = FakeProducer()
        self.dead_letters = DeadLetters(self.producer, settings.dlq_topic, self.store, 100_000,
                                        on_sent=lambda reason: self.metrics.dlq.labels(reason).inc())
        self.sealed = []
        self.records = RecordHandler(Schemas(settings.schemas_dir), Limits(settings.max_record_bytes,
                                                                          settings.max_json_depth),
                                     self.courts, self.batcher, self.dead_letters, self.metrics, self.sealed.append)

    def handle(self, rec):
        return self.records.handle(rec)


def make_worker(tmp_path, **env):
    parts = Parts(tmp_path, **env)
    return parts, parts.producer, parts.sealed


class Log:
    """Feeds records to one worker at consecutive offsets of partition 0."""

    def __init__(self, worker):
        self.worker, self.offset = worker, 0

    def feed(self, value, key=b"LA", headers=(), timestamp=1_700_000_000_000) -> bool:
        rec = KafkaRecord("eligibility.decided", 0, self.offset, timestamp, key, value, list(headers))
        self.offset += 1
        return self.worker.handle(rec)


def reasons(prod) -> list[str]:
    return [dict(h)[broker.DLQ_REASON].decode() for _, _, _, h in prod.sent]


POISON = {
    "deep nesting": b"[" * 100_000,
    "huge integer": None,  # built below from a valid batch-closed event
    "lone surrogate in type": b'{"specversion": "1.0", "id": "x", "source": "s", "type": "\\ud800"}',
    "ANSI escape in type": b'{"specversion": "1.0", "id": "x", "source": "s", "type": "\\u001b[31mred"}',
}


def huge_expected_count() -> bytes:
    ev = {"specversion": "1.0", "id": "c", "source": "s", "type": "relief.batch.closed.v1",
          "data": {"court_code": "LA", "batch_id": "LA-B1", "expected_count": 0}}
    return json.dumps(ev).replace('"expected_count": 0', '"expected_count": ' + "9" * 5000).encode()


@pytest.mark.parametrize("name", sorted(POISON))
def test_poison_records_are_dead_lettered_and_the_good_ones_batched(tmp_path, decision_event, name):
    w, prod, _ = make_worker(tmp_path)
    log = Log(w)
    value = POISON[name] if POISON[name] is not None else huge_expected_count()
    assert log.feed(encode(decision_event(1)))
    assert log.feed(value)
    assert log.feed(encode(decision_event(2)))
    assert len(prod.sent) == 1, reasons(prod)
    headers = dict(prod.sent[0][3])
    assert headers[broker.DLQ_OFFSET] == b"1"
    message = headers[broker.DLQ_MESSAGE].decode("utf-8")
    assert "\x1b" not in message and "\ud800" not in message
    (ob,) = w.batcher.open_batches()
    assert [d.decision_id for d in ob.decisions] == ["d-LA-000001", "d-LA-000002"]
    assert w.batcher.committable() == {0: 0}  # held by the open batch, not by the poison record


def test_huge_integer_is_dead_lettered(tmp_path):
    w, prod, _ = make_worker(tmp_path)
    assert Log(w).feed(huge_expected_count())
    assert len(prod.sent) == 1


def test_implicit_batch_in_year_10000_never_stops_the_worker(tmp_path, decision_event):
    w, prod, _ = make_worker(tmp_path)
    ts = 253_402_300_800_000 + 86_400_000  # 10000-01-02
    assert Log(w).feed(encode(decision_event(1, batch_id=None)), timestamp=ts)
    assert len(prod.sent) + len(w.batcher.open_batches()) == 1


def test_oversized_dead_letter_is_stored_with_its_headers(tmp_path):
    w, prod, _ = make_worker(tmp_path)
    big = b'{"specversion": "1.0", "type": "x", "pad": "' + b"a" * 200_000 + b'"}'
    assert Log(w).feed(big, headers=[("trace", b"1")])
    (topic, key, value, headers) = prod.sent[0]
    h = dict(headers)
    assert value is None and h[broker.DLQ_REASON] == b"invalid_cloudevent"
    uri = h[broker.DLQ_PAYLOAD].decode()
    assert f"/{PAYLOAD_PREFIX}/eligibility.decided/0/0.json" in uri
    stored = json.loads((tmp_path / "store" / PAYLOAD_PREFIX / "eligibility.decided" / "0" / "0.json").read_text())
    import base64

    assert base64.b64decode(stored["value"]) == big and stored["headers"] == [["trace", "MQ=="]]
    assert w.dead_letters.settle()


def test_unknown_court_is_dead_lettered_unless_allowed(tmp_path, decision_event):
    ev = decision_event(1, court="LA")
    ev["data"]["court"]["code"] = "ZZ"
    w, prod, _ = make_worker(tmp_path)
    assert Log(w).feed(encode(ev), key=b"ZZ")
    assert reasons(prod) == ["unknown_court"]
    w, prod, _ = make_worker(tmp_path, RELIEFDOCS_ALLOW_DEFAULT_COURT="true")
    assert Log(w).feed(encode(ev), key=b"ZZ")
    assert prod.sent == [] and len(w.batcher.open_batches()) == 1
    assert w.courts.label("ZZ") == "_default" and w.courts.label("LA") == "LA"


def test_conflicting_duplicate_is_dead_lettered_identical_one_skipped(tmp_path, decision_event):
    w, prod, _ = make_worker(tmp_path)
    log = Log(w)
    first = decision_event(1)
    assert log.feed(encode(first))
    assert log.feed(encode(first))  # a redelivery: silent
    changed = decision_event(1)
    changed["data"]["defendant"]["last_name"] = "Corrected"
    assert log.feed(encode(changed))
    assert reasons(prod) == ["conflicting_duplicate"]
    message = dict(prod.sent[0][3])[broker.DLQ_MESSAGE].decode()
    assert "partition 0 offset 0" in message and "partition 0 offset 2" in message
    assert "Corrected" not in message
    (ob,) = w.batcher.open_batches()
    assert len(ob.decisions) == 1


def test_conflict_with_a_filed_decision_uses_the_ledger(tmp_path, decision_event):
    w, prod, sealed = make_worker(tmp_path, RELIEFDOCS_BATCH_MAX_CASES="1")
    log = Log(w)
    assert log.feed(encode(decision_event(1)))
    (sb,) = sealed
    w.ledger.record(sb, "b" * 32)
    w.batcher.done(sb)
    assert log.feed(encode(decision_event(1)))  # filed already, same content: skipped
    changed = decision_event(1)
    changed["data"]["relief"] = "not_eligible"
    assert log.feed(encode(changed))
    assert reasons(prod) == ["conflicting_duplicate"]
    assert "bundle " + "b" * 32 in dict(prod.sent[0][3])[broker.DLQ_MESSAGE].decode()


def test_a_bug_while_handling_is_an_internal_error_not_a_crash(tmp_path, decision_event, monkeypatch):
    w, prod, _ = make_worker(tmp_path)

    def broken(*a):
        raise KeyError("boom")

    monkeypatch.setattr(w.batcher, "add", broken)
    assert Log(w).feed(encode(decision_event(1)))
    assert reasons(prod) == ["internal_error"]
    assert "KeyError" in dict(prod.sent[0][3])[broker.DLQ_MESSAGE].decode()
    assert w.metrics.dlq.labels("internal_error")._value.get() == 1


def test_corrupt_ledger_object_never_stops_the_worker(tmp_path, decision_event):
    w, prod, _ = make_worker(tmp_path)
    w.store.put_bytes("_ledger/LA/" + "c" * 32 + ".json", b"{not json", "application/json")
    assert Log(w).feed(encode(decision_event(1)))


# -- the hunt for the next poison record ----------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


@st.composite
def mutated_decision(draw):
    import random

    from tools import sample

    ev = sample.decision(random.Random(draw(st.integers(0, 99))), 1, "LA", draw(st.none() | st.text(max_size=10)),
                         None)
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from([(), ("data",), ("data", "defendant"), ("data", "court"), ("data", "case")]))
        target = ev
        for part in path:
            target = target.get(part) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            continue
        key = draw(st.sampled_from(sorted(target)) | st.text(max_size=6))
        target[key] = draw(json_values | st.integers(min_value=10 ** 30) | st.just("\ud800"))
    return json.dumps(ev, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")


values = st.none() | st.binary(max_size=300) | mutated_decision() | st.builds(
    lambda n, c: c * n, st.integers(1, 3000), st.sampled_from([b"[", b"{\"a\":", b"\xff"]))
header_lists = st.lists(st.tuples(st.sampled_from(["ce_specversion", "ce_type", "ce_id", "ce_source", "content-type",
                                                   "x"]) | st.text(max_size=8),
                                  st.binary(max_size=20) | st.just(b"1.0") | st.just(b"relief.batch.closed.v1")),
                        max_size=5)


@settings(max_examples=400, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(records=st.lists(st.tuples(values, st.none() | st.binary(max_size=12) | st.just(b"LA"), header_lists,
                                  st.integers(min_value=-(2 ** 63), max_value=2 ** 63 - 1)), min_size=1, max_size=4))
def test_any_record_is_filed_not_filed_or_dead_lettered(tmp_path, records):
    w, prod, sealed = make_worker(tmp_path)
    log = Log(w)
    for value, key, headers, ts in records:
        before = len(prod.sent)
        assert log.feed(value, key=key, headers=headers, timestamp=ts) is True
        for _, _, _, h in prod.sent[before:]:
            message = dict(h)[broker.DLQ_MESSAGE].decode("utf-8")
            assert not any(ord(c) < 32 for c in message)
    assert w.batcher.committable().get(0, 0) <= len(records)
