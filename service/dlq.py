"""Dead letters: `reliefdocs dlq list` and `dlq replay`, safe to run twice.

The DLQ is at-least-once: after a crash the same bad record may be dead-lettered again. So
both commands count *records* — distinct positions a record was first read from ("origin",
topic:partition:offset from the DLQ headers, or from the replay mark of a replayed record
refused again) — besides *dead letters* (copies). A replay sends each origin once, back to
its source topic, with one replay mark (REPLAY_OF, REPLAY_COUNT), and records what it
replayed by committing offsets of a consumer group per reason on the DLQ topic
(`<prefix>.<reason>`), after the broker acknowledged every replayed record. A record replayed
RELIEFDOCS_DLQ_MAX_REPLAYS times is skipped and reported. Nothing a record supplies is printed
unescaped (ops.safe_text).
"""

from __future__ import annotations

import base64
import json
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Iterable

from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition

from service import broker
from service.config import Settings
from service.errors import ConfigError
from service.ops import Progress, _read_all, safe_text

_TOPIC = r"[A-Za-z0-9._-]{1,249}"
_ORIGIN = re.compile(rf"{_TOPIC}:\d{{1,10}}:\d{{1,19}}")


@dataclass(frozen=True)
class DeadLetter:
    """One record of the DLQ topic, as the commands need it."""

    partition: int  # in the DLQ topic
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple
    reason: str
    message: str
    source: str | None  # the topic it was read from, if its header names one
    origin: str  # topic:partition:offset it was first read from: what makes copies one record
    replays: int  # how many times it was replayed before it came back

    @property
    def position(self) -> str:
        return f"{self.partition}:{self.offset}"


def _text(headers: dict[str, bytes | None], name: str) -> str | None:
    v = headers.get(name)
    return None if v is None else v.decode("utf-8", "replace")


def parse(rec: Any, dlq_topic: str) -> DeadLetter:
    """A DLQ record as a DeadLetter; headers missing or malformed (whoever wrote the record)
    make it its own origin, never an error."""
    h = {k: v for k, v in (rec.headers or [])}
    topic, part, off = (_text(h, n) or "" for n in (broker.DLQ_TOPIC, broker.DLQ_PARTITION, broker.DLQ_OFFSET))
    source = topic if re.fullmatch(_TOPIC, topic) else None
    first = f"{topic}:{part}:{off}"
    replay_of = _text(h, broker.REPLAY_OF) or ""
    if _ORIGIN.fullmatch(replay_of):
        origin = replay_of
    elif _ORIGIN.fullmatch(first):
        origin = first
    else:
        origin = f"{dlq_topic}:{rec.partition}:{rec.offset}"
    count = _text(h, broker.REPLAY_COUNT) or ""
    return DeadLetter(rec.partition, rec.offset, rec.key, rec.value, tuple(rec.headers or ()),
                      _text(h, broker.DLQ_REASON) or "unknown", _text(h, broker.DLQ_MESSAGE) or "", source, origin,
                      int(count) if count.isdigit() and len(count) < 10 else 0)


def read(settings: Settings) -> list[DeadLetter]:
    return [parse(rec, settings.dlq_topic) for rec in _read_all(settings, settings.dlq_topic)]


# -- list -----------------------------------------------------------------------------------
def summarize(letters: Iterable[DeadLetter], examples: int = 3) -> dict[str, Any]:
    """Per reason: dead letters (copies), records (distinct origins) and examples by origin,
    every record-supplied text escaped."""
    by_reason: dict[str, dict[str, list[DeadLetter]]] = {}
    origins: set[str] = set()
    total = 0
    for d in letters:
        by_reason.setdefault(d.reason, {}).setdefault(d.origin, []).append(d)
        origins.add(d.origin)
        total += 1
    reasons = {}
    for reason, by_origin in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
        reasons[safe_text(reason, 100)] = {
            "dead_letters": sum(len(c) for c in by_origin.values()), "records": len(by_origin),
            "examples": [_example(origin, copies) for origin, copies in list(by_origin.items())[:examples]]}
    return {"dead_letters": total, "records": len(origins), "reasons": reasons}


def _example(origin: str, copies: list[DeadLetter]) -> dict[str, Any]:
    last = copies[-1]
    return {"source": safe_text(origin, 300), "court": None if last.key is None else safe_text(last.key, 40),
            "message": safe_text(last.message, 300), "replays": max(c.replays for c in copies),
            "dead_letters": [c.position for c in copies[:10]] + (["..."] if len(copies) > 10 else [])}


def dlq_list(settings: Settings, as_json: bool = False, examples: int = 3, out=sys.stdout) -> int:
    summary = summarize(read(settings), examples)
    if as_json:
        print(json.dumps({"topic": settings.dlq_topic, **summary}, indent=2), file=out)
        return 0
    print(f"{_n(summary['records'], 'record')} in {_n(summary['dead_letters'], 'dead letter')} in {settings.dlq_topic}"
          " (a record dead-lettered again after a crash or a replay is one record)", file=out)
    for reason, r in summary["reasons"].items():
        print(f"\n{reason}: {_n(r['records'], 'record')} ({_n(r['dead_letters'], 'dead letter')})", file=out)
        for e in r["examples"]:
            again = f"  replayed {e['replays']}x" if e["replays"] else ""
            print(f"  from {e['source']}  court {e['court']}  dlq {' '.join(e['dead_letters'])}{again}: "
                  f"{e['message']}", file=out)
    return 0


def _n(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# -- replay ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Selection:
    """Which dead letters: by reason and/or DLQ position (both: the intersection). Named
    positions are replayed even if replayed before or at the cap, and recorded nowhere."""

    reasons: tuple[str, ...] = ()
    positions: tuple[str, ...] = ()  # partition:offset in the DLQ topic
    to: str | None = None  # instead of each record's source topic

    @property
    def explicit(self) -> bool:
        return bool(self.positions)

    def wants(self, d: DeadLetter) -> bool:
        return (not self.reasons or d.reason in self.reasons) and (not self.positions or d.position in self.positions)


@dataclass
class Plan:
    send: list[tuple[DeadLetter, str]] = field(default_factory=list)  # (the copy to replay, destination topic)
    skipped: list[tuple[DeadLetter, str]] = field(default_factory=list)  # (the copy, why not)
    dead_letters: int = 0  # copies chosen, before one per record is kept
    commits: dict[str, dict[int, int]] = field(default_factory=dict)  # reason -> DLQ partition -> next offset


def plan(letters: list[DeadLetter], sel: Selection, done: dict[str, dict[int, int]], max_replays: int,
         forbidden: set[str]) -> Plan:
    """What a replay run does: the selection minus what earlier runs recorded (`done`, unless
    positions are named), one copy per record (the most replayed one), minus records at the
    cap or without a destination; and the offsets that record this run, per reason."""
    p = Plan()
    chosen: dict[str, DeadLetter] = {}
    for d in letters:
        if not sel.wants(d) or (not sel.explicit and d.offset < done.get(d.reason, {}).get(d.partition, 0)):
            continue
        p.dead_letters += 1
        if d.origin not in chosen or d.replays > chosen[d.origin].replays:
            chosen[d.origin] = d
    for d in chosen.values():
        dest = sel.to or d.source
        if not sel.explicit and d.replays >= max_replays:
            p.skipped.append((d, f"replayed {d.replays} times already (RELIEFDOCS_DLQ_MAX_REPLAYS={max_replays}); "
                                 "name its --position to replay it anyway"))
        elif dest is None:
            p.skipped.append((d, "no source topic in its headers: name one with --to"))
        elif dest in forbidden:
            p.skipped.append((d, f"its source topic {dest} is the DLQ or notifications topic: name one with --to"))
        else:
            p.send.append((d, dest))
    if not sel.explicit:
        ends: dict[int, int] = {}
        for d in letters:
            ends[d.partition] = max(ends.get(d.partition, 0), d.offset + 1)
        p.commits = {reason: ends for reason in (sel.reasons or sorted({d.reason for d in letters}))}
    return p


def group_of(prefix: str, reason: str) -> str:
    return f"{prefix}.{re.sub(r'[^A-Za-z0-9._-]', '_', reason)[:100]}"


def _replay_consumer(settings: Settings, group: str):
    return broker.consumer(settings, group_id=group, client_id="reliefdocs-dlq-replay", enable_auto_commit=False)


def committed(settings: Settings, prefix: str, reasons: Iterable[str]) -> dict[str, dict[int, int]]:
    """Per reason, per DLQ partition: the offset up to which earlier runs replayed (0: none)."""
    out: dict[str, dict[int, int]] = {}
    for reason in reasons:
        c = _replay_consumer(settings, group_of(prefix, reason))
        try:
            parts = sorted(c.partitions_for_topic(settings.dlq_topic) or [])
            out[reason] = {p: c.committed(TopicPartition(settings.dlq_topic, p), timeout_ms=10000) or 0 for p in parts}
        finally:
            c.close()
    return out


def record(settings: Settings, prefix: str, commits: dict[str, dict[int, int]]) -> None:
    """Commit each reason's group past what this run read (after the broker acknowledged the replays)."""
    for reason, ends in commits.items():
        if not ends:
            continue
        c = _replay_consumer(settings, group_of(prefix, reason))
        try:
            offsets = {TopicPartition(settings.dlq_topic, p): OffsetAndMetadata(o, "", -1) for p, o in ends.items()}
            c.assign(list(offsets))
            c.commit(offsets)
        finally:
            c.close()


def original(d: DeadLetter, store) -> tuple[bytes | None, bytes | None, tuple]:
    """The record a dead letter stands for: itself, or, for one too large to dead-letter whole,
    the key, value and headers stored under `_dlq/` (the header reliefdocs.error.payload)."""
    h = dict(d.headers)
    if h.get(broker.DLQ_PAYLOAD) is None:
        return d.key, d.value, d.headers
    from service.deadletters import PAYLOAD_PREFIX

    uri = h[broker.DLQ_PAYLOAD].decode("utf-8", "replace")
    key = PAYLOAD_PREFIX + uri.split("/" + PAYLOAD_PREFIX, 1)[-1]
    raw = store.get(key)
    if raw is None:
        raise ConfigError("RELIEFDOCS_STORAGE_URL", f"the stored record of dead letter {d.position} is not there")
    stored = json.loads(raw)
    b = lambda x: None if x is None else base64.b64decode(x)
    return b(stored["key"]), b(stored["value"]), tuple((k, b(v)) for k, v in stored["headers"])


def send(settings: Settings, sends: list[tuple[DeadLetter, str]]) -> None:
    """Replay each record with its original key, value and headers (minus the DLQ's) and one
    replay mark, and wait for every acknowledgement."""
    prod = broker.producer(settings)
    progress = Progress(len(sends), "replay")
    store = None
    if any(dict(d.headers).get(broker.DLQ_PAYLOAD) is not None for d, _ in sends):
        from service.store import open_store

        if not settings.storage_url:
            raise ConfigError("RELIEFDOCS_STORAGE_URL", "is required to replay a dead letter stored under _dlq/")
        store = open_store(settings)
    try:
        futures = []
        for d, dest in sends:
            key, value, headers = original(d, store)
            futures.append(prod.send(dest, key=key, value=value,
                                     headers=broker.replay_headers(headers, d.origin, d.replays + 1)))
        prod.flush()
        for f in futures:
            f.get(timeout=60)
            progress.step()
    finally:
        prod.close()
        progress.done()


def destination(settings: Settings, to: str | None) -> str | None:
    """The --to topic, checked: a topic name, and not one that would loop or reach courts' consumers."""
    if to is None:
        return None
    if not re.fullmatch(_TOPIC, to):
        raise ConfigError("--to", "must be a Kafka topic name ([A-Za-z0-9._-], 1 to 249 characters)")
    if to in (settings.dlq_topic, settings.notifications_topic):
        raise ConfigError("--to", "must not be RELIEFDOCS_DLQ_TOPIC or RELIEFDOCS_NOTIFICATIONS_TOPIC")
    return to


def dlq_replay(settings: Settings, reasons: list[str], positions: list[str], dry_run: bool, to: str | None = None,
               out=sys.stdout) -> int:
    """Re-publish chosen dead letters, one per record, to their source topic (or `to`)."""
    sel = Selection(tuple(reasons), tuple(positions), destination(settings, to))
    prefix = settings.dlq_replay_group or f"{settings.group}.dlq-replay"
    letters = read(settings)
    done = {} if sel.explicit else committed(settings, prefix, sorted({d.reason for d in letters if sel.wants(d)}))
    p = plan(letters, sel, done, settings.dlq_max_replays, {settings.dlq_topic, settings.notifications_topic})
    _report(p, sel, dry_run, prefix, out)
    if dry_run:
        return 0
    try:
        send(settings, p.send)
    except KafkaError as exc:
        print(f"replay failed ({type(exc).__name__}); nothing was recorded: run it again (a record replayed twice "
              "is harmless, a decision is never filed twice)", file=out)
        return 1
    record(settings, prefix, p.commits)
    recorded = f"; recorded in consumer group(s) {prefix}.<reason>" if p.commits else " (named positions: not recorded)"
    print(f"replayed {_n(len(p.send), 'record')}{recorded}", file=out)
    return 0


def _report(p: Plan, sel: Selection, dry_run: bool, prefix: str, out) -> None:
    verb = "would replay" if dry_run else "replaying"
    where = f"to {sel.to}" if sel.to else "to their source topics"
    print(f"{verb} {_n(len(p.send), 'record')} ({_n(p.dead_letters, 'dead letter')} chosen, "
          f"{len(p.skipped)} skipped) {where}", file=out)
    if not p.dead_letters and not sel.explicit:
        print(f"nothing new since the last replay (recorded in consumer groups {prefix}.<reason>); "
              "name a --position to replay a dead letter again", file=out)
    for d, why in p.skipped:
        print(f"  skipped dlq {d.position} from {safe_text(d.origin, 300)}: {why}", file=out)
    if dry_run:
        for d, dest in p.send:
            print(f"  dlq {d.position}  {safe_text(d.reason, 100)}  from {safe_text(d.origin, 300)} to {dest}  "
                  f"court {safe_text(d.key, 40)}  replay {d.replays + 1}", file=out)
