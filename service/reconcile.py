"""The campaign's accounting (`reliefdocs reconcile`, `report`): every decision read from the
decisions topic ends in exactly one place, or is named as a problem. No I/O: the records read,
the dead letters, the group's committed offsets, the stored manifests and the ledger entries are
given (service/campaign.py reads them), so every category can be tested with plain values.

Per decision_id (its first record that was not dead-lettered):
- granted: `filed` (in a stored manifest), `pending` (not filed and at or after the group's
  committed offset: in an open batch or not read yet; or in a batch queued on the work topic),
  or `missing` (not filed although the group committed past it and no batch holds it); filed
  in two bundles or more: `doubled`;
- not granted (`not_eligible`, `review_required`): `not_filed`, counted; filed anyway:
  `filed_not_granted`.
A record at a position the DLQ names is dead-lettered; dead letters count distinct origins
(a record dead-lettered again after a crash or a replay is one), and an origin replayed and
then accepted is `replayed`, no longer dead. A record seen again with the same decision_id is a
`duplicate`. A batch-closed event's `expected_count` is compared with the distinct decisions
received for that batch: fewer received is `expected_absent` (a problem), more a warning.

Nothing here holds personal data: decision ids, court codes, batch and bundle ids, reliefs,
conviction levels, reasons and the DLQ's messages (which name fields, never values).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from service.events import BATCH_CLOSED, DECIDED, GRANTED, Rejected, to_cloudevent

MARKER_SOURCE = "urn:reliefdocs:worker"  # the service's own batch markers (service/worker.py)
FAILING = ("missing", "doubled", "filed_not_granted", "expected_absent", "unaccounted")
COUNTS = ("received", "granted", "filed", "pending", "not_filed", "dead_lettered", "missing", "doubled",
          "expected_mismatch", "filed_not_granted", "unaccounted", "duplicates", "replayed", "rejected_records")


# -- inputs -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Read:
    """One record of the decisions topic, as the accounting needs it."""

    partition: int
    offset: int
    timestamp_ms: int
    court: str  # data.court.code, or the record's key for a record that cannot be read
    kind: str  # "decision", "closed" or "unreadable"
    decision_id: str | None = None
    relief: str | None = None
    batch_id: str | None = None
    levels: tuple[str, ...] = ()  # each conviction's level
    expected_count: int | None = None
    own_marker: bool = False
    replay_of: str | None = None


@dataclass(frozen=True)
class Letter:
    """One dead letter: where its record was read (`source`, in the decisions topic), the record
    it stands for (`origin`, topic:partition:offset, the same for every copy), why."""

    origin: str
    source: tuple[int, int] | None
    reason: str
    message: str
    court: str
    decision_id: str | None = None
    batch_id: str | None = None
    position: str = ""  # in the DLQ topic


@dataclass(frozen=True)
class Bundle:
    """A stored manifest, as the accounting needs it (read defensively: fields that exist today)."""

    bundle_id: str
    court: str
    batch_id: str
    volume: int
    created_at: str
    key: str
    decisions: tuple[tuple[str, str, str | None], ...]  # (decision_id, relief, exhibit)
    expected_count: int | None = None
    closed_by: str | None = None


def _header(headers, name: str) -> str | None:
    for k, v in headers or ():
        if k == name and v is not None:
            return v.decode("utf-8", "replace")
    return None


def _text(value: Any, limit: int = 128) -> str | None:
    """A string field as sent (ids are compared with the manifests'; escaped only when printed)."""
    return value if isinstance(value, str) and 0 < len(value) <= limit else None


def summarize(partition: int, offset: int, timestamp_ms: int, key: bytes | None, value: bytes | None,
              headers, replay_header: str = "reliefdocs.replay.of") -> Read:
    """A decisions-topic record as a Read; whatever its bytes, never an exception."""
    court = key.decode("utf-8", "replace")[:40] if key else "?"
    base = dict(partition=partition, offset=offset, timestamp_ms=timestamp_ms or 0, court=court)
    try:
        event = to_cloudevent(key, value, headers)
    except (Rejected, ValueError, TypeError, AttributeError):
        return Read(**base, kind="unreadable")
    data = event.get("data") if isinstance(event, dict) else None
    if not isinstance(data, dict):
        return Read(**base, kind="unreadable")
    if event.get("type") == BATCH_CLOSED:
        n = data.get("expected_count")
        return Read(**{**base, "court": _text(data.get("court_code"), 40) or court}, kind="closed",
                    batch_id=_text(data.get("batch_id")), expected_count=n if isinstance(n, int) else None,
                    own_marker=event.get("source") == MARKER_SOURCE)
    did = _text(data.get("decision_id"))
    if event.get("type") != DECIDED or did is None:
        return Read(**base, kind="unreadable")
    c = data.get("court")
    convictions = data.get("convictions") if isinstance(data.get("convictions"), list) else []
    levels = tuple(_text(x.get("level"), 20) or "?" for x in convictions if isinstance(x, dict))
    return Read(**{**base, "court": _text(c.get("code"), 40) if isinstance(c, dict) and _text(c.get("code")) else court},
                kind="decision", decision_id=did, relief=_text(data.get("relief"), 40) or "?",
                batch_id=_text(data.get("batch_id")), levels=levels, replay_of=_header(headers, replay_header))


def bundle_of(manifest: Any, key: str) -> Bundle | None:
    """A stored manifest as a Bundle, or None if it is not one (a test, a half-written file)."""
    try:
        decisions = tuple((str(d["decision_id"]), str(d.get("relief") or "?"), d.get("exhibit"))
                          for d in manifest["decisions"])
        n = manifest.get("expected_count")
        return Bundle(str(manifest["bundle_id"]), str(manifest["court_code"]), str(manifest["batch_id"]),
                      int(manifest.get("volume") or 1), str(manifest.get("created_at") or ""), key, decisions,
                      n if isinstance(n, int) else None, manifest.get("closed_by"))
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


# -- the accounting -----------------------------------------------------------------------------
@dataclass
class Tally:
    received: int = 0  # decision records read (duplicates and dead-lettered ones included)
    granted: int = 0  # distinct decisions granted relief
    filed: int = 0
    pending: int = 0
    not_filed: int = 0  # distinct decisions not granted
    dead_lettered: int = 0  # distinct origins still dead
    missing: int = 0
    doubled: int = 0
    expected_mismatch: int = 0
    filed_not_granted: int = 0
    unaccounted: int = 0  # records neither used, dead-lettered nor pending
    duplicates: int = 0  # records of a decision_id already counted
    replayed: int = 0  # origins dead-lettered, replayed, then accepted
    rejected_records: int = 0  # records read whose position the DLQ names

    def add(self, other: "Tally") -> None:
        for k in COUNTS:
            setattr(self, k, getattr(self, k) + getattr(other, k))


@dataclass
class Problem:
    kind: str  # one of FAILING
    court: str
    decision_id: str | None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Accounting:
    complete: bool = True  # the whole topic was read (not a time or offset range)
    courts: dict[str, Tally] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)
    dead: dict[str, Letter] = field(default_factory=dict)  # origin -> its latest dead letter
    reliefs: dict[tuple[str, str], Counter] = field(default_factory=dict)  # (court, relief) -> counts
    levels: dict[str, Counter] = field(default_factory=dict)  # conviction level -> counts
    filed_at: Counter = field(default_factory=Counter)  # created_at hour (YYYY-MM-DDTHH) -> decisions
    batches: list[dict[str, Any]] = field(default_factory=list)  # expected_count comparisons that differ
    outside_range: int = 0

    def tally(self, court: str) -> Tally:
        return self.courts.setdefault(court, Tally())

    @property
    def total(self) -> Tally:
        t = Tally()
        for c in self.courts.values():
            t.add(c)
        return t

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, kind: str, court: str, decision_id: str | None, **detail) -> None:
        self.problems.append(Problem(kind, court, decision_id, detail))
        if kind in COUNTS:
            setattr(self.tally(court), kind, getattr(self.tally(court), kind) + 1)

    def count(self, table: dict, key, what: str, n: int = 1) -> None:
        table.setdefault(key, Counter())[what] += n

    def to_json(self) -> dict[str, Any]:
        def ids(kind: str, court: str | None = None) -> list:
            return [p.decision_id or p.detail.get("position") or p.detail.get("batch_id") for p in self.problems
                    if p.kind == kind and (court is None or p.court == court)]

        def block(t: Tally, court: str | None) -> dict[str, Any]:
            return {**asdict(t), "problems": {k: ids(k, court) for k in FAILING if ids(k, court)}}

        return {"ok": self.ok, "complete": self.complete, "total": block(self.total, None),
                "courts": {c: block(t, c) for c, t in sorted(self.courts.items())},
                "problems": [{"kind": p.kind, "court": p.court, "decision_id": p.decision_id, **p.detail}
                             for p in self.problems],
                "warnings": self.warnings, "pending": self.pending,
                "dead_letters": dead_letters(self.dead.values()),
                "reliefs": {f"{c}/{r}": dict(n) for (c, r), n in sorted(self.reliefs.items())},
                "levels": {k: dict(v) for k, v in sorted(self.levels.items())},
                "filed_over_time": dict(sorted(self.filed_at.items())), "batches": self.batches,
                "outside_range": self.outside_range}


def dead_letters(letters: Iterable[Letter]) -> dict[str, dict[str, Any]]:
    """By reason: records (distinct origins), their decision ids (where readable) and origins."""
    out: dict[str, dict[str, Any]] = {}
    for d in sorted(letters, key=lambda x: x.origin):
        r = out.setdefault(d.reason, {"records": 0, "decision_ids": [], "origins": [], "message": d.message})
        r["records"] += 1
        r["origins"].append(d.origin)
        if d.decision_id:
            r["decision_ids"].append(d.decision_id)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["records"]))


def behind(committed: dict[int, int | None], partition: int, offset: int) -> bool:
    """Has the group committed past this record (so its worker is done with it)?"""
    c = committed.get(partition)
    return c is not None and offset < c


def account(reads: Iterable[Read], letters: Iterable[Letter], committed: dict[int, int | None],
            bundles: Iterable[Bundle], ledger: Iterable[dict], complete: bool = True,
            queued: dict[str, str] | None = None) -> Accounting:
    """`queued`: decision id -> bundle id of the batches sealed and waiting on the work topic
    (the work markers, `_work/`): pending, not missing, although the group committed past them."""
    acc = Accounting(complete=complete)
    letters = list(letters)
    accepted, closes, resolved, read_at = _classify(acc, reads, letters, committed)
    _dead(acc, letters, resolved, read_at, complete)
    filed_in: dict[str, list[Bundle]] = {}
    for b in bundles:
        for did, _relief, _exhibit in b.decisions:
            filed_in.setdefault(did, []).append(b)
        acc.filed_at[b.created_at[:13] or "?"] += len(b.decisions)
    ledger = list(ledger)
    by_ledger = {d: e.get("bundle_id") for e in ledger for d in e.get("decisions", [])}
    _decisions(acc, accepted, filed_in, by_ledger, committed, queued or {})
    _filed_unread(acc, accepted, filed_in, complete)
    _expected(acc, accepted.values(), closes, letters)
    stored = {b.bundle_id for bs in filed_in.values() for b in bs}
    for e in ledger:
        if e.get("bundle_id") not in stored and any(d in accepted or complete for d in e.get("decisions", [])):
            acc.warnings.append({"kind": "ledger_without_manifest", "court": e.get("court_code"),
                                 "bundle_id": e.get("bundle_id"), "decisions": len(e.get("decisions", []))})
    recorded = {e.get("bundle_id") for e in ledger}
    for bid in sorted(stored - recorded):
        acc.warnings.append({"kind": "manifest_without_ledger", "bundle_id": bid,
                             "why": "stored; its notification or ledger entry may not be written yet"})
    return acc


def _classify(acc: Accounting, reads: Iterable[Read], letters: list[Letter], committed: dict[int, int | None]):
    """Walk the records in log order: dead-lettered, unreadable, duplicate, or a decision's first record."""
    by_source = {d.source: d for d in letters if d.source is not None}
    accepted: dict[str, Read] = {}
    closes: dict[tuple[str, str], Read] = {}
    resolved: set[str] = set()
    read_at: set[tuple[int, int]] = set()
    for r in reads:
        read_at.add((r.partition, r.offset))
        if r.kind == "closed" and (r.partition, r.offset) not in by_source:
            if not r.own_marker and r.expected_count is not None and r.batch_id:
                closes[(r.court, r.batch_id)] = r
            continue
        t = acc.tally(r.court)
        if r.kind != "closed":
            t.received += 1
        if (r.partition, r.offset) in by_source:
            t.rejected_records += r.kind != "closed"
            continue
        if r.kind == "unreadable":
            if behind(committed, r.partition, r.offset):
                acc.problem("unaccounted", r.court, None, position=f"{r.partition}:{r.offset}",
                            why="a record neither used nor dead-lettered, although the group committed past it")
            else:
                acc.pending.append({"decision_id": None, "court": r.court, "position": f"{r.partition}:{r.offset}"})
            continue
        if r.replay_of:
            resolved.add(r.replay_of)
        if r.decision_id in accepted:
            t.duplicates += 1
            continue
        accepted[r.decision_id] = r
    return accepted, closes, resolved, read_at


def _dead(acc: Accounting, letters: list[Letter], resolved: set[str], read_at: set, complete: bool) -> None:
    """Dead letters by origin: the latest copy of each record, still dead unless replayed and accepted."""
    for d in letters:
        if not complete and d.source not in read_at:
            continue
        acc.dead[d.origin] = d
    for origin in list(acc.dead):
        d = acc.dead[origin]
        if origin in resolved:
            del acc.dead[origin]
            acc.tally(d.court).replayed += 1
        else:
            acc.tally(d.court).dead_lettered += 1


def _decisions(acc: Accounting, accepted: dict[str, Read], filed_in: dict[str, list[Bundle]],
               by_ledger: dict[str, str], committed: dict[int, int | None], queued: dict[str, str]) -> None:
    for did, r in accepted.items():
        t = acc.tally(r.court)
        bundles = filed_in.get(did, [])
        granted = r.relief in GRANTED
        state = "not_filed"
        if granted:
            t.granted += 1
            state = ("filed" if bundles else "pending" if did in queued or not behind(committed, r.partition, r.offset)
                     else "missing")
            if state == "filed":
                t.filed += 1
            elif state == "pending":
                t.pending += 1
                acc.pending.append({"decision_id": did, "court": r.court, "batch_id": r.batch_id,
                                    "position": f"{r.partition}:{r.offset}", "committed": committed.get(r.partition),
                                    "queued_in": queued.get(did)})
            else:
                acc.problem("missing", r.court, did, batch_id=r.batch_id, position=f"{r.partition}:{r.offset}",
                            ledger_bundle=by_ledger.get(did),
                            why=("the ledger names bundle %s but its manifest is not stored" % by_ledger[did])
                            if did in by_ledger else "granted, committed past, and in no stored manifest")
        else:
            t.not_filed += 1
            if bundles:
                acc.problem("filed_not_granted", r.court, did, relief=r.relief,
                            bundles=sorted({b.bundle_id for b in bundles}))
        if len({b.bundle_id for b in bundles}) > 1:
            acc.problem("doubled", r.court, did, bundles=sorted({b.bundle_id for b in bundles}))
        acc.count(acc.reliefs, (r.court, r.relief), "received")
        acc.count(acc.reliefs, (r.court, r.relief), state)
        for level in r.levels:
            acc.count(acc.levels, level, "received")
            acc.count(acc.levels, level, state)


def _filed_unread(acc: Accounting, accepted: dict[str, Read], filed_in: dict[str, list[Bundle]],
                  complete: bool) -> None:
    """Decisions in stored manifests that no accepted record granted."""
    for did, bundles in sorted(filed_in.items()):
        if did in accepted:
            continue
        if not complete:
            acc.outside_range += 1
            continue
        ids = sorted({b.bundle_id for b in bundles})
        acc.problem("filed_not_granted", bundles[0].court, did, bundles=ids,
                    why="filed, but no record of the decisions topic granted it (or every one was dead-lettered)")
        if len(ids) > 1:
            acc.problem("doubled", bundles[0].court, did, bundles=ids)


def _expected(acc: Accounting, accepted: Iterable[Read], closes: dict[tuple[str, str], Read],
              letters: list[Letter]) -> None:
    """Upstream's expected_count against the distinct decisions received for the batch."""
    received: dict[tuple[str, str], set[str]] = {}
    for r in accepted:
        if r.batch_id:
            received.setdefault((r.court, r.batch_id), set()).add(r.decision_id)
    for d in letters:
        if d.batch_id and d.decision_id:
            received.setdefault((d.court, d.batch_id), set()).add(d.decision_id)
    for (court, batch_id), close in sorted(closes.items()):
        got = len(received.get((court, batch_id), ()))
        if got == close.expected_count:
            continue
        row = {"court": court, "batch_id": batch_id, "expected": close.expected_count, "received": got}
        acc.batches.append(row)
        if got < close.expected_count:
            acc.problem("expected_absent", court, None, batch_id=batch_id, expected=close.expected_count,
                        received=got, absent=close.expected_count - got)
        else:
            acc.warnings.append({"kind": "expected_exceeded", **row})
        acc.tally(court).expected_mismatch += 1


def letter_of(d: Any, decisions_topic: str) -> Letter:
    """A service.dlq.DeadLetter as a Letter: its source position in the decisions topic (from its
    headers) and, where its bytes still read as a decision, the decision_id and batch_id."""
    from service import broker

    h = {k: v for k, v in d.headers}
    part, off = (_header(d.headers, n) or "" for n in (broker.DLQ_PARTITION, broker.DLQ_OFFSET))
    source = (int(part), int(off)) if d.source == decisions_topic and part.isdigit() and off.isdigit() else None
    r = summarize(0, 0, 0, d.key, d.value, [(k, v) for k, v in h.items() if not k.startswith("reliefdocs.")])
    court = r.court if r.kind != "unreadable" else (d.key.decode("utf-8", "replace")[:40] if d.key else "?")
    return Letter(d.origin, source, d.reason, d.message, court, r.decision_id, r.batch_id, d.position)
