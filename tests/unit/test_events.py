"""events: both CloudEvents content modes, and every rejection reason with a message that
names fields, never personal values."""

import copy
import datetime
import json
import random

import pytest

from service import events
from service.errors import Rejected
from tests.helpers import ROOT, encode
from tools import sample


def parse(schemas, value, key=b"LA", headers=()):
    return events.parse(key, value, list(headers), schemas)


def test_structured_decision(schemas, decision_event):
    ev = decision_event()
    d = parse(schemas, encode(ev))
    assert isinstance(d, events.Decision)
    assert (d.decision_id, d.court_code, d.batch_id, d.relief) == ("d-LA-000001", "LA", "LA-B1", "dismiss_and_seal")


def test_binary_decision(schemas, decision_event):
    ev = decision_event()
    headers = [(f"ce_{k}", str(v).encode()) for k, v in ev.items() if k not in ("data", "datacontenttype")]
    headers.append(("content-type", b"application/json"))
    d = parse(schemas, json.dumps(ev["data"]).encode(), headers=headers)
    assert d.decision_id == "d-LA-000001"


def test_batch_closed(schemas):
    ev = {"specversion": "1.0", "id": "c", "source": "s", "type": events.BATCH_CLOSED,
          "data": {"court_code": "LA", "batch_id": "LA-B1", "expected_count": 3}}
    c = parse(schemas, encode(ev))
    assert c == events.BatchClosed("LA", "LA-B1", 3, "upstream", None)


@pytest.mark.parametrize("value,reason", [
    (b"{not json", "invalid_json"),
    (b"\xff\xfe", "invalid_json"),
    (None, "invalid_json"),
    (b"[1, 2]", "invalid_cloudevent"),
    (b'{"hello": "world"}', "invalid_cloudevent"),
    (b'{"specversion": "0.3", "id": "x", "source": "s", "type": "relief.eligibility.decided.v1"}', "invalid_cloudevent"),
    (b'{"specversion": "1.0", "id": "x", "source": "s", "type": "com.example.other", "data": {}}', "unsupported_type"),
])
def test_rejections(schemas, value, reason):
    with pytest.raises(Rejected) as e:
        parse(schemas, value)
    assert e.value.reason == reason


def test_schema_violation_names_field_not_value(schemas, decision_event):
    ev = decision_event()
    ev["data"]["defendant"]["date_of_birth"] = "Maria Secretname"
    with pytest.raises(Rejected) as e:
        parse(schemas, encode(ev))
    assert e.value.reason == "schema_violation"
    assert "data.defendant.date_of_birth" in e.value.message
    assert "Secretname" not in e.value.message


def test_missing_required_field(schemas, decision_event):
    ev = decision_event()
    del ev["data"]["convictions"]
    with pytest.raises(Rejected) as e:
        parse(schemas, encode(ev))
    assert e.value.reason == "schema_violation" and "convictions" in e.value.message


def test_control_character_rejected(schemas, decision_event):
    ev = decision_event()
    ev["data"]["defendant"]["last_name"] = "Bad\x01Name"
    with pytest.raises(Rejected) as e:
        parse(schemas, encode(ev))
    assert e.value.reason == "schema_violation" and "data.defendant.last_name" in e.value.message
    assert "Bad" not in e.value.message


def test_key_must_be_court_code(schemas, decision_event):
    with pytest.raises(Rejected) as e:
        parse(schemas, encode(decision_event()), key=b"SF")
    assert e.value.reason == "key_mismatch"


def test_hostile_text_is_valid(schemas, decision_event):
    ev = decision_event()
    ev["data"]["defendant"].update(first_name="{{ 7*7 }} & <b>", last_name="O'Brien \"Q\" محمد 🌿")
    assert parse(schemas, encode(ev)).data["defendant"]["first_name"] == "{{ 7*7 }} & <b>"


def test_any_batch_id_text_is_accepted(schemas, decision_event):
    ev = decision_event(batch_id="LA batch/2026 ñ #1")
    assert parse(schemas, encode(ev)).batch_id == "LA batch/2026 ñ #1"


def test_batch_id_is_percent_encoded_in_keys():
    from service.batching import SealedBatch
    from service.flush import folder_of

    sb = SealedBatch("LA", "LA batch/1", 1, 0, 0, 0, 0, "upstream", (), ())
    assert folder_of(sb, "abc") == "LA/LA%20batch%2F1/abc"


# -- records that once crashed the parser (issue 12): each must be a Rejected, never another error --

def assert_safe(rej: Rejected):
    """A message goes into a UTF-8 DLQ header and a log line: no lone surrogate, no control character."""
    rej.message.encode("utf-8")
    assert not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in rej.message), rej.message


def test_deep_nesting_is_rejected_not_a_recursion_error(schemas):
    with pytest.raises(Rejected) as e:
        parse(schemas, b"[" * 100_000)
    assert e.value.reason == "invalid_json" and "nesting deeper than 64" in e.value.message


def test_deep_nesting_inside_data_is_rejected(schemas, decision_event):
    ev = decision_event()
    value = encode(ev)[:-1] + b', "extra": ' + b"[" * 65 + b"]" * 65 + b"}"
    json.loads(value)  # valid JSON, only too deep
    with pytest.raises(Rejected) as e:
        parse(schemas, value)
    assert e.value.reason == "invalid_json"


def test_brackets_inside_strings_do_not_count_as_nesting(schemas, decision_event):
    ev = decision_event()
    ev["data"]["defendant"]["last_name"] = "[" * 100 + '\\"{' * 40
    assert parse(schemas, encode(ev)).decision_id == ev["data"]["decision_id"]


def test_huge_integer_is_rejected_not_a_value_error(schemas):
    value = (b'{"specversion": "1.0", "id": "c", "source": "s", "type": "relief.batch.closed.v1", '
             b'"data": {"court_code": "LA", "batch_id": "B", "expected_count": ' + b"9" * 5000 + b"}}")
    with pytest.raises(Rejected) as e:
        parse(schemas, value)
    assert e.value.reason == "invalid_json" and "more than 20 digits" in e.value.message
    assert "999" not in e.value.message


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_json_numbers_are_rejected(schemas, constant):
    value = (b'{"specversion": "1.0", "id": "c", "source": "s", "type": "relief.batch.closed.v1", '
             b'"data": {"court_code": "LA", "batch_id": "B", "expected_count": ' + constant + b"}}")
    with pytest.raises(Rejected) as e:
        parse(schemas, value)
    assert e.value.reason == "invalid_json"


def test_integral_float_count_becomes_an_int(schemas):
    value = (b'{"specversion": "1.0", "id": "c", "source": "s", "type": "relief.batch.closed.v1", '
             b'"data": {"court_code": "LA", "batch_id": "B", "expected_count": 3.0, "volume": 1e0}}')
    c = parse(schemas, value)
    assert (c.expected_count, c.volume) == (3, 1) and type(c.expected_count) is int and type(c.volume) is int


def test_huge_float_count_is_rejected(schemas):
    value = (b'{"specversion": "1.0", "id": "c", "source": "s", "type": "relief.batch.closed.v1", '
             b'"data": {"court_code": "LA", "batch_id": "B", "expected_count": 1e300}}')
    with pytest.raises(Rejected) as e:
        parse(schemas, value)
    assert e.value.reason == "schema_violation" and "data.expected_count" in e.value.message


@pytest.mark.parametrize("etype", ["\ud800", "bad\x01type\n", "x" * 300 + "\udfff"])
def test_unsupported_type_message_is_safe_utf8(schemas, etype):
    value = json.dumps({"specversion": "1.0", "id": "x", "source": "s", "type": etype[:256], "data": {}}).encode()
    with pytest.raises(Rejected) as e:
        parse(schemas, value)
    assert e.value.reason == "unsupported_type"
    assert_safe(e.value)


def test_header_name_is_escaped_in_message(schemas):
    headers = [("ce_specversion", b"1.0"), ("ce_\x01id\ud800", b"\xff")]
    with pytest.raises(Rejected) as e:
        parse(schemas, b"{}", headers=headers)
    assert e.value.reason == "invalid_cloudevent"
    assert_safe(e.value)


def test_field_names_supplied_by_a_record_are_escaped(schemas, decision_event):
    ev = decision_event()
    ev["data"]["extra"] = {"k\x01\ud800": "bad\x02"}
    with pytest.raises(Rejected) as e:
        parse(schemas, json.dumps(ev).encode())  # ASCII JSON: the surrogate is a valid \ud800 escape
    assert e.value.reason == "schema_violation"
    assert_safe(e.value)
    assert "bad" not in e.value.message


def test_rejected_never_carries_an_unencodable_message():
    r = Rejected("invalid_json", "x\ud800y\x01z")
    assert_safe(r)


# -- named limits ------------------------------------------------------------------------------

def test_record_larger_than_the_limit_is_too_large(schemas, decision_event):
    value = encode(decision_event())
    limits = events.Limits(max_record_bytes=len(value) - 1)
    with pytest.raises(Rejected) as e:
        events.parse(b"LA", value, [], schemas, limits)
    assert e.value.reason == "too_large" and str(len(value) - 1) in e.value.message
    assert events.parse(b"LA", value, [], schemas, events.Limits(max_record_bytes=len(value) + 2)).decision_id


def test_headers_count_towards_the_record_size(schemas, decision_event):
    value = encode(decision_event())
    with pytest.raises(Rejected) as e:
        events.parse(b"LA", value, [("x", b"y" * 2000)], schemas, events.Limits(max_record_bytes=len(value) + 1000))
    assert e.value.reason == "too_large"


def test_nesting_limit_is_a_parameter(schemas):
    value = b'{"a": ' + b"[" * 10 + b"]" * 10 + b"}"
    with pytest.raises(Rejected) as e:
        events.parse(b"LA", value, [], schemas, events.Limits(max_depth=5))
    assert e.value.reason == "invalid_json" and "nesting deeper than 5" in e.value.message
    with pytest.raises(Rejected) as e:
        events.parse(b"LA", value, [], schemas, events.Limits(max_depth=11))
    assert e.value.reason == "invalid_cloudevent"  # deep enough: now it is read, and it is no CloudEvent


# -- rules beyond the schema (schemas/README.md) -------------------------------------------------

TODAY = datetime.date(2026, 11, 24)
ROOT_SCHEMAS = ROOT / "schemas"


def inconsistent(schemas, ev) -> Rejected:
    with pytest.raises(Rejected) as e:
        events.parse(b"LA", encode(ev), [], schemas, today=TODAY)
    assert e.value.reason == "inconsistent_decision"
    assert_safe(e.value)
    for value in (ev["data"]["defendant"]["date_of_birth"], *(c["disposition_date"] for c in ev["data"]["convictions"])):
        assert value is None or value not in e.value.message
    return e.value


def with_levels(ev, *levels):
    ev["data"]["convictions"] = [{"statute": f"HS 1135{i}", "level": lv, "disposition_date": "2001-02-03"}
                                 for i, lv in enumerate(levels)]
    return ev


def test_reduce_to_misdemeanor_needs_a_felony(schemas, decision_event):
    r = inconsistent(schemas, with_levels(decision_event(relief="reduce_to_misdemeanor"), "misdemeanor", "infraction"))
    assert "reduce_to_misdemeanor" in r.message and "felony" in r.message and "data.convictions" in r.message
    ok = with_levels(decision_event(relief="reduce_to_misdemeanor"), "misdemeanor", "felony")
    assert events.parse(b"LA", encode(ok), [], schemas, today=TODAY).relief == "reduce_to_misdemeanor"


def test_redesignate_infraction_needs_a_misdemeanor(schemas, decision_event):
    r = inconsistent(schemas, with_levels(decision_event(relief="redesignate_infraction"), "felony"))
    assert "redesignate_infraction" in r.message and "misdemeanor" in r.message


def test_birth_after_disposition(schemas, decision_event):
    ev = with_levels(decision_event(), "felony", "felony")
    ev["data"]["convictions"][1]["disposition_date"] = "1960-01-01"
    ev["data"]["defendant"]["date_of_birth"] = "1970-05-06"
    r = inconsistent(schemas, ev)
    assert "data.defendant.date_of_birth" in r.message and "data.convictions[1].disposition_date" in r.message


def test_birth_in_the_future(schemas, decision_event):
    ev = decision_event()
    ev["data"]["defendant"]["date_of_birth"] = "2026-11-25"
    ev["data"]["convictions"][0]["disposition_date"] = None
    assert "data.defendant.date_of_birth" in inconsistent(schemas, ev).message


def test_disposition_in_the_future(schemas, decision_event):
    ev = decision_event()
    ev["data"]["convictions"][0]["disposition_date"] = "2026-11-25"
    assert "data.convictions[0].disposition_date" in inconsistent(schemas, ev).message
    ev["data"]["convictions"][0]["disposition_date"] = "2026-11-24"  # today is not the future
    assert events.parse(b"LA", encode(ev), [], schemas, today=TODAY).decision_id


def test_not_filed_decisions_are_checked_too(schemas, decision_event):
    ev = decision_event(relief="not_eligible")
    ev["data"]["convictions"][0]["disposition_date"] = "2099-01-01"
    inconsistent(schemas, ev)


def test_sample_generator_makes_only_consistent_decisions(schemas):
    rows = sample.generate(600, ["LA", "SF", "SD", "ALA"], seed=11)
    for relief in events.GRANTED + events.NOT_FILED:
        rows += [sample.decision(random.Random(n), n, "SD", None, relief) for n in range(40)]
    for ev in rows:
        key = (ev["data"].get("court_code") or ev["data"]["court"]["code"]).encode()
        assert events.parse(key, encode(ev), [], schemas, today=TODAY)


def test_deepest_allowed_nesting_is_validated_without_recursion_trouble(schemas, decision_event):
    ev = decision_event()
    deep: object = "bad\x01"
    for _ in range(events.MAX_DEPTH_CEILING - 2):
        deep = [deep]
    ev["data"]["extra"] = deep
    with pytest.raises(Rejected) as e:
        events.parse(b"LA", encode(ev), [], schemas, events.Limits(max_depth=events.MAX_DEPTH_CEILING))
    assert e.value.reason == "schema_violation" and e.value.message.startswith("data.extra[0][0]")


def test_settings_give_the_limits():
    from service import config

    s = config.load(env={"RELIEFDOCS_MAX_RECORD_BYTES": "2048", "RELIEFDOCS_MAX_JSON_DEPTH": "32"})
    assert events.Limits(s.max_record_bytes, s.max_json_depth) == events.Limits(2048, 32)
    for var, bad in (("RELIEFDOCS_MAX_JSON_DEPTH", "500"), ("RELIEFDOCS_MAX_RECORD_BYTES", "12")):
        with pytest.raises(config.ConfigError) as e:
            config.load(env={var: bad})
        assert e.value.setting == var


def test_an_unforeseen_error_is_an_internal_error_rejection(schemas, decision_event, monkeypatch):
    def bug(data, today):
        raise KeyError("a bug in validation")

    monkeypatch.setattr(events, "check_consistent", bug)
    with pytest.raises(Rejected) as e:
        parse(schemas, encode(decision_event()))
    assert e.value.reason == "internal_error" and "KeyError" in e.value.message
    assert isinstance(e.value.__cause__, KeyError)  # for the worker's log, with its stack


# -- the compiled first check never accepts what jsonschema refuses ---------------------------------

ODD_VALUES = [None, True, False, 0, -1, 3.0, 1.5, 1e300, "", " ", "x" * 300, "LA\n", "la", "2026-02-30",
              "2026-01-01", "2026-01-01T00:00:00", "2026-01-01T00:00:00Z", "not a date", "\ud800", [], [""], {},
              {"code": "LA"}, "1.0", 1.0, "felony", "application/json", "text/plain"]


def _mutations(value, path=()):
    """(path, replacement) for every place in `value` and every odd value, and every key removed."""
    yield from ((path, odd) for odd in ODD_VALUES)
    if isinstance(value, dict):
        for k, v in value.items():
            yield (*path, k), KeyError
            yield from _mutations(v, (*path, k))
    if isinstance(value, list):
        for i, v in enumerate(value):
            yield from _mutations(v, (*path, i))


def _mutated(value, path, new):
    if not path:
        return new
    out = copy.deepcopy(value)
    at = out
    for p in path[:-1]:
        at = at[p]
    if new is KeyError:
        del at[path[-1]]
    else:
        at[path[-1]] = new
    return out


@pytest.mark.parametrize("name", ["cloudevent", events.DECIDED, events.BATCH_CLOSED])
def test_compiled_check_accepts_only_what_jsonschema_accepts(schemas, decision_event, name):
    closed = {"court_code": "LA", "batch_id": "LA-B1", "expected_count": 3, "reason": "linger", "volume": 2}
    ev = decision_event()
    ev["data"]["identified_by"] = "additive"
    ev["dataschema"], ev["subject"] = "https://example.org/s", "s"
    valid = {"cloudevent": ev, events.DECIDED: ev["data"], events.BATCH_CLOSED: closed}[name]
    fast, slow = schemas.fast(name), schemas.validator(name)
    assert fast(valid) and slow.is_valid(valid)  # the fast path is taken for a valid record
    agreed = 0
    for path, new in _mutations(valid):
        instance = _mutated(valid, path, new)
        if fast(instance):
            assert slow.is_valid(instance), (path, new)
        agreed += fast(instance) == slow.is_valid(instance)
    assert agreed > 0


def test_messages_are_the_same_with_and_without_the_compiled_check(decision_event):
    compiled, plain = events.Schemas(ROOT_SCHEMAS), events.Schemas(ROOT_SCHEMAS, compiled=False)
    valid = decision_event()
    for path, new in list(_mutations(valid))[::7]:
        raw = json.dumps(_mutated(valid, path, new), ensure_ascii=False).encode("utf-8", "surrogatepass")
        outcomes = []
        for s in (compiled, plain):
            try:
                outcomes.append(events.parse(b"LA", raw, [], s, today=TODAY))
            except Rejected as r:
                outcomes.append((r.reason, r.message))
        assert outcomes[0] == outcomes[1], path
