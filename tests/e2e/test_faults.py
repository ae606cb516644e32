"""Exactly one filing per decision, whatever fails: workers killed with SIGKILL at moments
chosen at random among the moments they log (joined, batch sealed, bundle filed), the broker cut off, S3 answering errors, LibreOffice crashing and hanging.

After each fault, checked from outside (S3 manifests and the notification topic): every
granted decision in exactly one bundle, none lost, none doubled, every notification id a
stored bundle and every bundle notified."""

from __future__ import annotations

import json
import os
import random
import signal
import stat

import pytest

from tests.e2e.conftest import Env, assert_exactly_once, granted, wait_for
from tools import devstack, faults, proctree, sample


MOMENTS = ("partitions assigned", "batch sealed", "bundle filed")  # a kill just after each
KILLS = 8


@pytest.mark.parametrize("workers", [2, 3])
def test_workers_killed_at_random_moments(world, workers):
    """The stream in KILLS parts; after publishing each part, the worker that next logs a moment
    drawn from MOMENTS (joined the group, sealed a batch, filed a bundle) is killed and started
    again. Each part holds decisions of the courts batched by linger, so each part brings a next
    seal and filing to wait for, however fast or slow the workers are."""
    rng = random.Random(int(os.environ.get("CHAOS_SEED", "20261124")) + workers)
    world.settings.update({"RELIEFDOCS_BATCH_MAX_CASES": "25", "RELIEFDOCS_BATCH_LINGER_SECONDS": "4"})
    sent = sample.generate(360, ["LA", "SF", "SD", "ALA"], seed=42, explicit_courts=("LA", "SD"), hostile_every=0)
    parts = [sent[k * len(sent) // KILLS:(k + 1) * len(sent) // KILLS] for k in range(KILLS)]
    assert all({"SF", "ALA"} <= {e["data"].get("court", {}).get("code") for e in part} for part in parts)
    done = world.kill_at_moments(parts, MOMENTS, workers, rng)
    assert_exactly_once(world, sent)
    sealed = [k for k, state in world.work_markers().items() if state == "sealed"]
    assert not sealed, (done, f"{len(sealed)} work markers left sealed")  # every queued batch filed


def test_broker_cut_off_and_back(services, tmp_path):
    _, s3 = services
    proxy_port = devstack.free_port()
    broker = devstack.Broker(log=tmp_path / "broker.log", advertised_port=proxy_port).start()
    proxy = faults.TcpProxy(broker.port, port=proxy_port)
    try:
        world = Env(broker, s3, tmp_path, settings={"RELIEFDOCS_BATCH_MAX_CASES": "20"})
        sent = sample.generate(120, ["LA", "SF"], seed=9, hostile_every=0)
        world.publish(sent)
        proc = world.worker("--exit-when-idle", "4")
        wait_for(lambda: world.logged("batch sealed"), timeout=90, what="a batch sealed")
        proxy.cut()
        cut_at = len(world.entries())
        # the outage lasts until the worker has met it: a warning (a retry, a failed poll or commit)
        wait_for(lambda: [e for e in world.entries()[cut_at:] if e.get("level") in ("warning", "error")],
                 timeout=180, every=0.2, what="the worker noticing the broker is gone")
        proxy.heal()
        assert proc.wait(timeout=240) == 0, world.log()
        assert_exactly_once(world, sent)
    finally:
        proxy.close()
        world.stop()
        broker.stop()


def test_s3_failing_for_a_while(world):
    failing = faults.FailingS3(world.s3.port)
    try:
        world.settings.update({"AWS_ENDPOINT_URL": failing.endpoint, "RELIEFDOCS_BATCH_MAX_CASES": "15",
                               "RELIEFDOCS_RETRY_MAX_SECONDS": "2"})
        sent = sample.generate(60, ["LA", "SF"], seed=4, hostile_every=0)
        world.publish(sent)
        proc = world.worker("--exit-when-idle", "3")
        # S3 fails from the first sealed batch on (its flush is still to render, convert and store) ...
        wait_for(lambda: world.logged("batch sealed"), timeout=120, every=0.1, what="a batch sealed")
        failing.failing.set()
        # ... until a flush has been refused and has logged its retry against S3
        wait_for(lambda: failing.failed_requests >= 3 and [e for e in world.logged("retrying")
                                                           if e.get("dependency") == "s3"],
                 timeout=180, every=0.2, what="a flush retrying against the failing S3")
        failing.failing.clear()
        assert proc.wait(timeout=240) == 0, world.log()
        assert_exactly_once(world, sent)
    finally:
        failing.close()


@pytest.mark.parametrize("mode", ["warm", "cold"])
def test_libreoffice_dies_with_its_worker(world, mode):
    """A worker killed with SIGKILL leaves no LibreOffice behind (nor the guards and bridges
    between them), and the next worker files everything."""
    world.settings.update({"RELIEFDOCS_LIBREOFFICE_MODE": mode, "RELIEFDOCS_BATCH_MAX_CASES": "15",
                           "RELIEFDOCS_CONVERTERS": "2"})
    sent = sample.generate(60, ["LA", "SF"], seed=21, hostile_every=0)
    world.publish(sent)
    proc = world.worker(log="killed")
    started = wait_for(lambda: offices(proc.pid), timeout=120, every=0.1)
    started += [p for p in proctree.descendants(proc.pid) if p not in started]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    try:
        wait_for(lambda: not any(proctree.alive(p) for p in started), timeout=10, every=0.1)
    except AssertionError:
        pass  # named below
    left = [p for p in started if proctree.alive(p)]
    for p in left:
        proctree.kill(p)  # not to leave them to the next tests
    assert not left, f"outlived their worker: {left}"
    assert world.run_worker(idle=3) == 0, world.log()
    assert_exactly_once(world, sent)


def offices(pid: int) -> list[proctree.Proc]:
    """pid's descendants once a LibreOffice (soffice.bin) is among them."""
    found = proctree.descendants(pid)
    return found if any(p.name == "soffice.bin" for p in found) else []


@pytest.fixture
def flaky_soffice(tmp_path):
    """A LibreOffice that hangs on its first call and crashes on its second, then works."""
    state = tmp_path / "calls"
    script = tmp_path / "soffice"
    script.write_text(f"""#!/bin/bash
n=$(cat {state} 2>/dev/null || echo 0); echo $((n+1)) > {state}
if [ "$n" = 0 ]; then sleep 300; fi
if [ "$n" = 1 ]; then sleep 1; kill -9 $$; fi
exec soffice "$@"
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script), state


def test_libreoffice_hang_and_crash_are_retried(world, flaky_soffice):
    soffice, calls = flaky_soffice
    world.settings.update({"RELIEFDOCS_SOFFICE": soffice, "RELIEFDOCS_CONVERT_TIMEOUT_SECONDS": "5",
                           "RELIEFDOCS_CONVERTERS": "1", "RELIEFDOCS_LIBREOFFICE_MODE": "cold"})
    sent = sample.generate(10, ["LA"], seed=2, hostile_every=0)
    world.publish(sent)
    assert world.run_worker(idle=2) == 0, world.log()
    assert int(calls.read_text()) >= 3
    assert "timed out" in world.log() and "exited" in world.log()
    assert_exactly_once(world, sent)


def test_warm_libreoffice_killed_mid_conversion_is_restarted(world):
    world.settings.update({"RELIEFDOCS_LIBREOFFICE_MODE": "warm", "RELIEFDOCS_BATCH_MAX_CASES": "40",
                           "RELIEFDOCS_CONVERTERS": "1"})
    sent = sample.generate(200, ["LA"], seed=6, hostile_every=0)
    world.publish(sent)
    proc = world.worker("--exit-when-idle", "3")
    killed = []
    for n in (1, 2):  # the n-th LibreOffice, once the n-th batch is sealed (being converted, or next)
        offices = wait_for(lambda: len(world.logged("LibreOffice started")) >= n and len(
            world.logged("batch sealed")) >= n and [p for p in proctree.descendants(proc.pid)
                                                    if p.name == "soffice.bin" and p not in killed],
            timeout=180, every=0.1, what=f"LibreOffice number {n} running with batch {n} sealed")
        killed += [p for p in offices if proctree.kill(p)]
    assert proc.wait(timeout=300) == 0, world.log()
    assert len(killed) >= 2
    assert len(world.logged("LibreOffice started")) >= 3  # restarted after each kill
    assert_exactly_once(world, sent)


@pytest.fixture
def slow_soffice(tmp_path):
    """A LibreOffice that takes `delay` seconds longer than it should, every time."""

    def make(delay: float) -> str:
        script = tmp_path / "slow-soffice"
        script.write_text(f"#!/bin/bash\nsleep {delay}\nexec soffice \"$@\"\n")
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
        return str(script)

    return make


def test_flush_longer_than_max_poll_interval_keeps_the_group(world, slow_soffice):
    world.settings.update({"RELIEFDOCS_SOFFICE": slow_soffice(9), "RELIEFDOCS_LIBREOFFICE_MODE": "cold",
                           "RELIEFDOCS_KAFKA_MAX_POLL_INTERVAL_MS": "4000", "RELIEFDOCS_CONVERTERS": "1"})
    sent = sample.generate(12, ["LA"], seed=12, hostile_every=0)
    world.publish(sent)
    assert world.run_worker(idle=2) == 0, world.log()
    assert world.log().count('"partitions assigned"') == 1  # never thrown out and re-joined
    assert_exactly_once(world, sent)


def test_sigterm_during_a_slow_flush_abandons_it_within_the_deadline(world, slow_soffice):
    world.settings.update({"RELIEFDOCS_SOFFICE": slow_soffice(3600), "RELIEFDOCS_LIBREOFFICE_MODE": "cold",
                           "RELIEFDOCS_SHUTDOWN_SECONDS": "3"})
    sent = sample.generate(12, ["LA"], seed=14, hostile_every=0)
    world.publish(sent)
    proc = world.worker()
    # the flush is in the slow LibreOffice: its `sleep` runs under the worker
    wait_for(lambda: any(p.name == "sleep" for p in proctree.descendants(proc.pid)), timeout=120, every=0.1,
             what="a flush converting in the slow LibreOffice")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 0  # long before the hour the conversion would take
    assert world.logged("shutdown deadline passed; abandoning running flushes (not committed)")
    assert world.manifests() == []
    # nothing was committed past the abandoned batch: a normal worker files it
    world.settings.pop("RELIEFDOCS_SOFFICE")
    assert world.run_worker(idle=2) == 0
    assert_exactly_once(world, sent)


def test_store_refusing_a_court_dead_letters_its_batches_and_files_the_others(world):
    """S3 refuses (403 AccessDenied) every PUT under one court's folder: that court's batches are
    dead-lettered as store_failed without retrying, the other court's batches are filed (one
    of them under a batch_id of 128 CJK characters, whose folder is a hash), the worker exits 0."""
    failing = faults.FailingS3(world.s3.port)
    failing.refuse("PUT", "/filings/SF/")
    long_id = "漢" * 128
    try:
        world.settings.update({"AWS_ENDPOINT_URL": failing.endpoint, "RELIEFDOCS_BATCH_MAX_CASES": "15",
                               "RELIEFDOCS_RETRY_MAX_SECONDS": "2"})
        sent = sample.generate(40, ["LA", "SF"], seed=5, hostile_every=0, explicit_courts=("LA",))
        for e in sent:
            if e["data"].get("batch_id") == "LA-2026-11-24-A":
                e["data"]["batch_id"] = long_id
        world.publish(sent)
        assert world.run_worker(idle=3) == 0, world.log()
    finally:
        failing.close()
    assert failing.refused_requests > 0
    court_of = {e["data"]["decision_id"]: e["data"]["court"]["code"] for e in sent if e["type"].endswith("decided.v1")}
    la = {d for d in granted(sent) if court_of[d] == "LA"}
    sf = granted(sent) - la
    assert la and sf
    filed = world.filed()
    assert set(filed) == la and all(len(b) == 1 for b in filed.values())
    manifests = world.manifests()
    assert {m["court_code"] for m in manifests} == {"LA"} and {m["batch_id"] for m in manifests} == {long_id}
    assert all(len(k.encode()) <= 1024 and k.startswith("filings/LA/_h-") for k in world.keys("filings/LA/"))
    dead = {}
    for r in world.records(world.dlq):
        headers = dict(r.headers)
        dead[json.loads(r.value)["data"].get("decision_id")] = headers
    assert sf <= set(dead)
    for headers in dead.values():
        assert headers["reliefdocs.error.reason"] == b"store_failed"
        assert b"refused by the object store: AccessDenied" in headers["reliefdocs.error.message"]
    assert "refused by the object store" in world.log()
    assert not [line for line in world.log().splitlines() if "retrying" in line and "AccessDenied" in line]
