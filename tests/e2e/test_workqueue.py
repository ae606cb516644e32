"""One court, many workers (issue 16): a sealed batch is a work item (its records under
`_work/`, a record on the work topic, a marker "sealed"), and any worker of the group files it.

Workers are killed (SIGKILL, by pid) while batches sit in the work queue, while a worker files
a batch another worker composed, and during rebalances of either topic. Checked from outside
(the S3 manifests, the markers under `_work/`, the work, notification and DLQ topics): every
granted decision in exactly one bundle, none lost, none doubled, no marker left "sealed"."""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import signal

import pytest
from docx import Document

from tests.e2e.conftest import ROOT, Env, assert_exactly_once, granted, wait_for
from tools import sample

COMPOSE, FILE = {"RELIEFDOCS_ROLES": "compose"}, {"RELIEFDOCS_ROLES": "file"}


def decisions_of(sent: list[dict]) -> list[dict]:
    return [e for e in sent if e["type"].endswith("decided.v1")]


def queued(world: Env) -> dict[str, int]:
    """bundle id -> work partition, from the work topic's records."""
    return {json.loads(r.value)["bundle_id"]: r.partition for r in world.records(world.work)}


def bundle_of(key: str) -> str:
    return key.rsplit("/", 1)[-1][: -len(".json")]


def assert_queue_drained(world: Env) -> None:
    """No marker left "sealed", and no batch object left behind a filed bundle."""
    sealed = [k for k, state in world.work_markers().items() if state != "failed"]
    assert not sealed, f"{len(sealed)} work markers left not failed: {sealed}"
    batches = [k for k in world.keys("filings/_work/") if k.endswith(".batch.json")]
    failed = {bundle_of(k) for k, state in world.work_markers().items() if state == "failed"}
    left = [k for k in batches if k.rsplit("/", 1)[-1][: -len(".batch.json")] not in failed]
    assert not left, f"batch objects left behind filed bundles: {left}"


def owner_of(world: Env, partition: int, logs: list[str]) -> str | None:
    """The log name of the worker that was last assigned work partition `partition` and has not
    logged its revocation since (from the workers' own "partitions assigned/revoked" lines)."""
    for name in logs:
        owns = False
        for e in world.entries(name):
            if e.get("event") in ("partitions assigned", "partitions revoked") and partition in e.get(
                    "work_partitions", []):
                owns = e["event"] == "partitions assigned"
        if owns:
            return name
    return None


def test_batches_wait_in_the_queue_until_a_filer_takes_them(world):
    """A compose-only worker queues every batch and files nothing; the same decisions sent again
    while queued are not queued again; two file-only workers file the queue, one of them killed
    as soon as the first bundle is stored, and a replacement finishes its work."""
    world.settings.update({"RELIEFDOCS_BATCH_MAX_CASES": "4"})
    sent = sample.generate(30, ["SF"], seed=16, hostile_every=0, explicit_courts=())
    batches = math.ceil(len(granted(sent)) / 4)
    world.publish(sent)
    assert world.worker("--exit-when-idle", "2", log="compose1", **COMPOSE).wait(timeout=240) == 0, \
        world.log("compose1")
    assert world.manifests() == [] and not world.logged("bundle filed", "compose1")
    markers = world.work_markers()
    assert len(markers) == batches and set(markers.values()) == {"sealed"}, markers
    work = queued(world)
    assert len(world.records(world.work)) == batches and set(work) == {bundle_of(k) for k in markers}

    again = decisions_of(sent)[:10]  # in the first queued batches
    world.publish(again)
    assert world.worker("--exit-when-idle", "2", log="compose2", **COMPOSE).wait(timeout=240) == 0, \
        world.log("compose2")
    assert len(world.logged("duplicate decision skipped", "compose2")) == len(granted(again))
    assert len(world.records(world.work)) == batches and world.work_markers() == markers

    logs = ["file0", "file1"]
    procs = {name: world.worker("--exit-when-idle", "3", log=name, **FILE) for name in logs}
    first = wait_for(lambda: [m["bundle_id"] for m in world.manifests()], timeout=240, every=0.1,
                     what="the first bundle stored")[0]
    victim = owner_of(world, work[first], logs) or "file0"
    procs[victim].send_signal(signal.SIGKILL)
    assert procs.pop(victim).wait(timeout=30) == -signal.SIGKILL
    procs["file2"] = world.worker("--exit-when-idle", "3", log="file2", **FILE)
    rcs = {name: p.wait(timeout=300) for name, p in procs.items()}
    assert set(rcs.values()) == {0}, (victim, rcs, "\n".join(world.log(n)[-3000:] for n in procs))
    assert_exactly_once(world, sent)
    assert_queue_drained(world)
    assert {m["bundle_id"] for m in world.manifests()} == set(work)  # the queued bundles, no other
    assert not world.records(world.dlq)


def test_a_batch_queued_twice_is_filed_once(world):
    """A composer killed after sending a work record and before writing its marker composes the
    batch again: a second work record for the same bundle, next to the first (same key, same
    partition). Made here by sending each work record again; one file-only worker takes both
    at once. Each bundle is filed once, nothing is dead-lettered, the queue is drained."""
    from kafka import KafkaProducer

    world.settings.update({"RELIEFDOCS_BATCH_MAX_CASES": "5"})
    sent = sample.generate(20, ["SF"], seed=18, hostile_every=0, explicit_courts=())
    world.publish(sent)
    assert world.worker("--exit-when-idle", "2", log="compose", **COMPOSE).wait(timeout=240) == 0, world.log("compose")
    records = world.records(world.work)
    assert len(records) == math.ceil(len(granted(sent)) / 5)
    prod = KafkaProducer(bootstrap_servers=world.broker.bootstrap, acks="all")
    for r in records:
        prod.send(world.work, key=r.key, value=r.value, headers=r.headers, partition=r.partition)
    prod.flush()
    prod.close()
    assert world.worker("--exit-when-idle", "3", log="file", **FILE).wait(timeout=300) == 0, world.log("file")
    assert not world.logged("filing failed unexpectedly", "file"), world.logged("filing failed unexpectedly", "file")
    assert_exactly_once(world, sent)
    assert not world.records(world.dlq)
    assert_queue_drained(world)


def test_composing_runs_only_so_far_ahead_of_filing(world):
    """RELIEFDOCS_COMPOSE_AHEAD (service/lookahead.py). One worker with both roles, 1 converter
    (2 filing slots) and compose_ahead 2: a bound of 2 work items not yet filed; one court of 33
    batches, published and fetched one decision at a time. Checked from the topics: when each
    work record was written, the work records before it whose bundle was not yet notified never
    exceed the bound plus what may be on its way past it (the batch a fetch may seal, the 4
    sealed batches that pause the partitions, the queue's 2 threads). Unbounded, all 33 are queued before the first bundle
    is stored (seen: 0, 1, ..., 32). Every decision filed once, nothing dead-lettered."""
    world.settings.update({"RELIEFDOCS_BATCH_MAX_CASES": "4", "RELIEFDOCS_CONVERTERS": "1",
                           "RELIEFDOCS_COMPOSE_AHEAD": "2", "RELIEFDOCS_KAFKA_MAX_PARTITION_FETCH_BYTES": "1"})
    from kafka import KafkaProducer

    from service.publish import encode, key_of

    sent = sample.generate(139, ["SF"], seed=21, hostile_every=0, explicit_courts=())
    batches = math.ceil(len(granted(sent)) / 4)
    assert batches >= 30
    prod = KafkaProducer(bootstrap_servers=world.broker.bootstrap, acks="all")
    for e in sent:  # one record per record batch: a fetch (1 byte at most) returns one decision
        value, headers = encode(e, False)
        prod.send(world.decisions, key=key_of(e).encode(), value=value, headers=headers).get(timeout=30)
    prod.close()
    assert world.run_worker(idle=2, timeout=400) == 0, world.log()
    assert_exactly_once(world, sent)
    assert not world.records(world.dlq)
    work = sorted(world.records(world.work), key=lambda r: r.timestamp)
    notified = sorted(r.timestamp for r in world.records(world.notifications))
    assert len(work) == batches and len(notified) == batches
    ahead = [k - sum(1 for t in notified if t <= r.timestamp) for k, r in enumerate(work)]
    print("work items ahead of filing, as each was queued:", ahead)
    assert max(ahead) <= 2 + 1 + 4 + 2, ahead
    assert max(ahead) < batches // 2, ahead
    assert_queue_drained(world)


MOMENTS = ("partitions assigned", "partitions revoked", "batch sealed", "batch queued for filing", "bundle filed")
KILLS = 6


@pytest.mark.parametrize("workers", [2, 3])
def test_one_court_many_workers_killed_at_random_moments(world, workers):
    """Workers with both roles, one court: one worker composes its batches (one partition), all
    of them file. The stream in KILLS parts; after each part, the worker that next logs a moment
    drawn from MOMENTS (a rebalance of either topic, a batch sealed or queued, a bundle filed: of
    its own batch or of another's) is killed and started again."""
    rng = random.Random(int(os.environ.get("CHAOS_SEED", "20261202")) + workers)
    world.settings.update({"RELIEFDOCS_BATCH_MAX_CASES": "8", "RELIEFDOCS_BATCH_LINGER_SECONDS": "3"})
    sent = sample.generate(30 * KILLS, ["SF"], seed=61, hostile_every=0, explicit_courts=())
    parts = [sent[k * len(sent) // KILLS:(k + 1) * len(sent) // KILLS] for k in range(KILLS)]
    done = world.kill_at_moments(parts, MOMENTS, workers, rng)
    assert_exactly_once(world, sent)
    assert_queue_drained(world)
    assert not world.records(world.dlq), done


def broken_court(tmp, court: str):
    """A copy of the templates in which `court` has a motion that cannot render."""
    folder = tmp / "templates"
    shutil.copytree(os.environ.get("RELIEFDOCS_TEMPLATES_DIR") or ROOT / "templates", folder)
    doc = Document()
    doc.add_paragraph("{{ filing.no_such_field.deeper }}")
    motion = folder / "courts" / court / "motion.docx"
    doc.save(motion)
    return folder, motion


def test_a_failed_work_item_is_dead_lettered_and_its_decisions_filed_after_the_fix(world, tmp_path):
    """LA's motion cannot render: its queued batches fail, their records reach the DLQ as
    render_failed, their markers say "failed"; SF's batches are filed meanwhile. The template
    fixed, the same LA decisions sent again are filed, once."""
    templates, motion = broken_court(tmp_path, "LA")
    world.settings.update({"RELIEFDOCS_BATCH_MAX_CASES": "5", "RELIEFDOCS_TEMPLATES_DIR": str(templates)})
    sent = sample.generate(24, ["LA", "SF"], seed=23, hostile_every=0, explicit_courts=())
    la = [e for e in decisions_of(sent) if e["data"]["court"]["code"] == "LA"]
    world.publish(sent)
    assert world.worker("--exit-when-idle", "2", log="broken").wait(timeout=240) == 0, world.log("broken")
    dead = [r for r in world.records(world.dlq)]
    reasons = {dict(r.headers)["reliefdocs.error.reason"] for r in dead}
    assert reasons == {b"render_failed"}, reasons
    assert sorted(json.loads(r.value)["data"]["decision_id"] for r in dead) == sorted(granted(la))
    markers = world.work_markers()
    assert markers and set(markers.values()) == {"failed"} and all("/LA/" in k for k in markers), markers
    assert len(markers) == math.ceil(len(granted(la)) / 5)
    assert {m["court_code"] for m in world.manifests()} == {"SF"}

    motion.unlink()
    world.publish(la)
    assert world.worker("--exit-when-idle", "2", log="fixed").wait(timeout=240) == 0, world.log("fixed")
    assert_exactly_once(world, sent)
    assert len(world.records(world.dlq)) == len(dead)  # nothing dead-lettered again
    assert_queue_drained(world)
    assert world.work_markers() == markers  # the failed ones stay, as the failure's record
