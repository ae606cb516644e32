"""Poison records mixed into normal traffic (issue 12's acceptance run), on the real broker, S3
API and LibreOffice: every worker exits 0, every good decision is filed exactly once, every
poison record is in the DLQ at its source partition and offset with its reason, no stored key
has a `.`/`..` segment or exceeds 1,024 bytes, and `dlq list` prints no control character."""

from __future__ import annotations

import copy
import json
import subprocess

from kafka import KafkaProducer

from service import broker
from service.events import GRANTED
from tests.e2e.conftest import EXE, assert_exactly_once
from tools import sample


def _event(ev: dict) -> bytes:
    return json.dumps(ev, ensure_ascii=False).encode("utf-8")


def poison_records(good: list[dict]) -> list[tuple[str, bytes, bytes, list, str]]:
    """(name, key, value, headers, expected reason)."""
    la = next(e for e in good if e["data"]["court"]["code"] == "LA" and e["data"]["relief"] in GRANTED)
    closed = {"specversion": "1.0", "id": "c-huge", "source": "s", "type": "relief.batch.closed.v1",
              "data": {"court_code": "LA", "batch_id": "LA-B0", "expected_count": 0}}
    huge_int = _event(closed).replace(b'"expected_count": 0', b'"expected_count": ' + b"9" * 5000)
    conflicting = copy.deepcopy(la)
    conflicting["id"] = "conflict"
    conflicting["data"]["defendant"]["last_name"] = "Someone Else"
    unknown = copy.deepcopy(la)
    unknown["id"], unknown["data"]["decision_id"] = "unknown", "d-unknown-court"
    unknown["data"]["court"]["code"] = "ZZ"
    inconsistent = copy.deepcopy(la)
    inconsistent["id"], inconsistent["data"]["decision_id"] = "incons", "d-inconsistent"
    inconsistent["data"]["defendant"]["date_of_birth"] = "2099-01-01"
    return [
        ("deep nesting", b"LA", b"[" * 100_000, [], "invalid_json"),
        ("huge integer", b"LA", huge_int, [], "invalid_json"),
        ("lone surrogate type", b"LA", b'{"specversion": "1.0", "id": "x", "source": "s", "type": "\\ud800"}', [],
         "unsupported_type"),
        ("ANSI type", b"LA", b'{"specversion": "1.0", "id": "x", "source": "s", "type": "\\u001b[2J\\u001b[31mx"}',
         [], "unsupported_type"),
        ("too large", b"LA", b'{"pad": "' + b"x" * 300_000 + b'"}', [("trace", b"\x1b[31m")], "too_large"),
        ("invalid UTF-8 header", b"LA", _event(la), [("ce_specversion", b"\xff\xfe")], "invalid_cloudevent"),
        ("conflicting duplicate", b"LA", _event(conflicting), [], "conflicting_duplicate"),
        ("unknown court", b"ZZ", _event(unknown), [], "unknown_court"),
        ("inconsistent", b"LA", _event(inconsistent), [], "inconsistent_decision"),
    ]


def hostile_batches(good: list[dict]) -> list[dict]:
    """Granted decisions whose batch ids would escape their folder or exceed S3's key limit."""
    out = []
    for i, batch_id in enumerate(["..", ".", "漢" * 128, "a/../b"]):
        ev = copy.deepcopy(next(e for e in good if e["data"]["court"]["code"] == "SF"))
        ev["id"] = f"hostile-{i}"
        ev["data"]["decision_id"] = f"d-hostile-batch-{i}"
        ev["data"]["relief"] = "dismiss_and_seal"
        ev["data"]["batch_id"] = batch_id
        out.append(ev)
        out.append({"specversion": "1.0", "id": f"close-{i}", "source": "s", "type": "relief.batch.closed.v1",
                    "data": {"court_code": "SF", "batch_id": batch_id}})
    return out


def test_poison_among_good_traffic(world):
    world.settings.update({"RELIEFDOCS_BATCH_MAX_CASES": "30", "RELIEFDOCS_MAX_RECORD_BYTES": "200000",
                           "RELIEFDOCS_KAFKA_MAX_REQUEST_SIZE": "100000"})
    good = sample.generate(120, ["LA", "SF"], seed=12, hostile_every=7)
    extra = hostile_batches(good)
    world.publish(good[:60])
    prod = KafkaProducer(bootstrap_servers=world.broker.bootstrap, acks="all", max_request_size=2_000_000)
    where = {}
    for name, key, value, headers, reason in poison_records(good):
        md = prod.send(world.decisions, key=key, value=value, headers=headers).get(timeout=30)
        where[(md.partition, md.offset)] = (name, reason)
    # a good decision whose Kafka timestamp is in year 10000 (implicit batch: the date is clamped)
    late = copy.deepcopy(next(e for e in good if e["data"]["court"]["code"] == "LA"))
    late["id"], late["data"]["decision_id"], late["data"]["batch_id"] = "late", "d-year-10000", None
    prod.send(world.decisions, key=b"LA", value=_event(late), timestamp_ms=253_402_300_800_000 + 86_400_000)
    prod.flush()
    prod.close()
    world.publish(good[60:] + extra)

    workers = [world.worker("--exit-when-idle", "3", log=f"w{i}") for i in range(2)]
    assert [p.wait(timeout=400) for p in workers] == [0, 0], world.log("w0")[-3000:] + world.log("w1")[-3000:]

    assert_exactly_once(world, good + extra + [late])
    dead = {}
    for r in world.records(world.dlq):
        h = dict(r.headers)
        dead[(int(h[broker.DLQ_PARTITION]), int(h[broker.DLQ_OFFSET]))] = (h[broker.DLQ_REASON].decode(), h)
    for pos, (name, reason) in where.items():
        assert pos in dead, f"{name} is not in the DLQ at partition {pos[0]} offset {pos[1]}"
        assert dead[pos][0] == reason, (name, dead[pos][0])
    too_large = next(h for pos, (_, h) in dead.items() if where.get(pos, ("",))[0] == "too large")
    assert broker.DLQ_PAYLOAD in too_large and any(k.startswith("filings/_dlq/") for k in world.keys())

    for key in world.keys():
        assert len(key.encode("utf-8")) <= 1024, key[:80]
        assert not any(set(seg) <= {"."} for seg in key.split("/")), key
    for m in world.manifests():
        if m["batch_id"] in ("..", ".", "漢" * 128, "a/../b"):
            assert m["court_code"] == "SF"

    out = subprocess.run([EXE, "dlq", "list"], env=world.env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert not any(ord(c) < 32 and c not in "\n\t" for c in out.stdout), "dlq list printed a control character"
    assert "\x1b" not in out.stdout and "\u202e" not in out.stdout
