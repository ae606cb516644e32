"""The object store itself, on a real server (SeaweedFS, data on disk) of each test's own:
credentials that stop at the prefix, a store killed with SIGKILL mid-run and started again on
the same data, a store restarted between two runs. Checked from outside: every granted
decision in exactly one bundle, every manifest's objects there with their SHA-256, and
everything stored before a crash still there, byte for byte, after it."""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid

import pytest
from botocore.exceptions import ClientError

from tests.e2e.conftest import EXE, Env, wait_for
from tests.e2e.test_faults import assert_exactly_once, granted
from tools import devstack, sample


@pytest.fixture
def store(tmp_path):
    """A SeaweedFS of this test's own (started by the test, once its identities are known)."""
    s3 = devstack.S3(folder=tmp_path / "s3", log=tmp_path / "s3.log")
    yield s3
    s3.stop()


def _refused(call) -> str:
    with pytest.raises(ClientError) as info:
        call()
    return info.value.response["Error"]["Code"]


def _stored(world: Env) -> dict[str, str]:
    """Every object under the prefix -> the SHA-256 of its bytes; not the queued batches (`_work/`,
    removed once filed: the service's passing state)."""
    return {k: hashlib.sha256(world.get(k)).hexdigest() for k in world.keys() if "/_work/" not in f"/{k}"}


def _assert_manifests_complete(world: Env) -> None:
    stored = _stored(world)
    for m in world.manifests():
        for d in m["documents"]:
            assert stored.get("filings/" + d["key"]) == d["sha256"], f"{d['key']} missing or changed"


def test_credentials_stop_at_the_prefix(services, store, tmp_path):
    """The worker's keys may read, list and write only under s3://bucket/filings/ (here: write
    only in LA's folder and the service's own _ledger/, _work/ and _dlq/): the server refuses the rest,
    a worker pointed outside its prefix exits 2 naming the setting, and a refused write is a
    permanent error (SF's batches dead-lettered as store_failed, never retried), not an outage."""
    broker, _ = services
    name = uuid.uuid4().hex[:8]
    bucket = f"b-{name}"
    keys = store.scope(bucket, "filings", writable=("LA", "_ledger", "_work", "_dlq"))
    store.start()
    world = Env(broker, store, tmp_path, name=name, settings={**keys.env(), "RELIEFDOCS_BATCH_MAX_CASES": "10",
                                                              "RELIEFDOCS_RETRY_MAX_SECONDS": "2"})
    admin, worker = store.client(), store.client(keys.access_key, keys.secret_key)
    admin.put_object(Bucket=bucket, Key="elsewhere/x", Body=b"x")
    worker.put_object(Bucket=bucket, Key="filings/LA/probe", Body=b"x")
    assert _refused(lambda: worker.put_object(Bucket=bucket, Key="elsewhere/y", Body=b"x")) == "AccessDenied"
    assert _refused(lambda: worker.put_object(Bucket=bucket, Key="filings/SF/y", Body=b"x")) == "AccessDenied"
    assert _refused(lambda: worker.get_object(Bucket=bucket, Key="elsewhere/x")) == "AccessDenied"
    assert _refused(lambda: worker.list_objects_v2(Bucket=bucket, Prefix="elsewhere/")) == "AccessDenied"
    assert _refused(lambda: worker.create_bucket(Bucket=f"c-{name}")) == "AccessDenied"
    admin.delete_object(Bucket=bucket, Key="filings/LA/probe")

    outside = subprocess.run([EXE, "worker", "--exit-when-idle", "1"], capture_output=True, text=True, timeout=60,
                             env={**world.env, "RELIEFDOCS_STORAGE_URL": f"s3://{bucket}/elsewhere"})
    assert outside.returncode == 2 and "RELIEFDOCS_STORAGE_URL" in outside.stderr, outside.stderr

    sent = sample.generate(40, ["LA", "SF"], seed=15, hostile_every=0, explicit_courts=("LA",))
    world.publish(sent)
    assert world.run_worker(idle=3) == 0, world.log()
    court_of = {e["data"]["decision_id"]: e["data"]["court"]["code"] for e in sent if e["type"].endswith("decided.v1")}
    la = {d for d in granted(sent) if court_of[d] == "LA"}
    sf = granted(sent) - la
    filed = world.filed()
    assert la and sf and set(filed) == la and all(len(b) == 1 for b in filed.values())
    assert world.keys("filings/_ledger/LA/") and not world.keys("filings/SF/")
    dead = {json.loads(r.value)["data"].get("decision_id"): dict(r.headers) for r in world.records(world.dlq)}
    assert sf <= set(dead)
    for d in sf:
        assert dead[d]["reliefdocs.error.reason"] == b"store_failed"
        assert b"refused by the object store: AccessDenied" in dead[d]["reliefdocs.error.message"]
    assert not [line for line in world.log().splitlines() if "retrying" in line and "AccessDenied" in line]
    _assert_manifests_complete(world)


def test_object_store_killed_mid_run_loses_nothing_and_doubles_nothing(services, store, tmp_path):
    """SIGKILL to the object store while a worker files: the worker waits it out (an outage,
    retried), the store comes back on the same data folder, and afterwards every granted
    decision is in exactly one bundle, every manifest's objects are there with their SHA-256,
    and everything stored before the kill is still there, byte for byte."""
    broker, _ = services
    store.start()
    world = Env(broker, store, tmp_path, settings={"RELIEFDOCS_BATCH_MAX_CASES": "8",
                                                   "RELIEFDOCS_RETRY_MAX_SECONDS": "1"})
    sent = sample.generate(120, ["LA", "SF"], seed=23, hostile_every=0, explicit_courts=("LA",))
    world.publish(sent)
    proc = world.worker("--exit-when-idle", "4")
    try:
        wait_for(lambda: any(k.endswith("/manifest.json") for k in world.keys()), timeout=180)
        before = _stored(world)
        store.kill()
        wait_for(lambda: '"dependency": "s3"' in world.log(), timeout=180)
        store.start()
        assert proc.wait(timeout=400) == 0, world.log()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert_exactly_once(world, sent)
    after = _stored(world)
    assert {k: after.get(k) for k in before} == before
    _assert_manifests_complete(world)


def test_object_store_restarted_between_runs_still_files_a_decision_once(services, store, tmp_path):
    """The ledger lives in the object store: after a restart of the store on the same data, a
    decision published again (in another batch) is recognised as filed, not filed twice."""
    broker, _ = services
    store.start()
    world = Env(broker, store, tmp_path)
    first = sample.generate(4, ["LA"], seed=8, hostile_every=0, explicit_courts=("LA",))
    world.publish(first)
    assert world.run_worker(idle=2) == 0, world.log()
    before = world.filed()
    assert set(before) == granted(first)
    store.stop()
    store.start()
    again = [e for e in first if e["type"].endswith("decided.v1")]
    for e in again:
        e["data"]["batch_id"] = "LA-again"
    world.publish(again + [sample.closed("LA", "LA-again", len(again))])
    assert world.run_worker(idle=2, log="second") == 0, world.log("second")
    assert world.filed() == before and len(world.manifests()) == 1
    assert "duplicate decision skipped" in world.log("second")
    _assert_manifests_complete(world)
