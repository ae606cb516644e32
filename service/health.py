"""What readiness and liveness are told, from the uses of the dependencies themselves (issue 18).

- `Observed` wraps the store or the converter: every call of one of its operations tells
  `answered(dependency)` when it returns (or the store refuses for good: it answered) and
  `failed(dependency)` when it raises Transient. So whatever used the dependency (a filing
  thread, the ledger, a dead letter stored under `_dlq/`, the start-up check), its most recent
  use is what `/readyz` reports, and one success after an outage makes the worker ready again.
- `pause` waits like `Event.wait`, beating the heartbeat at least every `BEAT_SECONDS`: a
  retry that waits out a long backoff is not a stuck process (`/healthz`).
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

from service.errors import Permanent, Transient

log = logging.getLogger("reliefdocs.health")

BEAT_SECONDS = 5.0

STORE_OPERATIONS = ("put_file", "put_bytes", "get", "exists", "delete", "list", "check")
CONVERTER_OPERATIONS = ("convert",)


class Observed:
    """A proxy of `target` whose `operations` report each outcome; everything else passes through."""

    def __init__(self, target: Any, dependency: str, operations: Iterable[str],
                 answered: Callable[[str], None], failed: Callable[[str], None]):
        self._target = target
        self._dependency = dependency
        self._operations = frozenset(operations)
        self._answered = answered
        self._failed = failed

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if name not in self._operations:
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            result = self._observe(value, *args, **kwargs)
            return self._iterate(result) if isinstance(result, Iterator) else result

        return call

    @contextmanager
    def _reporting(self) -> Iterator[None]:
        """A Transient failure marks the dependency down; a Permanent refusal is an answer."""
        try:
            yield
        except Transient:
            self._failed(self._dependency)
            raise
        except Permanent:
            self._answered(self._dependency)
            raise

    def _observe(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with self._reporting():
            result = f(*args, **kwargs)
        if not isinstance(result, Iterator):
            self._answered(self._dependency)
        return result

    def _iterate(self, items: Iterator) -> Iterator:
        """A listing answered once it was read to its end (pages are fetched while iterating)."""
        with self._reporting():
            yield from items
        self._answered(self._dependency)


def pause(stopping: threading.Event, seconds: float, beat: Callable[[], None]) -> bool:
    """Wait up to `seconds` (True if `stopping` was set), calling `beat` at least every BEAT_SECONDS."""
    remaining = max(0.0, seconds)
    beat()
    while remaining > 0:
        step = min(BEAT_SECONDS, remaining)
        if stopping.wait(step):
            return True
        remaining -= step
        beat()
    return stopping.is_set()


# The steps of a shutdown after the flush deadline (RELIEFDOCS_SHUTDOWN_SECONDS), each bounded:
# Worker.shutdown passes these timeouts, and the pod's grace period must exceed shutdown_bound().
SETTLE_SECONDS = 5.0  # dead letters acknowledged before the final commit
COMMIT_SECONDS = 10.0  # consumer.GroupConsumer.commit
CONSUMER_CLOSE_SECONDS = 5.0  # consumer.close_quietly
CONVERTER_CLOSE_SECONDS = 10.0  # per warm LibreOffice (convert.WarmLibreOffice.close)
PRODUCER_SECONDS = 5.0  # producer flush, then close: each


def shutdown_bound(shutdown_seconds: float, converters: int) -> float:
    """The longest a worker takes from SIGTERM to exit."""
    return (shutdown_seconds + SETTLE_SECONDS + COMMIT_SECONDS + CONSUMER_CLOSE_SECONDS
            + converters * CONVERTER_CLOSE_SECONDS + 2 * PRODUCER_SECONDS)


def wait_for(what: str, f: Callable[[], Any], stopping: threading.Event, cap: float, metrics: Any) -> Any:
    """f() until it answers (None if `stopping` is set first); alive (beating) while waiting,
    however long the outage: a start-up wait never fails liveness."""
    from kafka.errors import KafkaError

    from service.retry import Backoff

    backoff, n = Backoff(cap=cap), 0
    while not stopping.is_set():
        metrics.beat()
        try:
            result = f()
            metrics.answered(what)
            return result
        except (Transient, KafkaError) as exc:  # KafkaError: a client that found no broker
            n += 1
            metrics.retried(exc.dependency if isinstance(exc, Transient) else "kafka")
            log.warning("dependency unavailable; retrying", extra={"stage": what, "error": str(exc)})
            pause(stopping, backoff.wait(n), metrics.beat)
    return None
