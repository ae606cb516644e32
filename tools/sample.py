"""Synthetic eligibility decisions (fictional people) as CloudEvents JSON lines.

`python -m tools.sample --decisions 60 --out sample.jsonl` writes decisions for two courts:
an explicit batch closed by a batch-closed event, and decisions without batch_id that the
service batches itself. Some names are hostile on purpose (& < > quotes, template syntax,
right-to-left text, emoji): they must come out literally in the PDFs.
"""

from __future__ import annotations

import argparse
import json
import random
from datetime import date, timedelta
from pathlib import Path

COURTS = {
    "LA": ("Superior Court of California, County of Los Angeles", "Los Angeles"),
    "SF": ("Superior Court of California, County of San Francisco", "San Francisco"),
    "SD": ("Superior Court of California, County of San Diego", "San Diego"),
    "ALA": ("Superior Court of California, County of Alameda", "Alameda"),
}
FIRST = ["Maria", "José", "Aiyana", "Wei", "Tomás", "Keisha", "Nguyen", "Olga", "Dmitri", "Fatima", "Luis", "Grace"]
LAST = ["Gómez", "Smith", "Nakamura", "Okafor", "Ramírez", "Johnson", "Haddad", "Kowalski", "Tran", "Begay"]
HOSTILE = [
    ("O'Brien & <Sons>", 'D"Angelo'),
    ("{{ 7*7 }}", "{% if true %}Evaluated{% endif %}"),
    ("محمد", "عبد الله"),
    ("Zoë 🌿", "Brontë-Łukasz"),
    ("{_{ x }_}", "</w:t><w:p>"),
]
STATUTES = [("HS 11357(a)", "felony"), ("HS 11357(b)", "misdemeanor"), ("HS 11358", "felony"),
            ("HS 11359", "felony"), ("HS 11360(a)", "felony"), ("HS 11360(b)", "misdemeanor")]
# A decision is consistent (schemas/README.md): a reduction needs a felony, a redesignation a misdemeanor.
STATUTES_FOR = {"reduce_to_misdemeanor": [s for s in STATUTES if s[1] == "felony"],
                "redesignate_infraction": [s for s in STATUTES if s[1] == "misdemeanor"]}
RELIEF_BY_LEVEL = {"felony": ["dismiss_and_seal", "reduce_to_misdemeanor"], "misdemeanor": ["dismiss_and_seal",
                                                                                            "redesignate_infraction"]}


def decision(rng: random.Random, n: int, court: str, batch_id: str | None, relief: str | None = None,
             hostile: bool = False) -> dict:
    name, county = COURTS[court]
    statute, level = rng.choice(STATUTES_FOR.get(relief, STATUTES))
    first, last = rng.choice(HOSTILE) if hostile else (rng.choice(FIRST), rng.choice(LAST))
    age_days = 18 * 366 + rng.randrange(20000)  # 18 to 73 years old on the day of disposition
    dispo = date(1985, 1, 1) + timedelta(days=rng.randrange(11000))
    dob = dispo - timedelta(days=age_days)
    data = {
        "decision_id": f"d-{court}-{n:06d}",
        "decided_at": "2026-11-20T17:03:00Z",
        "court": {"code": court, "name": name, "county": county},
        "case": {"number": f"{court}{rng.randrange(100000, 999999)}", "filed_on": str(dispo - timedelta(days=30))},
        "defendant": {"first_name": first, "middle_name": None, "last_name": last, "suffix": None,
                      "date_of_birth": str(dob), "cii": f"A{rng.randrange(10**7, 10**8)}"},
        "convictions": [{"statute": statute, "level": level, "disposition_date": str(dispo)}],
        "relief": relief or rng.choice(RELIEF_BY_LEVEL[level]),
        "legal_basis": ["HS 11361.9"],
        "identified_by": ("doj_list", "county_search", "additive")[n % 3],
    }
    if n % 5 == 2:  # a second count of the same kind in the same case: the exhibits list one row per count
        data["convictions"].append(dict(data["convictions"][0]))
    if batch_id:
        data["batch_id"] = batch_id
    return event("relief.eligibility.decided.v1", f"evt-{court}-{n:06d}", data)


def event(etype: str, eid: str, data: dict) -> dict:
    return {"specversion": "1.0", "id": eid, "source": "urn:example:eligibility", "type": etype,
            "time": "2026-11-20T17:03:00Z", "datacontenttype": "application/json", "data": data}


def closed(court: str, batch_id: str, expected: int | None) -> dict:
    return event("relief.batch.closed.v1", f"close-{court}-{batch_id}",
                 {"court_code": court, "batch_id": batch_id, "expected_count": expected})


def generate(decisions: int, courts: list[str], seed: int = 7, hostile_every: int = 9,
             explicit_courts: tuple[str, ...] = ("LA",), not_filed_every: int = 13) -> list[dict]:
    """Decisions spread over courts; courts in explicit_courts use one batch_id and get a
    batch-closed event at the end; the others leave batching to the service."""
    rng = random.Random(seed)
    out: list[dict] = []
    counts = {c: 0 for c in courts}
    for i in range(decisions):
        court = courts[i % len(courts)]
        batch = f"{court}-2026-11-24-A" if court in explicit_courts else None
        relief = None
        if not_filed_every and i % not_filed_every == not_filed_every - 1:
            relief = rng.choice(["not_eligible", "review_required"])
        out.append(decision(rng, i, court, batch, relief, hostile=hostile_every and i % hostile_every == 3))
        counts[court] += 1
    for court in courts:
        if court in explicit_courts:
            out.append(closed(court, f"{court}-2026-11-24-A", counts[court]))
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--decisions", type=int, default=60)
    p.add_argument("--courts", default="LA,SF")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    rows = generate(a.decisions, a.courts.split(","), a.seed)
    a.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(rows)} events to {a.out}")


if __name__ == "__main__":
    main()
