"""The conductor: consume, batch, queue, file, commit. It only wires the parts together, each
in its own module and tested on its own:

- `consumer.GroupConsumer`: the Kafka edge (poll, commit, seek, pause, lag, rejoin); one
  consumer reads the decisions topic (role compose) and the work topic (role file);
- `assignment.Assignment`: rebalance events, applied on this loop at a safe point;
- `membership`: out of the group too long -> rejoin; a loop blocked in the client -> watchdog;
- `records.RecordHandler`: one decision record -> open batch, not filed, or dead letter;
- `workqueue.Queue`: a sealed batch made a work item on a pool thread (`pool.FilingPool`);
- `filer.Filer`: work items filed on worker threads (`filer.FileWork` -> `flush.file_batch`);
- `deadletters.DeadLetters`: the DLQ, acknowledged before any commit past it;
- `offsets.Committer`: decisions committed up to the oldest batch not yet queued, work items
  up to the first not yet settled;
- `flow.Flow`: pausing what cannot be taken now, and the lag gauges;
- `lookahead.Lookahead`: composing paused while it runs too far ahead of the group's filing;
- `idle`: when `--exit-when-idle` may exit, and what it still waits for.

Time (linger, idle, shutdown) never seals a batch directly: a batch-closed marker is
published to the decisions topic and the batch is sealed when the marker is read back.
"""

from __future__ import annotations

import faulthandler
import logging
import signal
import threading
import time
from typing import Any


from service import broker, events, health, idle, workdir
from service.assignment import Assignment
from service.batching import Batcher, SealedBatch, summary
from service.config import ROLES, Settings
from service.consumer import GroupConsumer
from service.convert import libreoffice
from service.deadletters import DeadLetters
from service.flow import Flow
from service.filer import FileWork, Filer
from service.flush import Filing, bundle_id_of, retry
from service.ledger import StoreLedger
from service.lookahead import Lookahead, workers_estimate
from service.markers import BatchMarkers
from service.membership import LoopWatch, Membership
from service.rebalance import Rebalancer
from service.metrics import Metrics, serve
from service.offsets import Committer
from service.workqueue import Queue
from service.outcomes import Outcomes
from service.pool import FilingPool
from service.records import RecordHandler, record_of
from service.render import Courts
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
        self.pool = FilingPool(2, lambda sb: self.queue(sb))  # sealed batches made work items (service/workqueue.py)
        self.session_timeout, heartbeat = broker.group_timeouts(s)
        revoke_wait = min(s.shutdown_seconds, 120.0)  # how long a revocation waits for running filings
        # longer than a healthy rebalance can take (a member waiting for its filings on a revocation):
        # a worker that left a rebalance still forming would trip the local broker's bug (issue 19)
        rejoin = s.rejoin_timeout_seconds or max(30.0, 4 * self.session_timeout, revoke_wait + 2 * self.session_timeout)
        self.assignment = Assignment(Membership(rejoin), incremental=s.assignor == "cooperative-sticky")
        self.filer = Filer(s.converters + 1, lambda item: self.file_work(item), None, None, m)  # see service/pool.py for the + 1
        self.rebalancer = Rebalancer(self.assignment, None, self.batcher, self.ledger, self.pool,
                                     self.filer, m, self.stopping, revoke_wait, reap=self.reap,
                                     commit=lambda: self.commit(force=True), forget=self._forget,
                                     active=self._active, decisions_topic=s.decisions_topic)
        self.watch = LoopWatch(rejoin, unblock=self.rebalancer.unblock, give_up=self.rebalancer.give_up, on_turn=m.beat)
        self.consumer = self.rebalancer.consumer = GroupConsumer(s, self.assignment, self.watch)
        # composing and filing in one group: composing waits while it runs ahead of the group's filing
        self.offsets: broker.GroupOffsets | None = None  # the work topic's committed offsets, made at start
        self.lookahead = Lookahead(s.compose_ahead if s.roles == frozenset(ROLES) else 0, self._filers)
        self.flow = Flow(self.consumer, s.decisions_topic, lambda: len(self.pool), self.filer.full,
                         ahead_full=self.lookahead.full)
        self.rebalancer.watch, self.rebalancer.exit_when_stuck = self.watch, s.exit_when_idle is not None
        self.idle = idle.IdleExit(s.exit_when_idle, s.exit_when_idle_timeout_seconds, self.session_timeout,
                                  leader_grace=max(3.0, 2.5 * heartbeat),  # > two heartbeats: a follower's leave is seen
                                  state=self._idle_state, leads=self.consumer.leads)
        self.started = self.last_activity = time.monotonic()
        self.producer = self.http = self.dead_letters = self.records = self.markers = self.outcomes = None
        self.queue = self.file_work = self.commit = None

    # -- set-up ---------------------------------------------------------------------------
    def _wait_for(self, what: str, f) -> Any:
        return health.wait_for(what, f, self.stopping, self.settings.retry_max_seconds, self.metrics)

    def start(self) -> None:
        s = self.settings
        self.http = serve(self.metrics, s.metrics_port) if s.metrics_port is not None else None
        self.metrics.started = True  # set up; from now on alive while it beats, ready once in the group
        self._wait_for("storage", self.store.check)
        topics = {s.decisions_topic: 3, s.notifications_topic: 3, s.dlq_topic: 3, s.work_topic: s.work_partitions}
        self._wait_for("topics", lambda: broker.ensure_topics(s, topics, create=s.create_topics))
        self.producer = self._wait_for("kafka", lambda: broker.producer(s))
        if self.producer is None:
            return  # stopped while waiting
        self.dead_letters = DeadLetters(self.producer, s.dlq_topic, self.store, broker.max_request_size(s),
                                        on_retry=lambda: self.metrics.retried("broker"),
                                        on_sent=lambda reason: self.metrics.dlq.labels(reason).inc())
        self.markers = BatchMarkers(self.producer, s.decisions_topic, self.batcher, self.metrics,
                                    s.batch_linger_seconds)
        schemas = events.Schemas(s.schemas_dir)
        limits = events.Limits(max_record_bytes=s.max_record_bytes, max_depth=s.max_json_depth)
        self.records = RecordHandler(schemas, limits, self.courts, self.batcher, self.dead_letters, self.metrics,
                                     self.submit)
        self.outcomes = self.filer.outcomes = Outcomes(self.metrics, self.courts, self.batcher, self.dead_letters)
        self.filer.dead_letters = self.dead_letters
        filing = Filing.of(s, self.store, self.ledger, self.converter, self.producer, self.work.path, self.abandon,
                           self.metrics)
        again = lambda f, what: retry(f, what, filing)  # noqa: E731  (the one backoff policy: service/retry.py)
        self.queue = Queue(self.store, self.producer, s.work_topic, self.ledger, bundle_id_of, again,
                           timer=filing.stage_timer, queued=self.lookahead.queued)
        self.file_work = FileWork(filing, self.ledger, schemas, limits, again)
        self.commit = Committer([s.decisions_topic, s.work_topic],
                                committable=lambda: {s.decisions_topic: self.batcher.committable(),
                                                     s.work_topic: self.filer.committable()},
                                owned=self.assignment.by_topic, settle=self.dead_letters.settle,
                                send=self.consumer.commit, metrics=self.metrics)
        self.watch.start()
        self._wait_for("kafka", self.consumer.subscribe)
        if self.lookahead.compose_ahead:
            admin = self._wait_for("kafka", lambda: broker.admin(s))
            if admin is not None:
                self.offsets = broker.GroupOffsets(admin, broker.consumer_group(s), s.work_topic)
                self.lookahead.start(self.offsets)

    # -- rebalancing (service/rebalance.py) -----------------------------------------------
    def _forget(self, tp: Any) -> None:
        self.flow.forget(tp)
        if self.commit is not None:
            self.commit.forget(tp.topic, tp.partition)

    def _filers(self) -> int:
        """How many workers file, estimated from this worker's share of the work partitions."""
        total = (self.queue.partitions if self.queue is not None else None) or self.settings.work_partitions
        return workers_estimate(total, len(self.assignment.by_topic().get(self.settings.work_topic, ())))

    def _active(self) -> None:
        self.last_activity = time.monotonic()

    # -- records and filings --------------------------------------------------------------
    def read(self, polled: dict) -> int:
        count = 0
        for tp, records in polled.items():
            self.rebalancer.apply()
            if tp not in self.assignment.owned or tp in self.assignment.reset_needed:
                continue  # revoked, or to be read again from its committed offset
            if tp.topic != self.settings.decisions_topic:
                for rec in records:  # work items: the filer takes them all (paused while it is full)
                    self.filer.take(record_of(rec))
                count += len(records)
                continue
            for rec in records:
                if self.stopping.is_set():
                    break
                if not self.records.handle(rec):
                    self.consumer.seek(tp, rec.offset)
                    self.flow.read_again_later(tp)
                    break
                count += 1
        return count

    def submit(self, sb: SealedBatch) -> None:
        log.info("batch sealed", extra=summary(sb))
        self.pool.submit(sb)

    def reap(self) -> None:
        for sb, fut in self.pool.done():
            self.last_activity = time.monotonic()
            self.outcomes.queued(sb, fut)
        if self.filer.reap():
            self.last_activity = time.monotonic()

    # -- flow ---------------------------------------------------------------------------
    def gauges(self) -> None:
        lo = self.converter.stats()
        self.metrics.sample(self.batcher.open_batches(), len(self.pool) + len(self.filer), lo.running, lo.started,
                            lo.kills)
        waiting = self.lookahead.waiting()  # None: not bounded now (disabled, or no fresh reading)
        self.metrics.ahead.set(waiting or 0)
        self.metrics.ahead_limit.set(self.lookahead.limit() if self.lookahead.compose_ahead and waiting is not None
                                     else 0)
        self.flow.lags(self.metrics, {t: p.committed for t, p in self.commit.policies.items()},
                       len(self.assignment.owned))

    # -- exit (service/idle.py) -----------------------------------------------------------
    def _idle_state(self) -> idle.State:
        return idle.State(now=time.monotonic(), started=self.started, joined=self.assignment.joined,
                          rebalancing=not self.assignment.settled(),
                          filing=bool(len(self.pool) or self.batcher.flushing() or self.filer.working()),
                          open_batches=bool(self.batcher.open_batches()),
                          dead_letters_pending=bool(self.dead_letters.pending), caught_up=self.consumer.caught_up,
                          last_activity=self.last_activity, last_rebalance=self.assignment.last_rebalance)

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
            self.rebalancer.rejoin_if_needed()
            try:
                polled = self.consumer.poll(200 if len(self.pool) else 500)
            except Exception as exc:  # KafkaError, or a client the watchdog closed under it
                self.metrics.retried("broker")
                log.warning("poll failed; retrying", extra={"error": type(exc).__name__})
                self.stopping.wait(1.0)
                continue
            self.metrics.answered("broker")
            self.rebalancer.apply()
            count = self.read(self.consumer.reset_positions(polled))
            if count:
                self.last_activity = time.monotonic()
                self.metrics.progress.set(time.time())
            self.reap()
            self.rebalancer.apply()
            self.gauges()
            self.markers.tick(lambda: self.settings.exit_when_idle is not None and count == 0
                              and self.consumer.caught_up())
            self.commit(force=bool(count == 0 and self.batcher.committable()))
            self.flow.apply()
            if self.idle.done():
                log.info("idle: every partition read to the end and every batch filed; exiting",
                         extra={"idle_seconds": self.settings.exit_when_idle})
                break
            if self.idle.given_up(self.last_activity):
                code = 3
                break
        self.shutdown()
        return code

    def shutdown(self) -> None:
        """Bounded: at most health.shutdown_bound() seconds, under the pod's grace period."""
        deadline = time.monotonic() + self.settings.shutdown_seconds
        self.filer.stop()  # work items not started stay for the next owner
        busy = lambda: len(self.pool) + len(self.filer.pool)  # noqa: E731
        if busy():
            log.info("stopping: waiting for running flushes", extra={"flushes": busy(),
                                                                    "deadline_seconds": self.settings.shutdown_seconds})
        while busy() and time.monotonic() < deadline:
            self.watch.turned()
            try:
                self.consumer.poll(200)  # stay in the group while flushes finish
            except Exception:
                self.abandon.wait(0.2)
            self.reap()
        if busy():
            log.warning("shutdown deadline passed; abandoning running flushes (not committed)",
                        extra={"flushes": busy()})
            self.abandon.set()
            self.converter.abort()
            for sb in self.pool.batches():
                self.batcher.revoke(sb.partition)  # nothing of an abandoned batch's partition is committed further
        try:
            self.commit(force=True, settle_seconds=health.SETTLE_SECONDS)
        except Exception as exc:
            log.warning("final commit failed", extra={"error": type(exc).__name__})
        self.watch.stop()
        self.lookahead.stop()
        if self.offsets is not None:
            self.offsets.close()
        self.consumer.close()
        self.converter.close()
        self.work.release()
        broker.close_producer(self.producer, health.PRODUCER_SECONDS)
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
