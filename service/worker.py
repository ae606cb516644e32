"""The conductor: consume, batch, file, commit. It only wires the parts together, each in
its own module and tested on its own:

- `consumer.GroupConsumer`: the Kafka edge (poll, commit, seek, pause, lag, rejoin);
- `assignment.Assignment`: rebalance events, applied on this loop at a safe point;
- `membership`: out of the group too long -> rejoin; a loop blocked in the client -> watchdog;
- `records.RecordHandler`: one record -> open batch, not filed, or dead letter;
- `pool.FilingPool`: sealed batches filed on worker threads (`flush.file_batch`);
- `deadletters.DeadLetters`: the DLQ, acknowledged before any commit past it;
- `offsets.CommitPolicy`: committed only up to the oldest batch not yet filed;
- `idle`: when `--exit-when-idle` may exit, and what it still waits for.

Time (linger, idle, shutdown) never seals a batch directly: a batch-closed marker is
published to the decisions topic and the batch is sealed when the marker is read back.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer
from kafka.errors import KafkaError

from service import broker, events, health, idle, workdir
from service.assignment import Assignment
from service.batching import Batcher, SealedBatch, summary
from service.config import Settings
from service.consumer import GroupConsumer
from service.convert import libreoffice
from service.deadletters import DeadLetters
from service.errors import ConfigError, Transient
from service.flush import Filing, file_batch
from service.ledger import StoreLedger
from service.markers import BatchMarkers
from service.membership import LoopWatch, Membership
from service.metrics import Metrics, serve
from service.offsets import CommitPolicy
from service.outcomes import Outcomes
from service.pool import FilingPool
from service.records import RecordHandler
from service.render import Courts
from service.retry import Backoff
from service.store import open_store

log = logging.getLogger("reliefdocs.worker")


class Worker:
    def __init__(self, settings: Settings):
        self.settings = s = settings
        self.stopping = threading.Event()  # SIGTERM: stop taking records
        self.abandon = threading.Event()  # shutdown deadline passed: give up running flushes
        self.metrics = m = Metrics()
        # every use of the store and of LibreOffice tells readiness how it went (service/health.py)
        self.store = health.Observed(open_store(s), "s3", health.STORE_OPERATIONS, m.answered, m.failed)
        self.ledger = StoreLedger(self.store, on_corrupt=lambda outcome: self.metrics.ledger_corrupt.labels(outcome).inc())
        self.batcher = Batcher(s.batch_max_cases, self.ledger)
        self.courts = Courts(s.templates_dir, s.allow_default_court)
        self.work = workdir.claim(s.work_dir)  # its own folder; removes those of dead workers
        self.converter = health.Observed(libreoffice(s.soffice, self.work.path, s.converters,
                                                     s.convert_timeout_seconds, s.libreoffice_mode,
                                                     s.libreoffice_python),
                                         "libreoffice", health.CONVERTER_OPERATIONS, m.answered, m.failed)
        self.pool = FilingPool(s.converters + 1, self._file)  # see service/pool.py for the + 1
        self.commits = CommitPolicy()
        self.session_timeout = s.kafka.get("session_timeout_ms", KafkaConsumer.DEFAULT_CONFIG["session_timeout_ms"]) / 1000
        rejoin = s.rejoin_timeout_seconds or max(30.0, 4 * self.session_timeout)
        self.assignment = Assignment(Membership(rejoin), incremental=s.assignor == "cooperative-sticky")
        self.watch = LoopWatch(rejoin, unblock=self._unblock, give_up=self._give_up, on_turn=m.beat)
        self.consumer = GroupConsumer(s, self.assignment, self.watch)
        self.backoff_until: dict[Any, float] = {}  # partition -> read again after (a dependency failed)
        heartbeat = s.kafka.get("heartbeat_interval_ms", KafkaConsumer.DEFAULT_CONFIG["heartbeat_interval_ms"]) / 1000
        self.leader_grace = max(3.0, 2.5 * heartbeat)  # more than two heartbeats: a follower's leave is seen
        self.exit_after: float | None = None
        self.paused = False
        self.started = self.last_activity = time.monotonic()
        self.last_lag = 0.0
        self.producer = self.http = self.filing = self.dead_letters = self.records = self.markers = self.outcomes = None

    # -- set-up ---------------------------------------------------------------------------
    def _wait_for(self, what: str, f) -> Any:
        """f() until it answers; alive (beating) while waiting, however long the outage."""
        backoff, n = Backoff(cap=self.settings.retry_max_seconds), 0
        while not self.stopping.is_set():
            self.metrics.beat()
            try:
                result = f()
                self.metrics.answered(what)
                return result
            except (Transient, KafkaError) as exc:  # KafkaError: a client that found no broker
                n += 1
                self.metrics.retried(exc.dependency if isinstance(exc, Transient) else "kafka")
                log.warning("dependency unavailable; retrying", extra={"stage": what, "error": str(exc)})
                health.pause(self.stopping, backoff.wait(n), self.metrics.beat)
        return None

    def start(self) -> None:
        s = self.settings
        if s.metrics_port is not None:
            try:
                self.http = serve(self.metrics, s.metrics_port)
            except OSError as exc:
                raise ConfigError("RELIEFDOCS_METRICS_PORT", f"cannot listen on port {s.metrics_port}: "
                                                             f"{exc.strerror}") from None
            log.info("metrics and health endpoints listening", extra={"port": self.http.server_address[1]})
        self.metrics.started = True  # set up; from now on alive while it beats, ready once in the group
        self._wait_for("storage", self.store.check)
        topics = [s.decisions_topic, s.notifications_topic, s.dlq_topic]
        self._wait_for("topics", lambda: broker.ensure_topics(s, topics, create=s.create_topics))
        self.producer = self._wait_for("kafka", lambda: broker.producer(s))
        if self.producer is None:
            return  # stopped while waiting
        self.dead_letters = DeadLetters(self.producer, s.dlq_topic, self.store, broker.max_request_size(s),
                                        on_retry=lambda: self.metrics.retried("broker"),
                                        on_sent=lambda reason: self.metrics.dlq.labels(reason).inc())
        self.markers = BatchMarkers(self.producer, s.decisions_topic, self.batcher, self.metrics,
                                    s.batch_linger_seconds)
        self.records = RecordHandler(events.Schemas(s.schemas_dir),
                                     events.Limits(max_record_bytes=s.max_record_bytes, max_depth=s.max_json_depth),
                                     self.courts, self.batcher, self.dead_letters, self.metrics, self.submit)
        self.outcomes = Outcomes(self.metrics, self.courts, self.ledger, self.batcher, self.dead_letters)
        self.filing = Filing(store=self.store, ledger=self.ledger, converter=self.converter, producer=self.producer,
                             notifications_topic=s.notifications_topic, templates_dir=Path(s.templates_dir),
                             work_dir=self.work.path, chunk_rows=s.exhibit_chunk_rows,
                             retry_max_seconds=s.retry_max_seconds, stopping=self.abandon,
                             on_retry=self.metrics.retried, on_ok=self.metrics.recovered,
                             stage_timer=lambda stage, sec: self.metrics.stage.labels(stage).observe(sec))
        self.watch.start()
        self._wait_for("kafka", self.consumer.subscribe)

    # -- group membership (issue 19) -------------------------------------------------------
    def rejoin(self) -> None:
        """Out of the group past the bound, or the client was closed under a blocked loop."""
        membership = self.assignment.membership
        cause = "loop_blocked" if self.consumer.broken else "no_assignment"
        log.error("not in the consumer group; rejoining with a new consumer",
                  extra={"cause": cause, "out_of_group_seconds": round(membership.out_for(), 1)})
        self.metrics.rejoins.labels(cause).inc()
        self.metrics.joined = False  # not ready until assigned again
        self.apply_rebalances()
        if self.assignment.owned:
            self.on_revoke(set(self.assignment.owned))
            self.assignment.owned.clear()
        self.consumer.renew()
        self.assignment.last_rebalance = time.monotonic()  # not activity: a worker that never gets back in gives up

    def _unblock(self, why: str) -> None:
        """Watchdog thread: the loop is stuck, most likely inside the Kafka client (issue 19)."""
        log.error("worker loop stuck; closing the Kafka consumer to free it", extra={"why": why})
        self.consumer.unblock()

    def _give_up(self, why: str) -> None:
        """Watchdog thread: still stuck. Liveness turns false (Kubernetes restarts the pod); an
        --exit-when-idle job exits 3 instead of waiting forever."""
        self.metrics.dead = why
        log.critical("worker loop cannot recover", extra={"why": why})
        if self.settings.exit_when_idle is not None:
            logging.shutdown()
            os._exit(3)

    # -- rebalancing ----------------------------------------------------------------------
    def apply_rebalances(self) -> None:
        self.assignment.apply(self.on_revoke, self.on_assign)

    def on_revoke(self, revoked: set) -> None:
        log.info("partitions revoked", extra={"partitions": sorted(tp.partition for tp in revoked)})
        # Let the flushes of these partitions finish first, so that their ledger entries exist
        # before this or another worker re-reads the partitions, and their offsets can be committed.
        parts = {tp.partition for tp in revoked}
        deadline = time.monotonic() + min(self.settings.shutdown_seconds, 120.0)
        while self.pool.busy(parts) and time.monotonic() < deadline:
            self.watch.turned()
            self.stopping.wait(0.1)
            self.reap()
        try:
            self.commit(force=True)
        except Exception as exc:  # the group has moved on: the next owner re-reads a little more
            log.info("commit on revoke not accepted", extra={"error": type(exc).__name__})
        for tp in revoked:
            # Open batches are dropped, never committed: the next owner rebuilds them from the log.
            self.batcher.revoke(tp.partition)
            self.commits.forget(tp.partition)
            self.backoff_until.pop(tp, None)
            self.metrics.forget_partition(tp.topic, tp.partition)  # no stale lag series after a rebalance
        self.ledger.forget()
        self.paused = False

    def on_assign(self, assigned: set) -> None:
        self.metrics.joined = True
        log.info("partitions assigned", extra={"partitions": sorted(tp.partition for tp in assigned)})
        for tp in assigned:
            self.batcher.revoke(tp.partition)  # start clean, whatever was read before
            self.batcher.assign(tp.partition)
        self.ledger.forget()
        self.last_activity = time.monotonic()

    # -- records and filings --------------------------------------------------------------
    def read(self, polled: dict) -> int:
        count = 0
        for tp, records in polled.items():
            self.apply_rebalances()
            if tp not in self.assignment.owned or tp in self.assignment.reset_needed:
                continue  # revoked, or to be read again from its committed offset
            for rec in records:
                if self.stopping.is_set():
                    break
                if not self.records.handle(rec):
                    self.consumer.seek(tp, rec.offset)
                    self.backoff_until[tp] = time.monotonic() + random.uniform(0.5, 2.0)
                    break
                count += 1
        return count

    def submit(self, sb: SealedBatch) -> None:
        log.info("batch sealed", extra=summary(sb))
        self.pool.submit(sb)

    def _file(self, sb: SealedBatch) -> dict[str, Any]:
        started = time.perf_counter()
        manifest = file_batch(sb, self.filing)
        self.metrics.stage.labels("flush").observe(time.perf_counter() - started)
        return manifest

    def reap(self) -> None:
        for sb, fut in self.pool.done():
            self.last_activity = time.monotonic()
            self.outcomes.settle(sb, fut)

    # -- offsets and flow -----------------------------------------------------------------
    def commit(self, force: bool = False, settle_seconds: float = 10.0) -> None:
        if not self.commits.due(force):
            return
        if not self.dead_letters.settle(settle_seconds):
            return  # no offset passes a dead letter the broker has not acknowledged
        offsets = self.commits.offsets(self.batcher.committable(), self.assignment.partitions())
        if not offsets:
            return
        try:
            self.consumer.commit(offsets)
        except KafkaError as exc:
            self.metrics.retried("broker")
            log.warning("offset commit failed; will retry", extra={"error": type(exc).__name__})
            return
        self.metrics.recovered("broker")
        self.commits.done(offsets)
        log.debug("committed", extra={"offsets": offsets})

    def backpressure(self) -> None:
        assigned = self.consumer.assigned()
        full = len(self.pool) >= 2 * self.settings.converters
        now = time.monotonic()
        self.backoff_until = {tp: until for tp, until in self.backoff_until.items() if until > now}
        pause = set(assigned) if full else set(self.backoff_until) & assigned
        self.consumer.flow(pause, assigned - pause, self.paused)
        self.paused = bool(pause)

    def gauges(self) -> None:
        m = self.metrics
        m.beat()
        open_batches = self.batcher.open_batches()
        m.open_batches.set(len(open_batches))
        m.oldest_open.set(max((time.monotonic() - ob.opened_at for ob in open_batches), default=0))
        m.in_flight.set(len(self.pool))
        lo = self.converter.stats()
        m.converter(lo.running, lo.started, lo.kills)
        if m.heartbeat - self.last_lag < 5:
            return
        self.last_lag = m.heartbeat
        m.assigned.set(len(self.assignment.owned))
        for partition, lag in self.consumer.lag(self.commits.committed).items():
            m.lag.labels(self.settings.decisions_topic, str(partition)).set(lag)
        for partition, unread in self.consumer.lag({}).items():  # from the position: not yet read
            m.unread.labels(self.settings.decisions_topic, str(partition)).set(unread)

    # -- exit -----------------------------------------------------------------------------
    def idle_blockers(self) -> list[str]:
        now = time.monotonic()
        state = idle.State(now=now, started=self.started, joined=self.assignment.joined,
                           rebalancing=not self.assignment.settled(),
                           filing=bool(len(self.pool) or self.batcher.flushing()),
                           open_batches=bool(self.batcher.open_batches()),
                           dead_letters_pending=bool(self.dead_letters.pending), caught_up=self.consumer.caught_up,
                           last_activity=self.last_activity, last_rebalance=self.assignment.last_rebalance)
        return idle.blockers(state, self.settings.exit_when_idle, self.session_timeout)

    def idle_done(self) -> bool:
        """Idle, and (for the group's leader) still idle after the leader's grace: see
        assignment.leader_aware for the broker bug that makes a leader wait (issue 19)."""
        if self.settings.exit_when_idle is None:
            return False
        if self.idle_blockers():
            self.exit_after = None
            return False
        if not self.consumer.leads():
            return True
        now = time.monotonic()
        if self.exit_after is None:
            self.exit_after = now + self.leader_grace
            log.info("idle; this worker leads the group, so it leaves after a grace",
                     extra={"grace_seconds": self.leader_grace})
        return now >= self.exit_after

    def idle_given_up(self) -> bool:
        """--exit-when-idle never waits without limit: past RELIEFDOCS_EXIT_WHEN_IDLE_TIMEOUT_SECONDS
        without progress the worker exits 3, saying what it was waiting for."""
        if self.settings.exit_when_idle is None:
            return False
        stalled = time.monotonic() - self.last_activity
        if stalled < self.settings.exit_when_idle_timeout_seconds:
            return False
        log.error("gave up waiting to exit idle", extra={"waited_seconds": round(stalled),
                                                         "waiting_for": self.idle_blockers() or ["nothing"]})
        return True

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> int:
        self.start()
        if self.records is None:  # stopped while waiting for a dependency at start
            self.watch.stop()
            self.converter.close()
            self.work.release()
            return 0
        code = 0
        while not self.stopping.is_set():
            self.watch.turned()
            if self.consumer.broken or self.assignment.membership.lost():
                self.rejoin()
            try:
                polled = self.consumer.poll(200 if len(self.pool) else 500)
            except Exception as exc:  # KafkaError, or a client the watchdog closed under it
                self.metrics.retried("broker")
                log.warning("poll failed; retrying", extra={"error": type(exc).__name__})
                self.stopping.wait(1.0)
                continue
            self.metrics.answered("broker")
            self.apply_rebalances()
            count = self.read(self.consumer.reset_positions(polled))
            if count:
                self.last_activity = time.monotonic()
                self.metrics.progress.set(time.time())
            self.reap()
            self.apply_rebalances()
            self.gauges()
            self.markers.tick(lambda: self.settings.exit_when_idle is not None and count == 0
                              and self.consumer.caught_up())
            self.commit(force=bool(count == 0 and self.batcher.committable()))
            self.backpressure()
            if self.idle_done():
                log.info("idle: every partition read to the end and every batch filed; exiting",
                         extra={"idle_seconds": self.settings.exit_when_idle})
                break
            if self.idle_given_up():
                code = 3
                break
        self.shutdown()
        return code

    def shutdown(self) -> None:
        """Bounded: at most health.shutdown_bound() seconds, under the pod's grace period."""
        deadline = time.monotonic() + self.settings.shutdown_seconds
        if len(self.pool):
            log.info("stopping: waiting for running flushes", extra={"flushes": len(self.pool),
                                                                    "deadline_seconds": self.settings.shutdown_seconds})
        while len(self.pool) and time.monotonic() < deadline:
            self.watch.turned()
            try:
                self.consumer.poll(200)  # stay in the group while flushes finish
            except Exception:
                self.abandon.wait(0.2)
            self.reap()
        if len(self.pool):
            log.warning("shutdown deadline passed; abandoning running flushes (not committed)",
                        extra={"flushes": len(self.pool)})
            self.abandon.set()
            self.converter.abort()
            for sb in self.pool.batches():
                self.batcher.revoke(sb.partition)  # nothing of an abandoned batch's partition is committed further
        try:
            self.commit(force=True, settle_seconds=health.SETTLE_SECONDS)
        except Exception as exc:
            log.warning("final commit failed", extra={"error": type(exc).__name__})
        self.watch.stop()
        self.consumer.close()
        self.converter.close()
        self.work.release()
        try:
            self.producer.flush(timeout=health.PRODUCER_SECONDS)
            self.producer.close(timeout=health.PRODUCER_SECONDS)
        except Exception:
            pass
        log.info("worker stopped", extra={"summary": self.metrics.summary()})


def run(settings: Settings) -> int:
    worker = Worker(settings)

    def stop(signum, frame):
        log.info("signal received; stopping", extra={"signal": signal.Signals(signum).name})
        worker.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1 PID` prints every thread's stack
    return worker.run()
