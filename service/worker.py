"""The conductor: consume, batch, file, commit. Each stage lives in its own module; this
loop only moves records and batches between them and decides what may be committed.

- The consumer thread polls, validates and batches records; it never blocks on a flush.
- Sealed batches are filed on worker threads (`converters` + 1 at once, sharing `converters`
  LibreOffice processes); while too many are in
  flight the partitions are paused but polling goes on, so a long flush never exceeds
  max.poll.interval.ms and never gets the worker thrown out of its group.
- Offsets are committed only up to the first record of the oldest batch not yet filed, after
  every dead letter before them is acknowledged.
- Time (linger, idle, shutdown) never seals a batch directly: a batch-closed marker is
  published to the decisions topic and the batch is sealed when the marker is read back.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import queue
import random
import signal
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from kafka import ConsumerRebalanceListener
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition

from service import broker, events, workdir
from service.batching import Batcher, OpenBatch, Outcome, Record, SealedBatch, summary
from service.config import Settings
from service.convert import LibreOffice
from service.deadletters import DeadLetters
from service.errors import BatchFailed, ConfigError, Rejected, Transient
from service.flush import Abandoned, Filing, file_batch
from service.ledger import StoreLedger
from service.membership import LoopWatch, Membership
from service.metrics import Metrics, serve
from service.retry import Backoff
from service.render import Courts
from service.store import open_store

log = logging.getLogger("reliefdocs.worker")
MARKER_SOURCE = "urn:reliefdocs:worker"


class _Rebalance(ConsumerRebalanceListener):
    """kafka-python 3 calls these on its network loop, possibly while the worker's loop is
    handling records. They only queue the event: the loop applies it at a safe point. (They
    must not wait for the broker either: a commit from there never completes.)"""

    def __init__(self, worker: "Worker"):
        self.worker = worker

    def on_partitions_revoked(self, revoked):
        self.worker.rebalancing = True
        self.worker.membership.revoked()
        self.worker.rebalance_events.put(("revoked", set(revoked)))

    def on_partitions_assigned(self, assigned):
        self.worker.membership.assigned()
        self.worker.rebalance_events.put(("assigned", set(assigned)))

    def on_partitions_lost(self, lost):
        self.worker.rebalancing = True
        self.worker.membership.revoked()
        self.worker.rebalance_events.put(("revoked", set(lost)))


class Worker:
    def __init__(self, settings: Settings):
        self.s = settings
        self.schemas = events.Schemas(settings.schemas_dir)
        self.stopping = threading.Event()  # SIGTERM: stop taking records
        self.abandon = threading.Event()  # shutdown deadline passed: give up running flushes
        self.store = open_store(settings)
        self.metrics = Metrics()
        self.ledger = StoreLedger(self.store, on_corrupt=lambda outcome: self.metrics.ledger_corrupt.labels(outcome).inc())
        self.limits = events.Limits(max_record_bytes=settings.max_record_bytes, max_depth=settings.max_json_depth)
        self.batcher = Batcher(settings.batch_max_cases, self.ledger)
        self.courts = Courts(settings.templates_dir, settings.allow_default_court)
        self.work = workdir.claim(settings.work_dir)  # its own folder; removes those of dead workers
        self.work_dir = self.work.path
        self.converter = LibreOffice(settings.soffice, self.work_dir, settings.converters,
                                     settings.convert_timeout_seconds, settings.libreoffice_mode,
                                     settings.libreoffice_python)
        # one batch more in flight than LibreOffice processes: while a batch is rendered, merged or
        # stored (Python), the LibreOffice processes convert the others' documents (6 % faster at
        # 15,000 decisions, `make bench`)
        self.slots = threading.Semaphore(settings.converters + 1)
        self.inflight: dict[Future, SealedBatch] = {}
        self.committed: dict[int, int] = {}
        self.backoff_until: dict[TopicPartition, float] = {}
        self.paused = False
        self.joined = False
        self.started = time.monotonic()
        self.last_activity = time.monotonic()
        self.last_timers = 0.0
        self.last_commit = 0.0
        self.consumer = None
        self.producer = None
        self.http = None
        self.last_rebalance = time.monotonic()
        self.rebalancing = False
        self.rebalance_events: queue.Queue = queue.Queue()
        self.owned: set = set()  # the assignment as the loop has applied it
        self.reset_needed: set = set()
        self.last_lag = 0.0
        from kafka import KafkaConsumer

        self.session_timeout = float(settings.kafka.get("session_timeout_ms",
                                                        KafkaConsumer.DEFAULT_CONFIG["session_timeout_ms"])) / 1000
        rejoin = settings.rejoin_timeout_seconds or max(30.0, 4 * self.session_timeout)
        self.membership = Membership(rejoin)
        self.watch = LoopWatch(rejoin, unblock=self._unblock, give_up=self._give_up)
        self.consumer_broken = False

    # -- metrics --------------------------------------------------------------------------
    @staticmethod
    def _dependency(name: str) -> str:
        return {"kafka": "broker", "storage": "s3"}.get(name, name)  # storage: a file:// store

    def retried(self, dependency: str) -> None:
        dependency = self._dependency(dependency)
        self.metrics.retries.labels(dependency).inc()
        self.metrics.dependency(dependency, False)

    def recovered(self, dependency: str) -> None:
        self.metrics.dependency(self._dependency(dependency), True)

    def gauges(self) -> None:
        m = self.metrics
        m.heartbeat = time.monotonic()
        open_batches = self.batcher.open_batches()
        m.open_batches.set(len(open_batches))
        m.oldest_open.set(max((time.monotonic() - ob.opened_at for ob in open_batches), default=0))
        m.in_flight.set(len(self.inflight))
        m.lo_running.set(self.converter.running())
        m.lo_started._value.set(self.converter.processes_started)
        m.lo_kills._value.set(self.converter.kills)
        now = time.monotonic()
        if now - self.last_lag < 5:
            return
        self.last_lag = now
        assignment = self.consumer.assignment()
        m.assigned.set(len(assignment))
        for tp in assignment:
            hw = self.consumer.highwater(tp)
            if hw is not None:
                done = self.committed.get(tp.partition)
                if done is None:
                    try:
                        done = self.consumer.position(tp, timeout_ms=1000)
                    except KafkaError:
                        continue
                m.lag.labels(tp.topic, str(tp.partition)).set(max(0, hw - done))

    def summary(self) -> dict[str, Any]:
        m = self.metrics
        total = lambda metric: sum(s.value for f in metric.collect() for s in f.samples if s.name.endswith("_total"))
        return {"decisions_filed": total(m.filed), "bundles": total(m.bundles), "pages": total(m.pages),
                "dead_letters": total(m.dlq), "not_filed": total(m.not_filed), "retries": total(m.retries)}

    # -- set-up ---------------------------------------------------------------------------
    def _wait_for(self, what: str, f) -> Any:
        backoff, n = Backoff(cap=self.s.retry_max_seconds), 0
        while not self.stopping.is_set():
            try:
                result = f()
                if n:
                    self.recovered(self._dependency_of(what))
                return result
            except Transient as exc:
                n += 1
                self.retried(exc.dependency)
                log.warning("dependency unavailable; retrying", extra={"stage": what, "error": str(exc)})
                self.metrics.heartbeat = time.monotonic()  # waiting for a dependency is not being stuck
                self.stopping.wait(backoff.wait(n))
        return None

    @staticmethod
    def _dependency_of(what: str) -> str:
        return {"storage": "s3", "topics": "broker"}.get(what, what)

    def start(self) -> None:
        self.converter.check()
        if self.s.metrics_port is not None:
            try:
                self.http = serve(self.metrics, self.s.metrics_port)
            except OSError as exc:
                raise ConfigError("RELIEFDOCS_METRICS_PORT", f"cannot listen on port {self.s.metrics_port}: "
                                                             f"{exc.strerror}") from None
            log.info("metrics and health endpoints listening", extra={"port": self.http.server_address[1]})
        self._wait_for("storage", self.store.check)
        topics = [self.s.decisions_topic, self.s.notifications_topic, self.s.dlq_topic]
        self._wait_for("topics", lambda: broker.ensure_topics(self.s, topics))
        self.producer = broker.producer(self.s)
        self.watch.start()
        self.dead_letters = DeadLetters(self.producer, self.s.dlq_topic, self.store, broker.max_request_size(self.s),
                                        on_retry=lambda: self.retried("broker"),
                                        on_sent=lambda reason: self.metrics.dlq.labels(reason).inc())
        self.subscribe()
        self.filing = Filing(store=self.store, ledger=self.ledger, converter=self.converter, producer=self.producer,
                             notifications_topic=self.s.notifications_topic, templates_dir=Path(self.s.templates_dir),
                             work_dir=self.work_dir, chunk_rows=self.s.exhibit_chunk_rows,
                             retry_max_seconds=self.s.retry_max_seconds, stopping=self.abandon,
                             on_retry=self.retried, on_ok=self.recovered,
                             stage_timer=lambda stage, sec: self.metrics.stage.labels(stage).observe(sec))

    # -- group membership (issue 19) -------------------------------------------------------
    def subscribe(self) -> None:
        self.consumer = broker.consumer(self.s)
        self.consumer.subscribe([self.s.decisions_topic], listener=_Rebalance(self))
        self.membership.subscribed()

    def rejoin(self, why: str) -> None:
        """Leave the old consumer behind and join the group again with a new one."""
        log.error("not in the consumer group; rejoining with a new consumer",
                  extra={"why": why, "out_of_group_seconds": round(self.membership.out_for(), 1)})
        self.metrics.rejoins.labels("loop_blocked" if self.consumer_broken else "no_assignment").inc()
        self.apply_rebalances()
        if self.owned:
            self._revoke(set(self.owned))
        self.reset_needed.clear()
        while not self.rebalance_events.empty():
            self.rebalance_events.get_nowait()
        self.rebalancing = False
        old, self.consumer_broken = self.consumer, False
        closing = threading.Thread(target=_close_quietly, args=(old,), name="consumer-close", daemon=True)
        closing.start()
        closing.join(10)  # a close that hangs too is left behind on its daemon thread
        self.subscribe()
        self.last_rebalance = self.last_activity = time.monotonic()

    def _unblock(self, why: str) -> None:
        """Watchdog thread: the loop is stuck, most likely inside the Kafka client (issue 19).
        Closing the consumer fails the call it is blocked in; the loop then rejoins."""
        log.error("worker loop stuck; closing the Kafka consumer to free it", extra={"why": why})
        self.consumer_broken = True
        threading.Thread(target=_close_quietly, args=(self.consumer,), name="consumer-unblock", daemon=True).start()

    def _give_up(self, why: str) -> None:
        """Watchdog thread: the loop is still stuck. Liveness turns false (Kubernetes restarts the
        pod); an --exit-when-idle job exits 3 instead of waiting forever."""
        self.metrics.dead = why
        log.critical("worker loop cannot recover", extra={"why": why})
        if self.s.exit_when_idle is not None:
            logging.shutdown()
            os._exit(3)

    # -- rebalancing ----------------------------------------------------------------------
    def apply_rebalances(self) -> None:
        """Apply the rebalance events the listener queued, in order (on the worker's loop)."""
        while True:
            try:
                kind, tps = self.rebalance_events.get_nowait()
            except queue.Empty:
                return
            if kind == "revoked":
                self._revoke(tps)
            else:
                self._assign(tps)

    def _revoke(self, revoked: set) -> None:
        log.info("partitions revoked", extra={"partitions": sorted(tp.partition for tp in revoked)})
        self.last_rebalance = time.monotonic()
        # Let the flushes of these partitions finish first, so that their ledger entries exist
        # before this or another worker re-reads the partitions, and their offsets can be committed.
        parts = {tp.partition for tp in revoked}
        deadline = time.monotonic() + min(self.s.shutdown_seconds, 120.0)
        while any(sb.partition in parts for sb in self.inflight.values()) and time.monotonic() < deadline:
            time.sleep(0.1)
            self.reap()
        try:
            self.commit(force=True)
        except Exception as exc:  # the group has moved on: the next owner re-reads a little more
            log.info("commit on revoke not accepted", extra={"error": type(exc).__name__})
        for tp in revoked:
            # Open batches are dropped, never committed: the next owner rebuilds them from the log.
            self.batcher.revoke(tp.partition)
            self.committed.pop(tp.partition, None)
            self.backoff_until.pop(tp, None)
            self.reset_needed.discard(tp)
            self.owned.discard(tp)
        self.ledger.forget()
        self.paused = False

    def _assign(self, assigned: set) -> None:
        self.joined = self.metrics.joined = True
        self.last_rebalance = time.monotonic()
        log.info("partitions assigned", extra={"partitions": sorted(tp.partition for tp in assigned)})
        for tp in assigned:
            self.batcher.revoke(tp.partition)  # start clean, whatever was read before
            self.batcher.assign(tp.partition)
        self.owned |= assigned
        # Every assigned partition is read again from its committed offset (see reset_positions).
        self.reset_needed |= set(assigned)
        self.ledger.forget()
        self.last_activity = time.monotonic()
        self.rebalancing = not self.rebalance_events.empty()

    def reset_positions(self, polled: dict) -> dict:
        """Seek newly assigned partitions to their committed offsets, dropping what this poll
        returned for them. kafka-python keeps the fetch position of a partition that comes back
        to the same member, but the batches read since the committed offset were dropped on
        revocation: reading on from the old position would lose them."""
        if not self.reset_needed:
            return polled
        done = set()
        for tp in list(self.reset_needed):
            if tp not in self.consumer.assignment():
                done.add(tp)
                continue
            try:
                committed = self.consumer.committed(tp, timeout_ms=10000)
            except KafkaError as exc:
                log.warning("committed offset not available yet; will retry",
                            extra={"partition": tp.partition, "error": type(exc).__name__})
                continue
            if committed is None:
                self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, committed)
            done.add(tp)
        dropped = set(self.reset_needed)
        self.reset_needed -= done
        return {tp: recs for tp, recs in polled.items() if tp not in dropped}

    # -- records --------------------------------------------------------------------------
    def handle(self, rec) -> bool:
        """Process one record: it ends filed, not filed, or dead-lettered, whatever its bytes.
        False: a dependency failed; the record must be read again."""
        r = Record(rec.topic, rec.partition, rec.offset, rec.timestamp, rec.key, rec.value, tuple(rec.headers or ()))
        try:
            self._handle(r)
            return True
        except Transient as exc:
            self.retried(exc.dependency)
            log.warning("dependency unavailable while handling a record; will re-read",
                        extra={"partition": r.partition, "offset": r.offset, "error": str(exc)})
            return False
        except Rejected as rej:
            if rej.reason == "internal_error":  # validation itself failed: keep the stack for the developer
                log.error("validation failed unexpectedly", extra={"partition": r.partition, "offset": r.offset},
                          exc_info=rej.__cause__)
            return self.reject(r, rej.reason, rej.message)
        except Exception as exc:  # a bug, or input nobody foresaw: the record goes, the worker stays
            log.error("record could not be handled; dead-lettering it",
                      extra={"partition": r.partition, "offset": r.offset, "error": type(exc).__name__},
                      exc_info=exc)
            return self.reject(r, "internal_error", f"{type(exc).__name__} while handling the record")

    def _handle(self, r: Record) -> None:
        started = time.perf_counter()
        try:
            event = events.parse(r.key, r.value, r.headers, self.schemas, self.limits)
            self.courts.check(event.court_code)
        finally:
            self.metrics.stage.labels("validate").observe(time.perf_counter() - started)
        validated = time.perf_counter()
        outcome, sealed = self.batcher.add(r, event)
        self.metrics.stage.labels("batch").observe(time.perf_counter() - validated)
        kind = "decision" if isinstance(event, events.Decision) else "batch_closed"
        self.metrics.records.labels(kind, outcome).inc()
        if isinstance(event, events.Decision) and outcome in (Outcome.DUPLICATE, Outcome.ALREADY_FILED):
            log.info("duplicate decision skipped", extra={"decision_id": event.decision_id, "outcome": outcome,
                                                          "court": event.court_code})
        if isinstance(event, events.Decision) and outcome == Outcome.NOT_FILED:
            self.metrics.not_filed.labels(event.relief).inc()
        for sb in sealed:
            self.submit(sb)

    def reject(self, r: Record, reason: str, message: str) -> bool:
        """Dead-letter one record (sent, or resent until acknowledged before any commit past it)."""
        self.dead_letters.send(r, reason, message)
        self.batcher.skip(r)
        self.metrics.records.labels("unusable", "dead_lettered").inc()
        return True

    # -- flushes --------------------------------------------------------------------------
    def submit(self, sb: SealedBatch) -> None:
        fut: Future = Future()
        self.inflight[fut] = sb
        log.info("batch sealed", extra=summary(sb))

        def run() -> None:
            with self.slots:
                if not fut.set_running_or_notify_cancel():
                    return
                try:
                    started = time.perf_counter()
                    manifest = file_batch(sb, self.filing)
                    self.metrics.stage.labels("flush").observe(time.perf_counter() - started)
                    fut.set_result(manifest)
                except BaseException as exc:  # handed to the consumer thread by reap()
                    fut.set_exception(exc)

        threading.Thread(target=run, name=f"flush-{sb.court_code}-{sb.volume}", daemon=True).start()

    def reap(self) -> None:
        for fut in [f for f in self.inflight if f.done()]:
            sb = self.inflight.pop(fut)
            self.last_activity = time.monotonic()
            exc = fut.exception()
            owned = self.batcher.owns(sb)
            if exc is None:
                manifest = fut.result()
                self.metrics.bundles.labels(self.courts.label(sb.court_code)).inc()
                self.metrics.filed.labels(self.courts.label(sb.court_code)).inc(len(sb.decisions))
                self.metrics.pages.inc(manifest["documents"][0].get("pages") or 0)
                self.metrics.bytes.inc(sum(d["bytes"] for d in manifest["documents"]))
                self.check_expected_count(sb)
                self.metrics.progress.set(time.time())
            elif isinstance(exc, Abandoned):
                continue  # shutting down: left uncommitted
            else:
                reason, message = ((exc.reason, exc.message) if isinstance(exc, BatchFailed)
                                   else ("internal_error", f"{type(exc).__name__} while filing the batch"))
                log.error("batch failed; dead-lettering its records",
                          extra={**summary(sb), "reason": reason, "detail": message},
                          exc_info=None if isinstance(exc, BatchFailed) else exc)
                self.metrics.batches_failed.labels(reason).inc()
                if owned:
                    for r in sb.records:
                        self.dead_letters.send(r, reason, f"{message} (batch {sb.batch_id} volume {sb.volume})")
            if owned:
                self.batcher.done(sb)

    def check_expected_count(self, sb: SealedBatch) -> None:
        if sb.expected_count is None:
            return
        try:
            filed = self.ledger.filed_count(sb.court_code, sb.batch_id)
        except Transient as exc:  # only a metric depends on it: never stop the loop for it
            log.warning("expected count not checked", extra={"court": sb.court_code, "error": str(exc)})
            return
        if sb.expected_count != filed:
            self.metrics.count_mismatch.inc()

    # -- time-based boundaries ------------------------------------------------------------
    def publish_marker(self, ob: OpenBatch, reason: str) -> None:
        data = {"court_code": ob.court_code, "batch_id": ob.batch_id, "reason": reason, "volume": ob.volume}
        event_id = f"reliefdocs-close-{ob.court_code}-{ob.batch_id}-v{ob.volume}-{reason}"
        event = events.cloudevent(events.BATCH_CLOSED, event_id, MARKER_SOURCE,
                                  time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), data)
        try:
            broker.send_json(self.producer, self.s.decisions_topic, ob.court_code, event)
        except Transient as exc:
            self.retried("broker")
            log.warning("batch marker not published; will retry", extra={"court": ob.court_code,
                                                                         "batch_id": ob.batch_id, "error": str(exc)})
            return
        ob.marker_sent = reason
        self.metrics.markers.labels(reason).inc()
        log.info("batch marker published", extra={"court": ob.court_code, "batch_id": ob.batch_id,
                                                  "volume": ob.volume, "reason": reason})

    def timers(self, polled: int) -> None:
        now = time.monotonic()
        if now - self.last_timers < 1.0:
            return
        self.last_timers = now
        for ob in self.batcher.lingering(self.s.batch_linger_seconds):
            self.publish_marker(ob, "linger")
        if self.s.exit_when_idle is not None and polled == 0 and self.caught_up():
            for ob in self.batcher.open_batches():
                if ob.marker_sent is None:
                    self.publish_marker(ob, "idle")

    def caught_up(self) -> bool:
        for tp in self.consumer.assignment():
            hw = self.consumer.highwater(tp)
            if hw is None:
                return False
            try:
                if self.consumer.position(tp, timeout_ms=2000) < hw:
                    return False
            except KafkaError:
                return False
        return True

    # -- offsets --------------------------------------------------------------------------
    def commit(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_commit < 1.0:
            return
        self.last_commit = now
        if not self.dead_letters.settle():
            return  # no offset passes a dead letter the broker has not acknowledged
        assigned = {tp.partition for tp in self.owned}
        offsets = {TopicPartition(self.s.decisions_topic, p): OffsetAndMetadata(off, "", -1)
                   for p, off in self.batcher.committable().items()
                   if p in assigned and off > self.committed.get(p, -1)}
        if not offsets:
            return
        try:
            self.consumer.commit(offsets, timeout_ms=10000)
        except KafkaError as exc:
            self.retried("broker")
            log.warning("offset commit failed; will retry", extra={"error": type(exc).__name__})
            return
        self.recovered("broker")
        for tp, om in offsets.items():
            self.committed[tp.partition] = om.offset
        log.debug("committed", extra={"offsets": {tp.partition: om.offset for tp, om in offsets.items()}})

    # -- flow control ---------------------------------------------------------------------
    def backpressure(self) -> None:
        assignment = self.consumer.assignment()
        full = len(self.inflight) >= 2 * self.s.converters
        now = time.monotonic()
        waiting = {tp for tp, until in self.backoff_until.items() if until > now}
        for tp in [tp for tp, until in self.backoff_until.items() if until <= now]:
            del self.backoff_until[tp]
        pause = set(assignment) if full else waiting & set(assignment)
        resume = set(assignment) - pause
        if pause:
            self.consumer.pause(*pause)
        if resume and (self.paused or self.consumer.paused()):
            self.consumer.resume(*resume)
        self.paused = bool(pause)

    def idle_blockers(self) -> list[str]:
        """What keeps an --exit-when-idle worker from exiting now (nothing: it may exit)."""
        now = time.monotonic()
        if not self.joined and now - self.started < (self.s.exit_when_idle or 0) + 30:
            return ["a first assignment from the consumer group"]
        if self.rebalancing or self.reset_needed or not self.rebalance_events.empty():
            return ["a rebalance to complete"]
        waiting = [what for what, pending in (
            ("batches being filed", self.inflight or self.batcher.flushing()),
            ("open batches to be sealed", self.batcher.open_batches()),
            ("dead letters to be acknowledged", self.dead_letters.pending)) if pending]
        if not waiting and not self.caught_up():
            waiting.append("its partitions to be read to the end")
        if now - self.last_activity < self.s.exit_when_idle:
            waiting.append(f"{self.s.exit_when_idle:g} s without new records")
        # A member that died without leaving the group keeps its partitions until its session times
        # out; leaving before that could leave them to nobody. So exit only once the assignment has
        # been stable for longer than a session: any dead member would have been evicted by then,
        # and its partitions given to a live member (which then reads and files them).
        if now - self.last_rebalance < self.session_timeout + 3.0:
            waiting.append("the group's assignment to be stable for a session timeout")
        return waiting

    def idle_done(self) -> bool:
        return self.s.exit_when_idle is not None and not self.idle_blockers()

    def idle_given_up(self) -> bool:
        """--exit-when-idle never waits without limit: past RELIEFDOCS_EXIT_WHEN_IDLE_TIMEOUT_SECONDS
        without progress the worker exits non-zero, saying what it was waiting for."""
        if self.s.exit_when_idle is None:
            return False
        stalled = time.monotonic() - self.last_activity
        if stalled < self.s.exit_when_idle_timeout_seconds:
            return False
        log.error("gave up waiting to exit idle", extra={"waited_seconds": round(stalled), "waiting_for":
                                                         self.idle_blockers() or ["nothing (a race)"]})
        return True

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> int:
        self.start()
        code = 0
        while not self.stopping.is_set():
            self.watch.turned()
            if self.consumer_broken or self.membership.lost():
                self.rejoin("the loop was blocked in the Kafka client" if self.consumer_broken else
                            f"no assignment for {self.membership.out_for():.0f} s after a rebalance began")
            try:
                self.watch.entering("KafkaConsumer.poll")
                polled = self.consumer.poll(timeout_ms=200 if self.inflight else 500)
            except Exception as exc:  # KafkaError, or a consumer the watchdog closed under it
                self.retried("broker")
                log.warning("poll failed; retrying", extra={"error": type(exc).__name__})
                self.stopping.wait(1.0)
                continue
            finally:
                self.watch.left()
            self.apply_rebalances()
            polled = self.reset_positions(polled)
            count = 0
            for tp, records in polled.items():
                self.apply_rebalances()
                if tp not in self.owned or tp in self.reset_needed:
                    continue  # revoked, or to be read again from its committed offset
                for rec in records:
                    if self.stopping.is_set():
                        break
                    if not self.handle(rec):
                        self.consumer.seek(tp, rec.offset)
                        self.backoff_until[tp] = time.monotonic() + random.uniform(0.5, 2.0)
                        break
                    count += 1
            if count:
                self.last_activity = time.monotonic()
                self.metrics.progress.set(time.time())
            self.reap()
            self.apply_rebalances()
            self.gauges()
            self.timers(count)
            self.commit(force=bool(count == 0 and self.batcher.committable()))
            self.backpressure()
            if self.idle_done():
                log.info("idle: every partition read to the end and every batch filed; exiting",
                         extra={"idle_seconds": self.s.exit_when_idle})
                break
            if self.idle_given_up():
                code = 3
                break
        self.shutdown()
        return code

    def shutdown(self) -> None:
        deadline = time.monotonic() + self.s.shutdown_seconds
        if self.inflight:
            log.info("stopping: waiting for running flushes", extra={"flushes": len(self.inflight),
                                                                    "deadline_seconds": self.s.shutdown_seconds})
        while self.inflight and time.monotonic() < deadline:
            self.watch.turned()
            try:
                self.consumer.poll(timeout_ms=200)  # stay in the group while flushes finish
            except KafkaError:
                time.sleep(0.2)
            self.reap()
        if self.inflight:
            log.warning("shutdown deadline passed; abandoning running flushes (not committed)",
                        extra={"flushes": len(self.inflight)})
            self.abandon.set()
            self.converter.kill_all()
            for sb in list(self.inflight.values()):
                self.batcher.revoke(sb.partition)  # nothing of an abandoned batch's partition is committed further
        try:
            self.commit(force=True)
        except Exception as exc:
            log.warning("final commit failed", extra={"error": type(exc).__name__})
        try:
            self.consumer.close(autocommit=False)
        except Exception:
            pass
        self.converter.close()
        self.work.release()
        try:
            self.producer.flush(timeout=10)
            self.producer.close(timeout=10)
        except Exception:
            pass
        self.watch.stop()
        log.info("worker stopped", extra={"summary": self.summary()})


def _close_quietly(consumer) -> None:
    try:
        consumer.close(autocommit=False, timeout_ms=5000)
    except Exception as exc:
        log.warning("consumer close failed", extra={"error": type(exc).__name__})


def run(settings: Settings) -> int:
    worker = Worker(settings)

    def stop(signum, frame):
        log.info("signal received; stopping", extra={"signal": signal.Signals(signum).name})
        worker.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1 PID` prints every thread's stack
    try:
        return worker.run()
    except ConfigError:
        raise
