"""Metrics in Prometheus format, and the health endpoints, on RELIEFDOCS_METRICS_PORT.

GET /metrics   Prometheus text format (names follow Prometheus conventions: _total for
               counters, _seconds for durations, base units)
GET /startupz  200 once the process has started: settings read, templates, work folder and
               converter set up, endpoints listening (startup probe; no dependency asked)
GET /healthz   200 while the process can make progress: its loop, or the wait or retry it is
               in, beat within the last LIVENESS_SECONDS (liveness probe). An outage of the
               broker or the store never fails it: every wait and retry beats, and every
               blocking call is bounded below LIVENESS_SECONDS.
GET /readyz    200 while the worker is in its group and each dependency (broker, S3,
               LibreOffice) answered its most recent use; 503 with the reason otherwise. Any
               success of a dependency marks it up again (`answered`), a failure down (`failed`).

Labels carry court codes, reasons, stages and partitions: never decision data. Labelled
counters are created at 0 for every known label, so that increase() sees the first event.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from service.errors import BATCH_REASONS, DLQ_REASONS, ConfigError

STAGES = ("validate", "batch", "queue", "render", "convert", "merge", "store", "notify", "flush")
DEPENDENCIES = ("broker", "s3", "libreoffice")
RETRIED = DEPENDENCIES + ("ledger",)  # a ledger entry waiting for a repair is retried, but is no outage
log = logging.getLogger("reliefdocs.metrics")
LIVENESS_SECONDS = 60.0  # /healthz fails when nothing beat for this long
MARKER_REASONS = ("linger", "idle")
LEDGER_OUTCOMES = ("rebuilt", "skipped", "unreadable")
WORK_OUTCOMES = ("queued", "filed", "skipped", "failed", "unreadable")


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.records = Counter("reliefdocs_records_consumed", "Input records consumed, by event type and outcome",
                               ["type", "outcome"], registry=r)
        self.dlq = Counter("reliefdocs_dlq_records", "Records sent to the dead-letter topic, by reason", ["reason"],
                           registry=r)
        self.filed = Counter("reliefdocs_decisions_filed", "Granted decisions filed in a stored bundle", ["court"],
                             registry=r)
        self.not_filed = Counter("reliefdocs_decisions_not_filed",
                                 "Decisions acknowledged without filing (not_eligible, review_required)", ["relief"],
                                 registry=r)
        self.bundles = Counter("reliefdocs_bundles_stored", "Bundles stored and notified", ["court"], registry=r)
        self.pages = Counter("reliefdocs_pages_written", "Pages in stored complete bundles", registry=r)
        self.bytes = Counter("reliefdocs_bytes_written", "Bytes of objects stored", registry=r)
        self.batches_failed = Counter("reliefdocs_batches_failed", "Batches dead-lettered whole, by reason",
                                      ["reason"], registry=r)
        self.ledger_corrupt = Counter("reliefdocs_ledger_entries_corrupt",
                                      "Ledger entries found unreadable, by outcome (rebuilt from the bundle's "
                                      "manifest, skipped: no bundle, unreadable: the court waits for a repair)",
                                      ["outcome"], registry=r)
        self.count_mismatch = Counter("reliefdocs_batch_expected_count_mismatch",
                                      "Batches whose batch-closed expected_count differed from what was filed",
                                      registry=r)
        self.work = Counter("reliefdocs_work_items", "Sealed batches on the work topic, by outcome: queued (by "
                            "this worker's composer), filed, skipped (filed before: a work item read again), "
                            "failed (its records dead-lettered), unreadable (the work record itself "
                            "dead-lettered)", ["outcome"], registry=r)
        self.markers = Counter("reliefdocs_batch_markers_published", "Batch-closed markers the worker published",
                               ["reason"], registry=r)
        self.open_batches = Gauge("reliefdocs_open_batches", "Batches collecting decisions", registry=r)
        self.oldest_open = Gauge("reliefdocs_oldest_open_batch_age_seconds",
                                 "Age of the oldest open batch (since its first decision was read)", registry=r)
        self.in_flight = Gauge("reliefdocs_batches_in_flight", "Sealed batches being rendered, converted or stored",
                               registry=r)
        self.lag = Gauge("reliefdocs_consumer_lag",
                         "Commit lag: records after the committed offset, per assigned partition (includes the "
                         "records of batches still open or being filed: for alerts, not for scaling)",
                         ["topic", "partition"], registry=r)
        self.unread = Gauge("reliefdocs_records_unread",
                            "Backlog: records not yet read (high watermark - position), per assigned partition "
                            "(the scaling signal)", ["topic", "partition"], registry=r)
        self.ahead = Gauge("reliefdocs_work_queued_ahead",
                           "Work items this worker queued that the group has not yet filed (committed); its "
                           "decisions partitions pause at reliefdocs_work_queued_ahead_limit (service/lookahead.py)",
                           registry=r)
        self.ahead_limit = Gauge("reliefdocs_work_queued_ahead_limit",
                                 "Where this worker stops composing until the group files more (0: no bound now: "
                                 "RELIEFDOCS_COMPOSE_AHEAD=0, split roles, or the committed offsets not read lately)",
                                 registry=r)
        self.stage = Histogram("reliefdocs_stage_duration_seconds",
                               "Time spent per stage: validate and batch per record, the others per batch filed "
                               "(flush: the whole filing of a batch)",
                               ["stage"], registry=r,
                               buckets=(0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
                                        120, 300, 600, 1800))
        self.retries = Counter("reliefdocs_retries", "Retries after a dependency failed", ["dependency"], registry=r)
        self.up = Gauge("reliefdocs_dependency_up", "1 if the dependency answered at its last use", ["dependency"],
                        registry=r)
        self.lo_started = Counter("reliefdocs_libreoffice_processes_started", "LibreOffice processes started",
                                  registry=r)
        self.lo_kills = Counter("reliefdocs_libreoffice_kills", "LibreOffice processes killed (hung or crashed)",
                                registry=r)
        self.lo_running = Gauge("reliefdocs_libreoffice_processes", "LibreOffice processes running", registry=r)
        self.progress = Gauge("reliefdocs_last_progress_timestamp_seconds",
                              "Unix time of the last record handled or batch filed", registry=r)
        self.rejoins = Counter("reliefdocs_group_rejoins",
                               "Times the worker rejoined its group with a new consumer: no assignment long after a "
                               "rebalance began (no_assignment), or its loop blocked in the Kafka client "
                               "(loop_blocked)", ["cause"], registry=r)
        self.assigned = Gauge("reliefdocs_assigned_partitions", "Partitions assigned to this worker", registry=r)
        self._up: dict[str, bool] = {}
        self._seen = {"started": 0, "kills": 0}
        self._preset()
        self.heartbeat = time.monotonic()
        self.started = False  # set once the process is set up (startup probe)
        self.joined = False  # in the consumer group (assigned partitions, possibly none)
        self.dead: str | None = None  # why the worker's loop cannot recover (the watchdog says)

    def _preset(self) -> None:
        """Every known label at 0: increase() over a series that appears with its first event misses it."""
        presets = ((self.rejoins, ("no_assignment", "loop_blocked")), (self.dlq, DLQ_REASONS),
                   (self.batches_failed, BATCH_REASONS + ("internal_error",)), (self.markers, MARKER_REASONS), (self.work, WORK_OUTCOMES),
                   (self.ledger_corrupt, LEDGER_OUTCOMES), (self.retries, RETRIED))
        for metric, labels in presets:
            for label in labels:
                metric.labels(label)
        for d in DEPENDENCIES:
            self.dependency(d, True)
        for s in STAGES:
            self.stage.labels(s)

    def beat(self) -> None:
        """The process is making progress (its loop turned, or a wait or retry came round)."""
        self.heartbeat = time.monotonic()

    def dependency(self, name: str, ok: bool) -> None:
        self.up.labels(name).set(1 if ok else 0)
        self._up[name] = ok

    @staticmethod
    def _dependency(name: str) -> str:
        return {"kafka": "broker", "storage": "s3", "topics": "broker"}.get(name, name)  # storage: a file:// store

    def retried(self, dependency: str) -> None:
        """A dependency failed and the call will be retried."""
        self.retries.labels(self._dependency(dependency)).inc()
        self.failed(dependency)

    def failed(self, dependency: str) -> None:
        """A use of a dependency failed (an outage: Transient)."""
        dependency = self._dependency(dependency)
        if dependency in DEPENDENCIES:
            self.dependency(dependency, False)

    def answered(self, dependency: str) -> None:
        """A use of a dependency succeeded (or it answered with a refusal): up again."""
        dependency = self._dependency(dependency)
        if dependency in DEPENDENCIES and not self._up.get(dependency, True):
            self.dependency(dependency, True)

    def converter(self, running: int, started: int, kills: int) -> None:
        """The converter's own counts, mirrored (counters only move forward)."""
        self.lo_running.set(running)
        self.lo_started.inc(max(0, started - self._seen["started"]))
        self.lo_kills.inc(max(0, kills - self._seen["kills"]))
        self._seen.update(started=max(started, self._seen["started"]), kills=max(kills, self._seen["kills"]))

    def sample(self, open_batches: list, in_flight: int, running: int, started: int, kills: int) -> None:
        """One turn of the worker's loop: it is alive, and what it holds."""
        self.beat()
        self.open_batches.set(len(open_batches))
        self.oldest_open.set(max((time.monotonic() - ob.opened_at for ob in open_batches), default=0))
        self.in_flight.set(in_flight)
        self.converter(running, started, kills)

    def partitions(self, topic: str, assigned: int, lag: dict[int, int], unread: dict[int, int]) -> None:
        """Per partition: records after the committed offset (lag) and not yet read (unread)."""
        self.assigned.set(assigned)
        for partition, n in lag.items():
            self.lag.labels(topic, str(partition)).set(n)
        for partition, n in unread.items():
            self.unread.labels(topic, str(partition)).set(n)

    def forget_partition(self, topic: str, partition: int) -> None:
        """A revoked partition's series go: a stale value would keep the scaler and alerts going."""
        for gauge in (self.lag, self.unread):
            try:
                gauge.remove(topic, str(partition))
            except KeyError:
                pass

    def summary(self) -> dict:
        total = lambda metric: sum(s.value for f in metric.collect() for s in f.samples if s.name.endswith("_total"))
        return {"decisions_filed": total(self.filed), "bundles": total(self.bundles), "pages": total(self.pages),
                "dead_letters": total(self.dlq), "not_filed": total(self.not_filed), "retries": total(self.retries)}

    def alive(self) -> bool:
        return self.dead is None and time.monotonic() - self.heartbeat < LIVENESS_SECONDS

    def startup(self) -> bool:
        return self.started and self.alive()

    def ready(self) -> tuple[bool, str]:
        if not self.started:
            return False, "starting"
        down = [d for d in DEPENDENCIES if not self._up.get(d, True)]
        why = ([] if self.joined else ["not in the consumer group"]) + (["down: " + ", ".join(down)] if down else [])
        return (False, "; ".join(why)) if why else (True, "ready")


def serve(metrics: Metrics, port: int) -> ThreadingHTTPServer:
    """The metrics and health endpoints on a daemon thread. ConfigError if the port is taken."""
    try:
        server = _serve(metrics, port)
    except OSError as exc:
        raise ConfigError("RELIEFDOCS_METRICS_PORT", f"cannot listen on port {port}: {exc.strerror}") from None
    log.info("metrics and health endpoints listening", extra={"port": server.server_address[1]})
    return server


def _serve(metrics: Metrics, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            path = self.path.split("?")[0]
            if path == "/metrics":
                self._send(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
            elif path == "/startupz":
                ok = metrics.startup()
                self._send(200 if ok else 503, json.dumps({"started": ok}).encode(), "application/json")
            elif path == "/healthz":
                ok = metrics.alive()
                self._send(200 if ok else 503, json.dumps({"alive": ok}).encode(), "application/json")
            elif path == "/readyz":
                ok, why = metrics.ready()
                self._send(200 if ok else 503, json.dumps({"ready": ok, "detail": why}).encode(), "application/json")
            else:
                self._send(404, b"not found\n", "text/plain")

    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
