"""Commands for operations: `reliefdocs lag` and `verify` (the dead-letter commands are in
service/dlq.py), and what they share: reading a topic, a progress bar, `safe_text`.

They print what a person running Kafka consumers expects (like kafka-consumer-groups
--describe), never personal data: dead letters are described by their reason, message
(which names fields, not values) and position, never by their content. Long commands show
a progress bar on a terminal and plain lines otherwise. Whatever a record, a broker or a store
supplies is printed through `safe_text`, so it cannot drive the operator's terminal.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
from typing import Iterator
from urllib.parse import urlparse

from kafka.structs import TopicPartition

from service import broker, papers
from service.config import Settings
from service.text import safe_text  # noqa: F401  (the dlq commands print through it too)


class Progress:
    """A progress bar on a terminal; a line every 10 % otherwise."""

    def __init__(self, total: int, what: str, out=sys.stderr):
        self.total, self.what, self.out, self.n, self.last = max(total, 1), what, out, 0, -1
        self.tty = hasattr(out, "isatty") and out.isatty()

    def step(self, k: int = 1) -> None:
        self.n += k
        pct = min(100, self.n * 100 // self.total)
        if self.tty:
            bar = "#" * (pct // 4) + "." * (25 - pct // 4)
            self.out.write(f"\r{self.what} [{bar}] {self.n}/{self.total}")
            self.out.flush()
        elif pct // 10 != self.last // 10:
            self.out.write(f"{self.what}: {self.n}/{self.total} ({pct}%)\n")
        self.last = pct

    def done(self) -> None:
        if self.tty:
            self.out.write("\n")


def _read_all(settings: Settings, topic: str) -> Iterator:
    """Every record of a topic, from the beginning to its current end."""
    c = broker.consumer(settings, group_id=None, client_id="reliefdocs-ops", enable_auto_commit=False)
    try:
        parts = c.partitions_for_topic(topic)
        if not parts:
            return
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        quiet = 0
        while quiet < 3:
            batch = c.poll(timeout_ms=700)
            quiet = 0 if batch else quiet + 1
            for recs in batch.values():
                yield from recs
            if all(c.highwater(tp) is not None and c.position(tp) >= c.highwater(tp) for tp in tps):
                break
    finally:
        c.close()


# -- lag ----------------------------------------------------------------------------------
def lag(settings: Settings, as_json: bool = False, out=sys.stdout) -> int:
    """Committed, end and lag per partition of the decisions topic and of the work topic (the
    sealed batches waiting to be filed), with the member that owns each."""
    group = settings.group
    topics = [settings.decisions_topic, settings.work_topic]
    c = broker.consumer(settings, group_id=group, client_id="reliefdocs-lag", enable_auto_commit=False)
    try:
        tps = [TopicPartition(t, p) for t in topics for p in sorted(c.partitions_for_topic(t) or [])]
        ends = c.end_offsets(tps, timeout_ms=10000) if tps else {}
        committed = {tp: c.committed(tp, timeout_ms=10000) for tp in tps}
    finally:
        c.close()
    ends = _true_ends(settings, tps, ends)
    members = _members(settings, group)
    rows = []
    for tp in tps:
        end, done = ends.get(tp), committed.get(tp)
        rows.append({"topic": tp.topic, "partition": tp.partition, "committed": done, "end": end,
                     "lag": None if end is None else end - (done or 0),
                     "member": members.get((tp.topic, tp.partition), "-") if isinstance(members, dict) else "-"})
    if as_json:
        decisions = ({p: m for (t, p), m in members.items() if t == settings.decisions_topic}
                     if isinstance(members, dict) else None)
        print(json.dumps({"group": group, "partitions": rows, "members": decisions}, indent=2), file=out)
        return 0
    for topic in topics:
        mine = [r for r in rows if r["topic"] == topic]
        print(f"GROUP {group}  TOPIC {topic}", file=out)
        print(f"{'PARTITION':>9} {'COMMITTED':>10} {'END':>10} {'LAG':>8}  MEMBER", file=out)
        for r in mine:
            print(f"{r['partition']:>9} {r['committed'] if r['committed'] is not None else '-':>10} "
                  f"{r['end'] if r['end'] is not None else '-':>10} {r['lag'] if r['lag'] is not None else '-':>8}  "
                  f"{r['member']}", file=out)
        print(f"total lag {sum(r['lag'] or 0 for r in mine)}", file=out)
    if not isinstance(members, dict):
        print(f"members: {members}", file=out)
    return 0


def _true_ends(settings: Settings, tps: list, ends: dict) -> dict:
    """Fetch each partition's high watermark as well: some brokers (tansu) answer ListOffsets
    with the base offset of the last batch + 1; the high watermark of a fetch is exact."""
    if not tps:
        return ends
    c = broker.consumer(settings, group_id=None, client_id="reliefdocs-lag-hw", enable_auto_commit=False)
    try:
        c.assign(tps)
        for tp in tps:
            c.seek(tp, max(0, (ends.get(tp) or 1) - 1))
        c.poll(timeout_ms=1500, max_records=1)
        return {tp: max(x for x in (ends.get(tp), c.highwater(tp)) if x is not None) if (
            ends.get(tp) is not None or c.highwater(tp) is not None) else None for tp in tps}
    finally:
        c.close()


def _members(settings: Settings, group: str) -> dict[tuple[str, int], str] | str:
    try:
        admin = broker.admin(settings)
        try:
            desc = admin.describe_groups([group])
        finally:
            admin.close()
    except Exception as exc:  # tansu answers with an ACL operation kafka-python does not know
        return f"unavailable (the broker did not describe the group: {type(exc).__name__})"
    out: dict[tuple[str, int], str] = {}
    for g in desc:
        for m in getattr(g, "members", []) or []:
            assignment = getattr(m, "member_assignment", None)
            for t, parts in getattr(assignment, "assignment", []) or []:
                for p in parts:
                    out[(t, p)] = safe_text(f"{m.client_id}/{m.client_host}", 120)
    return out


# -- verify ---------------------------------------------------------------------------------
def verify(settings: Settings, manifest_uri: str, out=sys.stdout) -> int:
    from pypdf import PdfReader

    from service.events import Schemas
    from service.store import FileStore, S3Store

    u = urlparse(manifest_uri)
    if u.scheme == "s3":
        store = S3Store(f"s3://{u.netloc}", checksum_when_required=settings.s3_checksum_when_required,
                        expected_owner=settings.s3_expected_bucket_owner)
        key = u.path.lstrip("/")
    elif u.scheme == "file":
        store, key = FileStore("file:///"), u.path.lstrip("/")
    else:
        print(f"{safe_text(manifest_uri, 300)}: not an s3:// or file:// URI", file=sys.stderr)
        return 2
    raw = store.get(key)
    if raw is None:
        print(f"FAIL manifest not found: {safe_text(manifest_uri, 300)}", file=out)
        return 1
    manifest = json.loads(raw)
    folder = manifest["documents"][0]["key"].rsplit("/", 1)[0] + "/manifest.json"  # {court}/{batch}/{bundle}/
    prefix = key[: -len(folder)]
    problems: list[str] = []
    schema = Schemas(settings.schemas_dir).validator("manifest.v1")
    problems += [f"manifest: {e.message[:120]}" for e in schema.iter_errors(manifest)]
    progress = Progress(len(manifest["documents"]), "verify")
    for d in manifest["documents"]:
        body = store.get(prefix + d["key"])
        progress.step()
        if body is None:
            problems.append(f"{d['key']}: missing")
            continue
        if hashlib.sha256(body).hexdigest() != d["sha256"]:
            problems.append(f"{d['key']}: sha256 differs from the manifest")
        if len(body) != d["bytes"]:
            problems.append(f"{d['key']}: {len(body)} bytes, manifest says {d['bytes']}")
        if d["media_type"] == "application/pdf":
            try:
                reader = PdfReader(io.BytesIO(body))
                if d.get("pages") is not None and len(reader.pages) != d["pages"]:
                    problems.append(f"{d['key']}: {len(reader.pages)} pages, manifest says {d['pages']}")
                if d["role"] in {v.role for v in papers.VARIANTS}:
                    shown = papers.in_variant(d["role"])  # one bookmark per paper the bundle holds
                    parts = [x for x in manifest["documents"] if x["role"] in shown and x["media_type"] == d["media_type"]]
                    if len(reader.outline) != len(parts):
                        problems.append(f"{d['key']}: {len(reader.outline)} bookmarks for {len(parts)} documents")
            except Exception as exc:
                problems.append(f"{d['key']}: not a readable PDF ({type(exc).__name__})")
    progress.done()
    pdfs = {d["key"]: d for d in manifest["documents"] if d["media_type"] == "application/pdf"}
    for paper in manifest.get("efiling", []):  # each paper filed is a stored PDF with the pages it says
        stored = pdfs.get(paper["key"])
        if stored is None or stored.get("pages") != paper["pages"]:
            problems.append(f"efiling: {paper['key']} is not a stored PDF of {paper['pages']} pages")
    for p in problems:
        print(f"FAIL {safe_text(p, 400)}", file=out)
    what = safe_text(f"bundle {manifest['bundle_id']} ({manifest['court_code']} {manifest['batch_id']} volume "
                     f"{manifest['volume']}", 300)
    print(f"{'OK' if not problems else 'FAILED'}: {what}, {len(manifest['decisions'])} decisions, "
          f"{len(manifest['documents'])} objects)", file=out)
    return 0 if not problems else 1
