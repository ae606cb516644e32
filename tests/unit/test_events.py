"""events: both CloudEvents content modes, and every rejection reason with a message that
names fields, never personal values."""

import json

import pytest

from service import events
from service.errors import Rejected
from tests.conftest import encode


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
