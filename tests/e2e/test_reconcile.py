"""Issue 17 acceptance, on the real broker, S3 API and LibreOffice: after a run with duplicates,
bad records and a batch left open, `reliefdocs reconcile --json` accounts for what was published
and exits 0; `find` answers for a filed, a not-eligible and a dead-lettered decision; the report
opens in headless Chromium without a console message and its charts render; and once a bundle's
manifest is deleted, reconcile exits 1 naming that bundle's decisions as missing."""

from __future__ import annotations

import json
import random
import struct
import subprocess
import zlib

from tests.e2e.conftest import EXE
from tools import chromium, sample


def cli(world, *args):
    return subprocess.run([EXE, *args], env=world.env, capture_output=True, text=True, timeout=300)


def publish_campaign(world) -> dict:
    sent = sample.generate(24, ["LA", "SF"], seed=17, hostile_every=5)
    decisions = [e for e in sent if e["type"].endswith("decided.v1")]
    bad = json.loads(json.dumps(next(e for e in decisions if e["data"]["court"]["code"] == "SF")))
    bad["data"]["decision_id"] = "bad-1"
    del bad["data"]["convictions"]  # schema_violation
    conflict = json.loads(json.dumps(decisions[1]))
    conflict["data"]["legal_basis"] = ["HS 11361.8"]  # same decision_id, other content: conflicting_duplicate
    dups = [decisions[0], decisions[3]]  # identical redeliveries
    world.publish(sent + dups + [bad, conflict, (b"LA", b"{broken")])
    granted = [e["data"]["decision_id"] for e in decisions if e["data"]["relief"] in (
        "dismiss_and_seal", "reduce_to_misdemeanor", "redesignate_infraction")]
    not_granted = [e["data"]["decision_id"] for e in decisions if e["data"]["decision_id"] not in granted]
    return {"sent": sent, "granted": granted, "not_granted": not_granted, "received": len(decisions) + 5}


def png_size_and_colours(data: bytes) -> tuple[int, int, int]:
    """Width, height and how many distinct byte values the image data holds (a blank page: 1 or 2)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    chunks, i = b"", 8
    while i < len(data):
        n, kind = struct.unpack(">I4s", data[i:i + 8])
        if kind == b"IDAT":
            chunks += data[i + 8:i + 8 + n]
        i += 12 + n
    return width, height, len(set(zlib.decompress(chunks)))


def test_reconcile_find_and_report_after_a_campaign(world, tmp_path):
    c = publish_campaign(world)
    assert world.run_worker(idle=2) == 0
    late = sample.decision(random.Random(5), 900, "LA", "LA-late", "dismiss_and_seal")
    world.publish([late])  # after the worker left: pending behind the committed offset

    r = cli(world, "reconcile", "--json")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    j = json.loads(r.stdout)
    t = j["total"]
    assert t["received"] == c["received"] + 1
    assert t["granted"] == len(c["granted"]) + 1 == t["filed"] + t["pending"]
    assert (t["filed"], t["pending"], t["missing"], t["doubled"]) == (len(c["granted"]), 1, 0, 0)
    assert t["not_filed"] == len(c["not_granted"]) and t["duplicates"] == 2
    assert t["dead_lettered"] == 3 and set(j["dead_letters"]) == {"invalid_json", "schema_violation",
                                                                    "conflicting_duplicate"}
    assert j["pending"][0]["decision_id"] == late["data"]["decision_id"]
    assert j["courts"]["LA"]["expected_mismatch"] == 0
    assert len(world.filed()) == len(c["granted"])

    filed_id = c["granted"][0]
    f = cli(world, "find", filed_id)
    assert f.returncode == 0 and "filed in bundle" in f.stdout and "manifest: s3://" in f.stdout, f.stdout + f.stderr
    assert "paper: exhibit" in f.stdout and "announced: yes" in f.stdout
    case = next(e["data"]["case"]["number"] for e in c["sent"] if e["data"].get("decision_id") == filed_id)
    by_case = json.loads(cli(world, "find", "--case", case, "--json").stdout)
    assert [a["decision_id"] for a in by_case] == [filed_id] and by_case[0]["first_page"] >= 1
    n = cli(world, "find", c["not_granted"][0])
    assert n.returncode == 0 and "not filed: relief is" in n.stdout, n.stdout + n.stderr
    d = cli(world, "find", "bad-1")
    assert d.returncode == 0 and "dead-lettered: schema_violation" in d.stdout, d.stdout + d.stderr
    p = cli(world, "find", late["data"]["decision_id"])
    assert "pending" in p.stdout and "LA-late" in p.stdout
    assert cli(world, "find", "no-such-decision").returncode == 1

    page = tmp_path / "report.html"
    rep = cli(world, "report", "--out", str(page))
    assert rep.returncode == 0, rep.stdout + rep.stderr
    for e in c["sent"]:
        if e["type"].endswith("decided.v1"):
            person = e["data"]["defendant"]
            for value in (person["last_name"], person["date_of_birth"], person["cii"], e["data"]["case"]["number"]):
                assert value not in page.read_text(encoding="utf-8")
    dom, console = chromium.load(page)
    assert console == [], console
    assert dom.count("<svg") == 5 and dom.count('class="bar"') >= 8 and "OK: every decision" in dom
    png = chromium.screenshot(page, tmp_path / "report.png")
    width, height, colours = png_size_and_colours(png.read_bytes())
    assert (width, height) == (1200, 1800) and colours > 10

    la = next(m for m in world.manifests() if m["court_code"] == "LA" and m["batch_id"] != "LA-late")
    key = next(k for k in world.keys() if k.endswith(f"{la['bundle_id']}/manifest.json"))
    world.s3client.delete_object(Bucket=world.bucket, Key=key)
    r = cli(world, "reconcile", "--json")
    assert r.returncode == 1
    j = json.loads(r.stdout)
    gone = sorted(d["decision_id"] for d in la["decisions"])
    assert sorted(j["total"]["problems"]["missing"]) == gone
    assert all(p["ledger_bundle"] == la["bundle_id"] for p in j["problems"] if p["kind"] == "missing")
    text = cli(world, "reconcile")
    assert text.returncode == 1 and f"MISSING {gone[0]}" in text.stdout and "FAILED" in text.stdout
    assert "missing" in cli(world, "find", gone[0]).stdout
