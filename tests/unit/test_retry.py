"""The one backoff policy (service/retry.py) and the retry loop of a filing (flush.retry)."""

import random
import threading

import pytest

from service.errors import BatchFailed, Permanent, Transient
from service.flush import Abandoned, Filing, retry
from service.retry import Backoff


def test_backoff_is_capped_exponential_with_full_jitter():
    b = Backoff(base=0.5, cap=4.0, rng=random.Random(1))
    assert [b.ceiling(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert b.ceiling(10_000) == 4.0
    waits = [b.wait(3) for _ in range(200)]
    assert all(0 <= w <= 2.0 for w in waits) and min(waits) < 0.5 < 1.5 < max(waits)


def test_backoff_attempts():
    assert not Backoff().exhausted(10**6)
    b = Backoff(attempts=3)
    assert [b.exhausted(n) for n in (1, 2, 3)] == [False, False, True]


def filing(stopping=None, events=None) -> Filing:
    events = [] if events is None else events
    return Filing(store=None, ledger=None, converter=None, producer=None, notifications_topic="n",
                  templates_dir=None, work_dir=None, chunk_rows=10, retry_max_seconds=0.001,
                  stopping=stopping or threading.Event(),
                  on_retry=lambda d: events.append(("retry", d)), on_ok=lambda d: events.append(("ok", d)))


def failing(*errors, result="done"):
    calls = []

    def f():
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return result

    return f, calls


def test_transient_is_retried_until_it_answers():
    events = []
    f, calls = failing(Transient("s3", "put bundle.pdf: SlowDown"), Transient("s3", "put bundle.pdf: SlowDown"))
    assert retry(f, "store", filing(events=events)) == "done"
    assert len(calls) == 3
    assert events == [("retry", "s3"), ("retry", "s3"), ("ok", "s3")]


def test_permanent_fails_the_batch_at_once():
    f, calls = failing(Permanent("s3", "put bundle.pdf", "AccessDenied"))
    with pytest.raises(BatchFailed) as info:
        retry(f, "store", filing())
    assert len(calls) == 1
    assert info.value.reason == "store_failed"
    assert info.value.message == "put bundle.pdf refused by the object store: AccessDenied"


def test_permanent_after_transient_fails_the_batch():
    events = []
    f, calls = failing(Transient("s3", "x: SlowDown"), Permanent("s3", "put order.pdf", "KMS.DisabledException"))
    with pytest.raises(BatchFailed):
        retry(f, "store", filing(events=events))
    assert len(calls) == 2 and events == [("retry", "s3"), ("ok", "s3")]


def test_attempts_cap_raises_the_last_transient():
    f, calls = failing(*[Transient("libreoffice", "crashed")] * 5)
    with pytest.raises(Transient):
        retry(f, "convert", filing(), attempts=3)
    assert len(calls) == 3


def test_stopping_abandons_the_retry():
    stopping = threading.Event()
    stopping.set()
    f, calls = failing(Transient("s3", "x: SlowDown"))
    with pytest.raises(Abandoned):
        retry(f, "store", filing(stopping))
    assert len(calls) == 1
