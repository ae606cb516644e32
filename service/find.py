"""`reliefdocs find DECISION_ID | --case CASE_NUMBER`: where a decision is, or why it is not filed.

Filed decisions are found in the ledger (one entry per bundle, `_ledger/{court}/{bundle}.json`,
with the decision ids, their case numbers and the manifest's key: service/ledger.py), never by
reading PDFs; the bundle's manifest then gives the exhibit that lists the decision and the page
of bundle.pdf where that exhibit begins (the row's own page is not recorded), and the
notifications topic whether the bundle was announced. A decision not in the ledger is looked
for in the decisions topic and the DLQ: not eligible or review required (never filed),
dead-lettered (reason, message, position), pending (in a batch the group has not committed
past), or not filed although committed past (a problem: `reliefdocs reconcile` says more).
Output names decision, bundle and batch ids, never a name or any other value of a record; a
case number asked for is not printed back.
"""

from __future__ import annotations

import io
import json
import sys
from typing import Any

from service import campaign, reconcile
from service.config import Settings
from service.events import GRANTED, Rejected, to_cloudevent
from service.ops import _read_all
from service.text import safe_text


def lookup(entries: list[dict], decision_id: str | None, case: str | None) -> list[tuple[dict, str]]:
    """(ledger entry, decision_id) of every filed decision with this id or case number."""
    hits = []
    for e in entries:
        cases = e.get("cases") if isinstance(e.get("cases"), list) else [None] * len(e["decisions"])
        for did, number in zip(e["decisions"], cases):
            if did == decision_id or (case is not None and number == case):
                hits.append((e, did))
    return hits


def manifest_key(entry: dict) -> str:
    """The manifest's key: recorded in the entry, or (entries written before it was) derived."""
    if isinstance(entry.get("manifest"), str):
        return entry["manifest"]
    from service.flush import batch_folder

    return f"{entry['court_code']}/{batch_folder(entry['batch_id'])}/{entry['bundle_id']}/manifest.json"


def placed(entry: dict, did: str, manifest: dict | None, uri: str, announced: bool | None) -> dict[str, Any]:
    """Where a filed decision is: bundle, exhibit paper and its first page, manifest, announcement."""
    answer = {"decision_id": did, "status": "filed", "court": entry.get("court_code"), "bundle_id": entry["bundle_id"],
              "batch_id": entry.get("batch_id"), "volume": entry.get("volume"), "manifest_uri": uri,
              "announced": announced}
    if manifest is None:
        return {**answer, "status": "missing",
                "why": "the ledger names this bundle but its manifest is not stored: run reliefdocs reconcile"}
    row = next((d for d in manifest.get("decisions", []) if isinstance(d, dict) and d.get("decision_id") == did), {})
    letter = row.get("exhibit")
    docs = [d for d in manifest.get("documents", []) if isinstance(d, dict)]
    old = next((d for d in docs if d.get("role") == "exhibit"
                and str(d.get("key", "")).endswith(f"/exhibit-{str(letter).lower()}.pdf")), None) if letter else None
    lodged = next((p for p in manifest.get("efiling", []) if isinstance(p, dict)
                   and p.get("role") == "lodged_record"), None) if letter else None
    answer.update(relief=row.get("relief"), exhibit=letter)
    if old is not None:  # a manifest written before papers were filed apart
        answer.update(paper=old.get("key"), first_page=old.get("first_page"), pages=old.get("pages"),
                      page_note="the page of bundle.pdf where the exhibit begins; the row's own page is not recorded")
    elif lodged is not None:
        answer.update(paper=lodged.get("key"), first_page=1, pages=lodged.get("pages"),
                      page_note=f"exhibit {letter} of the record lodged conditionally under seal (its public redacted "
                                "rows are in the motion); the row's own page is not recorded")
    return answer


def unfiled(did: str, reads: list[reconcile.Read], letters: list[reconcile.Letter],
            committed: dict[int, int | None], queued: dict[str, str] | None = None) -> dict[str, Any]:
    """Why a decision that no ledger entry names is not filed, from the log, the work markers
    (`queued`: decision id -> bundle id of a batch waiting on the work topic) and the DLQ."""
    dead_at = {d.source for d in letters if d.source is not None}
    accepted = [r for r in reads if r.decision_id == did and (r.partition, r.offset) not in dead_at]
    if accepted:
        r = accepted[0]
        base = {"decision_id": did, "court": r.court, "batch_id": r.batch_id, "position": f"{r.partition}:{r.offset}"}
        if r.relief not in GRANTED:
            return {**base, "status": "not_filed", "relief": r.relief,
                    "why": f"relief is {r.relief}: counted, never filed"}
        if did in (queued or {}):
            return {**base, "status": "pending", "queued_in": queued[did],
                    "why": f"granted, in batch {r.batch_id or '(the court’s implicit batch)'}, queued for filing as "
                           f"bundle {queued[did]} (the work topic)"}
        if not reconcile.behind(committed, r.partition, r.offset):
            return {**base, "status": "pending", "committed": committed.get(r.partition),
                    "why": f"granted, in batch {r.batch_id or '(the court’s implicit batch)'} not filed yet: "
                           "the group has not committed past it"}
        return {**base, "status": "missing",
                "why": "granted, the group committed past it, and no ledger entry names it: run reliefdocs reconcile"}
    dead = [d for d in letters if d.decision_id == did]
    if dead:
        d = dead[-1]
        return {"decision_id": did, "court": d.court, "status": "dead_lettered", "reason": d.reason,
                "message": d.message, "origin": d.origin, "dlq_position": d.position, "copies": len(dead)}
    return {"decision_id": did, "status": "not_found", "why": "in no ledger entry, the decisions topic or the DLQ"}


def _case_of(key, value, headers) -> str | None:
    try:
        data = to_cloudevent(key, value, [(k, v) for k, v in headers or () if not k.startswith("reliefdocs.")])
        data = data.get("data") if isinstance(data, dict) else None
        case = data.get("case") if isinstance(data, dict) else None
        return case.get("number") if isinstance(case, dict) else None
    except (Rejected, ValueError, TypeError, AttributeError):
        return None


def from_log(settings: Settings, decision_id: str | None, case: str | None) -> list[dict[str, Any]]:
    """Answers for decisions no ledger entry names: read the decisions topic and the DLQ."""
    from service import dlq

    committed = campaign.committed(settings)
    reads, ids = [], {decision_id} if decision_id else set()
    for rec in _read_all(settings, settings.decisions_topic):
        r = reconcile.summarize(rec.partition, rec.offset, rec.timestamp, rec.key, rec.value, rec.headers)
        if r.decision_id and (r.decision_id in ids or (case is not None and _case_of(rec.key, rec.value, rec.headers) == case)):
            ids.add(r.decision_id)
            reads.append(r)
    letters = []
    for d in dlq.read(settings):
        letter = reconcile.letter_of(d, settings.decisions_topic)
        if letter.decision_id and (letter.decision_id in ids or (case is not None and _case_of(d.key, d.value, d.headers) == case)):
            ids.add(letter.decision_id)
            letters.append(letter)
    if not ids:
        return [{"decision_id": None, "status": "not_found",
                 "why": "no decision with this case number in the ledger, the decisions topic or the DLQ"}]
    from service.store import open_store

    waiting = campaign.queued(open_store(settings), out=io.StringIO())
    return [unfiled(did, reads, letters, committed, waiting) for did in sorted(ids)]


def announced(settings: Settings, bundle_ids: set[str]) -> set[str]:
    """Which of these bundles have a notification on the notifications topic."""
    seen = set()
    for rec in _read_all(settings, settings.notifications_topic):
        try:
            seen.add(json.loads(rec.value).get("id"))
        except (ValueError, TypeError, AttributeError):
            continue
    return bundle_ids & seen


def find(settings: Settings, decision_id: str | None, case: str | None, as_json: bool = False,
         out=sys.stdout) -> int:
    from service.store import open_store

    store = open_store(settings)
    entries = campaign.ledger_entries(store, out=io.StringIO())
    hits = lookup(entries, decision_id, case)
    answers = []
    if not hits:  # not in the index (or an entry written before it kept case numbers): the log says
        answers = from_log(settings, decision_id, case)
        hits = [h for a in answers if a["decision_id"] for h in lookup(entries, a["decision_id"], None)]
        answers = [a for a in answers if not any(did == a["decision_id"] for _, did in hits)]
    if hits:
        told = announced(settings, {e["bundle_id"] for e, _ in hits})
        for e, did in hits:
            key = manifest_key(e)
            raw = store.get(key)
            answers.append(placed(e, did, None if raw is None else json.loads(raw), store.uri(key),
                                  e["bundle_id"] in told))
    if as_json:
        print(json.dumps(answers, indent=2), file=out)
    else:
        for a in answers:
            print(describe(a), file=out)
    return 0 if all(a["status"] not in ("missing", "not_found") for a in answers) else 1


def describe(a: dict[str, Any]) -> str:
    s = lambda v, n=200: safe_text(v, n)
    head = f"{s(a.get('decision_id') or '-', 130)}: "
    if a["status"] == "filed":
        lines = [head + f"filed in bundle {s(a['bundle_id'])} (court {s(a['court'], 40)}, batch {s(a['batch_id'])}, "
                        f"volume {a['volume']})", f"  manifest: {s(a['manifest_uri'], 600)}"]
        if a.get("paper"):
            lines.append(f"  paper: exhibit {s(a['exhibit'], 4)} ({s(a['paper'], 600)}), which begins on page "
                         f"{a['first_page']} of bundle.pdf ({a['pages']} pages); the row's own page is not recorded")
        lines.append("  announced: " + ("yes (a relief.filing.bundle.ready.v1 event with this bundle id)"
                                        if a["announced"] else "no notification seen on the notifications topic yet"))
        return "\n".join(lines)
    if a["status"] == "dead_lettered":
        return head + (f"dead-lettered: {s(a['reason'], 60)} ({s(a['message'], 300)}); first read at "
                       f"{s(a['origin'])}, DLQ position {a['dlq_position']}, {a['copies']} dead letter(s)")
    return head + f"{a['status'].replace('_', ' ')}: {s(a['why'], 300)}" + (
        f" (position {a['position']})" if a.get("position") else "")
