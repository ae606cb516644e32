"""Dead-letter tooling without a broker: records counted once however often they were
dead-lettered, one replay mark replaced never stacked, the replay cap, what a second run does,
configuration that would loop, and text from records printed escaped."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import pytest

from service import broker, config, dlq
from service.errors import ConfigError
from service.ops import safe_text

DLQ = "decided.dlq"


@dataclass
class Rec:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list


def dead(partition, offset, source=("decided", 1, 40), reason="invalid_json", extra=(), key=b"LA", message="m"):
    headers = broker.dead_letter_headers(list(extra), reason, message, *source)
    return dlq.parse(Rec(partition, offset, key, b"{oops", headers), DLQ)


def test_copies_of_one_record_count_once():
    letters = [dead(0, 0), dead(0, 1), dead(2, 0),  # one bad record, dead-lettered three times (crashes)
               dead(1, 0, source=("decided", 0, 7)), dead(1, 1, source=("decided", 0, 8), reason="schema_violation")]
    s = dlq.summarize(letters)
    assert (s["dead_letters"], s["records"]) == (5, 3)
    r = s["reasons"]["invalid_json"]
    assert (r["dead_letters"], r["records"]) == (4, 2)
    assert r["examples"][0]["source"] == "decided:1:40" and r["examples"][0]["dead_letters"] == ["0:0", "0:1", "2:0"]
    assert s["reasons"]["schema_violation"]["records"] == 1


def test_a_replay_refused_again_is_the_same_record():
    first = dead(0, 0)
    again = dead(0, 5, source=("decided", 2, 99), extra=broker.replay_headers(first.headers, first.origin, 1))
    assert again.origin == "decided:1:40" and again.replays == 1 and again.source == "decided"
    assert dlq.summarize([first, again])["records"] == 1


def test_headers_missing_or_malformed_make_a_record_its_own_origin():
    rec = Rec(1, 3, None, None, [(broker.DLQ_TOPIC, b"\x1b[2J"), (broker.REPLAY_OF, b"x"), ("h", None),
                                 (broker.REPLAY_COUNT, b"lots")])
    d = dlq.parse(rec, DLQ)
    assert (d.origin, d.source, d.replays, d.reason) == (f"{DLQ}:1:3", None, 0, "unknown")


def test_replay_mark_is_replaced_never_stacked():
    original = [("content-type", b"application/cloudevents+json"), ("reliefdocs.replayed.from", b"old/0:1")]
    h = broker.replay_headers(broker.dead_letter_headers(original, "r", "m", "decided", 1, 40), "decided:1:40", 1)
    h = broker.dead_letter_headers(h, "r", "m", "decided", 2, 99)  # refused again: the mark survives
    assert dict(h)[broker.REPLAY_COUNT] == b"1"
    h = broker.replay_headers(h, "decided:1:40", 2)
    names = [k for k, _ in h]
    assert names == ["content-type", broker.REPLAY_OF, broker.REPLAY_COUNT]
    assert dict(h)[broker.REPLAY_OF] == b"decided:1:40" and dict(h)[broker.REPLAY_COUNT] == b"2"


def test_replay_sends_each_record_once_to_its_source_and_records_per_reason():
    letters = [dead(0, 0), dead(0, 1), dead(1, 0, source=("decided", 0, 7), reason="render_failed")]
    p = dlq.plan(letters, dlq.Selection(), {}, 3, {DLQ})
    assert [(d.origin, dest) for d, dest in p.send] == [("decided:1:40", "decided"), ("decided:0:7", "decided")]
    assert p.dead_letters == 3 and not p.skipped
    assert p.commits == {"invalid_json": {0: 2, 1: 1}, "render_failed": {0: 2, 1: 1}}


def test_second_run_replays_nothing_new():
    letters = [dead(0, 0), dead(0, 1), dead(1, 0, source=("decided", 0, 7), reason="render_failed")]
    first = dlq.plan(letters, dlq.Selection(), {}, 3, {DLQ})
    again = dlq.plan(letters, dlq.Selection(), first.commits, 3, {DLQ})
    assert not again.send and again.dead_letters == 0
    # a reason replayed alone leaves the others for a later run
    only = dlq.plan(letters, dlq.Selection(reasons=("render_failed",)), {}, 3, {DLQ})
    assert list(only.commits) == ["render_failed"]
    rest = dlq.plan(letters, dlq.Selection(), only.commits, 3, {DLQ})
    assert [d.origin for d, _ in rest.send] == ["decided:1:40"]


def test_replay_cap_skips_and_reports_but_named_positions_override_it():
    first = dead(0, 0)
    capped = dead(0, 7, source=("decided", 2, 99), extra=broker.replay_headers(first.headers, first.origin, 3))
    p = dlq.plan([first, capped], dlq.Selection(), {}, 3, {DLQ})
    assert not p.send and len(p.skipped) == 1 and "replayed 3 times" in p.skipped[0][1]
    assert p.commits["invalid_json"] == {0: 8}  # reported once, not again next run
    named = dlq.plan([first, capped], dlq.Selection(positions=("0:7",)), {"invalid_json": {0: 8}}, 3, {DLQ})
    assert [(d.position, d.replays) for d, _ in named.send] == [("0:7", 3)] and not named.commits


def test_replay_destination_never_loops():
    foreign = dlq.parse(Rec(0, 0, None, b"x", []), DLQ)
    looping = dead(0, 1, source=(DLQ, 2, 5))
    p = dlq.plan([foreign, looping], dlq.Selection(), {}, 3, {DLQ})
    assert not p.send and len(p.skipped) == 2
    p = dlq.plan([foreign], dlq.Selection(to="decided"), {}, 3, {DLQ})
    assert [dest for _, dest in p.send] == ["decided"]


def _settings(**env):
    return config.load({f"RELIEFDOCS_{k.upper()}": v for k, v in env.items()})


def test_replay_to_refuses_the_dlq_and_notifications_topics():
    s = _settings()
    with pytest.raises(ConfigError, match="--to"):
        dlq.destination(s, s.dlq_topic)
    with pytest.raises(ConfigError, match="--to"):
        dlq.destination(s, s.notifications_topic)
    assert dlq.destination(s, "decided.retry") == "decided.retry"


@pytest.mark.parametrize("other", ["decisions_topic", "notifications_topic"])
def test_dlq_topic_equal_to_an_input_or_output_topic_is_a_config_error(other):
    with pytest.raises(ConfigError) as e:
        _settings(dlq_topic="same", **{other: "same"})
    assert "RELIEFDOCS_DLQ_TOPIC" in str(e.value)


def test_safe_text_escapes_terminal_controls():
    hostile = "x\x1b[31mred\x1b[0m\u202eevil\u2066\x7f\x9b\ud800\x00"
    out = safe_text(hostile, 200)
    assert out == "x\\x1b[31mred\\x1b[0m\\u202eevil\\u2066\\x7f\\x9b\\ud800\\x00"
    assert all(ch.isprintable() for ch in out)
    assert safe_text("a" * 50, 10) == "a" * 10 + "..." and safe_text(None) == "-"
    assert safe_text(b"\xffk") == "\ufffdk"


def test_list_prints_record_text_escaped(monkeypatch):
    letters = [dead(0, 0, reason="unsupported_type", key=b"L\x1bA",
                    message="event type 'x\x1b]0;pwned\x07' is not one this service consumes")]
    monkeypatch.setattr(dlq, "read", lambda settings: letters)
    for as_json in (False, True):
        out = io.StringIO()
        assert dlq.dlq_list(_settings(), as_json=as_json, out=out) == 0
        assert "\x1b" not in out.getvalue() and "\x07" not in out.getvalue()
    j = json.loads(out.getvalue())
    assert j["reasons"]["unsupported_type"]["examples"][0]["court"] == "L\\x1bA"


def test_a_dead_letter_stored_under_dlq_is_replayed_with_its_original_bytes(tmp_path):
    from service.batching import Record
    from service.deadletters import DeadLetters
    from service.store import FileStore

    class Prod:
        sent = []

        def send(self, topic, key=None, value=None, headers=None):
            self.sent.append((key, value, headers))

    store = FileStore(f"file://{tmp_path}")
    big = Record("decided", 2, 9, 0, b"LA", b"x" * 5000, (("trace", b"1"),))
    letters = DeadLetters(Prod(), DLQ, store, max_request_size=1000)
    letters.send(big, "too_large", "record is larger than allowed")
    key, value, headers = Prod.sent[0]
    assert value is None and dict(headers)[broker.DLQ_PAYLOAD].startswith(b"file://")
    d = dlq.parse(Rec(0, 0, key, value, headers), DLQ)
    assert dlq.original(d, store) == (b"LA", b"x" * 5000, (("trace", b"1"),))
    replayed = broker.replay_headers(dlq.original(d, store)[2], d.origin, 1)
    assert [k for k, _ in replayed] == ["trace", broker.REPLAY_OF, broker.REPLAY_COUNT]
