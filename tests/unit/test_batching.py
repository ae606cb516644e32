"""batching: composition depends only on the log and the ledger; offsets never pass an
unfiled batch."""

from service.batching import Batcher, Outcome, Record
from service.events import BatchClosed, Decision
from tests.helpers import FakeLedger


def dec(i, court="LA", batch="B", relief="dismiss_and_seal"):
    return Decision(f"d{i}", court, batch, relief, {"decision_id": f"d{i}"})


def rec(offset, partition=0, ts=1_700_000_000_000):
    return Record("t", partition, offset, ts)


def feed(b, items):
    sealed = []
    for off, ev in items:
        sealed += b.add(rec(off), ev)[1]
    return sealed


def test_close_seals_batch():
    b = Batcher(500, FakeLedger())
    sealed = feed(b, [(0, dec(1)), (1, dec(2)), (2, BatchClosed("LA", "B", 2, "upstream", None))])
    assert len(sealed) == 1 and [d.decision_id for d in sealed[0].decisions] == ["d1", "d2"]
    assert sealed[0].closed_by == "upstream" and sealed[0].expected_count == 2


def test_max_cases_makes_volumes():
    b = Batcher(2, FakeLedger())
    sealed = feed(b, [(i, dec(i)) for i in range(5)] + [(5, BatchClosed("LA", "B", 5, "upstream", None))])
    assert [(s.volume, len(s.decisions), s.closed_by) for s in sealed] == [(1, 2, "max_cases"), (2, 2, "max_cases"),
                                                                           (3, 1, "upstream")]


def test_duplicates_and_not_filed():
    b = Batcher(500, FakeLedger())
    assert b.add(rec(0), dec(1))[0] == Outcome.ADDED
    assert b.add(rec(1), dec(1))[0] == Outcome.DUPLICATE
    assert b.add(rec(2), dec(2, relief="not_eligible"))[0] == Outcome.NOT_FILED


def test_ledger_skips_filed_and_numbers_volumes():
    ledger = FakeLedger()
    b = Batcher(2, ledger)
    s1 = feed(b, [(0, dec(1)), (1, dec(2))])[0]
    ledger.record(s1)
    b.done(s1)
    # a restart re-reads from 0: the filed decisions are skipped, the next volume is 2
    b2 = Batcher(2, ledger)
    assert b2.add(rec(0), dec(1))[0] == Outcome.ALREADY_FILED
    b2.add(rec(2), dec(3))
    assert b2.open_batches()[0].volume == 2


def test_smallest_unused_volume_on_replay():
    ledger = FakeLedger()
    ledger.vols[("LA", "B")] = {2}  # volume 2 was stored before volume 1 when the worker crashed
    b = Batcher(500, ledger)
    b.add(rec(0), dec(1))
    assert b.open_batches()[0].volume == 1


def test_stale_marker_ignored():
    b = Batcher(500, FakeLedger())
    feed(b, [(0, dec(1))])
    assert b.add(rec(1), BatchClosed("LA", "B", None, "linger", 2))[0] == "stale_marker"
    assert b.add(rec(2), BatchClosed("LA", "B", None, "linger", 1))[0] == "closed"


def test_implicit_batches_are_deterministic():
    def run():
        b = Batcher(500, FakeLedger())
        return feed(b, [(5, dec(1, batch=None)), (6, dec(2, batch=None)), (7, dec(3, court="SF", batch=None))])[:0] or b
    a, c = run(), run()
    assert [o.batch_id for o in a.open_batches()] == [o.batch_id for o in c.open_batches()]
    assert a.open_batches()[0].batch_id.startswith("LA-auto-")
    assert a.open_batches()[0].batch_id.endswith("-p0-o5")


def test_commit_held_by_oldest_unfiled_batch():
    b = Batcher(500, FakeLedger())
    feed(b, [(0, dec(1)), (1, dec(2, court="SF", batch="S")), (2, dec(3)),
             (3, BatchClosed("LA", "B", None, "upstream", None))])
    assert b.committable() == {0: 0}
    la = b.flushing()[0]
    b.done(la)
    assert b.committable() == {0: 1}  # SF's open batch starts at 1
    sf = feed(b, [(4, BatchClosed("SF", "S", None, "upstream", None))])[0]
    assert b.committable() == {0: 1}
    b.done(sf)
    assert b.committable() == {0: 5}


def test_revoke_forgets_partition():
    b = Batcher(500, FakeLedger())
    feed(b, [(0, dec(1))])
    b.revoke(0)
    assert b.open_batches() == [] and b.committable() == {}
    assert b.add(rec(0), dec(1))[0] == Outcome.ADDED  # the dedup index forgot it too


def test_full_implicit_batch_opens_new_batch_id_not_volume():
    b = Batcher(2, FakeLedger())
    sealed = feed(b, [(0, dec(1, batch=None)), (1, dec(2, batch=None)), (2, dec(3, batch=None))])
    assert sealed[0].batch_id.endswith("-o0") and sealed[0].volume == 1
    (ob,) = b.open_batches()
    assert ob.batch_id.endswith("-o2") and ob.volume == 1
    # a worker restarting at offset 2 (volume 1 committed) rebuilds the same batch
    b2 = Batcher(2, FakeLedger())
    b2.add(rec(2), dec(3, batch=None))
    assert b2.open_batches()[0].batch_id == ob.batch_id


def test_implicit_batch_id_never_raises_on_odd_log_times():
    """Kafka's -1 (no timestamp), a negative or an absurd timestamp: the day is clamped to
    1970-01-01 .. 9999-12-31, so the batch id stays deterministic and the batcher never raises."""
    from service.batching import implicit_batch_id

    assert implicit_batch_id("LA", rec(3, ts=-1)) == "LA-auto-19700101-p0-o3"
    assert implicit_batch_id("LA", rec(3, ts=-(2**63))) == "LA-auto-19700101-p0-o3"
    assert implicit_batch_id("LA", rec(3, ts=253402300800000)) == "LA-auto-99991231-p0-o3"  # year 10000
    assert implicit_batch_id("LA", rec(3, ts=2**63 - 1)) == "LA-auto-99991231-p0-o3"
    assert implicit_batch_id("LA", rec(3, ts=1_700_000_000_000)) == "LA-auto-20231114-p0-o3"


def test_batch_closed_at_odd_log_time_has_a_created_at():
    b = Batcher(1, FakeLedger())
    _, sealed = b.add(rec(0, ts=2**63 - 1), dec(1, batch=None))
    assert sealed[0].created_at == "9999-12-31T23:59:59.999Z"
    _, sealed = b.add(rec(1, ts=-5), dec(2, batch=None))
    assert sealed[0].created_at == "1970-01-01T00:00:00.000Z"
