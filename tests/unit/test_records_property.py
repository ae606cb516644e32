"""Property: whatever a record's bytes, headers, key and log time, the per-record path
(events.parse, then Batcher.add) either hands an event to the batcher, which never raises,
or raises Rejected with a documented reason and a message safe for a UTF-8 header."""

import datetime
import json
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service import events
from service.batching import Batcher, Record, summary
from service.errors import Rejected
from tests.helpers import FakeLedger
from tools import sample

TODAY = datetime.date(2026, 11, 24)
LIMITS = events.Limits(max_record_bytes=8 * 1024, max_depth=16)
# internal_error is documented, but here it would mean a bug: validation raised something unforeseen.
EXPECTED = set(events.REASONS) - {"internal_error"}

COURTS = ["LA", "SF"]
FIELDS = ["decision_id", "decided_at", "court", "code", "case", "defendant", "date_of_birth", "convictions", "level",
          "disposition_date", "relief", "legal_basis", "batch_id", "court_code", "expected_count", "volume", "reason",
          "specversion", "id", "source", "type", "time", "datacontenttype", "data", "k\x01\ud800"]
TEXT = st.one_of(
    st.text(max_size=12),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()), max_size=6),
    st.sampled_from(["\ud800", "\udfff", "a\x00b", "\x1b[31m", "\u2028", "", " " * 3, "LA", "SF", "1.0",
                     events.DECIDED, events.BATCH_CLOSED, "felony", "misdemeanor", "infraction",
                     *events.GRANTED, *events.NOT_FILED, "2999-01-01", "1900-02-28", "2026-11-25", "2026-02-30",
                     "2026-11-20T17:03:00Z", "application/json", "upstream", "linger"]),
)
SCALARS = st.one_of(
    st.none(), st.booleans(), TEXT,
    st.integers(), st.integers(min_value=-(10**60), max_value=10**60),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 3.0, 1e300, 10**20, 10**19, 2**63]),
)
JSONISH = st.recursive(SCALARS, lambda kids: st.one_of(st.lists(kids, max_size=3),
                                                       st.dictionaries(st.sampled_from(FIELDS) | TEXT, kids, max_size=3)),
                       max_leaves=8)
HEADER_NAMES = st.sampled_from(["ce_specversion", "ce_type", "ce_id", "CE_SOURCE", "ce_", "content-type", "ce_\x01\ud800",
                                "x-other"]) | st.text(max_size=8)
HEADER_VALUES = st.binary(max_size=12) | st.sampled_from([b"1.0", b"\xff\xfe", b"\xed\xa0\x80"]) | st.none()


def deep(n: int, inner="0") -> str:
    return "[" * n + inner + "]" * n


def paths(value, prefix=()):
    """Every place in a JSON document (to mutate one)."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from paths(v, prefix + (i,))


def mutate(doc, path, action, new):
    if not path:
        return new if action != "keep" else doc
    parent = doc
    for p in path[:-1]:
        parent = parent[p]
    if action == "delete" and isinstance(parent, dict):
        del parent[path[-1]]
    elif action != "keep":
        parent[path[-1]] = new
    return doc


@st.composite
def near_valid_event(draw, court):
    rng = random.Random(draw(st.integers(0, 1000)))
    if draw(st.booleans()):
        ev = sample.decision(rng, rng.randrange(1000), court, draw(st.sampled_from([None, f"{court}-B"])),
                             draw(st.sampled_from([None, *events.GRANTED, *events.NOT_FILED])))
        if draw(st.booleans()):  # legal sense at stake: relief against levels, dates against today
            dates = st.sampled_from([None, "1960-01-01", "2000-06-30", "2026-11-24", "2026-11-25", "9999-12-31"])
            ev["data"]["relief"] = draw(st.sampled_from(events.GRANTED + events.NOT_FILED))
            ev["data"]["defendant"]["date_of_birth"] = draw(dates)
            ev["data"]["convictions"] = [{"statute": "HS 11357", "level": level, "disposition_date": dispo}
                                         for level, dispo in draw(st.lists(st.tuples(
                                             st.sampled_from(["felony", "misdemeanor", "infraction"]), dates),
                                             min_size=1, max_size=3))]
    else:
        ev = sample.closed(court, f"{court}-B", draw(st.sampled_from([None, 3])))
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2, 3]))):
        places = list(paths(ev))[1:] or [()]  # the root too, now and then, via the "bytes" records
        path = places[draw(st.integers(0, len(places) - 1))]
        ev = mutate(ev, path, draw(st.sampled_from(["set", "set", "delete", "keep"])), draw(JSONISH))
    return ev


def dumps(draw, doc) -> bytes:
    text = json.dumps(doc, ensure_ascii=draw(st.booleans()))  # NaN and Infinity come out as such
    return text.encode("utf-8", "surrogatepass")  # a lone surrogate becomes invalid UTF-8


@st.composite
def records(draw):
    """(key, value, headers) of one record, in structured or binary mode, or just bytes."""
    kind = draw(st.sampled_from(["structured", "structured", "structured", "binary", "binary", "bytes", "deep", "bigint",
                                 "huge", "none"]))
    headers = [] if draw(st.booleans()) else draw(st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=3))
    court = draw(st.sampled_from(COURTS))
    if kind in ("structured", "binary"):
        ev = draw(near_valid_event(court))
        if kind == "binary" and isinstance(ev, dict):
            headers = [(f"ce_{k}", str(v).encode("utf-8", "surrogatepass")) for k, v in ev.items()
                       if k not in ("data", "datacontenttype")] + headers
            value = dumps(draw, ev.get("data"))
        else:
            value = dumps(draw, ev)
    elif kind == "bytes":
        value = draw(st.binary(max_size=64))
    elif kind == "deep":
        value = deep(draw(st.integers(10, 3000)), draw(st.sampled_from(["0", "{}", '"x"', ""]))).encode()
    elif kind == "bigint":
        value = ('{"specversion": "1.0", "id": "c", "source": "s", "type": "relief.batch.closed.v1", "data": '
                 '{"court_code": "LA", "batch_id": "B", "expected_count": ' + "9" * draw(st.integers(15, 5000)) +
                 "}}").encode()
    elif kind == "huge":
        value = b'{"a": "' + b"x" * LIMITS.max_record_bytes + b'"}'
    else:
        value = None
    key = court.encode() if draw(st.integers(0, 3)) else draw(st.none() | st.sampled_from([b"SF", b"\xff"]) |
                                                               st.binary(max_size=4))
    return key, value, headers


def handle(batcher: Batcher, offset: int, timestamp: int, key, value, headers, schemas):
    try:
        event = events.parse(key, value, headers, schemas, LIMITS, today=TODAY)
    except Rejected as rej:
        assert rej.reason in EXPECTED, (rej.reason, rej.message, rej.__cause__)
        rej.message.encode("utf-8")
        assert all(c.isprintable() for c in rej.message), rej.message
        batcher.skip(Record("t", 0, offset, timestamp, key, value, tuple(headers)))
        return
    _, sealed = batcher.add(Record("t", 0, offset, timestamp, key, value, tuple(headers)), event)
    for sb in sealed:
        assert sb.created_at and summary(sb)
        batcher.done(sb)
    batcher.committable()


@settings(max_examples=400, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(batch=st.lists(st.tuples(records(), st.integers(-(2**63), 2**63 - 1)), min_size=1, max_size=4))
def test_any_record_is_an_event_or_a_documented_rejection(schemas, batch):
    batcher = Batcher(2, FakeLedger())
    for offset, ((key, value, headers), timestamp) in enumerate(batch):
        handle(batcher, offset, timestamp, key, value, headers, schemas)
    for ob in batcher.open_batches():
        assert ob.batch_id


def test_the_strategies_reach_events_as_well_as_rejections(schemas):
    """Guard against a property that holds only because everything is rejected."""
    outcomes = set()

    @settings(max_examples=200, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(rec=records())
    def collect(rec):
        try:
            outcomes.add(type(events.parse(*rec, schemas, LIMITS, today=TODAY)).__name__)
        except Rejected as rej:
            outcomes.add(rej.reason)

    collect()
    assert {"Decision", "BatchClosed", "invalid_json", "invalid_cloudevent", "schema_violation", "key_mismatch",
            "inconsistent_decision", "too_large"} <= outcomes, outcomes
