"""Issue 18, on the real broker, S3 API and LibreOffice: a worker started while its object store
is down is alive and not ready, then ready and filing; a 75 s object-store outage during a run
keeps it alive throughout, not ready while it lasts and ready after; and with
RELIEFDOCS_ASSIGNOR=cooperative-sticky a joining worker takes some partitions while the first
keeps the others with their open batches (range, eager, beside it for contrast)."""

from __future__ import annotations

import signal
import time

import pytest

from service.metrics import LIVENESS_SECONDS
from tests.e2e.conftest import assert_exactly_once, granted, wait_for
from tests.e2e.test_operations import metric, scrape
from tools import devstack, sample


def test_started_while_the_store_is_down_alive_not_ready_then_ready_and_filing(world, tmp_path):
    port = devstack.free_port()
    s3 = devstack.S3(folder=tmp_path / "own-s3", log=tmp_path / "own-s3.log")  # its own store, with the bucket,
    s3.start()                                                                # then down: the outage
    s3.create_bucket(world.bucket)
    s3.kill()
    world.settings.update({"RELIEFDOCS_METRICS_PORT": str(port), "RELIEFDOCS_BATCH_MAX_CASES": "10",
                           "RELIEFDOCS_RETRY_MAX_SECONDS": "2", **s3.env()})
    sent = sample.generate(10, ["LA"], seed=18, hostile_every=0)
    world.publish(sent)
    proc = world.worker()
    try:
        wait_for(lambda: scrape(port, "/startupz")[0] == 200, timeout=60)
        assert scrape(port, "/healthz")[0] == 200
        # not ready, and saying why, once its first S3 call has failed (botocore retries it first)
        wait_for(lambda: (lambda r: r[0] == 503 and "s3" in r[1])(scrape(port, "/readyz")), timeout=60,
                 what="/readyz 503 naming s3")
        wait_for(lambda: metric(scrape(port, "/metrics")[1], "reliefdocs_retries_total", dependency="s3") >= 2,
                 timeout=60)
        assert scrape(port, "/healthz")[0] == 200 and scrape(port, "/readyz")[0] == 503
        s3.start()  # back on the same data: the bucket is there
        wait_for(lambda: scrape(port, "/readyz")[0] == 200, timeout=60)
        wait_for(lambda: metric(scrape(port, "/metrics")[1], "reliefdocs_bundles_stored_total") >= 1, timeout=180)
        text = scrape(port, "/metrics")[1]
        assert metric(text, "reliefdocs_dependency_up", dependency="s3") == 1
        assert "reliefdocs_records_unread{" in text  # the backlog the scaler reads
        assert scrape(port, "/healthz")[0] == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=150)
        s3.stop()
    assert code == 0


# -- a long object-store outage (issue 18's acceptance check) ---------------------------------------

OUTAGE_SECONDS = 75.0  # longer than the liveness window (Metrics.LIVENESS_SECONDS, 60 s): that is the point


def own_store(world, tmp_path) -> devstack.S3:
    """A SeaweedFS of this test's own, holding the world's bucket, that the worker writes to and the
    world's checks read: it can be killed and started again on the same data, as an outage does."""
    s3 = devstack.S3(folder=tmp_path / "own-s3", log=tmp_path / "own-s3.log").start()
    s3.create_bucket(world.bucket)
    world.s3, world.s3client = s3, s3.client()
    return s3


def test_a_75_second_store_outage_alive_throughout_not_ready_then_ready(world, tmp_path):
    """Issue 18's acceptance check: during a 75 s object-store outage /healthz stays 200 while
    /readyz turns 503 (naming s3) and back to 200 after recovery; every decision filed once.

    THE DURATION IS THE SCENARIO. The outage is driven by conditions: it begins when the first
    batch is sealed (its filing has still to store), and it ends once the worker has logged a
    retry against S3 AND OUTAGE_SECONDS have passed, which outlasts the liveness window: a worker
    that stopped beating while it retried would fail /healthz within it. The loop that waits the
    outage out is the measurement: it asks /healthz (and /readyz) every second, and every
    answer is asserted."""
    assert OUTAGE_SECONDS > LIVENESS_SECONDS + 10
    port = devstack.free_port()
    s3 = own_store(world, tmp_path)
    world.settings.update({"RELIEFDOCS_METRICS_PORT": str(port), "RELIEFDOCS_BATCH_MAX_CASES": "10",
                           "RELIEFDOCS_BATCH_LINGER_SECONDS": "5", "RELIEFDOCS_RETRY_MAX_SECONDS": "5"})
    sent = sample.generate(40, ["LA", "SF"], seed=75, hostile_every=0)
    world.publish(sent)
    proc = world.worker()
    try:
        wait_for(lambda: world.logged("batch sealed"), timeout=120, every=0.1, what="a first batch sealed")
        s3.kill()
        down_since = time.monotonic()
        health, ready = [], []

        def outage_over() -> bool:
            health.append(scrape(port, "/healthz")[0])
            ready.append(scrape(port, "/readyz"))
            retried = [e for e in world.logged("retrying") if e.get("dependency") == "s3"]
            return bool(retried) and time.monotonic() - down_since >= OUTAGE_SECONDS

        wait_for(outage_over, timeout=OUTAGE_SECONDS + 120, every=1.0,
                 what=f"a retry against S3 logged and {OUTAGE_SECONDS:g} s of outage")
        assert len(health) >= OUTAGE_SECONDS / 2 and set(health) == {200}, health
        down = [body for status, body in ready if status == 503 and "s3" in body]
        assert down, ready
        s3.start()  # back on the same data
        wait_for(lambda: scrape(port, "/readyz")[0] == 200, timeout=90, what="ready again after the outage")
        assert scrape(port, "/healthz")[0] == 200
        wait_for(lambda: set(world.filed()) >= granted(sent), timeout=300, every=1.0, what="everything filed")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=150) == 0, world.log()[-3000:]
        assert_exactly_once(world, sent)
    finally:
        world.stop()
        s3.stop()


# -- cooperative-sticky: the partitions that stay keep their open batches --------------------------

COURTS = ("SD", "LA", "ALA")  # keyed by court code: partitions 0, 1 and 2 of 3
REJOIN_SECONDS = 20  # RELIEFDOCS_REJOIN_TIMEOUT_SECONDS: shorter than its default, longer than a rebalance here


@pytest.mark.parametrize("assignor", ["cooperative-sticky", "range"])
def test_a_second_worker_joins_while_the_first_holds_open_batches(world, assignor):
    """RELIEFDOCS_ASSIGNOR on the real broker. Worker A holds an open batch on each of the three
    partitions (explicit batches whose batch-closed events are not published yet; linger 600 s);
    worker B joins the group. Under cooperative-sticky only the partitions that move to B are
    revoked from A: A keeps the others with their open batches and reads nothing again; B rebuilds
    the moved ones from the log. Under range (eager), the contrast: every partition of A is revoked
    and what it keeps is read again. Then the batches are closed, and every decision filed once.
    A and B compose only (RELIEFDOCS_ROLES=compose: the decisions topic is the scenario; with the
    work topic too, cooperative-sticky may balance B with work partitions alone); a third worker,
    filing only, in its own group (docs/deploy.md, "Two roles"), files what they queued."""
    incremental = assignor == "cooperative-sticky"
    ports = {"a": devstack.free_port(), "b": devstack.free_port()}
    world.settings.update({"RELIEFDOCS_ASSIGNOR": assignor, "RELIEFDOCS_BATCH_LINGER_SECONDS": "600",
                           "RELIEFDOCS_ROLES": "compose",
                           "RELIEFDOCS_BATCH_MAX_CASES": "50", "RELIEFDOCS_REJOIN_TIMEOUT_SECONDS": str(REJOIN_SECONDS)})
    sent = sample.generate(24, list(COURTS), seed=29, hostile_every=0, explicit_courts=COURTS)
    assert {partition_of(c) for c in COURTS} == {0, 1, 2}
    closes = [e for e in sent if e["type"] == "relief.batch.closed.v1"]
    world.publish([e for e in sent if e not in closes])
    workers = {"a": world.worker(log="a", RELIEFDOCS_METRICS_PORT=str(ports["a"]))}
    gauge = lambda w, name: metric(scrape(ports[w], "/metrics")[1], name)
    wait_for(lambda: gauge("a", "reliefdocs_open_batches") == 3, timeout=120, what="A holding three open batches")
    read_by_a = gauge("a", "reliefdocs_records_consumed_total")

    workers["b"] = world.worker(log="b", RELIEFDOCS_METRICS_PORT=str(ports["b"]))
    moved = set(wait_for(lambda: assigned(world, "b"), timeout=120, what="B assigned partitions"))
    kept = {0, 1, 2} - moved
    assert moved and kept, (moved, kept)
    wait_for(lambda: gauge("b", "reliefdocs_open_batches") == len(moved)
             and gauge("a", "reliefdocs_open_batches") == len(kept), timeout=120, what="the group settled")
    revoked = set().union(*(e["partitions"] for e in world.logged("partitions revoked", "a")))
    if incremental:
        # A, revoked some partitions and assigned none since, must not take itself for out of its
        # group: past the rejoin bound it would rejoin with a new consumer and read everything again.
        # So this window outlasts the bound (its length is the scenario), and A is measured every second.
        since, seen = time.monotonic(), []

        def bound_passed() -> bool:
            text = scrape(ports["a"], "/metrics")[1]
            seen.append((metric(text, "reliefdocs_open_batches"), metric(text, "reliefdocs_group_rejoins_total")))
            return time.monotonic() - since > REJOIN_SECONDS + 5

        wait_for(bound_passed, timeout=REJOIN_SECONDS + 60, every=1.0, what="the rejoin bound passed")
        assert set(seen) == {(len(kept), 0)}, seen  # its open batches kept all along, never a rejoin
        assert revoked == moved, world.logged("partitions revoked", "a")  # never a kept partition
        assert [e["partitions"] for e in world.logged("partitions assigned", "a")] == [[0, 1, 2]]  # once
        assert gauge("a", "reliefdocs_records_consumed_total") == read_by_a  # nothing read again
    else:
        assert revoked == {0, 1, 2}  # eager: every partition revoked, those it keeps read again
        assert set(assigned(world, "a")) == kept
        assert gauge("a", "reliefdocs_records_consumed_total") > read_by_a

    world.publish(closes)
    # its own group: kafka-python's leader (a composer here) assigns only the topics it reads (docs/deploy.md)
    workers["filer"] = world.worker(log="filer", RELIEFDOCS_ROLES="file",
                                    RELIEFDOCS_GROUP=world.env["RELIEFDOCS_GROUP"] + "-file")
    wait_for(lambda: set(world.filed()) >= granted(sent), timeout=300, every=1.0, what="everything filed")
    sealed = {w: {e["partition"] for e in world.logged("batch sealed", w)} for w in ("a", "b")}
    assert sealed == {"a": kept, "b": moved}
    for w in ("filer", "b", "a"):  # one at a time: each leaves a group that has settled
        workers[w].send_signal(signal.SIGTERM)
        assert workers[w].wait(timeout=150) == 0, world.log(w)[-3000:]
    assert_exactly_once(world, sent)


def assigned(world, log: str) -> list[int]:
    """The partitions worker `log` was last assigned, as it logged them ([] before any)."""
    entries = world.logged("partitions assigned", log)
    return entries[-1]["partitions"] if entries else []


def partition_of(court: str, partitions: int = 3) -> int:
    """The partition the producer's default partitioner gives a court's key (murmur2)."""
    from kafka.partitioner.default import murmur2

    return (murmur2(court.encode()) & 0x7FFFFFFF) % partitions
