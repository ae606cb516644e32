"""Issue 18: what /startupz, /healthz and /readyz say, and the metrics the scaler and alerts read."""

import threading

import pytest
from prometheus_client import generate_latest

from service import broker, config, health, metrics
from service.assignment import Assignment
from service.errors import BATCH_REASONS, DLQ_REASONS, Permanent, Transient
from service.membership import LoopWatch, Membership
from service.metrics import Metrics
from service.store import FileStore


def ready_metrics() -> Metrics:
    m = Metrics()
    m.started = m.joined = True
    return m


def sample(m: Metrics, name: str, **labels) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_startup_is_its_own_flag_and_asks_no_dependency():
    m = Metrics()
    assert not m.startup() and m.alive()
    assert m.ready() == (False, "starting")
    m.started = True
    m.retried("s3")  # the store is down at start: started and alive, not ready
    assert m.startup() and m.alive()
    assert m.ready() == (False, "not in the consumer group; down: s3")
    m.joined = True
    assert m.ready() == (False, "down: s3")


def test_any_success_of_a_dependency_makes_the_worker_ready_again():
    m = ready_metrics()
    for dep, label in (("storage", "s3"), ("s3", "s3"), ("kafka", "broker"), ("topics", "broker"),
                       ("libreoffice", "libreoffice")):
        m.retried(dep)
        assert not m.ready()[0] and sample(m, "reliefdocs_dependency_up", dependency=label) == 0
        m.answered(dep)  # one success, whoever used it
        assert m.ready() == (True, "ready") and sample(m, "reliefdocs_dependency_up", dependency=label) == 1


def test_a_ledger_waiting_for_repair_is_counted_but_is_no_outage():
    m = ready_metrics()
    m.retried("ledger")
    assert m.ready() == (True, "ready")
    assert sample(m, "reliefdocs_retries_total", dependency="ledger") == 1
    assert sample(m, "reliefdocs_dependency_up", dependency="ledger") is None


def test_liveness_follows_the_heartbeat_and_the_watchdog():
    m = Metrics()
    m.heartbeat -= metrics.LIVENESS_SECONDS + 1
    assert not m.alive() and not m.startup()
    m.beat()
    assert m.alive()
    m.dead = "blocked"
    assert not m.alive()


def test_every_turn_of_the_loop_beats_the_heartbeat():
    """LoopWatch.turned is called by the loop, the revocation wait and the shutdown wait alike."""
    m = Metrics()
    m.heartbeat -= metrics.LIVENESS_SECONDS + 1
    watch = LoopWatch(30, unblock=lambda why: None, give_up=lambda why: None, on_turn=m.beat)
    watch.turned()
    assert m.alive()


def test_pause_beats_through_a_long_backoff(monkeypatch):
    waited, beats = [], []

    class Clockless(threading.Event):
        def wait(self, timeout=None):
            waited.append(timeout)
            return False

    monkeypatch.setattr(health, "BEAT_SECONDS", 5.0)
    assert health.pause(Clockless(), 60.0, lambda: beats.append(1)) is False
    assert max(waited) <= 5.0 and sum(waited) == pytest.approx(60.0)
    assert len(beats) == len(waited) + 1  # no gap longer than BEAT_SECONDS without a beat
    stop = threading.Event()
    stop.set()
    assert health.pause(stop, 60.0, lambda: None) is True


class FlakyStore:
    def __init__(self):
        self.fail: Exception | None = None

    def get(self, key):
        if self.fail:
            raise self.fail
        return b"x"

    def list(self, prefix):
        yield "a"
        if self.fail:
            raise self.fail
        yield "b"

    def uri(self, key):
        return "s3://b/" + key


def test_observed_store_reports_each_use():
    m = ready_metrics()
    raw = FlakyStore()
    store = health.Observed(raw, "s3", health.STORE_OPERATIONS, m.answered, m.failed)
    raw.fail = Transient("s3", "get: SlowDown")
    with pytest.raises(Transient):
        store.get("k")
    assert m.ready() == (False, "down: s3")
    assert store.uri("k") == "s3://b/k"  # not a use of the store: says nothing
    assert m.ready() == (False, "down: s3")
    raw.fail = None
    assert store.get("k") == b"x"
    assert m.ready() == (True, "ready")
    raw.fail = Transient("s3", "list: timeout")
    with pytest.raises(Transient):
        list(store.list("p"))  # a later page failed
    assert not m.ready()[0]
    raw.fail = Permanent("s3", "get manifest.json", "AccessDenied")  # it answered, with a refusal
    with pytest.raises(Permanent):
        store.get("k")
    assert m.ready() == (True, "ready")
    raw.fail = None
    m.failed("s3")
    assert list(store.list("p")) == ["a", "b"] and m.ready() == (True, "ready")


def test_observed_file_store_keeps_its_interface(tmp_path):
    m = ready_metrics()
    store = health.Observed(FileStore(f"file://{tmp_path}"), "s3", health.STORE_OPERATIONS, m.answered, m.failed)
    store.put_bytes("a/b.json", b"{}", "application/json")
    assert store.get("a/b.json") == b"{}" and list(store.list("a/")) == ["a/b.json"]
    store.check()


def test_labelled_counters_start_at_zero_for_every_known_label():
    m = Metrics()
    for reason in DLQ_REASONS:
        assert sample(m, "reliefdocs_dlq_records_total", reason=reason) == 0
    for reason in BATCH_REASONS:
        assert sample(m, "reliefdocs_batches_failed_total", reason=reason) == 0
    for reason in metrics.MARKER_REASONS:
        assert sample(m, "reliefdocs_batch_markers_published_total", reason=reason) == 0
    for outcome in metrics.LEDGER_OUTCOMES:
        assert sample(m, "reliefdocs_ledger_entries_corrupt_total", outcome=outcome) == 0
    for dep in metrics.RETRIED:
        assert sample(m, "reliefdocs_retries_total", dependency=dep) == 0


def test_a_revoked_partition_leaves_no_lag_or_backlog_series():
    m = Metrics()
    for p in ("0", "1"):
        m.lag.labels("t", p).set(700)
        m.unread.labels("t", p).set(5)
    m.forget_partition("t", 0)
    m.forget_partition("t", 0)  # twice: no error
    text = generate_latest(m.registry).decode()
    assert 'partition="0"' not in text
    assert sample(m, "reliefdocs_records_unread", topic="t", partition="1") == 5
    assert sample(m, "reliefdocs_consumer_lag", topic="t", partition="1") == 700


def test_startupz_healthz_readyz_over_http():
    import json
    import urllib.error
    import urllib.request

    m = Metrics()
    server = metrics.serve(m, 0)
    port = server.server_address[1]

    def get(path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    try:
        assert get("/startupz")[0] == 503 and get("/healthz")[0] == 200 and get("/readyz")[0] == 503
        m.started = m.joined = True
        assert get("/startupz") == (200, {"started": True})
        assert get("/readyz") == (200, {"ready": True, "detail": "ready"})
        m.retried("libreoffice")
        assert get("/readyz") == (503, {"ready": False, "detail": "down: libreoffice"})
        assert get("/healthz") == (200, {"alive": True})
    finally:
        server.shutdown()


def test_assignor_setting_maps_to_kafka_python_strategies(tmp_path):
    from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
    from kafka.coordinator.assignors.range import RangePartitionAssignor

    s = config.load({"RELIEFDOCS_ASSIGNOR": "cooperative-sticky"})
    assert s.assignor == "cooperative-sticky"
    assert broker.assignors(s.assignor) == [CooperativeStickyAssignor]
    assert broker.assignors(config.load({}).assignor) == [RangePartitionAssignor]
    with pytest.raises(config.ConfigError, match="RELIEFDOCS_ASSIGNOR"):
        config.load({"RELIEFDOCS_ASSIGNOR": "sticky"})
    assert config.load({"RELIEFDOCS_CREATE_TOPICS": "false"}).create_topics is False
    assert config.load({}).create_topics is True


def test_a_cooperative_revocation_keeps_the_worker_in_its_group():
    clock = [0.0]
    membership = Membership(30, clock=lambda: clock[0])
    a = Assignment(membership, clock=lambda: clock[0], incremental=True)
    listener = a.listener()
    listener.on_partitions_assigned({"p0", "p1"})
    a.apply(lambda tps: None, lambda tps: None)
    listener.on_partitions_revoked({"p1"})  # incremental: no assignment follows if nothing is added
    revoked = []
    a.apply(revoked.append, lambda tps: None)
    clock[0] += 1000
    assert revoked == [{"p1"}] and a.owned == {"p0"}
    assert not membership.lost() and not a.rebalancing
    listener.on_partitions_lost({"p0"})  # lost: out of the group until assigned again
    clock[0] += 31
    assert membership.lost()


def test_shutdown_bound_adds_every_bounded_step():
    bound = health.shutdown_bound(60, 2)
    assert bound == 60 + health.SETTLE_SECONDS + health.COMMIT_SECONDS + health.CONSUMER_CLOSE_SECONDS \
        + 2 * health.CONVERTER_CLOSE_SECONDS + 2 * health.PRODUCER_SECONDS
    assert broker.MAX_BLOCK_MS / 1000 < metrics.LIVENESS_SECONDS / 2
